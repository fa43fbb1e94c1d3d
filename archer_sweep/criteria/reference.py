"""Thresholds relative to the run itself, pure: `relative_to: start` and `drop` / `drop_ratio`.

A fixed threshold describes one model (the seed's entropy 1–7 is Qwen3-0.6B-Base with an
entropy bonus; Qwen3-1.7B-Base falls from ~1.9 to 0.1 while its eval keeps improving).
Two references carry over to the next model:

- `relative_to: start`: `value` (and `between`) multiply the metric's first finite
  reported value, e.g. `actor/entropy < 0.05` × start.
- `drop: X` (bad rules): the judged value is X below the best judged value so far (the
  max: a drop is a fall); `drop_ratio: r`: r × |best| below it. For "eval peaked, then
  fell": stop after the fall (the best step's checkpoint is what to keep).

`Reference` is what a tracker keeps per rule; `condition` judges a value against it and
`reason` writes the verdict's reason, naming the reference
(`actor/entropy 0.12 < 0.05 × start 1.95`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

START = "start"
RELATIVE_TO = (START,)
"""What `relative_to` may name."""


@dataclass
class Reference:
    """The run's own reference values for one rule."""

    start: float = math.nan
    """First finite reported value of the metric."""
    best: float = math.nan
    """Largest judged value so far (the window mean for `window > 1`)."""
    best_step: Optional[int] = None

    def see_start(self, x: float) -> None:
        if math.isnan(self.start) and math.isfinite(x):
            self.start = x

    def see_judged(self, x: float, step: int) -> None:
        if math.isfinite(x) and (math.isnan(self.best) or x > self.best):
            self.best, self.best_step = x, step


def uses_reference(rule: Any) -> bool:
    """Does the rule judge against the run's own values (start or best)?"""
    return rule.relative_to is not None or is_drop(rule)


def is_drop(rule: Any) -> bool:
    return rule.drop is not None or rule.drop_ratio is not None


def start_of(reports: Sequence[Mapping[str, Any]], metric: str) -> float:
    """The first finite value of `metric` in `reports` (NaN if none)."""
    for r in reports:
        v = r.get(metric)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            return float(v)
    return math.nan


def fall(rule: Any, ref: Reference) -> float:
    """The fall from the best that fires a drop rule (NaN before a best is known)."""
    if rule.drop is not None:
        return float(rule.drop)
    return float(rule.drop_ratio) * abs(ref.best)


def condition(rule: Any, x: float, ref: Reference, holds) -> Optional[bool]:
    """Does the rule's condition hold for the finite value `x` against `ref`? None while the
    reference is unknown (no start or best yet: the report is not judged).
    `holds(x, value, between)` is the rule's fixed comparison."""
    if is_drop(rule):
        if math.isnan(ref.best):
            return None
        return ref.best - x >= fall(rule, ref)
    if math.isnan(ref.start):
        return None
    value, between = scaled(rule, ref.start)
    return holds(x, value, between)


def scaled(rule: Any, start: float) -> tuple[Optional[float], Optional[tuple[float, float]]]:
    """(value, between) multiplied by `start` (a negative start flips the range's ends)."""
    value = rule.value * start if rule.value is not None else None
    between = None
    if rule.between is not None:
        lo, hi = rule.between[0] * start, rule.between[1] * start
        between = (min(lo, hi), max(lo, hi))
    return value, between


def reason(rule: Any, x: float, ref: Reference, missed: bool = False) -> str:
    """The verdict reason of a rule judged against its reference (`missed`: a good rule's
    condition did not hold)."""
    if is_drop(rule):
        size = f"drop {rule.drop:g}" if rule.drop is not None else f"drop_ratio {rule.drop_ratio:g}"
        return (
            f"{rule.metric} {x:.3g} fell {ref.best - x:.3g} from its best {ref.best:.3g} "
            f"(step {ref.best_step}; {size})"
        )
    if rule.between is not None:
        lo, hi = rule.between
        where = "not in" if missed else "in"
        return f"{rule.metric} {x:.3g} {where} [{lo:g}, {hi:g}] × start {ref.start:.3g}"
    op = f"not {rule.op}" if missed else rule.op
    return f"{rule.metric} {x:.3g} {op} {rule.value:g} × start {ref.start:.3g}"


def describe(rule: Any) -> str:
    """The condition part of `Rule.describe` for a relative or drop rule."""
    if rule.drop is not None:
        return f"falls {rule.drop:g} below its best"
    if rule.drop_ratio is not None:
        return f"falls {rule.drop_ratio:g} × best below its best"
    if rule.between is not None:
        return f"in [{rule.between[0]:g}, {rule.between[1]:g}] × start"
    return f"{rule.op} {rule.value:g} × start"
