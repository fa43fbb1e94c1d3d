"""A peer's (config, budget) requests played as prefixes of recorded runs (bench/peers/run.py).

A multi-fidelity tool asks for a config at a budget of training steps and later, maybe, for the
same config at a larger one. A replay of a recorded run is a prefix of it, so a promotion resumes
where the config's run left off and costs only the steps it adds; the trial-steps charged are
what a resumable trainer would spend. The k-th new config plays recorded seed `seeds[k]` (the
common random numbers of bench/decide_search) and keeps it when resumed.

Without the rules a run ends at its last recorded step and is healthy when the table calls the
full run healthy. With them (`rules=True`) it ends where archer-sweep's live criteria end it
(`world.stop`): a run they end early without a healthy verdict is a forced stop, which the tool
is told as a failed trial; a run they call healthy is healthy where they say so.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from decide_search import Trial
from world import Key, World

from archer_sweep.objective import reduce_objective


@dataclass
class Step:
    """What one request did: the bench's trial, the tool's view of it."""

    trial: Trial
    value: float | None
    """The objective of the prefix played so far, as the tool sees it (None: a forced stop)."""
    reports: list[dict]
    """The recorded reports the request played (for tools that watch every step)."""
    done: bool
    """The run has ended: its last step, or the rules ended it; it cannot be resumed further."""


@dataclass
class _Run:
    key: Key
    at: int = 0


class Resumer:
    def __init__(self, world: World, seeds: list[int], rules: bool):
        self.world, self.seeds, self.rules = world, seeds, rules
        self._runs: dict[Hashable, _Run] = {}

    @property
    def new_configs(self) -> int:
        return len(self._runs)

    def key_of(self, config_id: Hashable, params: dict) -> Key:
        """The recorded run the config plays (drawing its seed the first time it is seen)."""
        if config_id not in self._runs:
            self._runs[config_id] = _Run(self.world.snap(params, self.seeds[len(self._runs)]))
        return self._runs[config_id].key

    def end(self, key: Key) -> tuple[str, int]:
        """(verdict, last step) of the run when played to its end, with or without the rules."""
        if self.rules:
            return self.world.stop[key]
        return self.world.truth[key], self.world.runs[key].last_step

    def forced(self, key: Key) -> bool:
        """The rules end this run early without calling it healthy."""
        verdict, end = self.end(key)
        return self.rules and verdict != "healthy" and end < self.world.runs[key].last_step

    def play(self, config_id: Hashable, params: dict, budget: int, proposed: bool = False) -> Step:
        """Resume the config's run up to `budget` steps (or its end); `proposed`: counted as a
        model proposal when this is the config's first play."""
        first = config_id not in self._runs
        key = self.key_of(config_id, params)
        run = self._runs[config_id]
        verdict, end = self.end(key)
        to = min(budget, end)
        recorded = self.world.runs[key].steps
        reports = [r for r in recorded if run.at < int(r["step"]) <= to]
        steps, run.at = max(to - run.at, 0), max(run.at, to)
        done = run.at >= end
        healthy = done and verdict == "healthy"
        st = self.world.settings
        seen = [float(r[st.metric]) for r in recorded if int(r["step"]) <= run.at]
        value = None if done and self.forced(key) else reduce_objective(seen, st.reduce, st.mode)
        shown = verdict if done else f"budget {budget}"
        objective = self.world.objective[key] if healthy else None
        trial = Trial(dict(params), key, steps, shown, healthy, objective, proposed and first)
        return Step(trial, value, reports, done)
