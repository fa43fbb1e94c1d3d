"""Validation of the hf backend: data.val_files evaluated on verl's schedule (test_freq,
val_before_train, the last step), greedy by default, per data_source under verl's keys; the
training run is unchanged by it; criteria rules can watch the (sparse) val keys."""

from __future__ import annotations

import zlib

import pytest

pytest.importorskip("transformers")
pytest.importorskip("pyarrow")

import torch

from archer_sweep.criteria import Rule
from archer_sweep.criteria.rules import CriteriaTracker
from tests.hf_data_helpers import save_checkpoint, task_rows, write_parquet
from trainable import metrics as M
from trainable.backends import grpo_base, validation
from trainable.config import ConfigError
from trainable.trainer import build_trainer

torch.set_num_threads(1)
ARITH, OTHER = "archer-sweep/arithmetic", "other/set"
KEY_A = M.val_key(M.VAL_CORE, ARITH, "mean@1")
KEY_B = M.val_key(M.VAL_CORE, OTHER, "mean@1")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("hfval")
    val = task_rows(3) + task_rows(5, source=OTHER)[3:]  # 3 + 2 prompts of two sources
    return {
        # A wide init: greedy responses of a random model then differ from prompt to prompt.
        "ckpt": save_checkpoint(d / "ckpt", config={"initializer_range": 0.5}),
        "train": write_parquet(d / "train.parquet", task_rows(8)),
        "val": write_parquet(d / "val.parquet", val),
    }


def cfg(files, trainer=None, val_kwargs=None, **data) -> dict:
    return {
        "backend": "hf",
        "model": {"path": files["ckpt"]},
        "data": {
            "train_files": files["train"],
            "train_batch_size": 4,
            "max_response_length": 8,
            "reward": "exact",
        }
        | data,
        "rollout": {"n": 2, "val_kwargs": val_kwargs or {}},
        "actor": {"ppo_mini_batch_size": 4, "lr": 1e-3},
        "trainer": {"total_steps": 5, "seed": 0} | (trainer or {}),
    }


def test_schedule_is_verls():
    # test_freq 2 over 5 steps: before training (step 1's report), after steps 2 and 4, after the last.
    due = [validation.due(s, 5, 2, True) for s in range(1, 6)]
    assert due == ["before", "after", None, "after", "after"]
    assert [validation.due(s, 3, -1, True) for s in (1, 2, 3)] == ["before", None, None]
    assert [validation.due(s, 3, -1, False) for s in (1, 2, 3)] == [None, None, None]
    assert validation.due(1, 3, 1, True) == "after"  # one value per key per report


def test_metrics_per_source_under_verls_keys():
    m = M.validation_metrics([1, 0, 0, 0, 1, 1], ["a", "b", "a"], n=2)
    assert m == {
        "val-core/a/reward/mean@2": 0.75,
        "val-aux/a/reward/std@2": 0.25,  # (0.5 + 0) / 2
        "val-core/b/reward/mean@2": 0.0,
        "val-aux/b/reward/std@2": 0.0,
    }
    assert M.validation_metrics([0, 1], ["a", "b"], n=1) == {
        "val-core/a/reward/mean@1": 0.0,
        "val-core/b/reward/mean@1": 1.0,
    }
    with pytest.raises(ValueError, match="n responses per prompt"):
        M.validation_metrics([0, 1, 1], ["a", "b"], n=1)


def _greedy_means(tr, score) -> dict[str, float]:
    """Validation recomputed by hand: HF greedy generate of each val prompt, scored."""
    by: dict[str, list[float]] = {}
    for p in tr.val_set:
        ids = torch.tensor([list(p.ids)])
        out = tr.model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=8
        )
        resp = grpo_base.cut_at_eos(out[0, ids.shape[1] :].tolist(), tr.tok.eos_token_id)
        by.setdefault(p.row.data_source, []).append(
            score(tr.tok.decode(resp, skip_special_tokens=True), p.row)
        )
    return {M.val_key(M.VAL_CORE, s, "mean@1"): sum(v) / len(v) for s, v in by.items()}


def test_val_reported_on_schedule_and_equal_to_greedy_by_hand(files):
    # A score that depends on the generated text, so the comparison is not 0 == 0.
    def score(text, row):
        return float(zlib.crc32(text.encode()) % 2)

    tr = build_trainer(cfg(files, val_files=files["val"], trainer={"test_freq": 2}))
    tr.score_fn = score
    assert len(tr.val_set) == 5
    tr.model.eval()
    expected_before = _greedy_means(tr, score)
    assert 0 < sum(expected_before.values()) < 2  # neither all 0 nor all 1
    reports = [tr.step() for _ in range(5)]
    has = [KEY_A in r for r in reports]
    assert has == [True, True, False, True, True]
    assert all((KEY_B in r) == h and (M.TIME_VAL in r) == h for r, h in zip(reports, has))
    assert {k: reports[0][k] for k in expected_before} == pytest.approx(expected_before, abs=1e-9)
    assert {k: reports[4][k] for k in expected_before} == pytest.approx(_greedy_means(tr, score), abs=1e-9)
    assert all(set(M.ALL_KEYS) <= set(r) for r in reports)


