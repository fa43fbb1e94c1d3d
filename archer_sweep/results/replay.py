"""`backend: replay`: recorded runs played back through the real engine.

A tabular benchmark in the manner of HPOBench/LCBench: a trial's params pick the nearest
recorded config (each searched key scaled to [0, 1] over the recorded values, log scale
where every value is positive; Euclidean distance), `trainer.seed` picks one of that
config's recorded seeds (round-robin when fewer were recorded), and each `step()` returns
the run's next recorded report. Nothing is hidden: every report also carries the distance
(`replay/distance`) and the snapped params (`replay/<dotted key>`).

Ray Tune, Optuna and the criteria scheduler run unchanged on top, so a replay sweep gives
the verdicts `archer-sweep backtest` gives for the same recorded runs, in seconds.
Registered through the `trainable.backends` entry point (see `trainable.backends`).
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from archer_sweep.results.durable import atomic_write
from archer_sweep.results.history import load_histories
from archer_sweep.results.runs import Run, flatten
from archer_sweep.spec.space import SEED_KEY
from archer_sweep.values import to_float
from trainable import metrics as M

BACKEND = "replay"
STATE_FILE = "replay.json"


class ReplayTrainerSection(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)
    seed: int = 0
    """Which recorded seed of the snapped config to play (its position when the recorded
    seeds do not include this value, modulo their count)."""
    total_steps: Optional[int] = Field(None, ge=1)
    """Last step to play; None = the whole recorded run."""


class Config(BaseModel):
    """Config of the replay backend; the other sections hold the trial's params, which
    choose the recorded config to play."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)
    backend: str = BACKEND
    """Backend name (`replay`)."""
    history: list[str] = Field(min_length=1)
    """Recorded runs: anything `archer-sweep backtest` reads (history JSONL or `.jsonl.gz`,
    results dirs, verl JSONL/console logs, W&B offline runs), relative to the working dir."""
    delay_s: float = Field(0.0, ge=0)
    """Seconds each `step()` waits before returning its report (to mimic a slow trainer)."""
    algorithm: dict[str, Any] = Field(default_factory=dict)
    """Params matched against the recorded runs' `algorithm.*` params."""
    actor: dict[str, Any] = Field(default_factory=dict)
    """Params matched against the recorded runs' `actor.*` params."""
    rollout: dict[str, Any] = Field(default_factory=dict)
    """Params matched against the recorded runs' `rollout.*` params."""
    data: dict[str, Any] = Field(default_factory=dict)
    """Params matched against the recorded runs' `data.*` params."""
    model: dict[str, Any] = Field(default_factory=dict)
    """Params matched against the recorded runs' `model.*` params."""
    trainer: ReplayTrainerSection = Field(default_factory=ReplayTrainerSection)
    """Seed and step budget of the playback."""

    @field_validator("history")
    @classmethod
    def _absolute(cls, paths: list[str]) -> list[str]:
        # Ray workers may start elsewhere: resolve against the driver's working dir.
        base = Path(os.environ.get("TUNE_ORIG_WORKING_DIR") or os.getcwd())
        return [str((base / Path(p).expanduser()).resolve()) for p in paths]

    def params(self) -> dict[str, Any]:
        """The trial's own params as dotted keys (backend settings left out)."""
        data = self.model_dump(exclude={"backend", "history", "delay_s", "trainer"})
        return flatten(data) | {SEED_KEY: self.trainer.seed}

    def reported_metrics(self) -> set[str]:
        """Keys the recordings hold, plus the replay keys (rules on other keys are typos)."""
        table = load_table(tuple(self.history))
        keys = {k for r in table.runs for s in r.steps for k in s}
        return keys | {M.REPLAY_DISTANCE} | {M.REPLAY_PREFIX + k for k in table.keys + (SEED_KEY,)}


@dataclass(frozen=True)
class Table:
    runs: list[Run]
    keys: tuple[str, ...]
    """Param keys that tell recorded configs apart (the seed excluded)."""
    configs: dict[tuple, list[Run]]
    """Recorded config (values in `keys` order) -> its runs, ordered by seed."""

    @functools.cached_property
    def scales(self) -> dict[str, Optional[tuple[bool, float, float]]]:
        """Per key the (log?, low, span) of its recorded values: one pass, not one per snap."""
        return {k: _scale([c[i] for c in self.configs]) for i, k in enumerate(self.keys)}


