"""`python -m tests.reliability.killer POINT N ARGS…`: `archer-sweep ARGS…` that SIGKILLs itself
the N-th time the driver reaches POINT, so a test can stop a sweep at an exact moment (inside a
write included) instead of after a sleep.

Each point wraps one function of the driver (archer-sweep's, Ray Tune's or Optuna's) and kills
before it, in the middle of the write it makes (the first half of the bytes written, flushed),
or after it returned. Only the driver is patched; trial workers run unchanged.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

_calls: dict[str, int] = {}


def die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


#: with these set, calls count only once the verdicts file holds at least that many lines
ARMED_FILE, ARMED_LINES = "KILLER_VERDICTS_FILE", "KILLER_AFTER_VERDICTS"


def _armed() -> bool:
    need = int(os.environ.get(ARMED_LINES, "0"))
    if need <= 0:
        return True
    try:
        with open(os.environ[ARMED_FILE], "rb") as f:
            return f.read().count(b"\n") >= need
    except OSError:
        return False


def _hit(point: str, nth: int) -> bool:
    if not _armed():
        return False
    _calls[point] = _calls.get(point, 0) + 1
    return _calls[point] == nth


def _wrap(owner: Any, attr: str, point: str, nth: int, when: str) -> None:
    original = getattr(owner, attr)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        hit = _hit(point, nth)
        if hit and when == "before":
            die()
        out = original(*args, **kwargs)
        if hit and when == "after":
            die()
        return out

    setattr(owner, attr, wrapper)


def _torn_jsonl(nth: int) -> None:
    """The N-th verdict line half written (flushed and fsync'd), then the kill."""
    from archer_sweep.engine import verdicts

    original = verdicts.JsonlStore._append

    def append(self, trial_id, row):
        if type(self).__name__ == "VerdictStore" and _hit("verdict_torn", nth):
            line = json.dumps(row) + "\n"
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line[: len(line) // 2])
                f.flush()
                os.fsync(f.fileno())
            die()
        return original(self, trial_id, row)

    verdicts.JsonlStore._append = append


def _torn_tune_state(nth: int) -> None:
    """The N-th experiment state that Tune writes into its staging dir half written."""
    from ray.tune.execution import tune_controller

    class TornJson:
        def __getattr__(self, name):
            return getattr(json, name)

        @staticmethod
        def dump(obj, f, **kwargs):
            if not _hit("tune_state_torn", nth):
                return json.dump(obj, f, **kwargs)
            text = json.dumps(obj, **kwargs)
            f.write(text[: len(text) // 2])
            f.flush()
            die()

    tune_controller.json = TornJson()


def _verdict_store():
    from archer_sweep.engine.verdicts import VerdictStore

    return VerdictStore


def _scheduler():
    from archer_sweep.engine.scheduler import CriteriaScheduler

    return CriteriaScheduler


def _searcher():
    from archer_sweep.engine.searcher import CriteriaOptunaSearch

    return CriteriaOptunaSearch


def _controller():
    from ray.tune.execution.tune_controller import TuneController

    return TuneController


def _study():
    import optuna

    return optuna.study.Study


def _rdb():
    import optuna

    return optuna.storages.RDBStorage


def _search_generator():
    from ray.tune.search.search_generator import SearchGenerator

    return SearchGenerator


def _ray():
    import ray

    return ray


#: point -> (the object that owns the function, its name) for the before/after kills
WRAPPED: dict[str, tuple[Callable[[], Any], str]] = {
    "ray_init": (_ray, "init"),
    "tune_save": (_controller, "save_to_dir"),
    "searcher_save": (_search_generator, "save_to_dir"),  # after the experiment state, before the searcher's
    "suggest": (_searcher, "suggest"),
    "ask": (_study, "ask"),
    "tell": (_study, "tell"),
    "trial_state_write": (_rdb, "set_trial_state_values"),
    "result": (_scheduler, "on_trial_result"),
    "trial_complete": (_searcher, "on_trial_complete"),
    "verdict": (_verdict_store, "record"),
}
TORN: dict[str, Callable[[int], None]] = {"verdict_torn": _torn_jsonl, "tune_state_torn": _torn_tune_state}


def install(point: str, nth: int) -> None:
    """`point` is `NAME:before`, `NAME:after` (NAME in WRAPPED) or a TORN name."""
    if point in TORN:
        TORN[point](nth)
        return
    name, when = point.split(":")
    owner, attr = WRAPPED[name]
    _wrap(owner(), attr, point, nth, when)


def main() -> None:
    point, nth, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    install(point, nth)
    from archer_sweep.cli.app import main as cli

    sys.argv = ["archer-sweep", *args]
    cli()


if __name__ == "__main__":
    main()
