"""Build and run the Ray Tune `Tuner` of a sweep spec (and restore it for `resume`).

`<storage>/<name>/` *is* the Ray Tune experiment directory, so
`tune.Tuner.restore(path, trainable=GRPOTrainable)` and `ExperimentAnalysis(path)`
keep working; archer-sweep adds `spec.yaml`, `study.db` and `verdicts.jsonl` to it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from archer_sweep.engine.verdicts import VerdictStore
from archer_sweep.engine.wandb_log import DriverWandbLoggerCallback
from archer_sweep.errors import UserError
from archer_sweep.results.durable import atomic_write
from archer_sweep.results.replay import BACKEND as REPLAY_BACKEND
from archer_sweep.results.sweepdir import LOCK_FILE, SPEC_FILE, TUNER_FILE, get_dotted, study_url
from archer_sweep.spec.space import (
    SEED_KEY,
    apply_params,
    base_config,
    fixed_params,
    to_optuna_space,
    total_steps,
)
from trainable.trainer import WATCH_KEY

log = logging.getLogger(__name__)


def sweep_dir_of(spec) -> Path:
    return Path(spec.storage.path).expanduser().resolve() / spec.name


# -- the sweep dir: lock and resolved spec ------------------------------------------------
class SweepLock:
    """An exclusive lock on a sweep dir, so two runs never write one experiment."""

    def __init__(self, sweep_dir: Path):
        self.path = Path(sweep_dir) / LOCK_FILE
        self._fd: Optional[int] = None

    def __enter__(self) -> SweepLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise unwritable(self.path.parent, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise UserError(
                f"{self.path.parent}: another archer-sweep run is using this sweep "
                f"(pid {holder}); wait for it or choose another --name"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def write_spec(spec, sweep_dir: Path) -> None:
    data = spec.model_dump(mode="json", exclude_unset=True)  # loads back through load_spec
    text = "# resolved spec of this sweep (written by archer-sweep run)\n" + yaml.safe_dump(
        data, sort_keys=False, allow_unicode=True
    )
    try:  # never a half-written spec.yaml (full disk, a kill): resume depends on it
        atomic_write(sweep_dir / SPEC_FILE, text)
    except OSError as exc:
        raise unwritable(sweep_dir, exc) from None


def unwritable(path: Path, exc: OSError) -> UserError:
    return UserError(
        f"{path}: cannot write the results directory: {exc.strerror or exc} "
        f"(expected a writable storage.path / --storage with free space)"
    )


# -- Ray ------------------------------------------------------------------------------------
def configure_env(spec) -> dict[str, str]:
    """Driver environment (W&B mode, no chdir into trial dirs); returned for Ray workers too."""
    mode = spec.tracking.wandb.mode
    if mode == "online" and not os.environ.get("WANDB_API_KEY"):
        raise UserError(
            "tracking.wandb.mode is online but WANDB_API_KEY is not set in the "
            "environment (expected the key there, never in the spec)"
        )
    env = {
        "WANDB_MODE": mode,
        "WANDB_SILENT": "true",
        "RAY_CHDIR_TO_TRIAL_DIR": "0",
        # small trials checkpoint often by design; Tune's sync warning is noise here
        "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
        # Tune's legacy reporter honours verbose=0; the live table replaces its output
        "RAY_AIR_NEW_OUTPUT": "0",
        # a report without the objective is "not observed" (sparse histories, eval-only steps):
        # the criteria judge it (a key never reported stops a live trial), not Tune's check
        "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
    }
    hang_s = spec.failure.step_timeout_s or spec.failure.start_timeout_s
    if hang_s is not None:
        # a trial stopped for a hung step is killed this long after its stop request
        env["TUNE_FORCE_TRIAL_CLEANUP_S"] = str(max(5, int(hang_s)))
    os.environ.update(env)
    # On a shared 2-core box a result handler can take seconds; warn only past 5 s (the
    # user's own setting wins).
    os.environ.setdefault("TUNE_WARN_THRESHOLD_S", "5")
    # Tune reads that variable once, at import (a class attribute), and ray.tune is already
    # imported here.
    from ray.tune.utils.util import warn_if_slow

    warn_if_slow.DEFAULT_THRESHOLD = float(os.environ["TUNE_WARN_THRESHOLD_S"])
    # Custom backends (`package.module:Class`) import on workers like on the driver.
    path = [os.getcwd(), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(path))
    return env


SCRATCH_PREFIX = "archer-sweep-workers-"


def worker_scratch() -> Path:
    """A fresh temp dir for the local Ray workers (see `ensure_ray`), named after this
    driver's pid. Those of drivers that died without cleaning up (SIGKILL) go first."""
    for old in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*"):
        pid = old.name[len(SCRATCH_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def ensure_ray(spec, env: Mapping[str, str], scratch: Optional[Path] = None) -> bool:
    """Start local embedded Ray (or join `ray.address`); True if this call started it.

    `scratch` becomes the local workers' TMPDIR: every process that imports wandb makes two
    temp dirs that only a clean interpreter exit removes, and Ray ends its workers without
    one, so the caller deletes `scratch` after `ray.shutdown()` instead of leaving them in
    /tmp. A cluster's workers keep their own TMPDIR (the path need not exist there)."""
    import ray

    if ray.is_initialized():
        return False
    runtime_env = {"env_vars": dict(env)}
    if spec.ray.address:
        ray.init(address=spec.ray.address, runtime_env=runtime_env, log_to_driver=False)
    else:
        if scratch is not None:
            runtime_env["env_vars"]["TMPDIR"] = str(scratch)
        ray.init(
            num_cpus=spec.ray.num_cpus or os.cpu_count() or 1,
            include_dashboard=False,
            runtime_env=runtime_env,
            log_to_driver=False,
            configure_logging=False,
        )
    return True


# -- the Tuner ------------------------------------------------------------------------------
def trial_dirname(trial) -> str:
    return trial.trial_id


def optuna_space(spec) -> dict:
    """Dotted key -> Optuna distribution (space.py's mapping plus the fixed values)."""
    import optuna.distributions as D

    space = to_optuna_space(spec)
    # Scalar `fixed` values join the study as one-choice parameters: the study records
    # them, and a spec whose parameters are all fixed (seed-v2.yaml) still has a space.
    for key, value in fixed_params(spec).items():
        if value is None or isinstance(value, (bool, int, float, str)):
            space[key] = D.CategoricalDistribution([value])
    if not space:
        raise UserError(
            "search.space: nothing to sample (expected at least one parameter; "
            "a `fixed` number or string counts)"
        )
    return space


@dataclass
class Parts:
    store: VerdictStore
    scheduler: Any
    searcher: Any
    callbacks: list


def build_parts(spec, sweep_dir: Path, live: bool = True) -> Parts:
    from archer_sweep.engine.live import LiveTable
    from archer_sweep.engine.repeats import GroupStore
    from archer_sweep.engine.scheduler import CriteriaScheduler
    from archer_sweep.engine.searcher import CriteriaOptunaSearch, make_sampler

    store = VerdictStore(sweep_dir)
    groups = GroupStore(sweep_dir) if spec.search.repeats else None
    space = optuna_space(spec)
    keys = list(space)
    s = spec.search
    asha = spec.scheduler.asha.model_dump() if spec.scheduler.asha else None
    scheduler = CriteriaScheduler(
        spec.rules(),
        store,
        objective=s.metric,
        mode=s.mode,
        param_keys=keys,
        asha=asha,
        max_t=total_steps(spec),
        step_timeout_s=spec.failure.step_timeout_s,
        start_timeout_s=spec.failure.start_timeout_s,
        stop_when_decided=spec.scheduler.stop_when_decided,
        recorded=spec.trainable.backend == REPLAY_BACKEND,  # recorded runs: unreported keys are no typo
        groups=groups,
        stop_siblings=bool(s.repeats and s.repeats.stop_siblings),
    )
    sampler = make_sampler(s.sampler.type, s.sampler.seed, s.sampler.n_startup_trials, space)
    searcher = CriteriaOptunaSearch(
        space,
        metric=s.metric,
        mode=s.mode,
        store=store,
        base_config={**trial_base_config(spec), WATCH_KEY: watched_keys(spec)},
        sampler=sampler,
        storage_url=spec.storage.study or study_url(sweep_dir),
        study_name=spec.name,
        # only the points that will run: an enqueued point never asked stays WAITING
        points_to_evaluate=s.points_to_evaluate[: s.num_samples],
        objective_reduce=s.objective_reduce,
        apply_params=apply_params,
        repeats=s.repeats,
        groups=groups,
        num_configs=s.num_samples,
        rules=spec.rules(),
        base_seed=int(get_dotted(base_config(spec), SEED_KEY, 0) or 0),
    )
    budget = (s.num_samples * s.seeds, total_steps(spec))  # Ray trials x steps: the progress bar
    callbacks: list = [LiveTable(store, keys, repeats=s.repeats, budget=budget)] if live else []
    if spec.tracking.wandb.mode != "disabled":
        callbacks.append(
            DriverWandbLoggerCallback(
                project=spec.tracking.wandb.project or spec.name,
                group=spec.name,
                log_config=True,
                mode=spec.tracking.wandb.mode,
            )
        )
    return Parts(store, scheduler, searcher, callbacks)


def watched_keys(spec) -> dict[str, str]:
    """Rule name → metric key for every rule, plus the objective (`search.metric`): handed to
    each trial, whose trainer names at its first report any key it does not log (a live
    trainer's missing key would otherwise stop every trial as stopped:nan). Empty for replay."""
    if spec.trainable.backend == REPLAY_BACKEND:
        return {}
    return {"search.metric": spec.search.metric, **{r.name: r.metric for r in spec.rules()}}


def resourced_trainable(spec):
    from ray import tune

    from trainable.ray_trainable import GRPOTrainable

    return tune.with_resources(GRPOTrainable, {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu})


def keeps_best(spec) -> bool:
    """`search.objective_reduce: best`: the best objective step is the trial's result and its
    checkpoint is kept (scored by `checkpoint/score`, checkpointed whenever a new best comes)."""
    return spec.search.objective_reduce == "best"


def trial_base_config(spec) -> dict:
    """`base_config` plus what the Ray trainable itself reads (`_keep_best`)."""
    from trainable.ray_trainable import KEEP_BEST

    config = base_config(spec)
    if keeps_best(spec):
        config[KEEP_BEST] = {"metric": spec.search.metric, "mode": spec.search.mode}
    return config


def checkpoint_config(spec):
    from ray import tune

    from trainable import metrics as M

    score = {"checkpoint_score_attribute": M.CHECKPOINT_SCORE, "checkpoint_score_order": "max"}
    return tune.CheckpointConfig(
        checkpoint_frequency=spec.checkpoint.frequency,
        checkpoint_at_end=True,
        num_to_keep=spec.checkpoint.num_to_keep,
        **(score if keeps_best(spec) else {}),
    )


def make_tuner(spec, sweep_dir: Path, live: bool = True):
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    parts = build_parts(spec, sweep_dir, live=live)
    tune_config = tune.TuneConfig(
        search_alg=ConcurrencyLimiter(parts.searcher, max_concurrent=spec.search.max_concurrent),
        scheduler=parts.scheduler,
        num_samples=spec.search.num_samples * spec.search.seeds,  # Ray trials; the searcher counts configs
        reuse_actors=False,
        trial_dirname_creator=trial_dirname,
        trial_name_creator=trial_dirname,
    )
    run_config = tune.RunConfig(
        name=spec.name,
        storage_path=str(sweep_dir.parent),
        verbose=0,
        callbacks=parts.callbacks,
        checkpoint_config=checkpoint_config(spec),
        failure_config=tune.FailureConfig(max_failures=spec.failure.max_failures),
    )
    return tune.Tuner(resourced_trainable(spec), tune_config=tune_config, run_config=run_config)


def restore_tuner(spec, sweep_dir: Path):
    from ray import tune

    os.environ["ARCHER_SWEEP_DIR"] = str(sweep_dir)  # stores unpickled from tuner.pkl find it
    return tune.Tuner.restore(
        str(sweep_dir),
        trainable=resourced_trainable(spec),
        resume_unfinished=True,
        resume_errored=False,
        restart_errored=False,
    )


def is_sweep_dir(path: Path) -> bool:
    return (Path(path) / TUNER_FILE).exists()
