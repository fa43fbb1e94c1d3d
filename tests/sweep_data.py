"""Sweeps the engine really runs (fake backend, seconds), built once per test process and
shared by the analyze/report/next/hunt tests; and a hand-made results directory."""

from __future__ import annotations

import functools
import json
import os
import tempfile
from pathlib import Path

import yaml

from trainable import metrics as M

ROOT = Path(__file__).parent.parent

FAKE_SPEC = {
    "name": "fakesweep",
    "trainable": {
        "backend": "tests.fake_backend:FakeTrainer",
        "config": {
            "algorithm": {"entropy_coeff": 0.005, "kl_loss_coef": 0.01},
            "trainer": {"total_steps": 14},
        },
    },
    "search": {
        "num_samples": 5,
        "max_concurrent": 2,
        "sampler": {"type": "tpe", "seed": 0},
        "space": {
            "algorithm.entropy_coeff": {"type": "loguniform", "low": 1.0e-4, "high": 5.0e-2},
            "algorithm.kl_loss_coef": {"type": "loguniform", "low": 1.0e-3, "high": 1.0e-1},
        },
        "points_to_evaluate": [
            {"algorithm.entropy_coeff": 0.03, "algorithm.kl_loss_coef": 0.01},
            {"algorithm.entropy_coeff": 0.006, "algorithm.kl_loss_coef": 0.001},
            {"algorithm.entropy_coeff": 0.0002, "algorithm.kl_loss_coef": 0.01},
        ],
    },
    "criteria": [
        {
            "name": "entropy_high",
            "metric": M.ENTROPY,
            "op": ">",
            "value": 6.5,
            "after_step": 2,
            "verdict": "bad",
        },
        {
            "name": "entropy_low",
            "metric": M.ENTROPY,
            "op": "<",
            "value": 2.5,
            "after_step": 2,
            "verdict": "bad",
        },
        {
            "name": "entropy_band",
            "metric": M.ENTROPY,
            "between": [3.8, 5.5],
            "at_step": 12,
            "verdict": "good",
        },
    ],
    "tracking": {"wandb": {"mode": "disabled"}},
    "ray": {"num_cpus": 2},
    "checkpoint": {"frequency": 0},
}


def write_spec(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_engine(spec_path: Path) -> int:
    """`archer-sweep run SPEC` in-process (live table off), as the CLI does it."""
    from archer_sweep.engine import sweep as cmd_run

    return cmd_run.run(cmd_run.load(spec_path), live=False)


@functools.cache
def fake_sweep() -> Path:
    """A results directory written by the real engine with the fake backend."""
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    root = Path(tempfile.mkdtemp(prefix="archer-h5-"))
    data = dict(FAKE_SPEC, storage={"path": str(root)})
    spec = write_spec(root / "fake.yaml", data)
    assert run_engine(spec) == 0
    return root / "fakesweep"


def handmade_sweep(root: Path) -> Path:
    """A results directory in the engine's layout with known verdicts (no engine run)."""
    d = root / "hand"
    spec = dict(FAKE_SPEC, name="hand", storage={"path": str(root)})
    write_spec(d / "spec.yaml", spec)
    trials = {
        "t_high": (
            {"entropy_coeff": 0.03, "kl_loss_coef": 0.01},
            [5.0, 6.0, 7.0],
            [0.2, 0.15, 0.1],
            {
                "verdict": "stopped:entropy_high",
                "rule": "entropy_high",
                "step": 3,
                "metric": M.ENTROPY,
                "value": 7.0,
            },
        ),
        "t_ok": (
            {"entropy_coeff": 0.005, "kl_loss_coef": 0.01},
            [4.5, 4.4, 4.3, 4.2],
            [0.2, 0.3, 0.4, 0.5],
            {"verdict": "healthy", "rule": None, "step": 4, "metric": None, "value": None},
        ),
        "t_band": (
            {"entropy_coeff": 0.002, "kl_loss_coef": 0.02},
            [4.0, 3.5, 3.0, 2.9],
            [0.2, 0.3, 0.3, 0.3],
            {
                "verdict": "unhealthy:entropy_band",
                "rule": "entropy_band",
                "step": 4,
                "metric": M.ENTROPY,
                "value": 2.9,
            },
        ),
    }
    lines = []
    for tid, (p, ent, score, v) in trials.items():
        t = d / tid
        t.mkdir(parents=True)
        params = {"algorithm.entropy_coeff": p["entropy_coeff"], "algorithm.kl_loss_coef": p["kl_loss_coef"]}
        (t / "params.json").write_text(json.dumps({"algorithm": p, "trainer": {"total_steps": 4}}))
        (t / "result.json").write_text(
            "".join(
                json.dumps(
                    {
                        M.STEP: i + 1,
                        M.ENTROPY: e,
                        M.SCORE_MEAN: s,
                        M.RESP_LEN_POS: 60.0,
                        M.LOGICAL_CONNECTIVES: 0.12 / (i + 1),
                        "training_iteration": i + 1,
                        "trial_id": tid,
                    }
                )
                + "\n"
                for i, (e, s) in enumerate(zip(ent, score))
            )
        )
        lines.append(json.dumps({"trial_id": tid, "params": params, **v, "time": 0.0}))
    (d / "verdicts.jsonl").write_text("\n".join(lines) + "\n")
    return d
