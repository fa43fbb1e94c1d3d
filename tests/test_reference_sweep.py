"""`relative_to: start` and `drop` through the live engine: a replay sweep (Ray Tune, Optuna,
the criteria scheduler) of model B's recorded runs stops the runaway and the collapse with
reasons naming the reference, keeps the top runs, and agrees with `backtest`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archer_sweep.cli.app import app
from tests import outcome_history as H

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from archer_sweep.cli.app import main; main()"]

SPEC = """\
name: ref
trainable:
  backend: replay
  config: {{history: [{history}], algorithm: {{entropy_coeff: 0.001}}}}
search:
  metric: critic/score/mean
  num_samples: 6
  max_concurrent: 2
  sampler: {{type: tpe, seed: 0}}
  space:
    algorithm.entropy_coeff: {{type: choice, values: [0.001, 0.002, 0.003, 0.004, 0.005, 0.006]}}
  points_to_evaluate: [{points}]
criteria:
  - {{name: entropy_high, metric: actor/entropy, op: ">", value: 1.5, relative_to: start, after_step: 5}}
  - {{name: entropy_low, metric: actor/entropy, op: "<", value: 0.3, relative_to: start, after_step: 5}}
  - {{name: val_drop, metric: {val}, drop: 0.015}}
storage: {{path: {storage}}}
tracking: {{wandb: {{mode: disabled}}}}
ray: {{num_cpus: 2}}
"""


@pytest.mark.slow
def test_replay_sweep_stops_by_reference_and_equals_backtest(tmp_path):
    hist = H.write(tmp_path / "b.jsonl", "B")
    points = ", ".join(f"{{algorithm.entropy_coeff: {c}}}" for c in H.COEFF.values())
    spec = tmp_path / "ref.yaml"
    spec.write_text(SPEC.format(history=hist, points=points, val=H.VAL, storage=tmp_path / "results"))
    run = subprocess.run([*CLI, "run", str(spec)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [json.loads(x) for x in (tmp_path / "results" / "ref" / "verdicts.jsonl").read_text().splitlines()]
    live = {r["params"]["algorithm.entropy_coeff"]: r for r in rows}
    by_kind = {k: live[c] for k, c in H.COEFF.items()}
    assert {by_kind[f"top{i}"]["verdict"] for i in range(3)} == {"healthy"}
    runaway, collapse = by_kind["runaway"], by_kind["collapse"]
    assert runaway["verdict"] == "stopped:entropy_high" and "× start 1.33" in runaway["reason"]
    assert collapse["verdict"] == "stopped:val_drop" and collapse["step"] == 20
    assert collapse["reason"] == f"{H.VAL} 0.267 fell 0.0167 from its best 0.283 (step 10; drop 0.015)"
    bt = json.loads(CliRunner().invoke(app, ["backtest", str(hist), "--spec", str(spec), "--json"]).stdout)
    replayed = {r["run"]: r["criteria"] for r in bt["runs"]}
    for kind, row in by_kind.items():
        want = replayed[f"B-{kind}"]
        assert (row["verdict"], row["step"] if row["verdict"].startswith("stopped") else None) == (
            want["verdict"],
            want["stop_step"],
        ), kind
