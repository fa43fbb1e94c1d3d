"""CriteriaScheduler: stop on the first bad rule, one verdict per trial, resume from disk."""

from __future__ import annotations

import json
import math

import pytest
from ray.tune.schedulers import TrialScheduler

from archer_sweep.criteria import Rule, Verdict
from archer_sweep.engine.scheduler import CriteriaScheduler
from archer_sweep.engine.verdicts import VerdictStore
from trainable import metrics as M

RULES = [
    Rule("entropy_high", M.ENTROPY, "bad", op=">", value=7, after_step=2),
    Rule("guessing", M.RESP_LEN_POS, "bad", op="<", value=20, after_step=2, patience=3, on_nan="skip"),
    Rule("entropy_band", M.ENTROPY, "good", between=(3, 6)),
]
KEYS = ["algorithm.entropy_coeff"]


class StubTrial:
    """The attributes of ray.tune.experiment.Trial the scheduler reads."""

    def __init__(self, trial_id, local_path=None, error=None):
        self.trial_id = trial_id
        self.config = {"algorithm": {"entropy_coeff": 0.01}}
        self.local_path = local_path
        self.last_result = {}
        self.status = "RUNNING"
        self._error = error

    def should_recover(self):
        return False

    def get_error(self):
        return self._error


def report(step, entropy=4.5, pos=60.0, score=0.3, **extra):
    return {
        M.STEP: step,
        "training_iteration": step,
        M.ENTROPY: entropy,
        M.RESP_LEN_POS: pos,
        M.SCORE_MEAN: score,
        **extra,
    }


def make(tmp_path, **kw):
    store = VerdictStore(tmp_path)
    return CriteriaScheduler(RULES, store, objective=M.SCORE_MEAN, param_keys=KEYS, **kw), store


def lines(tmp_path):
    return [json.loads(x) for x in (tmp_path / "verdicts.jsonl").read_text().splitlines()]


def test_bad_rule_stops_at_the_firing_step_and_records_rule_step_value(tmp_path):
    sched, store = make(tmp_path)
    trial = StubTrial("t1")
    decisions = [
        sched.on_trial_result(None, trial, report(s, entropy=e))
        for s, e in [(1, 7.5), (2, 7.6), (3, 6.9), (4, 7.2)]
    ]
    # steps 1-2 are before after_step; 3 is below the threshold; 4 fires
    assert decisions == [TrialScheduler.CONTINUE] * 3 + [TrialScheduler.STOP]
    row = store.get("t1")
    assert (row["verdict"], row["rule"], row["step"], row["metric"], row["value"]) == (
        "stopped:entropy_high",
        "entropy_high",
        4,
        M.ENTROPY,
        7.2,
    )
    assert row["params"] == {"algorithm.entropy_coeff": 0.01}
    sched.on_trial_complete(None, trial, report(4, entropy=7.2))  # Tune calls this after STOP
    assert [r["verdict"] for r in lines(tmp_path)] == ["stopped:entropy_high"]


def test_patience_and_nan_skip(tmp_path):
    sched, store = make(tmp_path)
    trial = StubTrial("t1")
    pos = [10, math.nan, 10, 30, 10, 10, 10]
    got = [sched.on_trial_result(None, trial, report(s, pos=p)) for s, p in enumerate(pos, 1)]
    # step 3 starts the streak, 4 breaks it, 5-7 are three in a row
    assert got[-1] == TrialScheduler.STOP and got[:-1].count(TrialScheduler.STOP) == 0
    assert store.get("t1")["verdict"] == "stopped:guessing"
    assert store.get("t1")["step"] == 7


def test_finished_trial_is_judged_on_the_final_result_tune_passes_only_at_completion(tmp_path):
    sched, store = make(tmp_path)
    healthy, unhealthy, late = StubTrial("h"), StubTrial("u"), StubTrial("late")
    for s in (1, 2, 3):
        for t in (healthy, unhealthy, late):
            sched.on_trial_result(None, t, report(s))
    sched.on_trial_complete(None, healthy, report(4, entropy=5.0))
    sched.on_trial_complete(None, unhealthy, report(4, entropy=2.5))
    sched.on_trial_complete(None, late, report(4, entropy=7.7))
    assert store.get("h")["verdict"] == "healthy"
    u = store.get("u")
    assert (u["verdict"], u["rule"], u["step"], u["value"]) == (
        "unhealthy:entropy_band",
        "entropy_band",
        4,
        2.5,
    )
    assert store.get("late")["verdict"] == "stopped:entropy_high"


