"""bench/first_run.py splits a run into phases by its log lines, old and new formats."""

import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

NEW = [
    "INFO trainable.warmstart: building the tiny warm start (once) -> /x/tiny-warmstart-1.pt",
    "INFO trainable.warmstart: warm start SFT step 101/600 loss 3.497 (20 s, 1.6 min left)",
    "INFO trainable.warmstart: warm start SFT step 600/600 loss 3.417 (118 s)",
    "[a1] started entropy_coeff=0.01 kl_loss_coef=0.01",
]
OLD_CACHED = ["INFO ray: started a local Ray instance", "[a1] started entropy_coeff=0.01 kl_loss_coef=0.01"]


def _script(lines: list[str], pause: float) -> str:
    body = "".join(f"print({line!r}, flush=True); time.sleep({pause})\n" for line in lines)
    return f"import time\ntime.sleep({pause})\n{body}"


@pytest.mark.parametrize("lines,warm", [(NEW, True), (OLD_CACHED, False)])
def test_phases_follow_the_warm_start_and_first_trial_lines(lines, warm, tmp_path):
    from first_run import Result, Sampler, _follow

    sampler, result = Sampler(), Result("x")
    sampler.mark("start-up")
    t0 = time.perf_counter()
    assert (
        _follow([sys.executable, "-c", _script(lines, 0.3)], REPO, {}, sampler, result, tmp_path / "run.log")
        == 0
    )
    sampler.mark("end")
    sampler.stop.set()
    phases = sampler.phases(2)
    wall = time.perf_counter() - t0
    assert [m[0] for m in sampler.marks] == ["start-up", "warm start", "sweep", "end"]
    assert phases["start-up"].wall >= 0.25  # the pause before the first line
    if warm:  # from "building" to "600/600": the two pauses in between
        assert 0.5 <= phases["warm start"].wall < 0.9
    else:
        assert phases["warm start"].wall < 0.05
    assert abs(sum(p.wall for p in phases.values()) - wall) < 0.1
    assert result.tail[-1] == lines[-1]
    assert (tmp_path / "run.log").read_text().splitlines() == lines  # the whole output kept
