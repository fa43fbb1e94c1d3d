"""`sampler: gp` learns from rule-stopped trials (Optuna's GPSampler alone models COMPLETE ones)."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from archer_sweep.engine.gp_sampler import RulesAwareGPSampler, as_finished
from archer_sweep.engine.searcher import CONSTRAINT_KEY, make_sampler

SPACE = {"x": FloatDistribution(0.0, 1.0)}
RUNAWAY_FROM = 0.6


def _constraint(flag: float) -> dict:
    # where Optuna keeps Trial.set_constraint's values (FrozenTrial.constraints reads them back)
    study = optuna.create_study()
    t = study.ask(SPACE)
    t.set_constraint(CONSTRAINT_KEY, flag)
    return dict(study._storage.get_trial(t._trial_id).system_attrs)


def _history(sampler) -> optuna.Study:
    """Healthy trials whose score rises with x up to 0.5, and runaways (x >= 0.6) the rules
    stopped while their score was highest: told PRUNED, constraint violated."""
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for x in (0.05, 0.15, 0.25, 0.35, 0.45, 0.5):
        study.add_trial(
            create_trial(params={"x": x}, distributions=SPACE, value=x, system_attrs=_constraint(-1.0))
        )
    for x in (0.6, 0.7, 0.8, 0.9, 1.0):
        study.add_trial(
            create_trial(
                params={"x": x},
                distributions=SPACE,
                state=TrialState.PRUNED,
                intermediate_values={1: 0.8, 2: 0.9},
                system_attrs=_constraint(1.0),
            )
        )
    return study


def _runaway_share(sampler_cls, seeds=range(4), asks=3) -> float:
    hits = total = 0
    for seed in seeds:
        study = _history(sampler_cls(seed=seed, n_startup_trials=3))
        for _ in range(asks):
            t = study.ask(SPACE)
            hits += t.params["x"] >= RUNAWAY_FROM
            total += 1
            study.tell(t, state=TrialState.FAIL)  # keep the history as it is
    return hits / total


def test_a_stopped_trial_is_shown_as_finished_with_its_last_report_and_constraint():
    pruned = [t for t in _history(optuna.samplers.RandomSampler()).trials if t.state == TrialState.PRUNED]
    shown = as_finished(pruned[0])
    assert (shown.state, shown.value, shown.constraints) == (TrialState.COMPLETE, 0.9, {CONSTRAINT_KEY: 1.0})
    assert pruned[0].state == TrialState.PRUNED  # the study's own trial is not changed
    silent = create_trial(params={"x": 0.7}, distributions=SPACE, state=TrialState.PRUNED)
    assert as_finished(silent) is None


def test_the_gp_of_sampler_gp_stays_out_of_where_the_rules_stopped_trials():
    # Optuna's GP sees only the rising healthy scores and proposes past them, into the
    # runaways; the rules-aware one has the runaways as infeasible points and avoids them
    plain = _runaway_share(optuna.samplers.GPSampler)
    aware = _runaway_share(RulesAwareGPSampler)
    assert plain >= 0.5, plain
    assert aware <= 0.1, aware


@pytest.mark.parametrize("kind", ["gp"])
def test_the_spec_sampler_gp_is_the_rules_aware_one(kind):
    assert isinstance(make_sampler(kind, 0, 3, SPACE), RulesAwareGPSampler)
