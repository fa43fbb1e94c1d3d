"""hunt: rounds of run -> report -> next -> run on the real engine (fake backend, seconds)."""

import os

import pytest
import yaml
from typer.testing import CliRunner

from archer_sweep.cli.app import app
from archer_sweep.results.history import read_verdicts
from archer_sweep.tables import fmt
from tests.sweep_data import FAKE_SPEC, ROOT, write_spec


def _cli(*args):
    return CliRunner().invoke(app, list(map(str, args)))


def _spec(tmp_path, points, name="h"):
    data = dict(FAKE_SPEC, name=name, storage={"path": str(tmp_path / "res")})
    data["trainable"] = {
        "backend": "tests.fake_backend:FakeTrainer",
        "config": {
            "algorithm": {"entropy_coeff": 0.005, "kl_loss_coef": 0.01},
            "trainer": {"total_steps": 8},
        },
    }
    data["search"] = dict(FAKE_SPEC["search"], num_samples=len(points), points_to_evaluate=points)
    data["criteria"] = [dict(c, at_step=6) if c.get("at_step") else c for c in FAKE_SPEC["criteria"]]
    return write_spec(tmp_path / f"{name}.yaml", data)


def test_until_must_be_known(tmp_path):
    res = _cli("hunt", _spec(tmp_path, [{"algorithm.entropy_coeff": 0.03}]), "--until", "forever")
    assert res.exit_code == 2 and "--until 'forever': expected one of healthy, budget" in res.output


@pytest.mark.slow
def test_two_rounds_index_and_resume(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    # Round 1 tries two coefficients the rules stop (entropy too high / too low).
    spec = _spec(
        tmp_path,
        [
            {"algorithm.entropy_coeff": 0.03, "algorithm.kl_loss_coef": 0.01},
            {"algorithm.entropy_coeff": 0.0002, "algorithm.kl_loss_coef": 0.01},
        ],
    )
    res = _cli("hunt", spec, "--rounds", "2", "--until", "budget")
    assert res.exit_code == 0, res.output
    root = tmp_path / "res" / "h"
    index = (root / "index.md").read_text()
    for n in (1, 2):
        assert f"[report](round-{n}/report/report.md)" in index
        assert (root / f"round-{n}" / "report" / "report.md").exists()
        assert len(read_verdicts(root / f"round-{n}")) == 2
    assert "all 2 round(s) run" in index
    # round 2 ran the points `next` proposed from round 1
    nxt = yaml.safe_load((root / "round-1" / "next.yaml").read_text())
    r2 = {tuple(sorted(v["params"].items())) for v in read_verdicts(root / "round-2").values()}
    assert {tuple(sorted(p.items())) for p in nxt["search"]["points_to_evaluate"]} == r2
    # the round's report proposes what the hunt then ran (same constrained TPE, same inputs)
    first = nxt["search"]["points_to_evaluate"][0]
    report = (root / "round-1" / "report" / "report.md").read_text()
    assert f"| {fmt(first['algorithm.entropy_coeff'])} |" in report.split("## Proposed next change")[1]
    # resumable: finished rounds are kept, not rerun
    stamp = {n: os.stat(root / f"round-{n}" / "verdicts.jsonl").st_mtime_ns for n in (1, 2)}
    res = _cli("hunt", spec, "--rounds", "2", "--until", "budget")
    assert res.exit_code == 0, res.output
    assert stamp == {n: os.stat(root / f"round-{n}" / "verdicts.jsonl").st_mtime_ns for n in (1, 2)}


@pytest.mark.slow
def test_hunt_stops_at_a_healthy_trial(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    spec = _spec(tmp_path, [{"algorithm.entropy_coeff": 0.006, "algorithm.kl_loss_coef": 0.001}], name="ok")
    res = _cli("hunt", spec, "--rounds", "3")
    assert res.exit_code == 0, res.output
    root = tmp_path / "res" / "ok"
    verdicts = [v["verdict"] for v in read_verdicts(root / "round-1").values()]
    if "healthy" in verdicts:  # the backend decides; the hunt must stop right there
        assert not (root / "round-2").exists()
        assert "stopped after round 1: 1 healthy trial(s)" in (root / "index.md").read_text()
    else:
        assert (root / "round-2").exists()
