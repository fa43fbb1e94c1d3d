"""Backtest: each policy on hand-made histories with known answers, and the seed's V1."""

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archer_sweep.cli.app import app
from archer_sweep.criteria import Forecast, Rule
from archer_sweep.planning.backtest import Settings, backtest, replay_asha, replay_median
from archer_sweep.results.history import Run
from trainable import metrics as M

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent


def _run(rid, values, start=1):
    return Run(rid, {}, [{M.STEP: s, M.SCORE_MEAN: v} for s, v in enumerate(values, start=start)])


def _stops(outcomes):
    return {o.run_id: o.stop_step for o in outcomes}


def test_asha_stops_below_the_rung_cutoff():
    runs = [_run("a", [4] * 8), _run("b", [3] * 8), _run("c", [2] * 8), _run("d", [1] * 8)]
    st = Settings(metric=M.SCORE_MEAN, grace_period=2, reduction_factor=2)
    # Rung at step 2: a is first (no cutoff); b, c, d each fall below the median of those before.
    assert _stops(replay_asha(runs, [], st)) == {"a": None, "b": 2, "c": 2, "d": 2}


def test_asha_mode_min_flips_the_sign():
    runs = [_run("a", [4] * 8), _run("b", [3] * 8)]
    st = Settings(metric=M.SCORE_MEAN, mode="min", grace_period=2, reduction_factor=2)
    assert _stops(replay_asha(runs, [], st)) == {"a": None, "b": None}
    st = Settings(metric=M.SCORE_MEAN, mode="max", grace_period=2, reduction_factor=2)
    assert _stops(replay_asha(runs, [], st)) == {"a": None, "b": 2}


def test_median_stops_a_run_worse_than_the_median_of_running_means():
    runs = [_run("a", [3] * 4), _run("b", [2] * 4), _run("c", [1] * 4), _run("d", [0] * 4)]
    st = Settings(metric=M.SCORE_MEAN, grace_period=1, min_samples_required=3)
    # Only d ever sees three other runs at its step (median 2 > its best 0).
    assert _stops(replay_median(runs, [], st)) == {"a": None, "b": None, "c": None, "d": 1}


def test_regret_counts_a_late_bloomer_lost_by_asha():
    runs = [_run("steady", [3] * 8), _run("late", [1, 1, 1, 1, 10, 10, 10, 10])]
    st = Settings(metric=M.SCORE_MEAN, grace_period=2, reduction_factor=2)
    bt = backtest(runs, [], st)
    s = {x.policy: x for x in bt.summaries}
    assert _stops(bt.outcomes["asha"]) == {"steady": None, "late": 2}
    assert s["none"].regret == 0 and s["none"].best_healthy == 10
    assert s["asha"].regret == pytest.approx(7) and s["asha"].steps_used == 10
    assert s["asha"].fraction_saved == pytest.approx(1 - 10 / 16)


def test_criteria_policy_uses_the_rules_and_loses_healthy_runs_only_when_they_fire():
    rules = [
        Rule("entropy_high", M.ENTROPY, "bad", op=">", value=7, after_step=1),
        Rule("score_ok", M.SCORE_MEAN, "good", op=">", value=0.2),
    ]
    bad = Run("bad", {}, [{M.STEP: s, M.ENTROPY: e, M.SCORE_MEAN: 0.9} for s, e in [(1, 5), (2, 8), (3, 8)]])
    good = Run("good", {}, [{M.STEP: s, M.ENTROPY: 5, M.SCORE_MEAN: 0.5} for s in (1, 2, 3)])
    bt = backtest([bad, good], rules, Settings(metric=M.SCORE_MEAN))
    assert bt.health == {"bad": "stopped:entropy_high", "good": "healthy"}
    crit = {o.run_id: o for o in bt.outcomes["criteria"]}
    assert crit["bad"].verdict == "stopped:entropy_high" and crit["bad"].stop_step == 2
    s = {x.policy: x for x in bt.summaries}
    assert s["criteria"].steps_used == 5 and s["criteria"].regret == 0
    assert s["none"].steps_used == 6 and s["none"].fraction_saved == 0


def test_all_healthy_runs_lost_is_infinite_regret():
    runs = [_run("a", [4] * 8), _run("b", [3] * 8)]
    bt = backtest(runs, [Rule("low", M.SCORE_MEAN, "bad", op="<", value=100)], Settings(metric=M.SCORE_MEAN))
    s = {x.policy: x for x in bt.summaries}
    assert s["criteria"].regret is None  # no run is healthy in full: nothing to lose
    bt = backtest(runs, [], Settings(metric=M.SCORE_MEAN, grace_period=2, reduction_factor=2))
    assert {x.policy: x for x in bt.summaries}["asha"].regret == 0


def _cli(*args):
    return CliRunner().invoke(app, list(map(str, args)))


