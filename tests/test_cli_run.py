"""`archer-sweep run` / `resume` as a user runs them: a subprocess, Ctrl-C, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from archer_sweep.cli.app import main; main()"]

SPEC = """\
name: {name}
trainable:
  backend: tests.fake_backend:FakeTrainer
  config: {{trainer: {{total_steps: 6}}, fake: {{sleep_s: 0.25}}}}
search:
  num_samples: 4
  max_concurrent: 1
  sampler: {{type: tpe, seed: 0, n_startup_trials: 2}}
  space:
    algorithm.entropy_coeff: {{type: loguniform, low: 1.0e-3, high: 3.0e-2}}
    algorithm.kl_loss_coef: {{type: loguniform, low: 1.0e-3, high: 1.0e-1}}
  points_to_evaluate:
    - {{algorithm.entropy_coeff: 0.005, algorithm.kl_loss_coef: 0.01}}
criteria:
  - {{name: entropy_high, metric: actor/entropy, op: ">", value: 7, after_step: 2, verdict: bad}}
  - {{name: entropy_band, metric: actor/entropy, between: [3, 6], verdict: good}}
storage: {{path: {storage}}}
tracking: {{wandb: {{mode: disabled}}}}
ray: {{num_cpus: 2}}
checkpoint: {{frequency: 2}}
"""


def write_spec(tmp_path: Path, name: str = "cli") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SPEC.format(name=name, storage=tmp_path / "results"))
    return path


def cli(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=REPO, capture_output=True, text=True, timeout=240, **kw)


def verdict_rows(sweep_dir: Path) -> list[dict]:
    path = sweep_dir / "verdicts.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
def test_ctrl_c_then_resume_finishes_without_rerunning_finished_trials(tmp_path):
    spec = write_spec(tmp_path)
    sweep_dir = tmp_path / "results" / "cli"
    proc = subprocess.Popen(
        [*CLI, "run", str(spec)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 180
        while not verdict_rows(sweep_dir) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert verdict_rows(sweep_dir), "no trial finished before the deadline"
        os.kill(proc.pid, signal.SIGINT)  # what Ctrl-C sends
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, out + err
    assert f"interrupted; continue with: archer-sweep resume {sweep_dir}" in err
    before = verdict_rows(sweep_dir)
    assert 1 <= len(before) < 4
    finished = {r["trial_id"]: (sweep_dir / r["trial_id"] / "result.json").read_text() for r in before}

    resumed = cli("resume", str(sweep_dir))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    rows = verdict_rows(sweep_dir)
    assert len(rows) == 4 and len({r["trial_id"] for r in rows}) == 4
    assert rows[: len(before)] == before  # kept, not rewritten
    for tid, text in finished.items():  # finished trials did not run again
        assert (sweep_dir / tid / "result.json").read_text() == text
    assert "Best healthy trial: " in resumed.stdout
    study = optuna.load_study(study_name="cli", storage=f"sqlite:///{sweep_dir}/study.db")
    states = [t.state.name for t in study.trials]
    assert "RUNNING" not in states and "WAITING" not in states
    ray_ids = [t.user_attrs.get("ray_trial_id") for t in study.trials if t.state.name != "FAIL"]
    assert sorted(ray_ids) == sorted(r["trial_id"] for r in rows)  # one Optuna trial each


def test_resume_of_a_directory_that_is_no_sweep_exits_2(tmp_path):
    result = cli("resume", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {tmp_path}: not an archer-sweep results directory "
        f"(expected tuner.pkl and spec.yaml from `archer-sweep run`)"
    )


def test_run_on_an_existing_sweep_exits_2_and_names_resume(tmp_path):
    spec = write_spec(tmp_path, "again")
    sweep_dir = tmp_path / "results" / "again"
    sweep_dir.mkdir(parents=True)
    (sweep_dir / "verdicts.jsonl").write_text("")
    result = cli("run", str(spec))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {sweep_dir} already holds a sweep (verdicts.jsonl); continue it with "
        f"`archer-sweep resume {sweep_dir}` or choose another --name"
    )


@pytest.mark.slow
def test_a_sweep_leaves_no_temp_dirs_of_its_workers(tmp_path):
    # Every process importing wandb makes two temp dirs that only a clean exit removes;
    # Ray kills its workers, so without a scratch TMPDIR they would pile up in /tmp.
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {
        **os.environ,
        "TMPDIR": str(tmp),
        "RAY_TMPDIR": tempfile.gettempdir(),
    }  # Ray's sockets: keep their paths short
    result = cli(
        "run",
        str(write_spec(tmp_path, "clean")),
        "--set",
        "search.num_samples=2",
        "--set",
        "tracking.wandb.mode=offline",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    sweep_dir = tmp_path / "results" / "clean"
    assert len(list(sweep_dir.glob("*/wandb/offline-run-*"))) == 2  # the trials did use wandb
    assert sorted(p.name for p in tmp.iterdir()) == []
    # nor processes: every one the sweep started (Ray's daemons and workers, wandb-core)
    # inherited this TMPDIR, or the workers' scratch dir under it
    deadline = time.monotonic() + 15
    while (left := processes_with_env(f"TMPDIR={tmp}")) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == []


def processes_with_env(marker: str) -> list[str]:
    """`pid cmdline` of the live processes whose environment holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "environ").read_bytes():
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append(f"{entry.name} {cmdline}")
        except OSError:  # ended meanwhile, or another user's
            continue
    return found


def test_scratch_dirs_of_dead_drivers_are_removed_and_live_ones_kept(tmp_path, monkeypatch):
    from archer_sweep.engine import runner

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    stale = tmp_path / f"archer-sweep-workers-{dead}-abc"
    live = tmp_path / f"archer-sweep-workers-{os.getpid()}-def"
    other = tmp_path / "archer-sweep-workers-notapid"
    for d in (stale, live, other):
        (d / "tmpwandb-media").mkdir(parents=True)
    new = runner.worker_scratch()
    assert new.parent == tmp_path and new.name.startswith(f"archer-sweep-workers-{os.getpid()}-")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name, new.name])
