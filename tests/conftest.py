"""Suite-wide: the slowest test files are collected first.

The README's test command spreads the files over pytest-xdist workers (`--dist loadfile
--no-loadscope-reorder`: a file's tests stay on one worker, which keeps one Ray session per
module). Workers take files in collection order, so a long file collected last would run
alone at the end; starting the longest first (the "longest processing time" rule) keeps the
workers busy until the end. Only the order of files changes, never the order inside one.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Longest first, from `pytest -n 3 --dist loadfile --durations=0 --junitxml` (sum of each
#: file's test times, 2026-12-06, 2-core AMD EPYC). A stale order costs wall time, never
#: correctness; `tests/test_layout.py` checks that each path still exists.
SLOWEST_FIRST = (
    "tests/reliability/test_driver_kill.py",
    "tests/reliability/test_repeats_resume.py",
    "tests/reliability/test_kill_fuzz.py",
    "tests/test_cli_run.py",
    "tests/test_deepspeed_engine.py",
    "tests/reliability/test_trial_faults.py",
    "tests/test_runner.py",
    "tests/reliability/test_sigint.py",
    "tests/reliability/test_storage.py",
    "tests/cluster/test_cluster.py",
    "tests/test_command_backend.py",
    "tests/test_repeats_sweep.py",
    "tests/test_replay.py",
    "tests/test_hunt.py",
    "tests/test_decisions_bench.py",
    "tests/test_postgres_study.py",
    "tests/test_reference_sweep.py",
    "tests/test_probe.py",
    "tests/test_criteria_sweeps.py",
    "tests/test_hf_backend.py",
)


def file_rank(relpath: str) -> int:
    """Where a test file goes: its place in SLOWEST_FIRST, every other file after them."""
    try:
        return SLOWEST_FIRST.index(relpath)
    except ValueError:
        return len(SLOWEST_FIRST)


def pytest_collection_modifyitems(session, config, items) -> None:
    def key(item) -> int:
        return file_rank(Path(str(item.path)).resolve().relative_to(ROOT).as_posix())

    items.sort(key=key)  # stable: the rest keep pytest's order, and each file its own
