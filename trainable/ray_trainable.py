"""`GRPOTrainable`: the Ray Tune Trainable that wraps any backend's Trainer.

One `step()` of Tune = one GRPO step. Metric keys contain '/', which Tune accepts
as flat result keys. `done` is set when the trainer's budget is used up (or its
external process exited), so no `stop=` dict is needed.
"""

from __future__ import annotations

from typing import Any

from ray import tune

from trainable.trainer import WATCH_KEY, build_trainer


class GRPOTrainable(tune.Trainable):
    def setup(self, config: dict[str, Any]) -> None:
        # Ray passes the trial dir through `self.trial_name`/`self.logdir`; backends that
        # launch processes (command) want a unique name and a place for their output.
        config = dict(config)
        storage = getattr(self, "_storage", None)  # Ray's persistent trial dir (local storage)
        config.setdefault(
            "_trial",
            {
                "name": self.trial_name,
                "id": self.trial_id,
                "dir": self.logdir,
                "storage_dir": getattr(storage, "trial_fs_path", None),
                "experiment": getattr(storage, "experiment_dir_name", None),
            },
        )
        self._trial = config.pop("_trial")
        self._trial["watch"] = config.pop(WATCH_KEY, None) or {}
        self._config = config
        self._trainer = None

    @property
    def trainer(self):
        """Built on first use (step 1 or a restore), not in `setup`: Tune marks a trial
        RUNNING only once setup returns, and the scheduler's start watchdog
        (`failure.start_timeout_s`) times RUNNING trials, so a model load that hangs is
        caught there rather than leaving the trial PENDING for ever."""
        if self._trainer is None:
            self._trainer = build_trainer(self._config)
            if hasattr(self._trainer, "attach_trial"):
                self._trainer.attach_trial(self._trial)
        return self._trainer

    def step(self) -> dict[str, Any]:
        result = dict(self.trainer.step())
        result["done"] = bool(self.trainer.done())
        return result

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        self.trainer.save(checkpoint_dir)

    def load_checkpoint(self, checkpoint: str | dict) -> None:
        self.trainer.load(checkpoint)

    def cleanup(self) -> None:
        if self._trainer is not None:
            self._trainer.close()
