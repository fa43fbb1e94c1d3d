"""What Optuna receives for a trial: its objective value (one reduction of its reported
values) and the rules constraint, shared by the live searcher and every offline reader
(backtest, next, report, hunt)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Optional

REDUCTIONS = ("last", "best", "mean_last_5")

CONSTRAINT_KEY = "rules"
"""Name of the one constraint on every trial (`Trial.set_constraint`); constrained TPE / GP read it."""
VIOLATED, SATISFIED = 1.0, -1.0
"""Optuna's convention: a constraint value ≤ 0 is satisfied. Healthy satisfies, any other verdict violates."""
VERDICT_ATTR = "archer_verdict"
LOST_ATTR = "archer_lost"
"""User attr of an Optuna trial asked after the searcher's last checkpoint and lost with the
driver: marked FAIL on resume and asked again, so it is no config of the sweep."""
"""Optuna user attr holding a trial's verdict row ({verdict, rule, step, metric, value})."""


def constraint_for(verdict: str) -> float:
    return SATISFIED if verdict == "healthy" else VIOLATED


def optuna_outcome(verdict: str, value: Optional[float]) -> tuple[str, Optional[float]]:
    """(Optuna `TrialState` name, value to tell) for a verdict and the trial's objective:
    `error` → FAIL; `stopped:*` → PRUNED without a value (TPE ranks it by its last report);
    any other verdict → COMPLETE with its objective, FAIL when it has no finite one.
    The live searcher, `next` and the benchmarks all tell Optuna through this."""
    if verdict == "error":
        return "FAIL", None
    if verdict.startswith("stopped:"):
        return "PRUNED", None
    if value is None or not math.isfinite(value):
        return "FAIL", None
    return "COMPLETE", float(value)


def reduce_objective(values: Iterable[float], reduce: str = "last", mode: str = "max") -> Optional[float]:
    """`last`, `best` (by `mode`) or `mean_last_5` of the finite values; None when there are none."""
    ys = [float(y) for y in values if isinstance(y, (int, float)) and math.isfinite(y)]
    if not ys:
        return None
    if reduce == "best":
        return max(ys) if mode == "max" else min(ys)
    if reduce == "mean_last_5":
        return sum(ys[-5:]) / len(ys[-5:])
    return ys[-1]


def result_step(
    steps: Sequence[int], values: Sequence[float], reduce: str = "last", mode: str = "max"
) -> Optional[int]:
    """The step that is the trial's result: with `best`, the first step of the best finite
    value (its checkpoint is the one kept); otherwise the last step with a finite value."""
    pairs = [(s, float(y)) for s, y in zip(steps, values) if isinstance(y, (int, float)) and math.isfinite(y)]
    if not pairs:
        return None
    if reduce != "best":
        return pairs[-1][0]
    sign = 1.0 if mode == "max" else -1.0
    return max(pairs, key=lambda p: (sign * p[1], -p[0]))[0]
