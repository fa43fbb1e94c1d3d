"""Steps/s of `GRPOTrainable` under Ray Tune vs `build_trainer(...).step()` in a bare loop.

    .venv/bin/python bench/ray_overhead.py [--steps 12] [--set data.train_batch_size=4 ...]

Same config and seed in both. Under Tune, steps/s is measured on the driver from the
arrival of the first result to the last (so it includes Tune's per-iteration
bookkeeping and result transport); the bare loop is timed over the same steps.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import ray
from ray import tune
from step import parse_sets  # bench/ is on sys.path when run as a script

from trainable import GRPOTrainable, build_trainer


class _Arrivals(tune.Callback):
    def __init__(self):
        self.times: list[float] = []

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.times.append(time.perf_counter())


def bare(config: dict, steps: int) -> float:
    trainer = build_trainer(config)
    trainer.step()  # the first step is excluded in both (Tune's is measured from its arrival)
    start = time.perf_counter()
    for _ in range(steps - 1):
        trainer.step()
    return (steps - 1) / (time.perf_counter() - start)


def under_tune(config: dict, steps: int) -> float:
    arrivals = _Arrivals()
    with tempfile.TemporaryDirectory() as storage:
        tuner = tune.Tuner(
            GRPOTrainable,
            param_space=config,
            run_config=tune.RunConfig(storage_path=storage, callbacks=[arrivals], verbose=0),
            tune_config=tune.TuneConfig(num_samples=1),
        )
        tuner.fit()
    if len(arrivals.times) != steps:
        raise RuntimeError(f"expected {steps} results, got {len(arrivals.times)}")
    return (steps - 1) / (arrivals.times[-1] - arrivals.times[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args()
    config = parse_sets(args.sets)
    config.setdefault("trainer", {})["total_steps"] = args.steps
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        tuned = under_tune(config, args.steps)
    finally:
        ray.shutdown()
    loop = bare(config, args.steps)
    print(
        f"{args.steps} steps: bare loop {loop:.3f} steps/s, under Ray Tune {tuned:.3f} steps/s "
        f"-> Tune is {100 * (1 - tuned / loop):+.1f}% slower (ratio {tuned / loop:.3f})"
    )


if __name__ == "__main__":
    main()
