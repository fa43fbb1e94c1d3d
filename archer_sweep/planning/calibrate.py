"""Fit a spec's thresholds to past runs with an outcome: keep the top runs, stop the rest early.

For each rule, on recorded runs whose outcome (`planning/outcome.py`) is known:

- *as given*: the runs it stops (or, for a good rule, calls unhealthy), the top runs
  (within `within` of the best outcome) it stops before their best step, the steps saved;
- *fitted*: the most aggressive threshold that stops none of the top runs before their best
  step, moved `margin` (a share of its size) further away from them. A bad `<` rule fires on
  a top run exactly when its threshold exceeds the lowest value that run holds for
  `patience` judged reports in a row; the fit stays below the lowest such value over the
  top runs. A good rule is fitted so that every top run meets it. `drop` rules get the
  largest fall a top run makes before its best.

Forms: `fixed` fits `value` / `between`; `relative` fits them × the run's start
(`relative_to: start`, which carries over to a model on another scale); `auto` takes
`relative` when the metric is a scale the model sets (every run starts it above 0, all
within 2× of each other: entropy, response length) and `fixed` otherwise (a score that
starts near 0). Ranges of bad rules,
`==`, `!=` and rules whose key no run logs are reported and left as they are.

Pure: runs, rules and an `OutcomeSpec` in; `RuleFit`s out (the CLI prints and writes them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Optional

from archer_sweep.criteria import Rule, evaluate
from archer_sweep.criteria import reference as ref
from archer_sweep.criteria.rules import judged_value
from archer_sweep.planning import outcome as oc
from archer_sweep.results.runs import Run
from trainable import metrics as M

FORMS = ("auto", "fixed", "relative")


@dataclass(frozen=True)
class Effect:
    """What one rule alone does to the runs."""

    ended: list[str]
    """Runs it ends early (bad: stopped; good at_step: decided) or, for good rules, misses."""
    top_lost: list[str]
    """Top runs it ends before their best step (bad) or calls unhealthy (good)."""
    steps_saved: int


@dataclass(frozen=True)
class RuleFit:
    rule: Rule
    given: Optional[Effect]
    """None: no run logs the rule's key (the rule cannot be judged on these runs)."""
    fitted: Rule
    effect: Optional[Effect]
    note: str
    """What the fit was based on, or why the rule was kept as it is."""


def effect(rule: Rule, runs: Sequence[Run], outs: dict[str, oc.RunOutcome], top: set[str]) -> Effect:
    ended, lost, saved = [], [], 0
    for r in runs:
        v = evaluate([rule], r.steps)
        if v is None or v.verdict == "healthy":
            continue
        ended.append(r.run_id)
        stop = v.step if v.ended_early else None
        saved += r.last_step - stop if stop is not None else 0
        o = outs[r.run_id]
        if r.run_id in top and (rule.verdict == "good" or not oc.kept(o, stop)):
            lost.append(r.run_id)
    return Effect(ended, lost, saved)


def _judged(rule: Rule, run: Run, before: Optional[int], relative: bool) -> list[float]:
    """The values the rule judges on `run` (steps < `before`; × 1/start when `relative`);
    NaN where a report is not judged (kept: it breaks a streak in no way, see `_boundary`)."""
    reports = [s for s in run.steps if s.get(rule.metric) is not None]
    start = ref.start_of(reports, rule.metric) if relative else 1.0
    out = []
    for i, s in enumerate(reports):
        step = int(s[M.STEP])
        if before is not None and step >= before:
            break
        if rule.at_step is not None and (step < rule.at_step or out):
            continue
        if rule.verdict == "bad" and rule.at_step is None and step <= rule.after_step:
            continue
        out.append(judged_value(rule, reports[: i + 1]) / start)
    return [x for x in out if math.isfinite(x)]


def _boundary(values: list[float], patience: int, low_fires: bool) -> Optional[float]:
    """The threshold at which a run starts to fire: for `<` the lowest value it holds for
    `patience` reports in a row (the min over windows of their max); None if it never can."""
    if len(values) < patience:
        return None
    windows = [values[i : i + patience] for i in range(len(values) - patience + 1)]
    return min(map(max, windows)) if low_fires else max(map(min, windows))


def _falls(values: list[float], ratio: bool) -> list[float]:
    """Each value's fall below the best value so far (× 1/|best| when `ratio`)."""
    best, out = -math.inf, []
    for x in values:
        best = max(best, x)
        out.append((best - x) / abs(best) if ratio and best else best - x)
    return out


