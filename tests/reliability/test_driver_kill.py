"""SIGKILL of `archer-sweep run` at several points, then `archer-sweep resume`.

After the resume the sweep is complete and equals one that was never interrupted
(same trials, verdicts and final metrics: the backend is deterministic), no finished
trial was rerun or lost, `verdicts.jsonl` holds exactly one verdict per trial, and
no Optuna trial number is duplicated or left RUNNING.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import pytest

from archer_sweep.results.analysis import load_sweep, summarize
from tests.reliability import helpers
from tests.reliability.helpers import (
    command_lines,
    kill_session,
    last_reports,
    session_pids,
    sigkill_when,
    spec_data,
    start_cli,
    start_killer,
    study_trials,
    verdict_rows,
    write_spec,
)

COEFFS = [0.001, 0.03, 0.005, 0.02, 0.002]  # healthy and stopped:entropy_high trials
NAME = "kill"
RUN_TIMEOUT_S = 150


def make_spec(tmp: Path) -> Path:
    data = spec_data(tmp, NAME, COEFFS, steps=6, sleep_s=0.15)  # 0.9 s of steps a trial
    data["trainable"]["config"]["attempt_log"] = str(tmp / "attempts.log")  # trainer built
    return write_spec(tmp, data)


def run_to_end(*args: str, log: Path) -> int:
    return helpers.run_to_end(*args, log=log, timeout=RUN_TIMEOUT_S)


def outcome(sweep_dir: Path) -> list[tuple]:
    """What a user sees of the sweep, independent of trial ids: sorted (params, verdict,
    rule, verdict step, steps run, last key metrics)."""
    rows = summarize(load_sweep(sweep_dir))
    return sorted(
        (
            tuple(sorted(r.params.items())),
            r.verdict,
            r.rule,
            r.stop_step,
            r.steps,
            tuple(sorted((k, round(v, 9) if v is not None else None) for k, v in r.last.items())),
        )
        for r in rows
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reference")
    assert run_to_end("run", str(make_spec(tmp)), log=tmp / "run.log") == 0, (tmp / "run.log").read_text()[
        -3000:
    ]
    return outcome(tmp / "results" / NAME)


KILL_POINTS: dict[str, Callable[[Path], bool]] = {
    # trainers are running, none is judged yet (result.json reaches the storage path
    # only when Tune syncs, so the trainer's own log is the early signal)
    "trial_started": lambda d: (d.parents[1] / "attempts.log").exists() and not verdict_rows(d),
    # two trials judged, others running or pending
    "two_verdicts": lambda d: len(verdict_rows(d)) >= 2,
    # all but the last trial judged
    "last_trial": lambda d: len(verdict_rows(d)) >= len(COEFFS) - 1,
}


def _trainers(sid: int) -> list[str]:
    """Trial workers and Ray's node processes left in the driver's session."""
    left = command_lines(session_pids(sid))
    return [c for c in left if "Trainable" in c or "raylet" in c or "gcs_server" in c]


def kill_at(point: str, tmp: Path, inside: Optional[tuple[str, int]] = None) -> dict:
    """Start the run, SIGKILL the driver when the kill point is reached (or, with `inside`
    = (killer point, verdicts first), let it kill itself there); what was on disk."""
    sweep_dir = tmp / "results" / NAME
    spec, log = str(make_spec(tmp)), tmp / "run.log"
    if inside is None:
        proc = start_cli("run", spec, log=log)
    else:
        proc = start_killer(inside[0], 1, "run", spec, log=log, after_verdicts=inside[1], sweep_dir=sweep_dir)
    try:
        if inside is None:
            reached = lambda: KILL_POINTS[point](sweep_dir)
            sigkill_when(proc, reached, log, f"kill point {point}", RUN_TIMEOUT_S)
        else:
            assert proc.wait(timeout=RUN_TIMEOUT_S) == -signal.SIGKILL, log.read_text()[-3000:]
        # the driver's Ray (raylet, trial workers) ends with it: no trainer keeps running.
        # Wait for those alone: Ray's idle agents outlive it, and waiting for the whole
        # session to empty would always take the full timeout.
        deadline = time.monotonic() + 30
        while (trainers := _trainers(proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert trainers == [], command_lines(session_pids(proc.pid))
    finally:
        kill_session(proc.pid)  # Ray's idle node agents outlive a SIGKILLed driver
        proc.wait()
    before = {r["trial_id"]: r for r in verdict_rows(sweep_dir)}
    # A trial judged just before the kill may have no result.json in storage yet (Tune had not
    # synced it from Ray's staging dir): resume must then bring its reports, checked below.
    paths = {tid: sweep_dir / tid / "result.json" for tid in before}
    results = {tid: p.read_bytes() for tid, p in paths.items() if p.exists()}
    return {"dir": sweep_dir, "verdicts": before, "results": results}


def check_resumed(tmp: Path, killed: dict, reference: list) -> None:
    sweep_dir = killed["dir"]
    code = run_to_end("resume", str(sweep_dir), log=tmp / "resume.log")
    assert code == 0, (tmp / "resume.log").read_text()[-3000:]
    rows = verdict_rows(sweep_dir)
    ids = [r["trial_id"] for r in rows]
    assert len(ids) == len(set(ids)) == len(COEFFS)  # one verdict per trial
    trial_dirs = {p.parent.name for p in sweep_dir.glob("*/result.json")}
    assert trial_dirs == set(ids)  # no trial lost, none added
    # finished trials were neither rerun nor re-judged, and kept every report (the tail a
    # killed driver had not yet synced from Ray's staging dir included)
    for tid, row in killed["verdicts"].items():
        assert next(r for r in rows if r["trial_id"] == tid) == row
        text = (sweep_dir / tid / "result.json").read_bytes()
        assert text.startswith(killed["results"].get(tid, b""))
        reports = last_reports(sweep_dir, tid)
        assert [r["training_iteration"] for r in reports] == list(range(1, len(reports) + 1))
        assert all(r["iterations_since_restore"] == r["training_iteration"] for r in reports)
        assert int(reports[-1]["step"]) == row["step"]
    # the study: unique numbers, nothing RUNNING, each Ray trial told exactly once
    trials = study_trials(sweep_dir, NAME)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    assert [t.number for t in trials if t.state.name in ("RUNNING", "WAITING")] == []
    by_ray = {}
    for t in trials:
        if "ray_trial_id" in t.user_attrs:
            by_ray.setdefault(t.user_attrs["ray_trial_id"], []).append(t)
    assert set(ids) <= set(by_ray) and all(len(v) == 1 for v in by_ray.values())
    # asked before the kill for a Ray trial that Tune never saved: closed as FAIL
    assert {t.state.name for tid in set(by_ray) - set(ids) for t in by_ray[tid]} <= {"FAIL"}
    for r in rows:
        state = by_ray[r["trial_id"]][0].state.name
        assert state == ("PRUNED" if r["verdict"].startswith("stopped:") else "COMPLETE"), r
    # the same sweep as one never interrupted
    assert outcome(sweep_dir) == reference


@pytest.mark.slow
def test_kill_after_two_verdicts_then_resume(reference, tmp_path):
    check_resumed(tmp_path, kill_at("two_verdicts", tmp_path), reference)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["trial_started", "last_trial"])
def test_kill_at_other_points_then_resume(point, reference, tmp_path):
    check_resumed(tmp_path, kill_at(point, tmp_path), reference)


@pytest.mark.slow
def test_kill_inside_a_tune_save_then_resume(reference, tmp_path):
    """Killed inside Tune's save after all but the last trial were judged: the experiment state
    written, the searcher's files of that save not yet. Resumed from that mix, the concurrency
    limiter waited for trials that had ended and `resume` never finished (CI's 150 s timeout of
    test_kill_at_other_points_then_resume[last_trial]); engine/recover.py mends it."""
    killed = kill_at("inside_save", tmp_path, inside=("searcher_save:before", len(COEFFS) - 1))
    check_resumed(tmp_path, killed, reference)
    assert "mended Ray Tune's saved state" in (tmp_path / "resume.log").read_text()


def test_resume_refuses_a_dir_that_is_not_a_sweep(tmp_path):
    code = run_to_end("resume", str(tmp_path), log=tmp_path / "resume.log")
    text = (tmp_path / "resume.log").read_text()
    assert code == 2 and "not an archer-sweep results directory" in text
    assert "Traceback" not in text
