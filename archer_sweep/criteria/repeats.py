"""Repeats: one proposed config run with k seeds and judged as one (`search.repeats`).

The aggregation rule, shared by the live searcher, `analyze`, the report and `backtest`:
- the config is `healthy` when at least `quorum` of its k seeds are `healthy` (a seed that
  never ran, e.g. not started after a sibling stop, counts as not healthy);
- otherwise its verdict is the most frequent non-healthy verdict of its seeds, a sibling
  stop counting as the stop that caused it (`stopped:sibling:<rule>` is `stopped:<rule>`),
  ties going to the earliest seed; it is `error` only when every seed crashed.
With `stop_siblings`, a seed stopped by a bad rule (or `stopped:nan`) stops the config's
other seeds as `stopped:sibling:<rule>`: timeouts and ASHA say nothing about the config.
No Ray, no I/O.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Optional

from archer_sweep.criteria.rules import NAN_VERDICT, Rule, Verdict

SIBLING_PREFIX = "stopped:sibling:"
HEALTHY = "healthy"
ERROR = "error"
UNJUDGED = "unjudged"
"""A config none of whose seeds has a verdict yet."""


@dataclass(frozen=True)
class ConfigVerdict:
    verdict: str
    """The config's verdict by the rule above (`healthy`, `stopped:<rule>`, `unhealthy:<rule>`, `error`)."""
    healthy: int
    """Seeds judged healthy."""
    count: int
    """Seeds the config was to run (k)."""
    split: tuple[str, ...]
    """Rules (sorted) whose verdicts some judged seeds got and others did not; () when they agree."""

    @property
    def agreement(self) -> str:
        """`healthy 2/3`: how many of the k seeds are healthy."""
        return f"healthy {self.healthy}/{self.count}"

    def describe(self) -> str:
        """`healthy 2/3, split by score_good`."""
        return self.agreement + (f", split by {', '.join(self.split)}" if self.split else "")


def origin(verdict: str) -> str:
    """A sibling stop as the stop that caused it; any other verdict unchanged."""
    if verdict.startswith(SIBLING_PREFIX):
        return "stopped:" + verdict[len(SIBLING_PREFIX) :]
    return verdict


def rule_name(verdict: str) -> Optional[str]:
    """`entropy_high` of `stopped:entropy_high` / `stopped:sibling:entropy_high` / `unhealthy:…`."""
    base = origin(verdict)
    return base.split(":", 1)[1] if ":" in base else None


def aggregate(verdicts: Sequence[str], count: int, quorum: int) -> ConfigVerdict:
    """The config's verdict from its seeds' verdicts (in seed order; fewer than `count` when
    some never ran)."""
    if not 1 <= quorum <= count:
        raise ValueError(f"quorum must be within 1..count: {quorum=} {count=}")
    seeds = [origin(v) for v in verdicts]
    healthy = sum(v == HEALTHY for v in seeds)
    split = split_rules(seeds)
    if healthy >= quorum:
        return ConfigVerdict(HEALTHY, healthy, count, split)
    bad = [v for v in seeds if v not in (HEALTHY, ERROR)]
    if not bad:
        # every seed crashed, or none is judged yet
        return ConfigVerdict(ERROR if seeds else UNJUDGED, healthy, count, split)
    counts = Counter(bad)
    top = max(counts.values())
    return ConfigVerdict(next(v for v in bad if counts[v] == top), healthy, count, split)


def split_rules(verdicts: Iterable[str]) -> tuple[str, ...]:
    """Rules named by the verdicts of some of the judged seeds but not of all of them."""
    seeds = [origin(v) for v in verdicts]
    per_rule = Counter(rule_name(v) for v in seeds if rule_name(v) is not None)
    return tuple(sorted(r for r, n in per_rule.items() if n < len(seeds)))


def stops_siblings(verdict: Verdict, rules: Sequence[Rule]) -> Optional[str]:
    """The rule whose stop of one seed stops its siblings (a bad rule or NaN), else None."""
    bad = {r.name for r in rules if r.verdict == "bad"}
    if verdict.verdict.startswith(SIBLING_PREFIX):
        return None  # already the echo of a stop
    if verdict.verdict == NAN_VERDICT:
        return "nan"
    if verdict.verdict.startswith("stopped:") and verdict.rule in bad:
        return verdict.rule
    return None


def sibling_verdict(rule: str, origin_id: str, origin_step: Optional[int], step: Optional[int]) -> Verdict:
    """`stopped:sibling:<rule>` for a seed stopped because `origin_id` was, at its own `step`."""
    at = f" at step {origin_step}" if origin_step is not None else ""
    return Verdict(
        SIBLING_PREFIX + rule,
        rule=rule,
        step=step,
        reason=f"sibling {origin_id} stopped:{rule}{at} (search.repeats.stop_siblings)",
    )


def mean_std(values: Iterable[Optional[float]]) -> tuple[Optional[float], Optional[float]]:
    """Mean and (population) standard deviation of the finite values; (None, None) if none."""
    ys = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not ys:
        return None, None
    mean = sum(ys) / len(ys)
    return mean, math.sqrt(sum((y - mean) ** 2 for y in ys) / len(ys))
