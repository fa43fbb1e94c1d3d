"""The objective value Optuna receives for a trial: one reduction of its reported values,
shared by the live searcher and every offline reader (backtest, next, report, hunt)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Optional

REDUCTIONS = ("last", "best", "mean_last_5")


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
