"""Monitoring rules as pure functions: the seed's "Good / Bad (needs v3)" table.

A `bad` rule stops a trial when its condition holds for `patience` consecutive
reports after `after_step` (or at the first report at/after `at_step`). A `good`
rule is judged when the trial finishes: at `at_step` (first report at/after it) or,
without `at_step`, at the last report. No Ray, no I/O: the online scheduler, the
offline backtest and the tests share this one code path.

NaN policy (a missing or NaN value is never silently "fine"):
- `on_nan: stop` (default): a non-finite value of the rule's metric once the rule
  is active stops the trial with verdict `stopped:nan`.
- `on_nan: skip`: the report is ignored by this rule (its patience streak is kept);
  for metrics that are legitimately undefined, e.g. `response_length/pos/mean`
  when no response is correct (the score rules cover that case).
- `on_nan: fire`: a non-finite value counts as the rule's condition holding.
A good rule whose metric is missing/NaN at judgement time is missed (unhealthy).

`window: N` makes a rule judge the mean of the finite values of its metric over the last
N reports (up to the judged one) instead of that report alone: for noisy batch metrics.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Optional

from archer_sweep.values import is_number

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
STEP_KEY = "step"

NAN_VERDICT = "stopped:nan"


@dataclass(frozen=True)
class Rule:
    name: str
    metric: str
    verdict: Literal["bad", "good"]
    op: Optional[str] = None
    value: Optional[float] = None
    between: Optional[tuple[float, float]] = None
    after_step: int = 0
    at_step: Optional[int] = None
    patience: int = 1
    on_nan: Literal["stop", "skip", "fire"] = "stop"
    window: int = 1
    """Judge the mean of the metric over the last `window` reports (finite values only),
    e.g. a score that one batch of prompts makes noisy."""

    def __post_init__(self) -> None:
        if (self.op is None) == (self.between is None):
            raise ValueError(f"rule {self.name!r}: give exactly one of op/value or between")
        if self.op is not None and (self.op not in OPS or self.value is None):
            raise ValueError(f"rule {self.name!r}: {self.op=} needs one of {list(OPS)} and a value")
        if self.between is not None and not self.between[0] <= self.between[1]:
            raise ValueError(f"rule {self.name!r}: between={self.between} needs low <= high")
        if self.patience < 1:
            raise ValueError(f"rule {self.name!r}: {self.patience=} must be >= 1")
        if self.window < 1:
            raise ValueError(f"rule {self.name!r}: {self.window=} must be >= 1")

    def holds(self, x: float) -> bool:
        """The rule's condition on a finite value (for bad rules: the bad thing)."""
        if self.between is not None:
            return self.between[0] <= x <= self.between[1]
        return OPS[self.op](x, self.value)  # type: ignore[index]

    def describe(self) -> str:
        cond = (
            f"in [{self.between[0]:g}, {self.between[1]:g}]" if self.between else f"{self.op} {self.value:g}"
        )
        when = (
            f"at step {self.at_step}"
            if self.at_step is not None
            else f"after step {self.after_step}"
            if self.after_step
            else "any step"
            if self.verdict == "bad"
            else "at the last step"
        )
        pat = f", {self.patience} reports in a row" if self.patience > 1 else ""
        metric = f"mean of last {self.window} {self.metric}" if self.window > 1 else self.metric
        return f"{metric} {cond} ({when}{pat})"


@dataclass(frozen=True)
class Verdict:
    verdict: str
    """`stopped:<rule>`, `stopped:nan`, `healthy`, `unhealthy:<rule>`, `error`, `stopped:timeout`."""
    rule: Optional[str] = None
    step: Optional[int] = None
    metric: Optional[str] = None
    value: Optional[float] = None
    reason: Optional[str] = None

    @property
    def stopped(self) -> bool:
        return self.verdict.startswith("stopped:")

    def as_dict(self) -> dict:
        value = self.value
        if value is not None and not math.isfinite(value):
            value = str(value)  # JSON has no NaN; keep it readable and loadable
        d = {
            "verdict": self.verdict,
            "rule": self.rule,
            "step": self.step,
            "metric": self.metric,
            "value": value,
        }
        if self.reason:
            d["reason"] = self.reason
        return d


def _value(metrics: Mapping[str, float], key: str) -> float:
    v = metrics.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


