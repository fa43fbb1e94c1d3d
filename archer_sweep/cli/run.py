"""`archer-sweep run SPEC` and `archer-sweep resume DIR` (the work: `engine.sweep`).

Exit 0 when the sweep ran to its end (stopped trials included), 1 when the run
failed (Ray/Tune error, or every trial crashed), 130 when interrupted (Ctrl-C: the
state is saved and the resume command is printed), 2 for bad input (via UserError).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from archer_sweep.engine.sweep import load, resume, run, with_overrides
from archer_sweep.errors import UserError

__all__ = ["load", "main", "resume", "run"]


def main(
    spec: Optional[Path] = None,
    name: Optional[str] = None,
    storage: Optional[Path] = None,
    overrides: Sequence[str] = (),
    resume_dir: Optional[Path] = None,
) -> int:
    if resume_dir is not None:
        return resume(Path(resume_dir))
    if spec is None:
        raise UserError("run needs a spec file (expected `archer-sweep run SPEC`)")
    return run(with_overrides(load(Path(spec), overrides), name, storage))
