"""The Trainer protocol every backend implements, and `build_trainer`."""

from __future__ import annotations

from typing import Any, Protocol

from trainable.backends import backend_entry, load_object
from trainable.config import BaseModel, parse_config


class Trainer(Protocol):
    config: BaseModel
    step_count: int
    """Steps taken so far (0 before the first `step()`)."""

    def step(self) -> dict[str, float]:
        """Run one full GRPO step; return every key of `trainable.metrics.ALL_KEYS`."""

    def save(self, directory: str) -> None:
        """Write everything needed to continue exactly (model, optimiser, RNG, step)."""

    def load(self, directory: str) -> None:
        """Restore what `save` wrote; the next `step()` equals the uninterrupted one."""

    def done(self) -> bool:
        """True when the trainer has nothing left to run (step budget used, process exited)."""

    def close(self) -> None:
        """Release processes / memory (idempotent)."""


def validate_config(config: dict[str, Any]) -> BaseModel:
    """Parse a nested trainer config (with optional `backend`, default tiny)."""
    entry = backend_entry(str(config.get("backend", "tiny")))
    return parse_config(load_object(entry.config), config)


def prepare_backend(config: dict[str, Any]) -> None:
    """Run the backend's one-time driver-side preparation, if it has one."""
    parsed = validate_config(config)
    entry = backend_entry(parsed.backend)
    if entry.prepare:
        load_object(entry.prepare)(parsed)


WATCH_KEY = "_watch"
"""Trial config key of the sweep's watched metrics (rule name → metric key), which
GRPOTrainable hands to the trainer (the command backend checks them at its first report)."""


def build_trainer(config: dict[str, Any]) -> Trainer:
    """Build the backend named by `config["backend"]` (default `tiny`) from a nested dict."""
    parsed = validate_config(config)
    entry = backend_entry(parsed.backend)
    return load_object(entry.trainer)(parsed)
