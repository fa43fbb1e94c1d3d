"""The sweep spec (YAML -> pydantic). One definition drives parsing, validation and docs.

`load_spec(path, overrides)` returns a `SweepSpec` or raises `SpecError`, whose
`str()` is the one line the CLI prints: `FILE:LINE: <key path>: <problem> (expected …)`.
Errors in `--set` overrides are located as `--set:N` (the N-th `--set`, from 1).
Validation imports neither torch nor Ray: only pydantic models and the backend registry.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from archer_sweep.criteria import OPS, Forecast, Rule

SWEEP_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
"""A sweep name: also a directory name and part of W&B run names."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class TrainableSpec(_Model):
    backend: str = "tiny"
    """Backend name: tiny (embedded CPU), hf (transformers/vLLM/DeepSpeed), command (external trainer)."""
    config: dict[str, Any] = Field(default_factory=dict)
    """Nested trainer config (sections algorithm, actor, rollout, data, model, trainer); defaults fill the rest."""


class ParamSpec(_Model):
    type: Literal["uniform", "loguniform", "int", "choice", "fixed"]
    """Distribution: uniform | loguniform | int (step, log) | choice (values) | fixed (value)."""
    low: Optional[float] = Field(None, allow_inf_nan=False)
    """Lower bound (uniform, loguniform, int)."""
    high: Optional[float] = Field(None, allow_inf_nan=False)
    """Upper bound, inclusive (uniform, loguniform, int)."""
    step: Optional[float] = Field(None, allow_inf_nan=False)
    """Grid step (int, uniform)."""
    log: bool = False
    """Log scale (int, uniform); loguniform is uniform with log."""
    values: Optional[list[Any]] = None
    """Candidates (choice)."""
    value: Any = None
    """The value (fixed)."""


class SamplerSpec(_Model):
    type: Literal["tpe", "random", "gp", "cmaes", "qmc", "grid", "feasible"] = "tpe"
    """Optuna sampler; `gp` is Optuna's GPSampler that also models the trials the rules stopped
    (as infeasible points with their last report; Optuna's own GP sees COMPLETE trials only);
    `feasible`: the feasible-region model of `next` (P(healthy) from every judged trial's
    verdict, monotone prior on entropy/KL) proposing each new trial."""
    seed: Optional[int] = 0
    """Sampler seed (same seed ⇒ same proposals)."""
    n_startup_trials: int = Field(4, ge=0)
    """Random trials before model-based proposals (TPE/GP/CMA-ES/feasible)."""


class RepeatsSpec(_Model):
    count: int = Field(ge=1, le=1000)
    """Seeds per proposed config: trainer.seed, trainer.seed + 1, … (one Optuna trial per config)."""
    quorum: Optional[int] = Field(None, ge=1)
    """Healthy seeds a config needs to be healthy (default: all of them)."""
    stop_siblings: bool = True
    """A seed stopped by a bad rule (or NaN) stops the config's other seeds, as
    stopped:sibling:<rule>; false = they run on."""

    @property
    def needed(self) -> int:
        return self.quorum if self.quorum is not None else self.count


