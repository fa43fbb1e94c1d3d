"""GRPO / PPO math as pure torch functions (the formulas of verl's `core_algos.py`).

Shapes: per-token tensors are `(batch, response_len)`; `mask` is 1 on response
tokens and 0 on padding. Every function is pure (no I/O, no global state) so the
tiny and hf backends and the tests share one code path. Estimators, KL kinds,
aggregation modes and policy losses are chosen by name from small registries.

Empty masks: verl divides token-mean by the raw token count, which gives NaN on a
batch with no response tokens. Here every masked mean divides by
`max(count, 1e-8)` instead, so an all-zero mask gives 0 (and no NaN gradient);
with any real token the value equals verl's exactly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Optional

import torch

from trainable import metrics as M

_TINY = 1e-8


def masked_sum(values: torch.Tensor, mask: torch.Tensor, dim: Optional[int] = None) -> torch.Tensor:
    """Sum of `values` where `mask` is set; NaN/inf outside the mask cannot leak in."""
    kept = torch.where(mask.bool(), values, torch.zeros_like(values))
    return (kept * mask).sum() if dim is None else (kept * mask).sum(dim=dim)


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: Optional[int] = None) -> torch.Tensor:
    """Mean over masked entries; 0 when the mask is empty (see module docstring)."""
    count = mask.sum() if dim is None else mask.sum(dim=dim)
    return masked_sum(values, mask, dim) / count.clamp_min(_TINY)


# --------------------------------------------------------------------------- advantages


def grpo_advantages(
    scores: torch.Tensor,
    group_index: Sequence[Hashable] | torch.Tensor,
    eps: float = 1e-6,
    norm_by_std: bool = True,
) -> torch.Tensor:
    """Per-response GRPO advantage: (score − group mean) / (group std + eps).

    `group_index[i]` names the prompt group of response i. The std is the unbiased
    one (torch.std); a group of one has mean 0 and std 1, as in verl, so its
    advantage is its score / (1 + eps). `norm_by_std=False` gives Dr.GRPO's
    score − mean. Returns shape `(batch,)`; use `token_advantages` to broadcast.
    """
    scores = torch.as_tensor(scores, dtype=torch.float32) if not torch.is_tensor(scores) else scores
    if scores.dim() != 1:
        raise ValueError(f"grpo_advantages expects one score per response: {tuple(scores.shape)=}")
    keys = group_index.tolist() if torch.is_tensor(group_index) else list(group_index)
    if len(keys) != scores.shape[0]:
        raise ValueError(f"group_index must have one entry per score: {len(keys)=}, {scores.shape[0]=}")
    members: dict[Hashable, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        members[key].append(i)
    scores = scores.detach()
    mean = torch.zeros_like(scores)
    std = torch.ones_like(scores)
    for rows in members.values():
        if len(rows) > 1:
            idx = torch.tensor(rows, device=scores.device)
            group = scores[idx]
            mean[idx] = group.mean()
            std[idx] = group.std()
    centred = scores - mean
    return centred / (std + eps) if norm_by_std else centred


def token_advantages(advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Broadcast one advantage per response over its response tokens (0 on padding)."""
    return advantages.unsqueeze(-1) * mask


#: name -> fn(scores, group_index, eps=..., norm_by_std=...) -> (batch,) advantages
ADV_ESTIMATORS: dict[str, Callable[..., torch.Tensor]] = {"grpo": grpo_advantages}


# --------------------------------------------------------------------------- aggregation


def _token_mean(values, mask, scale):
    return masked_mean(values, mask)


def _seq_mean_token_sum(values, mask, scale):
    seq = masked_sum(values, mask, dim=-1)
    alive = (mask.sum(dim=-1) > 0).to(values.dtype)  # fully masked sequences don't count
    return (seq * alive).sum() / alive.sum().clamp_min(_TINY)


def _seq_mean_token_mean(values, mask, scale):
    seq = masked_sum(values, mask, dim=-1) / (mask.sum(dim=-1) + _TINY)
    alive = (mask.sum(dim=-1) > 0).to(values.dtype)
    return (seq * alive).sum() / alive.sum().clamp_min(_TINY)


def _seq_mean_token_sum_norm(values, mask, scale):
    # Dr.GRPO: sum of every token loss over a constant; verl's default constant is the
    # padded response length (mask.shape[-1]), and it sums over sequences (no seq mean).
    divisor = mask.shape[-1] if scale is None else scale
    return masked_sum(values, mask) / divisor


AGG_MODES: dict[str, Callable[..., torch.Tensor]] = {
    "token-mean": _token_mean,
    "seq-mean-token-sum": _seq_mean_token_sum,
    "seq-mean-token-mean": _seq_mean_token_mean,
    "seq-mean-token-sum-norm": _seq_mean_token_sum_norm,
}


