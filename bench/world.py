"""The recorded tiny world as ground truth for the decision benchmarks (bench/decisions.py).

A `World` is a recorded table (default the v2 table, `bench/data/tiny-world-v2.jsonl.gz`: 8
entropy_coeff × 4 kl_loss_coef + 10 off-grid configs × 5 seeds, 60 steps each, no stopping,
validation every 10 steps; the old `tiny-world.jsonl.gz`: the grid × 3 seeds, no validation),
optionally only some of its seeds (a tune or a report group), judged once by a spec's rules:
- `truth[key]`: the criteria verdict of the *full* recorded run (what a researcher who
  watched every step would call it), key = (entropy_coeff, kl_loss_coef, seed);
- `stop[key]`: what archer-sweep's live criteria do to that run: (verdict, steps used);
- `outcome[key]`: the independent outcome, the run's best validation score after training
  began (steps ≥ 10; step 1 validates the warm start, the same for every run); None in a
  table without validations;
- `snap(params, seed)`: the recorded run a trial plays, chosen by the `replay` backend's own
  nearest-config rule (`archer_sweep.results.replay.snap`), so benchmark and product agree.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from archer_sweep.criteria import evaluate
from archer_sweep.planning.backtest import Settings, objective_value, replay_criteria, settings_from_spec
from archer_sweep.results import replay
from archer_sweep.results.runs import Run
from archer_sweep.spec.load import load_spec
from archer_sweep.spec.space import to_optuna_space
from trainable.metrics import TINY_VAL_SCORE as VAL

ROOT = Path(__file__).resolve().parents[1]
TABLE_V1 = ROOT / "bench" / "data" / "tiny-world.jsonl.gz"
TABLE = ROOT / "bench" / "data" / "tiny-world-v2.jsonl.gz"
TUNE_SEEDS, REPORT_SEEDS = (0, 1, 2), (3, 4)
"""Every tunable of a decision policy is chosen on TUNE_SEEDS; tables are reported on REPORT_SEEDS."""
FIRST_TRAINED_VAL = 10
SPEC = ROOT / "sweeps" / "replay.yaml"
EC, KL, SEED = "algorithm.entropy_coeff", "algorithm.kl_loss_coef", "trainer.seed"
RUNAWAY = "stopped:entropy_high"
V1 = {EC: 0.01, KL: 0.01}
"""The seed write-up's v1: the config a user has before the round starts."""

Key = tuple[float, float, int]


@dataclass
class World:
    spec: Any
    table: replay.Table
    runs: dict[Key, Run]
    truth: dict[Key, str] = field(default_factory=dict)
    """Criteria verdict of each full run, thresholds only (no forecasts): what a researcher
    who watched every step would call it."""
    stop: dict[Key, tuple[str, int]] = field(default_factory=dict)
    """(verdict, steps used) under the spec's criteria as the live scheduler applies them."""
    objective: dict[Key, Optional[float]] = field(default_factory=dict)
    outcome: dict[Key, Optional[float]] = field(default_factory=dict)
    """Best validation score at steps ≥ FIRST_TRAINED_VAL of the full run (None: not recorded)."""
    variants: dict[str, dict[Key, tuple[str, int]]] = field(default_factory=dict)
    """`stops_of` results by variant name (each computed once per process)."""

    @property
    def settings(self):
        return settings_from_spec(self.spec)

    @property
    def rules(self):
        return self.spec.rules()

    @property
    def space(self):
        return to_optuna_space(self.spec)

    @property
    def configs(self) -> list[tuple[float, float]]:
        return sorted({(k[0], k[1]) for k in self.runs})

    @property
    def seeds(self) -> list[int]:
        return sorted({k[2] for k in self.runs})

    def snap(self, params: dict, seed: int) -> Key:
        run, _ = replay.snap(self.table, {EC: params[EC], KL: params[KL], SEED: seed})
        return _key(run)

    def healthy_share(self, config: tuple[float, float]) -> float:
        """Share of a grid config's recorded seeds that the table calls healthy."""
        verdicts = [self.truth[(*config, s)] for s in self.seeds]
        return sum(v == "healthy" for v in verdicts) / len(verdicts)

    def best_healthy(self) -> float:
        return max(self.objective[k] for k, v in self.truth.items() if v == "healthy")

    def best_outcome(self) -> Optional[float]:
        return max((v for v in self.outcome.values() if v is not None), default=None)

    def stops_under(self, rules=None, settings: Settings | None = None) -> dict[Key, tuple[str, int]]:
        """(verdict, steps used) of every run under other rules/settings (a criteria variant)."""
        keys = list(self.runs)
        outs = replay_criteria([self.runs[k] for k in keys], rules or self.rules, settings or self.settings)
        return {k: (o.verdict, o.steps_used) for k, o in zip(keys, outs)}

    def stops_of(self, variant: str) -> dict[Key, tuple[str, int]]:
        """(verdict, steps used) of every run under the spec's criteria (`spec`) or under them
        without a feature: `no-forecast` (thresholds only), `before` (thresholds only and a
        decided trial runs to its end: the behaviour before stop-when-decided and forecasts)."""
        if variant == "spec":
            return self.stop
        if variant not in self.variants:
            thresholds = [dataclasses.replace(r, forecast=None) for r in self.rules]
            settings = {
                "no-forecast": self.settings,
                "before": dataclasses.replace(self.settings, stop_when_decided=False),
            }[variant]
            self.variants[variant] = self.stops_under(thresholds, settings)
        return self.variants[variant]


