"""`archer-sweep hunt SPEC [--rounds K] [--until healthy|budget]`: rounds of
run → report → next → run in <storage>/<name>/round-N/, with index.md linking them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import typer

from archer_sweep.planning.hunt import hunt


def main(
    spec: Path,
    rounds: int = 3,
    until: str = "healthy",
    storage: Optional[Path] = None,
    overrides: Sequence[str] = (),
) -> int:
    def echo(r):
        typer.echo(
            f"round {r.number}: {r.trials} trials, {r.healthy} healthy "
            f"(report: {r.directory / 'report' / 'report.md'})"
        )

    root = hunt(Path(spec), rounds, until, storage, overrides, on_round=echo)
    return root
