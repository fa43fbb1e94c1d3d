"""bench/outcome_stop.py on the v2 table: outcomes come from the recorded validations, the
clairvoyant bound keeps every near-best run, and the scores count what the stops did."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))


@pytest.fixture(scope="module")
def world():
    from world import TABLE, load_world

    return load_world(table=TABLE)


def test_the_outcome_is_the_best_validation_after_training_began(world):
    from outcome_stop import outcome

    from trainable import metrics as M

    key = (0.001, 0.001, 0)
    vals = {int(r["step"]): r[M.TINY_VAL_SCORE] for r in world.runs[key].steps if M.TINY_VAL_SCORE in r}
    assert sorted(vals) == [1, 10, 20, 30, 40, 50, 60]
    assert outcome(world, key) == max(v for s, v in vals.items() if s >= 10)
    # why step 1 is left out: it validates the warm start, the same for every run
    assert len({r[M.TINY_VAL_SCORE] for run in world.runs.values() for r in run.steps if r["step"] == 1}) == 1


def test_draws_stay_in_their_seed_group(world):
    from outcome_stop import REPORT_SEEDS, draw

    sweeps = draw(world, REPORT_SEEDS, 30, random.Random(1))
    assert all(6 <= len(keys) <= 12 and len(set(keys)) == len(keys) for keys in sweeps)
    assert {k[2] for keys in sweeps for k in keys} == set(REPORT_SEEDS)


def test_score_counts_stops_against_the_outcome(world):
    from outcome_stop import outcome, score

    keys = (
        sorted(world.runs, key=lambda k: outcome(world, k))[-3:]
        + sorted(world.runs, key=lambda k: outcome(world, k))[:3]
    )
    best = outcome(world, keys[2])
    nobody = score(world, keys, [None] * 6, judges=False, eps=0.0)
    assert nobody.regret == 0 and nobody.used == nobody.total == 6 * 60 and nobody.outcome_false == 0
    assert nobody.clairvoyant == 60 * nobody.near_best + (6 - nobody.near_best)
    stop_best = [5 if outcome(world, k) == best else None for k in keys]
    s = score(world, keys, stop_best, judges=False, eps=0.0)
    assert s.outcome_false == s.near_best >= 1 and s.used == s.total - 55 * s.near_best
    assert s.regret == best - max(outcome(world, k) for k in keys if outcome(world, k) < best)


def test_the_bench_prints_both_seed_groups(world):
    import subprocess

    proc = subprocess.run(
        [sys.executable, "bench/outcome_stop.py", "--sweeps", "3"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "3 sweeps of 6–12 configs per seed group" in proc.stderr
    row = next(line for line in proc.stderr.splitlines() if line.startswith("| none |"))
    assert row.startswith("| none | 0.0% (0.0%) | 0.00× (0.00×) | 0 / ")
