import math
from dataclasses import replace

import pytest

from archer_sweep.criteria import DECIDED, OPS, CriteriaTracker, Forecast, Rule, evaluate, unreported
from archer_sweep.criteria.trend import theil_sen
from trainable import metrics as M


def hist(key, values, start=1):
    return [{"step": start + i, key: v} for i, v in enumerate(values)]


ENTROPY_HIGH = Rule("entropy_high", M.ENTROPY, "bad", op=">", value=7, after_step=2)
GUESSING = Rule("guessing", M.RESP_LEN_POS, "bad", op="<", value=20, patience=3, on_nan="skip")
BAND = Rule("entropy_band", M.ENTROPY, "good", between=(3, 6), at_step=4)


def test_bad_rule_fires_with_rule_step_value():
    v = evaluate([ENTROPY_HIGH], hist(M.ENTROPY, [5, 6, 7.5, 8]))
    assert (v.verdict, v.rule, v.step, v.metric, v.value) == (
        "stopped:entropy_high",
        "entropy_high",
        3,
        M.ENTROPY,
        7.5,
    )


def test_after_step_ignores_early_reports():
    # 9 at step 2 is not after step 2; the trial finishes healthy
    assert evaluate([ENTROPY_HIGH], hist(M.ENTROPY, [5, 9, 6])).verdict == "healthy"


def test_patience_needs_consecutive_reports():
    assert evaluate([GUESSING], hist(M.RESP_LEN_POS, [10, 10, 50, 10, 10])).verdict == "healthy"
    v = evaluate([GUESSING], hist(M.RESP_LEN_POS, [50, 10, 10, 10]))
    assert v.verdict == "stopped:guessing" and v.step == 4


def test_nan_skip_keeps_streak_and_nan_stop_is_own_verdict():
    v = evaluate([GUESSING], hist(M.RESP_LEN_POS, [10, math.nan, 10, 10]))
    assert v.verdict == "stopped:guessing" and v.step == 4
    v = evaluate([ENTROPY_HIGH], hist(M.ENTROPY, [5, 5, math.nan]))
    assert v.verdict == "stopped:nan" and v.rule == "entropy_high" and math.isnan(v.value)


def test_missing_metric_is_not_fine_live():
    # a live trial whose trainer never reports a watched key fails loudly
    v = evaluate([ENTROPY_HIGH], [{"step": 3}], recorded=False)
    assert v.verdict == "stopped:nan" and v.reason == "actor/entropy is missing (never reported)"


def test_nan_fire_counts_as_condition():
    r = Rule("r", M.ENTROPY, "bad", op=">", value=7, on_nan="fire")
    assert evaluate([r], hist(M.ENTROPY, [math.inf])).verdict == "stopped:r"


def test_objective_nan_stops():
    v = evaluate([], hist(M.SCORE_MEAN, [0.1, math.nan]), objective=M.SCORE_MEAN)
    assert v.verdict == "stopped:nan" and v.metric == M.SCORE_MEAN and v.step == 2


def test_good_rule_at_step_and_last_report():
    assert evaluate([BAND], hist(M.ENTROPY, [2, 2, 2, 4, 9])).verdict == "healthy"
    v = evaluate([BAND], hist(M.ENTROPY, [4, 4, 4, 7, 4]))
    assert (v.verdict, v.step, v.value) == ("unhealthy:entropy_band", 4, 7)
    last = Rule("score", M.SCORE_MEAN, "good", op=">", value=0.2)
    assert evaluate([last], hist(M.SCORE_MEAN, [0.0, 0.3])).verdict == "healthy"
    assert evaluate([last], hist(M.SCORE_MEAN, [0.3, 0.1])).verdict == "unhealthy:score"


def test_good_rule_never_reached_is_unhealthy():
    v = evaluate([BAND], hist(M.ENTROPY, [4, 4]))
    assert v.verdict == "unhealthy:entropy_band" and "no report" in v.reason


