"""Stopping policies on simulated sweeps of the recorded world (bench/decisions.py).

Each simulated sweep draws 6–12 distinct recorded runs (config × seed) at random. Every
policy sees the same sweeps:
- `criteria` (archer-sweep): the spec's rules, `planning.backtest.replay_criteria`, the
  code path of the live scheduler; also without forecasts, and with thresholds only and
  decided trials run to their end (the behaviour before stop-when-decided and forecasts);
- `asha`, `median`: Ray Tune's AsyncHyperBand and MedianStoppingRule on the objective, as
  `planning.backtest` replays them (pinned against Ray's own classes in tests/test_backtest.py);
- `optuna-median`, `optuna-patient`, `optuna-wilcoxon`: Optuna's pruners, driven through a
  real in-memory study (trials one after another, each reporting its objective every step);
- `none`: every run to its end.
A run's ground truth is the criteria verdict of its full recorded run (`World.truth`).
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import optuna
from world import RUNAWAY, Key, World, cached_world

from archer_sweep.planning.backtest import POLICIES

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _optuna_policy(make_pruner: Callable[[], optuna.pruners.BasePruner], every: int = 1):
    """A pruner asked after every `every`-th report (Wilcoxon: every 5th, as its scipy test
    costs ≈ 15 ms a call; the others after every report, as Optuna's docs show)."""

    def replay(world: World, keys: Sequence[Key]) -> list[int | None]:
        st = world.settings
        direction = "maximize" if st.mode == "max" else "minimize"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = optuna.create_study(direction=direction, pruner=make_pruner())
        stops: list[int | None] = []
        for key in keys:
            trial, stop = study.ask(), None
            for rep in world.runs[key].steps:
                step = int(rep["step"])
                trial.report(float(rep[st.metric]), step)
                if step % every == 0 and trial.should_prune():
                    stop = step
                    break
            if stop is None:
                study.tell(trial, world.objective[key])
            else:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            stops.append(stop)
        return stops

    return replay


def _backtest_policy(name: str):
    def replay(world: World, keys: Sequence[Key]) -> list[int | None]:
        runs = [world.runs[k] for k in keys]
        return [o.stop_step for o in POLICIES[name](runs, world.rules, world.settings)]

    return replay


def _criteria(name: str):
    def replay(world: World, keys: Sequence[Key]) -> list[int | None]:
        stops = world.stops_of(name)
        return [stops[k][1] if stops[k][1] < world.runs[k].last_step else None for k in keys]

    return replay


STOPPERS: dict[str, Callable[[World, Sequence[Key]], list[int | None]]] = {
    "criteria (archer-sweep: + stop when decided + forecasts)": _criteria("spec"),
    "criteria, + stop when decided, no forecasts": _criteria("no-forecast"),
    "criteria, thresholds only (before)": _criteria("before"),
    "asha (Ray)": _backtest_policy("asha"),
    "median stopping (Ray)": _backtest_policy("median"),
    "MedianPruner (Optuna)": _optuna_policy(optuna.pruners.MedianPruner),
    "PatientPruner(Median, 3)": _optuna_policy(
        lambda: optuna.pruners.PatientPruner(optuna.pruners.MedianPruner(), patience=3)
    ),
    # Wilcoxon compares a trial's per-step values with the best trial's at the same steps
    # (steps as its "instances"): the closest it comes to applying to one learning curve.
    "WilcoxonPruner (Optuna)": _optuna_policy(
        lambda: optuna.pruners.WilcoxonPruner(p_threshold=0.1), every=5
    ),
    "none": lambda world, keys: [None] * len(keys),
}


@dataclass
class SweepScore:
    used: int
    total: int
    regret: float | None
    """Best healthy objective of the sweep run to the end − best healthy among runs not stopped."""
    false_stops: int
    healthy: int
    runaways_through: int
    runaways: int


def draw_sweeps(world: World, n: int, seed: int = 0, sizes: tuple[int, int] = (6, 12)) -> list[list[Key]]:
    rng = random.Random(seed)
    keys = sorted(world.runs)
    return [rng.sample(keys, rng.randint(*sizes)) for _ in range(n)]


def score(world: World, keys: Sequence[Key], stops: Sequence[int | None]) -> SweepScore:
    st = world.settings
    sign = 1.0 if st.mode == "max" else -1.0
    healthy = [k for k in keys if world.truth[k] == "healthy"]
    kept = [k for k, s in zip(keys, stops) if s is None and world.truth[k] == "healthy"]
    ref = max((sign * world.objective[k] for k in healthy), default=None)
    found = max((sign * world.objective[k] for k in kept), default=None)
    regret = None if ref is None else (math.inf if found is None else ref - found)
    return SweepScore(
        used=sum(world.runs[k].last_step if s is None else s for k, s in zip(keys, stops)),
        total=sum(world.runs[k].last_step for k in keys),
        regret=regret,
        false_stops=sum(1 for k, s in zip(keys, stops) if s is not None and world.truth[k] == "healthy"),
        healthy=len(healthy),
        runaways_through=sum(1 for k, s in zip(keys, stops) if s is None and world.truth[k] == RUNAWAY),
        runaways=sum(1 for k in keys if world.truth[k] == RUNAWAY),
    )


def stop_job(args: tuple) -> tuple[str, int, SweepScore]:
    """One (policy, sweep) for a process pool (the world is loaded once per process)."""
    name, i, keys = args
    world = cached_world()
    return name, i, score(world, keys, STOPPERS[name](world, keys))


def stopping_table(scores_by_policy: dict[str, list[SweepScore]]) -> list[list]:
    """One row per policy: steps saved, zero-regret share, median regret, false stops, runaways."""
    rows = []
    for name, scores in scores_by_policy.items():
        used, total = sum(s.used for s in scores), sum(s.total for s in scores)
        regrets = [s.regret for s in scores if s.regret is not None]
        saved = sorted(1 - s.used / s.total for s in scores)
        rows.append(
            [
                name,
                f"{100 * (1 - used / total):.1f}%",
                f"{100 * saved[len(saved) // 2]:.1f}% [{100 * saved[len(saved) // 4]:.0f}–"
                f"{100 * saved[3 * len(saved) // 4]:.0f}]",
                f"{100 * sum(r == 0 for r in regrets) / len(regrets):.0f}%",
                f"{sum(1 for r in regrets if math.isinf(r))}",
                f"{sum(s.false_stops for s in scores)} / {sum(s.healthy for s in scores)}",
                f"{sum(s.runaways_through for s in scores)} / {sum(s.runaways for s in scores)}",
            ]
        )
    return rows


STOP_HEADERS = [
    "policy",
    "trial-steps saved",
    "saved per sweep: median [IQR]",
    "sweeps at zero regret",
    "sweeps that lost every healthy run",
    "false stops / healthy runs",
    "runaways run to the end / runaways",
]
