"""The `hf` backend: GRPO on a transformers causal LM (Qwen3 family).

`HFPolicy` implements `trainable.grpo.Policy` over a Hugging Face model, and
`HFTrainer` is a `grpo_base.GRPOTrainer`, so this backend runs the very same
batching, GRPO step (rollout, rewards, metrics, advantages, PPO updates) and
checkpoints as the tiny one. What is its own: the model, from a local directory
(`model.path`) or built from a Qwen3 config with the locally built task tokenizer
(tests, benches, the GPU check); the prompt template; and the engines.

Engines: rollouts by vLLM (weights pushed after every update) or HF `generate`;
updates by DeepSpeed ZeRO or torch AdamW (`hf_engines.pick_engines`). Log-probs
and entropies are computed on temperature-scaled logits, as verl's actor does, so
the PPO ratio is taken against the distribution that was sampled.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from typing import Any

import torch

from trainable import algos, data_rewards, tasks
from trainable.backends import grpo_base, hf_data, hf_engines, hf_vllm
from trainable.config import ConfigError, HFGRPOConfig, nearest

log = logging.getLogger(__name__)
SPLIT_SEED = grpo_base.SPLIT_SEED  # the same fixed task split as the tiny backend (benches read it here)

#: A tiny Qwen3 (≈0.6M parameters with the 4k task vocabulary) for CPU tests and benches;
#: `model.config` entries override these.
TINY_QWEN3: dict[str, Any] = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=512,
    tie_word_embeddings=True,
    rope_theta=10000.0,
)


class HFPolicy(grpo_base.ModelPolicy):
    """`grpo.Policy` over a transformers causal LM; outputs land on the inputs' device."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        temperature: float = 1.0,
        rollout: hf_vllm.VLLMRollout | None = None,
    ):
        self.model, self.tok, self.temperature, self.rollout = model, tokenizer, temperature, rollout
        self.eos_id = int(tokenizer.eos_token_id)
        pad = tokenizer.pad_token_id
        self.pad_id = int(self.eos_id if pad is None else pad)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _sample(self, prompt_ids, n, temperature, max_new_tokens, generator) -> list[list[int]]:
        # Engines seed their own samplers; the seed comes from `generator`, so its state
        # alone fixes the responses (and is what checkpoints save).
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        if self.rollout is not None:
            return self.rollout.generate(prompt_ids, n, temperature, max_new_tokens, seed)
        return self._hf_generate(prompt_ids, n, temperature, max_new_tokens, seed)

    def _hf_generate(self, prompt_ids, n, temperature, max_new_tokens, seed) -> list[list[int]]:
        from transformers import GenerationConfig

        ids, mask = grpo_base.left_pad(prompt_ids, self.pad_id)
        # Plain sampling: no top-k/top-p/penalties from the checkpoint's generation defaults;
        # temperature 0 is greedy (validation's default, as vLLM reads it).
        sampling = (
            dict(do_sample=True, temperature=temperature, top_k=0, top_p=1.0) if temperature > 0 else {}
        )
        gen = GenerationConfig(
            **(sampling or dict(do_sample=False)),
            max_new_tokens=max_new_tokens,
            num_return_sequences=n,
            eos_token_id=self.eos_id,
            pad_token_id=self.pad_id,
        )
        dev = self.device
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(seed)
            seqs = self.model.generate(
                input_ids=ids.to(dev), attention_mask=mask.to(dev), generation_config=gen
            )
        return seqs[:, ids.shape[1] :].tolist()

    def logprobs(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_prompt: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        dev = self.device
        ids, mask = input_ids.to(dev), attention_mask.to(dev)
        # Left padding: positions count real tokens only, as generate() numbers them.
        pos = (mask.cumsum(-1) - 1).clamp_min(0)
        n_resp = ids.shape[1] - n_prompt
        logits = (
            self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=pos,
                use_cache=False,
                logits_to_keep=n_resp + 1,
            )
            .logits[:, :-1]
            .float()
        )
        logits = logits / self.temperature
        logp = algos.token_log_probs(logits, ids[:, n_prompt:])
        ent = algos.entropy_from_logits(logits)
        return logp.to(input_ids.device), ent.to(input_ids.device)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=True)


