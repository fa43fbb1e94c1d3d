"""Ray Tune saved-state files for tests of engine/tune_state.py, recover.py and salvage.py:
the three files of one save, as Ray 2.60 writes them (only the keys archer-sweep reads)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Optional

import ray.cloudpickle as cloudpickle


def write_save(
    directory: Path,
    session: str,
    trials: dict[str, str],
    *,
    counter: Optional[int] = None,
    live: Optional[set] = None,
    searcher: Optional[dict] = None,
) -> list[Path]:
    """trials: trial id -> status. By default the three files agree."""
    directory.mkdir(parents=True, exist_ok=True)
    data = [[json.dumps({"trial_id": t, "status": s}), "{}"] for t, s in trials.items()]
    exp = directory / f"experiment_state-{session}.json"
    exp.write_text(json.dumps({"trial_data": data, "runner_data": {}, "stats": {}}))
    pkl = directory / f"searcher-state-{session}.pkl"
    pkl.write_bytes(pickle.dumps(searcher if searcher is not None else {"_ot_trials": dict.fromkeys(trials)}))
    unfinished = {t for t, s in trials.items() if s not in ("TERMINATED", "ERROR")}
    gen = {
        "counter": len(trials) if counter is None else counter,
        "name:ConcurrencyLimiter": {"live_trials": unfinished if live is None else live},
    }
    gen_path = directory / f"search_gen_state-{session}.json"
    gen_path.write_bytes(cloudpickle.dumps(gen))
    return [exp, pkl, gen_path]


def write_save_cut_after_two(directory: Path, searcher: dict) -> list[Path]:
    """Session S1 as a kill between one save's files leaves it: the experiment state lists a, b
    (TERMINATED) and c (RUNNING); the searcher's files (`searcher`, counter 2, live a and b) are
    from the save before c started."""
    return write_save(
        directory,
        "S1",
        {"a": "TERMINATED", "b": "TERMINATED", "c": "RUNNING"},
        counter=2,
        live={"a", "b"},
        searcher=searcher,
    )
