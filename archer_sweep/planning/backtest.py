"""Replay recorded runs under stopping policies: what would each policy have saved and lost?

Policies (a registry; each returns one `Outcome` per run):
- `criteria`: the spec's rules through `archer_sweep.criteria.evaluate`, the code path
  of the online scheduler;
- `asha`: Ray Tune's AsyncHyperBand rung logic on the objective (one bracket);
- `median`: Ray Tune's median stopping rule on the objective;
- `none`: every run to its end.
ASHA and median depend on the order reports arrive in; the replay assumes all runs
ran side by side at equal speed (reports ordered by step, then by run order).

Trial-steps are counted in training steps: a run stopped at step 61 of 148 used 61.
A criteria outcome ends early where the live scheduler would end the trial: a bad rule fired
(a threshold or a forecast), or, with `stop_when_decided`, a good `at_step` rule missed
(`unhealthy:<rule>` at that step). Runs are recorded histories: a watched key a run never
reports makes the rules on that key not apply to it, with one warning naming run and key.

Regret = best healthy objective without stopping − best healthy objective among the
runs the policy let finish (sign flipped for mode min); "healthy" is the criteria
verdict of the full recorded run, forecasts off (what a researcher who watched every
step would call it). With an `OutcomeSpec` (`--outcome KEY`), every policy is also scored
by an outcome the rules never see (`planning/outcome.py`): outcome-regret and
outcome-false-stops.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from archer_sweep.criteria import Verdict, evaluate, unreported, without_forecasts
from archer_sweep.objective import reduce_objective
from archer_sweep.planning import outcome as oc
from archer_sweep.results.runs import Run
from trainable import metrics as M

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    run_id: str
    verdict: str
    """`completed` or `stopped:<rule|asha|median>` (criteria: the criteria verdict)."""
    stop_step: Optional[int]
    """The step the policy ended the run at (None = ran to its end)."""
    steps_used: int
    reason: Optional[str] = None
    """Criteria: the verdict's reason, e.g. `forecast: crosses 7 at step ~19 (band 16–23)`."""


@dataclass(frozen=True)
class PolicySummary:
    policy: str
    steps_used: int
    steps_total: int
    best_healthy: Optional[float]
    regret: Optional[float]
    """None when no run is healthy without stopping; inf when the policy lost all healthy runs."""

    @property
    def fraction_saved(self) -> float:
        return 1 - self.steps_used / self.steps_total if self.steps_total else 0.0


@dataclass(frozen=True)
class Settings:
    metric: str
    mode: str = "max"
    reduce: str = "last"
    grace_period: int = 10
    reduction_factor: float = 3
    max_t: Optional[int] = None
    min_samples_required: int = 3
    stop_when_decided: bool = True
    """The spec's `scheduler.stop_when_decided`: a good `at_step` rule's miss ends the run."""


def objective_value(run: Run, metric: str, reduce: str = "last", mode: str = "max") -> Optional[float]:
    """The value Optuna would receive for this run (spec's `search.objective_reduce`)."""
    return reduce_objective(run.series(metric)[1], reduce, mode)


def _events(runs: Sequence[Run]) -> list[tuple[int, int, dict]]:
    """All reports, ordered as if the runs ran side by side: (step, run index, report)."""
    ev = [(int(s[M.STEP]), i, s) for i, r in enumerate(runs) for s in r.steps]
    return sorted(ev, key=lambda e: (e[0], e[1]))


def _completed(run: Run) -> Outcome:
    return Outcome(run.run_id, "completed", None, run.last_step)


# ---------------------------------------------------------------- policies


def judge(run: Run, rules, st: Settings) -> Optional[Verdict]:
    """The criteria verdict of a recorded run, as the live scheduler would have reached it."""
    return evaluate(rules, run.steps, objective=st.metric, stop_when_decided=st.stop_when_decided)


def warn_unreported(runs: Sequence[Run], rules, objective: Optional[str] = None) -> None:
    """One warning per run and watched key the run never reports (its rules do not apply)."""
    for r in runs:
        for key in unreported(rules, r.steps, objective):
            log.warning("run %s (%s) never reports %s: the rules on it do not apply", r.run_id, r.source, key)


