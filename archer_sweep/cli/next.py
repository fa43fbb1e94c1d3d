"""`archer-sweep next DIR [--history FILE…] [-o FILE] [--count K]`: propose the next
version(s) as a runnable spec (and trainer command lines for the command backend),
with a rationale table citing the nearest past runs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import typer
import yaml

from archer_sweep.errors import UserError
from archer_sweep.planning.nextver import METHODS, next_spec, override_lines
from archer_sweep.planning.propose import make_proposals, rationale_table, spec_data
from archer_sweep.results.analysis import load_sweep


def main(
    directory: Path,
    history: Sequence[Path] = (),
    out: Optional[Path] = None,
    count: int = 2,
    method: str = "feasible",
    monotone: bool = True,
) -> int:
    if method not in METHODS:
        raise UserError(f"--method {method!r}: expected one of {', '.join(METHODS)}")
    sweep = load_sweep(directory)
    past, space, props = make_proposals(sweep, history, count, method, monotone)
    data = spec_data(sweep)
    spec = next_spec(data, props)
    out = Path(out) if out is not None else sweep.directory / "next.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(spec, sort_keys=False))
    table = rationale_table(props, past, space, sweep.mode)
    lines = override_lines(data, props)
    text = f"# Next version: {spec['name']}\n\n{table}\n"
    if lines:
        text += (
            "\n## Trainer command lines (command backend)\n\n"
            + "\n".join(f"```\n{line}\n```" for line in lines)
            + "\n"
        )
    out.with_suffix(".md").write_text(text)
    typer.echo(text + f"\nwrote {out} (run it: archer-sweep run {out})")
    return 0
