"""The `replay` backend: nearest recorded config, seed choice, playback, checkpoints, and a
replay sweep through the real engine whose verdicts equal `backtest` of the played runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from archer_sweep.results.replay import SEED_KEY, Config, load_table, snap
from trainable import build_trainer
from trainable import metrics as M
from trainable.backends import BACKENDS

EC, KL = "algorithm.entropy_coeff", "algorithm.kl_loss_coef"


def write_table(path, configs=((0.001, 0.01), (0.01, 0.01), (0.1, 0.1)), seeds=(0, 1), steps=4):
    """A small recorded table; each report's entropy encodes (config index, seed, step)."""
    lines = []
    for ci, (ec, kl) in enumerate(configs):
        for seed in seeds:
            for step in range(1, steps + 1):
                metrics = {M.ENTROPY: 100 * ci + 10 * seed + step, M.SCORE_MEAN: 0.1 * step}
                params = {EC: ec, KL: kl, SEED_KEY: seed}
                lines.append({"run": f"c{ci}-s{seed}", "step": step, "params": params, "metrics": metrics})
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def trainer(path, seed=0, **alg):
    return build_trainer(
        {"backend": "replay", "history": [str(path)], "algorithm": alg, "trainer": {"seed": seed}}
    )


def test_replay_is_a_registered_backend():
    assert BACKENDS["replay"].trainer == "archer_sweep.results.replay:Trainer"


def test_nearest_config_on_a_log_scale(tmp_path):
    path = write_table(tmp_path / "h.jsonl")
    # 0.004 is nearer 0.01 than 0.001 on a log scale (on a linear scale it is nearer 0.001)
    t = trainer(path, entropy_coeff=0.004, kl_loss_coef=0.01)
    assert t.run.run_id == "c1-s0"
    first = t.step()
    assert first[M.ENTROPY] == 101 and first[M.STEP] == 1
    assert first[M.REPLAY_PREFIX + EC] == 0.01 and first[M.REPLAY_PREFIX + SEED_KEY] == 0
    span = math.log(0.1) - math.log(0.001)
    assert first[M.REPLAY_DISTANCE] == pytest.approx(abs(math.log(0.004) - math.log(0.01)) / span)


def test_exact_config_has_distance_zero_and_seeds_round_robin(tmp_path):
    path = write_table(tmp_path / "h.jsonl")
    assert trainer(path, 1, entropy_coeff=0.1, kl_loss_coef=0.1).step()[M.ENTROPY] == 211
    assert trainer(path, 1, entropy_coeff=0.1, kl_loss_coef=0.1).distance == 0
    # seed 5 was not recorded: position 5 % 2 = 1
    assert trainer(path, 5, entropy_coeff=0.1, kl_loss_coef=0.1).run.run_id == "c2-s1"


def test_plays_every_report_then_is_done(tmp_path):
    t = trainer(write_table(tmp_path / "h.jsonl"), entropy_coeff=0.001, kl_loss_coef=0.01)
    assert [t.step()[M.STEP] for _ in range(4)] == [1, 2, 3, 4]
    assert t.done()
    with pytest.raises(RuntimeError, match="has no report after step 4"):
        t.step()


def test_total_steps_cuts_the_playback(tmp_path):
    cfg = {
        "backend": "replay",
        "history": [str(write_table(tmp_path / "h.jsonl"))],
        "trainer": {"total_steps": 2},
    }
    t = build_trainer(cfg)
    t.step(), t.step()
    assert t.done()


def test_save_load_continues_exactly(tmp_path):
    path = write_table(tmp_path / "h.jsonl")
    a = trainer(path, entropy_coeff=0.01, kl_loss_coef=0.01)
    a.step()
    a.save(str(tmp_path))
    b = trainer(path, entropy_coeff=0.01, kl_loss_coef=0.01)
    b.load(str(tmp_path))
    assert b.step() == a.step()
    other = trainer(path, entropy_coeff=0.1, kl_loss_coef=0.1)
    with pytest.raises(RuntimeError, match="checkpoint of run c1-s0, but this trial plays c2-s0"):
        other.load(str(tmp_path))


def test_gzipped_history_and_relative_paths(tmp_path, monkeypatch):
    import gzip

    plain = write_table(tmp_path / "h.jsonl").read_bytes()
    (tmp_path / "h.jsonl.gz").write_bytes(gzip.compress(plain))
    monkeypatch.chdir(tmp_path)
    cfg = Config(history=["h.jsonl.gz"])
    assert cfg.history == [str(tmp_path / "h.jsonl.gz")]
    assert len(load_table(tuple(cfg.history)).runs) == 6


