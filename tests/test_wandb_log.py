"""`DriverWandbLoggerCallback`: Ray's W&B callback with each trial's run on a driver thread.

Driven the way Tune's controller calls a `LoggerCallback`, without Ray: the runs are real
wandb offline runs (wandb 0.31, Ray 2.60), read back with archer-sweep's own reader."""

from __future__ import annotations

import pickle
import threading
from pathlib import Path

import pytest

from archer_sweep.engine.wandb_log import DriverWandbLoggerCallback
from archer_sweep.results.wandb_reader import is_complete, read_wandb_run


class FakeTrial:
    """The attributes of a Tune `Trial` that Ray's W&B callback reads."""

    def __init__(self, trial_id: str, root: Path, config: dict):
        self.trial_id = trial_id
        self.config = config
        self.local_path = str(root / trial_id)
        self.experiment_dir_name = "exp"
        Path(self.local_path).mkdir(parents=True)

    def __str__(self) -> str:
        return self.trial_id


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")  # as runner.configure_env sets it


def result(step: int, value: float, config: dict) -> dict:
    return {"training_iteration": step, "m/value": value, "done": False, "config": config}


def test_interleaved_trials_each_get_their_own_offline_run(tmp_path):
    callback = DriverWandbLoggerCallback(project="p", group="g", log_config=True, mode="offline")
    callback.setup()
    trials = [FakeTrial(f"t{i}", tmp_path, {"lr": 0.1 * (i + 1)}) for i in range(2)]
    for t in trials:
        callback.log_trial_start(t)
    for step in (1, 2, 3):  # results of both trials alternate, as with max_concurrent 2
        for i, t in enumerate(trials):
            callback.log_trial_result(step, t, result(step, 10 * i + step, t.config))
    for t in trials:
        callback.log_trial_end(t)
    callback.on_experiment_end(trials)
    assert callback._trial_logging_actors == {} and callback._trial_queues == {}
    assert not [th for th in threading.enumerate() if th.name.startswith("wandb-t")]
    for i, t in enumerate(trials):
        (path,) = Path(t.local_path).glob(f"wandb/offline-run-*/run-{t.trial_id}.wandb")
        run = read_wandb_run(path)
        assert run.params == {"lr": t.config["lr"]}
        assert [s["m/value"] for s in run.steps] == [10 * i + 1, 10 * i + 2, 10 * i + 3]
        # what the callback waits for after finish(): a file cut before wandb's exit record is not complete
        assert is_complete(path)
        cut = tmp_path / f"cut-{t.trial_id}.wandb"
        cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        assert not is_complete(cut) and not is_complete(tmp_path / "none.wandb")


def test_a_failing_init_is_logged_and_the_sweep_goes_on(tmp_path, monkeypatch, caplog):
    import wandb

    def refuse(**kwargs):
        raise RuntimeError("no W&B today")

    monkeypatch.setattr(wandb, "init", refuse)
    callback = DriverWandbLoggerCallback(project="p", mode="offline")
    callback.setup()
    trial = FakeTrial("t0", tmp_path, {})
    callback.log_trial_result(1, trial, result(1, 1.0, {}))
    callback.log_trial_end(trial)
    callback.on_experiment_end([trial])
    assert "W&B logging of trial t0 failed" in caplog.text
    assert callback._trial_logging_actors == {}


def test_pickles_without_its_threads(tmp_path):
    callback = DriverWandbLoggerCallback(project="p", mode="offline")
    callback.setup()
    trial = FakeTrial("t0", tmp_path, {})
    callback.log_trial_start(trial)
    copy = pickle.loads(pickle.dumps(callback))  # tuner.pkl holds the Tuner's callbacks
    assert copy._trial_logging_actors == {} and copy.project == "p"
    callback.end_all()
    assert callback._trial_logging_actors == {}


def test_old_wandb_without_create_new_is_a_user_error(monkeypatch):
    import wandb

    from archer_sweep.errors import UserError

    def old_settings(**kwargs):
        raise ValueError("reinit: Input should be 'default', 'return_previous' or 'finish_previous'")

    monkeypatch.setattr(wandb, "Settings", old_settings)
    with pytest.raises(UserError, match=r"^tracking.wandb: wandb .* cannot keep several runs open"):
        DriverWandbLoggerCallback(project="p", mode="offline").setup()