class SearchSpec(_Model):
    metric: str = "critic/score/mean"
    """Objective metric key."""
    mode: Literal["max", "min"] = "max"
    """Maximise or minimise the objective."""
    num_samples: int = Field(8, ge=1, le=1_000_000)
    """Trials in the sweep (including points_to_evaluate); they count Optuna trials, so with
    repeats each of these configs runs `repeats.count` seeds."""
    max_concurrent: int = Field(2, ge=1, le=10_000)
    """Trials running at once."""
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    """Optuna sampler that proposes each trial's parameters."""
    space: dict[str, ParamSpec] = Field(default_factory=dict)
    """Dotted trainable-config key -> distribution."""
    points_to_evaluate: list[dict[str, Any]] = Field(default_factory=list)
    """Configurations tried first (e.g. the seed's v1 and v2)."""
    objective_reduce: Literal["last", "best", "mean_last_5"] = "last"
    """What Optuna receives as the trial's value."""
    repeats: Optional[RepeatsSpec] = None
    """Run each config with several seeds and judge them as one (`3` = `{count: 3}`); off when absent."""

    @field_validator("repeats", mode="before")
    @classmethod
    def _count_alone(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return {"count": value}
        return value

    @property
    def seeds(self) -> int:
        """Trials per config (1 without repeats)."""
        return self.repeats.count if self.repeats is not None else 1


class ForecastSpec(_Model):
    window: int = Field(8, ge=3, le=10_000)
    """Reports (the last ones after `after_step` that carry the metric) the trend is fitted to."""
    horizon: int = Field(10, ge=1)
    """Steps ahead: stop when the threshold will be crossed by the current step + horizon."""
    confidence: float = Field(0.9, ge=0.5, lt=1, allow_inf_nan=False)
    """One-sided confidence that the trend is at least that steep (rank bound of the Theil–Sen slope)."""


class RuleSpec(_Model):
    name: str
    """Unique rule name; appears in verdicts as stopped:<name> / unhealthy:<name>."""
    metric: str
    """Metric key the rule watches."""
    op: Optional[Literal[">", ">=", "<", "<=", "==", "!="]] = None
    """Comparison (with `value`)."""
    value: Optional[float] = Field(None, allow_inf_nan=False)
    """Threshold for `op`."""
    between: Optional[list[float]] = Field(None, min_length=2, max_length=2)
    """Closed interval [low, high] (instead of op/value)."""
    after_step: int = Field(0, ge=0)
    """Bad rules: only reports with step > after_step count."""
    at_step: Optional[int] = Field(None, ge=1)
    """Judge once, at the first report with step >= at_step."""
    patience: int = Field(1, ge=1)
    """Bad rules: consecutive reports the condition must hold."""
    verdict: Literal["bad", "good"] = "bad"
    """bad = stop the trial when it holds; good = required at the end for `healthy`."""
    on_nan: Literal["stop", "skip", "fire"] = "stop"
    """Non-finite metric: stop (verdict stopped:nan), skip the report, or count as firing."""
    window: int = Field(1, ge=1)
    """Judge the mean over the last N reports (finite values only) instead of one report,
    for metrics that one batch makes noisy (e.g. the score of 8 prompts)."""
    forecast: Optional[ForecastSpec] = None
    """Bad rules with <, <=, >, >=: also stop when a robust trend of the last reports will
    cross the threshold within `horizon` steps (verdict stopped:<name>, reason `forecast: …`)."""
    relative_to: Optional[Literal["start"]] = None
    """`start`: `value` (or `between`) multiplies the metric's first finite reported value, so
    the rule carries over to a model whose scale differs (`actor/entropy < 0.05` × start)."""
    drop: Optional[float] = Field(None, gt=0, allow_inf_nan=False)
    """Bad rules, instead of a condition: fire when the metric is this far below its best so far
    (e.g. an eval score that peaked, then fell)."""
    drop_ratio: Optional[float] = Field(None, gt=0, le=1, allow_inf_nan=False)
    """Bad rules, instead of a condition: fire when the metric is this share of |best| below its best so far."""

    def to_rule(self) -> Rule:
        between = tuple(self.between) if self.between is not None else None
        return Rule(
            name=self.name,
            metric=self.metric,
            verdict=self.verdict,
            op=self.op,
            value=self.value,
            between=between,
            after_step=self.after_step,
            at_step=self.at_step,
            patience=self.patience,
            on_nan=self.on_nan,
            window=self.window,
            forecast=Forecast(**self.forecast.model_dump()) if self.forecast else None,
            relative_to=self.relative_to,
            drop=self.drop,
            drop_ratio=self.drop_ratio,
        )


class AshaSpec(_Model):
    grace_period: int = Field(10, ge=1)
    """Steps before ASHA may stop a trial."""
    reduction_factor: float = Field(3, gt=1, allow_inf_nan=False)
    """ASHA's eta."""


class SchedulerSpec(_Model):
    stop_when_decided: bool = True
    """Stop a trial at the step a good rule with `at_step` misses (verdict unhealthy:<rule>
    there, Optuna COMPLETE with the violated constraint); false = run it to its end anyway."""
    asha: Optional[AshaSpec] = None
    """Chain ASHA on the objective after the rules (off when absent)."""


class ResourcesSpec(_Model):
    cpu: float = Field(1, gt=0, allow_inf_nan=False)
    """CPUs per trial."""
    gpu: float = Field(0, ge=0, allow_inf_nan=False)
    """GPUs per trial."""


class StorageSpec(_Model):
    path: str = "results"
    """Ray Tune storage path; the sweep lives in <path>/<name>/."""
    study: Optional[str] = None
    """Optuna storage URL (e.g. postgresql://user@host:5432/db, password in PGPASSWORD);
    default sqlite:///<path>/<name>/study.db."""

    @field_validator("study")
    @classmethod
    def _known_database(cls, url: Optional[str]) -> Optional[str]:
        from archer_sweep.spec.study import check_study_url

        return None if url is None else check_study_url(url)


class WandbSpec(_Model):
    mode: Literal["offline", "online", "disabled"] = "offline"
    """W&B mode; online needs WANDB_API_KEY in the environment (never in the spec)."""
    project: Optional[str] = None
    """W&B project (default: the sweep name)."""


class TrackingSpec(_Model):
    wandb: WandbSpec = Field(default_factory=WandbSpec)
    """Weights & Biases logging of every trial: Ray's WandbLoggerCallback, each run written from a driver thread."""


class RaySpec(_Model):
    address: Optional[str] = None
    """null = local embedded Ray; "auto" or "host:port" = an existing cluster this machine is
    part of (docs/cluster.md; "ray://host:port", the Ray Client, needs ray[client])."""
    num_cpus: Optional[int] = Field(None, ge=1, le=1_000_000)
    """CPUs of the local Ray (default: the machine's)."""
    num_gpus: Optional[int] = Field(None, ge=0, le=100_000)
    """GPUs of the local Ray (default: the machine's, from CUDA_VISIBLE_DEVICES or /dev/nvidia*)."""


class FailureSpec(_Model):
    max_failures: int = Field(0, ge=-1)
    """Retries of a crashed trial (Ray Tune FailureConfig); -1 = forever."""
    step_timeout_s: Optional[float] = Field(None, gt=0, allow_inf_nan=False)
    """A step taking longer than this stops the trial as stopped:timeout."""
    start_timeout_s: Optional[float] = Field(None, gt=0, allow_inf_nan=False)
    """Seconds a trial may run before its first report (setup, model loading, a restore
    and the first step; also after each retry) before it is stopped:timeout; default
    step_timeout_s."""


class CheckpointSpec(_Model):
    frequency: int = Field(10, ge=0)
    """Checkpoint every N steps (0 = never; the end is always checkpointed)."""
    num_to_keep: Optional[int] = Field(2, ge=1)
    """Checkpoints kept per trial."""


class SweepSpec(_Model):
    name: str = Field(pattern=f"^{SWEEP_NAME_PATTERN}$")
    """Sweep name: the results subdirectory and W&B group."""
    trainable: TrainableSpec = Field(default_factory=TrainableSpec)
    """What each trial trains: the backend and its nested config."""
    search: SearchSpec = Field(default_factory=SearchSpec)
    """Objective, budget and search space."""
    criteria: list[RuleSpec] = Field(default_factory=list)
    """Monitoring rules: bad rules stop trials, good rules decide healthy at the end."""
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec)
    """Early stopping besides the bad rules: once a good rule decides, and optional ASHA."""
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    """What one trial reserves; with max_concurrent it must fit the local Ray."""
    storage: StorageSpec = Field(default_factory=StorageSpec)
    """Where results and the Optuna study live."""
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    """Experiment tracking."""
    ray: RaySpec = Field(default_factory=RaySpec)
    """Local embedded Ray or an existing cluster."""
    failure: FailureSpec = Field(default_factory=FailureSpec)
    """Retries and hang timeouts."""
    checkpoint: CheckpointSpec = Field(default_factory=CheckpointSpec)
    """Trial checkpoints (for resume and Ray's fault tolerance)."""

    def rules(self) -> list[Rule]:
        return [r.to_rule() for r in self.criteria]


__all__ = ["SweepSpec", "RuleSpec", "ParamSpec", "OPS"]
