"""Stopping judged by an independent outcome on the v2 table (#24 items 2–3), report seeds apart.

    .venv/bin/python bench/outcome_stop.py [--sweeps 400] [--eps 0.015625]

The world is `bench/data/tiny-world-v2.jsonl.gz` (42 configs × seeds 0–4, 60 steps, no stopping,
validation every 10 steps). A run's **outcome** is its best validation score after training
began (steps ≥ 10): step 1's validation is the warm start's, the same for every run. Each
simulated sweep draws 6–12 distinct configs, each at one random seed of a seed group; every
policy (bench/decide_stop.STOPPERS: archer-sweep's criteria and the peers) sees the same sweeps.
Per policy, beside the rules' own ground truth (a stop is false when the full run is healthy):
- outcome-false stops: stopped runs whose outcome is within `eps` (default one validation
  problem of 64) of the sweep's best outcome;
- outcome regret: the sweep's best outcome − the best outcome among the runs the policy keeps
  (not stopped and, for the criteria, not judged unhealthy);
- the clairvoyant bound: each run that is not within `eps` of the sweep's best stopped after its
  first step, the others run to the end (0 outcome-false stops by construction); the criteria's
  saving is reported as a share of the clairvoyant's.
Nothing here is tuned: the rules are sweeps/replay.yaml's as shipped (chosen on the old table).
Every table is on the report seeds 3–4, the same figures on seeds 0–2 beside ("tuned-on"), so
that whatever is tuned on 0–2 later shows its overfitting.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

from decide_stop import STOPPERS
from world import FIRST_TRAINED_VAL, REPORT_SEEDS, TABLE, TUNE_SEEDS, Key, World, cached_world, choose_world

from archer_sweep.tables import md_table

log = logging.getLogger("outcome_stop")
CRITERIA = "criteria (archer-sweep: + stop when decided + forecasts)"
JUDGES = {name for name in STOPPERS if name.startswith("criteria")}
"""Policies that also reject a finished run (an `unhealthy:*` verdict), not only stop one."""


def outcome(world: World, key: Key) -> float:
    value = world.outcome[key]
    if value is None:
        raise ValueError(f"{key}: the table has no validation after step {FIRST_TRAINED_VAL - 1}")
    return value


def draw(world: World, seeds: Sequence[int], n: int, rng: random.Random) -> list[list[Key]]:
    return [
        [(*config, rng.choice(seeds)) for config in rng.sample(world.configs, rng.randint(6, 12))]
        for _ in range(n)
    ]


@dataclass
class Score:
    used: int
    total: int
    clairvoyant: int
    regret: float
    outcome_false: int
    near_best: int
    self_false: int
    healthy: int


def score(world: World, keys: Sequence[Key], stops: Sequence[int | None], judges: bool, eps: float) -> Score:
    full = {k: world.runs[k].last_step for k in keys}
    best = max(outcome(world, k) for k in keys)
    near = {k for k in keys if outcome(world, k) >= best - eps}
    kept = [k for k, s in zip(keys, stops) if s is None and (not judges or world.truth[k] == "healthy")]
    return Score(
        used=sum(full[k] if s is None else s for k, s in zip(keys, stops)),
        total=sum(full.values()),
        clairvoyant=sum(full[k] if k in near else 1 for k in keys),
        regret=best - max((outcome(world, k) for k in kept), default=0.0),
        outcome_false=sum(1 for k, s in zip(keys, stops) if s is not None and k in near),
        near_best=len(near),
        self_false=sum(1 for k, s in zip(keys, stops) if s is not None and world.truth[k] == "healthy"),
        healthy=sum(1 for k in keys if world.truth[k] == "healthy"),
    )


COLUMNS = (
    "saved", "÷ clairvoyant", "outcome-false stops", "outcome regret median [IQR]",
    "zero-regret sweeps", "self-judged false stops", "clairvoyant saved",
)  # fmt: skip


def summary(scores: list[Score]) -> dict[str, str]:
    used, total = sum(s.used for s in scores), sum(s.total for s in scores)
    bound = 1 - sum(s.clairvoyant for s in scores) / total
    regrets = sorted(s.regret for s in scores)
    q = statistics.quantiles(regrets, n=4) if len(regrets) > 1 else regrets * 3
    return {
        "saved": f"{100 * (1 - used / total):.1f}%",
        "÷ clairvoyant": f"{(1 - used / total) / bound:.2f}×",
        "outcome-false stops": f"{sum(s.outcome_false for s in scores)} / {sum(s.near_best for s in scores)}",
        "outcome regret median [IQR]": f"{statistics.median(regrets):.3f} [{q[0]:.3f}–{q[2]:.3f}]",
        "zero-regret sweeps": f"{100 * sum(r <= 0 for r in regrets) / len(regrets):.0f}%",
        "self-judged false stops": f"{sum(s.self_false for s in scores)} / {sum(s.healthy for s in scores)}",
        "clairvoyant saved": f"{100 * bound:.1f}%",
    }


def policy_job(args: tuple) -> tuple[str, dict[str, dict[str, str]]]:
    """One policy over both seed groups' sweeps (for a fork pool: the chosen world is inherited)."""
    name, n, eps, seed = args
    world = cached_world()
    groups = {"report": REPORT_SEEDS, "tune": TUNE_SEEDS}
    got = {}
    for group, seeds in groups.items():
        sweeps = draw(world, seeds, n, random.Random(seed))
        got[group] = summary([score(world, k, STOPPERS[name](world, k), name in JUDGES, eps) for k in sweeps])
    return name, got


HEADERS = ["policy (report seeds 3–4; tuned-on seeds 0–2 in brackets)", *COLUMNS]


def table(n: int, eps: float, jobs: int = 2, seed: int = 0) -> list[list[str]]:
    """One row per policy: each cell 'report (tuned-on)'. The chosen world must hold every seed."""
    t0 = time.perf_counter()
    todo = [(name, n, eps, seed) for name in STOPPERS]
    with mp.get_context("fork").Pool(jobs) as pool:
        done = {}
        for name, got in pool.imap_unordered(policy_job, todo):
            done[name] = got
            log.info(
                "stopping: %d/%d policies (%s, %.0f s)", len(done), len(todo), name, time.perf_counter() - t0
            )
    log.info(
        "stopping: %d policies × %d sweeps × 2 seed groups in %.0f s", len(todo), n, time.perf_counter() - t0
    )
    return [
        [name, *(f"{done[name]['report'][c]} ({done[name]['tune'][c]})" for c in COLUMNS)]
        for name in STOPPERS
    ]


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", type=int, default=400, help="simulated sweeps per seed group")
    parser.add_argument("--eps", type=float, default=1 / 64, help="near-best band of the outcome")
    parser.add_argument("--jobs", type=int, default=2, help="processes (one policy each)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    choose_world(TABLE)
    world = cached_world()
    outcomes = [outcome(world, k) for k in world.runs]
    log.info(
        "v2 world: %d runs; outcome (best val, steps ≥ %d) median %.3f, range %.3f–%.3f; loaded in %.1f s",
        len(outcomes), FIRST_TRAINED_VAL, statistics.median(outcomes), min(outcomes), max(outcomes),
        time.perf_counter() - t0,
    )  # fmt: skip
    rows = table(args.sweeps, args.eps, args.jobs)
    log.info(
        "\n%d sweeps of 6–12 configs per seed group, eps %.4f, %.0f s\n%s",
        args.sweeps, args.eps, time.perf_counter() - t0, md_table(HEADERS, rows),
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
