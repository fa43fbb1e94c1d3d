"""`archer-sweep report DIR [-o OUT]`: report.md in the seed's style plus PNG plots."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence

import typer

from archer_sweep import plots
from archer_sweep.analysis import Sweep, load_sweep
from archer_sweep.report import render

log = logging.getLogger(__name__)


def _next_rows(sweep: Sweep, history: Sequence[Path] = ()) -> tuple[list[list], list[dict], str]:
    """Rows of the next-change table (first proposal) and all proposals for the plot."""
    from archer_sweep.space import to_optuna_space
    if sweep.spec is None or not to_optuna_space(sweep.spec):
        return [], [], ""
    from archer_sweep.cmd_next import make_proposals
    from archer_sweep.nextver import describe_near, rationale, reference
    from archer_sweep.tables import short_param
    past, space, props = make_proposals(sweep, history, count=2)
    ref = reference(past, sweep.mode)
    why = rationale(props[0], ref, space)
    rows = [[f"`{short_param(k)}`", ref.params.get(k) if ref else None, props[0].params[k], why[k]]
            for k in space]
    note = (f"Current = `{ref.run_id}` ({ref.verdict}). " if ref else "") + (
        f"Nearest past runs: {describe_near(props[0])}. ") + (
        f"Run `archer-sweep next {sweep.directory}` to write the runnable spec "
        f"({len(props)} proposals, e.g. the second: "
        + ", ".join(f"{short_param(k)}={v:.3g}" for k, v in props[-1].params.items()) + ").")
    return rows, [p.params for p in props], note


def importance_study(sweep: Sweep):
    """In-memory study of every trial with an objective value (its last; a stopped trial
    counts at its stop), for optuna.importance: stops are the common outcome here, and
    Optuna's importance reads COMPLETE trials only. The stored study is not touched."""
    import optuna
    from archer_sweep.backtest import objective_value
    from archer_sweep.space import to_optuna_space
    if sweep.spec is None:
        return None
    space = to_optuna_space(sweep.spec)
    trials = []
    for r in sweep.runs:
        v = objective_value(r, sweep.objective, "last", sweep.mode)
        if v is None or any(k not in r.params for k in space):
            continue
        trials.append(optuna.trial.create_trial(params={k: r.params[k] for k in space},
                                                distributions=dict(space), value=v))
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(direction="maximize" if sweep.mode == "max" else "minimize")
    finally:
        optuna.logging.set_verbosity(level)
    study.add_trials(trials)
    return study


def write_report(sweep: Sweep, out: Path, history: Sequence[Path] = ()) -> Path:
    """report.md + PNGs into `out`; `history` (e.g. a hunt's earlier rounds) informs the proposal."""
    out.mkdir(parents=True, exist_ok=True)
    rules = sweep.rules
    figs: dict[str, str] = {}
    for m, p in plots.key_metric_plots(sweep.runs, rules, out).items():
        figs[f"{m} over steps"] = p.name
    rows, proposals, note = _next_rows(sweep, history)
    bounds = ({k: (p.low, p.high) for k, p in sweep.spec.search.space.items()
               if p.low is not None and p.high is not None and p.low > 0} if sweep.spec else None)
    from archer_sweep.history import load_histories
    earlier = load_histories(history) if history else []
    p = plots.space_plot(sweep.runs, sweep.space_keys, out / "param_space.png", proposals, bounds,
                         earlier)
    if p:
        figs["parameter space by verdict"] = p.name
    study = importance_study(sweep)
    if study is not None:
        p = plots.importance_plot(study, out / "importance.png")
        if p:
            figs["parameter importance"] = p.name
    path = out / "report.md"
    path.write_text(render(sweep, figs, rows, note))
    return path


def main(directory: Path, out: Optional[Path] = None) -> int:
    sweep = load_sweep(directory)
    path = write_report(sweep, Path(out) if out is not None else sweep.directory / "report")
    typer.echo(f"wrote {path}")
    return 0
