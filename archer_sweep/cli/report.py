"""`archer-sweep report DIR [-o OUT]`: report.md in the seed's style plus PNG plots."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from archer_sweep.planning.propose import report_with_next
from archer_sweep.results.analysis import load_sweep


def main(directory: Path, out: Optional[Path] = None) -> int:
    sweep = load_sweep(directory)
    path = report_with_next(sweep, Path(out) if out is not None else sweep.directory / "report")
    typer.echo(f"wrote {path}")
    return 0
