"""verl's CPU platform, registered through `VERL_USE_EXTERNAL_MODULES=archer_verl_cpu.platform`
with `VERL_PLATFORM=cpu`. Without it verl falls back to nvidia and rewrites `trainer.device=cpu`
to cuda. gloo for collectives, no CUDA IPC (weights go through shared memory), and a device
module whose memory and stream calls are no-ops on CPU."""

from __future__ import annotations

import types
from contextlib import contextmanager
from typing import Any, Optional

import torch
from verl.plugin.platform.platform_base import PlatformBase
from verl.plugin.platform.platform_manager import PlatformRegistry


def _zero(*args, **kwargs):
    return 0


class _CpuDevice(types.ModuleType):
    """`torch.cpu` plus the `torch.cuda`-style calls verl makes on its device module."""

    def __getattr__(self, name: str) -> Any:
        if hasattr(torch.cpu, name):
            return getattr(torch.cpu, name)
        if name == "get_device_name":
            return lambda *a, **k: "CPU"
        if name == "mem_get_info":
            return lambda *a, **k: (8 << 30, 16 << 30)
        if name in ("get_rng_state", "get_rng_state_all"):
            return torch.get_rng_state
        if name in ("set_rng_state", "set_rng_state_all"):
            return torch.set_rng_state
        if name in ("manual_seed", "manual_seed_all"):
            return torch.manual_seed
        return _zero  # memory stats, empty_cache, reset_peak_memory_stats, …


DEVICE = _CpuDevice("archer_verl_cpu.device")


@PlatformRegistry.register(platform="cpu")
class PlatformCPU(PlatformBase):
    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self):
        return DEVICE

    def is_available(self) -> bool:
        return True

    def current_device(self):
        # verl moves tensors with `.to(get_device_id())`: an int means an accelerator to torch
        return "cpu"

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: Optional[int] = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0):
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"

    @contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        return "GPU"  # logical GPUs (`+ray_kwargs.ray_init.num_gpus=1`): verl's pools ask for them

    def ray_resource_options(self, num_gpus: float) -> dict[str, Any]:
        return {"num_gpus": num_gpus}

    def ray_noset_envvars(self) -> list[str]:
        return ["RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"]

    def is_ipc_supported(self) -> bool:
        return False

    def rollout_env_vars(self) -> dict[str, str]:
        return {}

    def get_collective_module(self) -> Any:
        return None

    def cudart(self) -> Any:
        return None
