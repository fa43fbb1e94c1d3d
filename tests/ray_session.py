"""One local Ray session for a test module: explicit CPUs, no dashboard, the repository on
the workers' path, trials in the driver's working directory, W&B quiet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import ray

REPO = str(Path(__file__).resolve().parents[1])


def local_ray_session(num_cpus: int = 2, **env: str) -> Iterator[None]:
    """For a fixture: `yield from local_ray_session(WANDB_MODE="offline")`."""
    env_vars = {"PYTHONPATH": REPO, "RAY_CHDIR_TO_TRIAL_DIR": "0", "WANDB_SILENT": "true"} | env
    ray.init(
        num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env_vars}
    )
    try:
        yield
    finally:
        ray.shutdown()
