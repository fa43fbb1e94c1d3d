"""The `tiny` backend: a small transformer on the synthetic arithmetic task, on CPU.

`TinyPolicy` implements `trainable.grpo.Policy` over `TinyGPT`; `TinyTrainer` holds
the policy, the frozen reference (the warm start), AdamW, the data and sampling
generators and the step counter, and runs `grpo.grpo_step`. Everything random comes
from two seeded `torch.Generator`s that are saved in checkpoints, so the same seed
gives the same metrics and save → load → step equals the uninterrupted step.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Sequence

import torch

from trainable import algos, grpo, rewards, tasks
from trainable import metrics as M
from trainable.config import ConfigError, GRPOConfig
from trainable.tiny_model import TinyGPT
from trainable.tokenizer import Tokenizer, get_tokenizer
from trainable.warmstart import SFTSettings, load_or_build

log = logging.getLogger(__name__)
CHECKPOINT = "tiny_trainer.pt"
SPLIT_SEED = 0  # the task split is fixed: every trial and the warm start share it


class TinyPolicy:
    """`grpo.Policy` over a `TinyGPT` and the word-level tokenizer."""

    def __init__(self, model: TinyGPT, tok: Tokenizer):
        self.model, self.tok = model, tok
        self.eos_id, self.pad_id = tok.eos_id, tok.pad_id

    def generate(
        self,
        prompt_ids: list[list[int]],
        n: int,
        temperature: float,
        max_new_tokens: int,
        generator: torch.Generator,
    ) -> list[list[int]]:
        rows = [p for p in prompt_ids for _ in range(n)]
        P = max(map(len, rows))
        prompt = torch.full((len(rows), P), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(prompt)
        for i, p in enumerate(rows):
            prompt[i, P - len(p) :] = torch.tensor(p)
            mask[i, P - len(p) :] = 1
        out = self.model.generate(
            prompt, mask, max_new_tokens, temperature, generator, self.eos_id, self.pad_id
        )
        return [r[: r.index(self.eos_id) + 1] if self.eos_id in r else r for r in out.tolist()]

    def logprobs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_prompt: int):
        hidden = self.model(input_ids, attention_mask)[:, n_prompt - 1 : -1]
        # Vocabulary projections only where a response token is (padding is ~20% of [B, R]).
        real = attention_mask[:, n_prompt:].bool()
        logits = self.model.logits(hidden[real])
        logp, entropy = (hidden.new_zeros(real.shape) for _ in range(2))
        logp[real] = algos.token_log_probs(logits, input_ids[:, n_prompt:][real])
        entropy[real] = algos.entropy_from_logits(logits)
        return logp, entropy

    def decode(self, ids: Sequence[int]) -> str:
        return self.tok.decode(ids)

    def train(self, mode: bool = True):
        self.model.train(mode)
        return self

    def eval(self):
        return self.train(False)


def _check_sizes(cfg: GRPOConfig, prompt_len: int, max_len: int) -> None:
    if cfg.data.max_prompt_length < prompt_len:
        raise ConfigError(
            "data.max_prompt_length",
            f"the tiny task's prompts have {prompt_len} tokens (got {cfg.data.max_prompt_length})",
        )
    if prompt_len + cfg.data.max_response_length > max_len:
        raise ConfigError(
            "data.max_response_length",
            f"prompt ({prompt_len}) + response must fit the model's {max_len} "
            f"positions (got {cfg.data.max_response_length})",
        )


class TinyTrainer:
    """The Trainer protocol (`trainable.trainer.Trainer`) for the tiny backend."""

    def __init__(self, config: GRPOConfig):
        self.config = config
        torch.set_num_threads(config.trainer.threads)
        self.tok = get_tokenizer()
        self.train_set = tasks.rl_train_set(config.data.train_size, SPLIT_SEED)
        self.model = self._build_model(config)
        prompt_len = len(tasks.encode_prompt(self.tok, self.train_set[0]))
        _check_sizes(config, prompt_len, self.model.max_len)
        ref_model = copy.deepcopy(self.model).requires_grad_(False)
        self.policy, self.ref = TinyPolicy(self.model, self.tok), TinyPolicy(ref_model, self.tok)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.actor.lr, weight_decay=config.actor.weight_decay
        )
        seed = config.trainer.seed
        self.data_gen = torch.Generator().manual_seed(2 * seed)
        self.sample_gen = torch.Generator().manual_seed(2 * seed + 1)
        self.step_count = 0

    @staticmethod
    def _build_model(config: GRPOConfig) -> TinyGPT:
        sizes = config.model
        if sizes.warm_start:
            sft = SFTSettings()
            model = TinyGPT(sizes, len(get_tokenizer()), sft.max_len)
            model.load_state_dict(load_or_build(sizes, sft))
            return model
        torch.manual_seed(config.trainer.seed)
        return TinyGPT(
            sizes, len(get_tokenizer()), config.data.max_prompt_length + config.data.max_response_length
        )

    def _batch(self) -> tuple[list[list[int]], list[int]]:
        order = torch.randperm(len(self.train_set), generator=self.data_gen)
        problems = [self.train_set[i] for i in order[: self.config.data.train_batch_size]]
        return [tasks.encode_prompt(self.tok, p) for p in problems], [p.answer for p in problems]

    def step(self) -> dict[str, float]:
        if self.done():
            raise RuntimeError(
                f"step budget used: {self.step_count=} trainer.total_steps={self.config.trainer.total_steps}"
            )
        prompts, answers = self._batch()
        out, ro = grpo.grpo_step(
            self.policy,
            self.ref,
            self.optimizer,
            self.config,
            prompts,
            answers,
            self.sample_gen,
            rewards.score,
        )
        self.step_count += 1
        out[M.STEP] = float(self.step_count)
        tokens = [t for r in ro.responses for t in r if t != self.tok.eos_id]
        out[M.GIBBERISH_FRAC] = sum(map(self.tok.is_gibberish, tokens)) / len(tokens) if tokens else 0.0
        return out

    def save(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        torch.save(
            {
                "model": self.model.state_dict(),
                "ref": self.ref.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "data_gen": self.data_gen.get_state(),
                "sample_gen": self.sample_gen.get_state(),
                "step": self.step_count,
            },
            os.path.join(directory, CHECKPOINT),
        )

    def load(self, directory: str) -> None:
        state = torch.load(os.path.join(directory, CHECKPOINT), weights_only=True)
        self.model.load_state_dict(state["model"])
        self.ref.model.load_state_dict(state["ref"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.data_gen.set_state(state["data_gen"])
        self.sample_gen.set_state(state["sample_gen"])
        self.step_count = int(state["step"])

    def done(self) -> bool:
        return self.step_count >= self.config.trainer.total_steps

    def close(self) -> None:
        """Nothing to release: the tiny world lives in this process."""


def prepare(config: GRPOConfig) -> None:
    """Build the cached warm start in the driver (with progress logs) before trials start."""
    if config.model.warm_start:
        load_or_build(config.model, SFTSettings())
