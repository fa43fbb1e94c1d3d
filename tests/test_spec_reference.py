"""Spec errors of rules with a reference (`relative_to`, `drop`, `drop_ratio`): exact text."""

import pytest

from archer_sweep.spec.load import SpecError, load_spec
from tests.spec_helpers import edit, write

L = 18  # the first rule's line in spec_helpers.BASE
VAL = "val-core/archer-sweep/arithmetic/reward/mean@1"
CASES = [
    (
        f'  - {{name: d, metric: {VAL}, drop: 0.05, op: "<", value: 1}}',
        f"s.yaml:{L}: criteria[0].op: given with drop (expected one condition: op with value, between, or drop)",
    ),
    (
        f"  - {{name: d, metric: {VAL}, drop: 0.05, drop_ratio: 0.2}}",
        f"s.yaml:{L}: criteria[0].drop_ratio: given with drop (expected one of drop or drop_ratio)",
    ),
    (
        f"  - {{name: d, metric: {VAL}, drop_ratio: 0.2, verdict: good}}",
        f"s.yaml:{L}: criteria[0].drop_ratio: applies only to bad rules (expected verdict: bad, or op with value)",
    ),
    (
        f"  - {{name: d, metric: {VAL}, drop: 0.05, relative_to: start}}",
        f"s.yaml:{L}: criteria[0].relative_to: given with drop (expected no relative_to: a drop is measured from the run's best)",
    ),
    (
        f"  - {{name: d, metric: {VAL}, drop: 0.05, forecast: {{}}}}",
        f"s.yaml:{L}: criteria[0].forecast: given with drop (expected op with value for a forecast)",
    ),
    (
        f"  - {{name: d, metric: {VAL}, drop: 0}}",
        f"s.yaml:{L}: criteria[0].drop: 0 is out of range (expected a value > 0)",
    ),
    (
        f"  - {{name: d, metric: {VAL}, drop_ratio: 1.5}}",
        f"s.yaml:{L}: criteria[0].drop_ratio: 1.5 is out of range (expected a value <= 1)",
    ),
    (
        '  - {name: e, metric: actor/entropy, op: "<", value: 0.05, relative_to: begin}',
        f"s.yaml:{L}: criteria[0].relative_to: unknown value 'begin' (expected one of start)",
    ),
]


@pytest.mark.parametrize("line, expected", CASES)
def test_rejected_with_exact_message(tmp_path, monkeypatch, line, expected):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, edit({L: line}))
    with pytest.raises(SpecError) as exc:
        load_spec("s.yaml")
    assert str(exc.value) == expected


def test_a_val_rule_needs_validation_on(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, edit({L: f"  - {{name: d, metric: {VAL}, drop: 0.05}}"}))
    with pytest.raises(SpecError, match="unknown metric 'val-core/archer-sweep/arithmetic/reward/mean@1'"):
        load_spec("s.yaml")


def test_reference_rules_load_and_describe_their_reference(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rules = (
        '  - {name: entropy_low, metric: actor/entropy, op: "<", value: 0.05, relative_to: start, after_step: 5}\n'
        f"  - {{name: val_drop, metric: {VAL}, drop: 0.05, after_step: 10, patience: 2}}"
    )
    config = "    trainer: {total_steps: 60, test_freq: 10}\n    data: {val_size: 16}"
    write(tmp_path, edit({6: config, L: rules, L + 1: None}))
    low, drop, _band = load_spec("s.yaml").rules()
    assert low.relative_to == "start" and drop.drop == 0.05
    assert low.describe() == "actor/entropy < 0.05 × start (after step 5)"
    assert drop.describe() == f"{VAL} falls 0.05 below its best (after step 10, 2 reports in a row)"