def test_nan_objective_stops_as_nan(tmp_path):
    sched, store = make(tmp_path)
    assert sched.on_trial_result(None, StubTrial("n"), report(1, score=math.nan)) == TrialScheduler.STOP
    row = store.get("n")
    assert row["verdict"] == "stopped:nan" and row["metric"] == M.SCORE_MEAN
    assert row["value"] == "nan" and "not finite" in row["reason"]


def test_error_verdict_carries_the_exception_message(tmp_path):
    sched, store = make(tmp_path)
    trial = StubTrial(
        "e", error="Traceback (most recent call last):\n  ...\nRuntimeError: fake failure at step 3\n"
    )
    trial.last_result = report(2)
    sched.on_trial_error(None, trial)
    row = store.get("e")
    assert (row["verdict"], row["step"], row["reason"]) == (
        "error",
        2,
        "RuntimeError: fake failure at step 3",
    )


def test_step_timeout(tmp_path):
    sched, store = make(tmp_path, step_timeout_s=2.0)
    trial = StubTrial("slow")
    assert sched.on_trial_result(None, trial, report(1, time_this_iter_s=1.0)) == TrialScheduler.CONTINUE
    assert sched.on_trial_result(None, trial, report(2, time_this_iter_s=3.5)) == TrialScheduler.STOP
    row = store.get("slow")
    assert row["verdict"] == "stopped:timeout" and row["value"] == 3.5
    assert row["reason"] == "step took 3.5s > step_timeout_s=2"


def test_asha_runs_after_the_rules_with_its_own_verdict(tmp_path):
    sched, store = make(tmp_path, asha={"grace_period": 1, "reduction_factor": 2}, max_t=8)
    good, bad = StubTrial("good"), StubTrial("bad")
    for t in (good, bad):
        sched.on_trial_add(None, t)
    assert sched.on_trial_result(None, good, report(1, score=0.9)) == TrialScheduler.CONTINUE
    assert sched.on_trial_result(None, bad, report(1, score=0.1)) == TrialScheduler.STOP
    row = store.get("bad")
    assert (row["verdict"], row["rule"], row["value"]) == ("stopped:asha", "asha", 0.1)
    # the rules still come first: a rule violation is reported as the rule, not as ASHA
    sched.on_trial_add(None, StubTrial("hot"))
    assert (
        sched.on_trial_result(None, StubTrial("hot"), report(3, entropy=8, score=0.95)) == TrialScheduler.STOP
    )
    assert store.get("hot")["verdict"] == "stopped:entropy_high"


def test_resume_rebuilds_patience_from_result_json_and_keeps_verdicts(tmp_path):
    trial_dir = tmp_path / "t1"
    trial_dir.mkdir()
    # before the interruption: steps 1-6, with pos length < 20 at 5 and 6
    with open(trial_dir / "result.json", "w") as f:
        for s, p in [(1, 60), (2, 60), (3, 60), (4, 60), (5, 10), (6, 10)]:
            f.write(json.dumps(report(s, pos=p)) + "\n")
    sched, store = make(tmp_path)
    store.record("done", {}, Verdict("healthy", step=6))
    fresh, store2 = make(tmp_path)  # a scheduler unpickled on resume: no trackers
    # restored from the step-6 checkpoint, step 7 is the third low report in a row
    assert (
        fresh.on_trial_result(None, StubTrial("t1", local_path=str(trial_dir)), report(7, pos=10))
        == TrialScheduler.STOP
    )
    assert store2.get("t1")["verdict"] == "stopped:guessing"
    # a trial judged before the interruption is never judged again
    assert fresh.on_trial_result(None, StubTrial("done"), report(7)) == TrialScheduler.STOP
    assert [r["trial_id"] for r in lines(tmp_path)] == ["done", "t1"]


