"""The `command` backend run on tests/fake_verl_trainer.py: config errors, argv, metrics,
crash, hang, process cleanup (by session / process group), resume, secrets, Ray Tune."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import pytest

from trainable import metrics as M
from trainable.backends.command import TrainerExited, build_argv, hydra_value
from trainable.backends.command_config import CommandConfig
from trainable.backends.command_proc import live_processes
from trainable.config import ConfigError
from trainable.trainer import build_trainer, validate_config

ROOT = Path(__file__).resolve().parents[1]
FAKE = [sys.executable, str(ROOT / "tests" / "fake_verl_trainer.py")]
SECRET = "s3cr3t-wandb-key-do-not-write"


def config(**kw) -> dict:
    base = {
        "backend": "command",
        "argv": FAKE,
        "grace_period_s": 2.0,
        "overrides": {"fake.step_s": 0.01, "fake.record": True},
        "algorithm": {"entropy_coeff": 0.001, "kl_loss_coef": 0.01},
        "total_steps": 6,
    }
    overrides = {**base["overrides"], **kw.pop("overrides", {})}
    return {**base, **kw, "overrides": overrides}


def trainer(tmp_path, trial_id="t00001", **kw):
    t = build_trainer(config(**kw))
    trial_dir = tmp_path / trial_id
    trial_dir.mkdir(parents=True, exist_ok=True)
    t.attach_trial({"id": trial_id, "dir": str(trial_dir), "experiment": "sweepA"})
    return t


def record(t) -> dict:
    return json.loads((t.output_dir / "fake_record.json").read_text())


def assert_session_gone(sid: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while live_processes(pgid=sid, sid=sid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live_processes(pgid=sid, sid=sid) == []


# ---- config: one clear line per mistake ------------------------------------------------
@pytest.mark.parametrize(
    "change, message",
    [
        ({"argv": []}, "argv: needs the trainer's command"),
        ({"metrics": {"source": "tensorboard"}}, "metrics.source: Input should be 'console' or 'jsonl'"),
        ({"metrics": "wandb"}, "metrics.source: Input should be 'console' or 'jsonl'"),
        (
            {"key_map": {"algorithm.entropy_coef": "actor_rollout_ref.actor.entropy_coeff"}},
            "key_map.algorithm.entropy_coef: no search key `algorithm.entropy_coef` in the config "
            "(did you mean `algorithm.entropy_coeff`?)",
        ),
        (
            {"overrides": {"trainer.experiment_name": "x"}},
            "overrides.trainer.experiment_name: is set per trial by archer-sweep",
        ),
        (
            {"gpus_per_trial": 4, "overrides": {"trainer.n_gpus_per_node": 8}},
            "overrides.trainer.n_gpus_per_node: 8 disagrees with gpus_per_trial=4",
        ),
        ({"overrides": ["trainer.logger"]}, "overrides.0: expected `key=value`"),
        (
            {"overrides": {"trainer.logger": ["wandb"]}},
            "overrides.trainer.logger: ['wandb'] lacks 'console', which metrics.source console reads "
            "(expected e.g. [wandb, console])",
        ),
        (
            {"overrides": ["trainer.logger=['console','wandb']"], "metrics": {"source": "jsonl"}},
            "overrides.trainer.logger: \"['console','wandb']\" lacks 'file', which metrics.source jsonl",
        ),
        ({"argvv": ["x"]}, "argvv: unknown key (did you mean `argv`?)"),
    ],
)
def test_bad_config_is_one_clear_line(change, message):
    cfg = config()
    cfg.update(change)
    with pytest.raises(ConfigError) as exc:
        validate_config(cfg)
    assert str(exc.value).startswith(message), str(exc.value)
    assert "\n" not in str(exc.value)


def test_missing_argv_is_named():
    with pytest.raises(ConfigError, match=r"^argv: needs the trainer's command"):
        validate_config({"backend": "command"})


def test_reported_metrics_cover_design_keys_and_mapped_names():
    cfg = validate_config(config(metric_map={"val-core/acc@1": "val/acc"}, extra_metrics=["fake/only_here"]))
    keys = cfg.reported_metrics()
    assert set(M.ALL_KEYS) <= keys and {"val/acc", "fake/only_here"} <= keys
    assert "val-core/acc@1" not in keys and "made/up" not in keys


# ---- argv: a list, Hydra grammar, per-trial identity -------------------------------------
def test_hydra_values():
    assert hydra_value(1e-6) == "1e-06"
    assert hydra_value(True) == "true" and hydra_value(None) == "null"
    assert hydra_value(["console", "wandb"]) == "[console,wandb]"
    assert hydra_value("Qwen/Qwen3-0.6B-Base") == "Qwen/Qwen3-0.6B-Base"
    assert hydra_value("a b; rm -rf /") == "'a b; rm -rf /'"
    assert hydra_value("it's ${oops}") == "'it\\'s \\${oops}'"
    assert hydra_value("C:\\data dir\\") == "'C:\\data dir\\\\'"
    assert hydra_value("a\\'b") == "'a\\\\\\'b'"
    assert hydra_value("1e-3") == "'1e-3'"  # a string that looks like a number stays a string


def test_argv_values_parse_back_exactly_with_hydras_own_parser():
    pytest.importorskip("hydra")
    from hydra.core.override_parser.overrides_parser import OverridesParser

    values = {
        "s": "a b; rm -rf /",
        "q": "it's",
        "p": "Qwen/Qwen3-0.6B-Base",
        "f": 1e-6,
        "b": True,
        "n": None,
        "l": ["console", "wandb"],
        "w": "C:\\data dir\\",
        "num_str": "1e-3",
        "comma": "a,b",
        "i": 64,
        "neg": -0.5,
        "mode": "token-mean",
        "path": "/data/x.parquet",
        "bs": "a\\'b",
        "inf": float("inf"),
    }
    cfg = CommandConfig(
        argv=["x"], params={f"k.{k}": v for k, v in values.items()}, algorithm={"interp": "${oops}"}
    )
    argv = build_argv(cfg, "name", "/out")
    parsed = {o.key_or_group: o.value() for o in OverridesParser.create().parse_overrides(argv[1:])}
    assert {k: parsed[f"k.{k}"] for k in values} == values
    assert parsed["algorithm.interp"] == "\\${oops}"  # escaped: OmegaConf reads a literal ${


def test_argv_maps_search_keys_and_gives_each_trial_its_own_name():
    cfg = CommandConfig.model_validate(
        config(
            overrides={
                "trainer.logger": ["console", "wandb"],
                "+fake.extra": "$(touch /tmp/x)",
                "actor_rollout_ref.actor.entropy_coeff": 0.5,
            },
            params={"data.train_batch_size": 64},
            gpus_per_trial=4,
        )
    )
    argv = build_argv(cfg, "sweepA-t1", "/out/sweepA-t1")
    assert argv[:2] == FAKE
    assert "actor_rollout_ref.actor.entropy_coeff=0.001" in argv  # the search value wins
    assert "actor_rollout_ref.actor.entropy_coeff=0.5" not in argv
    assert "actor_rollout_ref.actor.kl_loss_coef=0.01" in argv
    assert "+fake.extra='$(touch /tmp/x)'" in argv  # one argv item, never seen by a shell
    assert "trainer.logger=[console,wandb]" in argv and "data.train_batch_size=64" in argv
    assert "trainer.n_gpus_per_node=4" in argv and "trainer.total_training_steps=6" in argv
    assert argv[-2:] == ["trainer.experiment_name=sweepA-t1", "trainer.default_local_dir=/out/sweepA-t1"]
    keys = [a.partition("=")[0].lstrip("+") for a in argv[2:]]
    assert len(keys) == len(set(keys))


def run_to_end(t, got: list | None = None) -> list:
    """Step `t` until its trainer exits (appending to `got`); always close it."""
    got = [] if got is None else got
    try:
        while True:
            got.append(t.step())
            if t.done():
                return got
    finally:
        t.close()


# ---- running the fake trainer ---------------------------------------------------------------
def test_console_metrics_with_noise_are_parsed_and_mapped(tmp_path):
    t = trainer(tmp_path, overrides={"fake.noise": True})
    steps = run_to_end(t)
    assert [m[M.STEP] for m in steps] == [1, 2, 3, 4, 5, 6]
    first = steps[0]
    assert first[M.ENTROPY] == pytest.approx(5.966, abs=1e-9)  # the fake's printed value
    assert first[M.TIME_UPDATE] == 0.01  # timing_s/update_actor mapped
    assert first["fake/only_here"] == 1.0  # unknown keys pass through
    assert math.isnan(first[M.THROUGHPUT])  # not logged: NaN, not made up
    assert set(M.ALL_KEYS) <= set(first)
    rec = record(t)
    assert rec["ray_address"] == "local"
    assert "trainer.experiment_name=sweepA-t00001" in rec["argv"]
    assert_session_gone(rec["sid"])
    assert "training finished" in (tmp_path / "t00001" / "trainer.log").read_text()
    ran = json.loads((tmp_path / "t00001" / "trainer_argv.json").read_text())
    assert ran["argv"] == FAKE + rec["argv"]  # exactly what the trainer received


def test_jsonl_source_has_full_precision_and_lookahead_without_total_steps(tmp_path):
    t = trainer(
        tmp_path,
        total_steps=None,
        metrics={"source": "jsonl"},
        overrides={"fake.format": "jsonl", "trainer.total_training_steps": 4},
    )
    got = run_to_end(t)
    assert [m[M.STEP] for m in got] == [1, 2, 3, 4]
    assert got[0][M.ENTROPY] != round(got[0][M.ENTROPY], 3)  # JSON keeps all digits
    assert (t.output_dir / "metrics.jsonl").exists()


def test_crash_reports_exit_code_and_log_tail(tmp_path):
    t = trainer(tmp_path, overrides={"fake.crash_at": 3, "fake.children": 3})
    try:
        assert t.step()[M.STEP] == 1 and t.step()[M.STEP] == 2
        with pytest.raises(TrainerExited) as exc:
            t.step()
    finally:
        t.close()
    assert_session_gone(record(t)["sid"], timeout=0.5)  # the crashed trainer's children too
    msg = str(exc.value)
    assert "Traceback (most recent call last)" in msg  # the log tail
    # The last line (what a verdict keeps) has the exit code and the last error line (not
    # Hydra's closing hint, which verl prints after it).
    assert msg.splitlines()[-1] == (
        "trainer exited with code 3 after step 2; last error line: "
        "torch.OutOfMemoryError: CUDA out of memory (fake)"
    )


def test_hang_times_out_and_leaves_no_process(tmp_path):
    t = trainer(tmp_path, step_timeout_s=1.0, overrides={"fake.hang_at": 2, "fake.children": 1})
    try:
        t.step()
        sid = record(t)["sid"]
        start = time.monotonic()
        with pytest.raises(TimeoutError, match="no step from the trainer for 1s after step 1"):
            t.step()
        assert time.monotonic() - start < 6
    finally:
        t.close()
    assert_session_gone(sid, timeout=1.0)


def test_close_ends_the_whole_session_including_stubborn_children(tmp_path):
    t = trainer(
        tmp_path, total_steps=50, grace_period_s=1.0, overrides={"fake.children": 3, "fake.step_s": 0.2}
    )
    t.step()
    rec = record(t)
    time.sleep(0.3)  # let the children start
    members = live_processes(pgid=rec["sid"], sid=rec["sid"])
    assert len(members) >= 4  # trainer + 3 children (one moved to its own process group)
    start = time.monotonic()
    t.close()
    took = time.monotonic() - start
    assert live_processes(pgid=rec["sid"], sid=rec["sid"]) == []
    assert 0.9 < took < 5  # the SIGTERM-ignoring child needed the SIGKILL after the grace period
    t.close()  # idempotent


def test_save_load_resumes_from_the_trainers_own_checkpoint(tmp_path):
    # The trainer checkpoints itself every 2 steps; archer-sweep's checkpoint is at step 3,
    # so the trainer resumes from its step 2 and the repeated step 3 is not reported twice.
    over = {"trainer.save_freq": 2, "fake.step_s": 0.2}
    t = trainer(tmp_path, total_steps=5, overrides=over)
    first = [t.step() for _ in range(3)]
    t.save(str(tmp_path))
    t.close()
    t2 = trainer(tmp_path, total_steps=5, overrides=over)
    t2.load(str(tmp_path))
    assert "trainer.resume_mode=auto" in t2.argv()
    rest = run_to_end(t2)
    assert [m[M.STEP] for m in first + rest] == [1, 2, 3, 4, 5]
    assert "starting at step 2" in (tmp_path / "t00001" / "trainer.log").read_text()


def test_secret_reaches_the_trainer_but_no_file(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    t = trainer(tmp_path, total_steps=2)
    try:
        t.step(), t.step(), t.done()
        t.save(str(tmp_path / "t00001"))
    finally:
        t.close()
    assert record(t)["has_wandb_key"] is True
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_missing_program_is_a_clear_error(tmp_path):
    t = trainer(tmp_path, argv=["/nonexistent/trainer-binary"])
    with pytest.raises(TrainerExited, match="could not start the trainer '/nonexistent/trainer-binary'"):
        t.step()
    t.close()


# ---- through Ray Tune and the engine's criteria scheduler -----------------------------------
@pytest.fixture
def ray_local(monkeypatch):
    ray = pytest.importorskip("ray")
    # Workers of a local Ray inherit the driver's environment at ray.init: the secret
    # travels there, never through the trial config (on a cluster: where `ray start` ran,
    # or the driver's runtime_env).
    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_tune_stops_bad_and_hung_trials_and_their_processes(tmp_path, ray_local):
    """Real Ray Tune + the engine's CriteriaScheduler: a rule stops the high-entropy trial,
    the scheduler's step timeout stops the hung one (the backend's own timeout, a little
    longer, then ends its processes), the healthy one finishes; no trainer is left."""
    from ray import tune

    from archer_sweep.criteria import Rule
    from archer_sweep.engine.scheduler import CriteriaScheduler
    from archer_sweep.engine.verdicts import VerdictStore
    from trainable.ray_trainable import GRPOTrainable

    sweep_dir = tmp_path / "cmdsweep"
    store = VerdictStore(sweep_dir)
    rules = [Rule("entropy_high", M.ENTROPY, "bad", op=">", value=7, after_step=3)]
    scheduler = CriteriaScheduler(
        rules, store, objective=M.SCORE_MEAN, param_keys=["params"], step_timeout_s=1.5
    )
    cfg = config(
        total_steps=12,
        overrides={"fake.children": 3, "fake.step_s": 0.1},
        grace_period_s=1.0,
        step_timeout_s=4.0,
        algorithm={},
    )
    coeff = "actor_rollout_ref.actor.entropy_coeff"  # a trainer key given directly (unmapped)
    cfg["params"] = tune.grid_search([{coeff: 0.03}, {coeff: 0.001}, {coeff: 0.001, "fake.hang_at": 3}])
    tuner = tune.Tuner(
        tune.with_resources(GRPOTrainable, {"cpu": 1}),
        param_space=cfg,
        tune_config=tune.TuneConfig(
            scheduler=scheduler, reuse_actors=False, trial_dirname_creator=lambda t: t.trial_id
        ),
        run_config=tune.RunConfig(name="cmdsweep", storage_path=str(tmp_path), verbose=0),
    )
    start = time.monotonic()
    grid = tuner.fit()
    assert time.monotonic() - start < 120  # the hung trial did not wait for Tune's 600 s kill
    rows = {row["trial_id"]: row for row in store.rows()}
    got = {}
    for r in grid:
        case = "hung" if "fake.hang_at" in r.config["params"] else r.config["params"][coeff]
        got[case] = (rows[Path(r.path).name], r.metrics)
    assert got[0.03][0]["verdict"] == "stopped:entropy_high" and got[0.03][0]["value"] > 7
    assert got[0.03][1][M.STEP] < 12  # stopped early
    assert got[0.001][0]["verdict"] == "healthy" and got[0.001][1][M.STEP] == 12
    assert got["hung"][0]["verdict"] == "stopped:timeout" and got["hung"][0]["step"] == 3
    records = [json.loads(p.read_text()) for p in sweep_dir.rglob("fake_record.json")]
    assert len(records) == 3
    for rec in records:  # stopped, hung or finished: nothing left
        assert rec["has_wandb_key"] is True
        assert_session_gone(rec["sid"])
        assert any(a.startswith("trainer.experiment_name=cmdsweep-") for a in rec["argv"])
    names = {a for rec in records for a in rec["argv"] if a.startswith("trainer.experiment_name=")}
    assert len(names) == 3  # one W&B run / checkpoint dir per trial
    for path in sweep_dir.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


# ---- the shipped Archer2.0 sweep and `validate` errors ---------------------------------------
ARCHER = ROOT / "sweeps" / "archer2-qwen3-0.6b-math.yaml"


def test_archer2_sweep_validates_with_the_seed_settings():
    from archer_sweep.spec.load import load_spec

    spec = load_spec(ARCHER, [])
    cfg = CommandConfig.model_validate(spec.trainable.config)
    argv = build_argv(cfg, "archer2-qwen3-0.6b-math-t1", "/out")
    for item in [
        "algorithm.adv_estimator=grpo",
        "actor_rollout_ref.actor.use_kl_loss=true",
        "actor_rollout_ref.actor.kl_loss_type=low_var_kl",
        "actor_rollout_ref.actor.entropy_coeff=0.005",
        "actor_rollout_ref.actor.kl_loss_coef=0.01",
        "actor_rollout_ref.actor.clip_ratio_c=3.0",
        "actor_rollout_ref.actor.loss_agg_mode=token-mean",
        "data.train_batch_size=64",
        "actor_rollout_ref.rollout.n=16",
        "actor_rollout_ref.actor.ppo_mini_batch_size=16",
        "actor_rollout_ref.actor.ppo_epochs=3",
        "actor_rollout_ref.actor.optim.lr=1e-06",
        "data.max_response_length=4096",
        "actor_rollout_ref.rollout.temperature=1.0",
        "reward_model.reward_manager=wizard",
        "trainer.n_gpus_per_node=4",
        "trainer.logger=[console,wandb]",
        "actor_rollout_ref.model.path=Qwen/Qwen3-0.6B-Base",
        "trainer.total_training_steps=150",
    ]:
        assert item in argv, item
    assert argv[:3] == ["python", "-m", "dapo.main_dapo"]
    try:  # every override is valid Hydra syntax (when hydra-core is installed)
        from hydra.core.override_parser.overrides_parser import OverridesParser
    except ImportError:
        OverridesParser = None
    if OverridesParser is not None:
        parsed = {o.key_or_group: o.value() for o in OverridesParser.create().parse_overrides(argv[3:])}
        assert parsed["trainer.logger"] == ["console", "wandb"]
        assert parsed["actor_rollout_ref.actor.optim.lr"] == 1e-6
    assert spec.resources.gpu == 4 and spec.ray.address == "auto"
    assert {r.name for r in spec.criteria} >= {"entropy_high", "guessing", "entropy_band"}


@pytest.mark.parametrize(
    "old, new, message",
    [
        (
            "    argv: [python, -m, dapo.main_dapo]\n",
            "",
            "trainable.config.argv: needs the trainer's command",
        ),
        (
            "metrics: {source: console}",
            "metrics: {source: tensorboard}",
            "trainable.config.metrics.source: unknown value 'tensorboard' (expected one of console, jsonl)",
        ),
        (
            "    secret_env: [WANDB_API_KEY]\n",
            "    key_map: {algorithm.entropy_coef: actor_rollout_ref.actor.entropy_coeff}\n",
            "trainable.config.key_map.algorithm.entropy_coef: no search key `algorithm.entropy_coef`",
        ),
        (
            "resources: {cpu: 8, gpu: 4}",
            "resources: {cpu: 8, gpu: 0}",
            "resources.gpu: 0 GPUs per trial but trainable.config.gpus_per_trial is 4",
        ),
    ],
)
def test_bad_backend_config_fails_validate_with_one_line(tmp_path, old, new, message):
    from archer_sweep.spec.load import SpecError, load_spec

    text = ARCHER.read_text()
    assert old in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(old, new))
    with pytest.raises(SpecError) as exc:
        load_spec(bad, [])
    line = str(exc.value)
    assert line.startswith(f"{bad}:") and message in line and "\n" not in line, line


OWNER = """
import json, sys, time
sys.path.insert(0, {root!r})
from trainable.trainer import build_trainer
t = build_trainer(json.loads({cfg!r}))
t.attach_trial({{"id": "owned", "dir": {dir!r}, "experiment": "x"}})
t.step()
print(json.dumps({{"sid": t._proc.pid, "watchdog": t._watchdog_pid}}), flush=True)
time.sleep(600)
"""


def test_trainer_dies_with_its_owner_even_on_sigkill(tmp_path):
    """The Ray worker that owns a trainer can die without cleanup (driver SIGKILLed, actor
    force-killed): the watchdog then ends the trainer's whole session."""
    import signal
    import subprocess

    cfg = json.dumps(
        config(total_steps=500, grace_period_s=1.0, overrides={"fake.children": 3, "fake.step_s": 0.1})
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER.format(root=str(ROOT), cfg=cfg, dir=str(tmp_path))],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(owner.stdout.readline())
        assert len(live_processes(pgid=info["sid"], sid=info["sid"])) >= 2
        owner.send_signal(signal.SIGKILL)
        owner.wait(5)
        assert_session_gone(info["sid"], timeout=8.0)
        deadline = time.monotonic() + 5
        while live_processes(pgid=info["watchdog"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert live_processes(pgid=info["watchdog"]) == []  # the watchdog left too
    finally:
        owner.kill()
        owner.wait()


# ---- end to end through `archer-sweep run` / `resume` ---------------------------------------
def cli_spec(tmp_path, step_s: float, total: int, num_samples: int = 3) -> Path:
    import yaml

    spec = {
        "name": "cmd-e2e",
        "trainable": {
            "backend": "command",
            "config": {
                "argv": FAKE,
                "total_steps": total,
                "grace_period_s": 1.0,
                "algorithm": {"entropy_coeff": 0.001, "kl_loss_coef": 0.01},
                "overrides": {
                    "fake.step_s": step_s,
                    "fake.children": 2,
                    "fake.record": True,
                    "trainer.save_freq": 2,
                },
            },
        },
        "search": {
            "num_samples": num_samples,
            "max_concurrent": 2,
            "sampler": {"type": "random", "seed": 0},
            "space": {"algorithm.entropy_coeff": {"type": "choice", "values": [0.03, 0.001]}},
            "points_to_evaluate": [{"algorithm.entropy_coeff": 0.03}, {"algorithm.entropy_coeff": 0.001}],
        },
        "criteria": [{"name": "entropy_high", "metric": M.ENTROPY, "op": ">", "value": 7, "after_step": 3}],
        "resources": {"cpu": 1, "gpu": 0},
        "storage": {"path": str(tmp_path / "results")},
        "tracking": {"wandb": {"mode": "disabled"}},
        "checkpoint": {"frequency": 2},
        "ray": {"num_cpus": 2},
    }
    path = tmp_path / "cmd-e2e.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def cli(*args, **kw):
    import subprocess

    env = {**os.environ, "WANDB_API_KEY": SECRET}
    return subprocess.Popen(
        [sys.executable, "-m", "archer_sweep.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


def trainer_records(sweep_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sweep_dir.rglob("fake_record.json")]


@pytest.mark.slow
def test_run_sigkill_resume_stops_bad_trial_and_leaves_no_trainer_process(tmp_path):
    """`archer-sweep run`, SIGKILL of the driver mid-run, `archer-sweep resume`: the bad
    trial is stopped by its rule, the good one is healthy, and no trainer survives."""
    import signal

    spec = cli_spec(tmp_path, step_s=0.4, total=8, num_samples=2)
    sweep_dir = tmp_path / "results" / "cmd-e2e"
    proc = cli("run", str(spec), start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(
            "step:2 " in p.read_text(errors="replace") for p in sweep_dir.rglob("trainer.log")
        ):
            time.sleep(0.2)
        records = trainer_records(sweep_dir)
        assert records, "no trainer started"
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything in its group
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    for rec in records:  # the trainers ran in their own sessions: the watchdogs ended them
        assert_session_gone(rec["sid"], timeout=30.0)
    resumed = cli("resume", str(sweep_dir))
    out, _ = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, out
    for rec in trainer_records(sweep_dir):
        assert_session_gone(rec["sid"])
    rows = [json.loads(x) for x in (sweep_dir / "verdicts.jsonl").read_text().splitlines()]
    assert len({r["trial_id"] for r in rows}) == len(rows) == 2
    by_coeff = {r["params"]["algorithm.entropy_coeff"]: r for r in rows}
    assert by_coeff[0.03]["verdict"] == "stopped:entropy_high" and by_coeff[0.03]["step"] < 8
    assert by_coeff[0.001]["verdict"] == "healthy"
    for path in sweep_dir.rglob("*"):  # the key reached the trainers, never a file
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert all(rec["has_wandb_key"] for rec in trainer_records(sweep_dir))


def test_jsonl_records_relogged_after_a_restart_are_reported_once(tmp_path):
    """A resumed trainer repeats the steps after its own checkpoint (a later one than the
    trial's): each step is reported once, in order, the checkpointed ones from the earlier file."""
    kw = dict(
        total_steps=8,
        metrics={"source": "jsonl"},
        overrides={"fake.format": "jsonl", "trainer.save_freq": 3, "fake.step_s": 0.15},
    )
    t = trainer(tmp_path, **kw)
    first = [t.step() for _ in range(2)]
    log_file = t.output_dir / "metrics.jsonl"
    deadline = time.monotonic() + 10
    while '"step": 5' not in log_file.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)  # the trainer runs ahead of what was reported: 3-5 logged, ckpt at 3
    t.save(str(tmp_path))
    t.close()
    t2 = trainer(tmp_path, **kw)
    t2.load(str(tmp_path))
    rest = [t2.step()]  # launches the trainer again; the old lines for 3-5 are read at once
    while '"step": 5' not in log_file.read_text() and time.monotonic() < deadline + 10:
        time.sleep(0.02)  # ...and it re-logs 4-5 before they are reported
    run_to_end(t2, rest)
    assert [m[M.STEP] for m in first + rest] == [1, 2, 3, 4, 5, 6, 7, 8]
    # the earlier attempt's file is set aside; together they repeat steps 4-5
    text = log_file.with_name("metrics.jsonl.1").read_text() + log_file.read_text()
    logged = [json.loads(x)["step"] for x in text.splitlines()]
    assert logged.count(4) == 2 and logged.count(5) == 2
