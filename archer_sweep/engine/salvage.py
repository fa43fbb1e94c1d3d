"""Finish the sync to storage that Ray Tune did not do: after a killed driver, and after a run.

Ray Tune writes trial results (`result.json`, …) and experiment state into a staging
directory under the Ray session (`<ray tmp>/session_*/artifacts/*/<name>/driver_artifacts`)
and copies it to the storage path only every few seconds. A SIGKILLed driver therefore
leaves the newest reports only in staging: a trial judged just before the kill would
look shorter in the results than it ran. The staging directory is still on disk after
the kill, so `resume` copies its newer files into the sweep directory first. `run` does the
same at its end: W&B logging actors can finish after Tune's final sync.

A file being written at the kill is torn in staging, and a copy never replaces a good file
with it: a JSON or pickle file is copied only if it loads, a line file (`result.json`,
`progress.csv`, `*.jsonl`) only up to its last complete line, Tune's temp files never, and
Tune's experiment state only as the three files of one save, each readable
(engine/tune_state.py; whether they agree is `engine/recover.py`'s to check).

One report is in no staging file: the one a trial was judged on when the driver was killed
between the verdict's append and Tune's result logger (which runs after the scheduler). The
verdict line keeps it (`report`), and `restore_judged_reports` writes it to the trial's
`result.json` when that ends before it.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Optional

from archer_sweep.engine import tune_state
from archer_sweep.results.durable import atomic_write, complete_lines
from archer_sweep.results.sweepdir import ITER_KEY, PARAMS_FILE, RESULT_FILE, read_results, read_verdicts

log = logging.getLogger(__name__)

LINE_FILES = ("result.json", "progress.csv")
LINE_SUFFIXES = (".jsonl", ".csv")
NOTHING_NEW = b"nothing new"  # a sentinel, compared by identity


def ray_temp_dir() -> Path:
    return Path(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()) / "ray"


def _trial_names(directory: Path) -> set[str]:
    return {p.parent.name for p in directory.glob("*/params.json")}


def find_staging(sweep_dir: Path, name: str, root: Optional[Path] = None) -> Optional[Path]:
    """The newest staging dir of this sweep: same name and a trial dir of this sweep."""
    ours = _trial_names(sweep_dir)
    if not ours:
        return None
    found = [
        d
        for d in (root or ray_temp_dir()).glob(f"session_*/artifacts/*/{name}/driver_artifacts")
        if d.is_dir() and _trial_names(d) & ours
    ]
    return max(found, key=lambda d: d.stat().st_mtime, default=None)


def salvage_staging(
    sweep_dir: Path, name: str, root: Optional[Path] = None, why: str = "left by the interrupted driver"
) -> int:
    """Copy files of the newest staging dir that are newer than (or missing from) the
    sweep dir and readable; return how many were copied (logged with `why`). Checkpoints
    are never in staging."""
    staging = find_staging(Path(sweep_dir), name, root)
    if staging is None:
        return 0
    torn, torn_here = _torn_saves(staging), _torn_saves(Path(sweep_dir))
    copied = skipped = 0
    for src in staging.rglob("*"):
        if not src.is_file() or _is_temp(src.name):
            continue
        dst = Path(sweep_dir) / src.relative_to(staging)
        # A sync the kill cut short leaves the sweep dir's copy of a save torn (empty files) and
        # newer than the whole one in staging: that copy is replaced, whatever its mtime.
        fresher = dst.exists() and dst.stat().st_mtime >= src.stat().st_mtime
        if fresher and not (src.parent == staging and src.name in torn_here):
            continue
        if src.parent == staging and tune_state.is_state_file(src.name):
            data = None if src.name in torn else src.read_bytes()
        else:
            data = _readable(src, dst)
        if data is None:
            skipped += 1
        elif data is not NOTHING_NEW:
            copied += _copy(src, dst, data)
    if copied:
        log.info("copied %d newer file(s) from %s (%s)", copied, staging, why)
    if skipped:
        log.info(
            "left %d torn file(s) of %s uncopied (being written when the driver stopped)", skipped, staging
        )
    return copied


def _torn_saves(directory: Path) -> set[str]:
    """Names of the files of every Tune save in `directory` with a file missing or unreadable."""
    return {
        path.name
        for session in tune_state.sessions(directory)
        if (state := tune_state.read_state(directory, session)).torn
        for path in state.paths()
    }


def _is_temp(name: str) -> bool:
    return name.startswith(".") and ("tmp" in name or name.endswith(".tmp"))


def _readable(src: Path, dst: Path) -> Optional[bytes]:
    """What of `src` may be copied over `dst`: None if torn, NOTHING_NEW, or the bytes."""
    data = src.read_bytes()
    if src.name in LINE_FILES or src.suffix in LINE_SUFFIXES:
        data = complete_lines(data)
        old = dst.read_bytes() if dst.exists() else b""
        return data if len(data) > len(old) else NOTHING_NEW  # complete lines beyond the dir's
    return data if _loads(src.suffix, data) else None


def _loads(suffix: str, data: bytes) -> bool:
    try:
        if suffix == ".json":
            json.loads(data)
        elif suffix == ".pkl":
            pickle.loads(data)
    except Exception:  # torn or empty
        return False
    return True


def _copy(src: Path, dst: Path, data: bytes) -> bool:
    dst.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(dst, data)
    shutil.copystat(src, dst)
    return True


def restore_judged_reports(sweep_dir: Path) -> int:
    """Append to each judged trial's `result.json` the report its verdict was judged on when
    the file ends before that iteration; return how many were written (one INFO line each)."""
    written = 0
    for trial_id, row in read_verdicts(sweep_dir).items():
        report = row.get("report")
        trial_dir = Path(sweep_dir) / trial_id  # runner.trial_dirname
        if (
            not isinstance(report, dict)
            or not isinstance(report.get(ITER_KEY), int)
            or not trial_dir.is_dir()
        ):
            continue
        path = trial_dir / RESULT_FILE
        if path.exists() and any(r.get(ITER_KEY, 0) >= report[ITER_KEY] for r in read_results(trial_dir)):
            continue
        params = trial_dir / PARAMS_FILE
        config = json.loads(params.read_text(encoding="utf-8")) if params.exists() else {}
        line = json.dumps(report | {"done": True, "config": config}) + "\n"
        old = complete_lines(path.read_bytes()) if path.exists() else b""
        atomic_write(path, old + line.encode("utf-8"))
        written += 1
        log.info(
            "trial %s: wrote the report of iteration %d it was judged on to %s (the driver stopped "
            "before Ray Tune logged it)",
            trial_id,
            report[ITER_KEY],
            RESULT_FILE,
        )
    return written
