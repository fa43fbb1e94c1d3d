"""The GRPO trainer base shared by the tiny and hf backends: pure helpers and the base class."""

from __future__ import annotations

import os

import pytest
import torch

from trainable import build_trainer, grpo, tasks
from trainable.backends import grpo_base
from trainable.backends.tiny import TinyTrainer
from trainable.trainer import validate_config

TINY = {
    "model": {"n_layer": 1, "d_model": 32, "n_head": 2, "warm_start": False},
    "data": {"train_batch_size": 4, "max_response_length": 8, "train_size": 12},
    "actor": {"ppo_mini_batch_size": 4},
    "rollout": {"n": 2},
    "trainer": {"total_steps": 2, "seed": 7},
}


@pytest.mark.parametrize(
    "ids,want",
    [
        ([5, 6, 2, 7, 2], [5, 6, 2]),  # the first EOS ends the response, and is kept
        ([5, 6, 7], [5, 6, 7]),  # cut by length: no EOS
        ([2, 0, 0], [2]),  # padding after an immediate EOS goes
        ([], []),
    ],
)
def test_cut_at_eos_keeps_up_to_the_first_eos(ids, want):
    assert grpo_base.cut_at_eos(ids, eos_id=2) == want
    assert grpo_base.cut_at_eos(tuple(ids), eos_id=2) == want


def test_left_pad_right_aligns_rows_behind_padding():
    ids, mask = grpo_base.left_pad([[5, 6, 7], [8], [9, 10]], pad_id=0)
    assert ids.dtype == mask.dtype == torch.long
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8], [0, 9, 10]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1], [0, 1, 1]]


def test_left_pad_agrees_with_the_prompt_half_of_pack():
    prompts = [[5, 6, 7], [8]]
    packed, attn, _, width = grpo.pack(prompts, [[1], [1, 1], [1], []], n=2, pad_id=0)
    ids, mask = grpo_base.left_pad([p for p in prompts for _ in range(2)], pad_id=0)
    assert width == ids.shape[1]
    assert torch.equal(packed[:, :width], ids) and torch.equal(attn[:, :width], mask)


def test_seeded_generators_are_reproducible_and_independent():
    draw = lambda g: torch.randint(0, 1 << 30, (4,), generator=g).tolist()
    a_data, a_sample = grpo_base.seeded_generators(3)
    b_data, b_sample = grpo_base.seeded_generators(3)
    assert draw(a_data) == draw(b_data) and draw(a_sample) == draw(b_sample)
    data, sample = grpo_base.seeded_generators(3)
    next_data, _ = grpo_base.seeded_generators(4)
    assert draw(data) != draw(sample)
    assert draw(sample) != draw(next_data)  # seed s's sampling never replays seed s+1's data order


def test_check_budget_refuses_only_past_the_budget():
    grpo_base.check_budget(0, 1)
    grpo_base.check_budget(2, 3)
    with pytest.raises(RuntimeError, match=r"^step budget used: step_count=3 trainer.total_steps=3$"):
        grpo_base.check_budget(3, 3)


def test_draw_problems_is_distinct_and_follows_the_generator():
    train = tasks.rl_train_set(10)
    a = grpo_base.draw_problems(train, 4, torch.Generator().manual_seed(1))
    b = grpo_base.draw_problems(train, 4, torch.Generator().manual_seed(1))
    c = grpo_base.draw_problems(train, 4, torch.Generator().manual_seed(2))
    assert a == b and a != c
    assert len(set(a)) == 4 and set(a) <= set(train)


def test_frozen_copy_is_a_separate_module_that_never_trains():
    model = torch.nn.Linear(3, 2)
    ref = grpo_base.frozen_copy(model)
    assert ref is not model and not ref.training
    assert not any(p.requires_grad for p in ref.parameters())
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), ref.parameters()))
    with torch.no_grad():
        model.weight.add_(1.0)
    assert not torch.equal(model.weight, ref.weight)


class _FixedPolicy(grpo_base.ModelPolicy):
    def __init__(self, rows):
        self.model, self.eos_id, self.pad_id, self.rows = torch.nn.Linear(1, 1), 2, 0, rows

    def _sample(self, prompt_ids, n, temperature, max_new_tokens, generator):
        return self.rows


def test_model_policy_cuts_every_sample_at_eos_and_switches_modes():
    pol = _FixedPolicy([[4, 2, 0, 0], [4, 5, 6, 7], [2, 0, 0, 0]])
    assert pol.generate([[1]], 3, 1.0, 4, torch.Generator()) == [[4, 2], [4, 5, 6, 7], [2]]
    assert pol.eval() is pol and not pol.model.training
    assert pol.train() is pol and pol.model.training


def test_base_holds_the_shared_trainer_state():
    t = build_trainer(TINY)
    assert isinstance(t, grpo_base.GRPOTrainer) and isinstance(t.policy, grpo_base.ModelPolicy)
    assert t.train_set == tasks.rl_train_set(12, grpo_base.SPLIT_SEED)
    data, sample = grpo_base.seeded_generators(7)
    assert torch.equal(t.data_gen.get_state(), data.get_state())
    assert torch.equal(t.sample_gen.get_state(), sample.get_state())
    assert t.step_count == 0 and not t.done()


def test_step_past_the_budget_raises_before_drawing_prompts():
    t = build_trainer(TINY)
    t.step_count = 2
    before = t.data_gen.get_state()
    with pytest.raises(RuntimeError, match="step budget used: step_count=2 trainer.total_steps=2"):
        t.step()
    assert torch.equal(t.data_gen.get_state(), before) and t.step_count == 2


def test_checkpoint_file_keeps_its_name_and_keys(tmp_path):
    t = build_trainer(TINY)
    t.save(str(tmp_path))
    state = torch.load(os.path.join(tmp_path, "tiny_trainer.pt"), weights_only=True)
    assert set(state) == {"model", "ref", "optimizer", "data_gen", "sample_gen", "step"}


class _Engine:
    """An optimizer engine that saves model + optimizer itself (DeepSpeed's surface)."""

    def __init__(self, optimizer):
        self.param_groups, self.calls = optimizer.param_groups, []

    def save(self, directory):
        self.calls.append(("save", directory))

    def load(self, directory):
        self.calls.append(("load", directory))


def test_an_engine_optimizer_saves_and_loads_itself(tmp_path):
    class Synced(TinyTrainer):
        synced = 0

        def _after_update(self):
            self.synced += 1

    t = Synced(validate_config(TINY))
    t.optimizer = engine = _Engine(t.optimizer)
    t.step_count = 1
    t.save(str(tmp_path))
    state = torch.load(os.path.join(tmp_path, "tiny_trainer.pt"), weights_only=True)
    assert "model" not in state and "optimizer" not in state and state["step"] == 1
    t.step_count = 0
    t.load(str(tmp_path))
    assert engine.calls == [("save", str(tmp_path)), ("load", str(tmp_path))]
    assert t.step_count == 1 and t.synced == 1  # a load pushes the loaded weights on


def test_tiny_and_hf_draw_the_same_prompts_for_the_same_seed():
    pytest.importorskip("transformers")
    hf_cfg = {**TINY, "backend": "hf", "model": {}}
    tiny, hf = build_trainer(TINY), build_trainer(hf_cfg)
    try:
        for _ in range(3):
            assert tiny._batch() == hf._batch()
    finally:
        hf.close()
