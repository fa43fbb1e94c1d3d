"""The driver SIGKILLed at many moments of one sweep, then resumed: the sweep ends as if never
interrupted.

The sweep is `sweeps/replay.yaml` with `max_concurrent: 1` (recorded runs, so a trial costs
milliseconds of CPU and the proposals depend only on the sampler). The driver kills itself at an
exact point (tests/reliability/killer.py): during start-up, inside a trial, between trials, while
a verdict line or Optuna's study or Tune's experiment state is written, and at the end. After each
kill `archer-sweep resume` (or, when it says the sweep never saved a state, the `run` command it
names) must finish the sweep with each of the `num_samples` trials judged once, Optuna told once
per trial, the uninterrupted sweep's configs and verdicts, and no process left.

A few points run in the default suite; all of them with `-m killfuzz` (`.ci/run` runs both).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from archer_sweep.results.analysis import load_sweep, summarize
from tests.reliability import helpers
from tests.reliability.helpers import (
    REPO,
    kill_session,
    start_killer,
    study_trials,
    verdict_rows,
)

NAME = "fuzz"
SAMPLES = 6
SETS = [
    "--set",
    "search.max_concurrent=1",
    "--set",
    f"search.num_samples={SAMPLES}",
    "--set",
    "ray.num_cpus=2",
]
TIMEOUT_S = 180

#: (killer point, its nth call, counted once this many verdicts exist)
POINTS: dict[str, tuple[str, int, int]] = {
    "before_ray": ("ray_init:before", 1, 0),
    "before_first_save": ("tune_save:before", 1, 0),
    "first_state_torn": ("tune_state_torn", 1, 0),
    "first_save_half_done": ("searcher_save:before", 1, 0),
    "first_config_asked": ("suggest:after", 1, 0),
    "inside_first_ask": ("ask:after", 1, 0),
    "first_trial_step_5": ("result:before", 5, 0),
    "first_verdict_due": ("verdict:before", 1, 0),
    "second_verdict_torn": ("verdict_torn", 2, 0),
    "third_verdict_written": ("verdict:after", 3, 0),
    "second_trial_untold": ("trial_complete:before", 2, 0),
    "third_tell_due": ("tell:before", 3, 0),
    "third_tell_done": ("tell:after", 3, 0),
    "inside_optuna_state_write": ("trial_state_write:before", 4, 0),
    "fourth_trial_told": ("trial_complete:after", 4, 0),
    "mid_run_save": ("tune_save:before", 1, 2),
    "mid_run_state_torn": ("tune_state_torn", 1, 3),
    "mid_run_save_half_done": ("searcher_save:before", 1, 3),
    "fifth_config_asked": ("suggest:after", 5, 0),
    "mid_trial_late": ("result:before", 3, 4),
    "last_verdict_torn": ("verdict_torn", SAMPLES, 0),
    "last_verdict_written": ("verdict:after", SAMPLES, 0),
    "final_save": ("tune_save:before", 1, SAMPLES),
}
DEFAULT = ["second_verdict_torn", "mid_run_save_half_done"]  # in the default suite


def run_to_end(*args: str, log: Path) -> int:
    return helpers.run_to_end(*args, log=log, timeout=TIMEOUT_S)


def outcome(sweep_dir: Path) -> list[tuple]:
    """Configs and verdicts, independent of trial ids: sorted (params, verdict, rule, step, steps)."""
    rows = summarize(load_sweep(sweep_dir))
    return sorted((tuple(sorted(r.params.items())), r.verdict, r.rule, r.stop_step, r.steps) for r in rows)


def run_args(root: Path) -> list[str]:
    return ["run", str(REPO / "sweeps" / "replay.yaml"), "--name", NAME, "--storage", str(root), *SETS]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    assert run_to_end(*run_args(root), log=root / "run.log") == 0, (root / "run.log").read_text()[-3000:]
    return outcome(root / NAME)


def kill_and_resume(point: str, tmp: Path) -> Path:
    killer, nth, after = POINTS[point]
    sweep_dir = tmp / NAME
    log = tmp / "run.log"
    proc = start_killer(killer, nth, *run_args(tmp), log=log, after_verdicts=after, sweep_dir=sweep_dir)
    try:
        code = proc.wait(timeout=TIMEOUT_S)
        assert code == -9, f"{point} never reached (exit {code}): " + log.read_text()[-3000:]
    finally:
        kill_session(proc.pid)  # Ray's processes outlive a SIGKILLed driver
        proc.wait()
    resumed = tmp / "resume.log"
    code = run_to_end("resume", str(sweep_dir), log=resumed)
    text = resumed.read_text()
    assert unexpected_tracebacks(text) == 0, text[-3000:]
    if code == 2:  # stopped before Tune saved a state: resume names the run that starts it again
        found = re.search(r"start it again with `(archer-sweep run [^`]+)`", text)
        assert found, text[-3000:]
        args = shlex.split(found.group(1))[1:]
        code = run_to_end(*args, log=tmp / "rerun.log")
        assert code == 0, (tmp / "rerun.log").read_text()[-3000:]
    else:
        assert code == 0, text[-3000:]
    return sweep_dir


def unexpected_tracebacks(text: str) -> int:
    """Tracebacks in a log other than the one Ray Tune logs and goes on after: a restored trial's
    saved state names a checkpoint the killed driver had already deleted (num_to_keep)."""
    lines = text.splitlines()
    return sum(
        line.startswith("Traceback") and not (i and "Error handling checkpoint" in lines[i - 1])
        for i, line in enumerate(lines)
    )


def check(sweep_dir: Path, reference: list) -> None:
    rows = verdict_rows(sweep_dir)
    ids = [r["trial_id"] for r in rows]
    assert len(ids) == len(set(ids)) == SAMPLES  # each trial judged once, num_samples of them
    assert {p.parent.name for p in sweep_dir.glob("*/result.json")} == set(ids)
    trials = study_trials(sweep_dir, NAME)
    assert [t.number for t in trials if t.state.name in ("RUNNING", "WAITING")] == []
    told = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert sorted(t.user_attrs["ray_trial_id"] for t in told) == sorted(ids)  # Optuna told once each
    assert outcome(sweep_dir) == reference  # the uninterrupted sweep's configs and verdicts


@pytest.mark.slow
@pytest.mark.parametrize("point", DEFAULT)
def test_kill_then_resume(point, reference, tmp_path):
    check(kill_and_resume(point, tmp_path), reference)


@pytest.mark.killfuzz
@pytest.mark.parametrize("point", [p for p in POINTS if p not in DEFAULT])
def test_kill_fuzz(point, reference, tmp_path):
    check(kill_and_resume(point, tmp_path), reference)
