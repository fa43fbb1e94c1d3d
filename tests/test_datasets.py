"""verl-layout parquet files: read into rows; a bad file is one error naming the file and column."""

from __future__ import annotations

import pytest

pytest.importorskip("pyarrow")
import pyarrow as pa

from tests.hf_data_helpers import task_rows, write_parquet
from trainable import data_rewards, datasets
from trainable.config import ConfigError

KEY = "data.train_files"


def read(path):
    return datasets.read_rows(path, KEY, data_rewards.reward_name)


def test_rows_are_read_with_messages_truth_source_and_extra(tmp_path):
    rows = read(write_parquet(tmp_path / "t.parquet", task_rows(3)))
    assert len(rows) == 3
    assert rows[0].messages == ({"role": "user", "content": "19 + 3 * 4 ="},)
    assert (rows[0].ground_truth, rows[0].data_source) == ("31", "archer-sweep/arithmetic")
    assert rows[2].extra_info == {"split": "train", "index": 2}


def test_integer_ground_truth_and_no_extra_info_are_accepted(tmp_path):
    raw = [{k: v for k, v in r.items() if k != "extra_info"} for r in task_rows(2)]
    for r in raw:
        r["reward_model"] = {"ground_truth": int(r["reward_model"]["ground_truth"])}
    rows = read(write_parquet(tmp_path / "t.parquet", raw))
    assert [r.ground_truth for r in rows] == ["31", "59"] and rows[0].extra_info == {}


def _without(column):
    return [{k: v for k, v in r.items() if k != column} for r in task_rows(2)]


def _with(column, value):
    return [{**r, column: value} for r in task_rows(2)]


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        (
            _without("prompt"),
            "column `prompt` is missing (expected verl's layout: prompt, reward_model.ground_truth, data_source)",
        ),
        (
            _without("reward_model"),
            "column `reward_model` is missing (expected verl's layout: prompt, reward_model.ground_truth, data_source)",
        ),
        (
            _with("prompt", "19 + 3 * 4 ="),
            "column `prompt` has type string (expected chat messages: a list of {role, content} strings)",
        ),
        (
            _with("reward_model", {"answer": "1"}),
            "column `reward_model` has type struct<answer: string> (expected a struct with ground_truth (a string or an integer))",
        ),
        (
            _with("reward_model", {"ground_truth": 1.5}),
            "column `reward_model` has type struct<ground_truth: double> (expected a struct with ground_truth (a string or an integer))",
        ),
        (_with("data_source", 3), "column `data_source` has type int64 (expected a string)"),
        (
            _with("data_source", "gsm9k"),
            "column `data_source`: no reward for data_source 'gsm9k' (expected one of archer-sweep/arithmetic, lighteval/MATH, DigitalLearningGmbH/MATH-lighteval, HuggingFaceH4/MATH-500, math_dapo, math, aime24, aime25, or set data.reward)",
        ),
    ],
)
def test_bad_file_names_file_and_column(tmp_path, rows, problem):
    path = write_parquet(tmp_path / "bad.parquet", rows)
    with pytest.raises(ConfigError) as err:
        read(path)
    assert str(err.value) == f"{KEY}: {path}: {problem}"


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("prompt", [], "column `prompt` row 1: no messages (expected at least one {role, content})"),
        (
            "prompt",
            [{"role": "user", "content": None}],
            "column `prompt` row 1: a message without role or content (expected strings)",
        ),
        (
            "reward_model",
            {"style": "rule", "ground_truth": None},
            "column `reward_model` row 1: ground_truth is null (expected a string or an integer)",
        ),
        ("data_source", None, "column `data_source`: a null value (expected a string in every row)"),
    ],
)
def test_bad_row_names_file_column_and_row(tmp_path, column, value, problem):
    good = task_rows(2)
    schema = pa.Table.from_pylist(good).schema
    path = write_parquet(tmp_path / "bad.parquet", [good[0], {**good[1], column: value}], schema=schema)
    with pytest.raises(ConfigError) as err:
        read(path)
    assert str(err.value) == f"{KEY}: {path}: {problem}"


def test_empty_missing_and_non_parquet_files(tmp_path):
    schema = pa.Table.from_pylist(task_rows(1)).schema
    empty = write_parquet(tmp_path / "empty.parquet", [], schema=schema)
    with pytest.raises(
        ConfigError, match=r"^data.train_files: .*empty.parquet: no rows \(expected at least one prompt\)$"
    ):
        read(empty)
    with pytest.raises(
        ConfigError, match=r"^data.train_files: .*nope.parquet: no such file \(expected a parquet file"
    ):
        read(str(tmp_path / "nope.parquet"))
    (tmp_path / "x.parquet").write_text("not parquet")
    with pytest.raises(
        ConfigError,
        match=r"^data.train_files: .*x.parquet: not a parquet file \(.*\) \(expected verl's layout",
    ):
        read(str(tmp_path / "x.parquet"))
