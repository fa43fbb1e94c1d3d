"""trainable.rewards: answer extraction and exact integer scoring."""

from __future__ import annotations

import pytest

from trainable import rewards


@pytest.mark.parametrize(
    "text, want",
    [
        ("so 3 + 4 = 7 therefore คำตอบ: 7", 7),
        ("คำตอบ:42", 42),
        ("คำตอบ : -5", -5),
        ("คำตอบ: 3 ... wait, คำตอบ: 9", 9),  # last occurrence wins
        ("the answer is \\boxed{12}", 12),
        ("\\boxed{ 8 } then คำตอบ: 10", 10),  # last of either format
        ("คำตอบ: 10 and finally \\boxed{11}", 11),
        ("คำตอบ: 12.", 12),  # sentence period is fine
        ("คำตอบ: 3.5", None),  # not an integer
        ("\\boxed{x+1}", None),
        ("the answer is 7", None),
        ("", None),
        ("คำตอบ: ๗", None),  # Thai digits are not read
        ("คำตอบ: " + "9" * 5000, None),  # huge: garbage, never int()'d
    ],
)
def test_extract(text, want):
    assert rewards.extract_answer(text) == want


@pytest.mark.parametrize(
    "text, answer, want",
    [
        ("คำตอบ: 7", 7, 1.0),
        ("คำตอบ: 007", 7, 1.0),
        ("คำตอบ: 8", 7, 0.0),
        ("คำตอบ: 7 no wait คำตอบ: 8", 7, 0.0),
        ("\\boxed{-3}", -3, 1.0),
        ("\u0000\uffff\U0001f600 ∑∫ 𝟟 คำตอบ", 7, 0.0),
        ("คำตอบ: " + "1" * 40, int("1" * 40), 0.0),  # over MAX_DIGITS
        ("คำตอบ: " + "1" * 30, int("1" * 30), 1.0),
    ],
)
def test_score(text, answer, want):
    assert rewards.score(text, answer) == want


@pytest.mark.parametrize("junk", [None, 7, b"\xff\xfe", ["คำตอบ: 1"], "\ud800", "x" * 100_000])
def test_garbage_never_raises(junk):
    assert rewards.score(junk, 1) == 0.0  # type: ignore[arg-type]


def test_registry_formats():
    text = "\\boxed{5}"
    assert rewards.get_reward_fn("boxed")(text, 5) == 1.0
    assert rewards.get_reward_fn("thai")(text, 5) == 0.0
    for name, fn in rewards.REWARD_FNS.items():
        assert fn("garbage", 1) == 0.0, name


def test_unknown_reward_names_choices():
    with pytest.raises(ValueError, match="unknown reward name='exactt'; expected one of exact, thai, boxed"):
        rewards.get_reward_fn("exactt")
