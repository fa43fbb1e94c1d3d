"""verl log parsers: console lines (old and new formats, Ray prefixes, noise) and JSONL."""

import math

import pytest

from trainable import metrics as M
from trainable.backends.verl_logs import (
    StepRecord,
    map_metrics,
    parse_console_line,
    parse_jsonl_line,
    parse_lines,
    parse_number,
)


def test_console_line_archer_format():
    rec = parse_console_line(
        "step:20 - actor/entropy:5.930 - critic/score/mean:0.047 - response_length/pos/mean:192.000\n"
    )
    assert rec == StepRecord(20, {M.ENTROPY: 5.93, M.SCORE_MEAN: 0.047, M.RESP_LEN_POS: 192.0})


def test_console_line_with_ray_prefix_colour_and_repeat_suffix():
    line = (
        "\x1b[36m(TaskRunner pid=811)\x1b[0m step:3 - actor/entropy:np.float64(6.25) - "
        "actor/lr:1e-06 - batch/valid:np.int64(4) [repeated 2x across cluster]"
    )
    rec = parse_console_line(line)
    assert rec.step == 3
    assert rec.metrics == {M.ENTROPY: 6.25, M.LR: 1e-6, M.VALID: 4.0}


def test_console_special_values_and_bad_items():
    rec = parse_console_line(
        "step:7 - actor/grad_norm:nan - perf/x:inf - note:hello - truncated_item - critic/score/mean:-0.5"
    )
    assert math.isnan(rec.metrics["actor/grad_norm"])
    assert rec.metrics["perf/x"] == math.inf
    assert rec.metrics[M.SCORE_MEAN] == -0.5
    assert "note" not in rec.metrics and "truncated_item" not in rec.metrics


@pytest.mark.parametrize(
    "line",
    [
        "",
        "INFO loading model",
        "Training Progress: 40%|####| 2/5",
        "(WorkerDict pid=3) loading shard step:4",  # `step:` not at the record start
        "global_step:5 - actor/entropy:1.0",
        "step:abc - actor/entropy:1.0",
        "mystep:3 - x:1",
    ],
)
def test_console_noise_is_not_a_record(line):
    assert parse_console_line(line) is None


def test_parse_number():
    assert parse_number("np.float32(0.25)") == 0.25
    assert parse_number("True") == 1.0
    assert parse_number("-inf") == -math.inf
    assert parse_number("0.") == 0.0
    assert parse_number("abc") is None
    assert parse_number("tensor(0.5)") is None


def test_jsonl_lines():
    assert parse_jsonl_line(
        '{"step": 4, "elapsed_seconds": 3.2, "data": '
        '{"actor/entropy": 5.5, "flag": true, "name": "x", "l": [1]}}'
    ) == StepRecord(4, {M.ENTROPY: 5.5, "flag": 1.0})
    for bad in [
        '{"step": 4, "data": {"actor/entropy": 5.5',
        "not json",
        '{"step": "4", "data": {}}',
        '{"step": 1.5, "data": {}}',
        '{"data": {}}',
        "[1, 2]",
        "   ",
    ]:
        assert parse_jsonl_line(bad) is None, bad


def test_parse_lines_merges_same_step():
    recs = parse_lines(
        ["step:1 - a:1.0", "noise", "step:1 - b:2.0", "step:2 - a:3.0 - b:4.0", "step:1 - a:9.0"], "console"
    )
    assert recs == [StepRecord(1, {"a": 9.0, "b": 2.0}), StepRecord(2, {"a": 3.0, "b": 4.0})]


def test_map_metrics_renames_and_passes_unknown_keys():
    got = map_metrics(
        {"timing_s/update_actor": 2.0, "val-core/acc": 0.3, "actor/entropy_loss": 4.0, "actor/entropy": 5.0},
        {"timing_s/update_actor": M.TIME_UPDATE, "actor/entropy_loss": M.ENTROPY},
    )
    # The key already spelled the archer way wins; the renamed one is kept under its own name.
    assert got == {M.TIME_UPDATE: 2.0, "val-core/acc": 0.3, "actor/entropy_loss": 4.0, M.ENTROPY: 5.0}