def test_bad_at_step_judged_once():
    r = Rule("low_score", M.SCORE_MEAN, "bad", op="<", value=0.1, at_step=3)
    assert evaluate([r], hist(M.SCORE_MEAN, [0, 0, 0.2, 0, 0])).verdict == "healthy"
    assert evaluate([r], hist(M.SCORE_MEAN, [1, 1, 0.05])).step == 3


def test_tracker_is_incremental_and_sticky():
    t = CriteriaTracker([ENTROPY_HIGH])
    assert t.update({"step": 3, M.ENTROPY: 5}) is None
    first = t.update({"step": 4, M.ENTROPY: 8})
    assert t.update({"step": 5, M.ENTROPY: 1}) is first
    assert t.finish() is first


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_operator(op):
    r = Rule("r", "m", "bad", op=op, value=1.0)
    for x in (0.5, 1.0, 1.5):
        assert evaluate([r], [{"step": 1, "m": x}]).stopped == OPS[op](x, 1.0)


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        (dict(op=">"), "op='>'"),
        (dict(op=">", value=1, between=(0, 1)), "exactly one"),
        (dict(between=(2, 1)), "low <= high"),
        (dict(op="~", value=1), "op='~'"),
        (dict(op=">", value=1, patience=0), "self.patience=0"),
        (dict(op=">", value=1, window=0), "self.window=0"),
    ],
)
def test_rule_rejects_bad_definitions(kwargs, msg):
    with pytest.raises(ValueError, match="rule 'r'") as e:
        Rule("r", "m", "bad", **kwargs)
    assert msg in str(e.value)


def test_verdict_dict_is_json_safe():
    v = evaluate([ENTROPY_HIGH], hist(M.ENTROPY, [5, 5, math.nan]))
    assert v.as_dict()["value"] == "nan"


def test_window_judges_the_mean_of_recent_reports():
    # one noisy batch (0.05) at the check step: the raw rule would stop, the mean of 3 does not
    raw = Rule("score_low", M.SCORE_MEAN, "bad", op="<", value=0.1, at_step=4)
    smooth = Rule("score_low", M.SCORE_MEAN, "bad", op="<", value=0.1, at_step=4, window=3)
    scores = hist(M.SCORE_MEAN, [0.0, 0.2, 0.25, 0.05, 0.3])
    assert evaluate([raw], scores).verdict == "stopped:score_low"
    assert evaluate([smooth], scores).verdict == "healthy"
    v = evaluate([smooth], hist(M.SCORE_MEAN, [0.3, 0.1, 0.05, 0.06]))
    assert (v.verdict, v.step, v.value) == ("stopped:score_low", 4, pytest.approx(0.07))


def test_window_on_good_rule_uses_reports_up_to_the_judged_step_and_skips_nan():
    good = Rule("score_good", M.SCORE_MEAN, "good", op=">", value=0.2, at_step=3, window=2)
    # judged at step 3 over steps 2-3 (0.3, 0.2 → 0.25); the later 0.0 is not part of it
    assert evaluate([good], hist(M.SCORE_MEAN, [0.0, 0.3, 0.2, 0.0])).verdict == "healthy"
    v = evaluate([good], hist(M.SCORE_MEAN, [0.9, 0.1, math.nan]))
    assert (v.verdict, v.value) == ("unhealthy:score_good", 0.1)  # NaN skipped, 0.9 outside the window
    assert good.describe() == "mean of last 2 critic/score/mean > 0.2 (at step 3)"
    last = Rule("len", M.RESP_LEN_POS, "good", op=">", value=50)
    assert last.describe() == "response_length/pos/mean > 50 (at the last step)"
    assert Rule("g", M.RESP_LEN_POS, "bad", op="<", value=20).describe().endswith("(any step)")


def test_window_needs_history():
    w = Rule("r", M.SCORE_MEAN, "bad", op="<", value=0.1, window=2)
    with pytest.raises(ValueError, match="window > 1 or a forecast need keep_history"):
        CriteriaTracker([w], keep_history=False)


# ---------------------------------------------------------------- stop when decided

SCORE_GOOD = Rule("score_good", M.SCORE_MEAN, "good", op=">", value=0.2, at_step=3)


