"""The hf backend's real-data path: verl parquet prompts, rendered with the chat template.

`check_config` is the backend's file check (`BackendEntry.check`): `archer-sweep
validate` runs it, so a bad dataset is a one-line exit-2 error naming the file and
column before any trial starts. `load_prompts` reads the rows and renders each
prompt as verl's RL dataset does: `apply_chat_template(messages,
add_generation_prompt=True)` to text, then token ids without extra special tokens
(the template writes its own).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from trainable import data_rewards, datasets
from trainable.config import ConfigError, HFGRPOConfig, nearest

TRAIN, VAL = "data.train_files", "data.val_files"


@dataclass(frozen=True)
class DataPrompt:
    """A training prompt: its token ids and the row its reward reads."""

    ids: tuple[int, ...]
    row: datasets.Row

    @property
    def answer(self) -> datasets.Row:
        return self.row  # what `data_rewards.scorer` scores a response against


def _sources(cfg: HFGRPOConfig):
    return functools.partial(data_rewards.reward_name, override=cfg.data.reward)


def check_config(cfg: HFGRPOConfig) -> None:
    """Every data file readable, in verl's layout, with rows and a reward for each source."""
    data = cfg.data
    check_reward(data.reward)
    if data.val_files and not data.train_files:
        raise ConfigError(VAL, "given without data.train_files (expected training files too)")
    rows = sum(datasets.check_schema(p, TRAIN, _sources(cfg)) for p in data.train_files)
    for path in data.val_files:
        datasets.check_schema(path, VAL, _sources(cfg))
    if data.train_files and rows < data.train_batch_size:
        raise ConfigError(
            TRAIN, f"{rows} rows in all (expected at least data.train_batch_size={data.train_batch_size})"
        )


def check_reward(name: str | None) -> None:
    if name is not None and name not in data_rewards.REWARDS:
        raise ConfigError(
            "data.reward",
            f"unknown reward {name!r}{nearest(name, list(data_rewards.REWARDS))} "
            f"(expected one of {', '.join(data_rewards.REWARDS)})",
        )


def render(tok, messages) -> list[int]:
    """Token ids of chat `messages` ending in the assistant's turn, by the tokenizer's template."""
    if not getattr(tok, "chat_template", None):
        raise ConfigError(
            "model.path",
            "the tokenizer has no chat template (expected one to render the prompt messages of data files)",
        )
    text = tok.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    return tok.encode(text, add_special_tokens=False)


def load_prompts(cfg: HFGRPOConfig, tok) -> list[DataPrompt]:
    """The training prompts of `data.train_files` (the first `train_size` when set), rendered."""
    check_reward(cfg.data.reward)
    rows = datasets.read_files(cfg.data.train_files, TRAIN, _sources(cfg))
    cap = cfg.data.rows_cap()
    if cap is not None and cap > len(rows):
        raise ConfigError("data.train_size", f"the data files have {len(rows)} rows (got {cap})")
    return [DataPrompt(tuple(render(tok, r.messages)), r) for r in rows[:cap]]


def load_val_prompts(cfg: HFGRPOConfig, tok) -> list[DataPrompt]:
    """Every prompt of `data.val_files`, rendered (read when the trial starts, not halfway through)."""
    rows = datasets.read_files(cfg.data.val_files, VAL, _sources(cfg)) if cfg.data.val_files else []
    return [DataPrompt(tuple(render(tok, r.messages)), r) for r in rows]
