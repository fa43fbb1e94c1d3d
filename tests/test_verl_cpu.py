"""Real verl 0.9.1 on this CPU (the kit: bash scripts/verl-cpu-setup.sh): the probe passes on
sweeps/verl-cpu.yaml and names the Archer2.0 rules plain verl cannot judge; the sweep itself
runs end to end, each trial judged by its rules, every verl process ended and /dev/shm back to
its size before. Minutes each (verl's start-up is 70-245 s here): CI runs them in its verl stage
(scripts/ci-verl.sh, ARCHER_SWEEP_REQUIRE_VERL=1); elsewhere they skip while the kit is absent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from archer_sweep.engine.probe import unheld

ROOT = Path(__file__).resolve().parents[1]
KIT = ROOT / ".venv-verl"
SPEC = ROOT / "sweeps" / "verl-cpu.yaml"

if not (KIT / ".archer-sweep-kit").exists():
    if os.environ.get("ARCHER_SWEEP_REQUIRE_VERL") == "1":
        raise RuntimeError(f"ARCHER_SWEEP_REQUIRE_VERL=1 but the CPU-verl kit is not built at {KIT}")
    pytest.skip(
        f"the CPU-verl kit is not built ({KIT}; bash scripts/verl-cpu-setup.sh)", allow_module_level=True
    )


def cli(*args: str, timeout: float = 1500) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "archer_sweep.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def trainer_sessions_alive() -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [ln for ln in out.splitlines() if "verl.trainer.main_ppo" in ln or "ray::WorkerDict" in ln]


def shm() -> set[str]:
    return set(os.listdir("/dev/shm"))


def left_since(before: set[str]) -> set[str]:
    """New /dev/shm entries no live process holds (the machine is shared: a database's or
    another test's live segments are not verl's)."""
    return unheld(shm() - before)


def test_probe_passes_on_the_kit_sweep(tmp_path):
    before = shm()
    res = cli("probe", str(SPEC), "--out", str(tmp_path / "probe"))
    assert res.returncode == 0, res.stdout + res.stderr
    rows = {ln.split("  ")[1].strip(): ln for ln in res.stdout.splitlines()[1:]}
    assert "yes" in rows["overrides accepted"]
    assert rows["watched metrics seen"].endswith("actor/entropy, critic/score/mean")
    assert rows["session kill"].endswith(" 0 left") and rows["leftovers"].endswith("none")
    assert left_since(before) == set() and trainer_sessions_alive() == []


def test_probe_tiny_names_each_archer2_key_plain_verl_never_logs(tmp_path):
    """A copy of the Archer2.0 spec whose trainer is the kit's plain verl (its argv, CPU env and
    overrides): the probe names the Archer2.0-only keys, one line each, and exits 2."""
    archer = yaml.safe_load((ROOT / "sweeps" / "archer2-qwen3-0.6b-math.yaml").read_text())
    kit = yaml.safe_load(SPEC.read_text())["trainable"]["config"]
    archer["trainable"]["config"] = {
        **{k: kit[k] for k in ("argv", "env", "overrides", "metrics", "algorithm", "grace_period_s")},
        "model": {"path": "Qwen/Qwen3-0.6B-Base"},  # --tiny puts the kit's tiny Qwen3 here
        "data": {"train_files": "data/train.parquet", "val_files": "data/test.parquet"},
    }
    archer.update(resources={"cpu": 1, "gpu": 0}, ray={"address": None})
    copy = tmp_path / "archer2-on-kit.yaml"
    copy.write_text(yaml.safe_dump(archer, sort_keys=False))
    res = cli("probe", str(copy), "--tiny", "--steps", "1", "--out", str(tmp_path / "probe"))
    assert res.returncode == 2, res.stdout + res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert errors == [
        "error: `response_length/pos/mean` is never logged by the trainer: guessing, reasoning_length "
        "can never judge (map a logged key with metric_map, or drop the rule)",
        "error: `token/logical_connectives` is never logged by the trainer: connectives_collapsed, "
        "connectives_kept can never judge (map a logged key with metric_map, or drop the rule)",
    ]
    assert trainer_sessions_alive() == []


def test_the_sweep_runs_real_verl_end_to_end(tmp_path):
    before = shm()
    res = cli("run", str(SPEC), "--storage", str(tmp_path))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    rows = [json.loads(x) for x in (tmp_path / "verl-cpu" / "verdicts.jsonl").read_text().splitlines()]
    by_coeff = {r["params"]["algorithm.entropy_coeff"]: r for r in rows}
    assert by_coeff[0.001]["verdict"] == "healthy", rows
    assert by_coeff[1.0]["verdict"] == "stopped:entropy_high" and by_coeff[1.0]["step"] < 3, rows
    assert trainer_sessions_alive() == []
    assert left_since(before) == set()  # ~400 MB of psm_* a verl run leaves: removed