def test_a_missed_at_step_good_rule_ends_the_trial_there():
    t = CriteriaTracker([SCORE_GOOD])
    assert [t.update(r) for r in hist(M.SCORE_MEAN, [0.3, 0.3])] == [None, None]
    v = t.update({"step": 3, M.SCORE_MEAN: 0.1})
    assert (v.verdict, v.step, v.value, v.reason) == ("unhealthy:score_good", 3, 0.1, DECIDED)
    assert v.ended_early and not v.stopped and t.finish() is v
    # met at step 3: nothing decided early, healthy at the end
    assert evaluate([SCORE_GOOD], hist(M.SCORE_MEAN, [0.0, 0.0, 0.3, 0.0])).verdict == "healthy"


def test_keep_running_judges_the_same_rule_at_the_end():
    scores = hist(M.SCORE_MEAN, [0.3, 0.3, 0.1, 0.9])
    t = CriteriaTracker([SCORE_GOOD], stop_when_decided=False)
    assert [t.update(r) for r in scores] == [None] * 4
    v = t.finish()
    assert (v.verdict, v.step, v.reason, v.ended_early) == ("unhealthy:score_good", 3, None, False)


def test_a_bad_rule_firing_at_the_judged_step_wins():
    bad = Rule("score_zero", M.SCORE_MEAN, "bad", op="<", value=0.05)
    v = evaluate([bad, SCORE_GOOD], hist(M.SCORE_MEAN, [0.3, 0.3, 0.0]))
    assert v.verdict == "stopped:score_zero"


# ---------------------------------------------------------------- sparse reports


def test_a_report_without_the_metric_is_not_observed():
    # the streak of 2 survives the reports that lack the key; explicit NaN still stops
    reports = [
        {"step": 1, M.RESP_LEN_POS: 10},
        {"step": 2},
        {"step": 3, M.RESP_LEN_POS: 10},
        {"step": 4, M.ENTROPY: 5},
        {"step": 5, M.RESP_LEN_POS: 10},
    ]
    rule = Rule("guessing", M.RESP_LEN_POS, "bad", op="<", value=20, patience=3)
    for recorded in (True, False):
        v = evaluate([rule], reports, recorded=recorded)
        assert (v.verdict, v.step) == ("stopped:guessing", 5)
    v = evaluate([ENTROPY_HIGH], [{"step": 3, M.ENTROPY: 5}, {"step": 4}, {"step": 5, M.ENTROPY: math.nan}])
    assert (v.verdict, v.step) == ("stopped:nan", 5)


def test_at_step_waits_for_a_report_that_has_the_metric():
    reports = [{"step": 2, M.SCORE_MEAN: 0.3}, {"step": 3}, {"step": 4, M.SCORE_MEAN: 0.1}]
    v = evaluate([SCORE_GOOD], reports)
    assert (v.verdict, v.step, v.value) == ("unhealthy:score_good", 4, 0.1)
    bad = Rule("score_low", M.SCORE_MEAN, "bad", op="<", value=0.2, at_step=3)
    assert evaluate([bad], reports).step == 4


def test_window_averages_the_reports_of_the_last_steps():
    good = Rule("score_good", M.SCORE_MEAN, "good", op=">", value=0.2, at_step=40, window=5)
    milestones = [
        {"step": 10, M.SCORE_MEAN: 0.0},
        {"step": 20, M.SCORE_MEAN: 0.0},
        {"step": 40, M.SCORE_MEAN: 0.3},
    ]
    v = evaluate([good], milestones)  # steps 36-40: only step 40's 0.3 counts
    assert v.verdict == "healthy"


