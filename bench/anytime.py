"""Anytime outcome regret of the search methods (#24 item 5), from bench/decide_search traces.

Normalised regret at trial-step t of one simulated search: (best outcome of the seed group −
outcome of the incumbent at t) / (best − worst outcome of the group), the incumbent being the
best-objective healthy trial finished by t; 1 before any healthy trial. Per method: the median
and IQR over seeds at every trial-step up to the budget, the area under the median curve (mean
over the steps: 0 = the best config from the start, 1 = nothing healthy throughout), and the
average rank of the method among all methods per (seed, trial-step), ties shared.
"""

from __future__ import annotations

import bisect
import statistics
from pathlib import Path

from world import World


def regret_at(trace, t: int, best: float, span: float) -> float:
    """Normalised outcome regret of one search's incumbent after `t` trial-steps."""
    used = [u for u, _ in trace]
    i = bisect.bisect_right(used, t) - 1
    outcome = trace[i][1] if i >= 0 else None
    return 1.0 if outcome is None else (best - outcome) / span


def curves(world: World, scores: dict[str, list], budget: int) -> dict[str, list[list[float]]]:
    """Per method, per seed: the regret at trial-steps 1..budget."""
    values = [v for v in world.outcome.values() if v is not None]
    best, span = max(values), (max(values) - min(values)) or 1.0
    steps = range(1, budget + 1)
    return {m: [[regret_at(s.trace, t, best, span) for t in steps] for s in ss] for m, ss in scores.items()}


def summary(per_method: dict[str, list[list[float]]]) -> dict[str, dict[str, float]]:
    """Area under the median curve, final median, and average rank per method."""
    methods = list(per_method)
    n_seeds = min(len(v) for v in per_method.values())
    n_steps = len(next(iter(per_method.values()))[0])
    ranks = {m: 0.0 for m in methods}
    for seed in range(n_seeds):
        for t in range(0, n_steps, 10):  # every 10th step: ranks move slowly, this keeps it cheap
            vals = {m: per_method[m][seed][t] for m in methods}
            for m in methods:
                below = sum(v < vals[m] for v in vals.values())
                ties = sum(v == vals[m] for v in vals.values())
                ranks[m] += below + (ties + 1) / 2
    points = n_seeds * len(range(0, n_steps, 10))
    out = {}
    for m, runs in per_method.items():
        median = [statistics.median(col) for col in zip(*runs)]
        out[m] = {"area": sum(median) / len(median), "final": median[-1], "rank": ranks[m] / points}
    return out


def plot(per_method: dict[str, list[list[float]]], out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for m, runs in per_method.items():
        cols = list(zip(*runs))
        qs = [statistics.quantiles(c, n=4) if len(c) > 1 else [c[0]] * 3 for c in cols]
        xs = range(1, len(cols) + 1)
        (line,) = ax.plot(xs, [q[1] for q in qs], label=m, lw=1.3)
        ax.fill_between(xs, [q[0] for q in qs], [q[2] for q in qs], color=line.get_color(), alpha=0.12)
    ax.set_xlabel("trial-steps")
    ax.set_ylabel("normalised outcome regret (median, IQR)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / "anytime_regret.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