@pytest.mark.parametrize("spec", [ROOT / "sweeps" / "seed-v2.yaml", DATA / "seed_criteria.yaml"])
def test_seed_v1_is_stopped_by_the_entropy_rule_at_step_61(spec):
    if not spec.exists():
        pytest.skip(f"{spec} not written yet")
    res = _cli("backtest", DATA / "seed_v1.jsonl", "--spec", spec, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output[res.output.index("{") :])
    (run,) = out["runs"]
    assert run["criteria"]["stop_step"] == 61 and run["criteria"]["verdict"].startswith("stopped:entropy")
    crit = next(p for p in out["policies"] if p["policy"] == "criteria")
    assert crit["steps_used"] == 61 and crit["steps_saved"] == 148 - 61
    text = _cli("backtest", DATA / "seed_v1.jsonl", "--spec", spec).output
    assert "| criteria | 61 | 87 | 58.8% |" in text


def test_cli_input_errors_exit_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    res = _cli("backtest", bad, "--spec", DATA / "seed_criteria.yaml")
    assert res.exit_code == 2 and "bad.jsonl:1: not a JSON line" in res.output
    res = _cli("backtest", tmp_path / "missing.jsonl", "--spec", DATA / "seed_criteria.yaml")
    assert res.exit_code == 2 and "missing.jsonl: no such file or directory" in res.output
    res = _cli("backtest", DATA / "seed_v1.jsonl", "--spec", tmp_path / "nospec.yaml")
    assert res.exit_code == 2 and "nospec.yaml: no such spec file" in res.output


def test_backtest_reads_a_results_dir(tmp_path):
    from tests.sweep_data import handmade_sweep

    d = handmade_sweep(tmp_path)
    res = _cli("backtest", d, "--spec", d / "spec.yaml", "--json")
    assert res.exit_code == 0, res.output
    runs = {r["run"]: r for r in json.loads(res.output[res.output.index("{") :])["runs"]}
    assert runs["t_high"]["criteria"] == {"verdict": "stopped:entropy_high", "stop_step": 3, "steps_used": 3}
    assert runs["t_ok"]["criteria"]["stop_step"] is None


class _Trial:
    """What Ray's schedulers read from a trial in these calls: an id (and hashability)."""

    def __init__(self, tid):
        self.trial_id = tid
        self.status = "RUNNING"


class _Controller:
    def get_live_trials(self):
        return []


def _ray_reference(runs, scheduler):
    """Drive Ray's own scheduler object the way Tune does (result, then complete at the end)."""
    trials = [_Trial(r.run_id) for r in runs]
    for t in trials:
        scheduler.on_trial_add(_Controller(), t)
    stops, ended = {}, set()
    events = sorted(
        ((int(s[M.STEP]), i, s) for i, r in enumerate(runs) for s in r.steps), key=lambda e: (e[0], e[1])
    )
    for step, i, rep in events:
        if i in ended:
            continue
        result = {"step": step, M.SCORE_MEAN: rep[M.SCORE_MEAN]}
        decision = scheduler.on_trial_result(_Controller(), trials[i], result)
        if decision == "STOP" or step == runs[i].last_step:
            if decision == "STOP" and step < runs[i].last_step:
                stops[runs[i].run_id] = step
            scheduler.on_trial_complete(_Controller(), trials[i], result)
            ended.add(i)
    return stops


@pytest.mark.parametrize("seed", range(6))
def test_replays_agree_with_rays_own_schedulers(seed):
    import random

    from ray.tune.schedulers import AsyncHyperBandScheduler, MedianStoppingRule

    rng = random.Random(seed)
    runs = []
    for k in range(7):
        level, n = rng.uniform(0, 1), rng.randint(6, 20)
        runs.append(_run(f"r{k}", [level + rng.gauss(0, 0.2) for _ in range(n)]))
    st = Settings(metric=M.SCORE_MEAN, grace_period=2, reduction_factor=2, min_samples_required=3)
    max_t = max(r.last_step for r in runs)
    asha = AsyncHyperBandScheduler(
        time_attr="step", metric=M.SCORE_MEAN, mode="max", max_t=max_t, grace_period=2, reduction_factor=2
    )
    mine = {k: v for k, v in _stops(replay_asha(runs, [], st)).items() if v is not None}
    assert mine == _ray_reference(runs, asha)
    median = MedianStoppingRule(
        time_attr="step", metric=M.SCORE_MEAN, mode="max", grace_period=2, min_samples_required=3
    )
    mine = {k: v for k, v in _stops(replay_median(runs, [], st)).items() if v is not None}
    assert mine == _ray_reference(runs, median)


# ---------------------------------------------------------------- decided, forecast, sparse


