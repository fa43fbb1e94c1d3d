"""Validation of the tiny backend: the task's held-out split evaluated greedily on verl's
schedule under verl's key, with no effect on training (its own generator), resumable."""

from __future__ import annotations

import math

import pytest
import torch

from trainable import build_trainer, rewards, tasks
from trainable import metrics as M
from trainable.config import ConfigError

TIMING = {M.TIME_GEN, M.TIME_UPDATE, M.TIME_STEP, M.THROUGHPUT, M.TIME_VAL}
KEY = "val-core/archer-sweep/arithmetic/reward/mean@1"


def _cfg(val_size=6, **trainer):
    return {
        "model": {"n_layer": 1, "d_model": 32, "n_head": 2, "warm_start": False},
        "data": {"train_batch_size": 4, "max_response_length": 12, "val_size": val_size},
        "actor": {"ppo_mini_batch_size": 2, "lr": 3e-3},
        "rollout": {"n": 4},
        "trainer": {"total_steps": 5, "seed": 3} | trainer,
    }


def _train_part(m):
    return {k: v for k, v in m.items() if k not in TIMING and not k.startswith("val-")}


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])), k


def test_key_is_verls_validation_name():
    assert M.TINY_VAL_SCORE == KEY == M.val_key(M.VAL_CORE, M.TINY_DATA_SOURCE, "mean@1")


def test_held_out_prompts_are_never_trained_on():
    val = tasks.val_set(150)
    train, _ = tasks.split(0)
    assert len(val) == 150 and not set(val) & set(train)
    assert tasks.val_set(64) == val[:64]


def test_reported_on_schedule_and_training_unchanged():
    torch.set_num_threads(1)
    plain = build_trainer(_cfg(val_size=0))
    a = [plain.step() for _ in range(5)]
    tr = build_trainer(_cfg(test_freq=2))
    b = [tr.step() for _ in range(5)]
    # before training (step 1's report), after steps 2 and 4, after the last
    assert [KEY in m for m in b] == [True, True, False, True, True]
    assert all(M.TIME_VAL in m for m in b if KEY in m)
    assert not any(KEY in m for m in a)
    for x, y in zip(a, b):
        _same(_train_part(x), _train_part(y))
    assert all(0 <= m[KEY] <= 1 and m[KEY] * 6 == round(m[KEY] * 6) for m in b if KEY in m)


def test_value_is_greedy_accuracy_of_the_policy_on_the_held_out_prompts():
    torch.set_num_threads(1)
    tr = build_trainer(_cfg(val_size=6, test_freq=1, total_steps=1))
    # score by hand: each prompt alone through argmax decoding without the KV cache
    tr.model.eval()
    hits = []
    for p in tasks.val_set(6):
        ids = torch.tensor([tasks.encode_prompt(tr.tok, p)])
        out = tr.model.generate(
            ids,
            torch.ones_like(ids),
            12,
            0.0,
            torch.Generator(),
            tr.tok.eos_id,
            tr.tok.pad_id,
            use_cache=False,
        )
        resp = [t for t in out[0].tolist() if t != tr.tok.pad_id]
        hits.append(rewards.score(tr.tok.decode(resp), p.answer))
    val = tr._validate()
    assert val[KEY] == sum(hits) / len(hits)


def test_warm_start_scores_on_the_held_out_prompts():
    torch.set_num_threads(1)
    cfg = {"data": {"val_size": 16}, "trainer": {"total_steps": 1, "test_freq": 1}}
    m = build_trainer(cfg).step()
    assert 0 < m[KEY] < 1  # the warm start solves some held-out prompts, not all


def test_save_load_step_validates_as_uninterrupted(tmp_path):
    torch.set_num_threads(1)
    full = build_trainer(_cfg(test_freq=2))
    ref = [full.step() for _ in range(4)]
    first = build_trainer(_cfg(test_freq=2))
    first.step(), first.step()
    first.save(str(tmp_path))
    resumed = build_trainer(_cfg(test_freq=2))
    resumed.load(str(tmp_path))
    rest = [resumed.step() for _ in range(2)]
    for x, y in zip(ref[2:], rest):
        _same(
            {k: v for k, v in x.items() if k not in TIMING}, {k: v for k, v in y.items() if k not in TIMING}
        )


@pytest.mark.parametrize(
    ("over", "text"),
    [
        (
            {"trainer": {"test_freq": 2}},
            "trainer.test_freq: validation every 2 steps, but data.val_size is 0 "
            "(expected a number of held-out prompts, or test_freq: -1)",
        ),
        (
            {"data": {"val_size": 151}},
            "data.val_size: the task's validation split has 150 problems (got 151)",
        ),
        (
            {"trainer": {"test_freq": 0}},
            "trainer.test_freq: must be a number of steps > 0, or -1 for never (got 0)",
        ),
    ],
)
def test_bad_validation_config_names_the_key(over, text):
    cfg = {"model": {"warm_start": False}} | over
    with pytest.raises(ConfigError) as err:
        build_trainer(cfg)
    assert str(err.value) == text
