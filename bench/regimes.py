"""Train the tiny world under a few (entropy_coeff, kl_loss_coef) settings and print how
the seed's key metrics move: the calibration evidence behind the default sweep.

    .venv/bin/python bench/regimes.py [--steps 60] [--jobs 2] [--out regimes.json]
        [--regime name:entropy_coeff:kl_loss_coef ...] [--set actor.lr=1e-3 ...]

Every number comes from real training runs (warm start, sampling, rewards, updates);
`score gain` is the mean `critic/score/mean` of the last 5 steps minus the first 5.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import multiprocessing as mp
import statistics
import sys

from step import parse_sets  # bench/ is on sys.path when run as a script

from trainable import build_trainer
from trainable import metrics as M

DEFAULT_REGIMES = ("none:0:0.01", "weak:0.001:0.01", "v2:0.005:0.01", "strong:0.05:0.01")
COLUMNS = (
    (M.ENTROPY, "entropy"),
    (M.RESP_LEN_POS, "pos len"),
    (M.LOGICAL_CONNECTIVES, "conn"),
    (M.SCORE_MEAN, "score"),
    (M.GIBBERISH_FRAC, "gib"),
)


def run(job: tuple[str, dict]) -> tuple[str, list[dict]]:
    name, config = job
    trainer = build_trainer(config)
    rows = []
    while not trainer.done():
        rows.append(trainer.step())
        r = rows[-1]
        print(
            f"[{name}] step {int(r[M.STEP])} "
            + " ".join(f"{c}={fmt(r[k])}" for k, c in COLUMNS)
            + f" t={r[M.TIME_STEP]:.1f}s",
            file=sys.stderr,
            flush=True,
        )
    return name, rows


def summary(rows: list[dict]) -> dict:
    scores = [r[M.SCORE_MEAN] for r in rows]
    over7 = next((int(r[M.STEP]) for r in rows if r[M.ENTROPY] > 7), None)
    return {
        "score_gain": statistics.mean(scores[-5:]) - statistics.mean(scores[:5]),
        "max_entropy": max(r[M.ENTROPY] for r in rows),
        "first_step_entropy_gt_7": over7,
        "step_s": statistics.mean(r[M.TIME_STEP] for r in rows),
    }


def fmt(v: float) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def table(name: str, params: str, rows: list[dict], every: int) -> str:
    picks = [r for r in rows if int(r[M.STEP]) == 1 or int(r[M.STEP]) % every == 0]
    head = f"| {name} ({params}) step | " + " | ".join(c for _, c in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 1)]
    lines += [f"| {int(r[M.STEP])} | " + " | ".join(fmt(r[k]) for k, _ in COLUMNS) + " |" for r in picks]
    s = summary(rows)
    lines.append(
        f"score gain (last5-first5) {s['score_gain']:+.3f}, max entropy "
        f"{s['max_entropy']:.2f}, entropy>7 first at step {s['first_step_entropy_gt_7']}, "
        f"{s['step_s']:.2f} s/step"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="default: trainer.total_steps")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--every", type=int, default=10, help="print every N-th step")
    parser.add_argument("--regime", action="append", default=None)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--out", default=None, help="write all per-step rows as JSON")
    args = parser.parse_args()
    base = parse_sets(args.sets)
    base.setdefault("trainer", {})["threads"] = 1
    if args.steps:
        base["trainer"]["total_steps"] = args.steps
    build_trainer(base)  # build the warm start once, before the workers start
    jobs = []
    for spec in args.regime or DEFAULT_REGIMES:
        name, ent, kl = spec.split(":")
        config = copy.deepcopy(base)
        config.setdefault("algorithm", {}).update(entropy_coeff=float(ent), kl_loss_coef=float(kl))
        jobs.append((f"{name}", config))
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        results = dict(pool.map(run, jobs))
    for name, config in jobs:
        alg = config["algorithm"]
        print(
            table(
                name,
                f"entropy_coeff={alg['entropy_coeff']}, kl_loss_coef={alg['kl_loss_coef']}",
                results[name],
                args.every,
            )
            + "\n"
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump({name: {"config": cfg, "rows": results[name]} for name, cfg in jobs}, f)


if __name__ == "__main__":
    main()
