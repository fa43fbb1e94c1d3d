"""Validation of the in-process backends (tiny, hf): held-out prompts on verl's schedule, verl's keys.

`due` says whether a step's report carries a validation, and of which policy: verl
validates before training (`trainer.val_before_train`), then after every
`trainer.test_freq`-th step and after the last one (only when test_freq > 0).
`evaluate` generates `rollout.val_kwargs.n` responses per validation prompt (greedy by
default) with the trainer's own rollout engine (tiny's KV-cache sampler, HF generate or
vLLM), scores them with the trainer's reward and returns
`val-core/<data_source>/reward/mean@n` (and friends, see `metrics.validation_metrics`) plus
`timing_s/testing`. The prompts are the tiny task's held-out split (`data.val_size`) or the
hf backend's `data.val_files`.

Sampled validation draws from a generator seeded by (seed, step), never from the training
streams: turning validation on leaves the training run unchanged, and a resumed trial
needs no extra checkpoint state to validate as the uninterrupted one would.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from trainable import metrics as M
from trainable.config import GRPOConfig

BEFORE, AFTER = "before", "after"


def due(step: int, total_steps: int, test_freq: int, before_train: bool) -> str | None:
    """When the report of `step` (1-based) validates: BEFORE its update, AFTER it, or None.

    At step 1 a scheduled validation (test_freq 1, or a one-step run) replaces the
    before-training one: a report carries one value per key.
    """
    if test_freq > 0 and (step % test_freq == 0 or step == total_steps):
        return AFTER
    if step == 1 and before_train:
        return BEFORE
    return None


def val_seed(seed: int, step: int) -> int:
    """The validation sampler's seed at `step`: fixed by the trial's seed and the step alone."""
    return (seed * 1_000_003 + step) % 2**63


def evaluate(
    policy,
    prompt_ids: Sequence[Sequence[int]],
    answers: Sequence[Any],
    sources: Sequence[str],
    cfg: GRPOConfig,
    score_fn: Callable[[str, Any], float],
    step: int,
    chunk: int,
) -> dict[str, float]:
    """verl's validation metrics of `policy` on the prompts (scored by `score_fn(text, answer)`),
    generated `chunk` prompts at a time (bounds memory on a large validation set)."""
    kw = cfg.rollout.val_kwargs
    temperature = kw.temperature if kw.do_sample else 0.0  # 0: greedy, in every engine
    gen = torch.Generator().manual_seed(val_seed(cfg.trainer.seed, step))
    t0 = time.perf_counter()
    scores: list[float] = []
    policy.eval()
    with torch.no_grad():
        for start in range(0, len(prompt_ids), chunk):
            ids = [list(p) for p in prompt_ids[start : start + chunk]]
            responses = policy.generate(ids, kw.n, temperature, cfg.data.max_response_length, gen)
            scores += [
                float(score_fn(policy.decode(r), answers[start + i // kw.n])) for i, r in enumerate(responses)
            ]
    out = M.validation_metrics(scores, sources, kw.n)
    out[M.TIME_VAL] = time.perf_counter() - t0
    return out
