"""One backend-independent GRPO step, verl's order: rollout → rewards → metrics →
advantages → old/ref log-probs → `ppo_epochs` × mini-batches of PPO updates.

A backend supplies a `Policy` (and a frozen reference `Policy` for the KL term), a
torch optimizer over the policy's parameters and a score function; `grpo_step` does
the rest, so the tiny and hf backends share every line of the algorithm.

Policy interface (implemented by `trainable.backends.tiny.TinyPolicy` and
`trainable.backends.hf.HFPolicy`, over `trainable.backends.grpo_base.ModelPolicy`;
`grpo_base.GRPOTrainer` draws the prompts and calls `grpo_step` for both):

- `eos_id: int`, `pad_id: int`
- `generate(prompt_ids, n, temperature, max_new_tokens, generator) -> list[list[int]]`:
  `n` sampled responses per prompt, prompt-major (prompt 0's n responses first); each
  response is its token ids up to and including EOS, or cut at `max_new_tokens`.
  Sampling must draw its randomness from `generator` (a `torch.Generator`), so that
  the same generator state gives the same responses.
- `logprobs(input_ids, attention_mask, n_prompt) -> (logp, entropy)`: for
  `input_ids` [B, n_prompt + R] (prompts left-padded to `n_prompt`, responses
  right-padded), the log-probability of each response token `input_ids[:, n_prompt:]`
  and the entropy (nats) of the distribution it was drawn from, both [B, R]. Gradients
  flow unless the caller runs it under `torch.no_grad()`. The reference policy's entropy
  is never read: it may return None there (the tiny backend does, to skip its cost).
- `decode(ids) -> str`: text of a response for the reward function and metrics.
- `train()` / `eval()` (torch.nn.Module semantics); the optimizer owns the parameters.

The optimizer is a torch optimizer, or any object with `param_groups`, `zero_grad()`
and `apply_update(loss, grad_clip) -> grad_norm` doing backward, clipping and step
itself (the hf backend's DeepSpeed engine).

Mini-batches follow verl: `actor.ppo_mini_batch_size` counts prompts, each with its
`rollout.n` responses; batches are cut in rollout order; one optimizer step per
mini-batch; `ppo_epochs` passes. When there is exactly one update per step (one
epoch, one mini-batch) the old log-probs equal the current ones bit for bit, so they
are taken from the update's own forward pass instead of a second, identical one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from trainable import algos
from trainable import metrics as M


class Policy(Protocol):
    eos_id: int
    pad_id: int

    def generate(
        self,
        prompt_ids: list[list[int]],
        n: int,
        temperature: float,
        max_new_tokens: int,
        generator: torch.Generator,
    ) -> list[list[int]]: ...

    def logprobs(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_prompt: int
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def train(self, mode: bool = True): ...

    def eval(self): ...


@dataclass
class Rollout:
    """One step's sampled batch, padded (what the update and diagnostics read)."""

    input_ids: torch.Tensor  # [B, P + R]
    attention_mask: torch.Tensor  # [B, P + R]
    response_mask: torch.Tensor  # [B, R] float, 1 on response tokens (EOS included)
    n_prompt: int  # P
    responses: list[list[int]]
    texts: list[str]
    scores: torch.Tensor  # [B]
    group_ids: list[int]


