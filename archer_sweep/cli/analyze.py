"""`archer-sweep analyze DIR [--json]`: one row per trial (params, status, verdict, stop
reason, the trial's result (objective by `search.objective_reduce`) and its step, last/best
key metrics)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from archer_sweep.results.analysis import load_sweep, summarize
from archer_sweep.results.configs import configs_table, sweep_configs
from archer_sweep.tables import fmt, md_table, short_param
from trainable import metrics as M


def render(rows, space_keys, objective: str = "objective", reduce: str = "last") -> str:
    headers = ["trial", *map(short_param, space_keys), "status", "verdict", "stop", "steps"]
    headers += [f"{objective} ({reduce})", "result step"]
    for m in M.KEY_METRICS:
        headers += [f"{m} last", f"{m} best"]
    body = []
    for s in rows:
        stop = (
            f"{s.rule or s.stop_metric} @ {s.stop_step} = {fmt(s.stop_value)}"
            if s.stop_step is not None
            else None
        )
        cells = [s.run_id, *(s.params.get(k) for k in space_keys), s.status, s.verdict, stop, s.steps]
        cells += [s.objective, s.result_step]
        for m in M.KEY_METRICS:
            cells += [s.last.get(m), s.best.get(m)]
        body.append(cells)
    return md_table(headers, body)


def main(directory: Path, as_json: bool = False) -> int:
    sweep = load_sweep(directory)
    rows = summarize(sweep)
    configs = sweep_configs(sweep)  # search.repeats: each config judged over its seeds
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "sweep": sweep.name,
                    "objective": sweep.objective,
                    "mode": sweep.mode,
                    "objective_reduce": sweep.reduce,
                    "trials": [r.as_dict() for r in rows],
                }
                | ({"configs": [c.as_dict() for c in configs]} if configs else {}),
                indent=2,
            )
        )
    else:
        typer.echo(render(rows, sweep.space_keys, sweep.objective, sweep.reduce))
        if configs:
            typer.echo("\nConfigs (search.repeats):\n" + configs_table(configs))
    return 0
