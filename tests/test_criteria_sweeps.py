"""End-to-end sweeps (fake and replay backends, real Ray Tune + Optuna + criteria scheduler)
for the decisions of the criteria: a good rule's miss stops the trial where it is decided, a
forecasting bad rule stops a climb before the line, sparse reports are not NaN; each live
verdict equals the backtest of the trial's own recorded reports."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import optuna
import pytest

from archer_sweep.criteria import DECIDED
from archer_sweep.engine import runner
from archer_sweep.engine import sweep as cmd_run
from archer_sweep.planning.backtest import replay_criteria, settings_from_spec
from archer_sweep.results.analysis import load_sweep, stop_savings
from archer_sweep.results.history import load_histories
from archer_sweep.spec.model import SweepSpec
from tests.ray_session import local_ray_session
from tests.test_runner import fake_spec, verdicts
from trainable import metrics as M

REPO = str(Path(__file__).resolve().parents[1])
EC, KL = "algorithm.entropy_coeff", "algorithm.kl_loss_coef"
CLIMB, FALL = 0.012, 0.005
"""Fake-backend entropy: +0.2 a step from 4.5 (crosses 7 at step 12) / −0.06 a step."""

RULES = [
    {
        "name": "entropy_high",
        "metric": M.ENTROPY,
        "op": ">",
        "value": 7,
        "after_step": 2,
        "forecast": {"window": 4, "horizon": 10, "confidence": 0.9},
    },
    {"name": "entropy_band", "metric": M.ENTROPY, "between": [4.2, 6.0], "at_step": 8, "verdict": "good"},
]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    yield from local_ray_session()


def _points(*ecs):
    return [{EC: ec, KL: 0.01} for ec in ecs]


def _sweep(tmp_path, name, points, **over):
    spec = fake_spec(
        tmp_path,
        name=name,
        criteria=over.pop("criteria", RULES),
        search__num_samples=len(points),
        search__points_to_evaluate=points,
        trainable__config__trainer__total_steps=16,
        **over,
    )
    assert cmd_run.run(spec) == 0
    return spec, runner.sweep_dir_of(spec)


def _reports(sweep_dir: Path, trial_id: str) -> list[dict]:
    lines = (sweep_dir / trial_id / "result.json").read_text().splitlines()
    return [json.loads(x) for x in lines]


def _optuna(spec: SweepSpec, sweep_dir: Path) -> dict[str, optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=spec.name, storage=f"sqlite:///{sweep_dir}/study.db")
    return {t.user_attrs["ray_trial_id"]: t for t in study.trials}


def _same_as_backtest(spec: SweepSpec, sweep_dir: Path) -> None:
    """Each trial's live verdict and step = the backtest of its own recorded reports."""
    st = settings_from_spec(spec)
    for run in load_sweep(sweep_dir).runs:
        want = replay_criteria([run], spec.rules(), st)[0]
        assert (run.verdict["verdict"], run.verdict["step"]) == (want.verdict, want.stop_step), run.run_id
        assert run.verdict.get("reason") == want.reason


def test_forecast_and_stop_when_decided_in_a_live_sweep(tmp_path):
    spec, sweep_dir = _sweep(tmp_path, "decide", _points(CLIMB, FALL))
    rows = {r["params"][EC]: r for r in verdicts(sweep_dir)}
    climb, fall = rows[CLIMB], rows[FALL]
    # the climb is stopped by its forecast while its entropy is still below 7
    assert climb["verdict"] == "stopped:entropy_high" and climb["reason"].startswith(
        "forecast: crosses 7 at step ~"
    )
    assert climb["value"] < 7 and climb["step"] < 12
    assert _reports(sweep_dir, climb["trial_id"])[-1][M.STEP] == climb["step"]
    # the falling run misses the band at step 8: decided, stopped there (budget 16)
    assert (fall["verdict"], fall["step"], fall["reason"]) == ("unhealthy:entropy_band", 8, DECIDED)
    reports = _reports(sweep_dir, fall["trial_id"])
    assert reports[-1][M.STEP] == 8
    trials = _optuna(spec, sweep_dir)
    told = trials[fall["trial_id"]]
    assert told.state.name == "COMPLETE" and told.constraints == {"rules": 1.0}
    assert told.value == pytest.approx(reports[-1][M.SCORE_MEAN])  # the value at that step
    assert trials[climb["trial_id"]].state.name == "PRUNED"
    assert stop_savings(load_sweep(sweep_dir), 16)[:2] == (2, (16 - climb["step"]) + (16 - 8))
    _same_as_backtest(spec, sweep_dir)


