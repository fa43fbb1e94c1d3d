"""`backtest --outcome KEY --within X`: every policy scored by an outcome the rules never see."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from archer_sweep.cli.app import app
from archer_sweep.planning import outcome as oc
from archer_sweep.results.runs import Run
from tests import outcome_history as H
from trainable import metrics as M


def _cli(*args):
    return CliRunner().invoke(app, list(map(str, args)))


def _run(rid, vals):
    """Eval every other step: vals[i] at step 2(i+1)."""
    return Run(rid, {}, [{M.STEP: 2 * i + 2, H.VAL: v} for i, v in enumerate(vals)])


def test_outcome_is_the_best_value_and_its_step_on_sparse_reports():
    r = _run("a", [0.1, 0.3, 0.3, 0.2])
    assert oc.run_outcome(r, oc.OutcomeSpec(H.VAL)) == oc.RunOutcome("a", 0.3, 4)
    assert oc.run_outcome(r, oc.OutcomeSpec(H.VAL, reduce="last")) == oc.RunOutcome("a", 0.2, 8)
    assert oc.run_outcome(Run("b", {}, [{M.STEP: 1}]), oc.OutcomeSpec(H.VAL)).value is None


def test_a_stop_after_the_best_step_keeps_the_outcome():
    outs = [oc.RunOutcome("a", 0.5, 10), oc.RunOutcome("b", 0.48, 20), oc.RunOutcome("c", 0.2, 5)]
    s = oc.summarize(outs, {"a": 10, "b": 15, "c": 1}, within=0.05)
    assert s.kept_best == 0.5 and s.regret == 0 and s.false_stops == ["b"]
    s = oc.summarize(outs, {"a": 9, "b": 15, "c": None}, within=0.0)
    assert s.kept_best == 0.2 and s.regret == pytest.approx(0.3) and s.false_stops == ["a"]
    assert math.isinf(oc.summarize(outs, {"a": 1, "b": 1, "c": 1}, 0).regret)


def test_seed_thresholds_on_the_other_model_stop_its_top_runs(tmp_path):
    hist, spec = H.write(tmp_path / "b.jsonl", "B"), H.write_spec(tmp_path / "s.yaml")
    res = _cli("backtest", hist, "--spec", spec, "--outcome", H.VAL, "--within", 0.05, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    pol = {p["policy"]: p for p in out["policies"]}
    # entropy_low (< 1) stops every B run at step 10: its top runs (best 0.64 @ 60) are lost
    assert pol["criteria"]["outcome_false_stops"] == ["B-top0", "B-top1", "B-top2"]
    # what it keeps: the collapse, stopped at its best (its first eval, step 10)
    assert pol["criteria"]["outcome_kept_best"] == pytest.approx(0.3 - 0.1 / 6)
    assert pol["criteria"]["outcome_regret"] == pytest.approx(0.64 - (0.3 - 0.1 / 6))
    assert pol["none"]["outcome_regret"] == 0 and pol["none"]["outcome_false_stops"] == []
    row = next(r for r in out["runs"] if r["run"] == "B-top2")
    assert row["outcome"] == {"value": pytest.approx(0.64), "step": 60}
    md = _cli("backtest", hist, "--spec", spec, "--outcome", H.VAL, "--within", 0.05).stdout
    assert "| outcome (best @ step) |" in md and "outcome-false-stops" in md
    assert "3 (B-top0, B-top1, B-top2)" in md
    assert "top runs (within 0.05 of the best): B-top2, B-top1, B-top0" in md


def test_final_value_outcome_is_kept_only_by_running_to_the_end(tmp_path):
    hist, spec = H.write(tmp_path / "b.jsonl", "B"), H.write_spec(tmp_path / "s.yaml")
    args = ["--outcome", H.VAL, "--within", 0.5, "--outcome-reduce", "last", "--json"]
    out = json.loads(_cli("backtest", hist, "--spec", spec, *args).stdout)
    pol = {p["policy"]: p for p in out["policies"]}
    # the collapse, stopped at step 10, kept its best (step 10) above, but not its final value
    assert "B-collapse" in pol["criteria"]["outcome_false_stops"]
    assert pol["criteria"]["outcome_kept_best"] == pytest.approx(0.3 - 0.25)  # only the runaway ran on
    assert out["outcome"]["reduce"] == "last"


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (
            ["--outcome", H.VAL, "--outcome-reduce", "max"],
            "error: --outcome-reduce: unknown 'max' (expected one of best, last)\n",
        ),
        (
            ["--outcome", "val-core/nope"],
            f"error: --outcome: no run reports val-core/nope (expected e.g. {H.VAL})\n",
        ),
        (["--within", "0.1"], "error: --within: given without --outcome (expected --outcome KEY)\n"),
        (
            ["--outcome", H.VAL, "--within", "-1"],
            "error: --within: -1 is not a distance (expected a number >= 0)\n",
        ),
    ],
)
def test_outcome_input_errors_exit_2_with_one_line(tmp_path, args, text):
    hist, spec = H.write(tmp_path / "b.jsonl", "B"), H.write_spec(tmp_path / "s.yaml")
    res = _cli("backtest", hist, "--spec", spec, *args)
    assert res.exit_code == 2 and res.stderr == text
