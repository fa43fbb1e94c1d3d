"""History readers: every source gives the same Run form; bad input names file and line."""

import json
import logging
import math
from pathlib import Path

import pytest

from archer_sweep.errors import UserError
from archer_sweep.results.history import Run, load_histories, load_history, write_history
from trainable import metrics as M

DATA = Path(__file__).parent / "data"


def test_seed_history_reads_the_v1_table():
    (run,) = load_history(DATA / "seed_v1.jsonl")
    assert run.run_id == "v1"
    assert run.params == {"algorithm.entropy_coeff": 0.01, "algorithm.kl_loss_coef": 0.01}
    assert run.series(M.ENTROPY) == ([20, 61, 102, 148], [5.93, 7.35, 7.17, 8.01])
    assert run.series(M.LOGICAL_CONNECTIVES)[1] == [0.154, 0.040, 0.022, 0.015]
    assert run.last_step == 148


def test_round_trip_keeps_params_steps_verdict_and_nan(tmp_path):
    runs = [
        Run(
            "a",
            {"algorithm.entropy_coeff": 0.003},
            [{M.STEP: 1, M.ENTROPY: 5.0}, {M.STEP: 2, M.ENTROPY: math.nan}],
            {"verdict": "stopped:nan", "rule": None, "step": 2},
        ),
        Run("b", {"algorithm.entropy_coeff": 0.02}, [{M.STEP: 1, M.SCORE_MEAN: 0.5}]),
    ]
    back = load_history(write_history(runs, tmp_path / "h.jsonl"))
    assert [r.run_id for r in back] == ["a", "b"]
    assert back[0].params == runs[0].params and back[0].verdict["verdict"] == "stopped:nan"
    assert math.isnan(back[0].steps[1][M.ENTROPY])
    assert back[1].steps == [{M.STEP: 1, M.SCORE_MEAN: 0.5}]


