"""`archer-sweep backtest HISTORY… --spec SPEC [--json]`: replay recorded runs under the
spec's criteria, ASHA, median stopping and no stopping (see archer_sweep.planning.backtest)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import typer

from archer_sweep.planning.backtest import Backtest, backtest, settings_from_spec
from archer_sweep.results.history import load_histories
from archer_sweep.spec.load import read_spec
from archer_sweep.tables import fmt, md_table
from archer_sweep.values import jsonable


def to_json(bt: Backtest) -> dict:
    return jsonable(
        {
            "runs": [
                {
                    "run": r.run_id,
                    "last_step": r.last_step,
                    "health": bt.health.get(r.run_id),
                    **{
                        p: {"verdict": o.verdict, "stop_step": o.stop_step, "steps_used": o.steps_used}
                        | ({"reason": o.reason} if o.reason else {})
                        for p, outs in bt.outcomes.items()
                        for o in outs
                        if o.run_id == r.run_id
                    },
                }
                for r in bt.runs
            ],
            "policies": [
                {
                    "policy": s.policy,
                    "steps_used": s.steps_used,
                    "steps_total": s.steps_total,
                    "steps_saved": s.steps_total - s.steps_used,
                    "fraction_saved": s.fraction_saved,
                    "best_healthy": s.best_healthy,
                    "regret": s.regret,
                }
                for s in bt.summaries
            ],
        }
    )


def to_markdown(bt: Backtest) -> str:
    policies = list(bt.outcomes)
    by_run = {p: {o.run_id: o for o in outs} for p, outs in bt.outcomes.items()}
    rows = []
    for r in bt.runs:
        cells = [r.run_id, r.last_step, bt.health.get(r.run_id)]
        for p in policies:
            o = by_run[p][r.run_id]
            ahead = " (forecast)" if (o.reason or "").startswith("forecast") else ""
            cells.append(o.verdict if o.stop_step is None else f"{o.verdict} @ {o.stop_step}{ahead}")
        rows.append(cells)
    per_run = md_table(["run", "steps", "health (full run)", *policies], rows)
    srows = []
    for s in bt.summaries:
        regret = (
            "n/a (no healthy run)"
            if s.regret is None
            else "all healthy runs lost"
            if math.isinf(s.regret)
            else fmt(s.regret)
        )
        srows.append(
            [
                s.policy,
                s.steps_used,
                s.steps_total - s.steps_used,
                f"{100 * s.fraction_saved:.1f}%",
                s.best_healthy,
                regret,
            ]
        )
    summary = md_table(
        ["policy", "trial-steps used", "steps saved", "saved", "best healthy objective", "regret"], srows
    )
    cut = [r.run_id for r in bt.runs if (r.verdict or {}).get("verdict", "").startswith("stopped")]
    note = (
        (
            f"\nNote: {len(cut)} run(s) were stopped when recorded ({', '.join(cut[:5])}"
            f"{', …' if len(cut) > 5 else ''}); their history ends at that stop, so no policy "
            f"can run them further and 'none' counts only the recorded steps.\n"
        )
        if cut
        else ""
    )
    return f"## Per run\n\n{per_run}\n\n## Per policy\n\n{summary}\n{note}"


def main(history: Sequence[Path], spec: Path, as_json: bool = False) -> int:
    sweep = read_spec(spec)
    runs = load_histories(history)
    if not any(r.steps for r in runs):
        from archer_sweep.errors import UserError

        raise UserError(f"{', '.join(map(str, history))}: no run with any reports")
    bt = backtest(runs, sweep.rules(), settings_from_spec(sweep))
    out = to_json(bt) if as_json else to_markdown(bt)
    if sweep.search.repeats is not None:  # judged per seed, then per config as live
        from archer_sweep.planning import repeats as rp

        configs = rp.replay_repeats(bt.runs, sweep.rules(), settings_from_spec(sweep), sweep.search.repeats)
        if as_json:
            out["configs"] = jsonable(
                [
                    {"params": c.params, "verdict": c.verdict.verdict, "agreement": c.verdict.agreement}
                    | {"split": list(c.verdict.split), "steps_used": c.steps_used}
                    | {"seeds": [s.__dict__ for s in c.seeds]}
                    for c in configs
                ]
            )
        else:
            out += "\n" + rp.to_markdown(configs)
    typer.echo(json.dumps(out, indent=2) if as_json else out)
    return 0
