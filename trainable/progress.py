"""Progress of a long loop in the driver (the warm start): steps done, rate and ETA.

On a terminal (stderr a tty) a rich progress bar redraws in place; elsewhere (logs,
pipes, CI) a log line every `every` steps and at the end, each with the time so far and
an estimate of the time left, so a pipe's output stays a few stable lines.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Optional

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def eta_text(seconds: float) -> str:
    """'45 s' / '3.2 min': the time left in words a log line can carry."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


class StepProgress:
    """`with StepProgress(...) as p: p.advance(done, loss=...)`; `done` counts finished steps."""

    def __init__(
        self,
        what: str,
        total: int,
        log: logging.Logger,
        every: int = 100,
        console: Optional[Console] = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.what, self.total, self.log, self.every = what, total, log, max(1, every)
        self.console = console or Console(stderr=True)
        self.clock = clock
        self._bar: Optional[Progress] = None
        self._start = self.clock()
        self._first: Optional[float] = None  # when step 1 ended: it also pays for lazy set-up

    def __enter__(self) -> StepProgress:
        self._start = self.clock()
        if self.console.is_terminal:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[extra]}"),
                console=self.console,
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.what, total=self.total, rate="", extra="")
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def advance(self, done: int, **fields: float) -> None:
        now = self.clock()
        elapsed = now - self._start
        if self._first is None:
            self._first = now
        rate = (done - 1) / (now - self._first) if done > 1 and now > self._first else 0.0
        extra = " ".join(f"{k} {v:.3f}" for k, v in fields.items())
        if self._bar is not None:
            shown = f"{rate:.2f} steps/s" if rate else ""
            self._bar.update(self._task, completed=done, rate=shown, extra=extra)
            return
        if done == 1 or done % self.every == 1 or done == self.total:
            left = f", {eta_text((self.total - done) / rate)} left" if rate and done < self.total else ""
            self.log.info(
                "%s step %d/%d %s(%.0f s%s)",
                self.what,
                done,
                self.total,
                f"{extra} " if extra else "",
                elapsed,
                left,
            )
