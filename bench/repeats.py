"""Repeats on the recorded tiny world (3 seeds per config): how stable is a config's verdict
judged over 3 seeds vs over one seed, and what do sibling stops save?

    .venv/bin/python bench/repeats.py

Stability: two independent looks at one config agree on healthy / not healthy. One seed: the
share of seed pairs of a config that agree. Three seeds: the same share between bootstrap
resamples of the config's 3 recorded seeds (with replacement; 2000 pairs per config), a proxy
since the table holds only 3 seeds. Cost: trial-steps per config under the spec's rules.
"""

from __future__ import annotations

import itertools
import logging
import random
import statistics

from archer_sweep.criteria.repeats import aggregate
from archer_sweep.planning.backtest import judge, settings_from_spec
from archer_sweep.planning.repeats import group_runs, replay_repeats
from archer_sweep.results.replay import load_table
from archer_sweep.spec.load import load_spec
from archer_sweep.spec.model import RepeatsSpec

TABLE = "bench/data/tiny-world.jsonl.gz"


def _used(run, v) -> int:
    return v.step if v is not None and v.ended_early and v.step is not None else run.last_step


def main() -> None:
    logging.disable(logging.WARNING)
    spec = load_spec("sweeps/replay.yaml")
    rules, st = spec.rules(), settings_from_spec(spec)
    runs = [r for r in load_table((TABLE,)).runs if r.steps]
    configs = [g for g in group_runs(runs).values() if len(g) == 3]
    verdict = {r.run_id: judge(r, rules, st) for g in configs for r in g}
    healthy = [
        [bool(verdict[r.run_id]) and verdict[r.run_id].verdict == "healthy" for r in g] for g in configs
    ]
    single = statistics.mean(a == b for h in healthy for a, b in itertools.combinations(h, 2))
    rng = random.Random(0)
    print(f"configs with 3 recorded seeds: {len(configs)}")
    print(f"one seed: two seeds of a config agree on healthy in {100 * single:.1f} % of pairs")
    for quorum in (3, 2):
        agree = []
        for g in configs:
            verdicts = [verdict[r.run_id].verdict if verdict[r.run_id] else "completed" for r in g]
            for _ in range(2000):
                a = aggregate(rng.choices(verdicts, k=3), 3, quorum).verdict == "healthy"
                b = aggregate(rng.choices(verdicts, k=3), 3, quorum).verdict == "healthy"
                agree.append(a == b)
        print(f"3 seeds, quorum {quorum}: two bootstrap looks agree in {100 * statistics.mean(agree):.1f} %")
    one = sum(_used(g[0], verdict[g[0].run_id]) for g in configs)  # seed 0 alone
    for stop in (False, True):
        rp = RepeatsSpec(count=3, stop_siblings=stop)
        used = sum(c.steps_used for c in replay_repeats([r for g in configs for r in g], rules, st, rp))
        print(f"3 seeds, stop_siblings={stop}: {used} trial-steps ({used / one:.2f}x one seed's {one})")


if __name__ == "__main__":
    main()