def replay_criteria(runs: Sequence[Run], rules, st: Settings) -> list[Outcome]:
    out = []
    for r in runs:
        v = judge(r, rules, st)
        stop = v.step if v is not None and v.ended_early else None
        used = stop if stop is not None else r.last_step
        out.append(Outcome(r.run_id, v.verdict if v else "completed", stop, used, v.reason if v else None))
    return out


class _AshaBracket:
    """Ray Tune's `_Bracket` (async_hyperband.py): rungs high → low, cutoff = the
    (1 − 1/rf) percentile of the rewards recorded at the rung (NaN ignored)."""

    def __init__(self, min_t: int, max_t: int, rf: float):
        n = int(np.log(max_t / min_t) / np.log(rf) + 1)
        self.rf = rf
        self.rungs = [(min_t * rf**k, {}) for k in reversed(range(n))]

    def on_result(self, tid: int, t: int, reward: float) -> bool:
        """True = stop."""
        for milestone, recorded in self.rungs:
            if t < milestone or tid in recorded:
                continue
            cutoff = np.nanpercentile(list(recorded.values()), (1 - 1 / self.rf) * 100) if recorded else None
            recorded[tid] = reward
            return cutoff is not None and reward < cutoff
        return False


def replay_asha(runs: Sequence[Run], rules, st: Settings) -> list[Outcome]:
    max_t = st.max_t or max((r.last_step for r in runs), default=1)
    bracket = _AshaBracket(st.grace_period, max(max_t, st.grace_period), st.reduction_factor)
    sign = 1.0 if st.mode == "max" else -1.0
    stopped: dict[int, int] = {}
    last = {i: r.last_step for i, r in enumerate(runs)}
    ended: set[int] = set()
    for t, i, rep in _events(runs):
        if i in ended or st.metric not in rep:
            continue
        reward = sign * rep[st.metric]
        if t >= max_t:  # Ray stops at max_t (stop_last_trials): the run is complete
            ended.add(i)
        elif bracket.on_result(i, t, reward):
            stopped[i] = t
            ended.add(i)
        elif t == last[i]:
            ended.add(i)
        if i in ended:  # Tune calls on_trial_complete with the last result: recorded once more
            bracket.on_result(i, t, reward)
    return [
        Outcome(r.run_id, "stopped:asha", stopped[i], stopped[i]) if i in stopped else _completed(r)
        for i, r in enumerate(runs)
    ]


def replay_median(runs: Sequence[Run], rules, st: Settings) -> list[Outcome]:
    """Ray Tune's MedianStoppingRule (hard stop): stop when the run's best so far is
    worse than the median of other runs' running means over [grace, t]."""
    better = max if st.mode == "max" else min
    results: dict[int, list[tuple[int, float]]] = {}
    stopped: dict[int, int] = {}
    last = {i: r.last_step for i, r in enumerate(runs)}
    for t, i, rep in _events(runs):
        if i in stopped or st.metric not in rep:
            continue
        results.setdefault(i, []).append((t, float(rep[st.metric])))
        if t == last[i]:  # on_trial_complete appends the last result once more
            results[i].append(results[i][-1])
        if t < st.grace_period:
            continue
        means = []
        for j, res in results.items():
            if j == i or res[-1][0] < t:
                continue
            scoped = [v for s, v in res if st.grace_period <= s <= t]
            m = float(np.mean(scoped)) if scoped else math.nan
            if math.isfinite(m):
                means.append(m)
        if len(means) < st.min_samples_required:
            continue
        median, best = float(np.median(means)), better(v for _, v in results[i])
        if better(median, best) != best:
            stopped[i] = t
            if t != last[i]:  # stop_trial -> on_trial_complete(last result)
                results[i].append(results[i][-1])
    return [
        Outcome(r.run_id, "stopped:median", stopped[i], stopped[i]) if i in stopped else _completed(r)
        for i, r in enumerate(runs)
    ]


