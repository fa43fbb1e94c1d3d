"""What the tiny and hf backends share: a GRPO trainer over the arithmetic task.

Pure helpers first (EOS cut, left padding, generator seeds, the budget guard, the
step's prompt draw), then two thin base classes:

- `ModelPolicy`: the shared half of a `grpo.Policy` over a torch module: responses
  cut after EOS, `train()` / `eval()`. A backend adds `_sample`, `logprobs`, `decode`.
- `GRPOTrainer`: the Trainer protocol (`trainable.trainer.Trainer`). It holds the
  train set, the data and sampling generators and the step counter; runs
  `grpo.grpo_step`; saves and loads model, reference, optimizer, generators and
  step. A backend's `__init__` calls `super().__init__(config)` and then sets what is
  its own: `tok`, `model`, `policy`, `ref` (a frozen copy) and `optimizer` (a torch
  optimizer, or an engine with `save(dir)` / `load(dir)` that writes model and
  optimizer itself, as DeepSpeed does), and defines `_encode(problem)`. A backend with
  held-out prompts sets `val_set` (items `_encode` takes, each with an `answer`): the step
  then validates on verl's schedule (`validation.due`) and adds verl's val keys to its report.

Everything random comes from the two seeded generators (saved in checkpoints), so the
same seed gives the same metrics and save → load → step equals the uninterrupted step.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch

from trainable import grpo, rewards, tasks
from trainable import metrics as M
from trainable.backends import validation
from trainable.config import GRPOConfig

SPLIT_SEED = 0  # the task split is fixed: every trial, backend and the warm start share it


def cut_at_eos(ids: Sequence[int], eos_id: int) -> list[int]:
    """`ids` up to and including the first EOS; all of them when there is none (cut by length)."""
    ids = list(ids)
    return ids[: ids.index(eos_id) + 1] if eos_id in ids else ids


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention_mask), both [B, longest row]: rows right-aligned behind `pad_id`s,
    so that generation continues every row at the same column."""
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row) :] = 1
    return ids, mask


def seeded_generators(seed: int) -> tuple[torch.Generator, torch.Generator]:
    """(data order, sampling): two streams, so more or fewer samples never reorder the data."""
    return torch.Generator().manual_seed(2 * seed), torch.Generator().manual_seed(2 * seed + 1)


def check_budget(step_count: int, total_steps: int) -> None:
    """Refuse a step past `trainer.total_steps` (a caller that ignores `done()` is a bug)."""
    if step_count >= total_steps:
        raise RuntimeError(f"step budget used: {step_count=} trainer.total_steps={total_steps}")


def draw_problems(train_set: Sequence[tasks.Problem], size: int, generator: torch.Generator):
    """`size` distinct problems of `train_set`, in an order drawn from `generator`."""
    order = torch.randperm(len(train_set), generator=generator)
    return [train_set[i] for i in order[:size]]


def frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    """The KL reference: a copy of the starting policy that never trains."""
    return copy.deepcopy(model).requires_grad_(False).eval()


class ModelPolicy:
    """The shared half of a `grpo.Policy` over `self.model` (a torch module)."""

    model: torch.nn.Module
    eos_id: int
    pad_id: int

    def generate(
        self,
        prompt_ids: list[list[int]],
        n: int,
        temperature: float,
        max_new_tokens: int,
        generator: torch.Generator,
    ) -> list[list[int]]:
        rows = self._sample(prompt_ids, n, temperature, max_new_tokens, generator)
        return [cut_at_eos(r, self.eos_id) for r in rows]

    def _sample(
        self,
        prompt_ids: list[list[int]],
        n: int,
        temperature: float,
        max_new_tokens: int,
        generator: torch.Generator,
    ) -> list[list[int]]:
        """`n` rows per prompt, prompt-major; anything after a row's EOS is dropped by the caller."""
        raise NotImplementedError

    def train(self, mode: bool = True):
        self.model.train(mode)
        return self

    def eval(self):
        return self.train(False)


