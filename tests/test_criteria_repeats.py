"""The aggregation rule of repeated seeds (criteria/repeats.py): quorum, sibling stops, splits."""

import pytest

from archer_sweep.criteria import Rule, Verdict
from archer_sweep.criteria.repeats import aggregate, mean_std, origin, sibling_verdict, stops_siblings

RULES = [
    Rule("entropy_high", "actor/entropy", "bad", op=">", value=7),
    Rule("score_good", "critic/score/mean", "good", op=">", value=0.2),
]


def test_healthy_needs_the_quorum():
    seeds = ["healthy", "unhealthy:score_good", "healthy"]
    everyone = aggregate(seeds, 3, 3)
    assert (everyone.verdict, everyone.describe()) == (
        "unhealthy:score_good",
        "healthy 2/3, split by score_good",
    )
    assert aggregate(seeds, 3, 2).verdict == "healthy"


def test_the_most_frequent_failure_wins_ties_to_the_earliest_seed():
    assert aggregate(["unhealthy:a", "stopped:b", "stopped:b"], 3, 3).verdict == "stopped:b"
    assert aggregate(["unhealthy:a", "stopped:b", "healthy"], 3, 3).verdict == "unhealthy:a"
    assert aggregate(["error", "unhealthy:a", "error"], 3, 3).verdict == "unhealthy:a"
    assert aggregate(["error", "error"], 3, 3).verdict == "error"


def test_a_sibling_stop_counts_as_its_cause_and_does_not_split():
    v = aggregate(["stopped:sibling:entropy_high", "stopped:entropy_high"], 3, 3)
    assert (v.verdict, v.agreement, v.split) == ("stopped:entropy_high", "healthy 0/3", ())
    assert origin("stopped:sibling:nan") == "stopped:nan"


def test_seeds_that_never_ran_are_not_healthy():
    assert aggregate(["healthy"], 3, 2).verdict != "healthy"
    with pytest.raises(ValueError, match="quorum=4"):
        aggregate(["healthy"], 3, 4)


def test_only_bad_rules_and_nan_stop_siblings():
    assert stops_siblings(Verdict("stopped:entropy_high", rule="entropy_high"), RULES) == "entropy_high"
    assert stops_siblings(Verdict("stopped:nan", rule="entropy_high"), RULES) == "nan"
    for other in (Verdict("stopped:timeout", rule="timeout"), Verdict("stopped:asha", rule="asha")):
        assert stops_siblings(other, RULES) is None
    assert stops_siblings(Verdict("unhealthy:score_good", rule="score_good"), RULES) is None
    v = sibling_verdict("entropy_high", "t1", 12, 9)
    assert stops_siblings(v, RULES) is None
    assert (v.verdict, v.rule, v.step) == ("stopped:sibling:entropy_high", "entropy_high", 9)
    assert v.reason == "sibling t1 stopped:entropy_high at step 12 (search.repeats.stop_siblings)"


def test_mean_and_std_of_the_finite_objectives():
    assert mean_std([0.2, 0.4, float("nan"), None]) == (pytest.approx(0.3), pytest.approx(0.1))
    assert mean_std([]) == (None, None)


def test_the_summary_counts_seeds_a_sibling_stop_made_unnecessary_as_not_started(tmp_path):
    from archer_sweep.engine.live import summary
    from archer_sweep.engine.verdicts import VerdictStore
    from archer_sweep.spec.model import RepeatsSpec

    store = VerdictStore(tmp_path)
    params = {"algorithm.entropy_coeff": 0.05}
    # config 0 stopped on its first seed before a slot freed for seeds 1 and 2
    store.record(
        "t0", params, Verdict("stopped:entropy_high", rule="entropy_high", step=8), {"group": 0, "seed": 0}
    )
    for seed in range(3):
        store.record(
            f"t{seed + 1}", {"algorithm.entropy_coeff": 0.005}, Verdict("healthy"), {"group": 1, "seed": seed}
        )
    text = summary(tmp_path, "critic/score/mean", "max", 6, repeats=RepeatsSpec(count=3), rules=RULES)
    assert text.splitlines()[0] == (
        f"Sweep {tmp_path.name}: 4/6 trials judged, 2 not started (their config was stopped by a bad rule first)"
    )
    without_stop = summary(
        tmp_path, "critic/score/mean", "max", 6, repeats=RepeatsSpec(count=3, stop_siblings=False)
    )
    assert without_stop.splitlines()[0] == f"Sweep {tmp_path.name}: 4/6 trials judged"