def test_keep_running_after_a_decided_miss(tmp_path):
    spec, sweep_dir = _sweep(tmp_path, "keep", _points(FALL), scheduler={"stop_when_decided": False})
    (row,) = verdicts(sweep_dir)
    assert (row["verdict"], row["step"], row.get("reason")) == ("unhealthy:entropy_band", 8, None)
    reports = _reports(sweep_dir, row["trial_id"])
    assert reports[-1][M.STEP] == 16
    told = _optuna(spec, sweep_dir)[row["trial_id"]]
    assert told.state.name == "COMPLETE" and told.value == pytest.approx(reports[-1][M.SCORE_MEAN])


def test_live_sparse_key_is_skipped_but_a_never_reported_key_fails_loudly(tmp_path):
    rules = [
        {
            "name": "guessing",
            "metric": M.RESP_LEN_POS,
            "op": "<",
            "value": 20,
            "after_step": 1,
            "patience": 2,
        },
        {"name": "collapsed", "metric": M.LOGICAL_CONNECTIVES, "op": "<", "value": 0.01, "after_step": 5},
    ]
    fake = {"sparse_keys": [M.RESP_LEN_POS], "sparse_every": 2, "omit_keys": [M.LOGICAL_CONNECTIVES]}
    spec, sweep_dir = _sweep(tmp_path, "sparse", _points(FALL), criteria=rules, trainable__config__fake=fake)
    (row,) = verdicts(sweep_dir)
    # steps 3 and 5 lack the length: not observed, not NaN; the key never reported stops at 6
    assert (row["verdict"], row["rule"], row["step"]) == ("stopped:nan", "collapsed", 6)
    assert row["reason"] == "token/logical_connectives is missing (never reported)"


def _milestones(path: Path) -> Path:
    """Two recorded runs with a handful of steps each; v0 has its entropy only."""
    E, S, C = M.ENTROPY, M.SCORE_MEAN, M.LOGICAL_CONNECTIVES
    runs = {
        ("v0", 0.001): {s: {E: 4.5} for s in (10, 20, 30, 40)},
        ("v2", 0.01): {
            1: {E: 3.6, S: 0.2},
            10: {E: 4.0, C: 3.0},
            20: {S: 0.3},
            30: {E: 4.5},
            40: {S: 0.4, C: 2.5},
        },
    }
    lines = [
        {"run": run, "step": s, "params": {EC: ec, KL: 0.01}, "metrics": m}
        for (run, ec), steps in runs.items()
        for s, m in steps.items()
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_replay_of_a_milestone_history_equals_backtest(tmp_path, caplog):
    history = _milestones(tmp_path / "milestones.jsonl")
    rules = [
        {"name": "entropy_high", "metric": M.ENTROPY, "op": ">", "value": 7, "after_step": 3},
        {
            "name": "connectives_kept",
            "metric": M.LOGICAL_CONNECTIVES,
            "op": ">",
            "value": 2,
            "verdict": "good",
        },
        {
            "name": "score_good",
            "metric": M.SCORE_MEAN,
            "op": ">",
            "value": 0.2,
            "at_step": 20,
            "verdict": "good",
        },
    ]
    spec = fake_spec(
        tmp_path,
        name="milestones",
        trainable={"backend": "replay", "config": {"history": [str(history)]}},
        criteria=rules,
        search__num_samples=2,
        search__points_to_evaluate=_points(0.001, 0.01),
    )
    with caplog.at_level(logging.WARNING, logger="archer_sweep.engine.scheduler"):
        assert cmd_run.run(spec) == 0
    sweep_dir = runner.sweep_dir_of(spec)
    rows = {r["params"][EC]: r for r in verdicts(sweep_dir)}
    assert rows[0.001]["verdict"] == rows[0.01]["verdict"] == "healthy"
    warned = sorted(r.getMessage() for r in caplog.records if "never reports" in r.getMessage())
    tid = rows[0.001]["trial_id"]
    assert warned == [
        f"trial {tid} never reports {k}: the rules on it do not apply"
        for k in (M.SCORE_MEAN, M.LOGICAL_CONNECTIVES)
    ]
    recorded = {r.params[EC]: r for r in load_histories([history])}
    for ec, row in rows.items():
        want = replay_criteria([recorded[ec]], spec.rules(), settings_from_spec(spec))[0]
        assert (row["verdict"], row["step"] if want.stop_step else None) == (want.verdict, want.stop_step)