def agg_loss(
    values: torch.Tensor,
    mask: torch.Tensor,
    mode: str = "token-mean",
    loss_scale_factor: Optional[float] = None,
) -> torch.Tensor:
    """Aggregate a `(batch, len)` loss matrix to a scalar with verl's `loss_agg_mode`.

    `loss_scale_factor` is the divisor of `seq-mean-token-sum-norm` (default: the
    padded response length `mask.shape[-1]`, like verl); other modes ignore it.
    """
    if mode not in AGG_MODES:
        raise ValueError(f"unknown loss_agg_mode {mode=}; expected one of {', '.join(AGG_MODES)}")
    return AGG_MODES[mode](values, mask.to(values.dtype), loss_scale_factor)


# --------------------------------------------------------------------------- policy loss


def policy_loss(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    clip_ratio_c: float = 3.0,
    agg: str = "token-mean",
    loss_scale_factor: Optional[float] = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Dual-clip PPO loss (verl's `vanilla`); `advantages` are per token.

    Returns `(loss, metrics)` with `actor/pg_clipfrac` (share of tokens where the
    clipped term is larger), `actor/ppo_kl` (mean old − new log-prob) and
    `actor/pg_clipfrac_lower` (share of negative-advantage tokens cut by the dual clip).
    """
    if clip_ratio_c <= 1.0:
        raise ValueError(f"dual-clip bound must be > 1: {clip_ratio_c=}")
    mask = mask.to(log_prob.dtype)
    log_ratio = torch.clamp(log_prob - old_log_prob, -20.0, 20.0)  # exp overflow guard
    ratio = torch.exp(log_ratio)
    loss_unclipped = -advantages * ratio
    loss_clipped = -advantages * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    loss_ppo = torch.maximum(loss_unclipped, loss_clipped)
    loss_dual_bound = -advantages * clip_ratio_c
    negative = advantages < 0
    # Dual clip: for A < 0 a huge ratio would give an unbounded loss; cap it at −A·c.
    loss_tok = torch.where(negative, torch.minimum(loss_ppo, loss_dual_bound), loss_ppo)
    with torch.no_grad():
        clipfrac = masked_mean((loss_clipped > loss_unclipped).to(mask.dtype), mask)
        clipfrac_lower = masked_mean(((loss_ppo > loss_dual_bound) & negative).to(mask.dtype), mask)
        ppo_kl = masked_mean(-log_ratio, mask)
    loss = agg_loss(loss_tok, mask, agg, loss_scale_factor)
    return loss, {
        M.PG_CLIPFRAC: float(clipfrac),
        M.PPO_KL: float(ppo_kl),
        M.PG_CLIPFRAC_LOWER: float(clipfrac_lower),
    }


#: name -> fn(log_prob, old_log_prob, advantages, mask, clip_low, clip_high, clip_ratio_c, agg)
POLICY_LOSSES: dict[str, Callable[..., tuple[torch.Tensor, dict[str, float]]]] = {
    "vanilla": policy_loss,
}


# --------------------------------------------------------------------------- KL, entropy


def _kl(logp, ref):
    return logp - ref


def _abs(logp, ref):
    return (logp - ref).abs()


def _mse(logp, ref):
    return 0.5 * (logp - ref).square()


def _low_var_kl(logp, ref):
    # Schulman's k3 estimator of KL(π‖π_ref): unbiased and always ≥ 0; clamps as verl.
    log_ratio = torch.clamp(ref - logp, -20.0, 20.0)
    return torch.clamp(torch.exp(log_ratio) - log_ratio - 1.0, -10.0, 10.0)


KL_PENALTIES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "kl": _kl,
    "k1": _kl,
    "abs": _abs,
    "mse": _mse,
    "k2": _mse,
    "low_var_kl": _low_var_kl,
    "k3": _low_var_kl,
}


def kl_penalty(log_prob: torch.Tensor, ref_log_prob: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-token KL estimate between the policy and the reference (verl's kinds)."""
    if kind not in KL_PENALTIES:
        raise ValueError(f"unknown kl_loss_type {kind=}; expected one of {', '.join(KL_PENALTIES)}")
    return KL_PENALTIES[kind](log_prob, ref_log_prob)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of softmax(logits) over the last axis: logsumexp − Σ p·logit."""
    probs = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(dim=-1)


def token_log_probs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(token) under softmax(logits); logits `(..., V)`, tokens `(...)`."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def log_probs_entropy_forward(logits, tokens, logp_out=None, probs_out=None, scratch=None):
    """(log p at `tokens`, entropy, log_softmax(logits), its exp) of logits [N, V]; the `*_out`
    and `scratch` [N, V] buffers (None: fresh tensors) let a caller reuse its memory."""
    logp = torch.log_softmax(logits, dim=-1, out=logp_out)
    probs = torch.exp(logp, out=probs_out)
    # −Σ p·log p: closer to float64 than logsumexp − Σ p·z (and than a bmm) by ~10×
    entropy = -torch.mul(probs, logp, out=scratch).sum(-1)
    return logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1), entropy, logp, probs


def log_probs_entropy_backward(probs, logp, entropy, tokens, grad_logp, grad_entropy, out=None):
    """Gradient [N, V] wrt the logits of `log_probs_entropy_forward`'s two outputs (into `out`)."""
    g_logp, g_ent = grad_logp.unsqueeze(-1), grad_entropy.unsqueeze(-1)
    # d log p_y / dz = onehot(y) − p;  dH / dz = −p · (log p + H): two passes over [N, V]
    grad = torch.addcmul(-(g_logp + g_ent * entropy.unsqueeze(-1)), logp, -g_ent, out=out).mul_(probs)
    return grad.scatter_add_(-1, tokens.unsqueeze(-1), g_logp)


class _LogProbEntropy(torch.autograd.Function):
    """`token_log_probs` and `entropy_from_logits` in one pass over the vocabulary, with the
    closed-form gradient (verl's fused linear-cross-entropy kernels do the same on GPU).
    Autograd through log_softmax, softmax and logsumexp separately made about ten passes
    over the [N, V] logits forward and backward; this makes four and three."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, tokens: torch.Tensor):
        token_logp, entropy, logp, probs = log_probs_entropy_forward(logits, tokens)
        ctx.save_for_backward(probs, logp, entropy, tokens)
        return token_logp, entropy

    @staticmethod
    def backward(ctx, grad_logp: torch.Tensor, grad_entropy: torch.Tensor):
        probs, logp, entropy, tokens = ctx.saved_tensors
        return log_probs_entropy_backward(probs, logp, entropy, tokens, grad_logp, grad_entropy), None


def log_probs_and_entropy(logits: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(`token_log_probs`, `entropy_from_logits`) of `logits` [N, V] at `tokens` [N]: the same
    values to float rounding (~1e-6), at half the cost forward + backward."""
    if logits.dim() != 2 or tokens.shape != logits.shape[:1]:
        raise ValueError(
            f"expected logits [N, V] and tokens [N]: {tuple(logits.shape)=} {tuple(tokens.shape)=}"
        )
    return _LogProbEntropy.apply(logits.float(), tokens)


# --------------------------------------------------------------------------- actor loss


def actor_loss(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    entropy: Optional[torch.Tensor] = None,
    ref_log_prob: Optional[torch.Tensor] = None,
    entropy_coeff: float = 0.0,
    kl_loss_coef: float = 0.0,
    kl_loss_type: str = "low_var_kl",
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    clip_ratio_c: float = 3.0,
    agg: str = "token-mean",
    policy: str = "vanilla",
    loss_scale_factor: Optional[float] = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """pg_loss − entropy_coeff·agg(entropy) + kl_loss_coef·agg(kl), as verl's actor.

    Entropy and KL are aggregated with the same `agg` mode as the policy loss and
    reported (`actor/entropy`, `actor/kl_loss`) whenever given, even at weight 0.
    """
    if policy not in POLICY_LOSSES:
        raise ValueError(f"unknown policy loss {policy=}; expected one of {', '.join(POLICY_LOSSES)}")
    pg, out = POLICY_LOSSES[policy](
        log_prob,
        old_log_prob,
        advantages,
        mask,
        clip_low=clip_low,
        clip_high=clip_high,
        clip_ratio_c=clip_ratio_c,
        agg=agg,
        loss_scale_factor=loss_scale_factor,
    )
    loss = pg
    out[M.PG_LOSS] = float(pg.detach())
    if entropy is not None:
        ent = agg_loss(entropy, mask, agg, loss_scale_factor)
        out[M.ENTROPY] = float(ent.detach())
        if entropy_coeff:
            loss = loss - entropy_coeff * ent
    if ref_log_prob is not None:
        kl = agg_loss(kl_penalty(log_prob, ref_log_prob, kl_loss_type), mask, agg, loss_scale_factor)
        out[M.KL_LOSS] = float(kl.detach())
        if kl_loss_coef:
            loss = loss + kl_loss_coef * kl
    return loss, out


def registries() -> dict[str, dict[str, Any]]:
    """Every name-keyed registry of this module (for contract tests and `--help`)."""
    return {
        "adv_estimator": ADV_ESTIMATORS,
        "kl_loss_type": KL_PENALTIES,
        "loss_agg_mode": AGG_MODES,
        "policy_loss": POLICY_LOSSES,
    }
