"""Decisions judged by an outcome the rules never see (a held-out eval, e.g. a val key).

A backtest that calls a stop "false" only when the same rules, applied to the full run,
call it healthy measures agreement with itself. Here each run has an independent outcome:
the best (or final) value of a key over the run, higher is better, and the step it was
reached at (the checkpoint to keep). Recorded evals are sparse: only the reports that
carry the key count.

- A policy *keeps* a run's outcome when it let the run finish or stopped it at or after
  its best step (with best checkpoints kept, the best model survives the stop).
- outcome-regret = the best outcome overall − the best outcome the policy kept.
- outcome-false-stops = runs stopped before their best step whose outcome is within
  `within` of the best overall (the runs the user wanted).

Pure: runs and stop steps in, numbers out (backtest and calibrate print them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Optional

from archer_sweep.results.runs import Run

REDUCES = ("best", "last")


@dataclass(frozen=True)
class OutcomeSpec:
    key: str
    """The outcome metric (higher is better), e.g. `val-core/<data_source>/reward/mean@1`."""
    within: float = 0.0
    """Runs whose outcome is at most this far below the best overall are "top" runs."""
    reduce: str = "best"
    """`best`: the run's best value (at its best step); `last`: its final value."""

    def __post_init__(self) -> None:
        if self.reduce not in REDUCES:
            raise ValueError(f"outcome reduce must be one of {REDUCES}: {self.reduce=}")
        if not (math.isfinite(self.within) and self.within >= 0):
            raise ValueError(f"within must be a finite number >= 0: {self.within=}")


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    value: Optional[float]
    """None when the run never reports a finite value of the key."""
    step: Optional[int]
    """The step of that value: where its checkpoint is."""


def run_outcome(run: Run, spec: OutcomeSpec) -> RunOutcome:
    pairs = [(s, y) for s, y in zip(*run.series(spec.key)) if math.isfinite(y)]
    if not pairs:
        return RunOutcome(run.run_id, None, None)
    if spec.reduce == "last":
        step, value = pairs[-1]
        return RunOutcome(run.run_id, value, step)
    step, value = max(pairs, key=lambda p: (p[1], -p[0]))  # the first step of the best value
    return RunOutcome(run.run_id, value, step)


def best_overall(outcomes: Sequence[RunOutcome]) -> Optional[float]:
    vals = [o.value for o in outcomes if o.value is not None]
    return max(vals) if vals else None


def top_runs(outcomes: Sequence[RunOutcome], within: float) -> list[str]:
    """Ids of the runs within `within` of the best outcome (best first)."""
    best = best_overall(outcomes)
    if best is None:
        return []
    top = [o for o in outcomes if o.value is not None and best - o.value <= within + 1e-12]
    return [o.run_id for o in sorted(top, key=lambda o: -o.value)]  # type: ignore[operator]


def kept(o: RunOutcome, stop_step: Optional[int]) -> bool:
    """Does a stop at `stop_step` (None: ran to its end) keep the run's outcome?"""
    return o.value is not None and (stop_step is None or (o.step is not None and o.step <= stop_step))


@dataclass(frozen=True)
class OutcomeSummary:
    best: Optional[float]
    """Best outcome overall (no stopping)."""
    kept_best: Optional[float]
    """Best outcome among the runs the policy kept."""
    false_stops: list[str] = field(default_factory=list)
    """Top runs (within `within` of the best) stopped before their best step."""

    @property
    def regret(self) -> Optional[float]:
        """None without outcomes; inf when the policy kept none."""
        if self.best is None:
            return None
        return math.inf if self.kept_best is None else self.best - self.kept_best


def summarize(
    outcomes: Sequence[RunOutcome], stops: Mapping[str, Optional[int]], within: float
) -> OutcomeSummary:
    """Score one policy's stops (run id -> stop step, None = ran to its end)."""
    kept_values = [o.value for o in outcomes if kept(o, stops.get(o.run_id))]
    top = set(top_runs(outcomes, within))
    false = [o.run_id for o in outcomes if o.run_id in top and not kept(o, stops.get(o.run_id))]
    return OutcomeSummary(best_overall(outcomes), max(kept_values) if kept_values else None, false)  # type: ignore[type-var]