def _config_of(run: Run, keys: Sequence[str]) -> tuple:
    return tuple(run.params.get(k) for k in keys)


@functools.lru_cache(maxsize=4)
def load_table(paths: tuple[str, ...]) -> Table:
    """The recorded runs of `paths` grouped by config (cached: trials of a sweep share it)."""
    runs = [r for r in load_histories(paths) if r.steps]
    if not runs:
        raise ValueError(f"replay: no recorded reports in {', '.join(paths)}")
    keys = tuple(sorted({k for r in runs for k in r.params} - {SEED_KEY}))
    configs: dict[tuple, list[Run]] = {}
    for r in runs:
        configs.setdefault(_config_of(r, keys), []).append(r)
    for group in configs.values():
        group.sort(key=lambda r: (_seed_of(r) is None, _seed_of(r) or 0, r.run_id))
    return Table(runs, keys, configs)


def _seed_of(run: Run) -> Optional[int]:
    s = run.params.get(SEED_KEY)
    return int(s) if isinstance(s, (int, float)) and not isinstance(s, bool) else None


def _scale(values: Sequence[Any]) -> Optional[tuple[bool, float, float]]:
    """(log?, low, span) of a numeric key over the recorded values; None = not numeric."""
    nums = [to_float(v) for v in values]
    if any(v is None for v in nums):
        return None
    log = all(v > 0 for v in nums)
    xs = [math.log(v) if log else v for v in nums]
    return log, min(xs), (max(xs) - min(xs)) or 1.0


def distance(own: Mapping[str, Any], config: tuple, keys: Sequence[str], scales: Mapping[str, Any]) -> float:
    """Normalised distance of the trial's params to one recorded config (keys the trial
    does not set are ignored; a differing non-numeric value counts 1)."""
    total = 0.0
    for k, rec in zip(keys, config):
        if k not in own:
            continue
        sc, x = scales[k], to_float(own[k])
        if sc is None or x is None or rec is None:
            total += float(own[k] != rec)
            continue
        log, low, span = sc
        if log and x <= 0:
            total += 1.0
            continue
        tx, tr = (math.log(x), math.log(rec)) if log else (x, rec)
        total += ((tx - low) / span - (tr - low) / span) ** 2
    return math.sqrt(total)


def snap(table: Table, own: Mapping[str, Any]) -> tuple[Run, float]:
    """The recorded run to play for params `own` (with `trainer.seed`), and its distance."""
    scales = table.scales
    best = min(table.configs, key=lambda c: (distance(own, c, table.keys, scales), repr(c)))
    group = table.configs[best]
    seed = int(own.get(SEED_KEY, 0))
    seeds = [_seed_of(r) for r in group]
    run = group[seeds.index(seed)] if seed in seeds else group[seed % len(group)]
    return run, distance(own, best, table.keys, scales)


class Trainer:
    """Plays one recorded run, report by report (the Trainer API of `trainable.trainer`)."""

    config_model = Config

    def __init__(self, config: Config):
        self.config = config
        self.run, self.distance = snap(load_table(tuple(config.history)), config.params())
        self.step_count = 0
        limit = config.trainer.total_steps
        self._steps = [s for s in self.run.steps if limit is None or s[M.STEP] <= limit]
        snapped = dict(self.run.params) | {SEED_KEY: _seed_of(self.run)}
        self._extra = {M.REPLAY_DISTANCE: self.distance} | {
            M.REPLAY_PREFIX + k: float(v) for k, v in snapped.items() if to_float(v) is not None
        }

    def step(self) -> dict[str, float]:
        if self.done():
            raise RuntimeError(f"replay: run {self.run.run_id} has no report after step {self.step_count}")
        if self.config.delay_s:
            time.sleep(self.config.delay_s)
        report = dict(self._steps[self.step_count]) | self._extra
        self.step_count += 1
        return report

    def done(self) -> bool:
        return self.step_count >= len(self._steps)

    def save(self, directory: str) -> None:
        state = {"run": self.run.run_id, "reports_played": self.step_count}
        atomic_write(Path(directory, STATE_FILE), json.dumps(state))

    def load(self, directory: str) -> None:
        state = json.loads(Path(directory, STATE_FILE).read_text())
        if state["run"] != self.run.run_id:
            raise RuntimeError(
                f"replay: checkpoint of run {state['run']}, but this trial plays {self.run.run_id}"
            )
        self.step_count = int(state["reports_played"])

    def close(self) -> None:
        return None
