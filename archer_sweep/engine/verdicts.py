"""`verdicts.jsonl`: one line per trial, append-only, fsync'd; exactly one verdict per trial.
A line torn by a kill is cut off before the next append (`durable.mend_tail`), so it never
swallows the line after it.

A `VerdictStore` lives in the driver and is shared by the criteria scheduler (which
decides verdicts) and the Optuna searcher (which turns them into trial states). It is
rebuilt from the file on resume, so a verdict written before an interruption is
never rewritten and never duplicated.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from archer_sweep.criteria import Verdict
from archer_sweep.results.durable import mend_tail
from archer_sweep.results.sweepdir import VERDICTS_FILE, read_verdicts
from archer_sweep.values import jsonable

log = logging.getLogger(__name__)

#: Set by `archer-sweep resume` so that a store unpickled from a moved sweep dir finds its file.
DIR_ENV = "ARCHER_SWEEP_DIR"


class JsonlStore:
    """An append-only, fsync'd JSONL file of the sweep dir with its in-memory view (one row
    per trial id), shared by the scheduler and the searcher in the driver. Pickled as its
    path; unpickled after a resume from a moved sweep dir it follows `DIR_ENV`."""

    FILE: str
    """The file's name in the sweep dir."""

    def __init__(self, sweep_dir: str | os.PathLike):
        self.path = Path(sweep_dir) / self.FILE
        self._lock = threading.Lock()
        self.reload()

    def __getstate__(self) -> dict:
        return {"path": str(self.path)}

    def __setstate__(self, state: dict) -> None:
        moved = os.environ.get(DIR_ENV)
        self.path = Path(moved) / self.FILE if moved else Path(state["path"])
        self._lock = threading.Lock()
        self.reload()

    def reload(self) -> None:
        """Read the file with its one reader (torn lines skipped, first line wins)."""
        self._rows: dict[str, dict] = self._read(self.path.parent)

    def _read(self, sweep_dir: Path) -> dict[str, dict]:
        raise NotImplementedError

    def _append(self, trial_id: str, row: dict) -> None:
        """Write `row` durably, then show it; the caller holds the lock."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as f:
            mend_tail(f)
            f.write((json.dumps(row, sort_keys=False) + "\n").encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        self._rows[trial_id] = row


class VerdictStore(JsonlStore):
    """In-memory view of `verdicts.jsonl` plus the append that keeps it in step."""

    FILE = VERDICTS_FILE

    def _read(self, sweep_dir: Path) -> dict[str, dict]:
        return read_verdicts(sweep_dir)

    def get(self, trial_id: str) -> Optional[dict]:
        return self._rows.get(trial_id)

    def rows(self) -> list[dict]:
        return list(self._rows.values())

    def record(
        self, trial_id: str, params: Mapping[str, Any], verdict: Verdict, extra: Optional[Mapping] = None
    ) -> dict:
        """Append the verdict of `trial_id` unless it already has one; return the stored row.
        `extra`: more keys of the row (with repeats: `group` and `seed`; a verdict judged
        on a report: that `report`)."""
        with self._lock:
            if trial_id in self._rows:
                return self._rows[trial_id]
            row = {"trial_id": trial_id, "params": jsonable(dict(params))}
            row |= verdict.as_dict()
            row |= dict(extra or {})
            row["time"] = time.time()
            self._append(trial_id, row)
            log.debug("trial %s: %s", trial_id, describe(row))
            return row


def describe(row: Mapping[str, Any]) -> str:
    """One human line: `stopped:entropy_high at step 12: actor/entropy=7.21`."""
    text = str(row.get("verdict"))
    if row.get("step") is not None:
        text += f" at step {row['step']}"
    if row.get("metric"):
        value = row.get("value")
        shown = f"{value:.4g}" if isinstance(value, (int, float)) else str(value)
        text += f": {row['metric']}={shown}"
    if row.get("reason"):
        text += f" ({row['reason']})"
    return text
