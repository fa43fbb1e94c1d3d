"""The GRPO trainable: verl-exact math, Archer2.0 metrics, pluggable backends.

`build_trainer(config)` returns a Trainer; `GRPOTrainable` is the Ray Tune wrapper
(imported lazily so that importing `trainable` does not start Ray).
"""

from trainable.trainer import Trainer, build_trainer, validate_config

__all__ = ["Trainer", "build_trainer", "validate_config", "GRPOTrainable"]


def __getattr__(name):  # lazy: Ray is heavy and not needed for pure math / tests
    if name == "GRPOTrainable":
        from trainable.ray_trainable import GRPOTrainable

        return GRPOTrainable
    raise AttributeError(name)
