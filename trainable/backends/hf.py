"""The `hf` backend: GRPO on a transformers causal LM (Qwen3 family).

`HFPolicy` implements `trainable.grpo.Policy` over a Hugging Face model, so this
backend runs the very same `grpo.grpo_step` (rollout, rewards, metrics, advantages,
PPO updates) as the tiny one. The model comes from a local directory
(`model.path`) or is built from a Qwen3 config with the locally built task
tokenizer (tests, benches, the GPU check); a frozen copy is the KL reference.

Engines: rollouts by vLLM (weights pushed after every update) or HF `generate`;
updates by DeepSpeed ZeRO or torch AdamW (`hf_engines.pick_engines`). Log-probs
and entropies are computed on temperature-scaled logits, as verl's actor does, so
the PPO ratio is taken against the distribution that was sampled.
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
from collections.abc import Sequence
from typing import Any

import torch

from trainable import algos, grpo, rewards, tasks
from trainable import metrics as M
from trainable.backends import hf_engines
from trainable.config import ConfigError, HFGRPOConfig, nearest

log = logging.getLogger(__name__)
CHECKPOINT = "hf_trainer.pt"
SPLIT_SEED = 0  # the same fixed task split as the tiny backend

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


def _cut_at_eos(ids: Sequence[int], eos_id: int) -> list[int]:
    ids = list(ids)
    return ids[: ids.index(eos_id) + 1] if eos_id in ids else ids


class HFPolicy:
    """`grpo.Policy` over a transformers causal LM; outputs land on the inputs' device."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        temperature: float = 1.0,
        rollout: hf_engines.VLLMRollout | None = None,
    ):
        self.model, self.tok, self.temperature, self.rollout = model, tokenizer, temperature, rollout
        self.eos_id = int(tokenizer.eos_token_id)
        pad = tokenizer.pad_token_id
        self.pad_id = int(self.eos_id if pad is None else pad)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def generate(
        self,
        prompt_ids: list[list[int]],
        n: int,
        temperature: float,
        max_new_tokens: int,
        generator: torch.Generator,
    ) -> list[list[int]]:
        # Engines seed their own samplers; the seed comes from `generator`, so its state
        # alone fixes the responses (and is what checkpoints save).
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        if self.rollout is not None:
            out = self.rollout.generate(prompt_ids, n, temperature, max_new_tokens, seed)
        else:
            out = self._hf_generate(prompt_ids, n, temperature, max_new_tokens, seed)
        return [_cut_at_eos(r, self.eos_id) for r in out]

    def _hf_generate(self, prompt_ids, n, temperature, max_new_tokens, seed) -> list[list[int]]:
        from transformers import GenerationConfig

        P = max(map(len, prompt_ids))
        ids = torch.full((len(prompt_ids), P), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, p in enumerate(prompt_ids):
            ids[i, P - len(p) :], mask[i, P - len(p) :] = torch.tensor(p), 1
        # Plain sampling: no top-k/top-p/penalties from the checkpoint's generation defaults.
        gen = GenerationConfig(
            do_sample=True,
            temperature=temperature,
            top_k=0,
            top_p=1.0,
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
        return seqs[:, P:].tolist()

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

    def train(self, mode: bool = True):
        self.model.train(mode)
        return self

    def eval(self):
        return self.train(False)


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


class HFTrainer:
    """The Trainer protocol (`trainable.trainer.Trainer`) for a transformers causal LM."""

    def __init__(self, config: HFGRPOConfig):
        self.config = cfg = config
        torch.set_num_threads(cfg.trainer.threads)
        self.rollout_engine, self.update_engine = hf_engines.pick_engines(
            cfg.model.rollout_engine, cfg.model.update_engine
        )
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        model, self.tok = load_model_and_tokenizer(cfg)
        self.model = model.to(self.device)
        self.train_set = tasks.rl_train_set(cfg.data.train_size, SPLIT_SEED)
        self._check_lengths()
        ref = copy.deepcopy(self.model).requires_grad_(False).eval()
        self._tmp = None
        rollout = self._start_vllm() if self.rollout_engine == "vllm" else None
        self.policy = HFPolicy(self.model, self.tok, cfg.rollout.temperature, rollout)
        self.ref = HFPolicy(ref, self.tok, cfg.rollout.temperature)
        self.optimizer = self._make_optimizer()
        self.data_gen = torch.Generator().manual_seed(2 * cfg.trainer.seed)
        self.sample_gen = torch.Generator().manual_seed(2 * cfg.trainer.seed + 1)
        self.step_count = 0
        log.info(
            "hf backend: rollout=%s update=%s device=%s", self.rollout_engine, self.update_engine, self.device
        )

    def _check_lengths(self) -> None:
        longest = max(
            len(encode_prompt(self.tok, p, self.config.model.prompt_template)) for p in self.train_set
        )
        if longest > self.config.data.max_prompt_length:
            raise ConfigError(
                "data.max_prompt_length",
                f"the task's prompts have up to {longest} tokens (got {self.config.data.max_prompt_length})",
            )

    def _start_vllm(self) -> hf_engines.VLLMRollout:
        cfg = self.config
        self._tmp = tempfile.TemporaryDirectory(prefix="archer-hf-vllm-")
        self.model.save_pretrained(self._tmp.name)  # vLLM starts from a directory
        return hf_engines.VLLMRollout(
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

    def _batch(self) -> tuple[list[list[int]], list[int]]:
        order = torch.randperm(len(self.train_set), generator=self.data_gen)
        problems = [self.train_set[i] for i in order[: self.config.data.train_batch_size]]
        template = self.config.model.prompt_template
        return [encode_prompt(self.tok, p, template) for p in problems], [p.answer for p in problems]

    def step(self) -> dict[str, float]:
        if self.done():
            raise RuntimeError(
                f"step budget used: {self.step_count=} trainer.total_steps={self.config.trainer.total_steps}"
            )
        prompts, answers = self._batch()
        out, _ = grpo.grpo_step(
            self.policy,
            self.ref,
            self.optimizer,
            self.config,
            prompts,
            answers,
            self.sample_gen,
            rewards.score,
        )
        self._sync_rollout()
        self.step_count += 1
        out[M.STEP] = float(self.step_count)
        return out

    def _sync_rollout(self) -> None:
        if self.policy.rollout is not None:
            self.policy.rollout.sync(self.model, getattr(self.optimizer, "zero_stage", 0))

    def save(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        state = {
            "ref": self.ref.model.state_dict(),
            "data_gen": self.data_gen.get_state(),
            "sample_gen": self.sample_gen.get_state(),
            "step": self.step_count,
        }
        if isinstance(self.optimizer, torch.optim.Optimizer):
            state |= {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
        else:  # DeepSpeed writes model + optimizer itself (partitioned under ZeRO)
            self.optimizer.save(directory)
        torch.save(state, os.path.join(directory, CHECKPOINT))

    def load(self, directory: str) -> None:
        state = torch.load(os.path.join(directory, CHECKPOINT), weights_only=True, map_location=self.device)
        self.ref.model.load_state_dict(state["ref"])
        if isinstance(self.optimizer, torch.optim.Optimizer):
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        else:
            self.optimizer.load(directory)
        self.data_gen.set_state(state["data_gen"].cpu())
        self.sample_gen.set_state(state["sample_gen"].cpu())
        self.step_count = int(state["step"])
        self._sync_rollout()

    def done(self) -> bool:
        return self.step_count >= self.config.trainer.total_steps

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
