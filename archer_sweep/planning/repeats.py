"""Backtest of repeated seeds (`search.repeats`): recorded runs judged per seed and then per
config, by the rule the live searcher tells Optuna (criteria/repeats.py).

A config's seeds are the runs of one live config group (`group` in their verdict rows), or,
for an imported history, the runs whose params differ only in `trainer.seed`. With
`stop_siblings` the seeds are replayed side by side: the earliest bad-rule stop (step s)
stops every seed that would still run after s as `stopped:sibling:<rule>` at s (a seed a
live sweep started later was there at an earlier step; the config's verdict is the same). A
recorded run that a live sibling stop cut short keeps that verdict unless its own reports
fire a bad rule first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from archer_sweep.criteria import Verdict
from archer_sweep.criteria.repeats import (
    SIBLING_PREFIX,
    ConfigVerdict,
    aggregate,
    sibling_verdict,
    stops_siblings,
)
from archer_sweep.planning.backtest import Settings, judge
from archer_sweep.results.runs import Run
from archer_sweep.spec.space import SEED_KEY
from archer_sweep.tables import param_pairs


@dataclass(frozen=True)
class SeedOutcome:
    run_id: str
    seed: Any
    verdict: str
    steps_used: int


@dataclass(frozen=True)
class ConfigOutcome:
    key: Any
    params: dict
    verdict: ConfigVerdict
    seeds: list[SeedOutcome]

    @property
    def steps_used(self) -> int:
        return sum(s.steps_used for s in self.seeds)


def _seed(run: Run) -> Any:
    return (run.verdict or {}).get("seed", run.params.get(SEED_KEY))


def config_key(run: Run) -> Any:
    group = (run.verdict or {}).get("group")
    if group is not None:
        return ("group", group)
    return tuple(sorted((k, str(v)) for k, v in run.params.items() if k != SEED_KEY))


def group_runs(runs: Sequence[Run]) -> dict[Any, list[Run]]:
    """Config key -> its runs in seed order (first-seen config order)."""
    out: dict[Any, list[Run]] = {}
    for r in runs:
        out.setdefault(config_key(r), []).append(r)
    for seeds in out.values():
        seeds.sort(key=lambda r: (_seed(r) is None, str(_seed(r))))
    return out


def judge_config(seeds: Sequence[Run], rules, st: Settings, repeats: Any) -> list[tuple[Run, Verdict, int]]:
    """(run, verdict, steps used) per seed, sibling stops applied."""
    judged = []
    for r in seeds:
        v = judge(r, rules, st) or Verdict("completed")
        recorded = (r.verdict or {}).get("verdict") or ""
        if recorded.startswith(SIBLING_PREFIX) and not v.stopped:
            # cut short by a live sibling stop: its last report is no finish to judge
            v = Verdict(
                recorded, rule=r.verdict.get("rule"), step=r.last_step, reason=r.verdict.get("reason")
            )
        judged.append((r, v, v.step if v.ended_early and v.step is not None else r.last_step))
    if not repeats.stop_siblings:
        return judged
    firing = [(used, r, v) for r, v, used in judged if stops_siblings(v, rules) is not None]
    if not firing:
        return judged
    at, origin, cause = min(firing, key=lambda f: f[0])
    rule = stops_siblings(cause, rules)
    out = []
    for r, v, used in judged:
        if r is not origin and used > at:  # it would still run at step `at`
            v, used = sibling_verdict(rule, origin.run_id, at, min(at, r.last_step)), min(at, r.last_step)
        out.append((r, v, used))
    return out


def replay_repeats(runs: Sequence[Run], rules, st: Settings, repeats: Any) -> list[ConfigOutcome]:
    out = []
    for key, seeds in group_runs([r for r in runs if r.steps]).items():
        judged = judge_config(seeds, rules, st, repeats)
        agg = aggregate([v.verdict for _, v, _ in judged], repeats.count, repeats.needed)
        params = {k: v for k, v in seeds[0].params.items() if k != SEED_KEY}
        outcomes = [SeedOutcome(r.run_id, _seed(r), v.verdict, used) for r, v, used in judged]
        out.append(ConfigOutcome(key, params, agg, outcomes))
    return out


def to_markdown(configs: Sequence[ConfigOutcome], count: Optional[int] = None) -> str:
    lines = [
        "",
        "## Configs (search.repeats: each judged over its seeds)",
        "",
        "| config | verdict | agreement | seeds | trial-steps |",
        "|---|---|---|---|---|",
    ]
    for c in configs:
        params = ", ".join(param_pairs(c.params))
        seeds = "; ".join(f"{s.seed}: {s.verdict}" for s in c.seeds)
        lines.append(
            f"| {params} | {c.verdict.verdict} | {c.verdict.describe()} | {seeds} | {c.steps_used} |"
        )
    return "\n".join(lines)