def pack(prompts: list[list[int]], responses: list[list[int]], n: int, pad_id: int):
    """(input_ids, attention_mask, response_mask, P): prompts left-padded, responses right-padded."""
    P = max(len(p) for p in prompts)
    R = max(1, max(len(r) for r in responses))
    B = len(responses)
    ids = torch.full((B, P + R), pad_id, dtype=torch.long)
    attn = torch.zeros((B, P + R), dtype=torch.long)
    for i, resp in enumerate(responses):
        prompt = prompts[i // n]
        ids[i, P - len(prompt) : P] = torch.tensor(prompt, dtype=torch.long)
        ids[i, P : P + len(resp)] = torch.tensor(resp, dtype=torch.long)
        attn[i, P - len(prompt) : P + len(resp)] = 1
    return ids, attn, attn[:, P:].float(), P


def rollout(
    policy: Policy,
    prompts: list[list[int]],
    answers: list[int],
    cfg,
    generator: torch.Generator,
    score_fn: Callable[[str, int], float],
) -> Rollout:
    n = cfg.rollout.n
    policy.eval()
    with torch.no_grad():
        responses = policy.generate(
            prompts, n, cfg.rollout.temperature, cfg.data.max_response_length, generator
        )
    texts = [policy.decode(r) for r in responses]
    scores = torch.tensor([float(score_fn(t, answers[i // n])) for i, t in enumerate(texts)])
    ids, attn, resp_mask, P = pack(prompts, responses, n, policy.pad_id)
    return Rollout(ids, attn, resp_mask, P, responses, texts, scores, [i // n for i in range(len(responses))])


#: Update metrics averaged over every optimizer step of a GRPO step (as verl does).
_ACTOR_KEYS = (M.PG_LOSS, M.KL_LOSS, M.PG_CLIPFRAC, M.PPO_KL)


def _mini_batches(batch_size: int, n: int, mini_prompts: int) -> list[slice]:
    size = mini_prompts * n
    return [slice(s, s + size) for s in range(0, batch_size, size)]


def _update(policy, ref_logp, old_logp, adv, ro: Rollout, optimizer, cfg, single: bool):
    """`ppo_epochs` × mini-batches of optimizer steps; returns averaged actor metrics and,
    in the single-update case, the (old) log-probs and entropy of its forward pass."""
    alg, act = cfg.algorithm, cfg.actor
    sums: dict[str, float] = {}
    taken = None
    policy.train()
    for _ in range(act.ppo_epochs):
        for sl in _mini_batches(ro.input_ids.shape[0], cfg.rollout.n, act.ppo_mini_batch_size):
            mask = ro.response_mask[sl]
            logp, ent = policy.logprobs(ro.input_ids[sl], ro.attention_mask[sl], ro.n_prompt)
            old = logp.detach() if single else old_logp[sl]
            loss, values = algos.actor_loss(
                logp,
                old,
                adv[sl],
                mask,
                entropy=ent,
                ref_log_prob=ref_logp[sl],
                entropy_coeff=alg.entropy_coeff,
                kl_loss_coef=alg.kl_loss_coef,
                kl_loss_type=alg.kl_loss_type,
                clip_low=alg.clip_ratio_low,
                clip_high=alg.clip_ratio_high,
                clip_ratio_c=alg.clip_ratio_c,
                agg=alg.loss_agg_mode,
            )
            optimizer.zero_grad(set_to_none=True)
            if hasattr(optimizer, "apply_update"):  # engines owning backward/clip/step (DeepSpeed)
                grad_norm = optimizer.apply_update(loss, act.grad_clip)
            else:
                loss.backward()
                params = [p for g in optimizer.param_groups for p in g["params"]]
                grad_norm = torch.nn.utils.clip_grad_norm_(params, act.grad_clip)
                optimizer.step()
            values = {k: values[k] for k in _ACTOR_KEYS} | {M.GRAD_NORM: float(grad_norm)}
            for key, value in values.items():
                sums[key] = sums.get(key, 0.0) + float(value)
            if single:
                taken = (logp.detach(), ent.detach())
    n_updates = act.ppo_epochs * len(
        _mini_batches(ro.input_ids.shape[0], cfg.rollout.n, act.ppo_mini_batch_size)
    )
    return {k: v / n_updates for k, v in sums.items()}, taken


def grpo_step(
    policy: Policy,
    ref_policy: Policy,
    optimizer: torch.optim.Optimizer,
    cfg,
    prompts: list[list[int]],
    answers: list[int],
    generator: torch.Generator,
    score_fn: Callable[[str, int], float],
) -> tuple[dict[str, float], Rollout]:
    """One GRPO step on `prompts` (with integer `answers`); `cfg` is a parsed GRPOConfig.

    Returns every key of `metrics.ALL_KEYS` except `step` (the trainer counts steps),
    and the rollout for backend-specific diagnostics.
    """
    t0 = time.perf_counter()
    ro = rollout(policy, prompts, answers, cfg, generator, score_fn)
    t_gen = time.perf_counter() - t0
    out = M.batch_metrics(
        ro.scores.tolist(),
        [len(r) for r in ro.responses],
        ro.group_ids,
        ro.texts,
        cfg.data.max_response_length,
    )
    estimator = algos.ADV_ESTIMATORS[cfg.algorithm.adv_estimator]
    adv = algos.token_advantages(
        estimator(ro.scores, ro.group_ids, norm_by_std=cfg.algorithm.norm_adv_by_std_in_grpo),
        ro.response_mask,
    )
    out[M.ADV_MEAN] = float(algos.masked_mean(adv, ro.response_mask))
    single = cfg.actor.ppo_epochs == 1 and cfg.actor.ppo_mini_batch_size == len(prompts)
    with torch.no_grad():
        ref_policy.eval()
        ref_logp, _ = ref_policy.logprobs(ro.input_ids, ro.attention_mask, ro.n_prompt)
        old_logp = old_ent = None
        if not single:
            policy.eval()
            old_logp, old_ent = policy.logprobs(ro.input_ids, ro.attention_mask, ro.n_prompt)
    actor, taken = _update(policy, ref_logp, old_logp, adv, ro, optimizer, cfg, single)
    if single:
        old_logp, old_ent = taken
    out.update(actor)
    # actor/entropy: token-mean entropy of the policy that sampled this batch (verl logs the
    # entropy of the old-log-prob pass).
    out[M.ENTROPY] = float(algos.masked_mean(old_ent, ro.response_mask))
    out[M.LR] = float(optimizer.param_groups[0]["lr"])
    t_step = time.perf_counter() - t0
    out[M.TIME_GEN], out[M.TIME_UPDATE], out[M.TIME_STEP] = t_gen, t_step - t_gen, t_step
    out[M.THROUGHPUT] = float(ro.attention_mask.sum()) / t_step
    return out, ro
