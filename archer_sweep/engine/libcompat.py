"""The one place that touches Ray Tune's and Optuna's private state.

archer-sweep subclasses Ray's `OptunaSearch` (it must tell Optuna what the rules decided,
which Ray's class does not do), drives Ray's ASHA from inside its own scheduler and
swaps the per-trial actors of Ray's `WandbLoggerCallback` for driver threads
(engine/wandb_log.py, whose subclass's private seams are listed, not wrapped), and
neither library exposes what that needs. Each private attribute is read here, in one
function, so that a library upgrade breaks in one file. Written against the minors in
WRITTEN_AGAINST, which are exactly the ones pyproject.toml admits (NEWEST_TESTED gives its
upper bounds); `tests/test_libcompat.py` fails with a message naming the missing attribute
when an installed version lacks one, and when pyproject.toml admits an untested minor.
`bench/deps_check.sh` installs the newest releases in a throwaway venv and says what breaks.
"""

from __future__ import annotations

from typing import Any

import optuna

#: minors the suite has passed on (a fresh install picks the newest one pyproject.toml admits)
WRITTEN_AGAINST: dict[str, tuple[str, ...]] = {"ray": ("2.60",), "optuna": ("5.0", "5.1")}

#: newest minor each bounded dependency was tested on: pyproject.toml's upper bound is the next one
NEWEST_TESTED = {"ray": "2.60", "optuna": "5.1", "wandb": "0.31"}

#: (owner, attribute, what archer-sweep reads it for)
PRIVATE_ATTRS: tuple[tuple[str, str, str], ...] = (
    ("ray.tune.search.optuna.OptunaSearch", "_ot_study", "the Optuna study behind the searcher"),
    ("ray.tune.search.optuna.OptunaSearch", "_ot_trials", "Ray trial id -> Optuna trial"),
    ("ray.tune.search.optuna.OptunaSearch", "_completed_trials", "trials already told to Optuna"),
    ("ray.tune.schedulers.AsyncHyperBandScheduler", "_trial_info", "trials ASHA already tracks"),
    ("optuna.study.Study", "_storage", "the stored state of a trial"),
    ("optuna.study.Study", "_get_trials", "GPSampler's trial lists (engine/gp_sampler.py widens them)"),
    ("optuna.trial.Trial", "_trial_id", "the storage id of a live trial"),
    ("optuna.trial.FrozenTrial", "_trial_id", "the storage id of a stored trial"),
    # engine/wandb_log.py subclasses Ray's W&B callback, replacing its per-trial actors
    ("ray.air.integrations.wandb.WandbLoggerCallback", "_start_logging_actor", "the seam it overrides"),
    ("ray.air.integrations.wandb.WandbLoggerCallback", "_cleanup_logging_actors", "the seam it overrides"),
    ("ray.air.integrations.wandb.WandbLoggerCallback", "_signal_logging_actor_stop", "ends a trial's run"),
    ("ray.air.integrations.wandb.WandbLoggerCallback", "_trial_logging_actors", "trial -> its logger"),
    ("ray.air.integrations.wandb.WandbLoggerCallback", "_trial_queues", "trial -> its logger's queue"),
    ("ray.air.integrations.wandb._WandbLoggingActor", "_handle_result", "a result -> (log, config)"),
    ("ray.air.integrations.wandb", "_QueueItem", "the logger queue's item kinds"),
    ("ray.air.integrations.wandb", "_run_wandb_process_run_info_hook", "the user's run hook"),
    # engine/recover.py drops checkpoints a killed driver had deleted from a trial's saved state
    ("ray.train._internal.checkpoint_manager._CheckpointManager", "_checkpoint_results", "kept checkpoints"),
    (
        "ray.train._internal.checkpoint_manager._CheckpointManager",
        "_latest_checkpoint_result",
        "restored from",
    ),
)


def study_of(search: Any) -> optuna.Study:
    return search._ot_study


def trials_of(search: Any) -> dict[str, optuna.Trial]:
    return search._ot_trials


def completed_of(search: Any) -> set[str]:
    return search._completed_trials


def trials_in(study: optuna.Study, **kwargs: Any) -> list[optuna.trial.FrozenTrial]:
    """`Study._get_trials`, the call GPSampler's `sample_relative` makes (its keywords)."""
    return study._get_trials(**kwargs)


def asha_tracks(asha: Any, trial_id: str) -> bool:
    return trial_id in asha._trial_info


def stored_trial(study: optuna.Study, trial: optuna.Trial) -> optuna.trial.FrozenTrial:
    """The trial as the storage has it now (one row read, not the whole study)."""
    return study._storage.get_trial(trial._trial_id)


def enqueued_params(frozen: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The values an enqueued point fixed (not those the sampler drew for the rest), also
    while a killed `ask()` left `params` empty: Optuna keeps them in the `fixed_params`
    system attribute."""
    return dict(frozen.system_attrs.get("fixed_params", {}))


def live_trial(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> optuna.Trial:
    """A stored trial as the live `optuna.Trial` that Ray's OptunaSearch keeps per Ray trial."""
    return optuna.trial.Trial(study, frozen._trial_id)


def drop_missing_checkpoints(manager: Any, exists) -> bool:
    """Remove from a trial's Ray checkpoint manager the checkpoints whose path `exists(path)`
    denies; the latest becomes the newest one left (None: the trial starts afresh). True if any
    was dropped."""
    kept = [r for r in manager._checkpoint_results if exists(r.checkpoint.path)]
    latest = manager._latest_checkpoint_result
    if len(kept) == len(manager._checkpoint_results) and (latest is None or exists(latest.checkpoint.path)):
        return False
    manager._checkpoint_results = kept
    if latest is None or not exists(latest.checkpoint.path):
        manager._latest_checkpoint_result = kept[-1] if kept else None
    return True
