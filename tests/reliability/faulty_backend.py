"""A fault-injecting test double, plugged in as `backend: tests.reliability.faulty_backend:FaultyTrainer`.

It is `tests.fake_backend.FakeTrainer` (seeded, deterministic metric curves) plus
faults chosen through its config, so that a sweep spec can inject them per trial:
raise at a step, report NaN or inf, hang inside a step, write a corrupt checkpoint,
or fail only on the first attempt (to see retries). A fault can be limited to trials
whose `algorithm.entropy_coeff` equals `faults.only_coeff`, so one sweep mixes faulty
and healthy trials. It is a test double of a backend, not a model of GRPO.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field

from tests.fake_backend import FakeConfig, FakeTrainer
from trainable import metrics as M


class Faults(BaseModel):
    model_config = ConfigDict(extra="forbid")
    only_coeff: Optional[float] = None
    """Apply the faults only to the trial with this algorithm.entropy_coeff (None = all)."""
    raise_at_step: Optional[int] = None
    """Raise RuntimeError("injected crash at step N") in this step."""
    raise_once_marker: Optional[str] = None
    """With raise_at_step: raise only while this file does not exist (then create it), so a
    retried attempt succeeds."""
    bad_value_at_step: Optional[int] = None
    """From this step on report `bad_value` for every metric but `step`."""
    bad_value: float = math.nan
    """The value reported from bad_value_at_step on (nan, inf, -inf)."""
    hang_at_step: Optional[int] = None
    """Sleep `hang_s` inside this step (a stuck collective, a dead data loader)."""
    hang_s: float = 3600.0
    """How long the hang lasts."""
    corrupt_checkpoint: bool = False
    """`save` writes garbage instead of a checkpoint (load then fails)."""
    pid_dir: Optional[str] = None
    """Write `<pid_dir>/<pid>` while a trainer lives (process-leak checks)."""


class FaultyConfig(FakeConfig):
    faults: list[Faults] = Field(default_factory=list)
    """Faults to inject; each applies to the trials its `only_coeff` selects."""
    attempt_log: Optional[str] = None
    """Append `<entropy_coeff> <pid>` to this file each time a trainer is built (retry counts)."""


class FaultyTrainer(FakeTrainer):
    config_model = FaultyConfig

    def __init__(self, config: FaultyConfig):
        super().__init__(config)
        coeff = config.algorithm.entropy_coeff
        chosen = [
            f
            for f in config.faults
            if f.only_coeff is None or math.isclose(coeff, f.only_coeff, rel_tol=1e-9)
        ]
        self.active = bool(chosen)
        self.faults = chosen[0] if chosen else Faults()
        if config.attempt_log:
            with open(config.attempt_log, "a", encoding="utf-8") as log:
                log.write(f"{coeff!r} {os.getpid()}\n")
        f = self.faults
        if f.pid_dir:
            Path(f.pid_dir).mkdir(parents=True, exist_ok=True)
            (Path(f.pid_dir) / str(os.getpid())).write_text(str(os.getpid()))

    def step(self) -> dict[str, float]:
        f = self.faults
        t = self.step_count + 1
        if self.active and f.hang_at_step == t:
            time.sleep(f.hang_s)
        if self.active and f.raise_at_step == t and self._should_raise():
            self.step_count = t
            raise RuntimeError(f"injected crash at step {t}")
        out = super().step()
        if self.active and f.bad_value_at_step is not None and t >= f.bad_value_at_step:
            out = {k: (v if k == M.STEP else f.bad_value) for k, v in out.items()}
        return out

    def _should_raise(self) -> bool:
        marker = self.faults.raise_once_marker
        if marker is None:
            return True
        if os.path.exists(marker):
            return False
        Path(marker).write_text("raised once\n")
        return True

    def save(self, directory: str) -> None:
        if self.active and self.faults.corrupt_checkpoint:
            Path(directory, "fake.pkl").write_bytes(b"\x00not a pickle\xff")
            return
        super().save(directory)