def test_a_recorded_run_that_never_reports_a_key_is_judged_without_its_rules():
    conn = Rule("connectives_kept", M.LOGICAL_CONNECTIVES, "good", op=">", value=2)
    collapsed = Rule("collapsed", M.LOGICAL_CONNECTIVES, "bad", op="<", value=1)
    entropy_only = hist(M.ENTROPY, [4, 5, 5, 4])
    assert evaluate([conn, collapsed, BAND], entropy_only).verdict == "healthy"
    assert unreported([conn, BAND], entropy_only, objective=M.SCORE_MEAN) == [
        M.SCORE_MEAN,
        M.LOGICAL_CONNECTIVES,
    ]
    # live: the same trainer fails loudly (bad rule) or misses the good rule
    v = evaluate([collapsed], entropy_only, recorded=False)
    assert (v.verdict, v.step, v.reason) == (
        "stopped:nan",
        1,
        "token/logical_connectives is missing (never reported)",
    )
    v = evaluate([conn], entropy_only, recorded=False)
    assert (v.verdict, v.reason) == ("unhealthy:connectives_kept", "token/logical_connectives never reported")


def test_live_objective_never_reported_stops_but_a_gap_is_skipped():
    v = evaluate([], [{"step": 1, M.ENTROPY: 5}], objective=M.SCORE_MEAN, recorded=False)
    assert v.verdict == "stopped:nan" and "never reported" in v.reason
    gap = [{"step": 1, M.SCORE_MEAN: 0.1}, {"step": 2}, {"step": 3, M.SCORE_MEAN: 0.2}]
    assert evaluate([], gap, objective=M.SCORE_MEAN, recorded=False).verdict == "healthy"


# ---------------------------------------------------------------- forecasts

CLIMB = Rule("entropy_high", M.ENTROPY, "bad", op=">", value=7, after_step=2, forecast=Forecast(5, 10, 0.9))


def test_forecast_stops_a_steady_climb_before_the_threshold():
    climb = hist(M.ENTROPY, [4.0, 4.3, 4.6, 4.8, 5.1, 5.4, 5.7, 6.0, 6.3, 6.6, 6.9, 7.2])
    v = evaluate([CLIMB], climb)
    assert (v.verdict, v.rule, v.step, v.value) == ("stopped:entropy_high", "entropy_high", 7, 5.7)
    # steps 3-7: median slope 0.3, 0.25 at 90 %: 7 is reached by step 13 <= 7 + 10
    assert v.reason == "forecast: crosses 7 at step ~11 (band 11–13)"
    assert evaluate([replace(CLIMB, forecast=None)], climb).step == 12  # the plain threshold


def test_forecast_leaves_a_noisy_flat_or_slow_run_alone():
    flat = hist(M.ENTROPY, [5.0, 5.3, 4.8, 5.2, 4.9, 5.3, 4.7, 5.1, 5.2, 4.8, 5.0, 5.3])
    assert evaluate([CLIMB], flat).verdict == "healthy"
    slow = hist(M.ENTROPY, [4 + 0.05 * i for i in range(12)])  # crosses 7 only at step ~61
    assert evaluate([CLIMB], slow).verdict == "healthy"


def test_forecast_of_a_falling_metric_and_robustness_to_one_outlier():
    low = Rule("entropy_low", M.ENTROPY, "bad", op="<", value=1, forecast=Forecast(5, 5, 0.9))
    fall = hist(M.ENTROPY, [3.0, 2.7, 2.4, 9.0, 1.8, 1.5, 1.2, 0.9])
    v = evaluate([low], fall)
    assert v.verdict == "stopped:entropy_low" and v.reason.startswith("forecast: crosses 1 at step ~")
    line = theil_sen([1, 2, 3, 4, 5], [1.0, 2.0, 30.0, 4.0, 5.0], 0.9)
    assert line.slope == pytest.approx(1.0) and line.level == pytest.approx(3.0)


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        (dict(verdict="good", op=">", value=1), "forecast needs a bad rule"),
        (dict(verdict="bad", between=(0, 1)), "forecast needs a bad rule"),
        (dict(verdict="bad", op="==", value=1), "forecast needs a bad rule"),
        (dict(verdict="bad", op=">", value=1, at_step=3), "no at_step"),
    ],
)
def test_forecast_rule_shape(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        Rule("r", "m", forecast=Forecast(), **kwargs)
    with pytest.raises(ValueError, match="self.window=2"):
        Forecast(window=2)
