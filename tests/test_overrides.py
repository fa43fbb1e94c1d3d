import pytest

from archer_sweep.errors import SpecError
from archer_sweep.spec.load import load_spec
from archer_sweep.spec.overrides import apply_overrides, parse_override
from archer_sweep.spec.yamlio import parse_yaml
from tests.spec_helpers import edit, write


def apply(*overrides, text=None):
    data, lines = parse_yaml(text or edit(), "s.yaml")
    return data, apply_overrides(data, lines, overrides), lines


def test_values_are_parsed_as_yaml():
    assert parse_override("search.num_samples=4", 1) == (["search", "num_samples"], 4)
    assert parse_override("a.b=1e-3", 1) == (["a", "b"], 0.001)
    assert parse_override("a.b=[1, 2]", 1) == (["a", "b"], [1, 2])
    assert parse_override("a.b={type: fixed, value: x}", 1) == (["a", "b"], {"type": "fixed", "value": "x"})
    assert parse_override("a.b=", 1) == (["a", "b"], None)
    assert parse_override("criteria[2].at_step=9", 1) == (["criteria", "2", "at_step"], 9)
    # a value is data: shell syntax stays a plain string
    assert parse_override("name=$(rm -rf /); echo", 1)[1] == "$(rm -rf /); echo"


def test_overrides_set_nested_keys_on_a_copy():
    data, out, lines = apply(
        "search.num_samples=4",
        "trainable.config.trainer.total_steps=16",
        "criteria.entropy_band.at_step=10",
        "criteria[0].value=7.5",
        "search.space.algorithm.entropy_coeff.low=0.001",
        "trainable.config.actor.lr=1e-3",
        "failure.max_failures=2",
    )
    assert out["search"]["num_samples"] == 4 and data["search"]["num_samples"] == 8
    assert out["trainable"]["config"]["trainer"] == {"total_steps": 16}
    assert out["criteria"][2]["at_step"] == 10 and out["criteria"][0]["value"] == 7.5
    assert out["search"]["space"]["algorithm.entropy_coeff"]["low"] == 0.001
    assert out["trainable"]["config"]["actor"] == {"lr": 0.001}
    assert out["failure"] == {"max_failures": 2}
    assert lines.locate(("search", "num_samples")) == ("--set", 1)
    assert lines.locate(("criteria", 0, "value")) == ("--set", 4)
    assert lines.locate(("criteria", 0, "metric")) == ("s.yaml", 18)


def test_space_entries_can_be_replaced_or_added():
    _, out, _ = apply(
        "search.space.algorithm.entropy_coeff={type: fixed, value: 0.01}",
        "search.space.actor.lr={type: loguniform, low: 1e-5, high: 1e-3}",
    )
    assert out["search"]["space"]["algorithm.entropy_coeff"] == {"type": "fixed", "value": 0.01}
    assert out["search"]["space"]["actor.lr"]["high"] == 0.001


def test_points_take_dotted_keys():
    _, out, _ = apply("search.points_to_evaluate[1].algorithm.entropy_coeff=0.02")
    assert out["search"]["points_to_evaluate"][1] == {"algorithm.entropy_coeff": 0.02}


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "search.num_sample=4",
            "--set:1: search.num_sample: unknown key; did you mean `num_samples`? (expected one "
            "of metric, mode, num_samples, max_concurrent, sampler, space, points_to_evaluate, "
            "objective_reduce, repeats)",
        ),
        (
            "criteria.entropy_hihg.value=3",
            "--set:1: criteria.entropy_hihg: no such item; did you mean `entropy_high`? "
            "(expected an index below 3 or a rule name: entropy_high, guessing, "
            "entropy_band)",
        ),
        (
            "criteria.7.value=3",
            "--set:1: criteria.7: no such item (expected an index below 3 or a rule name: "
            "entropy_high, guessing, entropy_band)",
        ),
        (
            "search.space.algorithm.entropy_coef.low=1",
            "--set:1: search.space.algorithm.entropy_coef: no such space "
            "key; did you mean `algorithm.entropy_coeff`? (expected one of "
            "algorithm.entropy_coeff, algorithm.kl_loss_coef)",
        ),
        (
            "trainable.config.rollout.temp=0.7",
            "--set:1: trainable.config.rollout.temp: unknown key; did you mean "
            "`temperature`? (expected one of n, temperature, val_kwargs)",
        ),
        (
            "num_samples",
            "--set:1: 'num_samples': not an override (expected dotted.key=value, e.g. search.num_samples=4)",
        ),
        ("a b=1", "--set:1: 'a b=1': not an override (expected dotted.key=value, e.g. search.num_samples=4)"),
        (
            "search.num_samples=[1",
            "--set:1: search.num_samples: value '[1' is not valid YAML: expected ',' or ']', "
            "but got '<stream end>', while parsing a flow sequence at line 1 (expected valid YAML)",
        ),
    ],
)
def test_unknown_keys_are_refused(override, message):
    with pytest.raises(SpecError) as exc:
        apply(override)
    assert str(exc.value) == message


def test_error_names_the_nth_set(tmp_path):
    path = write(tmp_path, edit())
    with pytest.raises(SpecError) as exc:
        load_spec(path, ["search.num_samples=4", "search.max_concurrent=0"])
    assert str(exc.value) == "--set:2: search.max_concurrent: 0 is out of range (expected a value >= 1)"
    assert path.read_text() == edit()  # nothing written


def test_trainer_keys_follow_the_overridden_backend(tmp_path):
    path = write(tmp_path, edit())
    # hf's model section has `path`; tiny's has not
    with pytest.raises(SpecError, match=r"^--set:1: trainable.config.model.path: unknown key"):
        load_spec(path, ["trainable.config.model.path=/m"])
    spec = load_spec(path, ["trainable.config.model.path=/m", "trainable.backend=hf"])
    assert spec.trainable.config["model"] == {"path": "/m"}


def test_overridden_spec_validates(tmp_path):
    spec = load_spec(
        write(tmp_path, edit()),
        [
            "search.num_samples=4",
            "trainable.config.trainer.total_steps=55",
            "criteria.entropy_band.at_step=55",
            "search.sampler.type=random",
        ],
    )
    assert (spec.search.num_samples, spec.trainable.config["trainer"]["total_steps"]) == (4, 55)
    assert spec.search.sampler.type == "random" and spec.criteria[2].at_step == 55
