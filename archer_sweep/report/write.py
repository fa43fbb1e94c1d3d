"""`report.md` plus its PNG plots for one sweep directory."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from archer_sweep.objective import reduce_objective
from archer_sweep.report import plots
from archer_sweep.report.render import render
from archer_sweep.results.analysis import Sweep
from archer_sweep.results.history import load_histories

log = logging.getLogger(__name__)

NextChange = tuple[list[list], list[dict], str]
"""Rows of the next-change table, the proposals' params (for the plot), and a note."""


def importance_study(sweep: Sweep):
    """In-memory study of every trial with an objective value (by `search.objective_reduce`; a
    stopped trial counts at its stop), for optuna.importance: stops are the common outcome here, and
    Optuna's importance reads COMPLETE trials only. The stored study is not touched."""
    import optuna

    from archer_sweep.spec.space import to_optuna_space

    if sweep.spec is None:
        return None
    space = to_optuna_space(sweep.spec)
    trials = []
    for r in sweep.runs:
        v = reduce_objective(r.series(sweep.objective)[1], sweep.reduce, sweep.mode)
        if v is None or any(k not in r.params for k in space):
            continue
        trials.append(
            optuna.trial.create_trial(
                params={k: r.params[k] for k in space}, distributions=dict(space), value=v
            )
        )
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(direction="maximize" if sweep.mode == "max" else "minimize")
    finally:
        optuna.logging.set_verbosity(level)
    study.add_trials(trials)
    return study


def write_report(sweep: Sweep, out: Path, next_change: NextChange, history: Sequence[Path] = ()) -> Path:
    """report.md + PNGs into `out`. `next_change` = (table rows, proposed params, note) from
    `planning.propose.next_change`; `history` (e.g. a hunt's earlier rounds) is plotted too."""
    out.mkdir(parents=True, exist_ok=True)
    rules = sweep.rules
    figs: dict[str, str] = {}
    for m, p in plots.key_metric_plots(sweep.runs, rules, out).items():
        figs[f"{m} over steps"] = p.name
    rows, proposals, note = next_change
    bounds = (
        {
            k: (p.low, p.high)
            for k, p in sweep.spec.search.space.items()
            if p.low is not None and p.high is not None and p.low > 0
        }
        if sweep.spec
        else None
    )
    earlier = load_histories(history) if history else []
    p = plots.space_plot(sweep.runs, sweep.space_keys, out / "param_space.png", proposals, bounds, earlier)
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
