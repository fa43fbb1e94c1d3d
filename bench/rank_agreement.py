"""How alike two rankings and two sets of verdicts are (bench/proxy.py): pure functions over
plain values, no world."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from itertools import combinations, product

Config = tuple[float, float]


def ranks(xs: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their mean rank (as Spearman's rho wants)."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    out = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's rho: Pearson's correlation of the ranks (NaN when either side is constant)."""
    if len(xs) != len(ys):
        raise ValueError(f"{len(xs)=} != {len(ys)=}")
    rx, ry = ranks(xs), ranks(ys)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    sy = math.sqrt(sum((b - my) ** 2 for b in ry))
    return cov / (sx * sy) if sx and sy else math.nan


def chance_rho(n: int, q: float = 0.95, draws: int = 2000, seed: int = 0) -> float:
    """The Spearman's rho that `n` configs in random order reach with probability 1 − q (a
    one-sided permutation bound: a rho below it is not told apart from no agreement)."""
    if n < 3:
        return math.nan
    rng = random.Random(seed)
    xs, rhos = list(range(n)), []
    for _ in range(draws):
        ys = xs[:]
        rng.shuffle(ys)
        rhos.append(spearman(xs, ys))
    return sorted(rhos)[int(q * draws)]


def top_k(values: dict[Config, float], k: int) -> set[Config]:
    """The k configs of highest value (ties broken by the config, so the set is deterministic)."""
    return set(sorted(values, key=lambda c: (-values[c], c))[:k])


def top_k_overlap(a: dict[Config, float], b: dict[Config, float], k: int) -> int:
    return len(top_k(a, k) & top_k(b, k))


def cross_agreement(a: dict[Config, list[str]], b: dict[Config, list[str]], same=str.__eq__) -> float:
    """Mean over configs of the share of (a run, b run) pairs whose verdicts are `same`."""
    shares = [statistics.fmean(same(x, y) for x, y in product(a[c], b[c])) for c in a]
    return statistics.fmean(shares)


def self_agreement(a: dict[Config, list[str]], same=str.__eq__) -> float:
    """Mean over configs of the share of pairs of distinct runs (seeds) whose verdicts are `same`
    (NaN with one seed: no pair)."""
    if any(len(runs) < 2 for runs in a.values()):
        return math.nan
    return statistics.fmean(statistics.fmean(same(x, y) for x, y in combinations(a[c], 2)) for c in a)


def both_healthy_or_not(x: str, y: str) -> bool:
    return (x == "healthy") == (y == "healthy")
