"""Monitoring rules as pure functions: the seed's "Good / Bad (needs v3)" table.

A `bad` rule stops a trial when its condition holds for `patience` consecutive
reports after `after_step` (or at the first report at/after `at_step`). A `good`
rule is judged at `at_step` (first report at/after it) or, without `at_step`, at the
last report. A good rule judged at `at_step` that misses decides the verdict there: with
`stop_when_decided` (the default) the trial stops at that step as `unhealthy:<rule>`
(reason `DECIDED`) instead of running on for nothing. No Ray, no I/O: the online
scheduler, the offline backtest and the tests share this one code path.

Observed, missing, NaN:
- A metric absent from a report is *not observed* there: its rules skip that report (a
  patience streak neither grows nor breaks, `at_step` waits for the next report that has
  it, `window` averages the reports that have it).
- A watched key the trial has never reported: in a live trial (`recorded=False`) a rule
  that needs it stops the trial as `stopped:nan` (a typo in the spec or a misconfigured
  trainer must fail loudly); in a recorded history (`recorded=True`: backtest, next, the
  replay backend) the rules on that key do not apply to that run (`unreported` names
  them, so that callers can warn).
- An explicit non-finite value (NaN, inf) is never silently "fine":
  - `on_nan: stop` (default): once the rule is active it stops the trial as `stopped:nan`.
  - `on_nan: skip`: the report is ignored by this rule (its patience streak is kept);
    for metrics that are legitimately undefined, e.g. `response_length/pos/mean`
    when no response is correct (the score rules cover that case).
  - `on_nan: fire`: it counts as the rule's condition holding.
  A good rule whose value is non-finite when judged is missed (unhealthy).

`window: N` makes a rule judge the mean of the finite values of its metric in the reports
of the last N steps (up to the judged one) instead of that report alone: for noisy batch
metrics. On a history that reports every step these are the last N reports.

`relative_to: start` (thresholds × the run's first value) and `drop` / `drop_ratio` (a fall
from the run's best) are judged against the run's own reference: see `reference.py`.

`forecast` (bad rules with <, <=, >, >=) stops a runaway before it crosses the line: see
`Forecast` and `forecast_crossing`. Its verdict is the rule's own `stopped:<rule>`, with a
reason such as `forecast: crosses 7 at step ~19 (band 16–23)`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Optional

from archer_sweep.criteria import reference, trend
from archer_sweep.criteria.trend import Forecast
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
FORECAST_OPS = (">", ">=", "<", "<=")
"""Operators with a direction a trend can run towards."""

NAN_VERDICT = "stopped:nan"
DECIDED = "decided: stopped at the judged step (scheduler.stop_when_decided)"
"""Reason of an `unhealthy:<rule>` verdict that ended its trial at the good rule's `at_step`."""


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
    """Judge the mean of the metric over the last `window` steps (finite values only),
    e.g. a score that one batch of prompts makes noisy."""
    forecast: Optional[Forecast] = None
    """Bad rules: also stop when the trend says the threshold will be crossed soon."""
    relative_to: Optional[str] = None
    """`start`: `value` / `between` multiply the metric's first finite reported value."""
    drop: Optional[float] = None
    """Bad rules: fire when the judged value is `drop` below its best so far."""
    drop_ratio: Optional[float] = None
    """Bad rules: fire when the judged value is `drop_ratio` × |best| below its best so far."""

    def __post_init__(self) -> None:
        conditions = [self.op, self.between, self.drop, self.drop_ratio]
        if sum(c is not None for c in conditions) != 1:
            raise ValueError(f"rule {self.name!r}: give exactly one of op/value, between, drop or drop_ratio")
        if self.relative_to is not None and self.relative_to not in reference.RELATIVE_TO:
            raise ValueError(
                f"rule {self.name!r}: {self.relative_to=} must be one of {reference.RELATIVE_TO}"
            )
        if reference.is_drop(self) and (self.verdict != "bad" or self.relative_to is not None):
            raise ValueError(f"rule {self.name!r}: drop / drop_ratio need a bad rule without relative_to")
        if (self.drop is not None and self.drop <= 0) or (
            self.drop_ratio is not None and not 0 < self.drop_ratio <= 1
        ):
            raise ValueError(f"rule {self.name!r}: {self.drop=} must be > 0, {self.drop_ratio=} in (0, 1]")
        if self.op is not None and (self.op not in OPS or self.value is None):
            raise ValueError(f"rule {self.name!r}: {self.op=} needs one of {list(OPS)} and a value")
        if self.between is not None and not self.between[0] <= self.between[1]:
            raise ValueError(f"rule {self.name!r}: between={self.between} needs low <= high")
        if self.patience < 1:
            raise ValueError(f"rule {self.name!r}: {self.patience=} must be >= 1")
        if self.window < 1:
            raise ValueError(f"rule {self.name!r}: {self.window=} must be >= 1")
        if self.forecast is not None and (
            self.verdict != "bad" or self.op not in FORECAST_OPS or self.at_step is not None
        ):
            raise ValueError(
                f"rule {self.name!r}: forecast needs a bad rule with one of {FORECAST_OPS} and no at_step"
            )

    def holds(self, x: float) -> bool:
        """The rule's fixed condition on a finite value (for bad rules: the bad thing); a rule
        with a reference is judged by `reference.condition`."""
        return self.compare(x, self.value, self.between)

    def compare(self, x: float, value: Optional[float], between: Optional[tuple[float, float]]) -> bool:
        """`x op value`, or `x` in `between`: the rule's comparison with given thresholds."""
        if between is not None:
            return between[0] <= x <= between[1]
        return OPS[self.op](x, value)  # type: ignore[index]

    def describe(self) -> str:
        cond = (
            reference.describe(self)
            if reference.uses_reference(self)
            else f"in [{self.between[0]:g}, {self.between[1]:g}]"
            if self.between
            else f"{self.op} {self.value:g}"
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
        f = self.forecast
        ahead = f", or forecast within {f.horizon} steps" if f else ""
        return f"{metric} {cond} ({when}{pat}{ahead})"


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

    @property
    def ended_early(self) -> bool:
        """The trial ended at `step`: a stop, or a good rule's miss that decided it."""
        return self.stopped or DECIDED in (self.reason or "")

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


def _observed(metrics: Mapping[str, object], key: str) -> bool:
    """Does the report carry `key` at all (NaN counts as carried, absent or None not)?"""
    return metrics.get(key) is not None


def _step_of(report: Mapping[str, float], default: int = 0) -> int:
    return int(report.get(STEP_KEY, default))


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
    recorded: bool = False
    """The reports are a recorded history: a key it never reports makes its rules not apply
    (live, False: a rule whose key was never reported stops the trial as `stopped:nan`)."""
    stop_when_decided: bool = True
    """Return `unhealthy:<rule>` from `update` as soon as a good `at_step` rule misses."""
    seen: set[str] = field(default_factory=set)
    """Watched keys reported so far."""
    refs: dict[str, reference.Reference] = field(default_factory=dict)
    """Per rule with a reference (`relative_to`, `drop`): the run's start and best so far."""

    def __post_init__(self) -> None:
        if not self.keep_history and any(r.window > 1 or r.forecast for r in self.rules):
            raise ValueError("rules with window > 1 or a forecast need keep_history=True")

    def update(self, metrics: Mapping[str, float]) -> Optional[Verdict]:
        """Feed one report; return the verdict the first time it ends the trial: a bad rule
        fired (`stopped:*`) or, with `stop_when_decided`, a good `at_step` rule missed."""
        if self.verdict is not None:
            return self.verdict
        step = int(metrics.get(STEP_KEY, len(self.history) + 1))
        watched = self._watched()
        self.seen |= {k for k in watched if _observed(metrics, k)}
        if self.keep_history:
            self.history.append({k: metrics[k] for k in watched if _observed(metrics, k)} | {STEP_KEY: step})
        self._see_references(step, metrics)
        v = self._check_objective(step, metrics)
        for rule in self.rules:
            if v is None and rule.verdict == "bad":
                v = self._check_bad(rule, step, metrics)
        if v is None and self.stop_when_decided and self.keep_history:
            v = self._check_decided(step)
        self.verdict = v
        return v

    def _see_references(self, step: int, metrics: Mapping[str, float]) -> None:
        for rule in self.rules:
            if not reference.uses_reference(rule) or not _observed(metrics, rule.metric):
                continue
            ref = self.refs.setdefault(rule.name, reference.Reference())
            ref.see_start(_value(metrics, rule.metric))
            if reference.is_drop(rule):
                reports = self.history if self.keep_history else [{**metrics, STEP_KEY: step}]
                ref.see_judged(_judged_value(rule, reports), step)

    def _check_objective(self, step: int, metrics: Mapping[str, float]) -> Optional[Verdict]:
        obj = self.objective
        if not obj:
            return None
        if not _observed(metrics, obj):
            if self.recorded or obj in self.seen:
                return None  # not observed in this report
            reason = f"objective {obj} is missing (never reported)"
        elif is_number(metrics.get(obj)):
            return None
        else:
            reason = f"objective {obj} is not finite"
        return Verdict(NAN_VERDICT, None, step, obj, _value(metrics, obj), reason=reason)

    def _check_bad(self, rule: Rule, step: int, metrics: Mapping[str, float]) -> Optional[Verdict]:
        if rule.at_step is not None:
            if step < rule.at_step or self.streaks.get(rule.name, 0) < 0:
                return None
        elif step <= rule.after_step:
            return None
        if not _observed(metrics, rule.metric):
            if self.recorded or rule.metric in self.seen:
                return None  # not observed: the streak stays, at_step waits for the next report
            reason = f"{rule.metric} is missing (never reported)"
            return Verdict(NAN_VERDICT, rule.name, step, rule.metric, math.nan, reason=reason)
        if rule.at_step is not None:
            self.streaks[rule.name] = -1  # judged once
        x = _judged_value(rule, self.history if self.keep_history else [{**metrics, STEP_KEY: step}])
        if not math.isfinite(x):
            if rule.on_nan == "stop":
                return Verdict(NAN_VERDICT, rule.name, step, rule.metric, x, reason=f"{rule.metric} is {x}")
            if rule.on_nan == "skip":
                return None
            hit = True
        elif reference.uses_reference(rule):
            ref = self.refs.get(rule.name, reference.Reference())
            held = reference.condition(rule, x, ref, rule.compare)
            if held is None:
                return None  # no reference yet: not judged, the streak stays
            hit = held
        else:
            hit = rule.holds(x)
        why = reference.reason(rule, x, self.refs[rule.name]) if hit and rule.name in self.refs else None
        if rule.at_step is not None:
            return (
                Verdict(f"stopped:{rule.name}", rule.name, step, rule.metric, x, reason=why) if hit else None
            )
        streak = self.streaks.get(rule.name, 0) + 1 if hit else 0
        self.streaks[rule.name] = streak
        if streak >= rule.patience:
            return Verdict(f"stopped:{rule.name}", rule.name, step, rule.metric, x, reason=why)
        if rule.forecast is not None and math.isfinite(x):
            reason = forecast_crossing(
                _absolute(rule, self.refs.get(rule.name)), _recent(rule, self.history), step
            )
            if reason is not None:
                return Verdict(f"stopped:{rule.name}", rule.name, step, rule.metric, x, reason=reason)
        return None

    def _check_decided(self, step: int) -> Optional[Verdict]:
        """The first good `at_step` rule that this report decides as missed, as a verdict."""
        for rule in self.rules:
            if rule.verdict != "good" or rule.at_step is None or step < rule.at_step:
                continue
            if self.streaks.get(rule.name, 0) < 0:
                continue  # judged (and met) at an earlier report
            if _report_index(rule, self.history) is None and (self.recorded or rule.metric in self.seen):
                continue  # not observed yet: the next report that has it is judged
            self.streaks[rule.name] = -1
            v = self._judge_good(rule, self.history, step)
            if v is not None:
                return replace(v, reason=f"{v.reason}; {DECIDED}" if v.reason else DECIDED)
        return None

    def _watched(self) -> set[str]:
        keys = {r.metric for r in self.rules}
        return keys | ({self.objective} if self.objective else set())

    def unreported(self) -> list[str]:
        """Watched keys no report so far has carried (sorted)."""
        return sorted(self._watched() - self.seen)

    def finish(self, history: Optional[Sequence[Mapping[str, float]]] = None) -> Verdict:
        """Final verdict of a trial that ran to its end (good rules judged here)."""
        if self.verdict is not None:
            return self.verdict
        hist = list(history) if history is not None else self.history
        last_step = _step_of(hist[-1], len(hist)) if hist else 0
        for rule in self.rules:
            if rule.verdict == "good" and (v := self._judge_good(rule, hist, last_step)) is not None:
                self.verdict = v
                return v
        self.verdict = Verdict("healthy", step=last_step)
        return self.verdict

    def _judge_good(
        self, rule: Rule, hist: Sequence[Mapping[str, float]], last_step: int
    ) -> Optional[Verdict]:
        """`unhealthy:<rule>` if the good rule misses on `hist`, else None (met, or not applicable)."""
        at = _report_index(rule, hist)
        if at is None:
            if self.recorded and not any(_observed(h, rule.metric) for h in hist):
                return None  # the run never reports the key: the rule does not apply
            reason = (
                f"no report of {rule.metric} at or after step {rule.at_step}"
                if any(_observed(h, rule.metric) for h in hist)
                else f"{rule.metric} never reported"
            )
            return Verdict(
                f"unhealthy:{rule.name}", rule.name, last_step, rule.metric, math.nan, reason=reason
            )
        x = _judged_value(rule, hist[: at + 1])
        why = None
        if rule.relative_to is not None:
            ref = reference.Reference(start=reference.start_of(hist, rule.metric))
            if math.isfinite(x) and reference.condition(rule, x, ref, rule.compare):
                return None
            why = reference.reason(rule, x, ref, missed=True)
        elif math.isfinite(x) and rule.holds(x):
            return None
        step = _step_of(hist[at], last_step)
        return Verdict(f"unhealthy:{rule.name}", rule.name, step, rule.metric, x, reason=why)


def _judged_value(rule: Rule, reports: Sequence[Mapping[str, float]]) -> float:
    """The value a rule judges, `reports` ending at the judged one: that report's value, or
    with `window > 1` the mean of the finite values in the reports of the last `window`
    steps (NaN if none)."""
    if rule.window == 1:
        return _value(reports[-1], rule.metric)
    since = _step_of(reports[-1], len(reports)) - rule.window
    values = []
    for h in reversed(reports):
        if _step_of(h, since + 1) <= since:
            break
        x = _value(h, rule.metric)
        if math.isfinite(x):
            values.append(x)
    return sum(values) / len(values) if values else math.nan


def _report_index(rule: Rule, hist: Sequence[Mapping[str, float]]) -> Optional[int]:
    """Index of the report a good rule judges: the first at/after `at_step`, else the last,
    among the reports that carry its metric."""
    have = [i for i, h in enumerate(hist) if _observed(h, rule.metric)]
    if rule.at_step is None:
        return have[-1] if have else None
    return next((i for i in have if _step_of(hist[i]) >= rule.at_step), None)


def _recent(rule: Rule, hist: Sequence[Mapping[str, float]]) -> list[tuple[int, float]]:
    """The last `forecast.window` finite (step, value) pairs after `after_step`, oldest first."""
    out: list[tuple[int, float]] = []
    for h in reversed(hist):
        s = _step_of(h)
        if s <= rule.after_step or len(out) == rule.forecast.window:  # type: ignore[union-attr]
            break
        x = _value(h, rule.metric)
        if math.isfinite(x):
            out.append((s, x))
    return out[::-1]


def _absolute(rule: Rule, ref: Optional[reference.Reference]) -> Rule:
    """The rule with its `relative_to` threshold made absolute by the run's start."""
    if rule.relative_to is None or ref is None:
        return rule
    return replace(rule, value=reference.scaled(rule, ref.start)[0], relative_to=None)


def forecast_crossing(rule: Rule, points: Sequence[tuple[int, float]], step: int) -> Optional[str]:
    """The forecast reason of a bad rule at `step` (see `trend.forecast`), else None."""
    if rule.forecast is None:
        return None
    rising = rule.op in (">", ">=")
    return trend.forecast(points, float(rule.value), rising, rule.forecast, step)  # type: ignore[arg-type]


def unreported(
    rules: Sequence[Rule], history: Iterable[Mapping[str, float]], objective: Optional[str] = None
) -> list[str]:
    """Watched keys (rule metrics, objective) that no report of `history` carries, sorted."""
    keys = {r.metric for r in rules} | ({objective} if objective else set())
    for report in history:
        keys -= {k for k in keys if _observed(report, k)}
    return sorted(keys)


def without_forecasts(rules: Sequence[Rule]) -> list[Rule]:
    """The rules with their forecasts off: the verdict of a run watched to its end."""
    return [replace(r, forecast=None) for r in rules]


def evaluate(
    rules: Sequence[Rule],
    history: Iterable[Mapping[str, float]],
    objective: Optional[str] = None,
    finished: bool = True,
    *,
    recorded: bool = True,
    stop_when_decided: bool = True,
) -> Verdict | None:
    """Replay a whole metric history: the verdict a live trial would have received.

    Returns the verdict that ended the trial early (a bad rule fired, or with
    `stop_when_decided` a good `at_step` rule missed), else (when `finished`) the final
    verdict, else None (still running, nothing decided). `recorded` (default): keys the
    history never reports make their rules not apply, as for imported histories.
    """
    tracker = CriteriaTracker(
        list(rules), objective=objective, recorded=recorded, stop_when_decided=stop_when_decided
    )
    for report in history:
        v = tracker.update(report)
        if v is not None:
            return v
    return tracker.finish() if finished else None


def judged_value(rule: Rule, reports: Sequence[Mapping[str, float]]) -> float:
    """The value `rule` judges at the last of `reports` (its window mean for `window > 1`)."""
    return _judged_value(rule, reports)
