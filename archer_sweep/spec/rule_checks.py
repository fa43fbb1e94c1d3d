"""Checks of the criteria list: each rule alone, against the step budget, and against each other.

A rule set is refused when a rule can never be judged (at_step beyond the budget,
patience longer than the steps left), when fields contradict (`op` and `between`,
`after_step` with `at_step`, patience on a good rule), when names repeat or collide
with built-in verdicts, when a forecast has no direction to head for (a range, `==`, a
good or `at_step` rule) or more reports to fit than the steps allow, or when two rules
together decide every trial (a good range that only values firing a bad rule reach; two
bad rules that cover every value).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional

from archer_sweep.criteria import FORECAST_OPS
from archer_sweep.spec.errors import given_fields, located, show

RESERVED = {"nan": "stopped:nan", "timeout": "stopped:timeout", "error": "error"}
"""Rule names the engine's own verdicts use."""


class Interval(NamedTuple):
    lo: float
    lo_closed: bool
    hi: float
    hi_closed: bool

    def within(self, other: Interval) -> bool:
        lo_ok = other.lo < self.lo or (other.lo == self.lo and (other.lo_closed or not self.lo_closed))
        hi_ok = other.hi > self.hi or (other.hi == self.hi and (other.hi_closed or not self.hi_closed))
        return lo_ok and hi_ok


INF = math.inf
RAYS = {
    ">": lambda v: Interval(v, False, INF, False),
    ">=": lambda v: Interval(v, True, INF, False),
    "<": lambda v: Interval(-INF, False, v, False),
    "<=": lambda v: Interval(-INF, False, v, True),
    "==": lambda v: Interval(v, True, v, True),
}
"""Operator -> the set of values where `x op value` holds (`!=` has no single interval)."""


def interval(rule: Any) -> Optional[Interval]:
    """The fixed values where the rule holds; None for a rule judged against the run's own
    start or best (its values are not comparable with another rule's)."""
    if getattr(rule, "relative_to", None) is not None or getattr(rule, "drop", None) is not None:
        return None
    if getattr(rule, "drop_ratio", None) is not None:
        return None
    if rule.between is not None:
        return Interval(rule.between[0], True, rule.between[1], True)
    make = RAYS.get(rule.op)
    return make(rule.value) if make else None


def check_rules(spec: Any, lines: Any, budget: Optional[int]) -> None:
    seen: dict[str, int] = {}
    for i, rule in enumerate(spec.criteria):
        _check_alone(rule, ("criteria", i), lines)
        if rule.name in seen:
            first = lines.locate(("criteria", seen[rule.name], "name"))[1]
            raise located(
                lines,
                ("criteria", i, "name"),
                f"duplicate rule name {show(rule.name)} (first at line {first}) (expected unique names)",
            )
        seen[rule.name] = i
        if budget is not None:
            _check_budget(rule, ("criteria", i), lines, budget)
    _check_pairs(spec.criteria, lines, budget)


def _check_alone(rule: Any, path: tuple, lines: Any) -> None:

    given = given_fields(rule)
    if rule.name in RESERVED:
        raise located(
            lines,
            path + ("name",),
            f"{show(rule.name)} is reserved for the verdict {RESERVED[rule.name]} (expected another name)",
        )
    if rule.op is not None and rule.between is not None:
        raise located(
            lines,
            path + ("between",),
            "given with `op` (expected either op with value, or between: [low, high])",
        )
    if _check_drop(rule, path, lines, given):
        return
    if rule.op is None and rule.between is None:
        raise located(lines, path, "no condition (expected op with value, or between: [low, high])")
    if rule.op is not None and rule.value is None:
        raise located(lines, path + ("op",), f"{show(rule.op)} has no threshold (expected `value`)")
    if rule.op is None and "value" in given:
        raise located(lines, path + ("value",), "given without `op` (expected op with value)")
    if rule.between is not None and rule.between[0] > rule.between[1]:
        lo, hi = rule.between
        raise located(lines, path + ("between",), f"[{lo:g}, {hi:g}] is empty (expected low <= high)")
    if rule.at_step is not None and "after_step" in given:
        raise located(
            lines, path + ("after_step",), "given with at_step (expected one of at_step or after_step)"
        )
    if rule.forecast is not None:
        _check_forecast(rule, path + ("forecast",), lines)
    if rule.verdict == "good":
        for name in ("after_step", "patience", "on_nan"):  # a good rule judges one report
            if name in given:
                raise located(
                    lines,
                    path + (name,),
                    "applies only to bad rules (expected at_step for a good rule, or verdict: bad)",
                )


