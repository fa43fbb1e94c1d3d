"""Where is a metric heading? A robust straight line through its last reports, pure Python.

`theil_sen` fits the line (median of pairwise slopes: one outlier batch moves neither the
slope nor the level, unlike least squares) with Sen's rank-based confidence bounds on the
slope; `crossing` says when that line reaches a threshold, at the fitted slope and at
each bound. The forecasting bad rules of `archer_sweep.criteria` stop on it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Optional


@dataclass(frozen=True)
class Forecast:
    """Stop when the trend of the last `window` observed values will cross the threshold
    within `horizon` steps, even at the slowest slope the `confidence` allows."""

    window: int = 8
    """Observed reports after `after_step` the trend is fitted to (the last ones)."""
    horizon: int = 10
    """Steps ahead: stop if the threshold is crossed by the current step + horizon."""
    confidence: float = 0.9
    """One-sided confidence of the slope bound (Sen's rank interval of the Theil–Sen slope)."""

    def __post_init__(self) -> None:
        if self.window < 3:
            raise ValueError(f"forecast: {self.window=} must be >= 3")
        if self.horizon < 1:
            raise ValueError(f"forecast: {self.horizon=} must be >= 1")
        if not 0.5 <= self.confidence < 1:
            raise ValueError(f"forecast: {self.confidence=} must be in [0.5, 1)")


class Line(NamedTuple):
    t0: float
    """Median step of the points: the line pivots here."""
    level: float
    """Fitted value at t0."""
    slope: float
    slope_lo: float
    slope_hi: float
    """The slope bounds: each holds the true slope with the one-sided confidence asked for."""


def theil_sen(ts: Sequence[float], ys: Sequence[float], confidence: float) -> Line:
    """Theil (1950) / Sen (1968) line through (ts, ys) with one-sided `confidence` slope bounds:
    the order statistics of the sorted pairwise slopes at (N ∓ C)/2, C = z·sd of Kendall's S
    (no-ties variance n(n−1)(2n+5)/18), N the number of pairs."""
    n = len(ts)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n) if ts[j] != ts[i]]
    if not pairs:
        raise ValueError(f"theil_sen needs two distinct steps: {ts=}")
    slopes = sorted((ys[j] - ys[i]) / (ts[j] - ts[i]) for i, j in pairs)
    m = len(slopes)
    slope, t0 = statistics.median(slopes), statistics.median(ts)
    level = statistics.median(y - slope * (t - t0) for t, y in zip(ts, ys))
    c = statistics.NormalDist().inv_cdf(confidence) * math.sqrt(n * (n - 1) * (2 * n + 5) / 18)
    lo = min(max(math.floor((m - c) / 2), 1), m)  # 1-based ranks, as Sen writes them
    hi = max(min(math.ceil((m + c) / 2) + 1, m), 1)
    return Line(t0, level, slope, slopes[lo - 1], slopes[hi - 1])


class Crossing(NamedTuple):
    step: float
    """When the fitted line reaches the threshold."""
    early: float
    """... at the steepest slope the confidence allows."""
    late: float
    """... at the slowest: the threshold is reached by then with that confidence."""


def crossing(
    points: Sequence[tuple[float, float]], threshold: float, rising: bool, confidence: float, after: float
) -> Optional[Crossing]:
    """When the trend of `points` (step, value) reaches `threshold` going up (`rising`) or
    down, no earlier than step `after` + 1 (the line may pass it while the last value has
    not); None when even the slowest slope the confidence allows does not head there."""
    sign = 1.0 if rising else -1.0  # a falling trend is a rising one, mirrored
    line = theil_sen([t for t, _ in points], [sign * y for _, y in points], confidence)
    if line.slope_lo <= 0:
        return None  # not surely heading for the threshold

    def at(slope: float) -> float:
        return max(line.t0 + (sign * threshold - line.level) / slope, after + 1.0)

    return Crossing(at(max(line.slope, line.slope_lo)), at(line.slope_hi), at(line.slope_lo))


def forecast(
    points: Sequence[tuple[int, float]], threshold: float, rising: bool, f: Forecast, step: int
) -> Optional[str]:
    """`forecast: crosses 7 at step ~19 (band 16–23)` when the last `f.window` points say the
    threshold is reached by `step + f.horizon` even at the slowest slope `f.confidence`
    allows; None with fewer points or no such trend."""
    if len(points) < f.window:
        return None
    c = crossing([(float(s), y) for s, y in points[-f.window :]], threshold, rising, f.confidence, step)
    if c is None or c.late > step + f.horizon:
        return None
    return f"forecast: crosses {threshold:g} at step ~{round(c.step)} (band {math.floor(c.early)}–{math.ceil(c.late)})"
