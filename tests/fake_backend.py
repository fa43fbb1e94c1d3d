"""A fast test double of a GRPO backend, plugged in as `backend: tests.fake_backend:FakeTrainer`.

It simulates metric curves from its own seeded random walk (entropy drifts up when
`entropy_coeff` is large, down when small; score/length/connectives follow entropy)
so that engine tests run in seconds. It is a test double for the sweep engine, not
a model of GRPO: the product's backends compute metrics from real rollouts.
Fault knobs (`fake.fail_at_step`, `fake.nan_at_step`, `fake.hang_at_step`, `fake.sleep_s`) let tests
exercise error, NaN and timeout paths; `fake.omit_keys` / `fake.sparse_keys` leave keys out of
every report / of most reports.
"""

from __future__ import annotations

import math
import os
import pickle
import random
import time
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field

from trainable import metrics as M
from trainable.config import GRPOConfig


class FakeSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sleep_s: float = 0.0
    """Wall time of one step."""
    fail_at_step: Optional[int] = None
    """Raise RuntimeError in this step."""
    hang_at_step: Optional[int] = None
    """Sleep `hang_s` in this step (a hung trainer)."""
    hang_s: float = 3600.0
    """How long the hang lasts."""
    hang_in_init: bool = False
    """Sleep `hang_s` while the trainer is built (a model load that never finishes)."""
    nan_at_step: Optional[int] = None
    """Report NaN for every metric from this step on."""
    omit_keys: list[str] = Field(default_factory=list)
    """Keys left out of every report (a trainer that never reports them)."""
    sparse_keys: list[str] = Field(default_factory=list)
    """Keys reported only on steps that are multiples of `sparse_every` (e.g. eval metrics)."""
    sparse_every: int = 5
    noise: float = 0.05
    """Std of the entropy random walk."""
    drift_scale: float = 40.0
    """Entropy change per step per unit of (entropy_coeff - pivot)."""
    pivot: float = 0.006
    """entropy_coeff at which the entropy neither rises nor falls."""


class FakeConfig(GRPOConfig):
    fake: FakeSection = Field(default_factory=FakeSection)
    """Knobs of the simulation."""


class FakeTrainer:
    config_model = FakeConfig

    def __init__(self, config: FakeConfig):
        self.config = config
        self.step_count = 0
        self.entropy = 4.5
        self.rng = random.Random(config.trainer.seed)
        if config.fake.hang_in_init:
            time.sleep(config.fake.hang_s)

    def step(self) -> dict[str, float]:
        fake, alg = self.config.fake, self.config.algorithm
        self.step_count += 1
        t = self.step_count
        if fake.sleep_s:
            time.sleep(fake.sleep_s)
        if fake.hang_at_step == t:
            time.sleep(fake.hang_s)
        if fake.fail_at_step == t:
            raise RuntimeError(f"fake failure at step {t}")
        drift = fake.drift_scale * (alg.entropy_coeff - fake.pivot) - 2.0 * alg.kl_loss_coef
        self.entropy = max(0.1, self.entropy + drift + self.rng.gauss(0.0, fake.noise))
        e = self.entropy
        health = min(1.0, max(0.0, (7.5 - e) / 2.5)) * (1.0 - 0.05 * abs(e - 4.5))
        score = (0.1 + 0.5 * (1 - math.exp(-t / 6))) * health + self.rng.gauss(0, 0.01)
        out = {k: 0.0 for k in M.ALL_KEYS}
        out.update(
            {
                M.ENTROPY: e,
                M.SCORE_MEAN: score,
                M.SCORE_MAX: 1.0,
                M.SCORE_MIN: 0.0,
                M.RESP_LEN_POS: 70.0 - 15.0 * max(0.0, e - 5.0),
                M.RESP_LEN_MEAN: 60.0,
                M.RESP_LEN_NEG: 55.0,
                M.LOGICAL_CONNECTIVES: max(0.0, 0.12 - 0.03 * max(0.0, e - 5.0)),
                M.KL_LOSS: alg.kl_loss_coef * t,
                M.LR: self.config.actor.lr,
                M.STEP: float(t),
            }
        )
        if fake.nan_at_step is not None and t >= fake.nan_at_step:
            out = {k: (math.nan if k != M.STEP else v) for k, v in out.items()}
        gone = set(fake.omit_keys) | (set(fake.sparse_keys) if t % fake.sparse_every else set())
        return {k: v for k, v in out.items() if k not in gone}

    def done(self) -> bool:
        return self.step_count >= self.config.trainer.total_steps

    def save(self, directory: str) -> None:
        with open(os.path.join(directory, "fake.pkl"), "wb") as f:
            pickle.dump((self.step_count, self.entropy, self.rng.getstate()), f)

    def load(self, directory: str) -> None:
        with open(os.path.join(directory, "fake.pkl"), "rb") as f:
            self.step_count, self.entropy, state = pickle.load(f)
        self.rng.setstate(state)

    def close(self) -> None:
        pass