def _check_drop(rule: Any, path: tuple, lines: Any, given: set) -> bool:
    """Checks of a `drop` / `drop_ratio` rule; True when the rule is one (it then has no op)."""
    drops = [k for k in ("drop", "drop_ratio") if getattr(rule, k) is not None]
    if not drops:
        return False
    first = drops[0]
    if len(drops) > 1:
        raise located(lines, path + ("drop_ratio",), "given with drop (expected one of drop or drop_ratio)")
    for other in ("op", "between", "value"):
        if other in given:
            raise located(
                lines,
                path + (other,),
                f"given with {first} (expected one condition: op with value, between, or {first})",
            )
    if rule.verdict != "bad":
        raise located(
            lines, path + (first,), "applies only to bad rules (expected verdict: bad, or op with value)"
        )
    if rule.relative_to is not None:
        raise located(
            lines,
            path + ("relative_to",),
            f"given with {first} (expected no relative_to: a {first} is measured from the run's best)",
        )
    if rule.forecast is not None:
        raise located(
            lines, path + ("forecast",), f"given with {first} (expected op with value for a forecast)"
        )
    return True


def _check_forecast(rule: Any, path: tuple, lines: Any) -> None:
    if rule.verdict != "bad":
        raise located(lines, path, "applies only to bad rules (expected verdict: bad, or no forecast)")
    if rule.op not in FORECAST_OPS:
        what = "a range" if rule.between is not None else f"op {show(rule.op)}"
        raise located(
            lines, path, f"{what} has no direction to forecast (expected op one of {', '.join(FORECAST_OPS)})"
        )
    if rule.at_step is not None:
        raise located(
            lines, path, "given with at_step (expected after_step: a forecast watches every report)"
        )


def _check_budget(rule: Any, path: tuple, lines: Any, budget: int) -> None:
    if rule.at_step is not None and rule.at_step > budget:
        raise located(
            lines,
            path + ("at_step",),
            f"{rule.at_step} is beyond the step budget of {_steps(budget)} (expected at most {budget})",
        )
    last = rule.at_step if rule.at_step is not None else budget
    if rule.window > last:
        raise located(
            lines,
            path + ("window",),
            f"{rule.window} reports cannot be averaged by step {last} (expected at most {last})",
        )
    if rule.verdict != "bad" or rule.at_step is not None:
        return
    fit = rule.forecast.window if rule.forecast is not None else 0
    if rule.after_step < budget and fit > budget - rule.after_step:
        left = budget - rule.after_step
        raise located(
            lines,
            path + ("forecast", "window"),
            f"{fit} reports cannot be fitted in the {left} steps after step {rule.after_step} "
            f"(expected at most {left})",
        )
    if rule.after_step >= budget:
        raise located(
            lines,
            path + ("after_step",),
            f"{rule.after_step} leaves no step of the "
            f"budget of {_steps(budget)} to check (expected "
            f"less than {budget})",
        )
    left = budget - rule.after_step
    if rule.patience > left:
        raise located(
            lines,
            path + ("patience",),
            f"{rule.patience} reports in a row cannot happen "
            f"in the {left} steps after step {rule.after_step} "
            f"(expected at most {left})",
        )


def _steps(n: int) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


def _judge_step(rule: Any, budget: Optional[int]) -> Optional[int]:
    return rule.at_step if rule.at_step is not None else budget


def _fires_at(bad: Any, step: Optional[int]) -> bool:
    """Is a patience-1 bad rule surely checked at `step`?"""
    if bad.patience != 1 or bad.window != 1 or step is None:
        return False
    return bad.at_step == step if bad.at_step is not None else bad.after_step < step


def _check_pairs(rules: list, lines: Any, budget: Optional[int]) -> None:
    bad_rules = [(i, r) for i, r in enumerate(rules) if r.verdict == "bad" and interval(r) is not None]
    for i, a in bad_rules:
        for j, b in bad_rules:
            if (
                j > i
                and a.metric == b.metric
                and _cover_all(interval(a), interval(b))
                and _same_reports(a, b)
            ):
                raise located(
                    lines,
                    ("criteria", j),
                    f"with rule {show(a.name)} every value of "
                    f"{a.metric} is bad (expected a range of "
                    "values that keeps a trial running)",
                )
    for i, good in enumerate(rules):
        if good.verdict != "good" or interval(good) is None:
            continue
        for bad in rules:
            if (
                bad.verdict == "bad"
                and bad.metric == good.metric
                and interval(bad) is not None
                and good.window == 1
                and _fires_at(bad, _judge_step(good, budget))
                and interval(good).within(interval(bad))
            ):
                raise located(
                    lines,
                    ("criteria", i),
                    f"good rule {show(good.name)} can never hold: "
                    f"every value it accepts fires bad rule "
                    f"{show(bad.name)} (expected ranges that do not "
                    "contradict)",
                )


def _same_reports(a: Any, b: Any) -> bool:
    return (
        a.patience == b.patience == 1
        and a.window == b.window
        and a.at_step == b.at_step
        and (a.at_step is not None or a.after_step == b.after_step)
    )


def _cover_all(a: Interval, b: Interval) -> bool:
    """Do two intervals together hold every finite value?"""
    for x, y in ((a, b), (b, a)):
        if x.lo == -INF and y.hi == INF:
            if x.hi == INF or y.lo == -INF or x.hi > y.lo:
                return True
            if x.hi == y.lo and (x.hi_closed or y.lo_closed):
                return True
    return False