def _away(x: float, margin: float, up: bool) -> float:
    """`x` moved `margin` × |x| up or down, rounded to 3 significant digits in that direction."""
    y = x + margin * abs(x) if up else x - margin * abs(x)
    if y == 0:
        return 0.0
    scale = 10 ** (math.floor(math.log10(abs(y))) - 2)
    return (math.ceil if up else math.floor)(y / scale) * scale


def _fit_one(
    rule: Rule, runs, outs, top: set[str], relative: bool, margin: float
) -> tuple[Optional[Rule], str]:
    """The fitted rule in one form, or (None, why not)."""
    tops = [r for r in runs if r.run_id in top]
    good = rule.verdict == "good"
    before = {r.run_id: (None if good else outs[r.run_id].step) for r in tops}
    series = {r.run_id: _judged(rule, r, before[r.run_id], relative) for r in tops}
    if relative and any(ref.start_of(r.steps, rule.metric) <= 0 for r in tops):
        return None, "a top run starts at or below 0 (no relative form)"
    if ref.is_drop(rule):
        ratio = rule.drop_ratio is not None
        falls = [b for r in tops if (b := _boundary(_falls(series[r.run_id], ratio), rule.patience, False))]
        if not falls:
            return None, "no top run falls before its best"
        size = _away(max(falls), margin, True)
        if ratio and size > 1:
            return None, "top runs fall by more than their best"
        return replace(
            rule, **{"drop_ratio" if ratio else "drop": size}
        ), f"largest fall of a top run {max(falls):.3g}"
    if rule.between is not None:
        if not good:
            return None, "a bad range has no direction to fit"
        vals = [x for s in series.values() for x in s[-1:]]
        if not vals:
            return None, "no top run is judged"
        lo, hi = _away(min(vals), margin, False), _away(max(vals), margin, True)
        return replace(rule, between=(lo, hi), relative_to="start" if relative else None), (
            f"top runs judged in [{min(vals):.3g}, {max(vals):.3g}]"
        )
    if rule.op not in ("<", "<=", ">", ">="):
        return None, f"op {rule.op} has no direction to fit"
    low = rule.op in ("<", "<=")
    if good:  # every top run must meet it: just beyond the worst judged value
        vals = [s[-1] for s in series.values() if s]
        b = (max if low else min)(vals) if vals else None
        value = None if b is None else _away(b, margin, low)
    else:
        bounds = [b for s in series.values() if (b := _boundary(s, rule.patience, low)) is not None]
        b = (min if low else max)(bounds) if bounds else None
        value = None if b is None else _away(b, margin, not low)
    if value is None:
        return None, "no top run is judged by it before its best step"
    what = "worst judged value" if good else "closest a top run comes before its outcome step"
    unit = " × start" if relative else ""
    return replace(rule, value=value, relative_to="start" if relative else None), f"{what} {b:.3g}{unit}"


def _scaled(rule: Rule, runs: Sequence[Run]) -> bool:
    """Does every run start the metric above 0, all within 2× of each other?"""
    starts = [ref.start_of(r.steps, rule.metric) for r in runs]
    starts = [x for x in starts if not math.isnan(x)]
    return bool(starts) and min(starts) > 0 and max(starts) <= 2 * min(starts)


def fit_rule(
    rule: Rule, runs: Sequence[Run], outcome: oc.OutcomeSpec, form: str = "auto", margin: float = 0.1
) -> RuleFit:
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}: {form=}")
    outs = {r.run_id: oc.run_outcome(r, outcome) for r in runs}
    top = set(oc.top_runs(list(outs.values()), outcome.within))
    if not any(r.series(rule.metric)[0] for r in runs):
        return RuleFit(rule, None, rule, None, f"cannot be judged on these runs: {rule.metric} never logged")
    given = effect(rule, runs, outs, top)
    drop = ref.is_drop(rule)
    relative = not drop and {"fixed": False, "relative": True}.get(form, _scaled(rule, runs))
    base = rule if drop else replace(rule, relative_to=None)
    fitted, why = _fit_one(base, runs, outs, top, relative, margin)
    if fitted is None:
        return RuleFit(rule, given, rule, given, f"kept as given: {why}")
    return RuleFit(rule, given, fitted, effect(fitted, runs, outs, top), f"{why}; margin {margin:g}")


def calibrate(
    rules: Sequence[Rule],
    runs: Sequence[Run],
    outcome: oc.OutcomeSpec,
    form: str = "auto",
    margin: float = 0.1,
) -> list[RuleFit]:
    """One `RuleFit` per rule (see the module docstring)."""
    runs = [r for r in runs if r.steps]
    if not runs:
        raise ValueError("calibrate needs at least one run with reports")
    return [fit_rule(r, runs, outcome, form, margin) for r in rules]
