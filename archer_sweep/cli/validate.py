"""`archer-sweep validate SPEC…`: parse and check each spec; nothing is run or written.

Each bad spec prints one line `error: FILE:LINE: <key>: <problem> (expected …)` to stderr
(`--set:N` for the N-th override); the exit code is 2 if any spec is bad.
"""

from __future__ import annotations

from pathlib import Path

import typer

from archer_sweep.errors import SpecError
from archer_sweep.spec.load import load_spec


def main(specs: list[Path], overrides: list[str]) -> int:
    failed = 0
    for path in specs:
        try:
            spec = load_spec(path, overrides)
        except SpecError as exc:
            typer.echo(f"error: {exc}", err=True)
            failed += 1
            continue
        searched = len(spec.search.space)
        typer.echo(
            f"{path}: ok ({spec.name}: backend {spec.trainable.backend}, "
            f"{spec.search.num_samples} trials, {searched} parameters, {len(spec.criteria)} rules)"
        )
    return 2 if failed else 0