def replay_none(runs: Sequence[Run], rules, st: Settings) -> list[Outcome]:
    return [_completed(r) for r in runs]


POLICIES: dict[str, Callable[[Sequence[Run], list, Settings], list[Outcome]]] = {
    "criteria": replay_criteria,
    "asha": replay_asha,
    "median": replay_median,
    "none": replay_none,
}


# ---------------------------------------------------------------- summary


def _best(values: list[float], mode: str) -> Optional[float]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return None
    return max(vals) if mode == "max" else min(vals)


def summarize(
    policy: str, runs: Sequence[Run], outcomes: Sequence[Outcome], healthy: dict[str, bool], st: Settings
) -> PolicySummary:
    total = sum(r.last_step for r in runs)
    used = sum(o.steps_used for o in outcomes)
    ref = _best(
        [objective_value(r, st.metric, st.reduce, st.mode) for r in runs if healthy[r.run_id]], st.mode
    )
    found = _best(
        [
            objective_value(r, st.metric, st.reduce, st.mode)
            for r, o in zip(runs, outcomes)
            if healthy[r.run_id] and o.stop_step is None
        ],
        st.mode,
    )
    if ref is None:
        regret = None
    elif found is None:
        regret = math.inf
    else:
        regret = (ref - found) if st.mode == "max" else (found - ref)
    return PolicySummary(policy, used, total, found, regret)


@dataclass(frozen=True)
class Backtest:
    runs: list[Run]
    health: dict[str, str]
    """run id -> criteria verdict of the full recorded run."""
    outcomes: dict[str, list[Outcome]]
    summaries: list[PolicySummary]
    run_outcomes: dict[str, oc.RunOutcome] = field(default_factory=dict)
    """With an outcome key: run id -> its outcome (value and step)."""
    outcome_summaries: dict[str, oc.OutcomeSummary] = field(default_factory=dict)
    """With an outcome key: policy -> outcome-regret and outcome-false-stops."""
    outcome: Optional[oc.OutcomeSpec] = None


def backtest(
    runs: Sequence[Run],
    rules,
    st: Settings,
    policies: Sequence[str] = tuple(POLICIES),
    outcome: Optional[oc.OutcomeSpec] = None,
) -> Backtest:
    """Replay `runs` under each policy and summarise steps used, saved and regret (and, with
    `outcome`, outcome-regret and outcome-false-stops)."""
    runs = [r for r in runs if r.steps]
    if not runs:
        raise ValueError("backtest needs at least one run with reports")
    warn_unreported(runs, rules, st.metric)
    full = without_forecasts(rules)
    health = {r.run_id: v.verdict for r in runs if (v := judge(r, full, st))}
    healthy = {r.run_id: health.get(r.run_id) == "healthy" for r in runs}
    outcomes = {p: POLICIES[p](runs, rules, st) for p in policies}
    summaries = [summarize(p, runs, outcomes[p], healthy, st) for p in policies]
    if outcome is None:
        return Backtest(list(runs), health, outcomes, summaries)
    per_run = [oc.run_outcome(r, outcome) for r in runs]
    scored = {
        p: oc.summarize(per_run, {o.run_id: o.stop_step for o in outcomes[p]}, outcome.within)
        for p in policies
    }
    return Backtest(list(runs), health, outcomes, summaries, {o.run_id: o for o in per_run}, scored, outcome)


def settings_from_spec(spec) -> Settings:
    """Objective and ASHA/median parameters of a spec (ASHA defaults when it has none)."""
    from archer_sweep.spec.model import AshaSpec

    asha = spec.scheduler.asha or AshaSpec()
    # max_t stays the longest recorded run: a history may be longer than the spec's budget.
    return Settings(
        metric=spec.search.metric,
        mode=spec.search.mode,
        reduce=spec.search.objective_reduce,
        grace_period=asha.grace_period,
        reduction_factor=asha.reduction_factor,
        stop_when_decided=spec.scheduler.stop_when_decided,
    )
