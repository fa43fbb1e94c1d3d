"""The tiny backend's verifiable task: `a + b * c =` with an integer answer.

Problems are every (a, b, c) with a in 10–39 and b, c in 2–6, split into train and
validation sets by a seeded permutation. `worked_solution` writes the SFT targets:
≥50 tokens that reason with connective words and end in `คำตอบ: N`, with natural
variation (several phrasings, Zipf-distributed filler words) and a small share of
direct `คำตอบ: N` answers, the shortcut a policy can fall back to. The warm start
trains on the whole train split; GRPO draws its prompts from the first
`data.train_size` of it (`rl_train_set`), so they come back every few steps.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from trainable.config import ConfigError
from trainable.tokenizer import ANSWER, Tokenizer

A_RANGE = range(10, 40)
BC_RANGE = range(2, 7)


@dataclass(frozen=True)
class Problem:
    a: int
    b: int
    c: int

    @property
    def answer(self) -> int:
        return self.a + self.b * self.c

    @property
    def prompt(self) -> str:
        return f"{self.a} + {self.b} * {self.c} ="


def all_problems() -> list[Problem]:
    return [Problem(a, b, c) for a in A_RANGE for b in BC_RANGE for c in BC_RANGE]


def split(seed: int = 0, val_fraction: float = 0.2) -> tuple[list[Problem], list[Problem]]:
    """(train, val): a seeded permutation of every problem, cut at `val_fraction`."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1): {val_fraction=}")
    problems = all_problems()
    random.Random(seed).shuffle(problems)
    n_val = int(len(problems) * val_fraction)
    return problems[n_val:], problems[:n_val]


def rl_train_set(size: int | None, seed: int = 0) -> list[Problem]:
    """The RL prompts: the first `size` problems of the seeded train split (None = all)."""
    train, _ = split(seed)
    if size is not None and size > len(train):
        raise ConfigError("data.train_size", f"the task's train split has {len(train)} problems (got {size})")
    return train[:size]


def val_set(size: int, seed: int = 0) -> list[Problem]:
    """Held-out prompts: the first `size` problems of the seeded validation split, which
    neither the warm start nor GRPO ever trains on."""
    _, val = split(seed)
    if size > len(val):
        raise ConfigError(
            "data.val_size", f"the task's validation split has {len(val)} problems (got {size})"
        )
    return val[:size]


def encode_prompt(tok: Tokenizer, problem: Problem) -> list[int]:
    return [tok.bos_id, *tok.encode(problem.prompt)]


_OPEN = (
    "first we multiply because multiplication comes before addition",
    "multiplication comes before addition so we multiply first",
    "we need the product first since multiplication comes before addition",
    "first compute the product , then the sum",
)
_MUL = ("{b} * {c} = {p}", "{b} times {c} is {p}", "the product of {b} and {c} is {p}")
_ADD = (
    "then {a} + {p} = {r}",
    "so {a} plus {p} gives {r}",
    "thus the sum {a} + {p} is {r}",
    "now add {a} and {p} , hence {r}",
)
_CLOSE = ("therefore the answer is {r}", "so our result is {r}", "hence the total is {r}", "")


def _filler(rng: random.Random, tok: Tokenizer, k: int) -> list[str]:
    # Zipf (exponent 0.5) over the filler pool: some common "thinking" words, a long tail.
    # About half of a solution is filler, so the warm start's token entropy is about 3.
    weights = [1.0 / (i + 1) ** 0.5 for i in range(len(tok.filler))]
    return rng.choices(tok.filler, weights=weights, k=k)


def worked_solution(
    problem: Problem, rng: random.Random, tok: Tokenizer, direct_fraction: float = 0.05, min_tokens: int = 50
) -> str:
    """A response text (without the prompt) ending in `คำตอบ: N`."""
    r = problem.answer
    if rng.random() < direct_fraction:
        return f"{ANSWER} {r}"
    values = dict(a=problem.a, b=problem.b, c=problem.c, p=problem.b * problem.c, r=r)
    parts = [rng.choice(t).format(**values) for t in (_OPEN, _MUL, _ADD, _CLOSE)]
    words = [w for part in parts for w in (part.split() + ["."] if part else [])][:-1]
    # Insert filler at sentence boundaries (never inside an equation) up to a target length.
    target = rng.randint(min_tokens + 4, min_tokens + 16) - 2
    while len(words) < target:
        gaps = [0] + [i + 1 for i, w in enumerate(words[:-1]) if w in (".", ",")]
        at = rng.choice(gaps)
        words[at:at] = _filler(rng, tok, min(rng.randint(2, 6), target - len(words)))
    return " ".join(words + [ANSWER, str(r)])
