"""`archer-sweep next DIR [--history FILE…] [-o FILE] [--count K]`: propose the next
version(s) as a runnable spec (and trainer command lines for the command backend),
with a rationale table citing the nearest past runs."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import typer
import yaml

from archer_sweep.analysis import Sweep, load_sweep
from archer_sweep.errors import UserError
from archer_sweep.history import SPEC_FILE, load_histories
from archer_sweep.results import STUDY_FILE
from archer_sweep.nextver import (Proposal, describe_near, from_runs, from_study, merge, next_spec,
                                  override_lines, propose, rationale, reference)
from archer_sweep.tables import md_table, short_param



def past_trials(sweep: Sweep, history: Sequence[Path] = ()):
    """Stored study + results-dir runs + imported history, as past trials."""
    extra = load_histories(history) if history else []
    db = sweep.directory / STUDY_FILE
    study = from_study(db) if db.exists() else []
    s = sweep.spec.search
    return merge(study, from_runs(sweep.runs, sweep.rules, s.metric, s.mode, s.objective_reduce),
                 from_runs(extra, sweep.rules, s.metric, s.mode, s.objective_reduce))


def make_proposals(sweep: Sweep, history: Sequence[Path] = (), count: int = 2):
    from archer_sweep.space import to_optuna_space
    if sweep.spec is None:
        raise UserError(f"{sweep.directory}: no {SPEC_FILE}; `next` needs the sweep's spec")
    space = to_optuna_space(sweep.spec)
    if not space:
        raise UserError(f"{sweep.directory}: the sweep searches no parameter (every search.space "
                        f"entry is fixed); nothing to propose")
    past = past_trials(sweep, history)
    props = propose(past, space, sweep.mode, count, seed=sweep.spec.search.sampler.seed)
    return past, space, props


def spec_data(sweep: Sweep) -> dict:
    """The sweep's spec as YAML data without defaults: the resolved spec.yaml also lists
    defaults that the spec checks reject where they do not apply (e.g. `log` of loguniform)."""
    return sweep.spec.model_dump(mode="json", exclude_defaults=True)


def rationale_table(props: Sequence[Proposal], past, space, mode: str) -> str:
    ref = reference(past, mode)
    rows, near = [], []
    for i, p in enumerate(props, start=1):
        why = rationale(p, ref, space)
        for k in space:
            rows.append([f"#{i}", f"`{short_param(k)}`", ref.params.get(k) if ref else None,
                         p.params[k], why[k]])
        near.append([f"#{i}", describe_near(p)])
    current = f"{ref.run_id}, {ref.verdict}" if ref else "none"
    return (md_table(["proposal", "Parameter", f"current ({current})", "proposed", "rationale"], rows)
            + "\n\nNearest past runs (distance in normalised log-parameter space):\n\n"
            + md_table(["proposal", "nearest past runs and their verdicts"], near))


def main(directory: Path, history: Sequence[Path] = (), out: Optional[Path] = None,
         count: int = 2) -> int:
    sweep = load_sweep(directory)
    past, space, props = make_proposals(sweep, history, count)
    data = spec_data(sweep)
    spec = next_spec(data, props)
    out = Path(out) if out is not None else sweep.directory / "next.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(spec, sort_keys=False))
    table = rationale_table(props, past, space, sweep.mode)
    lines = override_lines(data, props)
    text = f"# Next version: {spec['name']}\n\n{table}\n"
    if lines:
        text += "\n## Trainer command lines (command backend)\n\n" + "\n".join(
            f"```\n{line}\n```" for line in lines) + "\n"
    out.with_suffix(".md").write_text(text)
    typer.echo(text + f"\nwrote {out} (run it: archer-sweep run {out})")
    return 0
