"""`groups.jsonl` in the driver: which Ray trial runs which seed of which config.

With `search.repeats` the searcher proposes each config k times (one Optuna trial, k Ray
trials) and appends a line per trial here before Tune starts it; the criteria scheduler reads
it to find a stopped seed's siblings. Like `VerdictStore` it is shared by the two in the
driver and rebuilt from the file after a resume (a trial proposed after the last searcher
checkpoint may have a line but no Ray trial: readers key by trial id, so it is inert).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from archer_sweep.engine.verdicts import JsonlStore
from archer_sweep.results.sweepdir import GROUPS_FILE, read_groups


class GroupStore(JsonlStore):
    FILE = GROUPS_FILE

    def _read(self, sweep_dir: Path) -> dict[str, dict]:
        return read_groups(sweep_dir)

    def add(self, trial_id: str, group: int, index: int, seed: int) -> None:
        row = {"trial_id": trial_id, "group": group, "seed_index": index, "seed": seed}
        with self._lock:
            self._append(trial_id, row)

    def get(self, trial_id: str) -> Optional[dict]:
        row = self._rows.get(trial_id)
        if row is None:  # written by another copy of the store (after a resume)
            self._rows = self._read(self.path.parent) | self._rows
            row = self._rows.get(trial_id)
        return row

    def members(self, group: int) -> list[str]:
        """Trial ids of the group, in seed order."""
        rows = [r for r in self._rows.values() if r["group"] == group]
        return [r["trial_id"] for r in sorted(rows, key=lambda r: r["seed_index"])]
