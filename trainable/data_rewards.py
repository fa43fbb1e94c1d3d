"""Rewards of dataset rows: `fn(response_text, ground_truth: str) -> 1.0 / 0.0`, picked by
the row's `data_source`, as verl's `default_compute_score` picks its scorer.

- `thai` / `boxed_int`: the seed's `คำตอบ: N` (or `\\boxed{N}`) integer answers, read by
  `trainable.rewards.extract_answer` (the tiny task's own reward);
- `math`: `\\boxed{}` answers (fractions, radicals, sets, intervals…) checked for
  mathematical equality by the maintained verifier Math-Verify (the `math` extra),
  imported on first use.

`SOURCES` maps data sources to reward names; `data.reward` in the config overrides it
for a whole run. Nothing here raises on model output: garbage scores 0.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable

from trainable import rewards

MATH_HINT = "pip install 'archer-sweep[math]'"
_INT = re.compile(r"[+-]?[0-9]{1,%d}" % rewards.MAX_DIGITS)


def _integer(formats: tuple[str, ...]) -> Callable[[str, str], float]:
    def score(text: str, ground_truth: str) -> float:
        if not _INT.fullmatch(ground_truth.strip()):
            return 0.0  # a non-integer truth can never be matched by an integer answer
        got = rewards.extract_answer(text, formats)
        return 1.0 if got is not None and got == int(ground_truth) else 0.0

    return score


@functools.lru_cache(maxsize=1)
def _math_verify():
    try:
        import math_verify
    except ImportError:
        raise ImportError(
            f"the `math` reward needs Math-Verify, which is not installed; install it with: {MATH_HINT}"
        ) from None
    return math_verify


def math_score(text: str, ground_truth: str) -> float:
    """1.0 when the response's `\\boxed{}` (or "final answer is …") equals `ground_truth`
    mathematically, by Math-Verify; the truth may be written with or without `\\boxed{}`."""
    mv = _math_verify()
    # Math-Verify times out through signal.alarm, which only the main thread may set.
    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    anchored = [mv.LatexExtractionConfig(boxed_match_priority=0, try_extract_without_anchor=False)]
    truth = ground_truth if "\\boxed" in ground_truth else "\\boxed{" + ground_truth + "}"
    gold = mv.parse(truth, parsing_timeout=timeout)
    answer = mv.parse(text, extraction_config=anchored, parsing_timeout=timeout)
    if not gold or not answer:
        return 0.0
    return 1.0 if mv.verify(gold, answer, timeout_seconds=timeout) else 0.0


#: reward name -> score(text, ground_truth)
REWARDS: dict[str, Callable[[str, str], float]] = {
    "thai": _integer(("thai",)),
    "boxed_int": _integer(("boxed",)),
    "exact": _integer(("thai", "boxed")),
    "math": math_score,
}

#: data_source -> reward name (verl's names for the math sets it preprocesses, and ours)
SOURCES: dict[str, str] = {
    "archer-sweep/arithmetic": "thai",
    "lighteval/MATH": "math",
    "DigitalLearningGmbH/MATH-lighteval": "math",
    "HuggingFaceH4/MATH-500": "math",
    "math_dapo": "math",
    "math": "math",
    "aime24": "math",
    "aime25": "math",
}


def reward_name(data_source: str, override: str | None = None) -> str:
    """The reward of rows from `data_source` (`override` when set); ValueError when none."""
    if override is not None:
        return override
    if data_source not in SOURCES:
        from trainable.config import nearest

        raise ValueError(
            f"no reward for data_source {data_source!r}{nearest(data_source, list(SOURCES))} "
            f"(expected one of {', '.join(SOURCES)}, or set data.reward)"
        )
    return SOURCES[data_source]


def scorer(override: str | None = None) -> Callable[[str, object], float]:
    """score(text, row) of `datasets.Row`s: each row's source's reward, or `override` for all."""

    def score(text: str, row) -> float:
        return REWARDS[reward_name(row.data_source, override)](text, row.ground_truth)

    return score
