"""Ctrl-C: SIGINT to the driver's process group stops the trials gracefully, saves the
state, prints the resume command and exits non-zero; the resume then completes."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.reliability.helpers import (
    command_lines,
    kill_session,
    spec_data,
    start_cli,
    study_trials,
    verdict_rows,
    wait_gone,
    write_spec,
)

COEFFS = [0.001, 0.03, 0.005, 0.002]


@pytest.mark.slow
def test_ctrl_c_saves_state_prints_resume_and_resume_finishes(tmp_path):
    spec = write_spec(tmp_path, spec_data(tmp_path, "intr", COEFFS, steps=8, sleep_s=0.3))
    sweep_dir = tmp_path / "results" / "intr"
    log = tmp_path / "run.log"
    proc = start_cli("run", str(spec), log=log)
    try:
        deadline = time.monotonic() + 120
        while len(verdict_rows(sweep_dir)) < 1:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends
        code = proc.wait(timeout=60)
        left = command_lines(wait_gone(proc.pid, timeout=30))
    finally:
        kill_session(proc.pid)
        proc.wait()
    text = log.read_text()
    assert code == 130, text[-3000:]
    assert f"interrupted; continue with: archer-sweep resume {sweep_dir}" in text
    assert "Traceback" not in text, text[-3000:]
    assert left == []  # graceful: Ray and every trial process ended with the driver
    judged = {r["trial_id"]: r for r in verdict_rows(sweep_dir)}
    assert 1 <= len(judged) < len(COEFFS)

    again = start_cli("resume", str(sweep_dir), log=tmp_path / "resume.log")
    try:
        assert again.wait(timeout=150) == 0, (tmp_path / "resume.log").read_text()[-3000:]
    finally:
        kill_session(again.pid)
        again.wait()
    rows = verdict_rows(sweep_dir)
    assert len(rows) == len(COEFFS) == len({r["trial_id"] for r in rows})
    for r in rows:
        if r["trial_id"] in judged:
            assert r == judged[r["trial_id"]]
    assert sorted(r["params"]["algorithm.entropy_coeff"] for r in rows) == sorted(COEFFS)
    # an interrupted trial stays RUNNING in the study until the resume finishes it
    states = [t.state.name for t in study_trials(sweep_dir, "intr")]
    assert "RUNNING" not in states and "WAITING" not in states, states
