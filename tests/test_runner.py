"""End-to-end sweeps on the fake backend: verdicts, Optuna states, a valid Ray Tune experiment."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import optuna
import pytest

from archer_sweep.engine import runner
from archer_sweep.engine import sweep as cmd_run
from archer_sweep.errors import UserError
from archer_sweep.spec.model import SweepSpec
from tests.ray_session import local_ray_session
from trainable import metrics as M

REPO = str(Path(__file__).resolve().parents[1])
FAKE = "tests.fake_backend:FakeTrainer"


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    yield from local_ray_session(WANDB_MODE="offline")


def fake_spec(tmp_path, name="fake", **over) -> SweepSpec:
    data = {
        "name": name,
        "trainable": {"backend": FAKE, "config": {"trainer": {"total_steps": 10}}},
        "search": {
            "num_samples": 4,
            "max_concurrent": 2,
            "sampler": {"type": "tpe", "seed": 0, "n_startup_trials": 2},
            "space": {
                "algorithm.entropy_coeff": {"type": "loguniform", "low": 1e-3, "high": 3e-2},
                "algorithm.kl_loss_coef": {"type": "loguniform", "low": 1e-3, "high": 1e-1},
            },
            "points_to_evaluate": [
                {"algorithm.entropy_coeff": 0.03, "algorithm.kl_loss_coef": 0.01},
                {"algorithm.entropy_coeff": 0.005, "algorithm.kl_loss_coef": 0.01},
            ],
        },
        "criteria": [
            {"name": "entropy_high", "metric": M.ENTROPY, "op": ">", "value": 7, "after_step": 2},
            {"name": "entropy_band", "metric": M.ENTROPY, "between": [3, 6], "verdict": "good"},
        ],
        "storage": {"path": str(tmp_path / "results")},
        "tracking": {"wandb": {"mode": "disabled"}},
        "checkpoint": {"frequency": 4},
    }
    for key, value in over.items():
        node = data
        *parents, leaf = key.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return SweepSpec.model_validate(data)


def verdicts(sweep_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (sweep_dir / "verdicts.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One small sweep shared by the checks below (runs once, ~10 s)."""
    tmp = tmp_path_factory.mktemp("sweep")
    spec = fake_spec(tmp)
    code = cmd_run.run(spec)
    return code, runner.sweep_dir_of(spec), spec


def test_sweep_runs_and_stops_the_entropy_trial_with_rule_step_value(finished, capsys):
    code, sweep_dir, _ = finished
    assert code == 0
    rows = verdicts(sweep_dir)
    assert len(rows) == 4 and len({r["trial_id"] for r in rows}) == 4
    stopped = [r for r in rows if r["verdict"] == "stopped:entropy_high"]
    assert stopped, rows
    for r in stopped:
        assert r["rule"] == "entropy_high" and r["metric"] == M.ENTROPY and r["value"] > 7
        assert 2 < r["step"] < 10
    # the stopped trial really stopped: it reported nothing after the firing step
    first = stopped[0]
    reports = [
        json.loads(x) for x in (sweep_dir / first["trial_id"] / "result.json").read_text().splitlines()
    ]
    assert reports[-1][M.STEP] == first["step"]
    assert any(r["verdict"] == "healthy" for r in rows)
    assert rows[0]["params"]["algorithm.entropy_coeff"] in (0.03, 0.005)


def test_study_shows_stopped_trials_as_pruned_and_none_running(finished):
    _, sweep_dir, spec = finished
    study = optuna.load_study(study_name=spec.name, storage=f"sqlite:///{sweep_dir}/study.db")
    by_ray = {t.user_attrs["ray_trial_id"]: t for t in study.trials}
    for r in verdicts(sweep_dir):
        state = by_ray[r["trial_id"]].state
        expected = "PRUNED" if r["verdict"].startswith("stopped:") else "COMPLETE"
        assert state.name == expected, (r, state)
    assert not [t for t in study.trials if t.state.name in ("RUNNING", "WAITING")]
    seeds = sorted(t.params["algorithm.entropy_coeff"] for t in study.trials[:2])
    assert seeds == [0.005, 0.03]


def test_sweep_dir_is_a_loadable_ray_tune_experiment(finished):
    from ray import tune
    from ray.tune import ExperimentAnalysis

    from trainable import GRPOTrainable

    _, sweep_dir, _ = finished
    analysis = ExperimentAnalysis(str(sweep_dir))
    assert len(analysis.trials) == 4
    grid = tune.Tuner.restore(str(sweep_dir), trainable=GRPOTrainable).get_results()
    assert len(grid) == 4 and grid.errors == []
    assert (sweep_dir / "spec.yaml").read_text().count("entropy_high") == 1


def test_load_results_has_a_row_per_trial_and_step(finished):
    import archer_sweep

    _, sweep_dir, _ = finished
    frame = archer_sweep.load_results(sweep_dir)
    counts = frame.groupby("trial_id")["step"].count()
    for r in verdicts(sweep_dir):
        expected = r["step"]
        assert counts[r["trial_id"]] == expected
        sub = frame[frame.trial_id == r["trial_id"]]
        assert set(sub["verdict"]) == {r["verdict"]}
        assert set(sub["param:algorithm.entropy_coeff"]) == {r["params"]["algorithm.entropy_coeff"]}
    assert {M.ENTROPY, M.SCORE_MEAN, "verdict_rule", "verdict_step"} <= set(frame.columns)


