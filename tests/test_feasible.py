"""The feasible-region model behind `next`: pure functions over unit coordinates."""

from __future__ import annotations

import math

import numpy as np
import pytest
from optuna.distributions import FloatDistribution

from archer_sweep.feasible import model as F
from archer_sweep.feasible.space import from_unit, to_unit
from archer_sweep.planning.feasible_next import propose_feasible
from archer_sweep.planning.nextver import PastTrial, propose

EC, KL = "algorithm.entropy_coeff", "algorithm.kl_loss_coef"
SPACE = {EC: FloatDistribution(1e-3, 0.3, log=True), KL: FloatDistribution(1e-3, 0.1, log=True)}


def ev(rows):
    return F.evidence_of(rows, (EC, KL))


def test_p_healthy_follows_nearby_verdicts_and_falls_back_to_the_base_rate():
    e = ev([((0.2, 0.5), "healthy", 0.4), ((0.8, 0.5), "stopped:entropy_high", None)])
    near_good, near_bad, far = F.p_healthy(e, np.array([[0.2, 0.5], [0.8, 0.5], [0.5, 0.0]]))
    assert near_good > 0.6 > 0.4 > near_bad
    assert far == pytest.approx(0.5, abs=0.05)  # base rate (1 + 1) / (2 + 2)


def test_a_failure_reaches_toward_its_failure_side_only():
    # an unhealthy trial at the middle; candidates 0.3 away on either side of entropy_coeff
    e = ev([((0.5, 0.5), "unhealthy:reasoning_length", 0.2)])
    X = np.array([[0.8, 0.5], [0.2, 0.5], [0.5, 0.2], [0.5, 0.8]])
    w = F.directed_weights(e, X, F.MONOTONE_DEFAULT, reach=0.0)[:, 0]
    more_bonus, less_bonus, less_kl, more_kl = w
    # beyond it toward the runaway side (more bonus, less KL): as if level with it
    assert more_bonus == less_kl == pytest.approx(1.0)
    # the safe side keeps the plain kernel
    assert less_bonus == pytest.approx(more_kl) == pytest.approx(F.weights(e, X[1:2])[0, 0])
    assert less_bonus < 0.1
    # a collapse reaches the other way; a healthy trial reaches no further either way
    collapse = ev([((0.5, 0.5), "stopped:entropy_low", None)])
    assert F.directed_weights(collapse, X, F.MONOTONE_DEFAULT, 0.0)[1, 0] == pytest.approx(1.0)
    healthy = ev([((0.5, 0.5), "healthy", 0.3)])
    np.testing.assert_allclose(F.directed_weights(healthy, X, F.MONOTONE_DEFAULT, 0.0), F.weights(healthy, X))
    # so P(healthy) beyond a failure is lower with the directions than without
    assert F.p_healthy(e, X[:1], directions=F.MONOTONE_DEFAULT)[0] < F.p_healthy(e, X[:1])[0]


def test_objective_model_shrinks_to_the_mean_and_is_surer_near_evidence():
    e = ev([((0.2, 0.5), "healthy", 0.6), ((0.3, 0.5), "unhealthy:score_good", 0.2)])
    mean, std = F.objective_model(e, np.array([[0.2, 0.5], [0.9, 0.9]]))
    assert mean[0] > mean[1] == pytest.approx(0.4, abs=1e-6)
    assert std[0] < std[1]


def test_expected_improvement_is_positive_and_grows_with_the_mean():
    ei = F.expected_improvement(np.array([0.1, 0.5, 0.9]), np.array([0.1, 0.1, 0.1]), best=0.5)
    assert 0 < ei[0] < ei[1] < ei[2]
    assert ei[1] == pytest.approx(0.1 / math.sqrt(2 * math.pi))


def test_monotone_prior_excludes_what_is_at_least_as_risky_as_a_runaway():
    e = ev([((0.6, 0.5), "stopped:entropy_high", None), ((0.1, 0.5), "stopped:entropy_low", None)])
    X = np.array([[0.7, 0.4], [0.7, 0.6], [0.5, 0.4], [0.05, 0.6], [0.3, 0.5]])
    mask, cause = F.monotone_exclusions(e, X, F.MONOTONE_DEFAULT)
    # more entropy and less KL than the runaway; less entropy and more KL than the collapse
    assert mask.tolist() == [True, False, False, True, False]
    assert cause[0] == 0 and cause[3] == 1


def test_before_any_healthy_trial_the_acquisition_is_p_healthy():
    e = ev([((0.5, 0.5), "unhealthy:reasoning_length", 0.1)])
    X = np.array([[0.5, 0.5], [0.1, 0.9]])
    s = F.score_candidates(e, X)
    assert s.acquisition.tolist() == s.p_healthy.tolist()


def test_pick_keeps_its_distance_from_the_past_and_between_picks():
    X = np.array([[0.5, 0.5], [0.51, 0.5], [0.9, 0.9], [0.1, 0.1]])
    chosen = F.pick(X, np.array([4.0, 3.0, 2.0, 1.0]), count=2, avoid=np.array([[0.1, 0.1]]))
    assert chosen == [0, 2]


def test_unit_round_trip_on_a_log_scale():
    for v in (1e-3, 0.0123, 0.3):
        assert from_unit(EC, to_unit(EC, v, SPACE), SPACE) == pytest.approx(v, rel=1e-3)
    assert to_unit(EC, 1e-3, SPACE) == 0.0 and to_unit(EC, 0.3, SPACE) == 1.0


def _past():
    return [
        PastTrial("v1", {EC: 0.01, KL: 0.01}, "unhealthy:reasoning_length", 0.2, "t", {}, 60),
        PastTrial("a", {EC: 0.023, KL: 0.01}, "stopped:entropy_high", None, "t", {}, 14),
        PastTrial("b", {EC: 0.031, KL: 0.02}, "stopped:entropy_high", None, "t", {}, 20),
        PastTrial("v2", {EC: 0.005, KL: 0.01}, "healthy", 0.4, "t", {}, 60),
    ]


def test_proposals_avoid_the_runaway_region_and_cite_the_evidence():
    props = propose(_past(), SPACE, "max", count=4, seed=0)
    for p in props:
        assert not (p.params[EC] >= 0.023 and p.params[KL] <= 0.01), p.params
        assert 0.0 <= p.p_healthy <= 1.0 and p.expected is not None
    why = props[0].why
    assert "entropy_coeff 0.023 and 0.031 ran away by steps 14–20" in why
    assert "P(healthy)" in why and "monotone prior excluded" in why


def test_without_the_monotone_prior_nothing_is_excluded_by_it():
    props = propose_feasible(_past(), SPACE, "max", count=3, seed=0, monotone=False)
    assert all("monotone prior" not in p["why"] for p in props)


def test_tpe_stays_available_and_unknown_methods_are_refused():
    props = propose(_past(), SPACE, "max", count=2, seed=0, method="tpe")
    assert len(props) == 2 and all(p.p_healthy is None for p in props)
    with pytest.raises(ValueError, match="unknown proposal method 'gp'"):
        propose(_past(), SPACE, "max", count=2, method="gp")
