"""The `feasible` sampler: the feasible-region model of `next` proposing a live sweep's trials
from the verdicts the criteria searcher stores on the study."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from archer_sweep.engine.sampler import FeasibleSampler, verdict_of
from archer_sweep.objective import CONSTRAINT_KEY, VERDICT_ATTR

EC, KL = "algorithm.entropy_coeff", "algorithm.kl_loss_coef"
SPACE = {EC: FloatDistribution(1e-3, 0.3, log=True), KL: FloatDistribution(1e-3, 0.1, log=True)}


def judged(ec: float, kl: float, verdict: str, value: float | None = None):
    state = TrialState.PRUNED if verdict.startswith("stopped:") else TrialState.COMPLETE
    return create_trial(
        params={EC: ec, KL: kl},
        distributions=dict(SPACE),
        value=None if state == TrialState.PRUNED else (0.0 if value is None else value),
        state=state,
        user_attrs={VERDICT_ATTR: {"verdict": verdict}},
    )


def study_with(trials, seed=0, **kw):
    study = optuna.create_study(direction="maximize", sampler=FeasibleSampler(SPACE, seed=seed, **kw))
    for t in trials:
        study.add_trial(t)
    return study


def test_without_evidence_it_draws_at_random_inside_the_space():
    study = study_with([])
    proposals = [study.ask(SPACE).params for _ in range(5)]
    assert len({p[EC] for p in proposals}) == 5
    assert all(1e-3 <= p[EC] <= 0.3 and 1e-3 <= p[KL] <= 0.1 for p in proposals)


def test_nothing_at_least_as_risky_as_a_past_runaway_is_proposed():
    runaways = [judged(0.02, 0.01, "stopped:entropy_high"), judged(0.05, 0.05, "stopped:entropy_high")]
    for seed in range(5):
        study = study_with(runaways + [judged(0.01, 0.01, "unhealthy:score_good", 0.1)], seed=seed)
        for _ in range(4):
            t = study.ask(SPACE)
            p = t.params
            assert not (p[EC] >= 0.02 and p[KL] <= 0.01), p
            assert not (p[EC] >= 0.05 and p[KL] <= 0.05), p
            study.tell(t, state=TrialState.PRUNED)


FAILED_AROUND = [
    judged(0.01, 0.05, "stopped:entropy_high"),
    judged(0.3, 0.1, "stopped:entropy_high"),
    judged(0.001, 0.001, "unhealthy:score_good", 0.1),
    judged(0.001, 0.1, "unhealthy:score_good", 0.1),
    judged(0.003, 0.01, "unhealthy:score_good", 0.1),
]
"""Failures everywhere but the untried high-entropy, low-KL corner."""


@pytest.mark.parametrize("monotone", [True, False])
def test_the_monotone_prior_closes_the_untried_corner_beyond_a_runaway(monotone):
    for seed in range(4):
        p = study_with(FAILED_AROUND, seed=seed, monotone=monotone).ask(SPACE).params
        # at least as risky as the runaway at (0.01, 0.05): more entropy bonus, less KL
        assert (p[EC] >= 0.01 and p[KL] <= 0.05) is (not monotone), p


def test_after_a_healthy_trial_it_refines_near_it_and_below_the_cliff():
    past = [
        judged(0.005, 0.01, "healthy", 0.4),
        judged(0.03, 0.01, "stopped:entropy_high"),
        judged(0.001, 0.001, "unhealthy:reasoning_length", 0.1),
        judged(0.3, 0.1, "stopped:entropy_high"),
    ]
    study = study_with(past, seed=3)
    p = study.ask(SPACE).params
    assert p[EC] < 0.03
    assert (p[EC], p[KL]) != (0.005, 0.01)


def test_running_trials_are_kept_at_a_distance():
    study = study_with([judged(0.01, 0.01, "unhealthy:score_good", 0.1)], seed=1)
    first = study.ask(SPACE).params  # stays RUNNING
    second = study.ask(SPACE).params
    assert first != second


def test_enqueued_points_win_over_the_model():
    study = study_with([judged(0.01, 0.01, "unhealthy:score_good", 0.1)])
    study.enqueue_trial({EC: 0.005, KL: 0.01})
    assert study.ask(SPACE).params == {EC: 0.005, KL: 0.01}


def test_same_seed_same_proposals():
    past = [judged(0.01, 0.01, "unhealthy:score_good", 0.1), judged(0.1, 0.01, "stopped:entropy_high")]
    a = study_with(past, seed=7).ask(SPACE).params
    b = study_with(past, seed=7).ask(SPACE).params
    assert a == b


@pytest.mark.parametrize(
    ("state", "constraint", "expected"),
    [
        (TrialState.PRUNED, None, "stopped:pruned"),
        (TrialState.COMPLETE, 1.0, "unhealthy"),
        (TrialState.COMPLETE, -1.0, "healthy"),
    ],
)
def test_verdict_without_the_searchers_attr_comes_from_state_and_constraint(state, constraint, expected):
    t = create_trial(
        params={EC: 0.01},
        distributions={EC: SPACE[EC]},
        value=None if state == TrialState.PRUNED else 0.2,
        state=state,
        constraints={CONSTRAINT_KEY: constraint} if constraint is not None else None,
    )
    assert verdict_of(t) == expected


def test_the_searchers_verdict_attr_wins():
    assert verdict_of(judged(0.01, 0.01, "unhealthy:score_good", 0.1)) == "unhealthy:score_good"
