import math

import pytest

from archer_sweep.criteria import OPS, CriteriaTracker, Rule, evaluate
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
