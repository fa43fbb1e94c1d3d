"""The hf backend on real data: a saved checkpoint (`model.path`) trains on verl-layout parquet
prompts rendered with its chat template, rewards picked by data_source; bad files fail validation."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("transformers")
pytest.importorskip("pyarrow")

import torch
from typer.testing import CliRunner

from archer_sweep.cli.app import app
from tests.hf_data_helpers import save_checkpoint, task_rows, write_parquet
from tests.spec_helpers import edit, write
from trainable import metrics as M
from trainable.backends import hf_data
from trainable.config import ConfigError
from trainable.trainer import build_trainer, validate_config

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("hfdata")
    return {
        "ckpt": save_checkpoint(d / "ckpt"),
        "train": write_parquet(d / "train.parquet", task_rows(12)),
        "val": write_parquet(d / "val.parquet", task_rows(4)),
    }


def cfg(files, **data) -> dict:
    return {
        "backend": "hf",
        "model": {"path": files["ckpt"]},
        "data": {"train_files": files["train"], "train_batch_size": 4, "max_response_length": 10} | data,
        "rollout": {"n": 2},
        "actor": {"ppo_mini_batch_size": 2, "lr": 1e-3},
        "trainer": {"total_steps": 5, "seed": 0},
    }


def test_checkpoint_trains_five_steps_on_parquet_prompts(files):
    tr = build_trainer(cfg(files, val_files=[files["val"]]))
    assert len(tr.train_set) == 12  # every row: train_size applies to files only when set
    first = tr.train_set[0]
    # The chat template (`{{ bos_token }}` + contents) renders the row's message.
    assert tr.tok.decode(first.ids) == "<bos> " + first.row.messages[0]["content"]
    assert tr.score_fn("so the total is 31 . คำตอบ: " + first.row.ground_truth, first.row) == 1.0
    for step in range(1, 6):
        m = tr.step()
        assert set(M.ALL_KEYS) <= set(m) and m[M.STEP] == step
        assert all(math.isfinite(m[k]) for k in set(M.ALL_KEYS) - {M.RESP_LEN_POS})
    assert tr.done()


def test_train_size_caps_rows_and_must_fit(files):
    assert len(build_trainer(cfg(files, train_size=6)).train_set) == 6
    with pytest.raises(ConfigError, match=r"^data.train_size: the data files have 12 rows \(got 20\)$"):
        build_trainer(cfg(files, train_size=20))


def test_tokenizer_without_chat_template_is_refused(files, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(files["ckpt"], local_files_only=True)
    tok.chat_template = None
    with pytest.raises(ConfigError, match=r"^model.path: the tokenizer has no chat template"):
        hf_data.render(tok, [{"role": "user", "content": "1 + 2 * 3 ="}])


def test_too_few_rows_for_a_batch(files):
    parsed = validate_config(cfg(files, train_batch_size=16))
    with pytest.raises(
        ConfigError,
        match=r"^data.train_files: 12 rows in all \(expected at least data.train_batch_size=16\)$",
    ):
        hf_data.check_config(parsed)


def _spec(tmp_path, data_line: str) -> str:
    spec = edit({3: "  backend: hf", 6: "    trainer: {total_steps: 60}\n" + data_line})
    write(tmp_path, spec)
    return "s.yaml"


def test_validate_names_file_and_column_with_exit_2(files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = write_parquet(
        tmp_path / "bad.parquet", [{k: v for k, v in r.items() if k != "prompt"} for r in task_rows(4)]
    )
    res = CliRunner().invoke(app, ["validate", _spec(tmp_path, f"    data: {{train_files: [{bad}]}}")])
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr == (
        f"error: s.yaml:7: trainable.config.data.train_files: {bad}: column `prompt` is missing "
        "(expected verl's layout: prompt, reward_model.ground_truth, data_source)\n"
    )
    res = CliRunner().invoke(
        app, ["validate", _spec(tmp_path, f"    data: {{train_files: {files['train']}}}")]
    )
    assert res.exit_code == 0, res.output


def test_unknown_reward_is_named(files):
    with pytest.raises(
        ConfigError,
        match=r"^data.reward: unknown reward 'maths' \(did you mean `math`\?\) \(expected one of thai, boxed_int, exact, math\)$",
    ):
        hf_data.check_config(validate_config(cfg(files, reward="maths")))