def test_reported_metrics_are_those_recorded(tmp_path):
    cfg = Config(history=[str(write_table(tmp_path / "h.jsonl"))])
    keys = cfg.reported_metrics()
    assert {M.ENTROPY, M.SCORE_MEAN, M.STEP, M.REPLAY_DISTANCE, M.REPLAY_PREFIX + EC} <= keys
    assert M.RESP_LEN_POS not in keys


def test_snap_ignores_keys_the_trial_does_not_set(tmp_path):
    table = load_table((str(write_table(tmp_path / "h.jsonl")),))
    run, d = snap(table, {EC: 0.1, SEED_KEY: 0})
    assert run.run_id == "c2-s0" and d == 0


@pytest.mark.slow
def test_replay_sweep_on_the_shipped_table_equals_backtest(tmp_path):
    """12 trials of sweeps/replay.yaml through Ray Tune, Optuna and the criteria scheduler:
    each trial's verdict, rule and step equal `backtest` of the run it played."""
    import subprocess
    import sys

    from archer_sweep.planning.backtest import replay_criteria, settings_from_spec
    from archer_sweep.results.analysis import load_sweep
    from archer_sweep.results.replay import load_table
    from archer_sweep.spec.load import load_spec

    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-m", "archer_sweep.cli", "run", "sweeps/replay.yaml", "--storage", str(tmp_path)]
        + ["--set", "ray.num_cpus=2"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    sweep = load_sweep(tmp_path / "replay")
    assert len(sweep.runs) == 12
    spec = load_spec(repo / "sweeps" / "replay.yaml")
    table = {r.run_id: r for r in load_table((str(repo / "bench/data/tiny-world.jsonl.gz"),)).runs}
    for run in sweep.runs:
        last = run.steps[-1]
        played = next(
            r for r in table.values() if all(float(r.params[k]) == last[f"replay/{k}"] for k in r.params)
        )
        want = replay_criteria([played], spec.rules(), settings_from_spec(spec))[0]
        assert run.verdict["verdict"] == want.verdict, (run.run_id, played.run_id)
        assert run.last_step == want.steps_used, (run.run_id, played.run_id)
        if want.stop_step is not None:
            assert run.verdict["step"] == want.stop_step
    # The spec's `feasible` sampler proposed every trial: none at least as risky (entropy_coeff
    # ≥ and kl_loss_coef ≤) as a runaway judged before it was asked (TPE, seed 0, 4 startup
    # trials, proposes four such trials on this sweep).
    assert spec.search.sampler.type == "feasible"
    assert runaway_followers(tmp_path / "replay" / "study.db") == []


def runaway_followers(db: Path) -> list[tuple[int, int]]:
    """(trial, earlier runaway) pairs where the trial is at least as risky as the runaway."""
    import optuna

    from archer_sweep.objective import VERDICT_ATTR

    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    study = optuna.load_study(study_name=storage.get_all_studies()[0].study_name, storage=storage)
    trials = study.get_trials(deepcopy=False)
    runaways = [
        t for t in trials if (t.user_attrs.get(VERDICT_ATTR) or {}).get("verdict") == "stopped:entropy_high"
    ]
    return [
        (t.number, r.number)
        for t in trials
        for r in runaways
        if r.datetime_complete < t.datetime_start
        and t.params[EC] >= r.params[EC]
        and t.params[KL] <= r.params[KL]
    ]


def test_runaway_followers_finds_a_trial_beyond_a_runaway(tmp_path):
    import optuna

    from archer_sweep.objective import VERDICT_ATTR

    db = tmp_path / "s.db"
    study = optuna.create_study(storage=f"sqlite:///{db}", study_name="s")
    dists = {
        EC: optuna.distributions.FloatDistribution(1e-3, 0.3, log=True),
        KL: optuna.distributions.FloatDistribution(1e-3, 0.1, log=True),
    }
    r = study.ask(dists)
    r.set_user_attr(VERDICT_ATTR, {"verdict": "stopped:entropy_high"})
    study.tell(r, state=optuna.trial.TrialState.PRUNED)
    study.enqueue_trial({EC: 0.3, KL: 0.001})
    study.tell(study.ask(dists), 0.0)
    assert runaway_followers(db) == [(1, 0)]
