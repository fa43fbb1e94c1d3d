"""How good are archer-sweep's decisions? Measured on the recorded tiny world, side by side
with the peers a user would pick instead, over many simulated sweeps.

    python bench/decisions.py                 # ≈ minutes on 2 cores; tables + PNGs
    python bench/decisions.py --quick         # a smoke run (few sweeps and seeds)

Four tables (Markdown, also written to `--out`/decisions.md) and three PNGs, on the v2 table
(`--table`; bench/data/tiny-world-v2.jsonl.gz) with every cell on the report seeds 3–4 and the
same figure on seeds 0–2 (where anything tuned is tuned) in brackets:
1. Stopping (bench/outcome_stop.py): criteria vs Ray's ASHA / median stopping vs Optuna's
   pruners vs none vs a clairvoyant bound, on random sweeps of 6–12 recorded runs, judged by
   the outcome (best validation after training began) and by the rules' own full-run verdict.
2. Search (bench/decide_search.py): trial-steps to the first healthy config and the best
   healthy objective (and its outcome) within a budget, for `hunt`, one archer-sweep sweep,
   TPE + MedianPruner, GP, random search and the seed author's manual halving; plus the share
   of model-proposed configs that the table calls healthy.
3. Anytime outcome regret (bench/anytime.py): normalised regret vs trial-steps per search
   method, area under its median curve, average rank; a PNG with median + IQR.
4. Verdict stability: per grid config, whether its recorded seeds agree, and which rules flip.
A run's rules verdict is the criteria verdict of its full recorded run under the spec's rules
(sweeps/replay.yaml, the default sweep's rules); its outcome needs no rule.
"""

from __future__ import annotations

import argparse
import collections
import logging
import math
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import anytime
from decide_search import METHODS, search_job
from decide_stop import STOP_HEADERS, STOPPERS, draw_sweeps, stop_job, stopping_table
from outcome_stop import HEADERS as OUTCOME_STOP_HEADERS
from outcome_stop import table as outcome_stop_table
from world import EC, KL, REPORT_SEEDS, TABLE, TUNE_SEEDS, World, cached_world, choose_world, median_iqr

from archer_sweep.tables import fmt, md_table

log = logging.getLogger("decisions")
ANYTIME = ("area", "final", "rank")


