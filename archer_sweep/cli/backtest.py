"""`archer-sweep backtest HISTORY… --spec SPEC [--outcome KEY [--within X]] [--json]`: replay
recorded runs under the spec's criteria, ASHA, median stopping and no stopping (see
archer_sweep.planning.backtest); with `--outcome`, score each policy by that key too
(archer_sweep.planning.outcome)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import typer

from archer_sweep.errors import UserError
from archer_sweep.planning import outcome as oc
from archer_sweep.planning.backtest import Backtest, backtest, settings_from_spec
from archer_sweep.results.history import load_histories
from archer_sweep.spec.load import read_spec
from archer_sweep.tables import fmt, md_table
from archer_sweep.values import jsonable


def to_json(bt: Backtest) -> dict:
    out = _plain_json(bt)
    if bt.outcome is None:
        return out
    for row in out["runs"]:
        o = bt.run_outcomes[row["run"]]
        row["outcome"] = {"value": o.value, "step": o.step}
    for row in out["policies"]:
        s = bt.outcome_summaries[row["policy"]]
        row |= {
            "outcome_kept_best": s.kept_best,
            "outcome_regret": s.regret,
            "outcome_false_stops": s.false_stops,
        }
    out["outcome"] = {"key": bt.outcome.key, "within": bt.outcome.within, "reduce": bt.outcome.reduce}
    return jsonable(out)


def _plain_json(bt: Backtest) -> dict:
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
    head = ["run", "steps", "health (full run)", *policies]
    if bt.outcome is not None:
        head.insert(3, f"outcome ({bt.outcome.reduce} @ step)")
        for r, cells in zip(bt.runs, rows):
            o = bt.run_outcomes[r.run_id]
            cells.insert(3, "not reported" if o.value is None else f"{fmt(o.value)} @ {o.step}")
    per_run = md_table(head, rows)
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
    shead = ["policy", "trial-steps used", "steps saved", "saved", "best healthy objective", "regret"]
    if bt.outcome is not None:
        shead += ["outcome kept", "outcome-regret", "outcome-false-stops"]
        for s, cells in zip(bt.summaries, srows):
            cells += _outcome_cells(bt.outcome_summaries[s.policy])
    summary = md_table(shead, srows)
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
    return f"## Per run\n\n{per_run}\n\n## Per policy\n\n{summary}\n{note}{_outcome_note(bt)}"


def _outcome_cells(s: oc.OutcomeSummary) -> list:
    regret = "n/a" if s.regret is None else "all outcomes lost" if math.isinf(s.regret) else fmt(s.regret)
    false = f"{len(s.false_stops)}" + (
        f" ({', '.join(s.false_stops[:4])}{', …' if len(s.false_stops) > 4 else ''})" if s.false_stops else ""
    )
    return [s.kept_best, regret, false]


def _outcome_note(bt: Backtest) -> str:
    if bt.outcome is None:
        return ""
    top = oc.top_runs(list(bt.run_outcomes.values()), bt.outcome.within)
    return (
        f"\nOutcome: {bt.outcome.reduce} {bt.outcome.key} of each run; top runs (within "
        f"{bt.outcome.within:g} of the best): {', '.join(top) or 'none'}. A stop keeps a run's "
        "outcome when it comes at or after the step of that outcome (with best: its checkpoint kept).\n"
    )


def outcome_spec(runs, key: str, within: float, reduce: str = "best") -> oc.OutcomeSpec:
    """The `--outcome` settings, checked against the runs (exit 2 on bad input)."""
    if reduce not in oc.REDUCES:
        raise UserError(f"--outcome-reduce: unknown {reduce!r} (expected one of {', '.join(oc.REDUCES)})")
    if not math.isfinite(within) or within < 0:
        raise UserError(f"--within: {within:g} is not a distance (expected a number >= 0)")
    if not any(r.series(key)[0] for r in runs):
        some = sorted({k for r in runs for s in r.steps for k in s if k.startswith("val")})
        hint = f"e.g. {', '.join(some[:3])}" if some else "a key the history logs"
        raise UserError(f"--outcome: no run reports {key} (expected {hint})")
    return oc.OutcomeSpec(key, within, reduce)


def main(
    history: Sequence[Path],
    spec: Path,
    as_json: bool = False,
    outcome: str | None = None,
    within: float = 0.0,
    outcome_reduce: str = "best",
) -> int:
    sweep = read_spec(spec)
    runs = load_histories(history)
    if not any(r.steps for r in runs):
        raise UserError(f"{', '.join(map(str, history))}: no run with any reports")
    if outcome is None and within:
        raise UserError("--within: given without --outcome (expected --outcome KEY)")
    scored = outcome_spec(runs, outcome, within, outcome_reduce) if outcome is not None else None
    bt = backtest(runs, sweep.rules(), settings_from_spec(sweep), outcome=scored)
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
