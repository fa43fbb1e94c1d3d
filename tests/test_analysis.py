"""analyze: per-trial rows from a results directory; trends and checkpoints."""

import json

import pytest
from typer.testing import CliRunner

from archer_sweep.cli.app import app
from archer_sweep.results.analysis import checkpoints, compute, load_sweep, summarize, trend
from archer_sweep.results.history import load_history, read_verdicts
from tests.sweep_data import fake_sweep, handmade_sweep
from trainable import metrics as M


def _cli(*args):
    return CliRunner().invoke(app, list(map(str, args)))


@pytest.mark.parametrize(
    "values,word",
    [
        ([5.93, 7.35, 7.17, 8.01], "rising"),  # the seed's V1 entropy
        ([0.154, 0.040, 0.022, 0.015], "collapsed"),  # the seed's V1 logical_connectives
        ([192, 14, 16, 22], "collapsed"),  # the seed's V1 pos resp len
        ([0.5, 0.4, 0.3], "falling"),
        ([4.0, 4.1, 3.95, 4.02], "stable"),
        ([], "no data"),
    ],
)
def test_trend_words(values, word):
    assert trend(values) == word


def test_checkpoints_spread_from_first_to_last():
    assert checkpoints([20, 61, 102, 148]) == [20, 61, 102, 148]
    assert checkpoints(list(range(1, 31))) == [1, 11, 20, 30]


def test_analyze_handmade_rows_match_verdicts(tmp_path):
    d = handmade_sweep(tmp_path)
    rows = {r.run_id: r for r in summarize(load_sweep(d))}
    assert rows["t_high"].status == "stopped" and rows["t_high"].rule == "entropy_high"
    assert (rows["t_high"].stop_step, rows["t_high"].stop_value) == (3, 7.0)
    assert rows["t_ok"].status == "finished" and rows["t_ok"].stop_step is None
    assert rows["t_ok"].last[M.SCORE_MEAN] == 0.5 and rows["t_ok"].best[M.SCORE_MEAN] == 0.5
    assert rows["t_high"].best[M.SCORE_MEAN] == 0.2  # objective: mode max
    assert rows["t_high"].best[M.ENTROPY] == 5.0  # two-sided: nearest the good band [3.8, 5.5]
    assert rows["t_band"].verdict == "unhealthy:entropy_band" and rows["t_band"].stop_step == 4
    assert rows["t_ok"].params == {"algorithm.entropy_coeff": 0.005, "algorithm.kl_loss_coef": 0.01}
    # 14-step budget: t_high stopped at 3 saves 11; used = 3 + 4 + 4
    assert compute(load_sweep(d)) == (11, 11)


def test_analyze_cli_table_and_json(tmp_path):
    d = handmade_sweep(tmp_path)
    res = _cli("analyze", d)
    assert res.exit_code == 0, res.output
    assert (
        "| t_high | 0.03 | 0.01 | stopped | stopped:entropy_high | entropy_high @ 3 = 7 | 3 |" in res.output
    )
    out = json.loads(_cli("analyze", d, "--json").output)
    assert [t["verdict"] for t in out["trials"]] == [
        "unhealthy:entropy_band",
        "stopped:entropy_high",
        "healthy",
    ]  # by trial dir


def test_analyze_input_errors_exit_2(tmp_path):
    res = _cli("analyze", tmp_path / "nope")
    assert res.exit_code == 2 and res.output.strip() == f"error: {tmp_path / 'nope'}: no such directory"
    res = _cli("analyze", tmp_path)
    assert res.exit_code == 2 and "not a results directory" in res.output
    assert len(res.output.strip().splitlines()) == 1


@pytest.mark.slow
def test_analyze_a_sweep_the_engine_ran():
    d = fake_sweep()
    verdicts = read_verdicts(d)
    out = json.loads(_cli("analyze", d, "--json").output)
    assert {t["run_id"]: t["verdict"] for t in out["trials"]} == {
        k: v["verdict"] for k, v in verdicts.items()
    }
    for t in out["trials"]:
        v = verdicts[t["run_id"]]
        if v["verdict"].startswith("stopped"):
            assert t["stop_step"] == v["step"] == t["steps"]
    # the engine's results dir reads as history too (params from params.json by the space keys)
    runs = load_history(d)
    assert all(set(r.params) == {"algorithm.entropy_coeff", "algorithm.kl_loss_coef"} for r in runs)


def test_stop_savings_count_unrun_steps_at_each_trials_own_step_time():
    from pathlib import Path

    from archer_sweep.results.analysis import Sweep, stop_savings
    from archer_sweep.results.history import Run

    def run(rid, verdict, n, secs):
        steps = [{M.STEP: s, M.TIME_STEP: t} for s, t in zip(range(1, n + 1), secs)]
        return Run(rid, {}, steps, {"verdict": verdict})

    runs = [
        run("a", "stopped:entropy_high", 4, [2.0] * 4),  # 6 steps left at 2 s
        run("b", "healthy", 10, [9.0] * 10),
        run("c", "stopped:timeout", 2, [30.0, float("nan")]),  # 8 left at 30 s
        run("d", "unhealthy:score_good", 10, [1.0] * 10),
    ]
    sweep = Sweep(Path("."), "s", None, runs)
    assert stop_savings(sweep, budget=10) == (2, 14, 6 * 2.0 + 8 * 30.0)
    assert stop_savings(sweep) == (2, 14, 252.0)  # budget: the longest trial
    assert compute(sweep) == (26, 14)
    assert stop_savings(Sweep(Path("."), "s", None, runs[1:2])) == (0, 0, 0.0)
