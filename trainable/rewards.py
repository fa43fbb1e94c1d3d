"""Verifiable rewards: pull the final integer answer out of a response and compare.

Two answer formats are read: the seed's `คำตอบ: N` ("answer: N" in Thai, what
Archer2.0's math prompts ask for) and LaTeX `\\boxed{N}`. When a response holds
several answers the last one wins (models restate and correct themselves). Only
ASCII digits count, with an optional sign; a number of more than `MAX_DIGITS`
digits is malformed. Nothing here raises on model output: garbage scores 0.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Optional

MAX_DIGITS = 32
"""Longer digit runs are treated as garbage (and never reach `int()`'s size limit)."""

_NUM = r"([+-]?[0-9]{1,%d})(?![0-9])(?!\.[0-9])" % MAX_DIGITS
_THAI = re.compile(r"คำตอบ\s*[:：]\s*" + _NUM)
_BOXED = re.compile(r"\\boxed\s*\{\s*" + _NUM + r"\s*\}")

#: format name -> compiled pattern whose group 1 is the integer.
ANSWER_PATTERNS: dict[str, re.Pattern[str]] = {"thai": _THAI, "boxed": _BOXED}


def extract_answer(text: object, formats: tuple[str, ...] = ("thai", "boxed")) -> Optional[int]:
    """The last integer answer in `text` in any of `formats`, or None."""
    if not isinstance(text, str):
        return None
    best: tuple[int, str] | None = None
    for name in formats:
        for match in ANSWER_PATTERNS[name].finditer(text):
            if best is None or match.start() > best[0]:
                best = (match.start(), match.group(1))
    return int(best[1]) if best else None


def _exact(formats: tuple[str, ...]) -> Callable[[str, int], float]:
    def score(text: str, answer: int) -> float:
        got = extract_answer(text, formats)
        return 1.0 if got is not None and got == answer else 0.0

    return score


#: name -> score(text, answer) -> 1.0 / 0.0
REWARD_FNS: dict[str, Callable[[str, int], float]] = {
    "exact": _exact(("thai", "boxed")),
    "thai": _exact(("thai",)),
    "boxed": _exact(("boxed",)),
}


def score(text: str, answer: int) -> float:
    """1.0 when the last `คำตอบ: N` / `\\boxed{N}` in `text` equals `answer`, else 0.0."""
    return REWARD_FNS["exact"](text, answer)


def get_reward_fn(name: str) -> Callable[[str, int], float]:
    if name not in REWARD_FNS:
        raise ValueError(f"unknown reward {name=}; expected one of {', '.join(REWARD_FNS)}")
    return REWARD_FNS[name]
