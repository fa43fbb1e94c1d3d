import math
import threading

import pytest
import torch

from trainable import algos, build_trainer, grpo, warmstart
from trainable import metrics as M
from trainable.config import ConfigError, TinyModelConfig

TIMING = {M.TIME_GEN, M.TIME_UPDATE, M.TIME_STEP, M.THROUGHPUT}


def _cfg(**over):
    cfg = {
        "model": {"n_layer": 1, "d_model": 32, "n_head": 2, "warm_start": False},
        "data": {"train_batch_size": 4, "max_response_length": 12},
        "actor": {"ppo_mini_batch_size": 2, "ppo_epochs": 2, "lr": 3e-3},
        "rollout": {"n": 4},
        "trainer": {"total_steps": 4, "seed": 3},
    }
    for k, v in over.items():
        cfg[k] = {**cfg.get(k, {}), **v}
    return cfg


def _strip(m):
    return {k: v for k, v in m.items() if k not in TIMING}


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])), k


def test_step_returns_every_key_and_counts_steps():
    torch.set_num_threads(1)
    t = build_trainer(_cfg())
    m = t.step()
    assert set(M.ALL_KEYS) | {M.GIBBERISH_FRAC} <= set(m)
    assert m[M.STEP] == 1 and t.step_count == 1 and not t.done()
    assert 0 <= m[M.GIBBERISH_FRAC] <= 1
    assert m[M.SOLVE_NONE] + m[M.SOLVE_ALL] + m[M.VALID] == 4


def test_same_seed_same_metrics():
    runs = [[_strip(build_trainer(_cfg()).step())] for _ in range(2)]
    _same(runs[0][0], runs[1][0])
    other = _strip(build_trainer(_cfg(trainer={"seed": 4})).step())
    assert other != runs[0][0]


def test_save_load_step_equals_uninterrupted(tmp_path):
    a = build_trainer(_cfg())
    a.step()
    a.save(str(tmp_path))
    expected = [_strip(a.step()), _strip(a.step())]
    b = build_trainer(_cfg())
    b.load(str(tmp_path))
    assert b.step_count == 1
    for want in expected:
        _same(_strip(b.step()), want)
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k


def test_done_after_budget_and_step_refuses():
    t = build_trainer(_cfg(trainer={"total_steps": 1}))
    t.step()
    assert t.done()
    with pytest.raises(RuntimeError, match="step budget used"):
        t.step()
    t.close()


@pytest.mark.parametrize(
    "cfg,text",
    [
        (
            {"algorithm": {"entropy_coef": 0.1}},
            "algorithm.entropy_coef: unknown key (did you mean `entropy_coeff`?)",
        ),
        ({"algorithm": {"entropy_coeff": -0.1}}, "algorithm.entropy_coeff: "),
        ({"model": {"d_model": 30, "n_head": 4}}, "n_head=4 must divide d_model=30"),
        ({"data": {"train_batch_size": 5}}, "actor.ppo_mini_batch_size=2 must divide"),
        ({"data": {"train_size": 3}}, "data.train_size: must be at least data.train_batch_size=4 (got 3)"),
        ({"data": {"train_size": 601}}, "data.train_size: the task's train split has 600 problems (got 601)"),
    ],
)
def test_bad_config_names_the_key(cfg, text):
    with pytest.raises(ConfigError) as err:
        build_trainer(_cfg(**cfg))
    assert text in str(err.value)


def test_steps_draw_prompts_from_the_first_train_size_problems():
    from trainable import tasks

    t = build_trainer(_cfg(data={"train_size": 6}))
    first6 = tasks.split(0)[0][:6]
    assert t.train_set == first6
    seen = {a for _ in range(5) for a in t._batch()[1]}
    assert seen <= {p.answer for p in first6} and len(seen) > 1
    assert len(build_trainer(_cfg(data={"train_size": None})).train_set) == 600


def test_impossible_response_length_names_the_key():
    cfg = _cfg(model={"warm_start": True}, data={"max_response_length": 500})
    with pytest.raises(ConfigError, match=r"data.max_response_length: prompt \(6\) \+ response"):
        from trainable.backends.tiny import _check_sizes
        from trainable.trainer import validate_config

        _check_sizes(validate_config(cfg), 6, 128)
    with pytest.raises(ConfigError, match="data.max_prompt_length: the tiny task's prompts"):
        build_trainer(_cfg(data={"max_prompt_length": 3}))


def test_warm_start_is_built_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHER_SWEEP_CACHE", str(tmp_path))
    builds = []
    real = warmstart.train_sft

    def counting(model_cfg, sft):
        builds.append(1)
        return real(model_cfg, sft)

    monkeypatch.setattr(warmstart, "train_sft", counting)
    cfg = TinyModelConfig(n_layer=1, d_model=16, n_head=2)
    sft = warmstart.SFTSettings(steps=3, batch_size=4, smooth_steps=1, max_len=80)
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(warmstart.load_or_build(cfg, sft))) for _ in range(2)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(builds) == 1 and len(results) == 2
    assert all(torch.equal(results[0][k], results[1][k]) for k in results[0])
    assert len(list(tmp_path.glob("tiny-warmstart-*.pt"))) == 1
    other = warmstart.SFTSettings(steps=2, batch_size=4, smooth_steps=1, max_len=80)
    assert warmstart.cache_key(cfg, other) != warmstart.cache_key(cfg, sft)


