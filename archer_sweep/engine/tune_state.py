"""Ray Tune's saved state of a sweep: which files make one save, and whether that save is usable.

Tune saves an experiment in three files per driver session (`<session>` is the session's start
time): `experiment_state-<session>.json` (the trials), then `searcher-state-<session>.pkl` (the
Optuna searcher) and `search_gen_state-<session>.json` (how many trials were created, which ones the
`ConcurrencyLimiter` counts as live). The first is written in place, not atomically, and a
resume reads the newest of each kind separately. A driver killed inside a save therefore leaves a
torn experiment state, or a new one beside the previous save's searcher files: resumed from such
a mix, the limiter waits for trials that already ended and the sweep never finishes. Only the three
files of one session, each readable and agreeing on the trials, are a usable state.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Optional

EXPERIMENT = "experiment_state-{}.json"
SEARCHER = "searcher-state-{}.pkl"
SEARCH_GEN = "search_gen_state-{}.json"
KINDS = (EXPERIMENT, SEARCHER, SEARCH_GEN)
LIMITER_KEY = "name:ConcurrencyLimiter"
FINISHED = ("TERMINATED", "ERROR")


@dataclass
class SavedState:
    """One session's save in a directory; `problem` is None when it is usable."""

    directory: Path
    session: str
    torn: Optional[str] = None  # a file missing or unreadable
    mismatch: Optional[str] = None  # readable, but the files are from two saves
    trials: dict[str, str] = field(default_factory=dict)  # trial id -> status

    @property
    def problem(self) -> Optional[str]:
        return self.torn or self.mismatch

    def paths(self) -> list[Path]:
        return [self.directory / kind.format(self.session) for kind in KINDS]


def sessions(directory: Path) -> list[str]:
    """Sessions with any state file in `directory`, oldest first (Tune's order: by name)."""
    found = set()
    for kind in KINDS:
        prefix, suffix = kind.split("{}")
        for path in Path(directory).glob(kind.format("*")):
            found.add(path.name[len(prefix) : len(path.name) - len(suffix)])
    return sorted(found)


def read_state(directory: Path, session: str) -> SavedState:
    """The session's save, with what is wrong with it (first problem found) if anything."""
    state = SavedState(Path(directory), session)
    experiment, searcher, search_gen = state.paths()
    try:
        state.trials = _trials(experiment)
        ids = _searcher_trials(searcher)
        counter, live = _search_gen(search_gen)
    except FileNotFoundError as exc:
        state.torn = f"{Path(exc.filename).name} is missing"
        return state
    except Exception as exc:  # torn, empty or foreign: unusable whatever the error
        state.torn = f"{_which(exc, state)} is unreadable ({type(exc).__name__})"
        return state
    unfinished = {t for t, status in state.trials.items() if status not in FINISHED}
    if counter != len(state.trials) or not live <= unfinished or not ids <= set(state.trials):
        state.mismatch = (
            f"{experiment.name} lists {len(state.trials)} trial(s) but {search_gen.name} and "
            f"{searcher.name} are from an earlier save (the driver was stopped between the two)"
        )
    return state


def is_state_file(name: str) -> bool:
    return any(fnmatch(name, kind.format("*")) for kind in KINDS)


def _which(exc: Exception, state: SavedState) -> str:
    return getattr(exc, "state_file", state.paths()[0].name)


def _load(path: Path, read):
    try:
        with open(path, "rb") as f:
            return read(f)
    except FileNotFoundError:
        raise
    except Exception as exc:
        exc.state_file = path.name
        raise


def _trials(path: Path) -> dict[str, str]:
    data = _load(path, json.load)
    out = {}
    for trial_json, _meta in data["trial_data"]:
        trial = json.loads(trial_json)
        out[str(trial["trial_id"])] = str(trial["status"])
    return out


def _searcher_trials(path: Path) -> set[str]:
    """Ray trial ids the Optuna searcher has proposed (with repeats: every seed's)."""
    data = _load(path, pickle.load)
    return set(data.get("_ot_trials") or {}) | set(data.get("_group_of") or {})


def _search_gen(path: Path) -> tuple[int, set[str]]:
    import ray.cloudpickle as cloudpickle

    data = _load(path, cloudpickle.load)
    live = (data.get(LIMITER_KEY) or {}).get("live_trials") or set()
    return int(data["counter"]), set(live)
