"""Rules judged against the run itself: `relative_to: start` and `drop` / `drop_ratio`, with
reasons that name the reference; the same verdicts live (tracker) and in backtest."""

from __future__ import annotations

import math

import pytest

from archer_sweep.criteria import Rule, evaluate
from archer_sweep.criteria.rules import CriteriaTracker
from trainable import metrics as M

E = M.ENTROPY
VAL = M.TINY_VAL_SCORE


def _hist(key, values, start=1):
    return [{M.STEP: s, key: v} for s, v in enumerate(values, start=start)]


def test_relative_threshold_multiplies_the_first_finite_value():
    rule = Rule("entropy_low", E, "bad", op="<", value=0.05, relative_to="start", on_nan="skip")
    v = evaluate([rule], _hist(E, [math.nan, 1.95, 1.0, 0.12, 0.09]))
    assert (v.verdict, v.step) == ("stopped:entropy_low", 5)  # 0.12 > 0.0975; 0.09 < it
    assert v.reason == "actor/entropy 0.09 < 0.05 × start 1.95"
    # the same absolute values on a model that starts at 0.2 are fine
    assert evaluate([rule], _hist(E, [0.2, 0.15, 0.12, 0.11])).verdict == "healthy"


def test_relative_between_for_a_good_rule_names_the_start():
    rule = Rule("band", E, "good", between=(0.5, 1.5), relative_to="start", at_step=3)
    assert evaluate([rule], _hist(E, [2.0, 1.6, 1.2])).verdict == "healthy"  # 1.2 in [1, 3]
    v = evaluate([rule], _hist(E, [2.0, 1.6, 0.8]))
    assert v.verdict == "unhealthy:band" and v.reason.startswith(
        "actor/entropy 0.8 not in [0.5, 1.5] × start 2; decided"
    )


def test_drop_fires_after_the_fall_from_the_best_with_patience_and_after_step():
    rule = Rule("val_drop", VAL, "bad", drop=0.05, after_step=2, patience=2)
    # eval every other step (sparse): 0.25 at step 4, then 0.19 (step 6), 0.18 (step 8)
    hist = [
        {M.STEP: s} | ({VAL: v} if v is not None else {})
        for s, v in enumerate([0.1, None, 0.2, 0.25, None, 0.19, None, 0.18], start=1)
    ]
    v = evaluate([rule], hist)
    assert (v.verdict, v.step) == ("stopped:val_drop", 8)
    assert v.reason == f"{VAL} 0.18 fell 0.07 from its best 0.25 (step 4; drop 0.05)"


def test_drop_ratio_is_relative_to_the_best():
    rule = Rule("val_drop", VAL, "bad", drop_ratio=0.2)
    assert evaluate([rule], _hist(VAL, [0.5, 0.45, 0.41])).verdict == "healthy"  # 18 % below
    v = evaluate([rule], _hist(VAL, [0.5, 0.45, 0.39]))
    assert v.step == 3 and "drop_ratio 0.2" in v.reason


def test_drop_judges_window_means():
    rule = Rule("score_drop", M.SCORE_MEAN, "bad", drop=0.1, window=2)
    # one bad batch (0.3) alone: the mean of 2 falls only 0.05 below its best mean 0.4
    assert evaluate([rule], _hist(M.SCORE_MEAN, [0.4, 0.4, 0.3, 0.4])).verdict == "healthy"
    assert evaluate([rule], _hist(M.SCORE_MEAN, [0.4, 0.4, 0.3, 0.3])).step == 4


def test_live_tracker_without_history_and_relative_forecast():
    rule = Rule("entropy_low", E, "bad", op="<", value=0.5, relative_to="start")
    t = CriteriaTracker([rule], keep_history=False)
    assert [t.update(r) for r in _hist(E, [4.0, 3.0, 2.1])] == [None, None, None]
    assert t.update({M.STEP: 4, E: 1.9}).verdict == "stopped:entropy_low"


@pytest.mark.parametrize(
    ("kw", "text"),
    [
        (dict(op="<", value=1, drop=0.1), "give exactly one of op/value, between, drop or drop_ratio"),
        (dict(drop=0.1, relative_to="start"), "drop / drop_ratio need a bad rule without relative_to"),
        (dict(drop=-1.0), "must be > 0"),
        (dict(op="<", value=1, relative_to="end"), "must be one of ('start',)"),
    ],
)
def test_bad_rule_objects_are_refused(kw, text):
    with pytest.raises(ValueError, match=text.replace("(", r"\(").replace(")", r"\)")):
        Rule("r", E, "bad", **kw)
