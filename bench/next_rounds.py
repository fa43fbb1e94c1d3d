"""How healthy are `next`'s proposals, round by round, after either kind of first round (#24 item 6)?

    python bench/next_rounds.py                # ≈ a few minutes on 2 cores
    python bench/next_rounds.py --seeds 10     # a smoke run

Round 1 is one archer-sweep sweep of `num_samples` trials from v1 (the spec's `feasible`
sampler, or TPE with 4 random startup trials, the sampler before it); rounds 2–3 are `next`
(`feasible` or `tpe`) over every earlier trial, as bench/decide_search's `hunt` plays them.
A proposal's health is its snapped config's healthy share in the table (over the seed group's
recorded seeds), so a round's figure does not hang on which seed a trial happened to draw.
Every cell is on the report seeds 3–4 with seeds 0–2 (where anything is tuned) in brackets.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from decide_search import hunt
from world import REPORT_SEEDS, TUNE_SEEDS, cached_world, choose_world

from archer_sweep.tables import md_table

log = logging.getLogger("next_rounds")
ROUNDS = 3
FIRST_ROUNDS = {"feasible sweep": None, "TPE sweep": ("tpe", 4)}
NEXT_METHODS = ("feasible", "tpe")


def shares(first: str, method: str, bench_seed: int) -> list[float]:
    """Mean healthy share of the model's proposals in each round (NaN: it proposed none)."""
    world = cached_world()
    size = world.spec.search.num_samples
    rng = random.Random(10_000 + bench_seed)  # the draws of decide_search.run_method
    rng_seeds = [rng.choice(world.seeds) for _ in range(ROUNDS * size)]
    per_round: list[list[float]] = [[] for _ in range(ROUNDS)]
    trials = hunt(world, rng_seeds, bench_seed, size, method=method, sampler=FIRST_ROUNDS[first])
    for k, t in enumerate(trials):
        if t.proposed:
            per_round[k // size].append(world.healthy_share((t.key[0], t.key[1])))
    return [statistics.fmean(r) if r else float("nan") for r in per_round]


def _job(args: tuple) -> tuple[tuple, list[float]]:
    group, first, method, seed = args
    choose_world(seeds=REPORT_SEEDS if group == "report" else TUNE_SEEDS)
    return (group, first, method), shares(first, method, seed)


def _pct(vals: list[float]) -> str:
    return f"{100 * statistics.fmean(vals):.0f}%" if vals else "—"


def table(results: dict[tuple, list[list[float]]]) -> str:
    rows = []
    for first in FIRST_ROUNDS:
        for method in NEXT_METHODS:
            cells = []
            for r in range(ROUNDS):
                report, tune = (
                    [s[r] for s in results[(g, first, method)] if s[r] == s[r]] for g in ("report", "tune")
                )
                cells.append(f"{_pct(report)} ({_pct(tune)})")
            rows.append([first, method, *cells])
    headers = [
        "round 1",
        "next --method",
        "round 1 (the sampler's proposals)",
        "round 2 (next)",
        "round 3 (next)",
    ]
    return md_table(headers, rows)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=100, help="simulated hunts per cell")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    jobs = [
        (g, f, m, s)
        for g in ("report", "tune")
        for f in FIRST_ROUNDS
        for m in NEXT_METHODS
        for s in range(args.seeds)
    ]
    results: dict[tuple, list[list[float]]] = {}
    with ProcessPoolExecutor(args.jobs) as pool:
        for i, (key, s) in enumerate(pool.map(_job, jobs, chunksize=8), 1):
            results.setdefault(key, []).append(s)
            if i % max(1, len(jobs) // 10) == 0:
                log.info("next rounds: %d/%d hunts", i, len(jobs))
    sys.stdout.write(
        "Mean healthy share of the model's proposals per round, report seeds 3–4 (tuned-on 0–2)\n\n"
        + table(results)
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
