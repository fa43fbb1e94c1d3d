"""Running and resuming a sweep: the spec's sweep dir, the lock, local Ray, the Tuner, and the
summary at the end. `archer-sweep run`/`resume` and `hunt` call these.

Exit codes: 0 when the sweep ran to its end (stopped trials included), 1 when the run
failed (Ray/Tune error, or every trial crashed), 130 when interrupted (Ctrl-C: the state
is saved and the resume command is printed); bad input raises `UserError` (exit 2).
"""

from __future__ import annotations

import gc
import logging
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from archer_sweep.engine.verdicts import VerdictStore
from archer_sweep.errors import UserError
from archer_sweep.results.sweepdir import SPEC_FILE, STUDY_FILE, VERDICTS_FILE
from archer_sweep.spec.load import load_spec
from archer_sweep.spec.model import SWEEP_NAME_PATTERN, SweepSpec
from archer_sweep.spec.space import base_config, total_steps

log = logging.getLogger(__name__)

INTERRUPTED = 130


def echo(message: str, err: bool = False) -> None:
    """User-facing lines (the summary, how to resume): printed, not logged."""
    print(message, file=sys.stderr if err else sys.stdout, flush=True)


def load(path: Path, overrides: Sequence[str] = ()) -> SweepSpec:
    return load_spec(path, list(overrides))


def checked_name(name: str) -> str:
    if not re.fullmatch(SWEEP_NAME_PATTERN, name):
        raise UserError(
            f"--name: {name!r} is not a valid sweep name "
            "(expected letters, digits, `_`, `.` or `-`, starting with a letter or digit)"
        )
    return name


def with_overrides(spec: SweepSpec, name: Optional[str], storage: Optional[Path]) -> SweepSpec:
    """The spec with `--name` / `--storage` applied."""
    update: dict = {"name": checked_name(name)} if name else {}
    if storage is not None:
        update["storage"] = spec.storage.model_copy(update={"path": str(storage)})
    return spec.model_copy(update=update) if update else spec


def run(spec, live: bool = True) -> int:
    from archer_sweep.engine import recover, runner, study  # lazy: Ray loads only after the spec is valid

    sweep_dir = runner.sweep_dir_of(spec)
    recover.set_aside_unstarted(sweep_dir)
    leftovers = [f for f in (runner.TUNER_FILE, VERDICTS_FILE, STUDY_FILE) if (sweep_dir / f).exists()]
    if leftovers:
        raise UserError(
            f"{sweep_dir} already holds a sweep ({', '.join(leftovers)}); continue it "
            f"with `archer-sweep resume {sweep_dir}` or choose another --name"
        )
    study.check_new_study(spec)
    env = runner.configure_env(spec)
    with runner.SweepLock(sweep_dir):
        runner.write_spec(spec, sweep_dir)
        return _with_ray(spec, env, lambda: runner.make_tuner(spec, sweep_dir, live=live), sweep_dir)


def resume(sweep_dir: Path) -> int:
    from archer_sweep.engine import recover, runner, study  # lazy: Ray loads only after the spec is valid

    sweep_dir = sweep_dir.expanduser().resolve()
    if not (sweep_dir / SPEC_FILE).exists():
        raise UserError(
            f"{sweep_dir}: not an archer-sweep results directory "
            f"(expected {runner.TUNER_FILE} and {SPEC_FILE} from `archer-sweep run`)"
        )
    spec = load(sweep_dir / SPEC_FILE)
    study.check_reachable(spec)
    env = runner.configure_env(spec)
    with runner.SweepLock(sweep_dir):
        try:
            recover.prepare_resume(spec, sweep_dir)
        except recover.Unrecoverable as exc:
            echo(f"resume failed: {exc}", err=True)
            return 1
        if not runner.is_sweep_dir(sweep_dir):
            raise UserError(recover.never_saved(sweep_dir, spec.name, sweep_dir.parent))
        return _with_ray(spec, env, lambda: runner.restore_tuner(spec, sweep_dir), sweep_dir)


def _with_ray(spec, env, make, sweep_dir: Path) -> int:
    import ray

    from archer_sweep.engine import runner  # lazy: Ray loads only after the spec is valid

    started = False
    scratch = runner.worker_scratch()
    try:
        _prepare(spec)
        started = runner.ensure_ray(spec, env, scratch)
        return _fit(make(), spec, sweep_dir)
    except KeyboardInterrupt:  # Ctrl-C before Tune's own handler was installed
        if runner.is_sweep_dir(sweep_dir):
            echo(f"interrupted; continue with: archer-sweep resume {sweep_dir}", err=True)
        else:
            echo("interrupted before the sweep started; nothing to resume", err=True)
        return INTERRUPTED
    finally:
        # Collect the Tuner's callbacks now: the W&B callback's __del__ ends any run still
        # open, which must happen here rather than at interpreter exit.
        gc.collect()
        if started:
            ray.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)  # the workers' temp files (ensure_ray)


def _judged(rows: list[dict], spec) -> int:
    """Trials judged, or with search.repeats configs whose every seed is judged."""
    if spec.search.repeats is None:
        return len(rows)
    from archer_sweep.results.configs import configs

    return sum(c.complete for c in configs(rows, spec.search.repeats, spec.rules()))


def _prepare(spec) -> None:
    """Backend work done once before any trial (the tiny warm start), shown in the driver."""
    from trainable.trainer import prepare_backend

    prepare_backend(base_config(spec))


def _fit(tuner, spec, sweep_dir: Path) -> int:
    from archer_sweep.engine.live import summary

    interrupted = False
    try:
        tuner.fit()
    except KeyboardInterrupt:
        interrupted = True
    except Exception as exc:  # Tune's own failure (not a trial's): the run failed
        log.exception("sweep failed")
        root = exc
        while root.__cause__ is not None:  # the root cause (e.g. a full disk under Optuna)
            root = root.__cause__
        lines = [ln.strip() for ln in str(root).splitlines() if ln.strip()] or [""]
        # Tune wraps a callback's exception as a traceback text: its last line says what
        what = lines[-1] if lines[0].startswith("Traceback") else f"{type(root).__name__}: {lines[0]}"
        echo(f"run failed: {what}", err=True)
        echo(f"state is saved; continue with: archer-sweep resume {sweep_dir}", err=True)
        return 1
    from archer_sweep.engine.salvage import salvage_staging

    # W&B's logging actors can finish after Tune's last sync to storage (seen under load):
    # their offline runs would stay in Ray's staging dir only.
    salvage_staging(sweep_dir, spec.name, why="W&B files written after Tune's last sync")
    rows = VerdictStore(sweep_dir).rows()
    total = spec.search.num_samples
    s = spec.search
    echo(
        summary(
            sweep_dir,
            s.metric,
            s.mode,
            total * s.seeds,
            budget=total_steps(spec),
            study=spec.storage.study,
            repeats=s.repeats,
            rules=spec.rules(),
            reduce=s.objective_reduce,
        )
    )
    if interrupted or _judged(rows, spec) < total:
        echo(f"interrupted; continue with: archer-sweep resume {sweep_dir}", err=True)
        return INTERRUPTED
    if rows and all(r["verdict"] == "error" for r in rows):
        echo("run failed: every trial crashed (see verdicts.jsonl for the errors)", err=True)
        return 1
    return 0