def test_malformed_line_names_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"run": "a", "step": 1, "params": {}, "metrics": {}}\n{"run": "a", "step": 2,\n')
    with pytest.raises(UserError, match=r"bad\.jsonl:2: not a JSON line"):
        load_history(p)


def test_line_without_step_or_metrics_is_an_error(tmp_path):
    p = tmp_path / "h.jsonl"
    p.write_text('{"run": "a", "params": {}, "metrics": {}}\n')
    with pytest.raises(UserError, match=r"h\.jsonl:1: history line lacks \['step'\]"):
        load_history(p)
    p.write_text('{"run": "a", "step": "x", "metrics": {}}\n')
    with pytest.raises(UserError, match=r"h\.jsonl:1: missing or non-numeric 'step'"):
        load_history(p)


def test_missing_steps_are_kept_with_a_warning(tmp_path, caplog):
    p = tmp_path / "gappy.jsonl"
    p.write_text(
        "".join(
            json.dumps({"run": "g", "step": s, "params": {}, "metrics": {M.ENTROPY: 4.0}}) + "\n"
            for s in (1, 2, 3, 7, 8)
        )
    )
    with caplog.at_level(logging.WARNING):
        (run,) = load_history(p)
    assert [s[M.STEP] for s in run.steps] == [1, 2, 3, 7, 8]
    assert "missing steps after step(s) 3" in caplog.text


def test_verl_jsonl_file_logger(tmp_path):
    p = tmp_path / "exp-v2.jsonl"
    p.write_text(
        '{"step": 1, "data": {"actor/entropy": 5.5, "critic/score/mean": 0.1}}\n'
        '{"step": 2, "data": {"actor/entropy": 5.1, "critic/score/mean": 0.2}}\n'
    )
    (run,) = load_history(p)
    assert run.run_id == "exp-v2" and run.series(M.SCORE_MEAN) == ([1, 2], [0.1, 0.2])


def test_verl_console_lines_among_other_output(tmp_path):
    p = tmp_path / "train.log"
    p.write_text(
        "(TaskRunner) starting\n"
        "step:1 - actor/entropy:5.930 - critic/score/mean:0.047 - timing_s/gen:12.5\n"
        "some warning: foo:bar\n"
        "(TaskRunner pid=1) step:2 - actor/entropy:7.350 - critic/score/mean:0.217\n"
    )
    (run,) = load_history(p)
    assert run.series(M.ENTROPY) == ([1, 2], [5.93, 7.35])
    assert run.steps[0][M.TIME_GEN] == 12.5


def test_console_log_without_steps_is_an_error(tmp_path):
    p = tmp_path / "empty.log"
    p.write_text("nothing here\n")
    with pytest.raises(UserError, match=r"empty\.log: no `step:N - key:value` lines found"):
        load_history(p)


def test_wandb_offline_run_written_by_installed_wandb():
    # tests/data/wandb_offline was written by wandb 0.31 (WANDB_MODE=offline, config + 3 logs).
    (run,) = load_history(DATA / "wandb_offline")
    assert run.params == {"algorithm.entropy_coeff": 0.01}
    assert run.series(M.ENTROPY) == ([1, 2, 3], [6.0, 7.0, 8.0])


def test_missing_path_and_non_results_dir(tmp_path):
    with pytest.raises(UserError, match=r"nope: no such file or directory"):
        load_history(tmp_path / "nope")
    with pytest.raises(UserError, match=r"not a results directory"):
        load_history(tmp_path)


def test_results_dir_reads_trials_and_verdicts(tmp_path):
    root = tmp_path / "sweep"
    t = root / "GRPOTrainable_abc_00000"
    t.mkdir(parents=True)
    (root / "spec.yaml").write_text(
        "name: s\nsearch:\n  space:\n    algorithm.entropy_coeff: "
        "{type: loguniform, low: 1.0e-4, high: 0.1}\n"
    )
    (t / "params.json").write_text(json.dumps({"algorithm.entropy_coeff": 0.004, "other": 1}))
    (t / "result.json").write_text(
        "".join(
            json.dumps(
                {
                    "trial_id": "abc_00000",
                    "step": s,
                    "training_iteration": s,
                    M.ENTROPY: 5.0 + s,
                    "config": {"x": 1},
                }
            )
            + "\n"
            for s in (1, 2)
        )
    )
    (root / "verdicts.jsonl").write_text(
        json.dumps({"trial_id": "abc_00000", "verdict": "healthy", "params": {}, "rule": None, "step": 2})
        + "\n"
        + json.dumps(
            {"trial_id": "abc_00001", "verdict": "error", "params": {"algorithm.entropy_coeff": 0.03}}
        )
        + "\n"
    )
    runs = load_history(root)
    assert [r.run_id for r in runs] == ["abc_00000", "abc_00001"]
    assert runs[0].params == {"algorithm.entropy_coeff": 0.004}
    assert runs[0].verdict_name == "healthy" and runs[0].series(M.ENTROPY) == ([1, 2], [6.0, 7.0])
    assert runs[1].steps == [] and runs[1].verdict_name == "error"


def test_clashing_run_ids_are_made_unique(tmp_path):
    a = write_history([Run("v1", {}, [{M.STEP: 1}])], tmp_path / "a.jsonl")
    b = write_history([Run("v1", {}, [{M.STEP: 1}])], tmp_path / "b.jsonl")
    assert [r.run_id for r in load_histories([a, b])] == ["v1", "b:v1"]


def test_wandb_run_written_by_rays_wandb_logger_spans_blocks():
    # tests/data/wandb_ray: Ray 2.60's WandbLoggerCallback (WANDB_MODE=offline) for a trial the
    # engine stopped at step 18 (entropy 7.0348 > 7); 47 KB, so records cross a 32 KiB block.
    (run,) = load_history(DATA / "wandb_ray")
    assert run.params == {
        "algorithm.entropy_coeff": 0.01,
        "algorithm.kl_loss_coef": 0.01,
        "trainer.total_steps": 30,
    }
    xs, ys = run.series(M.ENTROPY)
    assert xs == list(range(1, 19)) and ys[-1] == pytest.approx(7.034815933561509)
    assert all(M.SCORE_MEAN in s for s in run.steps)


def test_corrupt_wandb_file_is_a_user_error(tmp_path):
    p = tmp_path / "run-x.wandb"
    p.write_bytes(b"not a wandb file")
    with pytest.raises(UserError, match=r"run-x\.wandb: not a W&B run file \(bad header\)"):
        load_history(p)


def test_results_dir_tolerates_a_torn_last_line_only(tmp_path, caplog):
    root = tmp_path / "sweep"
    t = root / "T_0"
    t.mkdir(parents=True)
    good = json.dumps({"trial_id": "T_0", "step": 1, M.ENTROPY: 5.0})
    (t / "result.json").write_text(good + "\n" + '{"trial_id": "T_0", "st')
    with caplog.at_level(logging.WARNING):
        (run,) = load_history(root)
    assert run.steps == [{M.ENTROPY: 5.0, M.STEP: 1}] and "torn last line skipped" in caplog.text
    (t / "result.json").write_text('{"trial_id": "T_0", "st\n' + good + "\n")
    with pytest.raises(UserError, match=r"result\.json:1: not a JSON line"):
        load_history(root)
