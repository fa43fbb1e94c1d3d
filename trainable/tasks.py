"""The tiny backend's verifiable task: `a + b * c =` with an integer answer.

Problems are every (a, b, c) with a in 10–39 and b, c in 2–6, split into train and
validation sets by a seeded permutation. `worked_solution` writes the SFT targets:
≥50 tokens that reason with connective words and end in `คำตอบ: N`, with natural
variation (several phrasings, Zipf-distributed filler words) and a small share of
direct `คำตอบ: N` answers, the shortcut a policy can fall back to.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

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


def encode_prompt(tok: Tokenizer, problem: Problem) -> list[int]:
    return [tok.bos_id, *tok.encode(problem.prompt)]


_OPEN = ("first we need the product of {b} and {c} because multiplication comes before addition",
         "let us look at the rule : multiplication comes before addition so we multiply first",
         "we compute the product first since multiplication comes before addition",
         "the rule is that multiplication comes before addition , so first compute {b} times {c}")
_MUL = ("{b} * {c} = {p}", "{b} times {c} is {p}", "the product of {b} and {c} is {p}")
_ADD = ("then we add {a} to {p} , so {a} + {p} = {r}",
        "now add {a} and {p} , thus {a} + {p} = {r}",
        "next the sum of {a} and {p} is {r} because {a} + {p} = {r}",
        "then {a} plus {p} gives {r} , hence the total is {r}")
_CHECK = ("if we check , {r} - {a} = {p} and {p} is {b} * {c} so it is right",
          "to check : {a} + {b} * {c} is {a} + {p} which equals {r}",
          "still , let us check that {a} + {p} is {r} and it is",
          "")
_CLOSE = ("therefore the final answer is {r} .", "thus our result is {r} .",
          "so the answer is {r} .", "hence the value is {r} .")


def _filler(rng: random.Random, tok: Tokenizer, k: int) -> list[str]:
    # Zipf over the filler pool: a few common "thinking" words, a long tail.
    weights = [1.0 / (i + 1) ** 0.8 for i in range(len(tok.filler))]
    return rng.choices(tok.filler, weights=weights, k=k)


def worked_solution(problem: Problem, rng: random.Random, tok: Tokenizer,
                    direct_fraction: float = 0.05, min_tokens: int = 50) -> str:
    """A response text (without the prompt) ending in `คำตอบ: N`."""
    r = problem.answer
    if rng.random() < direct_fraction:
        return f"{ANSWER} {r}"
    values = dict(a=problem.a, b=problem.b, c=problem.c, p=problem.b * problem.c, r=r)
    parts = [rng.choice(t).format(**values) for t in (_OPEN, _MUL, _ADD, _CHECK, _CLOSE)]
    words = [w for part in parts for w in (part.split() + ["."] if part else [])][:-1]
    # Insert filler words at random places until the solution reaches its target length.
    target = rng.randint(min_tokens + 2, min_tokens + 20) - 2
    while len(words) < target:
        at = rng.randrange(len(words) - 2)  # keep the closing sentence intact at the end
        words[at:at] = _filler(rng, tok, min(rng.randint(1, 4), target - len(words)))
    return " ".join(words + [ANSWER, str(r)])
