"""`Run`: one past run in memory (params, one dict per report, verdict), and the small
helpers every reader of runs shares (value coercion, dotted params, step order)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Optional

from archer_sweep.values import to_float
from trainable import metrics as M

log = logging.getLogger(__name__)


@dataclass
class Run:
    run_id: str
    params: dict[str, Any] = field(default_factory=dict)
    steps: list[dict[str, float]] = field(default_factory=list)
    verdict: Optional[dict] = None
    source: str = ""

    @property
    def last_step(self) -> int:
        return int(self.steps[-1][M.STEP]) if self.steps else 0

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """(steps, values) of one metric; reports without it are left out."""
        xs, ys = [], []
        for s in self.steps:
            v = s.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                xs.append(int(s[M.STEP]))
                ys.append(float(v))
        return xs, ys

    @property
    def verdict_name(self) -> str:
        return (self.verdict or {}).get("verdict") or "unknown"


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """Nested dict -> dotted keys (the spec's `space` keys)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def metrics_of(d: dict) -> dict[str, float]:
    out = {}
    for k, v in d.items():
        x = to_float(v)
        if x is not None:
            out[k] = x
    return out


def finalize(run: Run) -> Run:
    """Sort steps, drop duplicate steps (last wins) and warn about gaps; the run is kept."""
    by_step: dict[int, dict] = {}
    for s in run.steps:
        by_step[int(s[M.STEP])] = s
    run.steps = [by_step[k] for k in sorted(by_step)]
    steps = sorted(by_step)
    if len(steps) > 2:
        gaps = [b - a for a, b in zip(steps, steps[1:])]
        stride = min(gaps)
        holes = [a for a, g in zip(steps, gaps) if g != stride]
        if holes:
            log.warning(
                "run %s (%s): missing steps after step(s) %s; kept as is",
                run.run_id,
                run.source,
                ", ".join(map(str, holes[:5])),
            )
    return run
