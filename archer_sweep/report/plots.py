"""PNG plots of a sweep (matplotlib, Agg backend): metric curves with the rules'
thresholds and stop marks, the parameter space coloured by verdict, and parameter
importance. Each function writes one file and returns its path (None = nothing to plot)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from archer_sweep.criteria import Rule
from archer_sweep.results.runs import Run
from archer_sweep.tables import short_param
from trainable import metrics as M

log = logging.getLogger(__name__)

VERDICT_COLOURS = {
    "healthy": "tab:green",
    "unhealthy": "tab:orange",
    "stopped": "tab:red",
    "error": "tab:gray",
    "unknown": "tab:blue",
}


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    return plt


def verdict_kind(run: Run) -> str:
    kind = run.verdict_name.split(":", 1)[0]
    return kind if kind in VERDICT_COLOURS else "unknown"


def slug(metric: str) -> str:
    return metric.replace("/", "_")


def _draw_rules(ax, rules: Sequence[Rule]) -> None:
    for r in rules:
        if r.relative_to is not None or r.drop is not None or r.drop_ratio is not None:
            continue  # a threshold of the run's own start or best: no one line for all runs
        good = r.verdict == "good"
        colour = "tab:green" if good else "tab:red"
        label = f"{'good' if good else 'bad'}: {r.name}"
        if r.between is not None:
            if good:
                ax.axhspan(*r.between, color="tab:green", alpha=0.12, label=label)
            else:
                ax.axhspan(*r.between, color="tab:red", alpha=0.10, label=label)
        else:
            ax.axhline(r.value, color=colour, ls="--" if not good else ":", lw=1.2, label=label)
        if r.at_step is not None:
            ax.axvline(r.at_step, color=colour, ls=":", lw=0.8, alpha=0.6)


def metric_plot(runs: Sequence[Run], metric: str, rules: Sequence[Rule], out: Path) -> Optional[Path]:
    """`metric` over steps for every run; rule thresholds; an × where a run was stopped."""
    series = [(r, *r.series(metric)) for r in runs]
    if not any(xs for _, xs, _ in series):
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r, xs, ys in series:
        if not xs:
            continue
        (line,) = ax.plot(
            xs, ys, lw=1.5, marker="." if len(xs) < 30 else None, label=f"{r.run_id} ({r.verdict_name})"
        )
        v = r.verdict or {}
        if r.verdict_name.startswith("stopped") and v.get("step") is not None:
            step = int(v["step"])
            y = next((b for a, b in zip(xs, ys) if a == step), ys[-1])
            if math.isfinite(y):
                ax.plot(
                    [step], [y], marker="X", ms=11, color=line.get_color(), markeredgecolor="black", zorder=5
                )
                ax.annotate(
                    f"stop: {v.get('rule') or 'nan'}",
                    (step, y),
                    textcoords="offset points",
                    xytext=(4, 6),
                    fontsize=7,
                )
    _draw_rules(ax, [r for r in rules if r.metric == metric])
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} (× = stopped by a rule)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best", ncol=2 if len(runs) > 6 else 1)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def space_plot(
    runs: Sequence[Run],
    keys: Sequence[str],
    out: Path,
    proposals: Sequence[dict] = (),
    bounds: Optional[dict[str, tuple[float, float]]] = None,
    earlier: Sequence[Run] = (),
) -> Optional[Path]:
    """The first two searched parameters (log axes) coloured by verdict; proposals as stars;
    the axes span the search space when `bounds` are given; `earlier` runs (e.g. a hunt's
    previous rounds) are drawn faded."""
    if len(keys) < 2:
        return None
    kx, ky = keys[0], keys[1]
    pts = [(r, r.params.get(kx), r.params.get(ky)) for r in runs]
    pts = [(r, x, y) for r, x, y in pts if isinstance(x, (int, float)) and isinstance(y, (int, float))]
    if not pts:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 5))
    old = [(r, r.params.get(kx), r.params.get(ky)) for r in earlier]
    old = [(r, x, y) for r, x, y in old if isinstance(x, (int, float)) and isinstance(y, (int, float))]
    if old:
        ax.scatter(
            [x for _, x, _ in old],
            [y for _, _, y in old],
            s=40,
            alpha=0.35,
            zorder=2,
            c=[VERDICT_COLOURS[verdict_kind(r)] for r, _, _ in old],
            label="earlier (faded)",
        )
    for kind, colour in VERDICT_COLOURS.items():
        sel = [(r, x, y) for r, x, y in pts if verdict_kind(r) == kind]
        if sel:
            ax.scatter(
                [x for _, x, _ in sel],
                [y for _, _, y in sel],
                c=colour,
                s=60,
                edgecolors="black",
                label=kind,
                zorder=3,
            )
    for r, x, y in pts:
        ax.annotate(r.run_id[-8:], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    prop = [(p.get(kx), p.get(ky)) for p in proposals]
    prop = [(x, y) for x, y in prop if x is not None and y is not None]
    if prop:
        ax.scatter(
            *zip(*prop), marker="*", s=220, c="gold", edgecolors="black", label="proposed next", zorder=4
        )
    if all(x > 0 for _, x, _ in pts + old):
        ax.set_xscale("log")
    if all(y > 0 for _, _, y in pts + old):
        ax.set_yscale("log")
    for key, set_lim in ((kx, ax.set_xlim), (ky, ax.set_ylim)):
        if bounds and key in bounds:
            lo, hi = bounds[key]
            set_lim(lo / 1.3, hi * 1.3)  # a margin so points on the bounds stay visible
    ax.set_xlabel(short_param(kx))
    ax.set_ylabel(short_param(ky))
    ax.set_title("Parameter space by verdict")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def importance_plot(study, out: Path, min_trials: int = 6) -> Optional[Path]:
    """optuna.importance of the searched parameters when ≥ `min_trials` trials are COMPLETE."""
    import optuna

    done = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(done) < min_trials:
        return None
    try:
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()  # Optuna 5's default, named
        imp = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (RuntimeError, ValueError) as exc:  # e.g. a parameter that never varied
        log.warning("parameter importance unavailable: %s", exc)
        return None
    if not imp:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 0.6 * len(imp) + 1.5))
    names = list(imp)[::-1]
    ax.barh([short_param(n) for n in names], [imp[n] for n in names], color="tab:blue")
    ax.set_xlabel("importance for the objective (optuna.importance, PED-ANOVA)")
    ax.set_title(f"Parameter importance ({len(done)} trials, last objective value)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def key_metric_plots(
    runs: Sequence[Run], rules: Sequence[Rule], out_dir: Path, metrics: Sequence[str] = M.KEY_METRICS
) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for m in metrics:
        p = metric_plot(runs, m, rules, out_dir / f"{slug(m)}.png")
        if p is not None:
            paths[m] = p
    return paths
