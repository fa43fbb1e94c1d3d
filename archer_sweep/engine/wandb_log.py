"""Ray Tune's W&B callback with each trial's run logged from a driver thread, not a Ray actor.

Ray's `WandbLoggerCallback` starts two Ray actors per trial (a queue and a logger that
imports wandb and starts its own wandb-core service): three new processes per trial
counting the trainable's, each importing ray, and on a 2-core machine they ran during the
trial's first step and about doubled it. `DriverWandbLoggerCallback` keeps everything Ray's
callback decides (`wandb.init` arguments, config cleaning, excluded keys, keys sent to the
config, one run per trial in `<trial dir>/wandb/`) and replaces only the transport: one
thread per trial in the driver, every run on the driver's one wandb-core service
(`reinit="create_new"`, wandb >= 0.19.10). The Ray internals it subclasses are listed
in `libcompat.PRIVATE_ATTRS`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import urllib.error
from pathlib import Path

from ray.air.constants import TRAINING_ITERATION
from ray.air.integrations.wandb import (
    WandbLoggerCallback,
    _QueueItem,
    _run_wandb_process_run_info_hook,
    _WandbLoggingActor,
)

from archer_sweep.errors import UserError
from archer_sweep.results.wandb_reader import is_complete

log = logging.getLogger(__name__)
#: How long a finished run's file may take to be written before the sweep goes on without it.
WRITE_WAIT_S = 30

# wandb starts its service on the first init; two trials starting at once wait for one.
_INIT_LOCK = threading.Lock()


def _wait_until_written(path: Path, trial: str) -> None:
    """Wait for wandb-core to finish writing the run's file: with two runs open in one
    process, `finish()` returned once in ~8 (wandb 0.31) with the file still a bare header
    (complete ~1 s later), so a report read right after the sweep saw an empty run."""
    deadline = time.monotonic() + WRITE_WAIT_S
    while not is_complete(path):
        if time.monotonic() > deadline:
            log.warning(
                "W&B: trial %s's run file %s is still incomplete after %d s", trial, path, WRITE_WAIT_S
            )
            return
        time.sleep(0.05)


class _TrialRun(_WandbLoggingActor):
    """One trial's run: Ray's logging actor body (its `_handle_result` included) in a
    thread, logging through its own `Run` rather than the process-global `wandb.log`."""

    def __init__(self, logdir: str, items: queue.Queue, exclude, to_config, **init_kwargs):
        import wandb

        self._wandb = wandb
        self.queue = items
        self._exclude = set(exclude)
        self._to_config = set(to_config)
        self._logdir = logdir
        self._trial_name = init_kwargs.get("name", "unknown")
        self.kwargs = init_kwargs
        self.thread = threading.Thread(target=self._main, name=f"wandb-{self._trial_name}", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        try:
            self.run()
        except Exception:  # a tracking failure must not end the sweep (as in Ray's actor)
            log.exception("W&B logging of trial %s failed", self._trial_name)

    def run(self) -> None:
        # dir: the actor chdir'd into the trial dir instead. The driver's console is the
        # live table of all trials, not this trial's output: not captured.
        settings = self._wandb.Settings(console="off")
        kwargs = {"settings": settings, **self.kwargs, "dir": self._logdir, "reinit": "create_new"}
        with _INIT_LOCK:
            run = self._wandb.init(**kwargs)
        try:
            run.config.trial_log_path = self._logdir
            _run_wandb_process_run_info_hook(run)
            self._log_until_end(run)
        finally:
            run.finish()
            _wait_until_written(Path(run.settings.sync_file), self._trial_name)

    def _log_until_end(self, run) -> None:
        while True:
            kind, item = self.queue.get()
            if kind == _QueueItem.END:
                break
            if kind == _QueueItem.CHECKPOINT:
                artifact = self._wandb.Artifact(name=f"checkpoint_{self._trial_name}", type="model")
                artifact.add_dir(item)
                run.log_artifact(artifact)
                continue
            metrics, config_update = self._handle_result(item)
            try:
                run.config.update(config_update, allow_val_change=True)
                run.log(metrics, step=metrics.get(TRAINING_ITERATION))
            except (urllib.error.HTTPError, FileNotFoundError) as exc:  # as Ray: skip a point
                log.warning("W&B: did not log a result of trial %s: %s", self._trial_name, exc)

    def alive(self) -> bool:
        return self.thread.is_alive()


class DriverWandbLoggerCallback(WandbLoggerCallback):
    """`WandbLoggerCallback` whose per-trial logger is a `_TrialRun` thread."""

    def setup(self, *args, **kwargs) -> None:
        super().setup(*args, **kwargs)
        import wandb

        try:
            wandb.Settings(reinit="create_new")
        except Exception:  # pydantic's validation error: an older wandb
            raise UserError(
                f"tracking.wandb: wandb {wandb.__version__} cannot keep several runs open in "
                "one process (expected wandb >= 0.19.10: pip install -U wandb)"
            ) from None

    def _start_logging_actor(self, trial, exclude_results, **wandb_init_kwargs) -> None:
        if trial in self._trial_logging_actors:  # a restarted trial keeps its run (as Ray)
            return
        items: queue.Queue = queue.Queue()
        self._trial_queues[trial] = items
        self._trial_logging_actors[trial] = _TrialRun(
            trial.local_path, items, exclude_results, self.AUTO_CONFIG_KEYS, **wandb_init_kwargs
        )

    def _cleanup_logging_actors(self, timeout: float = 0, kill_on_timeout: bool = False) -> None:
        """Forget the runs that finished, waiting up to `timeout` s for the others; with
        `kill_on_timeout` forget all (a thread cannot be killed: a late one is left to
        finish as a daemon, and said so)."""
        deadline = time.monotonic() + timeout
        for trial, run in list(self._trial_logging_actors.items()):
            run.thread.join(max(0.0, deadline - time.monotonic()))
            if run.alive():
                if not kill_on_timeout:
                    continue
                log.warning("W&B run of trial %s still finishing after %s s", trial, timeout)
            del self._trial_logging_actors[trial]
            del self._trial_queues[trial]

    def end_all(self, timeout: float = 10) -> None:
        """End every open run (a sweep interrupted before Tune's experiment end)."""
        for trial in list(self._trial_logging_actors):
            self._signal_logging_actor_stop(trial=trial)
        self._cleanup_logging_actors(timeout=timeout, kill_on_timeout=True)

    def __getstate__(self) -> dict:
        # Tuner pickles its callbacks (tuner.pkl); threads and queues stay in this process.
        return {**self.__dict__, "_trial_logging_actors": {}, "_trial_queues": {}}

    def __del__(self) -> None:
        try:
            self.end_all(timeout=2)
        except Exception:  # interpreter exit: nothing left to clean
            pass