@dataclass
class CriteriaTracker:
    """Incremental evaluation of a rule list over one trial's reports (O(rules) per report)."""

    rules: Sequence[Rule]
    objective: Optional[str] = None
    """Objective metric: a non-finite value of it stops the trial as `stopped:nan`."""
    streaks: dict[str, int] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    verdict: Optional[Verdict] = None
    keep_history: bool = True

    def __post_init__(self) -> None:
        if not self.keep_history and any(r.window > 1 for r in self.rules):
            raise ValueError("rules with window > 1 need keep_history=True")

    def update(self, metrics: Mapping[str, float]) -> Optional[Verdict]:
        """Feed one report; return a `stopped:*` verdict the first time a bad rule fires."""
        if self.verdict is not None:
            return self.verdict
        step = int(metrics.get(STEP_KEY, len(self.history) + 1))
        if self.keep_history:
            self.history.append({k: metrics[k] for k in self._watched() if k in metrics} | {STEP_KEY: step})
        if self.objective and not is_number(metrics.get(self.objective)):
            self.verdict = Verdict(
                NAN_VERDICT,
                rule=None,
                step=step,
                metric=self.objective,
                value=_value(metrics, self.objective),
                reason=f"objective {self.objective} is not finite",
            )
            return self.verdict
        for rule in self.rules:
            if rule.verdict != "bad":
                continue
            v = self._check_bad(rule, step, metrics)
            if v is not None:
                self.verdict = v
                return v
        return None

    def _check_bad(self, rule: Rule, step: int, metrics: Mapping[str, float]) -> Optional[Verdict]:
        if rule.at_step is not None:
            if step < rule.at_step or self.streaks.get(rule.name, 0) < 0:
                return None
            self.streaks[rule.name] = -1  # judged once
        elif step <= rule.after_step:
            return None
        x = _judged_value(rule, self.history if self.keep_history else [metrics])
        if not math.isfinite(x):
            if rule.on_nan == "stop":
                return Verdict(
                    NAN_VERDICT,
                    rule=rule.name,
                    step=step,
                    metric=rule.metric,
                    value=x,
                    reason=f"{rule.metric} is {'missing' if rule.metric not in metrics else x}",
                )
            if rule.on_nan == "skip":
                return None
            hit = True
        else:
            hit = rule.holds(x)
        if rule.at_step is not None:
            return Verdict(f"stopped:{rule.name}", rule.name, step, rule.metric, x) if hit else None
        streak = self.streaks.get(rule.name, 0) + 1 if hit else 0
        self.streaks[rule.name] = streak
        if streak >= rule.patience:
            return Verdict(f"stopped:{rule.name}", rule.name, step, rule.metric, x)
        return None

    def _watched(self) -> set[str]:
        keys = {r.metric for r in self.rules}
        return keys | ({self.objective} if self.objective else set())

    def finish(self, history: Optional[Sequence[Mapping[str, float]]] = None) -> Verdict:
        """Final verdict of a trial that ran to its end (good rules judged here)."""
        if self.verdict is not None:
            return self.verdict
        hist = list(history) if history is not None else self.history
        last_step = int(hist[-1].get(STEP_KEY, len(hist))) if hist else 0
        for rule in self.rules:
            if rule.verdict != "good":
                continue
            at = _report_index(rule, hist)
            report = hist[at] if at is not None else None
            x = _judged_value(rule, hist[: at + 1]) if at is not None else math.nan
            step = int(report.get(STEP_KEY, last_step)) if report is not None else last_step
            if not math.isfinite(x) or not rule.holds(x):
                self.verdict = Verdict(
                    f"unhealthy:{rule.name}",
                    rule.name,
                    step,
                    rule.metric,
                    x,
                    reason=None if report is not None else f"no report at or after step {rule.at_step}",
                )
                return self.verdict
        self.verdict = Verdict("healthy", step=last_step)
        return self.verdict


def _judged_value(rule: Rule, reports: Sequence[Mapping[str, float]]) -> float:
    """The value a rule judges, `reports` ending at the judged one: that report's value, or
    with `window > 1` the mean of the finite values in the last `window` reports (NaN if none)."""
    if rule.window == 1:
        return _value(reports[-1], rule.metric)
    values = [x for x in (_value(h, rule.metric) for h in reports[-rule.window :]) if math.isfinite(x)]
    return sum(values) / len(values) if values else math.nan


def _report_index(rule: Rule, hist: Sequence[Mapping[str, float]]) -> Optional[int]:
    """Index of the report a good rule judges: the first at/after `at_step`, else the last."""
    if not hist:
        return None
    if rule.at_step is None:
        return len(hist) - 1
    return next((i for i, h in enumerate(hist) if int(h.get(STEP_KEY, 0)) >= rule.at_step), None)


def evaluate(
    rules: Sequence[Rule],
    history: Iterable[Mapping[str, float]],
    objective: Optional[str] = None,
    finished: bool = True,
) -> Verdict | None:
    """Replay a whole metric history: the verdict a live trial would have received.

    Returns the stop verdict if a bad rule fires, else (when `finished`) the final
    verdict, else None (still running, nothing fired).
    """
    tracker = CriteriaTracker(list(rules), objective=objective)
    for report in history:
        v = tracker.update(report)
        if v is not None:
            return v
    return tracker.finish() if finished else None
