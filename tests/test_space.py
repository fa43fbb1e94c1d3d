import math

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from archer_sweep.spec.model import ParamSpec, SweepSpec
from archer_sweep.spec.space import (
    apply_params,
    contains,
    fixed_params,
    param_problem,
    sample_values,
    to_optuna_space,
)


def P(**kw) -> ParamSpec:
    return ParamSpec.model_validate(kw)


def problem(**kw):
    p = P(**kw)
    return param_problem(p, set(p.model_fields_set))


SPACE = {
    "algorithm.entropy_coeff": {"type": "loguniform", "low": 1e-4, "high": 5e-2},
    "algorithm.clip_ratio_high": {"type": "uniform", "low": 0.1, "high": 0.3, "step": 0.05},
    "actor.ppo_epochs": {"type": "int", "low": 1, "high": 4},
    "rollout.n": {"type": "int", "low": 2, "high": 16, "log": True},
    "algorithm.kl_loss_type": {"type": "choice", "values": ["kl", "low_var_kl"]},
    "trainer.seed": {"type": "fixed", "value": 7},
}


def test_every_type_maps_to_its_optuna_distribution():
    spec = SweepSpec.model_validate({"name": "s", "search": {"space": SPACE}})
    space = to_optuna_space(spec)
    assert space == {
        "algorithm.entropy_coeff": FloatDistribution(1e-4, 5e-2, log=True),
        "algorithm.clip_ratio_high": FloatDistribution(0.1, 0.3, step=0.05),
        "actor.ppo_epochs": IntDistribution(1, 4),
        "rollout.n": IntDistribution(2, 16, log=True),
        "algorithm.kl_loss_type": CategoricalDistribution(["kl", "low_var_kl"]),
    }
    assert isinstance(space["actor.ppo_epochs"].low, int)
    assert fixed_params(spec) == {"trainer.seed": 7}
    # the search spec and the bare mapping work too
    assert to_optuna_space(spec.search) == space == to_optuna_space(spec.search.space)


def test_apply_params_sets_nested_keys_on_a_copy():
    base = {"algorithm": {"entropy_coeff": 0.01, "kl_loss_coef": 0.01}, "backend": "tiny"}
    out = apply_params(base, {"algorithm.entropy_coeff": 0.005, "trainer.total_steps": 9, "seedless": 1})
    assert out == {
        "algorithm": {"entropy_coeff": 0.005, "kl_loss_coef": 0.01},
        "backend": "tiny",
        "trainer": {"total_steps": 9},
        "seedless": 1,
    }
    assert base["algorithm"]["entropy_coeff"] == 0.01  # not mutated
    out["algorithm"]["kl_loss_coef"] = 5
    assert base["algorithm"]["kl_loss_coef"] == 0.01  # deep copy


def test_apply_params_refuses_to_descend_into_a_value():
    with pytest.raises(ValueError, match=r"key='backend.x'.*`backend` holds 'tiny'"):
        apply_params({"backend": "tiny"}, {"backend.x": 1})


def test_sample_values_and_contains():
    assert sample_values(P(type="int", low=1, high=4)) == [1, 4]
    assert sample_values(P(type="choice", values=[1, "a"])) == [1, "a"]
    assert sample_values(P(type="fixed", value=None)) == [None]
    lu = P(type="loguniform", low=1e-4, high=1e-2)
    assert contains(lu, 1e-3) and not contains(lu, 0.5) and not contains(lu, True)
    assert not contains(P(type="int", low=1, high=4), 2.5)
    assert contains(P(type="choice", values=[1, 2]), 2) and not contains(P(type="choice", values=[1]), True)


@pytest.mark.parametrize(
    "kw, expected",
    [
        ({"type": "uniform", "low": 1, "high": 1}, ("low", "low=1 >= high=1 (expected low < high)")),
        ({"type": "loguniform", "low": 0, "high": 1}, ("low", "low=0 on a log scale (expected low > 0)")),
        (
            {"type": "int", "low": -1, "high": 4, "log": True},
            ("low", "low=-1 on a log scale (expected low > 0)"),
        ),
        (
            {"type": "int", "low": 1.5, "high": 4},
            ("low", "1.5 is not a whole number (expected an integer for type int)"),
        ),
        ({"type": "uniform", "low": 0}, ("high", "missing for type uniform (expected low, high)")),
        ({"type": "fixed"}, ("value", "missing for type fixed (expected value)")),
        ({"type": "choice", "values": []}, ("values", "empty list (expected at least one candidate)")),
        ({"type": "choice", "values": [1, 1]}, ("values", "repeated candidate (expected distinct values)")),
        (
            {"type": "choice", "values": [[1]]},
            (
                "values",
                "candidate [1] is not a plain value (expected null, true/false, a finite number or a string)",
            ),
        ),
        (
            {"type": "loguniform", "low": 1, "high": 2, "step": 1},
            ("step", "does not apply to type loguniform (expected only low, high)"),
        ),
        ({"type": "uniform", "low": 0, "high": 1, "step": 0}, ("step", "step=0 (expected step > 0)")),
        (
            {"type": "uniform", "low": 0, "high": 1, "step": 2},
            ("step", "step=2 is wider than high - low=1 (expected step <= high - low)"),
        ),
        (
            {"type": "int", "low": 1, "high": 8, "step": 2, "log": True},
            ("step", "step=2 with a log scale (expected no step, or step 1 for int)"),
        ),
        (
            {"type": "fixed", "value": 1, "low": 0},
            ("low", "does not apply to type fixed (expected only value)"),
        ),
    ],
)
def test_param_problems(kw, expected):
    assert problem(**kw) == expected


@pytest.mark.parametrize(
    "kw",
    [
        {"type": "uniform", "low": -1, "high": 1, "step": 0.5},
        {"type": "loguniform", "low": 1e-6, "high": 1},
        {"type": "int", "low": 1, "high": 64, "log": True},
        {"type": "choice", "values": [None, True, 1, 1.5, "x"]},
        {"type": "fixed", "value": None},
    ],
)
def test_valid_params_have_no_problem_and_build(kw):
    assert problem(**kw) is None
    spec = SweepSpec.model_validate({"name": "s", "search": {"space": {"a.b": kw}}})
    assert len(to_optuna_space(spec)) == (0 if kw["type"] == "fixed" else 1)
    for v in sample_values(spec.search.space["a.b"]):
        assert contains(spec.search.space["a.b"], v) or (isinstance(v, float) and math.isnan(v))
