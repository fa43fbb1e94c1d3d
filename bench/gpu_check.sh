#!/usr/bin/env bash
# GPU check of the hf backend: installs the [gpu] extra (vLLM + DeepSpeed) into a
# venv, then runs 3 GRPO steps on a small Qwen3 built from a config (no downloads)
# with vLLM rollouts and DeepSpeed ZeRO updates, printing step time and GPU memory;
# then, in a second process (one in-process vLLM engine each), the real-data path:
# the same model saved as a checkpoint (model.path) trains 3 steps on verl-layout
# parquet prompts (task rows + MATH-500-sourced rows, so Math-Verify runs).
#
#   bash bench/gpu_check.sh                 # fresh venv .venv-gpu, then the check
#   SKIP_INSTALL=1 VENV=.venv bash bench/gpu_check.sh   # reuse an environment
#
# Knobs: ZERO (stage, default 2), DTYPE (bfloat16), HIDDEN (512), LAYERS (8),
# PROMPTS (8), GROUP (8), LENGTH (256). Needs a CUDA GPU and network for the install.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-gpu}
if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  [ -x "$VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$VENV"
  "$VENV/bin/pip" install -q -e '.[gpu]'
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$VENV/bin/python" -c 'import torch, vllm, deepspeed, transformers; print(f"torch {torch.__version__} vllm {vllm.__version__} deepspeed {deepspeed.__version__} transformers {transformers.__version__}")'

for MODE in config parquet; do
"$VENV/bin/python" - "$MODE" <<'EOF'
import logging, os, subprocess, sys, tempfile, time

import torch

from trainable import metrics as M
from trainable.trainer import build_trainer

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
env = os.environ.get
cfg = {
    "backend": "hf",
    "model": {"dtype": env("DTYPE", "bfloat16"), "zero_stage": int(env("ZERO", "2")),
              "rollout_engine": "vllm", "update_engine": "deepspeed",
              "gpu_memory_utilization": 0.3,
              "config": {"hidden_size": int(env("HIDDEN", "512")), "intermediate_size": 4 * int(env("HIDDEN", "512")),
                         "num_hidden_layers": int(env("LAYERS", "8")), "num_attention_heads": 8,
                         "num_key_value_heads": 4, "head_dim": 64, "max_position_embeddings": 2048}},
    "data": {"train_batch_size": int(env("PROMPTS", "8")), "max_response_length": int(env("LENGTH", "256"))},
    "rollout": {"n": int(env("GROUP", "8"))},
    "actor": {"ppo_mini_batch_size": int(env("PROMPTS", "8")) // 2, "ppo_epochs": 1, "lr": 1e-5},
    "trainer": {"total_steps": 3, "seed": 0},
}
work = tempfile.TemporaryDirectory()
if sys.argv[1] == "parquet":  # the same model as a save_pretrained checkpoint, prompts from parquet
    from tests.hf_data_helpers import save_checkpoint, task_rows, write_parquet
    cfg["model"]["path"] = save_checkpoint(f"{work.name}/ckpt", config=cfg["model"].pop("config"))
    rows = task_rows(56) + task_rows(8, source="HuggingFaceH4/MATH-500")
    cfg["data"]["train_files"] = [write_parquet(f"{work.name}/train.parquet", rows)]
t0 = time.perf_counter()
trainer = build_trainer(cfg)
n_params = sum(p.numel() for p in trainer.model.parameters())
print(f"built in {time.perf_counter() - t0:.1f} s: {n_params / 1e6:.1f}M params, "
      f"rollout={trainer.rollout_engine} update={trainer.update_engine} zero={cfg['model']['zero_stage']} "
      f"prompts={sys.argv[1]}")
assert (trainer.rollout_engine, trainer.update_engine) == ("vllm", "deepspeed")
keys = (M.SCORE_MEAN, M.ENTROPY, M.KL_LOSS, M.PPO_KL, M.GRAD_NORM, M.RESP_LEN_MEAN,
        M.TIME_GEN, M.TIME_UPDATE, M.THROUGHPUT)
for _ in range(3):
    torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    m = trainer.step()
    wall = time.perf_counter() - t
    missing = set(M.ALL_KEYS) - set(m)
    assert not missing, missing
    print(f"step {int(m[M.STEP])}: {wall:.2f} s  torch peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB  "
          + "  ".join(f"{k}={m[k]:.4g}" for k in keys), flush=True)
used = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader"],
                      capture_output=True, text=True).stdout.strip()
print(f"nvidia-smi memory.used (vLLM pool included): {used}")
with tempfile.TemporaryDirectory() as d:
    trainer.save(d)
    print("checkpoint files:", sorted(os.listdir(d)))
trainer.close()
work.cleanup()
print(f"gpu_check {sys.argv[1]} OK")
EOF
done
