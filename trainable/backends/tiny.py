"""The `tiny` backend: a small transformer on the synthetic arithmetic task, on CPU.

What is its own: `TinyPolicy` (sampling with `TinyGPT`'s KV cache, log-probs that
project only response positions onto the vocabulary, with log-prob and entropy fused in
`algos.log_probs_and_entropy`; the reference skips the entropy), the model (the cached warm
start or a seeded random init), AdamW, the size checks and the
`tiny/gibberish_frac` metric. Batching, seeding, the step budget, the GRPO step and
checkpoints come from `grpo_base.GRPOTrainer`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from trainable import algos, grpo, tasks
from trainable import metrics as M
from trainable.backends import grpo_base
from trainable.config import ConfigError, GRPOConfig
from trainable.tiny_model import TinyGPT
from trainable.tokenizer import Tokenizer, get_tokenizer
from trainable.warmstart import SFTSettings, load_or_build

log = logging.getLogger(__name__)


class TinyPolicy(grpo_base.ModelPolicy):
    """`grpo.Policy` over a `TinyGPT` and the word-level tokenizer."""

    def __init__(self, model: TinyGPT, tok: Tokenizer, entropy: bool = True):
        self.model, self.tok = model, tok
        self.eos_id, self.pad_id = tok.eos_id, tok.pad_id
        self.entropy = entropy
        """False for the KL reference: its entropy is never read, and skipping it saves two
        passes over the [N, V] logits (entropy comes back as None)."""

    def _sample(self, prompt_ids, n, temperature, max_new_tokens, generator) -> list[list[int]]:
        rows = [p for p in prompt_ids for _ in range(n)]
        prompt, mask = grpo_base.left_pad(rows, self.pad_id)
        out = self.model.generate(
            prompt, mask, max_new_tokens, temperature, generator, self.eos_id, self.pad_id
        )
        return out.tolist()

    def logprobs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_prompt: int):
        hidden = self.model(input_ids, attention_mask)[:, n_prompt - 1 : -1]
        # Vocabulary projections only where a response token is (padding is ~20% of [B, R]).
        real = attention_mask[:, n_prompt:].bool()
        logits, tokens = self.model.logits(hidden[real]), input_ids[:, n_prompt:][real]
        logp = hidden.new_zeros(real.shape)
        if not self.entropy:
            logp[real] = algos.token_log_probs(logits, tokens)
            return logp, None
        entropy = hidden.new_zeros(real.shape)
        logp[real], entropy[real] = algos.log_probs_and_entropy(logits, tokens)
        return logp, entropy

    def decode(self, ids: Sequence[int]) -> str:
        return self.tok.decode(ids)


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


class TinyTrainer(grpo_base.GRPOTrainer):
    """The Trainer protocol (`trainable.trainer.Trainer`) for the tiny backend."""

    checkpoint_file = "tiny_trainer.pt"

    def __init__(self, config: GRPOConfig):
        super().__init__(config)
        self.tok = get_tokenizer()
        self.model = self._build_model(config)
        _check_sizes(config, len(self._encode(self.train_set[0])), self.model.max_len)
        self.policy = TinyPolicy(self.model, self.tok)
        self.ref = TinyPolicy(grpo_base.frozen_copy(self.model), self.tok, entropy=False)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.actor.lr, weight_decay=config.actor.weight_decay
        )

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

    def _encode(self, problem: tasks.Problem) -> list[int]:
        return tasks.encode_prompt(self.tok, problem)

    def _extra_metrics(self, ro: grpo.Rollout) -> dict[str, float]:
        tokens = [t for r in ro.responses for t in r if t != self.tok.eos_id]
        return {M.GIBBERISH_FRAC: sum(map(self.tok.is_gibberish, tokens)) / len(tokens) if tokens else 0.0}


def prepare(config: GRPOConfig) -> None:
    """Build the cached warm start in the driver (with progress logs) before trials start."""
    if config.model.warm_start:
        load_or_build(config.model, SFTSettings())