def test_validation_leaves_training_unchanged_and_resumes(files, tmp_path):
    sampled = {"n": 2, "do_sample": True, "temperature": 1.0}
    plain = build_trainer(cfg(files, trainer={"total_steps": 3}))
    with_val = build_trainer(
        cfg(files, val_files=files["val"], trainer={"total_steps": 3, "test_freq": 1}, val_kwargs=sampled)
    )
    a = [plain.step() for _ in range(3)]
    b = [with_val.step() for _ in range(3)]
    for key in (M.SCORE_MEAN, M.ENTROPY, M.PG_LOSS, M.RESP_LEN_MEAN):
        assert [r[key] for r in a] == [r[key] for r in b]
    assert all(M.val_key(M.VAL_AUX, OTHER, "std@2") in r for r in b)
    # save after step 1 -> load -> steps 2, 3 validate as the uninterrupted run did
    again = build_trainer(
        cfg(files, val_files=files["val"], trainer={"total_steps": 3, "test_freq": 1}, val_kwargs=sampled)
    )
    again.step()
    again.save(str(tmp_path / "ck"))
    resumed = build_trainer(
        cfg(files, val_files=files["val"], trainer={"total_steps": 3, "test_freq": 1}, val_kwargs=sampled)
    )
    resumed.load(str(tmp_path / "ck"))
    rest = [resumed.step() for _ in range(2)]
    keys = [k for k in b[1] if k.startswith((M.VAL_CORE, M.VAL_AUX))]
    assert len(keys) == 4
    assert [[r[k] for k in keys] for r in rest] == [[r[k] for k in keys] for r in b[1:]]


def test_rules_watch_a_sparse_val_key(files):
    # Val at steps 2 and 4 only: a patience-2 bad rule fires at the second val report (the
    # report between them neither grows nor breaks the streak); it is live (recorded=False).
    tr = build_trainer(
        cfg(files, val_files=files["val"], trainer={"test_freq": 2, "val_before_train": False})
    )
    tr.score_fn = lambda text, row: 0.0
    low = Rule("val_low", KEY_A, "bad", op="<", value=0.5, after_step=1, patience=2)
    tracker = CriteriaTracker([low])
    verdicts = [tracker.update(tr.step()) for _ in range(4)]
    assert verdicts[:3] == [None, None, None]
    assert (verdicts[3].verdict, verdicts[3].step, verdicts[3].value) == ("stopped:val_low", 4, 0.0)
    # A good rule at step 3 is judged at the next report that has the key (step 4).
    good = Rule("val_ok", KEY_B, "good", op=">=", value=0.0, at_step=3)
    t2 = CriteriaTracker([good])
    for r in [{M.STEP: 1.0}, {M.STEP: 2.0, KEY_B: 0.0}, {M.STEP: 3.0}, {M.STEP: 4.0, KEY_B: 0.5}]:
        assert t2.update(r) is None
    assert t2.finish().verdict == "healthy"


@pytest.mark.parametrize(
    ("trainer", "val_kwargs", "with_val", "message"),
    [
        (
            {"test_freq": 0},
            {},
            True,
            "trainer.test_freq: must be a number of steps > 0, or -1 for never (got 0)",
        ),
        (
            {"test_freq": 2},
            {},
            False,
            "trainer.test_freq: validation every 2 steps, but data.val_files is empty "
            "(expected validation files, or test_freq: -1)",
        ),
        (
            {},
            {"n": 4},
            True,
            "rollout.val_kwargs.n: greedy validation gives 4 identical responses (set do_sample: true for n > 1)",
        ),
    ],
)
def test_bad_validation_settings_name_their_key(files, trainer, val_kwargs, with_val, message):
    data = {"val_files": files["val"]} if with_val else {}
    with pytest.raises(ConfigError) as err:
        build_trainer(cfg(files, trainer=trainer, val_kwargs=val_kwargs, **data))
    assert str(err.value) == message


def test_long_val_prompts_are_refused(files, tmp_path):
    long = task_rows(1)
    long[0]["prompt"] = [{"role": "user", "content": " ".join(["1 + 2 * 3 ="] * 8)}]
    path = write_parquet(tmp_path / "long.parquet", long)
    with pytest.raises(
        ConfigError,
        match=r"^data.max_prompt_length: data.val_files' prompts have up to \d+ tokens \(got 32\)$",
    ):
        build_trainer(cfg(files, val_files=path))
