"""trainable.algos against straightforward hand computations (plain python loops)."""

from __future__ import annotations

import math

import pytest
import torch

from trainable import algos
from trainable import metrics as M

torch.set_num_threads(1)


def _rows(t):
    return [list(map(float, r)) for r in t.tolist()]


# ------------------------------------------------------------------ hand versions


def hand_grpo(scores, groups, eps=1e-6, norm=True):
    out = []
    for i, s in enumerate(scores):
        g = [scores[j] for j in range(len(scores)) if groups[j] == groups[i]]
        if len(g) == 1:
            mean, std = 0.0, 1.0
        else:
            mean = sum(g) / len(g)
            std = math.sqrt(sum((x - mean) ** 2 for x in g) / (len(g) - 1))
        out.append((s - mean) / (std + eps) if norm else s - mean)
    return out


def hand_agg(vals, mask, mode, scale=None):
    if mode == "token-mean":
        n = sum(sum(r) for r in mask)
        tot = sum(v * m for rv, rm in zip(vals, mask) for v, m in zip(rv, rm))
        return tot / n if n else 0.0
    seq_sum = [sum(v * m for v, m in zip(rv, rm)) for rv, rm in zip(vals, mask)]
    if mode == "seq-mean-token-sum-norm":
        return sum(seq_sum) / (len(mask[0]) if scale is None else scale)
    alive = [i for i, rm in enumerate(mask) if sum(rm) > 0]
    if not alive:
        return 0.0
    if mode == "seq-mean-token-sum":
        return sum(seq_sum[i] for i in alive) / len(alive)
    if mode == "seq-mean-token-mean":
        return sum(seq_sum[i] / sum(mask[i]) for i in alive) / len(alive)
    raise AssertionError(mode)


def hand_ppo_token(lp, olp, a, cl, ch, c):
    d = max(-20.0, min(20.0, lp - olp))
    r = math.exp(d)
    l1 = -a * r
    l2 = -a * min(max(r, 1 - cl), 1 + ch)
    l = max(l1, l2)
    lower = False
    if a < 0:
        lower = l > -a * c
        l = min(l, -a * c)
    return l, l2 > l1, lower, -d


def hand_kl(lp, ref, kind):
    if kind in ("kl", "k1"):
        return lp - ref
    if kind == "abs":
        return abs(lp - ref)
    if kind in ("mse", "k2"):
        return 0.5 * (lp - ref) ** 2
    kl = max(-20.0, min(20.0, ref - lp))
    return max(-10.0, min(10.0, math.exp(kl) - kl - 1))


# ------------------------------------------------------------------ fixtures

LP = torch.tensor([[-1.0, -0.5, -2.0, -0.1], [-0.3, -1.2, -0.7, -3.0], [-0.2, -0.4, -0.9, -1.1]])
OLP = torch.tensor([[-1.1, -0.1, -2.5, -0.1], [-0.3, -1.0, -0.2, -3.5], [-0.25, -0.4, -0.9, -1.0]])
MASK = torch.tensor([[1.0, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]])
ADV = torch.tensor([[0.7, 0.7, 0.7, 0.7], [-1.3, -1.3, -1.3, -1.3], [0.0, 0.0, 0.0, 0.0]])


# ------------------------------------------------------------------ advantages


@pytest.mark.parametrize("norm", [True, False])
def test_grpo_matches_hand(norm):
    scores = [1.0, 0.0, 1.0, 0.5, 0.5, 2.0, 0.0, 3.0]
    groups = ["a", "a", "a", "b", "b", "c", "d", "d"]  # b: zero variance, c: single
    got = algos.grpo_advantages(torch.tensor(scores), groups, norm_by_std=norm)
    assert got.tolist() == pytest.approx(hand_grpo(scores, groups, norm=norm), abs=1e-6)


def test_grpo_special_groups():
    got = algos.grpo_advantages(torch.tensor([0.5, 0.5, 2.0]), torch.tensor([0, 0, 1]))
    assert got[:2].tolist() == [0.0, 0.0]  # zero variance: no signal, no NaN
    assert got[2].item() == pytest.approx(2.0 / (1 + 1e-6))  # single: mean 0, std 1


def test_grpo_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"group_index must have one entry per score: len\(keys\)=1"):
        algos.grpo_advantages(torch.tensor([1.0, 2.0]), [0])
    with pytest.raises(ValueError, match="one score per response"):
        algos.grpo_advantages(torch.zeros(2, 2), [0, 0])


