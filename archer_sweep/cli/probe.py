"""`archer-sweep probe SPEC [--tiny] [--steps N]`: run the spec's trainer for a couple of steps
and print one table (overrides accepted, watched metrics seen or never judgeable, time to the
first step, step time, the session kill, leftovers); each problem is one `error:` line on
stderr and the exit code is 2. Run it before a sweep (archer_sweep/engine/probe.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from archer_sweep.engine.probe import run_probe
from archer_sweep.spec.load import load_spec


def main(spec: Path, tiny: bool, steps: int, overrides: list[str], out: Path | None) -> int:
    loaded = load_spec(spec, overrides)
    trial_dir = out or Path(loaded.storage.path) / f"{loaded.name}-probe"
    report = run_probe(loaded, trial_dir, tiny=tiny, steps=steps)
    width = max(len(what) for what, _ in report.rows)
    typer.echo(f"probe of {spec} ({'tiny stand-in, ' if tiny else ''}{steps} steps; log {report.log_path})")
    for what, value in report.rows:
        typer.echo(f"  {what:<{width}}  {value}")
    for problem in report.problems:
        typer.echo(f"error: {problem}", err=True)
    return 2 if report.problems else 0
