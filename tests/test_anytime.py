"""bench/anytime.py: the regret of a search's incumbent over trial-steps, its area and rank."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from anytime import regret_at, summary


def test_regret_is_one_until_the_first_healthy_trial_then_follows_the_incumbent():
    # (trial-steps used, incumbent's outcome) after each trial
    trace = ((30, None), (90, 0.2), (150, 0.2), (200, 0.5))
    best, span = 0.5, 0.4  # the group's outcomes run from 0.1 to 0.5
    assert regret_at(trace, 10, best, span) == 1.0  # nothing finished yet
    assert regret_at(trace, 89, best, span) == 1.0  # only an unhealthy trial finished
    assert regret_at(trace, 90, best, span) == pytest.approx(0.75)
    assert regret_at(trace, 199, best, span) == pytest.approx(0.75)
    assert regret_at(trace, 500, best, span) == 0.0


def test_area_is_the_mean_of_the_median_curve_and_the_better_method_ranks_lower():
    fast = [1.0] + [0.0] * 10
    slow = [1.0] * 6 + [0.5] * 5
    per_method = {"fast": [fast, fast, [1.0, 1.0] + [0.0] * 9], "slow": [slow, slow, [1.0] * 11]}
    out = summary(per_method)
    assert out["fast"]["area"] == pytest.approx(1 / 11)
    assert out["slow"]["area"] == pytest.approx((6 + 2.5) / 11)
    assert out["slow"]["final"] == 0.5
    # ranks are taken every 10th step: a tie at step 1 shares 1.5, at step 11 fast is first
    assert out["fast"]["rank"] == pytest.approx((1.5 + 1) / 2)
    assert out["slow"]["rank"] == pytest.approx((1.5 + 2) / 2)