def test_token_advantages_broadcast():
    got = algos.token_advantages(torch.tensor([2.0, -1.0]), torch.tensor([[1.0, 0], [1, 1]]))
    assert got.tolist() == [[2.0, 0.0], [-1.0, -1.0]]


# ------------------------------------------------------------------ aggregation


@pytest.mark.parametrize("mode", list(algos.AGG_MODES))
def test_agg_matches_hand(mode):
    vals = torch.tensor([[1.0, 2, 3, 100], [4, 5, 6, 7], [0.5, 0.5, 0.5, 0.5]])
    mask = torch.tensor([[1.0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]])  # row 3 fully masked
    got = algos.agg_loss(vals, mask, mode).item()
    assert got == pytest.approx(hand_agg(_rows(vals), _rows(mask), mode))


def test_seq_mean_token_sum_norm_divisor():
    vals, mask = torch.ones(2, 5), torch.tensor([[1.0, 1, 0, 0, 0], [1, 1, 1, 1, 1]])
    assert algos.agg_loss(vals, mask, "seq-mean-token-sum-norm").item() == pytest.approx(7 / 5)
    assert algos.agg_loss(vals, mask, "seq-mean-token-sum-norm", 70).item() == pytest.approx(0.1)


@pytest.mark.parametrize("mode", list(algos.AGG_MODES))
def test_agg_all_masked_is_zero_not_nan(mode):
    vals = torch.full((2, 3), float("nan"))  # padding garbage must not leak through
    vals.requires_grad_(True)
    out = algos.agg_loss(vals, torch.zeros(2, 3), mode)
    out.backward()
    assert out.item() == 0.0 and not torch.isnan(vals.grad).any()


def test_agg_unknown_mode_names_it():
    with pytest.raises(
        ValueError, match="unknown loss_agg_mode mode='token-sum'; expected one of token-mean"
    ):
        algos.agg_loss(torch.ones(1, 1), torch.ones(1, 1), "token-sum")


# ------------------------------------------------------------------ policy loss


def _hand_policy(lp, olp, adv, mask, cl, ch, c, mode):
    toks, clip, lower, kl = [], [], [], []
    for i in range(len(lp)):
        row = []
        for j in range(len(lp[0])):
            l, cf, lo, k = hand_ppo_token(lp[i][j], olp[i][j], adv[i][j], cl, ch, c)
            row.append(l)
            if mask[i][j]:
                clip.append(cf), lower.append(lo), kl.append(k)
        toks.append(row)
    n = len(clip)
    return hand_agg(toks, mask, mode), sum(clip) / n, sum(lower) / n, sum(kl) / n


@pytest.mark.parametrize("mode", list(algos.AGG_MODES))
@pytest.mark.parametrize("clips", [(0.2, 0.2, 3.0), (0.1, 0.28, 1.5)])
def test_policy_loss_matches_hand(mode, clips):
    cl, ch, c = clips
    loss, m = algos.policy_loss(LP, OLP, ADV, MASK, cl, ch, c, agg=mode)
    want, clipfrac, lower, kl = _hand_policy(_rows(LP), _rows(OLP), _rows(ADV), _rows(MASK), cl, ch, c, mode)
    assert loss.item() == pytest.approx(want, rel=1e-5)
    assert m[M.PG_CLIPFRAC] == pytest.approx(clipfrac)
    assert m[M.PG_CLIPFRAC_LOWER] == pytest.approx(lower)
    assert m[M.PPO_KL] == pytest.approx(kl, rel=1e-5)


def test_dual_clip_branch_and_extreme_ratios():
    # ratio e^30 is clamped to e^20; negative advantage caps the loss at −A·c.
    lp = torch.tensor([[10.0, 10.0, -40.0]])
    olp = torch.tensor([[-20.0, -20.0, 0.0]])
    adv = torch.tensor([[-2.0, 2.0, -2.0]])
    mask = torch.ones(1, 3)
    loss, m = algos.policy_loss(lp, olp, adv, mask, clip_ratio_c=3.0)
    tok = [
        hand_ppo_token(lp[0, j].item(), olp[0, j].item(), adv[0, j].item(), 0.2, 0.2, 3.0)[0]
        for j in range(3)
    ]
    assert tok[0] == pytest.approx(6.0)  # dual clip: −(−2)·3
    assert tok[1] == pytest.approx(-2.0 * 1.2)  # positive A: clipped at 1+ε
    assert tok[2] == pytest.approx(2.0 * 0.8)  # tiny ratio, negative A: 1−ε
    assert loss.item() == pytest.approx(sum(tok) / 3)
    assert m[M.PG_CLIPFRAC_LOWER] == pytest.approx(1 / 3)
    assert m[M.PPO_KL] == pytest.approx((-20 - 20 + 20) / 3)  # clamped log-ratios
    assert math.isfinite(loss.item())


