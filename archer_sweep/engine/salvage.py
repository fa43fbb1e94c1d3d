"""Finish the sync to storage that Ray Tune did not do: after a killed driver, and after a run.

Ray Tune writes trial results (`result.json`, …) and experiment state into a staging
directory under the Ray session (`<ray tmp>/session_*/artifacts/*/<name>/driver_artifacts`)
and copies it to the storage path only every few seconds. A SIGKILLed driver therefore
leaves the newest reports only in staging: a trial judged just before the kill would
look shorter in the results than it ran. The staging directory is still on disk after
the kill, so `resume` copies its newer files into the sweep directory first. `run` does the
same at its end: W&B logging actors can finish after Tune's final sync.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

log = logging.getLogger(__name__)


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
    sweep dir; return how many were copied (logged with `why`). Checkpoints are never
    in staging."""
    staging = find_staging(Path(sweep_dir), name, root)
    if staging is None:
        return 0
    copied = 0
    for src in staging.rglob("*"):
        if not src.is_file():
            continue
        dst = Path(sweep_dir) / src.relative_to(staging)
        if dst.exists() and dst.stat().st_mtime >= src.stat().st_mtime:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
        copied += 1
    if copied:
        log.info("copied %d newer file(s) from %s (%s)", copied, staging, why)
    return copied
