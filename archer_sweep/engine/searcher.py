"""`CriteriaOptunaSearch`: Ray Tune's OptunaSearch that tells Optuna what the rules decided.

Ray's own `on_trial_complete` reports a scheduler-stopped trial as COMPLETE with its
last value (docs/facts.md). Here the verdict from `verdicts.jsonl` decides instead:

| verdict            | Optuna state | constraint (≤ 0 = satisfied) |
|--------------------|--------------|------------------------------|
| `stopped:*`        | PRUNED       | violated                     |
| `unhealthy:<rule>` | COMPLETE     | violated                     |
| `healthy`          | COMPLETE     | satisfied                    |
| `error`            | FAIL         | —                            |

The constraint is stored with Optuna 5's `Trial.set_constraint("rules", ±1)` (its
replacement for the deprecated `constraints_func`), which constrained TPE and GP read,
so they learn to avoid coefficients that break the rules. The study lives in an RDB
(`study.db` beside the results by default), and `suggest` returns the whole nested
trainable config with the sampled values applied at their dotted keys.

With `search.repeats` (k seeds per config) one Optuna trial stands for a config: `suggest`
asks Optuna for a new config only when the open one has all its seeds (or is closed by a
sibling stop), gives each seed `trainer.seed` = the base seed + its index, and logs it in
`groups.jsonl`; Optuna is told once, when every seed that ran is judged, with the
aggregated verdict (criteria/repeats.py), the mean objective, and user attrs `archer_repeats`
(per-seed verdicts and objectives, objective std, agreement, the rules that split the seeds).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from archer_sweep.criteria import Rule, Verdict
from archer_sweep.criteria.repeats import ERROR, aggregate, mean_std, stops_siblings
from archer_sweep.engine import libcompat
from archer_sweep.engine.gp_sampler import RulesAwareGPSampler
from archer_sweep.engine.sampler import FeasibleSampler
from archer_sweep.engine.verdicts import VerdictStore
from archer_sweep.objective import (
    CONSTRAINT_KEY,
    LOST_ATTR,
    VERDICT_ATTR,
    constraint_for,
    optuna_outcome,
    reduce_objective,
)
from archer_sweep.results.sweepdir import read_results
from archer_sweep.spec.space import SEED_KEY, apply_params

log = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)  # the live table reports trials

CONSTRAINT_ATTR = "archer_constraint"
RAY_TRIAL_ATTR = "ray_trial_id"
REPEATS_ATTR = "archer_repeats"


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def verdict_constraints(trial: optuna.trial.FrozenTrial) -> list[float]:
    """The violated (> 0) / satisfied (≤ 0) flag the searcher stored on the trial."""
    return [float(trial.constraints.get(CONSTRAINT_KEY, trial.user_attrs.get(CONSTRAINT_ATTR, 0.0)))]


def _grid(seed: Optional[int], n_startup: int, space: Mapping[str, Any]) -> optuna.samplers.BaseSampler:
    """Every categorical/int value of the space."""
    grid = {}
    for key, dist in space.items():
        if isinstance(dist, optuna.distributions.CategoricalDistribution):
            grid[key] = list(dist.choices)
        elif isinstance(dist, optuna.distributions.IntDistribution) and not dist.log:
            grid[key] = list(range(dist.low, dist.high + 1, dist.step))
        else:
            raise ValueError(f"grid sampler needs choice/int/fixed parameters: {key=} is {dist}")
    return optuna.samplers.GridSampler(grid, seed=seed)


SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    "tpe": lambda seed, n, space: optuna.samplers.TPESampler(seed=seed, n_startup_trials=n),
    # sees rule-stopped (PRUNED) trials too: Optuna's GP models COMPLETE trials only
    "gp": lambda seed, n, space: RulesAwareGPSampler(seed=seed, n_startup_trials=n),
    "random": lambda seed, n, space: optuna.samplers.RandomSampler(seed=seed),
    "cmaes": lambda seed, n, space: optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=n),
    "qmc": lambda seed, n, space: optuna.samplers.QMCSampler(seed=seed),
    "grid": _grid,
    "feasible": lambda seed, n, space: FeasibleSampler(space, seed=seed, n_startup_trials=n),
}
"""Sampler type -> factory(seed, n_startup_trials, space)."""


def make_sampler(
    kind: str, seed: Optional[int], n_startup: int, space: Mapping[str, optuna.distributions.BaseDistribution]
):
    if kind not in SAMPLERS:
        raise ValueError(f"unknown sampler {kind=}; expected one of {sorted(SAMPLERS)}")
    return SAMPLERS[kind](seed, n_startup, space)


class CriteriaOptunaSearch(OptunaSearch):
    def __init__(
        self,
        space: Mapping[str, optuna.distributions.BaseDistribution],
        *,
        metric: str,
        mode: str,
        store: VerdictStore,
        base_config: Mapping[str, Any],
        sampler: optuna.samplers.BaseSampler,
        storage_url: str,
        study_name: str,
        points_to_evaluate: Optional[list[dict]] = None,
        objective_reduce: str = "last",
        apply_params: Callable[[Mapping, Mapping], dict] = apply_params,
        repeats: Any = None,
        groups: Any = None,
        num_configs: Optional[int] = None,
        rules: Sequence[Rule] = (),
        base_seed: int = 0,
    ):
        storage = optuna.storages.RDBStorage(storage_url)
        super().__init__(
            space=dict(space),
            metric=metric,
            mode=mode,
            sampler=sampler,
            study_name=study_name,
            storage=storage,
        )
        self._store = store
        self._base_config = dict(base_config)
        self._apply = apply_params
        self._objective_reduce = objective_reduce
        self._values: dict[str, list[float]] = {}
        self._last_point: dict[str, tuple[int, float]] = {}  # trial -> (iteration, objective)
        # repeats (search.repeats): config group = the Optuna trial number of its first seed
        self._repeats, self._groups, self._rules = repeats, groups, list(rules)
        self._num_configs, self._base_seed = num_configs, base_seed
        self._group_of: dict[str, int] = {}  # Ray trial -> group
        self._members: dict[int, list[str]] = {}  # group -> Ray trials, in seed order
        self._done: dict[int, dict[str, dict]] = {}  # group -> judged seed -> what it gave
        self._open: Optional[int] = None  # the group still getting seeds
        for point in points_to_evaluate or []:  # partial points allowed, unlike Ray's check
            libcompat.study_of(self).enqueue_trial(dict(point), skip_if_exists=True)

    # -- suggestions ------------------------------------------------------------------
    def suggest(self, trial_id: str) -> Optional[dict]:
        if self._repeats is None:
            if self._num_configs is not None and self._configs_asked() >= self._num_configs:
                return Searcher.FINISHED  # never more than num_samples, whatever Tune counted
            return self._suggest_config(trial_id)
        group = self._open
        if group is not None and (len(self._members[group]) >= self._repeats.count or self._closed(group)):
            group = self._open = None
        if group is None:
            if self._num_configs is not None and len(self._members) >= self._num_configs:
                return Searcher.FINISHED  # every config proposed (some with fewer seeds)
            config = self._suggest_config(trial_id)
            if config is None:
                return None
            group = self._open = libcompat.trials_of(self)[trial_id].number
            self._members[group], self._done[group] = [], {}
        else:
            first = libcompat.trials_of(self)[self._members[group][0]]
            config = self._apply(self._base_config, dict(first.params))
        index = len(self._members[group])
        seed = self._base_seed + index
        self._members[group].append(trial_id)
        self._group_of[trial_id] = group
        self._groups.add(trial_id, group, index, seed)
        return self._apply(config, {SEED_KEY: seed})

    def _configs_asked(self) -> int:
        """Optuna trials proposed to a Ray trial, those lost with a killed driver left out."""
        trials = libcompat.study_of(self).get_trials(deepcopy=False)
        return sum(RAY_TRIAL_ATTR in t.user_attrs and LOST_ATTR not in t.user_attrs for t in trials)

    def _suggest_config(self, trial_id: str) -> Optional[dict]:
        params = super().suggest(trial_id)
        if params is None:
            return None
        ot_trial = libcompat.trials_of(self)[trial_id]
        ot_trial.set_user_attr(RAY_TRIAL_ATTR, trial_id)
        flat = dict(ot_trial.params)  # dotted keys (Ray unflattens only on "/")
        return self._apply(self._base_config, flat)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        value = result.get(self.metric)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return  # Optuna rejects NaN intermediate values; the criteria judge NaN
        self._values.setdefault(trial_id, []).append(float(value))
        # Optuna hears the last value at completion, not a SQLite commit per result: those
        # commits were nearly all of the driver's time per result (bench/driver_overhead.py).
        self._last_point[trial_id] = (int(result.get("training_iteration") or 0), float(value))

    # -- completion -------------------------------------------------------------------
    def on_trial_complete(self, trial_id: str, result: Optional[dict] = None, error: bool = False) -> None:
        if trial_id in self._group_of:
            self._seed_complete(trial_id, result, error)
            return
        if trial_id in libcompat.completed_of(self) or trial_id not in libcompat.trials_of(self):
            return
        ot_trial = libcompat.trials_of(self)[trial_id]
        libcompat.completed_of(self).add(trial_id)
        if self._finished_in_storage(ot_trial):
            return  # told before an interruption; never tell twice
        row = self._store.get(trial_id) or {}
        verdict = str(row.get("verdict") or ("error" if error else ""))
        state, value = self._state_for(trial_id, verdict, result, error)
        if verdict:
            ot_trial.set_user_attr(
                VERDICT_ATTR, {k: row.get(k) for k in ("verdict", "rule", "step", "metric", "value")}
            )
        if state != TrialState.FAIL:
            flag = constraint_for(verdict)
            ot_trial.set_user_attr(CONSTRAINT_ATTR, flag)
            ot_trial.set_constraint(CONSTRAINT_KEY, flag)  # read by constrained TPE / GP
        point = self._last_point.pop(trial_id, None)
        last = (result or {}).get(self.metric)
        if isinstance(last, (int, float)) and math.isfinite(last):
            point = (int(result.get("training_iteration") or 0), float(last))
        if point is not None and state != TrialState.FAIL:
            ot_trial.report(point[1], point[0])  # a PRUNED trial's value is its last report
        try:
            libcompat.study_of(self).tell(ot_trial, value, state=state)
        except Exception as exc:  # never leave the Optuna trial RUNNING
            log.warning("optuna tell(%s) failed (%s); marking it FAIL", trial_id, exc)
            libcompat.study_of(self).tell(ot_trial, None, state=TrialState.FAIL)
        self._values.pop(trial_id, None)  # the driver's memory stays bounded

    # -- repeats ----------------------------------------------------------------------
    def _closed(self, group: int) -> bool:
        """A seed's bad-rule stop closed the group: its remaining seeds never start."""
        if not self._repeats.stop_siblings:
            return False
        for tid in self._members[group]:
            row = self._store.get(tid)
            if row and stops_siblings(Verdict(str(row["verdict"]), rule=row.get("rule")), self._rules):
                return True
        return False

    def _seed_complete(self, trial_id: str, result: Optional[dict], error: bool) -> None:
        group = self._group_of[trial_id]
        done = self._done[group]
        if trial_id not in done:
            row = self._store.get(trial_id) or {}
            verdict = str(row.get("verdict") or (ERROR if error else ""))
            value = None if verdict == ERROR else self._objective(trial_id, result)
            last = self._last_point.pop(trial_id, None)
            done[trial_id] = {
                "trial_id": trial_id,
                "seed": self._base_seed + self._members[group].index(trial_id),
                "verdict": verdict,
                "rule": row.get("rule"),
                "step": row.get("step"),
                "objective": value,
                "last": last,
            }
            self._values.pop(trial_id, None)
        self._settle(group)

    def _settle(self, group: int) -> None:
        """Tell Optuna the config's verdict once every seed it will run is judged."""
        members = self._members[group]
        if any(t not in self._done[group] for t in members):
            return
        if len(members) < self._repeats.count and not self._closed(group):
            return  # seeds still to come
        first = members[0]
        ot_trial = libcompat.trials_of(self)[first]
        libcompat.completed_of(self).add(first)
        if self._finished_in_storage(ot_trial):
            return  # told before an interruption; never tell twice
        seeds = [self._done[group][t] for t in members]
        agg = aggregate([s["verdict"] for s in seeds], self._repeats.count, self._repeats.needed)
        mean, std = mean_std(s["objective"] for s in seeds)
        attrs = {
            "seeds": [{k: v for k, v in s.items() if k != "last"} for s in seeds],
            "objective_mean": mean,
            "objective_std": std,
            "agreement": agg.agreement,
            "split": list(agg.split),
        }
        ot_trial.set_user_attr(REPEATS_ATTR, attrs)
        ot_trial.set_user_attr(VERDICT_ATTR, {"verdict": agg.verdict, "agreement": agg.describe()})
        name, value = optuna_outcome(agg.verdict, mean)
        state = TrialState[name]
        if state != TrialState.FAIL:
            flag = constraint_for(agg.verdict)
            ot_trial.set_user_attr(CONSTRAINT_ATTR, flag)
            ot_trial.set_constraint(CONSTRAINT_KEY, flag)
            points = [s["last"] for s in seeds if s["last"] is not None]
            if points:  # a PRUNED config's value: the mean of its seeds' last reports
                ot_trial.report(sum(p[1] for p in points) / len(points), max(p[0] for p in points))
        try:
            libcompat.study_of(self).tell(ot_trial, value, state=state)
        except Exception as exc:  # never leave the Optuna trial RUNNING
            log.warning("optuna tell(config %s) failed (%s); marking it FAIL", group, exc)
            libcompat.study_of(self).tell(ot_trial, None, state=TrialState.FAIL)

    def _state_for(self, trial_id: str, verdict: str, result: Optional[dict], error: bool):
        if error:
            return TrialState.FAIL, None
        # no finite objective (or removed before it ran): FAIL
        name, value = optuna_outcome(verdict, self._objective(trial_id, result))
        return TrialState[name], value

    def _objective(self, trial_id: str, result: Optional[dict]) -> Optional[float]:
        last = (result or {}).get(self.metric)
        values = list(self._values.get(trial_id, []))
        if isinstance(last, (int, float)) and math.isfinite(last):
            if not values or values[-1] != last:
                values.append(float(last))
        return reduce_objective(values, self._objective_reduce, self.mode)

    def _finished_in_storage(self, ot_trial) -> bool:
        return libcompat.stored_trial(libcompat.study_of(self), ot_trial).state.is_finished()

    # -- save / restore ---------------------------------------------------------------
    def save(self, checkpoint_path: str) -> None:
        # the live stores are shared with the scheduler
        store, groups, self._store, self._groups = self._store, self._groups, None, None
        try:
            super().save(checkpoint_path)
        finally:
            self._store, self._groups = store, groups

    def restore(self, checkpoint_path: str) -> None:
        store, groups = self._store, self._groups
        super().restore(checkpoint_path)
        self._store, self._groups = store, groups
        self.reconcile()

    def reconcile(self) -> None:
        """After a resume: no Optuna trial stays RUNNING without a live Ray trial, none twice."""
        known = {t.number: tid for tid, t in libcompat.trials_of(self).items()}
        for frozen in libcompat.study_of(self).get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            tid = known.get(frozen.number)
            if tid is not None and tid in self._group_of:
                self._reconcile_group(self._group_of[tid])
                continue
            if tid is None:
                # asked after the last searcher checkpoint: its Ray trial was never saved
                study = libcompat.study_of(self)
                libcompat.live_trial(study, frozen).set_user_attr(LOST_ATTR, True)
                study.tell(frozen.number, None, state=TrialState.FAIL)
                # It never ran: ask again. The sampler's state is the checkpoint's, from before
                # this ask, so a sampled config comes again as it came before; an enqueued
                # point is queued again (killed inside ask(), its values are only there).
                params = libcompat.enqueued_params(frozen)
                if params:
                    libcompat.study_of(self).enqueue_trial(params, skip_if_exists=False)
                log.info(
                    "optuna trial %d had no Ray trial after resume; marked FAIL%s",
                    frozen.number,
                    " and its parameters queued again" if params else "",
                )
            elif tid in libcompat.completed_of(self) or self._store.get(tid) is not None:
                libcompat.completed_of(self).discard(tid)
                self.on_trial_complete(tid, self._reports_on_disk(tid), error=False)

    def _reports_on_disk(self, trial_id: str) -> Optional[dict]:
        """A trial judged before the kill but not told: its objective values as the uninterrupted
        sweep saw them, from its `result.json` (the checkpointed searcher has only the values up
        to its checkpoint), up to the verdict's step; the last report is returned as the result."""
        row = self._store.get(trial_id) or {}
        try:
            reports = read_results(self._store.path.parent / trial_id)
        except OSError:
            return None
        if row.get("step") is not None:
            reports = [
                r for r in reports if int(r.get("step", r.get("training_iteration", 0))) <= row["step"]
            ]
        values = [float(r[self.metric]) for r in reports if _finite(r.get(self.metric))]
        if values:
            self._values[trial_id] = values[:-1]
        return reports[-1] if reports else None

    def _reconcile_group(self, group: int) -> None:
        """After a resume: seeds judged after the last checkpoint are taken from the store."""
        for tid in self._members[group]:
            if tid not in self._done[group] and self._store.get(tid) is not None:
                self._seed_complete(tid, None, error=False)
        self._settle(group)