def _pooled(what: str, fn, jobs_list: list, names, jobs: int) -> dict[str, list]:
    """Run `fn` over `jobs_list` on `jobs` processes; results by name, in job order."""
    got: dict[str, dict[int, object]] = {n: {} for n in names}
    t0 = time.monotonic()
    with mp.get_context("fork").Pool(jobs) as pool:
        for i, (name, idx, score) in enumerate(pool.imap_unordered(fn, jobs_list, chunksize=4)):
            got[name][idx] = score
            if (i + 1) % max(len(jobs_list) // 10, 1) == 0:
                log.info("%s: %d/%d (%.0f s)", what, i + 1, len(jobs_list), time.monotonic() - t0)
    return {n: [got[n][i] for i in sorted(got[n])] for n in names}


def search_table(world: World, scores: dict[str, list], methods=METHODS) -> list[list]:
    """One row per method of `methods` (bench/peers passes its own); the reference column is
    TPE + MedianPruner when it was run."""
    best = world.best_healthy()
    tpe = scores.get("TPE + MedianPruner (Optuna)")
    ref = median_iqr([s.to_first_healthy for s in tpe])[0] if tpe else math.nan
    rows = []
    for method in methods:
        ss = scores[method]
        med, q1, q3 = median_iqr([s.to_first_healthy for s in ss])
        found = [s.best_at_budget for s in ss if s.best_at_budget is not None]
        regret = median_iqr([best - b for b in found])
        outcomes = [s.outcome_at_budget for s in ss if s.outcome_at_budget is not None]
        outcome_regret = median_iqr([world.best_outcome() - o for o in outcomes]) if outcomes else None
        proposed = sum(s.proposed for s in ss)
        share = sum(s.proposed_healthy for s in ss) / proposed if proposed else None
        rows.append(
            [
                method,
                len(ss),
                f"{fmt(med)} [{fmt(q1)}–{fmt(q3)}]",
                f"{med / ref:.2f}×" if math.isfinite(med) and math.isfinite(ref) else "—",
                f"{100 * sum(math.isfinite(s.to_first_healthy) for s in ss) / len(ss):.0f}%",
                f"{100 * len(found) / len(ss):.0f}%",
                f"{fmt(regret[0])} [{fmt(regret[1])}–{fmt(regret[2])}]" if found else "—",
                "—" if outcome_regret is None else "{:.3f} [{:.3f}–{:.3f}]".format(*outcome_regret),
                "—" if share is None else f"{100 * share:.0f}% of {proposed}",
            ]
        )
    return rows


def merge_groups(report: list[list], tune: list[list]) -> list[list]:
    """Rows of the report seeds with the tuned-on seeds' figure of each cell in brackets."""
    return [[r[0], *(f"{a} ({b})" for a, b in zip(r[1:], t[1:]))] for r, t in zip(report, tune)]


def anytime_table(group_world: dict, scores: dict, budget: int, methods=METHODS) -> tuple[list, list]:
    """(headers, rows) of the anytime regret summary, report seeds with tuned-on in brackets."""
    got = {g: anytime.summary(anytime.curves(group_world[g], scores[g], budget)) for g in ("report", "tune")}
    headers = ["method", "area under the median curve", f"median at {budget}", "average rank"]
    rows = [[m, *(f"{got['report'][m][c]:.3f} ({got['tune'][m][c]:.3f})" for c in ANYTIME)] for m in methods]
    return headers, rows


def search_headers(budget: int, cap: int) -> list[str]:
    return [
        "method",
        "seeds",
        "trial-steps to first healthy: median [IQR]",
        "vs TPE + MedianPruner",
        f"found healthy within {cap}",
        f"healthy within {budget}",
        f"regret at {budget} (vs table's best healthy): median [IQR]",
        f"outcome regret at {budget} (vs best val of the seed group): median [IQR]",
        "model proposals the table calls healthy",
    ]


def stability_table(world: World) -> tuple[list[list], list[list], float]:
    """Per config the verdicts of its seeds; the rules that split seeds; share that disagree."""
    rows, flips = [], collections.Counter()
    disagree = 0
    for ec, kl in world.configs:
        verdicts = [world.truth[(ec, kl, s)] for s in world.seeds]
        split = len(set(verdicts)) > 1
        disagree += split
        if split:
            for v in set(verdicts):
                flips[v] += 1
        rows.append([ec, kl, " / ".join(verdicts), "split" if split else "agree"])
    flip_rows = [[v, n] for v, n in flips.most_common()]
    return rows, flip_rows, disagree / len(world.configs)


def plot(world: World, scores: dict[str, list], cap: int, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, ax = plt.subplots(figsize=(9, 4.5))
    data = [[min(s.to_first_healthy, cap * 1.05) for s in scores[m]] for m in METHODS]
    ax.boxplot(data, orientation="horizontal", tick_labels=[m.replace(" (", "\n(") for m in METHODS])
    ax.axvline(cap, color="grey", ls=":", lw=1)
    ax.set_xlabel(f"trial-steps until the first healthy config (right of {cap}: none found)")
    ax.set_title("Search on the recorded tiny world (lower is better)")
    fig.tight_layout()
    paths.append(out / "first_healthy.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    paths.append(plot_grid(world, out))
    return paths


def plot_grid(world: World, out: Path) -> Path:
    """The grid coloured by the share of each config's seeds that the table calls healthy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from make_table import ENTROPY, KL  # the recorded grid (off-grid configs are not cells)

    ecs, kls = sorted(ENTROPY), sorted(KL)
    fig, ax = plt.subplots(figsize=(10, 4.2))
    grid = [[world.healthy_share((e, k)) for e in ecs] for k in kls]
    im = ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=1, origin="lower", aspect="auto")
    for i, k in enumerate(kls):
        for j, e in enumerate(ecs):
            vs = [world.truth[(e, k, s)] for s in world.seeds]
            short = {v.split(":")[-1] for v in vs}
            ax.text(j, i, "\n".join(sorted(short)), ha="center", va="center", fontsize=5)
    ax.set_xticks(range(len(ecs)), [fmt(e) for e in ecs])
    ax.set_yticks(range(len(kls)), [fmt(k) for k in kls])
    ax.set_xlabel(EC)
    ax.set_ylabel(KL)
    ax.set_title("Share of recorded seeds called healthy (cell text: the verdicts of its seeds)")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    path = out / "verdict_agreement.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sweeps", type=int, default=200, help="simulated sweeps for the stopping table")
    ap.add_argument("--seeds", type=int, default=100, help="seeds per search method")
    ap.add_argument("--budget", type=int, default=720, help="trial-steps budget for 'best healthy'")
    ap.add_argument("--cap", type=int, default=1800, help="trial-steps after which a search gives up")
    ap.add_argument("--jobs", type=int, default=2, help="processes for the search simulations")
    ap.add_argument("--out", type=Path, default=Path("bench/out/decisions"))
    ap.add_argument("--table", type=Path, default=TABLE, help="recorded table (default: the v2 table)")
    ap.add_argument("--eps", type=float, default=1 / 64, help="near-best band of the outcome (stopping)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 20 sweeps, 4 seeds")
    args = ap.parse_args(argv)
    if args.quick:
        args.sweeps, args.seeds = 20, 4
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    choose_world(args.table)
    world = cached_world()
    parts = [
        f"# Decisions on the recorded tiny world ({args.table.name}: {len(world.runs)} runs)\n",
        "Every cell: report seeds 3–4 (tuned-on seeds 0–2 in brackets).\n",
    ]
    if world.best_outcome() is not None:
        rows = outcome_stop_table(args.sweeps, args.eps, args.jobs)
        headers = OUTCOME_STOP_HEADERS
    else:  # a table without validations (the old one): the rules' own ground truth only
        sweeps = draw_sweeps(world, args.sweeps)
        stop_jobs = [(name, i, keys) for name in STOPPERS for i, keys in enumerate(sweeps)]
        rows, headers = (
            stopping_table(_pooled("stopping", stop_job, stop_jobs, STOPPERS, args.jobs)),
            STOP_HEADERS,
        )
    parts += [
        f"## Stopping ({args.sweeps} sweeps of 6–12 random recorded runs per seed group)\n",
        md_table(headers, rows),
    ]
    log.info("stopping table done (%.0f s)", time.monotonic() - t0)

    search_jobs = [(m, s, args.budget, args.cap) for m in METHODS for s in range(args.seeds)]
    search_rows, scores, group_world = {}, {}, {}
    for group, seeds in (("report", REPORT_SEEDS), ("tune", TUNE_SEEDS)):
        choose_world(args.table, seeds)
        group_world[group] = cached_world()
        scores[group] = _pooled(f"search ({group} seeds)", search_job, search_jobs, METHODS, args.jobs)
        search_rows[group] = search_table(group_world[group], scores[group])
    merged = merge_groups(search_rows["report"], search_rows["tune"])
    parts += [
        f"\n## Search ({args.seeds} seeds per method and seed group; best healthy objective in the "
        f"report seeds {fmt(group_world['report'].best_healthy())})\n",
        md_table(search_headers(args.budget, args.cap), merged),
    ]

    parts += [
        f"\n## Anytime outcome regret (trial-steps 1–{args.budget}; normalised: 0 = the group's best "
        "val, 1 = its worst or nothing healthy)\n",
        md_table(*anytime_table(group_world, scores, args.budget)),
    ]
    curves_png = anytime.plot(
        anytime.curves(group_world["report"], scores["report"], args.budget),
        args.out,
        "Anytime outcome regret on the report seeds (lower is better)",
    )

    grid, flips, share = stability_table(world)
    parts += [
        f"\n## Verdict stability: {100 * share:.0f}% of {len(grid)} configs get different verdicts "
        f"from their {len(world.seeds)} recorded seeds\n",
        md_table(["verdict among split seeds", "configs"], flips),
        "",
        md_table([EC, KL, "verdicts of seeds " + ", ".join(map(str, world.seeds)), "seeds"], grid),
    ]
    pngs = [*plot(world, scores["report"], args.cap, args.out), curves_png]
    text = "\n".join(parts) + f"\n\nPlots: {', '.join(str(p) for p in pngs)}\n"
    (args.out / "decisions.md").write_text(text)
    sys.stdout.write(text)
    log.info("wall %.0f s", time.monotonic() - t0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
