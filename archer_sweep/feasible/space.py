"""The unit cube the feasible-region model works in: each searched parameter as a fraction
of its range (log scale for log distributions), random candidates in it, and the way back
to readable values. Pure: distributions in, numbers out."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Optional

import numpy as np

from archer_sweep.feasible.model import Evidence

CANDIDATES = 2048
"""Random candidates scored per call (plus the past healthy points' neighbourhoods)."""


def numeric(space: Mapping[str, Any]) -> bool:
    return all(hasattr(d, "low") and hasattr(d, "high") for d in space.values())


def unit(key: str, value: Any, space: Mapping[str, Any]) -> float:
    """A parameter as a fraction of its range (log scale for log distributions); a value
    outside the range stays outside [0, 1]; 0 for a choice or a non-number."""
    d = space[key]
    if not hasattr(d, "low") or not isinstance(value, (int, float)):
        return 0.0
    lo, hi, x = float(d.low), float(d.high), float(value)
    if getattr(d, "log", False):
        lo, hi, x = math.log(lo), math.log(hi), math.log(max(x, 1e-300))
    return (x - lo) / (hi - lo) if hi > lo else 0.0


def to_unit(key: str, value: Any, space: Mapping[str, Any]) -> float:
    """`unit` clamped to [0, 1]: the model's coordinates for a past trial."""
    return min(max(unit(key, value, space), 0.0), 1.0)


def from_unit(key: str, u: float, space: Mapping[str, Any]) -> Any:
    d = space[key]
    lo, hi = float(d.low), float(d.high)
    x = (
        math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
        if getattr(d, "log", False)
        else lo + u * (hi - lo)
    )
    step = getattr(d, "step", None)
    if step:
        x = lo + round((x - lo) / step) * step
    if isinstance(d.low, int) and isinstance(d.high, int):
        return int(round(x))
    return float(f"{min(max(x, lo), hi):.4g}")  # proposals a person can read and type


def candidates(ev: Evidence, d: int, seed: Optional[int]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.random((CANDIDATES, d))
    good = ev.x[ev.healthy > 0]
    if len(good):  # local moves around healthy points, so a refinement is always on offer
        near = good[rng.integers(len(good), size=CANDIDATES // 4)] + rng.normal(0, 0.05, (CANDIDATES // 4, d))
        X = np.vstack([X, np.clip(near, 0, 1)])
    return X
