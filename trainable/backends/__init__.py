"""Backend registry: name -> (trainer class path, config model path).

Entries are import strings so that heavy backends (transformers, vLLM, DeepSpeed)
load only when used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict


@dataclass(frozen=True)
class BackendEntry:
    trainer: str
    """`module:Class` of the Trainer."""
    config: str
    """`module:Class` of its pydantic config model."""
    description: str
    prepare: str | None = None
    """`module:function(parsed_config)` run once in the driver before any trial starts
    (e.g. building a cached warm start with visible progress instead of inside a worker)."""
    check: str | None = None
    """`module:function(parsed_config)` for checks that read files named by the config (data
    sets); it raises `trainable.config.ConfigError`, so `archer-sweep validate` reports a
    bad file as one located line (exit 2) before any trial starts."""


BACKENDS: dict[str, BackendEntry] = {
    "tiny": BackendEntry(
        "trainable.backends.tiny:TinyTrainer",
        "trainable.config:GRPOConfig",
        "embedded CPU world: small transformer on a synthetic arithmetic task",
        prepare="trainable.backends.tiny:prepare",
    ),
    "hf": BackendEntry(
        "trainable.backends.hf:HFTrainer",
        "trainable.config:HFGRPOConfig",
        "transformers causal LM (Qwen3); vLLM rollouts + DeepSpeed on GPU",
        check="trainable.backends.hf_data:check_config",
    ),
    "command": BackendEntry(
        "trainable.backends.command:CommandTrainer",
        "trainable.backends.command_config:CommandConfig",
        "external trainer process (Archer2.0 / verl) read from its logs",
    ),
}


PLUGIN_GROUP = "trainable.backends"
"""Entry-point group through which other packages add backends: `name = "package.module"`,
where the module defines `Trainer` and `Config` (and may define `prepare`). archer-sweep's
`replay` backend comes this way: it reads histories with archer_sweep's readers, and
`trainable` never imports archer_sweep."""


def _plugins() -> dict[str, BackendEntry]:
    """Backends registered under `PLUGIN_GROUP`, named without importing their modules."""
    from importlib.metadata import entry_points

    out = {}
    for ep in entry_points(group=PLUGIN_GROUP):
        if ep.name not in BACKENDS:  # a built-in name is never shadowed
            module = ep.value.partition(":")[0]
            out[ep.name] = BackendEntry(f"{module}:Trainer", f"{module}:Config", f"plugin backend ({module})")
    return out


BACKENDS.update(_plugins())


def load_object(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def reported_metrics(name: str, config: Any) -> set[str] | None:
    """Metric keys backend `name` reports for a parsed `config`; None = open-ended.

    The spec validator rejects rules on keys outside this set (with the nearest key).
    A backend's config model may define `reported_metrics()` to extend or replace it.
    """
    from trainable import metrics

    extra = getattr(config, "reported_metrics", None)
    if callable(extra):
        return extra()
    keys = set(metrics.ALL_KEYS)
    if name == "tiny":
        keys.add(metrics.GIBBERISH_FRAC)
        if getattr(getattr(config, "data", None), "val_size", 0):
            keys |= {metrics.TINY_VAL_SCORE, metrics.TIME_VAL}  # sparse: on test_freq's steps
    return keys


def backend_entry(name: str) -> BackendEntry:
    from trainable.config import ConfigError, nearest

    if ":" in name and name not in BACKENDS:
        return custom_backend_entry(name)
    if name not in BACKENDS:
        raise ConfigError(
            "backend",
            f"unknown backend `{name}`{nearest(name, list(BACKENDS))}; expected one of {', '.join(BACKENDS)}",
        )
    return BACKENDS[name]


def custom_backend_entry(path: str) -> BackendEntry:
    """A user's own Trainer named `package.module:Class` (imported on the driver and workers).

    Its config model is the class attribute `config_model` (a pydantic model whose
    fields include `backend`), else the permissive `CustomBackendConfig`.
    """
    import os
    import sys

    from trainable.config import ConfigError

    if os.getcwd() not in sys.path:  # like `python -m`: the working directory's packages
        sys.path.append(os.getcwd())
    try:
        cls = load_object(path)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(
            "backend",
            f"cannot import custom backend `{path}`: {exc} "
            f"(expected `package.module:Class` importable from the "
            f"working directory or PYTHONPATH)",
        ) from None
    model = getattr(cls, "config_model", None)
    config = (
        f"{model.__module__}:{model.__qualname__}"
        if model is not None
        else "trainable.backends:CustomBackendConfig"
    )
    return BackendEntry(path, config, f"custom backend {path}")


class CustomBackendConfig(BaseModel):
    """Config of a custom backend without `config_model`: any nested keys (the Trainer checks them)."""

    model_config = ConfigDict(extra="allow")
    backend: str
    """`package.module:Class` of the Trainer."""
