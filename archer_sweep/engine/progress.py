"""How far a sweep is: trial-steps done of its budget, the rate, and the time left.

The budget is `trials × steps`; a trial that ends early (stopped, decided, crashed) takes
its unrun steps out of it, so the ETA shrinks when the rules stop a runaway. The rate is
trial-steps per second of wall time since the first report (all running trials together).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Optional

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text


def duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return (
        f"{seconds // 60}:{seconds % 60:02d}"
        if seconds < 3600
        else f"{seconds // 3600}h{seconds // 60 % 60:02d}"
    )


class SweepProgress:
    def __init__(self, trials: int, steps: int, clock: Callable[[], float] = time.monotonic):
        self.trials, self.steps, self.clock = trials, steps, clock
        self._step: dict[str, int] = {}
        self._ended: set[str] = set()
        self._first: Optional[float] = None
        self._first_done = 0

    def report(self, trial_id: str, step: int) -> None:
        if self._first is None:
            self._first, self._first_done = self.clock(), self.done + 1
        self._step[trial_id] = max(self._step.get(trial_id, 0), int(step))

    def end(self, trial_id: str) -> None:
        self._step.setdefault(trial_id, 0)
        self._ended.add(trial_id)

    @property
    def done(self) -> int:
        return sum(self._step.values())

    @property
    def total(self) -> int:
        unrun = sum(self.steps - s for t, s in self._step.items() if t in self._ended)
        return self.trials * self.steps - unrun

    def rate(self) -> Optional[float]:
        """Trial-steps per second since the first report (None until there is a span)."""
        if self._first is None:
            return None
        span = self.clock() - self._first
        steps = self.done - self._first_done
        return steps / span if span > 0 and steps > 0 else None

    def eta_s(self) -> Optional[float]:
        rate = self.rate()
        return None if rate is None else (self.total - self.done) / rate

    def text(self) -> str:
        rate, eta = self.rate(), self.eta_s()
        speed = f"{rate:.2f} steps/s" if rate else "-- steps/s"
        left = f"ETA {duration(eta)}" if eta is not None else "ETA --:--"
        return f"{self.done}/{self.total} trial-steps  {speed}  {left}"

    def renderable(self) -> RenderableType:
        grid = Table.grid(padding=(0, 1))
        grid.add_row(
            Text("sweep"),
            ProgressBar(total=max(1, self.total), completed=self.done, width=30),
            Text(self.text()),
        )
        return grid

    def below(self, table: RenderableType) -> RenderableType:
        return Group(table, self.renderable())
