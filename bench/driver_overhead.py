"""Driver time per reported result in archer-sweep's scheduler + searcher callbacks, and
the driver's memory growth, under a synthetic load (issue 7, item 7).

    .venv/bin/python bench/driver_overhead.py [--trials 500] [--concurrent 8] [--reports 200]

Method: the engine's own `CriteriaScheduler` (the seed-v2 rule set) and
`CriteriaOptunaSearch` (TPE, a real SQLite `study.db`, a real `verdicts.jsonl`) are
driven directly, the way Ray Tune's controller calls them: `suggest` for each new
trial, then per result `scheduler.on_trial_result` + `searcher.on_trial_result`, and at
the end `on_trial_complete` on both. Trials are stand-ins (id, config, status) and the
results come from the fast fake backend (tests/fake_backend.py), generated outside the
timed sections. Ray Tune's own per-result bookkeeping is not included (see
bench/ray_overhead.py for that). Prints the median / p95 time per result, the per-trial
start/finish cost, and the driver's RSS before and after. `--tune N` also times the same
two callbacks inside a real Ray Tune sweep of N fake trials.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("WANDB_MODE", "disabled")

from archer_sweep.engine import runner  # noqa: E402
from archer_sweep.engine.verdicts import VerdictStore  # noqa: E402
from archer_sweep.spec.load import load_spec  # noqa: E402
from tests.fake_backend import FakeConfig, FakeTrainer  # noqa: E402


class StandInTrial:
    """What the scheduler reads of a Ray Tune `Trial`."""

    def __init__(self, trial_id: str, config: dict):
        self.trial_id, self.config, self.status = trial_id, config, "RUNNING"
        self.last_result: dict = {}
        self.local_path = None

    def should_recover(self) -> bool:
        return False


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def build(tmp: Path, trials: int, concurrent: int, steps: int):
    spec = load_spec(
        ROOT / "sweeps" / "seed-v2.yaml",
        [
            f"search.num_samples={trials}",
            f"search.max_concurrent={concurrent}",
            f"storage.path={tmp}",
            "tracking.wandb.mode=disabled",
            f"ray.num_cpus={concurrent}",
            f"trainable.config.trainer.total_steps={steps}",
            "search.space.algorithm.entropy_coeff={type: loguniform, low: 1.0e-4, high: 5.0e-2}",
            "search.space.algorithm.kl_loss_coef={type: loguniform, low: 1.0e-3, high: 1.0e-1}",
        ],
    )
    sweep_dir = runner.sweep_dir_of(spec)
    sweep_dir.mkdir(parents=True)
    parts = runner.build_parts(spec, sweep_dir, live=False)
    return spec, parts


def results_of(config: dict, steps: int) -> list[dict]:
    """The fake backend's reports for one trial (untimed), with Tune's bookkeeping keys."""
    cfg = dict(config, backend="tests.fake_backend:FakeTrainer", fake={"noise": 0.05, "drift_scale": 0.0})
    cfg.setdefault("trainer", {})["total_steps"] = steps
    trainer = FakeTrainer(FakeConfig.model_validate(cfg))
    out = []
    for i in range(1, steps + 1):
        r = trainer.step()
        r.update(training_iteration=i, time_this_iter_s=0.01, done=i == steps)
        out.append(r)
    return out


def run(trials: int, concurrent: int, reports: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        spec, parts = build(Path(tmp), trials, concurrent, reports)
        sched, search = parts.scheduler, parts.searcher
        per_result: list[float] = []
        per_trial: list[float] = []
        gc.collect()
        rss0 = rss_mb()
        started = 0
        live: list[tuple[StandInTrial, list[dict]]] = []
        t_all = time.perf_counter()
        while started < trials or live:
            while started < trials and len(live) < concurrent:
                tid = f"t{started:05d}"
                t0 = time.perf_counter()
                config = search.suggest(tid)
                per_trial.append(time.perf_counter() - t0)
                trial = StandInTrial(tid, config)
                live.append((trial, results_of(config, reports)))
                started += 1
            # round-robin: one result from each live trial, as concurrent trials report
            for entry in list(live):
                trial, pending = entry
                result = pending.pop(0)
                t0 = time.perf_counter()
                if result["done"]:
                    sched.on_trial_complete(None, trial, result)
                    search.on_trial_complete(trial.trial_id, result)
                    decision = "STOP"
                else:
                    decision = sched.on_trial_result(None, trial, result)
                    search.on_trial_result(trial.trial_id, result)
                    if decision == "STOP":
                        search.on_trial_complete(trial.trial_id, result)
                per_result.append(time.perf_counter() - t0)
                trial.last_result = result
                if decision == "STOP":
                    live.remove(entry)
        wall = time.perf_counter() - t_all
        gc.collect()
        rss1 = rss_mb()
        rows = VerdictStore(runner.sweep_dir_of(spec)).rows()
    per_result.sort()
    return {
        "results": len(per_result),
        "trials": trials,
        "verdicts": len(rows),
        "median_ms": statistics.median(per_result) * 1e3,
        "p95_ms": per_result[int(0.95 * len(per_result))] * 1e3,
        "max_ms": per_result[-1] * 1e3,
        "suggest_median_ms": statistics.median(per_trial) * 1e3,
        "amortized_ms": (sum(per_result) + sum(per_trial)) / len(per_result) * 1e3,
        "wall_s": wall,
        "rss0_mb": rss0,
        "rss1_mb": rss1,
    }


def run_tune(trials: int, concurrent: int, reports: int) -> dict:
    """A real (smaller) sweep under Ray Tune on the fake backend; the same two callbacks
    are timed in place by wrapping their methods in this (driver) process."""
    from archer_sweep.engine import sweep as cmd_run
    from archer_sweep.engine.scheduler import CriteriaScheduler
    from archer_sweep.engine.searcher import CriteriaOptunaSearch

    spent: dict[str, list[float]] = {"scheduler": [], "searcher": []}

    def timed(cls, name, key):
        inner = getattr(cls, name)

        def wrapper(self, *args, **kwargs):
            t0 = time.perf_counter()
            try:
                return inner(self, *args, **kwargs)
            finally:
                spent[key].append(time.perf_counter() - t0)

        setattr(cls, name, wrapper)

    timed(CriteriaScheduler, "on_trial_result", "scheduler")
    timed(CriteriaOptunaSearch, "on_trial_result", "searcher")
    with tempfile.TemporaryDirectory() as tmp:
        spec = load_spec(
            ROOT / "sweeps" / "seed-v2.yaml",
            [
                f"search.num_samples={trials}",
                f"search.max_concurrent={concurrent}",
                f"storage.path={tmp}",
                "tracking.wandb.mode=disabled",
                f"ray.num_cpus={concurrent}",
                "trainable.backend=tests.fake_backend:FakeTrainer",
                f"trainable.config.trainer.total_steps={reports}",
                "checkpoint.frequency=0",
                "search.space.algorithm.entropy_coeff={type: loguniform, low: 1.0e-3, high: 8.0e-3}",
            ],
        )
        t0 = time.perf_counter()
        cmd_run.run(spec, live=False)
        wall = time.perf_counter() - t0
    sched, search = sorted(spent["scheduler"]), sorted(spent["searcher"])
    return {
        "results": len(sched),
        "median_ms": (statistics.median(sched) + statistics.median(search)) * 1e3,
        "p95_ms": (sched[int(0.95 * len(sched))] + search[int(0.95 * len(search))]) * 1e3,
        "wall_s": wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=500)
    ap.add_argument("--concurrent", type=int, default=8)
    ap.add_argument("--reports", type=int, default=200)
    ap.add_argument(
        "--tune",
        type=int,
        default=0,
        metavar="TRIALS",
        help="also run a real Ray Tune sweep of TRIALS fake trials (2 at a time)",
    )
    a = ap.parse_args()
    import logging

    logging.disable(logging.INFO)  # one log line per verdict is not what is measured
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    r = run(a.trials, a.concurrent, a.reports)
    print(
        f"trials={r['trials']} concurrent={a.concurrent} reports/trial<={a.reports} "
        f"results={r['results']} verdicts={r['verdicts']}"
    )
    print(
        f"driver time per result (scheduler + searcher): median {r['median_ms']:.3f} ms, "
        f"p95 {r['p95_ms']:.3f} ms, max {r['max_ms']:.1f} ms  (target: median <= 1 ms)"
    )
    print(
        f"per trial start (searcher.suggest): median {r['suggest_median_ms']:.1f} ms; "
        f"all driver callbacks incl. suggest and completion: {r['amortized_ms']:.3f} ms "
        f"per result on average"
    )
    print(
        f"driver RSS: {r['rss0_mb']:.0f} MB -> {r['rss1_mb']:.0f} MB "
        f"(+{r['rss1_mb'] - r['rss0_mb']:.0f} MB over {r['results']} results); "
        f"wall {r['wall_s']:.1f} s"
    )
    if a.tune:
        t = run_tune(a.tune, 2, a.reports)
        print(
            f"real Ray Tune sweep ({a.tune} trials, 2 concurrent, fake backend): "
            f"scheduler + searcher per result: sum of medians {t['median_ms']:.3f} ms, "
            f"sum of p95s {t['p95_ms']:.3f} ms over {t['results']} results; wall {t['wall_s']:.0f} s"
        )


if __name__ == "__main__":
    main()
