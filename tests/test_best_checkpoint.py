"""`search.objective_reduce: best`: the best objective step is each trial's result (run
summary, analyze, report) and its checkpoint survives `checkpoint.num_to_keep`."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from archer_sweep.engine.runner import checkpoint_config
from archer_sweep.spec.load import load_spec
from trainable import metrics as M

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from archer_sweep.cli.app import main; main()"]

# entropy_coeff 0.03 makes the fake's entropy rise about 1 a step: with mode min its best step
# is step 1, which no periodic checkpoint (every 3 steps, 1 kept) would keep.
SPEC = """\
name: best
trainable:
  backend: tests.fake_backend:FakeTrainer
  config: {{trainer: {{total_steps: 8}}, algorithm: {{entropy_coeff: 0.03}}}}
search:
  metric: actor/entropy
  mode: min
  objective_reduce: {reduce}
  num_samples: 2
  max_concurrent: 2
  sampler: {{type: tpe, seed: 0}}
  space:
    algorithm.kl_loss_coef: {{type: loguniform, low: 1.0e-3, high: 1.0e-1}}
criteria:
  - {{name: entropy_high, metric: actor/entropy, op: ">", value: 100, verdict: bad}}
storage: {{path: {storage}}}
tracking: {{wandb: {{mode: disabled}}}}
ray: {{num_cpus: 2}}
checkpoint: {{frequency: 3, num_to_keep: 1}}
"""


def _spec(tmp_path: Path, reduce: str) -> Path:
    path = tmp_path / f"{reduce}.yaml"
    path.write_text(SPEC.format(reduce=reduce, storage=tmp_path / "results"))
    return path


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=240)


def _step_of(checkpoint: Path) -> int:
    with open(checkpoint / "fake.pkl", "rb") as f:
        return pickle.load(f)[0]


def test_checkpoints_are_scored_only_with_best(tmp_path):
    best = checkpoint_config(load_spec(_spec(tmp_path, "best")))
    assert best.checkpoint_score_attribute == M.CHECKPOINT_SCORE and best.checkpoint_score_order == "max"
    assert checkpoint_config(load_spec(_spec(tmp_path, "last"))).checkpoint_score_attribute is None


@pytest.mark.slow
def test_best_step_is_the_result_and_its_checkpoint_is_kept(tmp_path):
    run = _cli("run", _spec(tmp_path, "best"))
    assert run.returncode == 0, run.stderr[-3000:]
    sweep = tmp_path / "results" / "best"
    trials = sorted(p for p in sweep.iterdir() if (p / "result.json").exists())
    assert len(trials) == 2
    analyzed = json.loads(_cli("analyze", sweep, "--json").stdout)
    by_id = {t["run_id"]: t for t in analyzed["trials"]}
    assert analyzed["objective_reduce"] == "best"
    for trial in trials:
        rows = [json.loads(x) for x in (trial / "result.json").read_text().splitlines()]
        best = min(rows, key=lambda r: r[M.ENTROPY])
        assert best[M.STEP] == 1  # the fake's entropy rises from the start
        assert best[M.CHECKPOINT_SCORE] == -best[M.ENTROPY]
        # the best step's checkpoint (asked for at step 1) and the latest one, nothing else
        kept = sorted(_step_of(p) for p in trial.glob("checkpoint_*"))
        assert kept == [1, 8], kept
        summary = by_id[best["trial_id"]]
        assert summary["result_step"] == 1 and summary["objective"] == pytest.approx(best[M.ENTROPY])
        line = next(x for x in run.stdout.splitlines() if x.strip().startswith(best["trial_id"]))
        assert (
            f"best actor/entropy={best[M.ENTROPY]:.4g}"[:20] in line and "@ step 1 (checkpoint kept)" in line
        )
    table = _cli("analyze", sweep).stdout
    assert "| actor/entropy (best) | result step |" in table