def _qwen3_config(overrides: dict[str, Any], tok):
    """`Qwen3Config` of TINY_QWEN3 + `overrides`, special ids from `tok`; bad keys name themselves."""
    from transformers import Qwen3Config

    known = list(Qwen3Config().to_dict())
    for key in overrides:
        if key not in known:  # Qwen3Config would silently keep an unknown (misspelt) key
            raise ConfigError(f"model.config.{key}", f"not a Qwen3 config field{nearest(key, known)}")
    fields = {**TINY_QWEN3, "vocab_size": len(tok), **overrides}
    fields.update(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    try:
        return Qwen3Config(**fields)
    except Exception as exc:  # transformers raises several (strict dataclass) error types
        raise ConfigError("model.config", "not a valid Qwen3 config: " + " ".join(str(exc).split())) from None


def load_model_and_tokenizer(cfg: HFGRPOConfig):
    """(model, tokenizer) from `model.path`, or a Qwen3 built from `model.config` (seeded)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, Qwen3ForCausalLM

    mc = cfg.model
    dtype = getattr(torch, mc.dtype)
    if mc.path:
        if not os.path.isdir(mc.path):
            raise ConfigError("model.path", f"not a local directory (no hub downloads): {mc.path!r}")
        tok = AutoTokenizer.from_pretrained(mc.path, local_files_only=True, padding_side="left")
        # Cast after loading: the dtype keyword is spelt differently across transformers versions.
        model = AutoModelForCausalLM.from_pretrained(mc.path, local_files_only=True).to(dtype)
    else:
        from trainable.hf_tokenizer import build_task_tokenizer

        tok = build_task_tokenizer()
        qcfg = _qwen3_config(mc.config, tok)
        torch.manual_seed(cfg.trainer.seed)
        model = Qwen3ForCausalLM(qcfg).to(dtype)
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return model, tok


def encode_prompt(tok, problem: tasks.Problem, template: str) -> list[int]:
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    return bos + tok.encode(template.format(prompt=problem.prompt), add_special_tokens=False)


class HFTrainer(grpo_base.GRPOTrainer):
    """The Trainer protocol (`trainable.trainer.Trainer`) for a transformers causal LM."""

    checkpoint_file = "hf_trainer.pt"

    def __init__(self, config: HFGRPOConfig):
        super().__init__(config)
        cfg = config
        self.rollout_engine, self.update_engine = hf_engines.pick_engines(
            cfg.model.rollout_engine, cfg.model.update_engine
        )
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        model, self.tok = load_model_and_tokenizer(cfg)
        self.model = model.to(self.device)
        self.val_set: list[hf_data.DataPrompt] = []
        self.val_chunk = cfg.data.train_batch_size
        if cfg.data.train_files:  # rows rendered with the checkpoint's chat template
            self.train_set = hf_data.load_prompts(cfg, self.tok)
            self.val_set = hf_data.load_val_prompts(cfg, self.tok)
            self.score_fn = data_rewards.scorer(cfg.data.reward)
        self._check_lengths()
        ref = grpo_base.frozen_copy(self.model)
        self._tmp = None
        rollout = self._start_vllm() if self.rollout_engine == "vllm" else None
        self.policy = HFPolicy(self.model, self.tok, cfg.rollout.temperature, rollout)
        self.ref = HFPolicy(ref, self.tok, cfg.rollout.temperature)
        self.optimizer = self._make_optimizer()
        log.info(
            "hf backend: rollout=%s update=%s device=%s", self.rollout_engine, self.update_engine, self.device
        )

    def _load_train_set(self):
        # Data files are read once the tokenizer is loaded (they are rendered with it).
        return [] if self.config.data.train_files else super()._load_train_set()

    def _check_lengths(self) -> None:
        sets = [
            (
                "data.train_files' prompts" if self.config.data.train_files else "the task's prompts",
                self.train_set,
            )
        ]
        for what, items in sets + [("data.val_files' prompts", self.val_set)]:
            longest = max((len(self._encode(p)) for p in items), default=0)
            if longest > self.config.data.max_prompt_length:
                raise ConfigError(
                    "data.max_prompt_length",
                    f"{what} have up to {longest} tokens (got {self.config.data.max_prompt_length})",
                )

    def _val_source(self, item: hf_data.DataPrompt) -> str:
        return item.row.data_source

    def _start_vllm(self) -> hf_vllm.VLLMRollout:
        cfg = self.config
        self._tmp = tempfile.TemporaryDirectory(prefix="archer-hf-vllm-")
        self.model.save_pretrained(self._tmp.name)  # vLLM starts from a directory
        return hf_vllm.VLLMRollout(
            self._tmp.name,
            cfg.model.dtype,
            cfg.data.max_prompt_length + cfg.data.max_response_length,
            self.tok.eos_token_id,
            cfg.model.gpu_memory_utilization,
            cfg.trainer.seed,
        )

    def _make_optimizer(self):
        act = self.config.actor
        if self.update_engine == "deepspeed":
            return hf_engines.DeepSpeedOptimizer(
                self.model,
                self.config.model.zero_stage,
                act.lr,
                act.weight_decay,
                act.grad_clip,
                self.config.model.dtype,
            )
        return torch.optim.AdamW(self.model.parameters(), lr=act.lr, weight_decay=act.weight_decay)

    def _encode(self, item: tasks.Problem | hf_data.DataPrompt) -> list[int]:
        if isinstance(item, hf_data.DataPrompt):
            return list(item.ids)  # rendered once, when the files were read
        return encode_prompt(self.tok, item, self.config.model.prompt_template)

    def _after_update(self) -> None:
        # vLLM samples from its own copy of the weights: push the updated (or loaded) ones,
        # then prove the copy took (a failed sync is an error, never a stale rollout policy).
        rollout = self.policy.rollout
        if rollout is None:
            return
        rollout.sync(self.model, getattr(self.optimizer, "zero_stage", 0))
        probe = self._encode(self.train_set[0])
        rollout.check(self.policy, probe, self.config.rollout.temperature, self.step_count)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