def test_verdicts_file_survives_a_torn_last_line(tmp_path):
    sched, store = make(tmp_path)
    sched.on_trial_result(None, StubTrial("a"), report(3, entropy=9))
    with open(tmp_path / "verdicts.jsonl", "a") as f:
        f.write('{"trial_id": "b", "verd')  # crash mid-write
    reloaded = VerdictStore(tmp_path)
    assert [r["trial_id"] for r in reloaded.rows()] == ["a"]


@pytest.mark.parametrize("op", [">", "<"])
def test_scheduler_never_stops_a_healthy_trial(tmp_path, op):
    rule = Rule("r", M.ENTROPY, "bad", op=op, value=100 if op == ">" else -100)
    sched = CriteriaScheduler([rule], VerdictStore(tmp_path), objective=M.SCORE_MEAN)
    trial = StubTrial("x")
    assert all(sched.on_trial_result(None, trial, report(s)) == TrialScheduler.CONTINUE for s in range(1, 20))


def test_resume_rebuilds_a_window_rule_from_result_json(tmp_path):
    # score_low judges the mean of the last 3 scores at step 5; steps 1-4 ran before the
    # interruption, so the mean needs them: (0.6 + 0.0 + 0.0) / 3 = 0.2 is not < 0.1.
    # Without the replay the mean would be of step 5 alone (0.0) and the rule would fire.
    low = Rule("score_low", M.SCORE_MEAN, "bad", op="<", value=0.1, at_step=5, window=3)
    trial_dir = tmp_path / "t1"
    trial_dir.mkdir()
    with open(trial_dir / "result.json", "w") as f:
        for s, score in [(1, 0.0), (2, 0.0), (3, 0.6), (4, 0.0)]:
            f.write(json.dumps(report(s, score=score)) + "\n")
    sched = CriteriaScheduler([low], VerdictStore(tmp_path), objective=M.SCORE_MEAN, param_keys=KEYS)
    trial = StubTrial("t1", local_path=str(trial_dir))
    assert sched.on_trial_result(None, trial, report(5, score=0.0)) == TrialScheduler.CONTINUE
    assert sched.trackers["t1"].verdict is None


class StubController:
    def __init__(self, *trials):
        self.trials, self.stopped = list(trials), []

    def get_live_trials(self):
        return [t for t in self.trials if t not in self.stopped]

    def stop_trial(self, trial):
        self.stopped.append(trial)


def test_start_clock_runs_only_while_running_and_hands_over_at_the_first_report(tmp_path, monkeypatch):
    now = [100.0]
    monkeypatch.setattr("archer_sweep.engine.scheduler.time.monotonic", lambda: now[0])
    sched, store = make(tmp_path, step_timeout_s=5.0, start_timeout_s=20.0)
    waiting, slow = StubTrial("wait"), StubTrial("slow")
    waiting.status = "PENDING"  # queued for resources: not hanging
    ctl = StubController(waiting, slow)
    sched._stop_hung(ctl)
    now[0] += 19
    sched._stop_hung(ctl)
    assert ctl.stopped == []  # setup may take start_timeout_s, longer than a step
    waiting.status = "RUNNING"  # its clock starts now, not when it was queued
    sched._stop_hung(ctl)  # (Tune calls this every controller step)
    slow.last_result = report(1)
    sched.on_trial_result(None, slow, slow.last_result)  # from here on step_timeout_s applies
    now[0] += 4
    sched._stop_hung(ctl)
    assert ctl.stopped == []
    now[0] += 2
    sched._stop_hung(ctl)
    assert ctl.stopped == [slow]
    assert store.get("slow")["reason"] == "step 2 still running after 6s > step_timeout_s=5"
    now[0] += 15
    sched._stop_hung(ctl)
    assert ctl.stopped == [slow, waiting]
    assert store.get("wait")["step"] == 1
    assert store.get("wait")["reason"] == ("no report (setup and step 1) after 21s > start_timeout_s=20")