def _key(run: Run) -> Key:
    p = run.params
    return (float(p[EC]), float(p[KL]), int(p[SEED]))


def outcome_of(run: Run) -> Optional[float]:
    vals = [float(r[VAL]) for r in run.steps if VAL in r and int(r["step"]) >= FIRST_TRAINED_VAL]
    return max(vals) if vals else None


def load_world(
    spec_path: Path = SPEC, table: Path = TABLE, overrides: tuple = (), seeds: Optional[Sequence[int]] = None
) -> World:
    """The world of `table` judged by the spec's rules; only the runs of `seeds` when given (the
    replay table stays whole, so a trial snaps as the product snaps it, at a seed of the group)."""
    spec = load_spec(spec_path, overrides)
    tab = replay.load_table((str(table),))
    runs = {_key(r): r for r in tab.runs if seeds is None or _key(r)[2] in seeds}
    world = World(spec, tab, runs)
    st = world.settings
    world.truth = full_run_verdicts(world, world.rules)
    for key, run in runs.items():
        world.objective[key] = objective_value(run, st.metric, st.reduce, st.mode)
        world.outcome[key] = outcome_of(run)
    world.stop = world.stops_under()
    return world


def full_run_verdicts(world: World, rules) -> dict[Key, str]:
    """Each run's verdict under `rules` applied to the full run, thresholds only (`World.truth`
    under the spec's rules; bench/proxy.py judges a proxy world by rescaled ones too)."""
    thresholds = [dataclasses.replace(r, forecast=None) for r in rules]
    metric = world.settings.metric
    return {
        key: evaluate(thresholds, run.steps, objective=metric, finished=True, stop_when_decided=False).verdict
        for key, run in world.runs.items()
    }


def median_iqr(xs: list[float]) -> tuple[float, float, float]:
    """(median, 25th, 75th percentile); inf entries count (as 'never')."""
    if not xs:
        return (math.nan, math.nan, math.nan)
    ys = sorted(xs)

    def q(p: float) -> float:
        i = p * (len(ys) - 1)
        lo, hi = math.floor(i), math.ceil(i)
        if ys[lo] == ys[hi]:
            return ys[lo]
        return ys[lo] + (ys[hi] - ys[lo]) * (i - lo)

    return q(0.5), q(0.25), q(0.75)


_CACHED: dict[tuple, World] = {}
_CHOSEN: dict = {}


def choose_world(table: Path = TABLE, seeds: Optional[Sequence[int]] = None) -> None:
    """The world `cached_world` gives (set before a fork pool starts, its workers inherit it)."""
    _CHOSEN.update(table=table, seeds=None if seeds is None else tuple(seeds))


def cached_world() -> World:
    """The chosen world (default: the v2 table, all seeds), loaded once per process and choice."""
    key = (_CHOSEN.get("table", TABLE), _CHOSEN.get("seeds"))
    if key not in _CACHED:
        _CACHED[key] = load_world(table=key[0], seeds=key[1])
    return _CACHED[key]