def test_policy_loss_gradient_zero_where_clipped():
    lp = torch.tensor([[0.0, 0.5]], requires_grad=True)  # ratio 1 and e^0.5 > 1.2
    loss, _ = algos.policy_loss(lp, torch.zeros(1, 2), torch.ones(1, 2), torch.ones(1, 2))
    loss.backward()
    assert lp.grad[0, 0].item() == pytest.approx(-0.5) and lp.grad[0, 1].item() == 0.0


def test_policy_loss_all_masked_no_nan():
    loss, m = algos.policy_loss(LP, OLP, ADV, torch.zeros_like(MASK))
    assert loss.item() == 0.0 and all(v == 0.0 for v in m.values())


def test_policy_loss_rejects_c_le_1():
    with pytest.raises(ValueError, match="dual-clip bound must be > 1: clip_ratio_c=1.0"):
        algos.policy_loss(LP, OLP, ADV, MASK, clip_ratio_c=1.0)


# ------------------------------------------------------------------ KL, entropy


@pytest.mark.parametrize("kind", list(algos.KL_PENALTIES))
def test_kl_matches_hand(kind):
    lp = torch.tensor([-1.0, -0.2, -30.0, 0.0, -5.0])
    ref = torch.tensor([-1.5, -0.2, 0.0, -30.0, -4.0])  # includes both clamp regimes
    got = algos.kl_penalty(lp, ref, kind).tolist()
    assert got == pytest.approx([hand_kl(a, b, kind) for a, b in zip(lp.tolist(), ref.tolist())], rel=1e-5)


def test_low_var_kl_clamped_and_nonnegative():
    v = algos.kl_penalty(torch.tensor([-30.0, 0.0, -1.0]), torch.tensor([0.0, -30.0, -1.0]), "low_var_kl")
    assert v.tolist() == pytest.approx([10.0, 10.0, 0.0])  # e^30−31 and e^−30+29 both cut at 10
    assert (v >= 0).all()


def test_kl_unknown_kind():
    with pytest.raises(ValueError, match="unknown kl_loss_type kind='k4'; expected one of kl, k1"):
        algos.kl_penalty(torch.zeros(1), torch.zeros(1), "k4")


def test_entropy_from_logits_matches_hand():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [2.0, -1.0, 0.5, 3.0], [50.0, 0.0, 0.0, 0.0]])
    got = algos.entropy_from_logits(logits).tolist()
    for row, g in zip(logits.tolist(), got):
        z = sum(math.exp(x) for x in row)
        p = [math.exp(x) / z for x in row]
        assert g == pytest.approx(-sum(q * math.log(q) for q in p if q > 0), abs=1e-5)
    assert got[0] == pytest.approx(math.log(4))


def test_token_log_probs():
    logits = torch.tensor([[[1.0, 2.0, 3.0]]])
    got = algos.token_log_probs(logits, torch.tensor([[2]])).item()
    assert got == pytest.approx(3 - math.log(math.exp(1) + math.exp(2) + math.exp(3)))


def _separate(logits, tokens):
    """The two-function path `log_probs_and_entropy` replaces (autograd through both)."""
    return algos.token_log_probs(logits, tokens), algos.entropy_from_logits(logits)


def test_log_probs_and_entropy_equal_the_separate_functions_with_gradients():
    torch.manual_seed(0)
    logits = (torch.randn(300, 512) * 3).requires_grad_()
    tokens = torch.randint(0, 512, (300,))
    w_logp, w_ent = torch.rand(300), torch.rand(300) - 0.5  # any upstream gradient
    grads = []
    for fn in (algos.log_probs_and_entropy, _separate):
        logp, ent = fn(logits, tokens)
        grads.append((logp, ent, *torch.autograd.grad((w_logp * logp + w_ent * ent).sum(), logits)))
    (logp, ent, g), (want_logp, want_ent, want_g) = grads
    assert torch.allclose(logp, want_logp, rtol=0, atol=2e-6)
    assert torch.allclose(ent, want_ent, rtol=0, atol=2e-5)  # the old path's own error (below)
    assert torch.allclose(g, want_g, rtol=0, atol=1e-6)
    assert g.abs().max() > 0.1  # the comparison is not between two zero tensors


