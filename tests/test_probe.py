"""`archer-sweep probe` on the stand-in trainer (tests/fake_verl_trainer.py): the table, one
`error:` line per problem, exit 2; real verl in tests/test_verl_cpu.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
FAKE = [sys.executable, str(ROOT / "tests" / "fake_verl_trainer.py")]


def spec(tmp_path: Path, criteria: list[dict], **config) -> Path:
    text = {
        "name": "probe-fake",
        "trainable": {
            "backend": "command",
            "config": {
                "argv": FAKE,
                "overrides": {
                    "fake.step_s": 0.05,
                    "fake.record": True,
                    "fake.shm": 1,
                    **config.pop("overrides", {}),
                },
                "algorithm": {"entropy_coeff": 0.001, "kl_loss_coef": 0.01},
                "grace_period_s": 2.0,
                **config,
            },
        },
        "search": {
            "metric": "critic/score/mean",
            "num_samples": 1,
            "space": {"algorithm.entropy_coeff": {"type": "loguniform", "low": 1e-4, "high": 1e-1}},
            "points_to_evaluate": [{"algorithm.entropy_coeff": 0.002}],
        },
        "criteria": criteria,
        "storage": {"path": str(tmp_path / "results")},
    }
    path = tmp_path / "probe.yaml"
    path.write_text(yaml.safe_dump(text, sort_keys=False))
    return path


def probe(path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "archer_sweep.cli", "probe", str(path), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


ENTROPY = {"name": "entropy_high", "metric": "actor/entropy", "op": ">", "value": 7, "verdict": "bad"}


def test_probe_passes_when_every_watched_key_is_logged_and_nothing_is_left(tmp_path):
    res = probe(spec(tmp_path, [ENTROPY]), "--steps", "3")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith(f"probe of {tmp_path / 'probe.yaml'} (3 steps; log ")
    rows = {ln.split("  ")[1].strip(): ln for ln in lines[1:]}
    assert "yes (the trainer reached step 1)" in rows["overrides accepted"]
    assert rows["watched metrics seen"].endswith("actor/entropy, critic/score/mean")
    assert rows["time to first step"].endswith(" s") and rows["step time"].endswith(" s")
    assert rows["session kill"].endswith("processes running, 0 left")
    assert rows["leftovers"].endswith("none")  # its /dev/shm segment and TMPDIR were removed
    assert "error:" not in res.stderr


def test_probe_names_each_key_no_rule_can_judge_and_exits_2(tmp_path):
    criteria = [
        ENTROPY,
        {"name": "clip_high", "metric": "actor/pg_clipfrac", "op": ">", "value": 0.5, "verdict": "bad"},
        {"name": "clip_kept", "metric": "actor/pg_clipfrac", "op": "<", "value": 0.4, "verdict": "good"},
        {"name": "drift", "metric": "actor/ppo_kl", "op": ">", "value": 1, "verdict": "bad"},
    ]
    res = probe(spec(tmp_path, criteria))
    assert res.returncode == 2
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert errors == [
        "error: `actor/pg_clipfrac` is never logged by the trainer: clip_high, clip_kept can never "
        "judge (map a logged key with metric_map, or drop the rule)",
        "error: `actor/ppo_kl` is never logged by the trainer: drift can never judge (map a logged "
        "key with metric_map, or drop the rule)",
    ]
    assert "never judgeable: actor/pg_clipfrac  clip_high, clip_kept" in res.stdout


def test_probe_reports_a_trainer_that_rejects_its_config(tmp_path):
    res = probe(spec(tmp_path, [ENTROPY], overrides={"fake.crash_at": 1, "fake.shm": 0}))
    assert res.returncode == 2
    assert res.stderr.splitlines()[-1] == (
        "error: the trainer never reached step 1: trainer exited with code 3 after step 0; "
        "last error line: torch.OutOfMemoryError: CUDA out of memory (fake)"
    )


def test_probe_of_a_non_command_spec_is_one_line(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text((ROOT / "sweeps" / "entropy.yaml").read_text())
    res = probe(path)
    assert res.returncode == 2
    assert res.stderr.strip() == (
        "error: probe: trainable.backend is 'tiny'; probe runs external trainers (backend: command)"
    )


def test_a_sweep_on_a_key_the_trainer_never_logs_errors_at_step_1_naming_it(tmp_path):
    """The whole path (spec rules → each trial's `watch` → the trainer's first report): the
    trial is `error` with one line naming rule and key, not `stopped:nan` after its start-up."""
    criteria = [ENTROPY, {"name": "drift", "metric": "actor/ppo_kl", "op": ">", "value": 1, "verdict": "bad"}]
    path = spec(tmp_path, criteria)
    text = yaml.safe_load(path.read_text())
    text["trainable"]["config"]["total_steps"] = 4
    text.update(resources={"cpu": 1, "gpu": 0}, tracking={"wandb": {"mode": "disabled"}})
    path.write_text(yaml.safe_dump(text, sort_keys=False))
    res = subprocess.run(
        [sys.executable, "-m", "archer_sweep.cli", "run", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 1, res.stdout[-2000:] + res.stderr[-2000:]
    rows = (tmp_path / "results" / "probe-fake" / "verdicts.jsonl").read_text().splitlines()
    (row,) = [json.loads(x) for x in rows]
    assert row["verdict"] == "error"
    assert row["reason"].startswith(
        "trainable.backends.command.UnreportedMetric: rule `drift` watches `actor/ppo_kl`, which "
        "the trainer does not report (step 1; it reports 12 keys: actor/entropy, "
    ), row["reason"]
