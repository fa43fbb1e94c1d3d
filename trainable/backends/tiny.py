"""The `tiny` backend: a small transformer on the synthetic arithmetic task, on CPU.

What is its own: `TinyPolicy` (sampling with `TinyGPT`'s KV cache, log-probs that
project only response positions onto the vocabulary, with log-prob and entropy fused as in
`algos.log_probs_and_entropy`, into `Buffers` reused from step to step; the reference skips
the entropy), the model (the cached warm start or a seeded random init), AdamW, the size
checks and the `tiny/gibberish_frac` metric. Batching, seeding, the step budget, the GRPO step,
validation on the task's held-out split (`data.val_size`) and checkpoints come from
`grpo_base.GRPOTrainer`.
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


class Buffers:
    """[N, V] float32 buffers kept from step to step, shared by the policy and the reference.
    A fresh tensor that size (64 MB at the defaults) is new mmap'd memory: ~16k page faults,
    as slow as the pass that fills it; the seven of them per step were a fifth of the update."""

    def __init__(self):
        self._bufs: dict[str, torch.Tensor] = {}
        self.versions: dict[str, int] = {}
        """Takes per name, so that a backward can tell its saved buffers were overwritten."""

    def take(self, names: Sequence[str], rows: int, cols: int) -> list[torch.Tensor]:
        out = []
        for name in names:
            buf = self._bufs.pop(name, None)
            if buf is None or buf.shape[0] < rows or buf.shape[1] != cols:
                del buf  # free before allocating: the peak stays one buffer per name
                buf = torch.empty(rows + rows // 8, cols)  # headroom: N varies step to step
            self._bufs[name] = buf
            self.versions[name] = self.versions.get(name, 0) + 1
            out.append(buf[:rows])
        return out


#: Saved between `_ProjectedLogProbEntropy`'s forward and backward; "logits" is free in between
#: (its p·log p is read in the forward; the backward only writes the gradient there).
_SAVED = ("logp", "probs")


class _ProjectedLogProbEntropy(torch.autograd.Function):
    """`algos.log_probs_and_entropy(hidden @ weight.T, tokens)` with every [N, V] tensor in
    `Buffers`, forward and backward, bit for bit: the same kernels on the same layouts, and
    the backward's two matrix products are the ones autograd's mm backward computes."""

    @staticmethod
    def forward(ctx, hidden, weight, tokens, buffers: Buffers):
        logits, logp, probs = buffers.take(("logits", *_SAVED), hidden.shape[0], weight.shape[0])
        torch.mm(hidden, weight.t(), out=logits)
        # logits are dead once log_softmax has read them: their buffer takes p·log p
        token_logp, entropy, logp, probs = algos.log_probs_entropy_forward(
            logits, tokens, logp, probs, scratch=logits
        )
        ctx.save_for_backward(hidden, weight, tokens, entropy)
        ctx.buffers, ctx.work = buffers, (logits, logp, probs)
        ctx.versions = [buffers.versions[k] for k in _SAVED]
        return token_logp, entropy

    @staticmethod
    def backward(ctx, grad_logp, grad_entropy):
        hidden, weight, tokens, entropy = ctx.saved_tensors
        if ctx.versions != [ctx.buffers.versions[k] for k in _SAVED]:
            raise RuntimeError(
                "TinyPolicy.logprobs (with entropy) ran again before the backward of its last call"
            )
        work, logp, probs = ctx.work
        grad = algos.log_probs_entropy_backward(
            probs, logp, entropy, tokens, grad_logp, grad_entropy, out=work
        )
        return grad.mm(weight), grad.t().mm(hidden), None, None


class TinyPolicy(grpo_base.ModelPolicy):
    """`grpo.Policy` over a `TinyGPT` and the word-level tokenizer."""

    def __init__(self, model: TinyGPT, tok: Tokenizer, entropy: bool = True, buffers: Buffers | None = None):
        self.model, self.tok = model, tok
        self.eos_id, self.pad_id = tok.eos_id, tok.pad_id
        self.entropy = entropy
        """False for the KL reference: its entropy is never read, and skipping it saves two
        passes over the [N, V] logits (entropy comes back as None)."""
        self.buffers = buffers or Buffers()

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
        rows, tokens = hidden[real], input_ids[:, n_prompt:][real]
        weight = self.model.tok_emb.weight  # the tied output projection (`TinyGPT.logits`)
        logp = hidden.new_zeros(real.shape)
        if not self.entropy:
            if rows.requires_grad:  # buffered below only without autograd
                logp[real] = algos.token_log_probs(self.model.logits(rows), tokens)
            else:
                # only the free "logits" buffer: a policy backward may still need the others
                (logits,) = self.buffers.take(("logits",), rows.shape[0], weight.shape[0])
                torch.mm(rows, weight.t(), out=logits)
                # in place: the kernel reads each row whole before it writes it
                logp[real] = torch.log_softmax(logits, -1, out=logits).gather(-1, tokens[:, None]).squeeze(-1)
            return logp, None
        entropy = hidden.new_zeros(real.shape)
        logp[real], entropy[real] = _ProjectedLogProbEntropy.apply(rows, weight, tokens, self.buffers)
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
        self.val_set = tasks.val_set(config.data.val_size, grpo_base.SPLIT_SEED)
        buffers = Buffers()
        self.policy = TinyPolicy(self.model, self.tok, buffers=buffers)
        self.ref = TinyPolicy(grpo_base.frozen_copy(self.model), self.tok, entropy=False, buffers=buffers)
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
