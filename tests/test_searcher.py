"""CriteriaOptunaSearch: verdicts become Optuna states; the study persists and resumes clean."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from archer_sweep.criteria import Verdict
from archer_sweep.engine.searcher import (
    CONSTRAINT_ATTR,
    CriteriaOptunaSearch,
    make_sampler,
    verdict_constraints,
)
from archer_sweep.engine.verdicts import VerdictStore
from trainable import metrics as M

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {
    "algorithm.entropy_coeff": FloatDistribution(1e-4, 5e-2, log=True),
    "algorithm.kl_loss_coef": FloatDistribution(1e-3, 1e-1, log=True),
}
BASE = {"backend": "tiny", "algorithm": {"kl_loss_type": "low_var_kl"}, "trainer": {"total_steps": 8}}
SEEDS = [
    {"algorithm.entropy_coeff": 0.01, "algorithm.kl_loss_coef": 0.01},
    {"algorithm.entropy_coeff": 0.005},
]


def make(tmp_path, store=None, kind="tpe", **kw):
    store = store or VerdictStore(tmp_path)
    searcher = CriteriaOptunaSearch(
        SPACE,
        metric=M.SCORE_MEAN,
        mode="max",
        store=store,
        base_config=BASE,
        sampler=make_sampler(kind, 0, 2, SPACE),
        storage_url=f"sqlite:///{tmp_path}/study.db",
        study_name="s",
        points_to_evaluate=SEEDS,
        **kw,
    )
    return searcher, store


def study(tmp_path):
    return optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path}/study.db")


def feed(searcher, tid, scores):
    for i, s in enumerate(scores, 1):
        searcher.on_trial_result(tid, {M.SCORE_MEAN: s, "training_iteration": i})


def test_suggest_returns_the_nested_config_and_seeds_come_first(tmp_path):
    searcher, _ = make(tmp_path)
    first, second = searcher.suggest("a"), searcher.suggest("b")
    assert first == {
        "backend": "tiny",
        "trainer": {"total_steps": 8},
        "algorithm": {"kl_loss_type": "low_var_kl", "entropy_coeff": 0.01, "kl_loss_coef": 0.01},
    }
    assert second["algorithm"]["entropy_coeff"] == 0.005
    assert 1e-3 <= second["algorithm"]["kl_loss_coef"] <= 1e-1  # the unseeded key is sampled
    assert BASE["algorithm"] == {"kl_loss_type": "low_var_kl"}  # base not mutated


def test_verdicts_map_to_pruned_complete_with_constraint_and_fail(tmp_path):
    searcher, store = make(tmp_path)
    for tid in "abcd":
        searcher.suggest(tid)
        feed(searcher, tid, [0.2, 0.4])
    store.record("a", {}, Verdict("stopped:entropy_high", "entropy_high", 2, M.ENTROPY, 7.3))
    store.record("b", {}, Verdict("healthy", step=2))
    store.record("c", {}, Verdict("unhealthy:entropy_band", "entropy_band", 2, M.ENTROPY, 2.0))
    store.record("d", {}, Verdict("error", step=2, reason="RuntimeError: boom"))
    # Ray's own OptunaSearch would report "a" as COMPLETE with 0.4 (docs/facts.md)
    searcher.on_trial_complete("a", {M.SCORE_MEAN: 0.4})
    searcher.on_trial_complete("b", {M.SCORE_MEAN: 0.5})
    searcher.on_trial_complete("c", {M.SCORE_MEAN: 0.6})
    searcher.on_trial_complete("d", None, error=True)
    trials = study(tmp_path).trials
    assert [t.state for t in trials] == [
        TrialState.PRUNED,
        TrialState.COMPLETE,
        TrialState.COMPLETE,
        TrialState.FAIL,
    ]
    assert [t.value for t in trials[1:3]] == [0.5, 0.6]
    assert [verdict_constraints(t) for t in trials[:3]] == [[1.0], [-1.0], [1.0]]
    assert trials[0].user_attrs["archer_verdict"]["rule"] == "entropy_high"
    # stored where Optuna 5's constrained TPE / GP read it
    assert [t.constraints for t in trials[:3]] == [{"rules": 1.0}, {"rules": -1.0}, {"rules": 1.0}]


def test_no_double_tell_and_nan_objective_fails(tmp_path):
    searcher, store = make(tmp_path)
    searcher.suggest("a")
    store.record("a", {}, Verdict("healthy", step=1))
    searcher.on_trial_result("a", {M.SCORE_MEAN: float("nan"), "training_iteration": 1})
    searcher.on_trial_complete("a", {M.SCORE_MEAN: float("nan")})
    searcher.on_trial_complete("a", {M.SCORE_MEAN: 0.9})
    t = study(tmp_path).trials[0]  # trials[1] is the second seed, still WAITING
    assert t.state == TrialState.FAIL and t.value is None


def test_objective_reduce_best(tmp_path):
    searcher, store = make(tmp_path, objective_reduce="best")
    searcher.suggest("a")
    feed(searcher, "a", [0.2, 0.7, 0.3])
    store.record("a", {}, Verdict("healthy", step=3))
    searcher.on_trial_complete("a", {M.SCORE_MEAN: 0.3})
    assert study(tmp_path).trials[0].value == 0.7


def test_save_restore_keeps_the_live_store_and_reconciles_orphans(tmp_path):
    searcher, store = make(tmp_path)
    searcher.suggest("a")
    searcher.suggest("b")
    ckpt = tmp_path / "searcher.pkl"
    searcher.save(str(ckpt))
    searcher.suggest("c")  # asked after the checkpoint: lost when the driver dies
    store.record("a", {}, Verdict("stopped:entropy_high", "entropy_high", 3, M.ENTROPY, 7.5))
    searcher.on_trial_complete("a", {M.SCORE_MEAN: 0.1})  # told, then the driver dies
    # resume: a new searcher from tuner.pkl, then Tune restores the checkpoint
    fresh, _ = make(tmp_path / "..", store=VerdictStore(tmp_path))
    fresh.restore(str(ckpt))
    assert fresh._store is not None and fresh._store.get("a")["verdict"] == "stopped:entropy_high"
    states = [t.state for t in study(tmp_path).trials if t.state != TrialState.WAITING]
    # a: PRUNED once (not told twice); b: still RUNNING (its Ray trial resumes); c: orphan -> FAIL
    assert states == [TrialState.PRUNED, TrialState.RUNNING, TrialState.FAIL]
    fresh.on_trial_complete("a", {M.SCORE_MEAN: 0.1})
    store.record("b", {}, Verdict("healthy", step=8))
    fresh.on_trial_complete("b", {M.SCORE_MEAN: 0.4})
    states = [t.state for t in study(tmp_path).trials if t.state != TrialState.WAITING]
    assert states == [TrialState.PRUNED, TrialState.COMPLETE, TrialState.FAIL]


def test_a_point_asked_but_killed_before_its_params_were_written_is_asked_again(tmp_path):
    searcher, store = make(tmp_path)
    ckpt = tmp_path / "searcher.pkl"
    searcher.save(str(ckpt))
    # the driver dies inside ask(): the trial exists (RUNNING) and took the enqueued
    # point, but no parameter value was written yet (params {}, fixed_params set)
    study(tmp_path).ask()
    fresh, _ = make(tmp_path / "..", store=VerdictStore(tmp_path))
    fresh.restore(str(ckpt))
    trials = study(tmp_path).trials
    lost = [t for t in trials if t.state == TrialState.FAIL]
    assert len(lost) == 1 and lost[0].params == {} and lost[0].system_attrs["fixed_params"] == SEEDS[0]
    # both seed points still run (the lost one queued again), not a TPE sample in its place
    asked = {
        (c["algorithm"]["entropy_coeff"], c["algorithm"].get("kl_loss_coef"))
        for c in (fresh.suggest("x"), fresh.suggest("y"))
    }
    assert (0.01, 0.01) in asked and 0.005 in {e for e, _ in asked}


@pytest.mark.parametrize("kind", ["tpe", "random", "gp", "cmaes", "qmc", "feasible"])
def test_every_sampler_builds_and_suggests(tmp_path, kind):
    sampler = make_sampler(kind, 0, 1, SPACE)
    s = optuna.create_study(sampler=sampler)
    t = s.ask(SPACE)
    assert set(t.params) == set(SPACE)


def test_unknown_sampler_and_grid_on_floats_are_refused():
    with pytest.raises(ValueError, match="unknown sampler kind='bo'"):
        make_sampler("bo", 0, 1, SPACE)
    with pytest.raises(ValueError, match="grid sampler needs choice/int/fixed parameters"):
        make_sampler("grid", 0, 1, SPACE)


def test_constraint_attr_name_is_stable():
    assert CONSTRAINT_ATTR == "archer_constraint"
