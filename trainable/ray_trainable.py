"""`GRPOTrainable`: the Ray Tune Trainable that wraps any backend's Trainer.

One `step()` of Tune = one GRPO step. Metric keys contain '/', which Tune accepts
as flat result keys. `done` is set when the trainer's budget is used up (or its
external process exited), so no `stop=` dict is needed.

With `_keep_best: {metric, mode}` in the config (the engine sets it for
`search.objective_reduce: best`), each report carries `checkpoint/score` (Ray's checkpoint
score attribute) and a new best value of the metric asks Tune for a checkpoint at that step
(`should_checkpoint`), so the best step always has one and the score order keeps it.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from ray import tune

from trainable import metrics as M
from trainable.trainer import WATCH_KEY, build_trainer

KEEP_BEST = "_keep_best"
"""Config key (popped in setup): {"metric": objective, "mode": "max" | "min"}."""
_BEST_FILE = "keep_best.json"


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
        self._keep = config.pop(KEEP_BEST, None)
        self._best = -math.inf  # the best signed objective so far (saved with checkpoints)
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
        if self._keep:
            self._score(result)
        return result

    def _score(self, result: dict[str, Any]) -> None:
        value = result.get(self._keep["metric"])
        sign = 1.0 if self._keep.get("mode", "max") == "max" else -1.0
        ok = isinstance(value, (int, float)) and math.isfinite(value)
        score = sign * float(value) if ok else -math.inf
        result[M.CHECKPOINT_SCORE] = score
        if score > self._best:
            self._best = score
            result[tune.result.SHOULD_CHECKPOINT] = True
            if hasattr(self.trainer, "keep_best"):  # an external trainer's own checkpoint
                self.trainer.keep_best(int(result.get(M.STEP, self.iteration + 1)))

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        self.trainer.save(checkpoint_dir)
        if self._keep:
            with open(os.path.join(checkpoint_dir, _BEST_FILE), "w") as f:
                json.dump({"best": self._best}, f)

    def load_checkpoint(self, checkpoint: str | dict) -> None:
        self.trainer.load(checkpoint)
        path = os.path.join(str(checkpoint), _BEST_FILE)
        if self._keep and os.path.exists(path):
            with open(path) as f:
                self._best = float(json.load(f)["best"])

    def cleanup(self) -> None:
        if self._trainer is not None:
            self._trainer.close()
