"""`groups.jsonl` in the driver: which Ray trial runs which seed of which config.

With `search.repeats` the searcher proposes each config k times (one Optuna trial, k Ray
trials) and appends a line per trial here before Tune starts it; the criteria scheduler reads
it to find a stopped seed's siblings. Like `VerdictStore` it is shared by the two in the
driver and rebuilt from the file after a resume (a trial proposed after the last searcher
checkpoint may have a line but no Ray trial: readers key by trial id, so it is inert).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Optional

from archer_sweep.engine.verdicts import DIR_ENV
from archer_sweep.results.sweepdir import GROUPS_FILE, read_groups


class GroupStore:
    def __init__(self, sweep_dir: str | os.PathLike):
        self.path = Path(sweep_dir) / GROUPS_FILE
        self._lock = threading.Lock()
        self._rows: dict[str, dict] = read_groups(self.path.parent)

    def __getstate__(self) -> dict:
        return {"path": str(self.path)}

    def __setstate__(self, state: dict) -> None:
        moved = os.environ.get(DIR_ENV)
        self.path = Path(moved) / GROUPS_FILE if moved else Path(state["path"])
        self._lock = threading.Lock()
        self._rows = read_groups(self.path.parent)

    def add(self, trial_id: str, group: int, index: int, seed: int) -> None:
        row = {"trial_id": trial_id, "group": group, "seed_index": index, "seed": seed}
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())
            self._rows[trial_id] = row

    def get(self, trial_id: str) -> Optional[dict]:
        row = self._rows.get(trial_id)
        if row is None:  # written by another copy of the store (after a resume)
            self._rows = read_groups(self.path.parent) | self._rows
            row = self._rows.get(trial_id)
        return row

    def members(self, group: int) -> list[str]:
        """Trial ids of the group, in seed order."""
        rows = [r for r in self._rows.values() if r["group"] == group]
        return [r["trial_id"] for r in sorted(rows, key=lambda r: r["seed_index"])]
