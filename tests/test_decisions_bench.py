"""bench/decisions.py end to end on a few simulated sweeps: the tables it prints are
computed from the recorded table, and the product's stops obey the table's truth."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))


@pytest.fixture(scope="module")
def world():
    from world import load_world

    return load_world()


def test_truth_and_live_stops_agree_on_the_table(world):
    assert len(world.runs) == 210  # the v2 table: 42 configs × 5 seeds
    for key, (verdict, used) in world.stops_of("before").items():
        assert verdict == world.truth[key], key  # a threshold stop is the full run's verdict, earlier
        assert used <= world.runs[key].last_step
    for key, (verdict, used) in world.stop.items():  # forecasts may stop earlier, never a healthy run
        assert world.truth[key] != "healthy" or verdict == "healthy", key
        assert used <= world.stops_of("before")[key][1]


def test_criteria_never_stop_a_run_the_table_calls_healthy(world):
    from decide_stop import STOPPERS, draw_sweeps, score

    for keys in draw_sweeps(world, 10, seed=3):
        s = score(
            world, keys, STOPPERS["criteria (archer-sweep: + stop when decided + forecasts)"](world, keys)
        )
        assert s.false_stops == 0 and s.regret in (None, 0.0)
        none = score(world, keys, STOPPERS["none"](world, keys))
        assert none.used == none.total and none.runaways_through == none.runaways


def test_snap_uses_the_replay_backend_rule(world):
    from world import EC, KL

    assert world.snap({EC: 0.0011, KL: 0.012}, seed=2) == (0.001, 0.01, 2)
    assert world.snap({EC: 0.25, KL: 0.09}, seed=7) == (0.3, 0.1, 2)  # seed 7 -> 7 mod 5


def test_manual_halving_halves_after_a_runaway(world):
    from decide_search import manual
    from world import EC, KL

    trials = list(zip(range(3), manual(world, [0, 0, 0])))
    assert trials[0][1].params == {EC: 0.01, KL: 0.01}
    first = trials[0][1]
    if not first.healthy:
        assert trials[1][1].params[EC] in (0.005, 0.02)


@pytest.mark.slow
def test_the_script_prints_four_tables_and_writes_three_pngs(tmp_path):
    out = subprocess.run(
        [sys.executable, "bench/decisions.py", "--sweeps", "6", "--seeds", "2", "--jobs", "1"]
        + ["--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    for title in ("## Stopping", "## Search", "## Anytime outcome regret", "## Verdict stability"):
        assert title in out.stdout
    assert (
        "| criteria (archer-sweep: + stop when decided + forecasts) |" in out.stdout
        and "| hunt (archer-sweep) |" in out.stdout
    )
    assert (tmp_path / "first_healthy.png").stat().st_size > 10_000
    assert (tmp_path / "verdict_agreement.png").stat().st_size > 10_000
    assert (tmp_path / "anytime_regret.png").stat().st_size > 10_000
    assert (tmp_path / "decisions.md").read_text() in out.stdout
