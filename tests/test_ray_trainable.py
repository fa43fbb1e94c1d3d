import pytest
from ray import tune

from tests.ray_session import local_ray_session
from trainable import GRPOTrainable
from trainable import metrics as M

CONFIG = {
    "model": {"n_layer": 1, "d_model": 32, "n_head": 2, "warm_start": False},
    "data": {"train_batch_size": 2, "max_response_length": 8},
    "actor": {"ppo_mini_batch_size": 2},
    "rollout": {"n": 2},
    "trainer": {"total_steps": 2, "threads": 1},
}


@pytest.fixture
def local_ray():
    yield from local_ray_session(num_cpus=1)


@pytest.mark.slow
def test_grpo_trainable_runs_under_tune_until_done(local_ray, tmp_path):
    tuner = tune.Tuner(
        GRPOTrainable,
        param_space=CONFIG,
        run_config=tune.RunConfig(
            storage_path=str(tmp_path),
            verbose=0,
            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=True),
        ),
        tune_config=tune.TuneConfig(num_samples=1),
    )
    result = tuner.fit()[0]
    assert result.error is None
    assert result.metrics["training_iteration"] == 2 and result.metrics[M.STEP] == 2
    assert set(M.ALL_KEYS) <= set(result.metrics)
    assert result.metrics["done"] is True
    assert result.checkpoint is not None


def test_trainable_checkpoint_round_trip_outside_tune(tmp_path):
    a = GRPOTrainable(config={**CONFIG, "trainer": {**CONFIG["trainer"], "total_steps": 3}})
    a.train()
    path = a.save(str(tmp_path / "ckpt"))
    want = a.train()
    b = GRPOTrainable(config={**CONFIG, "trainer": {**CONFIG["trainer"], "total_steps": 3}})
    b.restore(path)
    got = b.train()
    for key in (M.ENTROPY, M.PG_LOSS, M.SCORE_MEAN, M.STEP, M.GRAD_NORM):
        assert got[key] == want[key], key
    a.stop()
    b.stop()
