"""Trial faults inside one sweep: a crash, NaN, inf, a hang and a corrupt checkpoint.

Each faulty trial gets its own verdict with a reason, the other trials finish, retries
follow `failure.max_failures`, and the Optuna study never shows a faulty trial as
COMPLETE with a made-up value.
"""

from __future__ import annotations

import math
import os

import pytest

from archer_sweep.engine import runner
from archer_sweep.engine import sweep as cmd_run
from archer_sweep.spec.model import SweepSpec
from tests.ray_session import local_ray_session
from tests.reliability.helpers import (
    OBJECTIVE,
    assert_no_ray_left,
    by_coeff,
    last_reports,
    spec_data,
    study_trials,
    verdict_rows,
)

HEALTHY, CRASH, NAN, INF, HANG, CORRUPT, FLAKY = 0.001, 0.0011, 0.0012, 0.0013, 0.0014, 0.0015, 0.0016
TIMEOUT_S = 5.0  # generous: a loaded CI box must not time out healthy steps


@pytest.fixture(scope="module")
def local_ray():
    yield from local_ray_session(WANDB_MODE="disabled")
    assert_no_ray_left(os.getpid())


@pytest.fixture(scope="module")
def sweep(local_ray, tmp_path_factory):
    """One sweep, max_failures=1, a trial per fault (runs once, ~30 s)."""
    tmp = tmp_path_factory.mktemp("faults")
    attempts = tmp / "attempts.log"
    faults = [
        {"only_coeff": CRASH, "raise_at_step": 3},
        {"only_coeff": NAN, "bad_value_at_step": 4},
        {"only_coeff": INF, "bad_value_at_step": 4, "bad_value": math.inf},
        {"only_coeff": HANG, "hang_at_step": 3, "hang_s": 40},
        # saves garbage at step 2, crashes at 3: the retry must load the corrupt checkpoint
        {"only_coeff": CORRUPT, "corrupt_checkpoint": True, "raise_at_step": 3},
        # crashes once at step 5 (after a good checkpoint at 4): the retry finishes the trial
        {"only_coeff": FLAKY, "raise_at_step": 5, "raise_once_marker": str(tmp / "flaky.once")},
    ]
    data = spec_data(
        tmp,
        "faults",
        [HEALTHY, CRASH, NAN, INF, HANG, CORRUPT, FLAKY],
        faults=faults,
        failure={"max_failures": 1, "step_timeout_s": TIMEOUT_S},
    )
    data["trainable"]["config"]["attempt_log"] = str(attempts)
    spec = SweepSpec.model_validate(data)
    code = cmd_run.run(spec, live=False)
    sweep_dir = runner.sweep_dir_of(spec)
    return {
        "code": code,
        "dir": sweep_dir,
        "rows": verdict_rows(sweep_dir),
        "attempts": attempts.read_text().split("\n"),
        "spec": spec,
    }


def test_every_trial_gets_exactly_one_verdict_and_healthy_ones_finish(sweep):
    assert sweep["code"] == 0  # some trials failed, the sweep did not
    rows = sweep["rows"]
    assert len(rows) == 7 and len({r["trial_id"] for r in rows}) == 7
    v = by_coeff(rows)
    for coeff in (HEALTHY, FLAKY):
        assert v[coeff]["verdict"] == "healthy" and v[coeff]["step"] == 8, v[coeff]


def test_crash_is_an_error_verdict_with_the_exception_text(sweep):
    row = by_coeff(sweep["rows"])[CRASH]
    assert row["verdict"] == "error"
    assert row["reason"] == "RuntimeError: injected crash at step 3"


def test_nan_and_inf_stop_the_trial_as_stopped_nan(sweep):
    v = by_coeff(sweep["rows"])
    for coeff in (NAN, INF):
        row = v[coeff]
        assert row["verdict"] == "stopped:nan" and row["step"] == 4, row
        assert row["metric"] == OBJECTIVE
        # stopped at the first bad report: nothing was reported after it
        assert last_reports(sweep["dir"], row["trial_id"])[-1]["step"] == 4
    assert v[NAN]["value"] == "nan" and v[INF]["value"] == "inf"


def test_a_hang_past_step_timeout_is_stopped_as_timeout(sweep):
    row = by_coeff(sweep["rows"])[HANG]
    assert row["verdict"] == "stopped:timeout", row
    assert row["rule"] == "timeout" and row["step"] == 3
    assert TIMEOUT_S <= row["value"] < TIMEOUT_S + 20  # the 40 s hang was cut short


def test_retries_follow_max_failures(sweep):
    counts = {}
    for line in filter(None, sweep["attempts"]):
        coeff = float(line.split()[0])
        counts[coeff] = counts.get(coeff, 0) + 1
    assert counts[CRASH] == 2  # first attempt + max_failures=1 retry
    assert counts[FLAKY] == 2 and counts[HEALTHY] == 1
    assert counts[CORRUPT] == 2


def test_corrupt_checkpoint_ends_as_an_error_naming_the_load_failure(sweep):
    row = by_coeff(sweep["rows"])[CORRUPT]
    assert row["verdict"] == "error", row
    assert "pickle" in row["reason"].lower() or "load" in row["reason"].lower(), row


def test_flaky_trial_resumed_from_its_checkpoint_not_from_scratch(sweep):
    row = by_coeff(sweep["rows"])[FLAKY]
    steps = [int(r["step"]) for r in last_reports(sweep["dir"], row["trial_id"])]
    assert steps[:4] == [1, 2, 3, 4] and steps[-1] == 8
    assert 5 in steps and steps.count(1) == 1  # restarted at the step-4 checkpoint


def test_study_marks_faults_fail_or_pruned_never_complete(sweep):
    trials = {t.user_attrs["ray_trial_id"]: t for t in study_trials(sweep["dir"], "faults")}
    assert len(trials) == 7
    expected = {
        HEALTHY: "COMPLETE",
        FLAKY: "COMPLETE",
        CRASH: "FAIL",
        CORRUPT: "FAIL",
        NAN: "PRUNED",
        INF: "PRUNED",
        HANG: "PRUNED",
    }
    for coeff, row in by_coeff(sweep["rows"]).items():
        t = trials[row["trial_id"]]
        assert t.state.name == expected[coeff], (coeff, t.state, row)
        reported = [
            r[OBJECTIVE]
            for r in last_reports(sweep["dir"], row["trial_id"])
            if isinstance(r.get(OBJECTIVE), float) and math.isfinite(r[OBJECTIVE])
        ]
        if t.state.name == "FAIL":
            assert t.value is None
        elif t.state.name == "PRUNED":  # Optuna keeps the last finite intermediate value
            assert t.value is None or t.value == pytest.approx(reported[-1])
        else:  # the value is the trial's own last report, not a made-up one
            assert t.value == pytest.approx(reported[-1])
