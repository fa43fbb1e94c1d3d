"""A test backend that says where it runs: `tests.cluster.node_backend:NodeTrainer`.

It is the reliability suite's `FaultyTrainer` (seeded fake metric curves; `sleep_s` per
step) plus one JSON line per step in `node_log`: the trial, the Ray node id and IP of the
worker running it, the worker's pid, and the step. A retried trial thus shows on which
node each attempt ran and at which step it started again.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

from tests.reliability.faulty_backend import FaultyConfig, FaultyTrainer


class NodeConfig(FaultyConfig):
    node_log: Optional[str] = None
    """Append `{"coeff", "trial", "node", "ip", "pid", "step"}` here after every step."""


class NodeTrainer(FaultyTrainer):
    config_model = NodeConfig

    def __init__(self, config: NodeConfig):
        super().__init__(config)
        self.trial_id = "?"

    def attach_trial(self, trial: dict[str, Any]) -> None:
        self.trial_id = str(trial.get("id"))

    def step(self) -> dict[str, float]:
        out = super().step()
        if self.config.node_log:
            import ray

            ctx = ray.get_runtime_context()
            line = {
                "coeff": self.config.algorithm.entropy_coeff,
                "trial": self.trial_id,
                "node": ctx.get_node_id(),
                "ip": ray.util.get_node_ip_address(),
                "pid": os.getpid(),
                "step": self.step_count,
            }
            with open(self.config.node_log, "a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")
        return out