def test_summary_names_best_healthy_and_each_stop(finished, capsys):
    from archer_sweep.engine.live import summary

    _, sweep_dir, spec = finished
    text = summary(sweep_dir, spec.search.metric, "max", 4, budget=10)
    assert "Best healthy trial: " in text and "none" not in text.split("Best healthy trial:")[1][:6]
    assert "stopped:entropy_high at step " in text and "actor/entropy=" in text
    stopped = [r for r in verdicts(sweep_dir) if r["verdict"].startswith("stopped:")]
    spared = sum(10 - r["step"] for r in stopped)
    assert re.search(
        rf"^Stopped early: {len(stopped)} of 4 trials; {spared} of the sweep's 40 "
        rf"trial-steps not run \(\d+%\), about \d+\.\d min of trial time",
        text,
        re.M,
    )
    assert f"Results: {sweep_dir}" in text


def test_second_run_on_the_same_dir_is_refused(finished):
    _, sweep_dir, spec = finished
    with pytest.raises(
        UserError,
        match=r"already holds a sweep \(tuner.pkl, verdicts.jsonl, "
        r"study.db\); continue it with `archer-sweep resume ",
    ):
        cmd_run.run(spec)


def test_lock_refuses_a_concurrent_run(tmp_path):
    with runner.SweepLock(tmp_path):
        with pytest.raises(
            UserError, match=f"another archer-sweep run is using this sweep \\(pid {os.getpid()}\\)"
        ):
            with runner.SweepLock(tmp_path):
                pass
    with runner.SweepLock(tmp_path):  # released again
        pass


def test_crashing_trials_get_error_verdicts_and_fail_in_optuna(tmp_path):
    spec = fake_spec(
        tmp_path, name="crash", search__num_samples=2, trainable__config__fake={"fail_at_step": 3}
    )
    assert cmd_run.run(spec, live=False) == 1  # every trial crashed: the run failed
    sweep_dir = runner.sweep_dir_of(spec)
    rows = verdicts(sweep_dir)
    assert [r["verdict"] for r in rows] == ["error", "error"]
    assert all(r["reason"] == "RuntimeError: fake failure at step 3" for r in rows)
    study = optuna.load_study(study_name="crash", storage=f"sqlite:///{sweep_dir}/study.db")
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]


@pytest.mark.parametrize(
    "failure, hang, step, reason",
    [
        # a step that hangs after earlier reports
        ({"step_timeout_s": 3}, {"hang_at_step": 3}, 3, r"step 3 still running after .*"),
        # a hang while the trainer is built or in step 1 leaves no report to time steps from
        (
            {"step_timeout_s": 3},
            {"hang_at_step": 1},
            1,
            r"no report \(setup and step 1\) after \d+s > step_timeout_s=3",
        ),
        (
            {"start_timeout_s": 3},
            {"hang_in_init": True},
            1,
            r"no report \(setup and step 1\) after \d+s > start_timeout_s=3",
        ),
    ],
)
def test_a_hung_trial_is_stopped_as_timeout(tmp_path, failure, hang, step, reason):
    import time

    spec = fake_spec(
        tmp_path,
        name="hang",
        search__num_samples=1,
        failure=failure,
        trainable__config__fake={**hang, "hang_s": 120},
    )
    start = time.time()
    assert cmd_run.run(spec, live=False) == 0
    assert time.time() - start < 90  # not the 120 s hang
    sweep_dir = runner.sweep_dir_of(spec)
    (row,) = verdicts(sweep_dir)
    assert (row["verdict"], row["rule"], row["step"]) == ("stopped:timeout", "timeout", step)
    assert re.fullmatch(reason, row["reason"])
    study = optuna.load_study(study_name="hang", storage=f"sqlite:///{sweep_dir}/study.db")
    assert [t.state.name for t in study.trials] == ["PRUNED"]


@pytest.mark.slow
def test_offline_wandb_run_per_trial(tmp_path):
    spec = fake_spec(tmp_path, name="wb", search__num_samples=2, tracking={"wandb": {"mode": "offline"}})
    assert cmd_run.run(spec, live=False) == 0
    sweep_dir = runner.sweep_dir_of(spec)
    for r in verdicts(sweep_dir):
        runs = list((sweep_dir / r["trial_id"]).glob("wandb/offline-run-*"))
        assert len(runs) == 1, list((sweep_dir / r["trial_id"]).iterdir())
    assert "WANDB_API_KEY" not in (sweep_dir / "spec.yaml").read_text()


def test_custom_backend_by_import_path():
    from trainable.backends import backend_entry
    from trainable.config import ConfigError

    entry = backend_entry(FAKE)
    assert (entry.trainer, entry.config) == (FAKE, "tests.fake_backend:FakeConfig")
    with pytest.raises(
        ConfigError,
        match=r"^backend: cannot import custom backend "
        r"`tests.nowhere:Trainer`: No module named "
        r"'tests.nowhere' \(expected `package.module:Class`",
    ):
        backend_entry("tests.nowhere:Trainer")


def test_online_wandb_needs_the_key_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "disabled")  # restored after the test
    spec = fake_spec(tmp_path, tracking={"wandb": {"mode": "online"}})
    with pytest.raises(
        UserError,
        match=r"^tracking.wandb.mode is online but WANDB_API_KEY is "
        r"not set in the environment \(expected the key there, "
        r"never in the spec\)$",
    ):
        runner.configure_env(spec)
