"""`archer-sweep validate SPEC…`."""
from __future__ import annotations

from pathlib import Path

import typer

from archer_sweep.spec import load_spec


def main(specs: list[Path], overrides: list[str]) -> int:
    for path in specs:
        spec = load_spec(path, overrides)
        typer.echo(f"{path}: ok ({spec.name}: backend {spec.trainable.backend}, "
                   f"{spec.search.num_samples} trials, {len(spec.criteria)} rules)")
    return 0