def test_log_probs_and_entropy_are_closer_to_float64_than_the_separate_functions():
    torch.manual_seed(1)
    logits = torch.randn(200, 4096) * 3
    exact = torch.special.entr(torch.softmax(logits.double(), -1)).sum(-1)
    ent = algos.log_probs_and_entropy(logits, torch.zeros(200, dtype=torch.long))[1]
    old = algos.entropy_from_logits(logits)
    assert (ent.double() - exact).abs().max() < 5e-6 < (old.double() - exact).abs().max()


def test_log_probs_and_entropy_gradient_is_exact_in_float64():
    torch.manual_seed(2)
    logits = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    tokens = torch.tensor([0, 6, 3, 3, 1])
    fn = algos._LogProbEntropy.apply
    assert torch.autograd.gradcheck(fn, (logits, tokens))
    assert torch.autograd.gradcheck(lambda z: fn(z, tokens)[1], (logits,))  # entropy alone


def test_log_probs_and_entropy_match_hand():
    logp, ent = algos.log_probs_and_entropy(
        torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]), torch.tensor([2, 0])
    )
    assert logp.tolist() == pytest.approx(
        [3 - math.log(math.exp(1) + math.exp(2) + math.exp(3)), -math.log(3)]
    )
    assert ent[1].item() == pytest.approx(math.log(3))
    with pytest.raises(ValueError, match="expected logits"):
        algos.log_probs_and_entropy(torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long))


# ------------------------------------------------------------------ actor loss + contract


def test_actor_loss_combines_terms():
    ent = torch.rand(3, 4) + 1
    ref = OLP - 0.3
    loss, m = algos.actor_loss(
        LP,
        OLP,
        ADV,
        MASK,
        entropy=ent,
        ref_log_prob=ref,
        entropy_coeff=0.01,
        kl_loss_coef=0.1,
        kl_loss_type="low_var_kl",
    )
    pg, _ = algos.policy_loss(LP, OLP, ADV, MASK)
    e = hand_agg(_rows(ent), _rows(MASK), "token-mean")
    kl_rows = [[hand_kl(a, b, "low_var_kl") for a, b in zip(r1, r2)] for r1, r2 in zip(_rows(LP), _rows(ref))]
    k = hand_agg(kl_rows, _rows(MASK), "token-mean")
    assert loss.item() == pytest.approx(pg.item() - 0.01 * e + 0.1 * k, rel=1e-5)
    assert m[M.ENTROPY] == pytest.approx(e, rel=1e-5) and m[M.KL_LOSS] == pytest.approx(k, rel=1e-5)
    assert m[M.PG_LOSS] == pytest.approx(pg.item())
    assert {M.PG_CLIPFRAC, M.PPO_KL} <= set(m)


def test_every_registered_name_runs():
    regs = algos.registries()
    assert set(regs["loss_agg_mode"]) >= {
        "token-mean",
        "seq-mean-token-sum",
        "seq-mean-token-mean",
        "seq-mean-token-sum-norm",
    }
    assert set(regs["kl_loss_type"]) >= {"kl", "abs", "mse", "low_var_kl"}
    scores, groups = torch.tensor([1.0, 0.0, 1.0, 1.0]), [0, 0, 1, 1]
    for name, fn in regs["adv_estimator"].items():
        adv = fn(scores, groups)
        assert adv.shape == (4,) and torch.isfinite(adv).all(), name
    for pol in regs["policy_loss"]:
        for agg in regs["loss_agg_mode"]:
            for kl in regs["kl_loss_type"]:
                lp = LP.clone().requires_grad_(True)
                loss, m = algos.actor_loss(
                    lp,
                    OLP,
                    ADV,
                    MASK,
                    entropy=torch.ones(3, 4),
                    ref_log_prob=OLP,
                    entropy_coeff=0.01,
                    kl_loss_coef=0.01,
                    kl_loss_type=kl,
                    agg=agg,
                    policy=pol,
                )
                loss.backward()
                assert math.isfinite(loss.item()) and torch.isfinite(lp.grad).all(), (pol, agg, kl)
                assert all(math.isfinite(v) for v in m.values())


def test_config_literals_are_registered():
    import typing

    from trainable.config import AlgorithmConfig

    for field, reg in [
        ("kl_loss_type", algos.KL_PENALTIES),
        ("loss_agg_mode", algos.AGG_MODES),
        ("adv_estimator", algos.ADV_ESTIMATORS),
    ]:
        names = typing.get_args(AlgorithmConfig.model_fields[field].annotation)
        assert set(names) <= set(reg), field