class GRPOTrainer:
    """The Trainer protocol for a backend that runs `grpo.grpo_step` in this process."""

    checkpoint_file: ClassVar[str] = "trainer.pt"
    device = torch.device("cpu")  # where checkpoints load to
    tok: Any
    model: torch.nn.Module
    policy: ModelPolicy
    ref: ModelPolicy
    optimizer: Any
    val_set: Sequence[Any] = ()
    """Held-out prompts (items `_encode` takes, each with an `answer`); empty = no validation."""
    val_chunk: int = 64
    """Validation prompts generated per call."""

    def __init__(self, config: GRPOConfig):
        self.config = config
        torch.set_num_threads(config.trainer.threads)
        self.train_set = self._load_train_set()
        self.score_fn: Callable[[str, Any], float] = rewards.score
        """score(response text, the prompt's `answer`) -> reward (the task's integer answers)."""
        self.data_gen, self.sample_gen = seeded_generators(config.trainer.seed)
        self.step_count = 0

    def _load_train_set(self) -> Sequence[Any]:
        """The prompts steps draw from, each with an `answer`: the arithmetic task's RL split."""
        return tasks.rl_train_set(self.config.data.train_size, SPLIT_SEED)

    def _encode(self, problem: Any) -> list[int]:
        """Prompt token ids of a `train_set` item (the backend's tokenizer and template)."""
        raise NotImplementedError

    def _batch(self) -> tuple[list[list[int]], list[int]]:
        problems = draw_problems(self.train_set, self.config.data.train_batch_size, self.data_gen)
        return [self._encode(p) for p in problems], [p.answer for p in problems]

    def _after_update(self) -> None:
        """Called whenever the weights changed (a step, a load); e.g. push them to a rollout engine."""

    def _extra_metrics(self, ro: grpo.Rollout) -> dict[str, float]:
        """Backend-specific metrics of a step's rollout, beyond `metrics.ALL_KEYS`."""
        return {}

    def _val_source(self, item: Any) -> str:
        """The `data_source` of a validation prompt (its metrics' key): the tiny task's."""
        return M.TINY_DATA_SOURCE

    def _validate(self) -> dict[str, float]:
        items = self.val_set
        ids, answers = [self._encode(p) for p in items], [p.answer for p in items]
        sources = [self._val_source(p) for p in items]
        return validation.evaluate(
            self.policy, ids, answers, sources, self.config, self.score_fn, self.step_count, self.val_chunk
        )

    def step(self) -> dict[str, float]:
        """One GRPO step's report; validation rides on it (verl logs it with the step's metrics)."""
        t = self.config.trainer
        when = validation.due(self.step_count + 1, t.total_steps, t.test_freq, t.val_before_train)
        when = when if self.val_set else None
        before = self._validate() if when == validation.BEFORE else {}
        out = self._train_step()
        return out | before | (self._validate() if when == validation.AFTER else {})

    def _train_step(self) -> dict[str, float]:
        check_budget(self.step_count, self.config.trainer.total_steps)
        prompts, answers = self._batch()
        out, ro = grpo.grpo_step(
            self.policy,
            self.ref,
            self.optimizer,
            self.config,
            prompts,
            answers,
            self.sample_gen,
            self.score_fn,
        )
        self._after_update()
        self.step_count += 1
        out[M.STEP] = float(self.step_count)
        out.update(self._extra_metrics(ro))
        return out

    def save(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        state = {
            "ref": self.ref.model.state_dict(),
            "data_gen": self.data_gen.get_state(),
            "sample_gen": self.sample_gen.get_state(),
            "step": self.step_count,
        }
        if isinstance(self.optimizer, torch.optim.Optimizer):
            state |= {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
        else:  # an engine writes model + optimizer itself (DeepSpeed: partitioned under ZeRO)
            self.optimizer.save(directory)
        torch.save(state, os.path.join(directory, self.checkpoint_file))

    def load(self, directory: str) -> None:
        path = os.path.join(directory, self.checkpoint_file)
        state = torch.load(path, weights_only=True, map_location=self.device)
        self.ref.model.load_state_dict(state["ref"])
        if isinstance(self.optimizer, torch.optim.Optimizer):
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        else:
            self.optimizer.load(directory)
        # Generator states are CPU byte tensors whatever `map_location` moved them to.
        self.data_gen.set_state(state["data_gen"].cpu())
        self.sample_gen.set_state(state["sample_gen"].cpu())
        self.step_count = int(state["step"])
        self._after_update()

    def done(self) -> bool:
        return self.step_count >= self.config.trainer.total_steps

    def close(self) -> None:
        """Nothing to release by default: the model lives in this process."""
