"""`next` by the feasible-region model (archer_sweep/feasible/): past trials in, proposals out,
each with P(healthy), the expected objective and a rationale in words that cites the
evidence the way the seed's author did ("0.023 and 0.031 ran away by steps 14–20; …").

Spaces with a categorical parameter have no unit coordinates: they fall back to TPE."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

import numpy as np

from archer_sweep.feasible import model as F
from archer_sweep.feasible.space import candidates, from_unit, to_unit
from archer_sweep.tables import fmt, short_param


def evidence(past: Sequence[Any], space: Mapping[str, Any]) -> tuple[F.Evidence, list[Any]]:
    """Evidence of the past trials that set every searched key (errors left out)."""
    keys = tuple(space)
    used = [p for p in past if all(k in p.params for k in keys) and p.verdict != "error"]
    rows = [([to_unit(k, p.params[k], space) for k in keys], p.verdict, p.objective) for p in used]
    return F.evidence_of(rows, keys), used


def propose_feasible(
    past: Sequence[Any],
    space: Mapping[str, Any],
    mode: str,
    count: int,
    seed: Optional[int],
    monotone: bool = True,
    min_gap: float = 0.05,
) -> list[dict]:
    """`count` proposals: dicts with params, p_healthy, expected, expected_std, why."""
    ev, used = evidence(past, space)
    X = candidates(ev, len(space), seed)
    directions = F.MONOTONE_DEFAULT if monotone else {}
    s = F.score_candidates(ev, X, mode, directions)
    chosen = F.pick(X, s.acquisition, count, ev.x, min_gap)
    excluded_by = sorted({c for c in s.cause if c is not None})
    out = []
    for j in chosen:
        params = {k: from_unit(k, X[j, i], space) for i, k in enumerate(space)}
        out.append(
            {
                "params": params,
                "p_healthy": float(s.p_healthy[j]),
                "expected": float(s.mean[j]) if np.isfinite(ev.objective).any() else None,
                "expected_std": float(s.std[j]) if np.isfinite(ev.objective).any() else None,
                "why": explain(params, used, space, [used[i] for i in excluded_by], float(s.p_healthy[j])),
            }
        )
    return out


def _val(p: Any, key: str) -> str:
    return fmt(p.params[key])


def _group(trials: Sequence[Any], key: str) -> str:
    vals = sorted(trials, key=lambda p: p.params[key])
    return " and ".join(_val(p, key) for p in vals[:3]) + (" …" if len(vals) > 3 else "")


def _steps(trials: Sequence[Any]) -> str:
    steps = sorted(p.stop_step for p in trials if p.stop_step)
    if not steps:
        return ""
    return f" by step {steps[0]}" if steps[0] == steps[-1] else f" by steps {steps[0]}–{steps[-1]}"


def explain(
    params: Mapping[str, Any],
    past: Sequence[Any],
    space: Mapping[str, Any],
    excluders: Sequence[Any],
    ph: float,
) -> str:
    """The evidence behind one proposal, in the words of a researcher's write-up."""
    key = next((k for k in F.MONOTONE_DEFAULT if k in space), next(iter(space)))
    name = short_param(key)
    parts = []
    runaways = [p for p in past if p.verdict == F.RUNAWAY]
    if runaways:
        parts.append(f"{name} {_group(runaways, key)} ran away{_steps(runaways)}")
    by_rule: dict[str, list[Any]] = {}
    for p in past:
        if p.verdict not in ("healthy", F.RUNAWAY):
            by_rule.setdefault(p.verdict, []).append(p)
    for verdict, trials in sorted(by_rule.items(), key=lambda kv: -len(kv[1]))[:2]:
        parts.append(f"{_group(trials, key)} ended {verdict}{_steps(trials)}")
    x = params[key]
    lower = max((p for p in past if p.params[key] < x), key=lambda p: p.params[key], default=None)
    upper = min((p for p in past if p.params[key] > x), key=lambda p: p.params[key], default=None)
    where = f"{fmt(x)} lies"
    if lower is not None and upper is not None:
        where += f" between {lower.verdict} {_val(lower, key)} and {upper.verdict} {_val(upper, key)}"
    elif lower is not None or upper is not None:
        p = lower or upper
        where += f" {'above' if lower is not None else 'below'} {p.verdict} {_val(p, key)}"
    else:
        where += " in untried space"
    parts.append(where + f"; P(healthy) {ph:.2f}")
    if excluders:
        parts.append(
            "the monotone prior excluded what is at least as risky as "
            + ", ".join(f"{_val(p, key)} ({p.verdict})" for p in excluders[:3])
        )
    return "; ".join(parts)
