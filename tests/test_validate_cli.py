"""`archer-sweep validate`: one line per bad spec on stderr, exit 2, no traceback, nothing written."""

import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from archer_sweep.cli.app import app
from tests.spec_helpers import edit, write

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args):
    return CliRunner().invoke(app, ["validate", *args])


def test_good_spec_exits_0(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, edit())
    res = invoke("s.yaml")
    assert res.exit_code == 0, res.output
    assert res.stdout == "s.yaml: ok (entropy: backend tiny, 8 trials, 2 parameters, 3 rules)\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


def test_bad_spec_exits_2_with_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, edit({10: "  num_samples: 0"}))
    res = invoke("s.yaml")
    assert res.exit_code == 2
    assert res.stdout == ""
    assert res.stderr == "error: s.yaml:10: search.num_samples: 0 is out of range (expected a value >= 1)\n"


def test_set_errors_name_the_option(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, edit())
    res = invoke("s.yaml", "--set", "search.num_samples=4", "--set", "trainable.config.trainer.total_step=3")
    assert res.exit_code == 2
    assert res.stderr == (
        "error: --set:2: trainable.config.trainer.total_step: unknown key; did you mean "
        "`total_steps`? (expected one of total_steps, seed, save_freq, threads, test_freq, "
        "val_before_train)\n"
    )
    res = invoke("s.yaml", "--set", "search.num_samples=4")
    assert res.exit_code == 0 and "4 trials" in res.stdout


def test_every_spec_is_checked_and_any_failure_exits_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, edit(), "good.yaml")
    write(tmp_path, edit({3: "  backend: tinny"}), "bad.yaml")
    res = invoke("bad.yaml", "good.yaml", "missing.yaml")
    assert res.exit_code == 2
    assert res.stdout == "good.yaml: ok (entropy: backend tiny, 8 trials, 2 parameters, 3 rules)\n"
    assert res.stderr.splitlines() == [
        "error: bad.yaml:3: trainable.backend: unknown backend 'tinny'; did you mean `tiny`? "
        "(expected one of tiny, hf, command, replay)",
        "error: missing.yaml:1: no such file (expected a sweep spec YAML file)",
    ]


def test_shipped_sweeps_pass():
    specs = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("sweeps/*.yaml"))
    res = CliRunner().invoke(app, ["validate", *specs, "--set", "ray.num_cpus=8"])
    assert res.exit_code == 0, res.output
    assert res.stdout.count(": ok (") == len(specs)


def test_real_process_is_fast_and_has_no_traceback(tmp_path):
    bad = write(tmp_path, edit({14: "    algorithm.entropy_coeff: {type: loguniform, low: 0, high: 0.05}"}))
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "archer_sweep.cli", "validate", str(bad)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.perf_counter() - start
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr == (
        f"error: {bad}:14: search.space.algorithm.entropy_coeff.low: low=0 on a log "
        "scale (expected low > 0)\n"
    )
    assert elapsed < 2.0, elapsed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]