def test_prepare_builds_the_warm_start_once_in_the_driver(monkeypatch):
    # `run` calls prepare_backend before Ray starts, so the SFT shows progress in the driver.
    import trainable.backends.tiny as tiny
    from trainable.trainer import prepare_backend

    calls = []
    monkeypatch.setattr(tiny, "load_or_build", lambda sizes, sft: calls.append(sizes.d_model))
    prepare_backend({"backend": "tiny", "model": {"d_model": 64, "n_head": 4}})
    prepare_backend({"backend": "tiny", "model": {"warm_start": False}})
    assert calls == [64]


def test_policy_logprobs_equal_the_full_projection_with_gradients():
    """TinyPolicy.logprobs (response rows only, fused log-prob/entropy) against every
    position projected and the two separate algos functions, padding masked after."""
    tr = build_trainer(_cfg())
    torch.manual_seed(0)
    prompts = [torch.randint(10, 200, (k,)).tolist() for k in (5, 9)]  # left padding too
    responses = [torch.randint(10, 200, (k,)).tolist() + [tr.tok.eos_id] for k in (3, 11, 0, 7)]
    ids, attn, mask, P = grpo.pack(prompts, responses, 2, tr.tok.pad_id)
    tokens, weight = ids[:, P:], tr.model.tok_emb.weight
    logp, ent = tr.policy.logprobs(ids, attn, P)
    logits = tr.model.logits(tr.model(ids, attn))[:, P - 1 : -1]
    want_logp = algos.token_log_probs(logits, tokens) * mask
    want_ent = algos.entropy_from_logits(logits) * mask
    assert torch.allclose(logp, want_logp, rtol=0, atol=1e-6)
    assert torch.allclose(ent, want_ent, rtol=0, atol=1e-5)
    with torch.no_grad():  # the reference (a copy of the same weights) skips the entropy
        ref_logp, ref_ent = tr.ref.logprobs(ids, attn, P)
    assert ref_ent is None and torch.equal(ref_logp, want_logp.detach())
    w = torch.rand_like(mask)
    grad = torch.autograd.grad((w * (logp - 0.1 * ent)).sum(), weight)[0]
    want = torch.autograd.grad((w * (want_logp - 0.1 * want_ent)).sum(), weight)[0]
    assert torch.allclose(grad, want, rtol=1e-4, atol=1e-6)
    assert grad.abs().max() > 1e-3


def test_policy_logprobs_equal_the_unbuffered_path_bit_for_bit():
    """The buffered projection (`tiny.Buffers`, reused across calls of different sizes) gives
    the same bits as autograd through `model.logits` + `algos.log_probs_and_entropy`."""
    from trainable.backends import tiny

    torch.set_num_threads(1)
    tr = build_trainer(_cfg())
    torch.manual_seed(0)
    for n_resp in ((3, 11, 0, 7), (12, 12, 5, 9), (2, 1, 1, 4)):  # N grows, then shrinks
        prompts = [torch.randint(10, 200, (k,)).tolist() for k in (5, 9)]
        responses = [torch.randint(10, 200, (k,)).tolist() + [tr.tok.eos_id] for k in n_resp]
        ids, attn, _, P = grpo.pack(prompts, responses, 2, tr.tok.pad_id)
        hidden = tr.model(ids, attn)[:, P - 1 : -1]
        real = attn[:, P:].bool()
        want_logp, want_ent = (hidden.new_zeros(real.shape) for _ in range(2))
        want_logp[real], want_ent[real] = algos.log_probs_and_entropy(
            tr.model.logits(hidden[real]), ids[:, P:][real]
        )
        logp, ent = tr.policy.logprobs(ids, attn, P)
        assert torch.equal(logp, want_logp) and torch.equal(ent, want_ent)
        w = torch.rand_like(logp)
        params = list(tr.model.parameters())
        grads = torch.autograd.grad((w * (logp - 0.1 * ent)).sum(), params)
        wants = torch.autograd.grad((w * (want_logp - 0.1 * want_ent)).sum(), params)
        assert all(torch.equal(g, h) for g, h in zip(grads, wants))
        with torch.no_grad():
            ref_logp, _ = tr.ref.logprobs(ids, attn, P)
        assert torch.equal(ref_logp, want_logp.detach())
    logp, _ = tr.policy.logprobs(ids, attn, P)
    tr.policy.logprobs(ids, attn, P)  # overwrites the buffers the first call's backward needs
    with pytest.raises(RuntimeError, match="ran again before the backward"):
        logp.sum().backward()
    assert isinstance(tr.policy.buffers, tiny.Buffers) and tr.policy.buffers is tr.ref.buffers
