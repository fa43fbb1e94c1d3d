"""The tiny backend's word-level tokenizer (4,096 tokens, max entropy ln V ≈ 8.32).

Tokens are whole words separated by spaces: special tokens, the numbers 0–199 (one
token each, so `คำตอบ: 42` decodes to text the reward function reads), operators,
the answer marker `คำตอบ:`, the connective words Archer2.0 counts, structural words
of the worked solutions, a pool of "thinking" filler words, and a large block of
gibberish Unicode symbols. The gibberish block is what a policy pushed by a strong
entropy bonus spreads its mass over, as the seed's model did with random Unicode.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from trainable.metrics import CONNECTIVE_WORDS

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
ANSWER = "คำตอบ:"
MAX_NUMBER = 199
OPERATORS = ("+", "-", "*", "=", "(", ")", ".", ",", ":")
#: Words the worked solutions are built from (besides numbers and connectives).
STRUCTURAL = tuple(
    [
        "first",
        "we",
        "need",
        "compute",
        "the",
        "product",
        "of",
        "and",
        "sum",
        "multiply",
        "add",
        "it",
        "to",
        "this",
        "gives",
        "is",
        "get",
        "result",
        "value",
        "step",
        "next",
        "now",
        "let",
        "check",
        "answer",
        "number",
        "two",
        "numbers",
        "times",
        "plus",
        "equals",
        "total",
        "which",
        "means",
        "our",
        "final",
        "rule",
        "multiplication",
        "comes",
        "before",
        "addition",
        "a",
        "that",
        "do",
        "look",
        "at",
        "us",
        "right",
    ]
)
VOCAB_SIZE = 4096
N_FILLER = 500
_ONSETS = [
    "b",
    "c",
    "d",
    "f",
    "g",
    "h",
    "j",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "w",
    "z",
    "br",
    "cl",
    "dr",
    "fl",
    "gr",
    "pl",
    "st",
    "tr",
]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ou"]
_CODAS = ["", "n", "r", "s", "l", "m", "x", "nd", "rt"]
#: Unicode blocks the gibberish symbols are drawn from (all printable, no spaces).
_GIBBERISH_BLOCKS = (
    (0x0400, 0x04FF),
    (0x0530, 0x058F),
    (0x10A0, 0x10FF),
    (0x1200, 0x137F),
    (0x2200, 0x22FF),
    (0x2500, 0x25FF),
    (0x3040, 0x30FF),
    (0x4E00, 0x9FFF),
)


def _filler_words(exclude: set[str]) -> list[str]:
    """Deterministic pronounceable pseudo-words ('thinking' filler vocabulary)."""
    words: list[str] = []
    for coda in _CODAS:
        for vowel in _VOWELS:
            for onset in _ONSETS:
                w = onset + vowel + coda
                if w not in exclude and len(words) < N_FILLER:
                    words.append(w)
    return words


def _gibberish(count: int) -> list[str]:
    chars = [
        chr(c)
        for lo, hi in _GIBBERISH_BLOCKS
        for c in range(lo, hi + 1)
        if chr(c).isprintable() and not chr(c).isspace()
    ]
    if len(chars) < count:
        raise ValueError(f"not enough gibberish symbols: {len(chars)=} < {count=}")
    step = len(chars) / count  # spread over every block, not only the first ones
    return [chars[int(i * step)] for i in range(count)]


class Tokenizer:
    """Word-level tokenizer; `encode` splits on whitespace, `decode` joins with spaces."""

    def __init__(self) -> None:
        head = [PAD, BOS, EOS, UNK, ANSWER, *(str(i) for i in range(MAX_NUMBER + 1)), *OPERATORS]
        words = sorted(CONNECTIVE_WORDS) + [w for w in STRUCTURAL if w not in CONNECTIVE_WORDS]
        head += words
        self.filler = _filler_words(set(head))
        head += self.filler
        self.gibberish_start = len(head)
        self.vocab: list[str] = head + _gibberish(VOCAB_SIZE - len(head))
        self.index = {w: i for i, w in enumerate(self.vocab)}
        if len(self.index) != VOCAB_SIZE:
            raise ValueError(f"duplicate tokens in the vocabulary: {len(self.index)=}")
        self.pad_id, self.bos_id, self.eos_id = self.index[PAD], self.index[BOS], self.index[EOS]
        self.unk_id = self.index[UNK]

    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def n_gibberish(self) -> int:
        return len(self.vocab) - self.gibberish_start

    def encode(self, text: str) -> list[int]:
        return [self.index.get(w, self.unk_id) for w in text.split()]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of `ids`, without pad/bos/eos (the reward function sees this)."""
        skip = (self.pad_id, self.bos_id, self.eos_id)
        return " ".join(self.vocab[i] for i in ids if i not in skip)

    def is_gibberish(self, token_id: int) -> bool:
        return token_id >= self.gibberish_start


@functools.lru_cache(maxsize=1)
def get_tokenizer() -> Tokenizer:
    return Tokenizer()
