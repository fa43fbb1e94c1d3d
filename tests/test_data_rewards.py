"""Rewards of dataset rows, chosen by data_source: the seed's `คำตอบ: N` and Math-Verify's `\\boxed{}`."""

from __future__ import annotations

import threading

import pytest

from trainable import data_rewards
from trainable.datasets import Row


def row(truth: str, source: str) -> Row:
    return Row(({"role": "user", "content": "q"},), truth, source)


def test_thai_answers_by_source():
    score = data_rewards.scorer()
    src = "archer-sweep/arithmetic"
    assert score("so the total is 31 . คำตอบ: 31", row("31", src)) == 1.0
    assert score("คำตอบ: 30", row("31", src)) == 0.0
    assert score("\\boxed{31}", row("31", src)) == 0.0  # the seed's format only
    assert score("คำตอบ: 31", row("thirty-one", src)) == 0.0  # a non-integer truth never matches


def test_override_applies_one_reward_to_every_row():
    assert data_rewards.scorer("boxed_int")("\\boxed{7}", row("7", "anything")) == 1.0
    with pytest.raises(
        ValueError, match=r"no reward for data_source 'lighteval/MAHT'; did you mean|did you mean"
    ):
        data_rewards.reward_name("lighteval/MAHT")


math_verify = pytest.importorskip(
    "math_verify", reason="math-verify is not installed (pip install 'archer-sweep[math]')"
)


@pytest.mark.parametrize(
    ("text", "truth", "want"),
    [
        ("so the answer is \\boxed{0.5}", "\\frac{1}{2}", 1.0),
        ("\\boxed{\\frac{2}{4}}", "1/2", 1.0),
        ("the final answer is $\\sqrt{2}$", "\\sqrt{2}", 1.0),
        ("\\boxed{3}", "\\frac{1}{2}", 0.0),
        ("I think $\\frac12$", "\\frac{1}{2}", 0.0),  # no \\boxed{} and no "final answer": not an answer
        ("\\boxed{[1, 2)}", "[1,2)", 1.0),
        ("garbage \\boxed{", "1", 0.0),
    ],
)
def test_math_rows_are_checked_by_math_verify(text, truth, want):
    assert data_rewards.scorer()(text, row(truth, "HuggingFaceH4/MATH-500")) == want


def test_math_verify_runs_outside_the_main_thread():
    """Ray may call a step from a worker thread: Math-Verify's signal timeout is then off."""
    got = []
    t = threading.Thread(target=lambda: got.append(data_rewards.math_score("\\boxed{2}", "2")))
    t.start()
    t.join()
    assert got == [1.0]
