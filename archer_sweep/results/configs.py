"""Configs of a sweep with `search.repeats`: its verdict rows grouped by config and judged as
one by the rule of `criteria/repeats.py` (the rule the live searcher tells Optuna).

Pure over verdict rows (`{"trial_id", "verdict", "rule", "step", "group", "seed", …}`); the
live table, the summary, `analyze` and the report show these.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from archer_sweep.criteria import Rule, Verdict
from archer_sweep.criteria.repeats import ConfigVerdict, aggregate, mean_std, stops_siblings
from archer_sweep.tables import md_table, param_pairs


@dataclass(frozen=True)
class Config:
    group: Any
    params: dict
    seeds: list[Mapping]
    """Verdict rows of the seeds that ran, in seed order."""
    verdict: ConfigVerdict
    complete: bool
    """Every seed it will run is judged (all k, or fewer after a sibling stop)."""
    objective: tuple[Optional[float], Optional[float]] = (None, None)
    """Mean and std of the seeds' final objectives (when values were given)."""

    def as_dict(self) -> dict:
        mean, std = self.objective
        return {
            "group": self.group,
            "params": self.params,
            "verdict": self.verdict.verdict,
            "agreement": self.verdict.agreement,
            "split": list(self.verdict.split),
            "seeds": {str(r.get("seed")): r.get("verdict") for r in self.seeds},
            "trials": [r.get("trial_id") for r in self.seeds],
            "complete": self.complete,
            "objective_mean": mean,
            "objective_std": std,
        }


def closes(row: Mapping, rules: Sequence[Rule]) -> bool:
    return stops_siblings(Verdict(str(row.get("verdict")), rule=row.get("rule")), rules) is not None


def configs(
    rows: Iterable[Mapping],
    repeats: Any,
    rules: Sequence[Rule] = (),
    values: Optional[Mapping[str, float]] = None,
) -> list[Config]:
    """One `Config` per group of the rows that name one, in group order."""
    by_group: dict[Any, list[Mapping]] = {}
    for r in rows:
        if r.get("group") is not None:
            by_group.setdefault(r["group"], []).append(r)
    out = []
    for group in sorted(by_group, key=str):
        seeds = sorted(by_group[group], key=lambda r: (r.get("seed") is None, r.get("seed") or 0))
        agg = aggregate([str(r.get("verdict")) for r in seeds], repeats.count, repeats.needed)
        closed = repeats.stop_siblings and any(closes(r, rules) for r in seeds)
        objective = (None, None)
        if values is not None:
            objective = mean_std(values.get(str(r.get("trial_id")), math.nan) for r in seeds)
        out.append(
            Config(
                group,
                dict(seeds[0].get("params") or {}),
                seeds,
                agg,
                len(seeds) >= repeats.count or closed,
                objective,
            )
        )
    return out


def not_started(configs_: Sequence[Config], repeats: Any) -> int:
    """Seeds a sibling stop made unnecessary before they started: a complete config with
    fewer than `repeats.count` seeds run."""
    return sum(repeats.count - len(c.seeds) for c in configs_ if c.complete and len(c.seeds) < repeats.count)


def summary_lines(configs_: Sequence[Config], objective: str) -> list[str]:
    """The closing summary's per-config lines: verdict, agreement, split, mean ± std."""
    lines = [f"Configs ({len(configs_)}, each judged over its seeds):"]
    for c in configs_:
        params = " ".join(param_pairs(c.params))
        mean, std = c.objective
        value = f"  {objective}={mean:.4g} ± {std:.2g}" if mean is not None else ""
        state = "" if c.complete else " (seeds still running)"
        lines.append(
            f"  config {c.group}  {params}  {c.verdict.verdict}  {c.verdict.describe()}{value}{state}"
        )
    return lines


def sweep_configs(sweep: Any) -> list[Config]:
    """The configs of a loaded sweep (`analysis.Sweep`); [] without search.repeats."""
    repeats = sweep.spec.search.repeats if sweep.spec is not None else None
    if repeats is None:
        return []
    values = {}
    for r in sweep.runs:
        ys = r.series(sweep.objective)[1]
        values[r.run_id] = ys[-1] if ys else math.nan
    rows = [dict(r.verdict, trial_id=r.run_id) for r in sweep.runs if r.verdict]
    return configs(rows, repeats, sweep.rules, values)


def configs_table(configs_: Sequence[Config]) -> str:
    """Markdown: config, verdict, agreement (and the rules that split its seeds), per-seed verdicts."""
    body = []
    for c in configs_:
        mean, std = c.objective
        body.append(
            [
                str(c.group),
                ", ".join(param_pairs(c.params)),
                c.verdict.verdict + ("" if c.complete else " (so far)"),
                c.verdict.describe(),
                "; ".join(f"{r.get('seed')}: {r.get('verdict')}" for r in c.seeds),
                "" if mean is None else f"{mean:.4g} ± {std:.2g}",
            ]
        )
    return md_table(["config", "params", "verdict", "agreement", "seeds", "objective mean ± std"], body)
