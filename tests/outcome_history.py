"""Synthetic recorded runs of two "models" with different entropy scales, with an eval outcome.

Each model has three top runs (entropy falls to about half its start while the eval keeps
rising), a middling run, a collapse (entropy to a tenth of its start, eval falls) and a
runaway (entropy to three times its start, eval falls). Model A starts at entropy 3,
model B at 1: the same story on another scale, as Qwen3-0.6B and -1.7B tell it. Reports
are sparse like a real diary: milestones every 5 steps, the eval every 10 only.
"""

from __future__ import annotations

import json
from pathlib import Path

from trainable import metrics as M

VAL = M.TINY_VAL_SCORE
STEPS = range(5, 61, 5)


def _run(model: str, kind: str, start: float, t: int) -> tuple[float, float]:
    """(entropy, eval) of a run at step t."""
    x = t / 60
    if kind.startswith("top"):
        i = int(kind[3:])
        return start * (1 - 0.5 * x * (1 + 0.05 * i)), 0.3 + (0.3 + 0.02 * i) * x
    if kind == "mid":
        return start * (1 - 0.3 * x), 0.3 + 0.15 * x
    if kind == "collapse":
        return start * max(0.1, 1 - 1.8 * x), 0.3 - 0.1 * x
    return start * min(3.0, 1 + 4 * x), 0.3 - 0.25 * x  # runaway


KINDS = ("top0", "top1", "top2", "mid", "collapse", "runaway")
SCALES = {"A": 3.0, "B": 1.0}
COEFF = dict(zip(KINDS, (0.001, 0.002, 0.003, 0.004, 0.005, 0.006)))


def lines(model: str) -> list[dict]:
    out = []
    for kind in KINDS:
        for t in STEPS:
            ent, val = _run(model, kind, SCALES[model], t)
            metrics = {M.ENTROPY: ent, M.SCORE_MEAN: val}
            if t % 10 == 0:
                metrics[VAL] = val
            params = {"algorithm.entropy_coeff": COEFF[kind]}  # distinct: replay snaps to each run
            out.append({"run": f"{model}-{kind}", "step": t, "params": params, "metrics": metrics})
    return out


def write(path: Path, *models: str) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for m in models for x in lines(m)))
    return path


SPEC = """name: outcomes
trainable: {backend: tiny, config: {trainer: {total_steps: 60, test_freq: 10}, data: {val_size: 16}}}
search: {metric: critic/score/mean, mode: max, num_samples: 1}
criteria:
  # the seed's thresholds, fitted on another model
  - {name: entropy_high, metric: actor/entropy, op: ">", value: 7, after_step: 5, verdict: bad}
  - {name: entropy_low, metric: actor/entropy, op: "<", value: 1, after_step: 5, verdict: bad}
"""


def write_spec(path: Path, text: str = SPEC) -> Path:
    path.write_text(text)
    return path