def _milestones(path):
    """A write-up's milestone table as history: a handful of steps per run, different keys at
    different steps; v0 was recorded with its entropy only."""
    E, S, L, C = M.ENTROPY, M.SCORE_MEAN, M.RESP_LEN_POS, M.LOGICAL_CONNECTIVES
    runs = {
        "v2": {1: {E: 3.6, S: 0.22}, 10: {E: 4.0, L: 57, C: 3.0}, 20: {S: 0.3, E: 4.5}, 40: {E: 5.0, S: 0.35}}
        | {60: {L: 60, C: 2.5, S: 0.4}},
        "v1": {1: {E: 3.6, S: 0.22}, 10: {E: 5.5, L: 50}, 20: {E: 7.4, S: 0.1}, 40: {E: 8.0}},
        "v0": {s: {E: 4.5} for s in (10, 20, 40, 60)},
        "v3": {
            1: {E: 3.6, S: 0.22},
            20: {E: 4.5, L: 55, C: 2.8},
            40: {E: 4.8, S: 0.1},
            60: {S: 0.3, L: 60, C: 3},
        },
    }
    lines = [
        {"run": r, "step": s, "params": {"algorithm.entropy_coeff": 0.01}, "metrics": m}
        for r, steps in runs.items()
        for s, m in steps.items()
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_milestone_history_is_judged_by_its_real_rules(tmp_path, caplog):
    history = _milestones(tmp_path / "milestones.jsonl")
    with caplog.at_level("WARNING"):
        res = _cli("backtest", history, "--spec", ROOT / "sweeps" / "replay.yaml", "--json")
    assert res.exit_code == 0, res.output
    runs = {r["run"]: r for r in json.loads(res.output[res.output.index("{") :])["runs"]}
    assert {k: r["health"] for k, r in runs.items()} == {
        "v2": "healthy",
        "v1": "stopped:entropy_high",
        "v0": "healthy",  # only entropy recorded: judged by the entropy rules
        "v3": "unhealthy:score_good",
    }
    assert runs["v1"]["criteria"]["stop_step"] == 20
    assert runs["v3"]["criteria"] | {"reason": None} == {
        "verdict": "unhealthy:score_good",
        "stop_step": 40,
        "steps_used": 40,
        "reason": None,
    }
    assert "nan" not in res.output
    warned = [r.getMessage() for r in caplog.records if "never reports" in r.getMessage()]
    assert sorted(warned) == [
        f"run {r} ({history}) never reports {k}: the rules on it do not apply"
        for r, k in [("v0", M.SCORE_MEAN), ("v0", M.RESP_LEN_POS), ("v0", M.LOGICAL_CONNECTIVES)]
        + [("v1", M.LOGICAL_CONNECTIVES)]
    ]


def test_stop_when_decided_counts_the_steps_after_the_judged_step_as_saved():
    good = Rule("score_good", M.SCORE_MEAN, "good", op=">", value=0.2, at_step=4)
    runs = [_run("miss", [0.3, 0.3, 0.3, 0.1, 0.9, 0.9, 0.9, 0.9]), _run("ok", [0.3] * 8)]
    for decided, used in ((True, 4 + 8), (False, 16)):
        st = Settings(metric=M.SCORE_MEAN, stop_when_decided=decided)
        bt = backtest(runs, [good], st, policies=("criteria",))
        miss = bt.outcomes["criteria"][0]
        assert miss.verdict == bt.health["miss"] == "unhealthy:score_good"
        assert (miss.stop_step, miss.steps_used) == ((4, 4) if decided else (None, 8))
        assert bt.summaries[0].steps_used == used and bt.summaries[0].regret == 0


def test_forecast_stops_replay_and_health_is_judged_without_them():
    rule = Rule(
        "entropy_high", M.ENTROPY, "bad", op=">", value=7, after_step=1, forecast=Forecast(4, 10, 0.9)
    )
    climb = Run("climb", {}, [{M.STEP: s, M.ENTROPY: 4 + 0.3 * s, M.SCORE_MEAN: 0.5} for s in range(1, 13)])
    turn = Run(
        "turn", {}, [{M.STEP: s, M.ENTROPY: 4 + 0.3 * min(s, 6), M.SCORE_MEAN: 0.5} for s in range(1, 13)]
    )
    bt = backtest([climb, turn], [rule], Settings(metric=M.SCORE_MEAN), policies=("criteria",))
    out = {o.run_id: o for o in bt.outcomes["criteria"]}
    assert bt.health == {"climb": "stopped:entropy_high", "turn": "healthy"}
    assert out["climb"].stop_step == 5 and out["climb"].reason.startswith("forecast: crosses 7 at step ~")
    # a climb that levels off at 5.8 is stopped by the forecast: a false stop, and the health
    # (full run, forecasts off) is what makes it one
    assert out["turn"].stop_step == 5 and out["turn"].verdict == "stopped:entropy_high"
    assert bt.summaries[0].regret == math.inf


def test_next_judges_recorded_runs_like_backtest(tmp_path, caplog):
    from archer_sweep.planning.nextver import from_runs
    from archer_sweep.results.history import load_histories
    from archer_sweep.spec.load import load_spec

    history = _milestones(tmp_path / "milestones.jsonl")
    spec = load_spec(ROOT / "sweeps" / "replay.yaml")
    with caplog.at_level("WARNING"):
        past = {p.run_id: p.verdict for p in from_runs(load_histories([history]), spec.rules(), M.SCORE_MEAN)}
    assert past == {
        "v2": "healthy",
        "v1": "stopped:entropy_high",
        "v0": "healthy",
        "v3": "unhealthy:score_good",
    }
    assert f"run v0 ({history}) never reports {M.SCORE_MEAN}: the rules on it do not apply" in caplog.text
