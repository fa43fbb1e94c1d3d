"""`archer-sweep calibrate`: thresholds fitted on model A's runs with an outcome, then backtested
on model B (another entropy scale): fixed ones stop B's top runs, relative ones do not and
still stop B's runaway and collapse."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from archer_sweep.cli.app import app
from archer_sweep.spec.load import load_spec
from tests import outcome_history as H


def _cli(*args):
    return CliRunner().invoke(app, list(map(str, args)))


@pytest.fixture
def world(tmp_path):
    return {
        "a": H.write(tmp_path / "a.jsonl", "A"),
        "b": H.write(tmp_path / "b.jsonl", "B"),
        "spec": H.write_spec(tmp_path / "s.yaml"),
        "dir": tmp_path,
    }


def _calibrate(world, form, *extra):
    out = world["dir"] / f"{form}.yaml"
    res = _cli(
        "calibrate", world["a"], "--spec", world["spec"], "--outcome", H.VAL, "--within", 0.05,
        "--form", form, "-o", out, *extra,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    return out, res.stdout


def _backtest_b(world, spec):
    res = _cli("backtest", world["b"], "--spec", spec, "--outcome", H.VAL, "--within", 0.05, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    crit = next(p for p in out["policies"] if p["policy"] == "criteria")
    verdicts = {r["run"]: r["criteria"]["verdict"] for r in out["runs"]}
    return crit, verdicts


def test_fixed_thresholds_from_a_stop_bs_top_runs(world):
    spec, text = _calibrate(world, "fixed")
    low = next(r for r in load_spec(spec).rules() if r.name == "entropy_low")
    assert low.relative_to is None and 1 < low.value < 1.49  # A's top runs go down to 1.49
    crit, _ = _backtest_b(world, spec)
    assert crit["outcome_false_stops"] == ["B-top0", "B-top1", "B-top2"]
    assert "| entropy_low | actor/entropy < 1 (after step 5) | 1 (A-collapse) | 0 | 35 |" in text


def test_relative_thresholds_from_a_keep_bs_top_runs_and_stop_its_runaways(world):
    spec, _ = _calibrate(world, "relative")
    rules = {r.name: r for r in load_spec(spec).rules()}
    assert {r.relative_to for r in rules.values()} == {"start"}
    crit, verdicts = _backtest_b(world, spec)
    assert crit["outcome_false_stops"] == [] and crit["outcome_regret"] == 0
    assert verdicts["B-runaway"] == "stopped:entropy_high"
    assert verdicts["B-collapse"] == "stopped:entropy_low"
    assert {verdicts[f"B-top{i}"] for i in range(3)} == {"healthy"}
    # the seed's own rules stop B's top runs (entropy falls below 1)
    crit, _ = _backtest_b(world, world["spec"])
    assert len(crit["outcome_false_stops"]) == 3


def test_auto_prefers_the_relative_form_and_comments_each_rule(world):
    spec, _ = _calibrate(world, "auto")
    text = spec.read_text()
    assert text.startswith("name: outcomes\ntrainable:")  # the rest of the spec is kept
    comments = [line.strip() for line in text.splitlines() if line.strip().startswith("# entropy")]
    assert len(comments) == 2
    assert comments[1].startswith(
        "# entropy_low: closest a top run comes before its outcome step 0.52 × start; margin 0.1."
    )
    assert "Fitted on 6 runs, 3 top (best " + H.VAL + " within 0.05 of the best)" in comments[1]
    assert all(r.relative_to == "start" for r in load_spec(spec).rules())


def test_a_rule_on_a_key_never_logged_says_so(world):
    extra = '  - {name: guessing, metric: response_length/pos/mean, op: "<", value: 20, verdict: bad}\n'
    H.write_spec(world["spec"], H.SPEC + extra)
    spec, text = _calibrate(world, "auto")
    assert "| guessing | not judged |" in text
    assert "cannot be judged on these runs: response_length/pos/mean never logged" in text
    guessing = next(r for r in load_spec(spec).rules() if r.name == "guessing")
    assert guessing.value == 20  # kept as given


def test_good_rules_are_fitted_so_every_top_run_meets_them(world):
    extra = "  - {name: band, metric: actor/entropy, between: [3, 6], at_step: 40, verdict: good}\n"
    H.write_spec(world["spec"], H.SPEC + extra)
    spec, text = _calibrate(world, "relative")
    band = next(r for r in load_spec(spec).rules() if r.name == "band")
    assert band.relative_to == "start" and band.between[0] < 0.62 < band.between[1]
    assert (
        "| band | actor/entropy in [3, 6] (at step 40) | 6 (A-top0, A-top1, A-top2, A-mid, …) | 3 (A-top0, A-top1, A-top2) |"
        in text
    )


def test_drop_rules_are_fitted_to_the_largest_fall_of_a_top_run(world):
    extra = f"  - {{name: val_drop, metric: {H.VAL}, drop: 0.2}}\n"
    H.write_spec(world["spec"], H.SPEC + extra)
    _, text = _calibrate(world, "auto")  # A's top runs only rise: nothing to fit on
    assert "| val_drop |" in text and "kept as given: no top run falls before its best" in text
    # a top run that dips 0.02 before its best, and a run that falls 0.25
    dip = [("top", [0.3, 0.28, 0.4]), ("fall", [0.3, 0.1, 0.05])]
    lines = [
        {"run": rid, "step": 10 * (i + 1), "params": {}, "metrics": {H.VAL: v, "actor/entropy": 3.0}}
        for rid, vals in dip
        for i, v in enumerate(vals)
    ]
    world["a"].write_text("".join(json.dumps(x) + "\n" for x in lines))
    spec, text = _calibrate(world, "auto")
    drop = next(r for r in load_spec(spec).rules() if r.name == "val_drop")
    assert drop.drop == pytest.approx(0.022)  # the dip, 10 % further
    given = f"| val_drop | {H.VAL} falls 0.2 below its best (any step) | 1 (fall) | 0 | 0 |"
    fitted = f" {H.VAL} falls 0.022 below its best (any step) | 1 (fall) | 0 | 10 |"  # stops at step 20
    assert given + fitted in text


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--form", "log"], "error: --form: unknown form 'log' (expected one of auto, fixed, relative)\n"),
        (["--margin", "1"], "error: --margin: 1 is not a share (expected 0 <= margin < 1)\n"),
    ],
)
def test_input_errors_exit_2_with_one_line(world, args, text):
    res = _cli("calibrate", world["a"], "--spec", world["spec"], "--outcome", H.VAL, *args)
    assert res.exit_code == 2 and res.stderr == text
