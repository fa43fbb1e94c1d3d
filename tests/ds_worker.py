"""One rank of the two-process DeepSpeed test: `python -m tests.ds_worker OUT STAGE…` under
RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT. For each ZeRO stage it takes its half of
`batch()`, runs one update of a fresh `model()` through `hf_engines.DeepSpeedOptimizer`,
and rank 0 saves the parameters to OUT.STAGE (one process pair serves every stage: the
imports and DeepSpeed's start take most of the time)."""

from __future__ import annotations

import os
import sys

import torch

LR, WEIGHT_DECAY, CLIP = 1e-2, 0.1, 0.5


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))


def batch() -> torch.Tensor:
    return torch.randn(8, 8, generator=torch.Generator().manual_seed(1))


def loss_of(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return 10 * net(x).pow(2).mean()  # large enough that CLIP binds


def main(out: str, stages: list[int]) -> None:
    from trainable.backends import hf_engines

    torch.set_num_threads(1)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    for stage in stages:
        net = model()
        opt = hf_engines.DeepSpeedOptimizer(net, stage, LR, WEIGHT_DECAY, CLIP, "float32")
        x = batch().chunk(world)[rank]  # equal halves: the mean of the ranks' means is the batch mean
        opt.zero_grad()
        norm = opt.apply_update(loss_of(net, x), CLIP)
        if rank == 0:
            torch.save(
                {"params": [p.detach() for p in net.parameters()], "grad_norm": norm}, f"{out}.{stage}"
            )
    # Both ranks leave together: rank 0 hosts the group's TCP store, and a rank still holding
    # the group when it goes aborted at exit ("terminate called without an active exception",
    # rank 1 exit -6, once in CI).
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], [int(s) for s in sys.argv[2:]])
