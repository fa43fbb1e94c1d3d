"""bench/peers: SMAC and syne-tune play the recorded world as decide_search's methods do.

The resume rules run everywhere; the peers' own tests need .venv-peers (bench/peers/setup.sh)
and are skipped where smac or syne_tune is not importable (the project's CI venv)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench" / "peers"))

from resume import Resumer
from world import EC, KL, REPORT_SEEDS, V1, load_world

MISSING_TOOLS = [m for m in ("smac", "syne_tune") if importlib.util.find_spec(m) is None]
needs_tools = pytest.mark.skipif(
    bool(MISSING_TOOLS),
    reason=f"{', '.join(MISSING_TOOLS)} not importable: the peers live in .venv-peers (bash bench/peers/setup.sh)",
)


@pytest.fixture(scope="module")
def world():
    return load_world(seeds=REPORT_SEEDS)


def _runaway(world):
    return next(k for k, (v, used) in world.stop.items() if v.startswith("stopped:") and used < 20)


def test_a_promotion_resumes_the_run_and_costs_only_the_steps_it_adds(world):
    seeds = [4, 3, 3]
    r = Resumer(world, seeds, rules=False)
    low = r.play("a", dict(V1), 20)
    assert low.trial.key == world.snap(V1, 4) and low.trial.steps == 20 and not low.done
    assert low.value == world.runs[low.trial.key].steps[19][world.settings.metric]  # reduce: last
    other = r.play("b", dict(V1), 20)
    assert other.trial.key == world.snap(V1, 3)  # the second new config draws the second seed
    high = r.play("a", dict(V1), 60)
    assert high.trial.key == low.trial.key and high.trial.steps == 40 and high.done
    assert [int(x["step"]) for x in high.reports] == list(range(21, 61))
    assert high.trial.healthy == (world.truth[low.trial.key] == "healthy")
    assert r.play("a", dict(V1), 60).trial.steps == 0  # a finished run costs nothing more


def test_with_the_rules_a_run_ends_where_they_stop_it_and_the_tool_sees_a_failure(world):
    key = _runaway(world)
    params = {EC: key[0], KL: key[1]}
    verdict, used = world.stop[key]
    plain = Resumer(world, [key[2]], rules=False).play("x", params, 20)
    assert plain.trial.steps == 20 and plain.value is not None
    ruled = Resumer(world, [key[2]], rules=True).play("x", params, 20)
    assert ruled.trial.key == key and ruled.trial.steps == used and ruled.done
    assert ruled.value is None and ruled.trial.verdict == verdict and not ruled.trial.healthy


@needs_tools
@pytest.mark.parametrize("rules", [False, True], ids=["plain", "rules"])
@pytest.mark.parametrize("peer", ["SMAC Hyperband", "syne-tune ASHA"])
def test_a_peers_trials_are_the_worlds_runs_under_common_seeds(world, peer, rules):
    from decide_search import run_method
    from registry import PEERS, RULES

    name = peer + (RULES if rules else "")
    seen, trials = [], []

    def spy(w, seeds, s):
        seen.append(seeds)
        for t in PEERS[name](w, seeds, s):
            trials.append(t)
            yield t

    score = run_method(world, "spy", 3, 720, 1800, methods={"spy": spy}, shortest_trial=1)
    seeds = seen[0]
    assert trials and trials[0].params == V1  # the start config is enqueued first
    played: dict[tuple, int] = {}
    for t in trials:
        cid = tuple(sorted(t.params.items()))
        if cid not in played:  # the k-th new config plays recorded seed k
            assert t.key == world.snap(t.params, seeds[len(played)])
            played[cid] = 0
        played[cid] += t.steps
        verdict, end = world.stop[t.key] if rules else (world.truth[t.key], world.runs[t.key].last_step)
        assert played[cid] <= end, t  # a resumed run never plays past its end
        if t.healthy:
            assert verdict == "healthy" and played[cid] == end
            assert t.objective == world.objective[t.key]
    assert score.trace[-1][0] == sum(t.steps for t in trials)
    assert score.to_first_healthy < 1800  # every peer finds a healthy config on this world
