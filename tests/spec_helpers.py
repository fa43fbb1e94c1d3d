"""A valid base spec with known line numbers, and helpers to break one line of it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

BASE = """\
name: entropy
trainable:
  backend: tiny
  config:
    algorithm: {entropy_coeff: 0.005, kl_loss_coef: 0.01}
    trainer: {total_steps: 60}
search:
  metric: critic/score/mean
  mode: max
  num_samples: 8
  max_concurrent: 2
  sampler: {type: tpe, seed: 0}
  space:
    algorithm.entropy_coeff: {type: loguniform, low: 1.0e-4, high: 5.0e-2}
    algorithm.kl_loss_coef: {type: loguniform, low: 1.0e-3, high: 1.0e-1}
  points_to_evaluate: [{algorithm.entropy_coeff: 0.01}, {algorithm.entropy_coeff: 0.005}]
criteria:
  - {name: entropy_high, metric: actor/entropy, op: ">", value: 7, after_step: 5, verdict: bad}
  - {name: guessing, metric: response_length/pos/mean, op: "<", value: 20, after_step: 5, patience: 3, verdict: bad}
  - {name: entropy_band, metric: actor/entropy, between: [3, 6], at_step: 50, verdict: good}
resources: {cpu: 1, gpu: 0}
storage: {path: results}
ray: {address: null, num_cpus: 2, num_gpus: 0}
"""


def edit(changes: Optional[dict[int, Optional[str]]] = None, base: str = BASE) -> str:
    """BASE with 1-based line N replaced by changes[N] (may hold several lines; None drops it)."""
    lines: list[Optional[str]] = list(base.splitlines())
    for n, text in (changes or {}).items():
        lines[n - 1] = text
    return "\n".join(line for line in lines if line is not None) + "\n"


def write(directory: Path, text: str, name: str = "s.yaml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path
