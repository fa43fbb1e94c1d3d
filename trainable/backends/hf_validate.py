"""Validation of the hf backend: `data.val_files` evaluated on verl's schedule, under verl's keys.

`due` says whether a step's report carries a validation, and of which policy: verl
validates before training (`trainer.val_before_train`), then after every
`trainer.test_freq`-th step and after the last one (only when test_freq > 0).
`evaluate` generates `rollout.val_kwargs.n` responses per validation prompt (greedy by
default) with the trainer's own rollout engine (HF generate or vLLM), scores them with
each row's reward and returns `val-core/<data_source>/reward/mean@n` (and friends, see
`metrics.validation_metrics`) plus `timing_s/testing`.

Sampled validation draws from a generator seeded by (seed, step), never from the training
streams: turning validation on leaves the training run unchanged, and a resumed trial
needs no extra checkpoint state to validate as the uninterrupted one would.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch

from trainable import metrics as M
from trainable.backends import hf_data
from trainable.config import HFGRPOConfig

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
    prompts: Sequence[hf_data.DataPrompt],
    cfg: HFGRPOConfig,
    score_fn: Callable[[str, object], float],
    step: int,
) -> dict[str, float]:
    """verl's validation metrics of `policy` on `prompts` (scored by `score_fn(text, row)`)."""
    kw = cfg.rollout.val_kwargs
    temperature = kw.temperature if kw.do_sample else 0.0  # 0: greedy, in both engines
    gen = torch.Generator().manual_seed(val_seed(cfg.trainer.seed, step))
    chunk = cfg.data.train_batch_size  # bounds memory on a large validation set
    t0 = time.perf_counter()
    scores: list[float] = []
    policy.eval()
    with torch.no_grad():
        for start in range(0, len(prompts), chunk):
            part = prompts[start : start + chunk]
            ids = [list(p.ids) for p in part]
            responses = policy.generate(ids, kw.n, temperature, cfg.data.max_response_length, gen)
            scores += [
                float(score_fn(policy.decode(r), part[i // kw.n].answer)) for i, r in enumerate(responses)
            ]
    out = M.validation_metrics(scores, [p.row.data_source for p in prompts], kw.n)
    out[M.TIME_VAL] = time.perf_counter() - t0
    return out
