"""Propose the next version from everything tried so far.

Past trials come from the sweep's stored Optuna study (read only), the results
directory's runs the study does not hold, and imported history (past versions,
judged by the spec's criteria when they carry no verdict). They are added with
`optuna.trial.create_trial` to a fresh in-memory study, never to the stored one:
`stopped:*` as PRUNED, `unhealthy:*` as COMPLETE with a violated constraint,
`healthy` as COMPLETE and satisfied; errors are left out.

The sampler is TPE with the constraint and a constant liar (so K proposals spread
out). Its split of past trials into "good" (below) and "bad" (above) counts only
healthy trials as good: `gamma` is ⌈25 % of the healthy trials⌉, so with no healthy
trial yet every past trial is "bad" and TPE proposes away from all of them.
"""

from __future__ import annotations

import copy
import logging
import math
import shlex
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import optuna
from optuna.trial import TrialState

from archer_sweep.criteria import evaluate
from archer_sweep.feasible.space import numeric, unit
from archer_sweep.objective import CONSTRAINT_KEY, constraint_for, optuna_outcome
from archer_sweep.planning import feasible_next
from archer_sweep.results.runs import Run

log = logging.getLogger(__name__)

JUDGED = ("stopped", "unhealthy", "healthy")
"""Verdict kinds that are evidence for a proposal (errors and unjudged runs are not)."""
DUPLICATE_DISTANCE = 1e-3
"""Unit log-space distance under which a proposal repeats a past or earlier-proposed point."""
MAX_ASKS = 10
EXPLORE_DISTANCE = 0.3
"""Unit log-space distance beyond which a proposal counts as exploring untried space."""


@dataclass
class PastTrial:
    run_id: str
    params: dict[str, Any]
    verdict: str
    objective: Optional[float]
    source: str
    progress: dict[int, float] = field(default_factory=dict)
    """step -> objective (Optuna intermediate values; TPE ranks pruned trials by them)."""
    stop_step: Optional[int] = None
    """Step of the verdict (stop or judgement), when known."""


@dataclass
class Proposal:
    params: dict[str, Any]
    nearest: list[tuple[PastTrial, float]]
    """The closest past trials (normalised log-parameter distance), nearest first."""
    p_healthy: Optional[float] = None
    """The feasible-region model's P(healthy) here (None: proposed by TPE)."""
    expected: Optional[float] = None
    """Its expected objective (None: no finished trial to learn from, or TPE)."""
    expected_std: Optional[float] = None
    why: Optional[str] = None
    """The evidence behind the proposal, in words (feasible-region model)."""


# ---------------------------------------------------------------- past trials


def _objective(run: Run, metric: str, reduce: str, mode: str) -> Optional[float]:
    from archer_sweep.planning.backtest import objective_value

    return objective_value(run, metric, reduce, mode)


def from_runs(
    runs: Sequence[Run], rules, metric: str, mode: str = "max", reduce: str = "last"
) -> list[PastTrial]:
    """Runs as past trials; a run without a verdict is judged by `rules` now (as recorded
    history: a key it never reports leaves the rules on that key out, with a warning)."""
    from archer_sweep.planning.backtest import warn_unreported

    warn_unreported([r for r in runs if r.verdict is None and r.steps], rules, metric)
    out = []
    for r in runs:
        verdict = r.verdict_name
        if r.verdict is None and r.steps:
            v = evaluate(rules, r.steps, objective=metric, finished=True)
            verdict = v.verdict
        xs, ys = r.series(metric)
        step = (r.verdict or {}).get("step")
        if r.verdict is None and r.steps:
            step = v.step
        out.append(
            PastTrial(
                r.run_id,
                dict(r.params),
                verdict,
                _objective(r, metric, reduce, mode),
                r.source,
                {x: y for x, y in zip(xs, ys) if math.isfinite(y)},
                None if step is None else int(step),
            )
        )
    return out


def from_study(db: Path | str, study_name: Optional[str] = None) -> list[PastTrial]:
    """Finished trials of a stored study (opened read only: nothing is written to it).
    `db` is a SQLite file or any RDB URL; `study_name` keeps one study of a database that
    many sweeps share (a `storage.study` PostgreSQL)."""
    from archer_sweep.engine.searcher import RAY_TRIAL_ATTR, VERDICT_ATTR

    url = db if isinstance(db, str) and "://" in db else f"sqlite:///{Path(db).resolve()}"
    storage = optuna.storages.RDBStorage(url, skip_compatibility_check=True)
    out = []
    for s in storage.get_all_studies():
        if study_name is not None and s.study_name != study_name:
            continue
        for t in storage.get_all_trials(storage.get_study_id_from_name(s.study_name), deepcopy=False):
            v = t.user_attrs.get(VERDICT_ATTR) or {}
            verdict = v.get("verdict") or {
                TrialState.PRUNED: "stopped:unknown",
                TrialState.FAIL: "error",
            }.get(t.state, "unknown")
            if t.state not in (TrialState.COMPLETE, TrialState.PRUNED):
                continue
            out.append(
                PastTrial(
                    str(t.user_attrs.get(RAY_TRIAL_ATTR, f"{s.study_name}#{t.number}")),
                    dict(t.params),
                    verdict,
                    t.value,
                    str(db),
                    dict(t.intermediate_values),
                    v.get("step"),
                )
            )
    return out


def merge(*groups: Sequence[PastTrial]) -> list[PastTrial]:
    """First occurrence of each run id wins (the study before the results dir's copy)."""
    seen, out = set(), []
    for g in groups:
        for p in g:
            if p.run_id not in seen:
                seen.add(p.run_id)
                out.append(p)
    return out


# ---------------------------------------------------------------- the study copy


def _inside(dist: optuna.distributions.BaseDistribution, value: Any) -> bool:
    """Whether `dist` contains `value`, by Optuna's own check (public: `create_trial` validates)."""
    try:
        optuna.trial.create_trial(params={"x": value}, distributions={"x": dist}, value=0.0)
    except ValueError:
        return False
    return True


def _frozen(p: PastTrial, space: Mapping[str, Any]) -> Optional[optuna.trial.FrozenTrial]:
    if p.verdict.split(":", 1)[0] not in JUDGED:
        return None
    missing = [k for k in space if k not in p.params]
    outside = [k for k, d in space.items() if k in p.params and not _inside(d, p.params[k])]
    if missing or outside:
        log.warning(
            "past run %s left out of the proposal: params %s",
            p.run_id,
            f"missing {missing}" if missing else f"outside the space {outside}",
        )
        return None
    name, value = optuna_outcome(p.verdict, p.objective)
    if name == "FAIL":
        return None
    state = TrialState[name]
    return optuna.trial.create_trial(
        state=state,
        value=value,
        params={k: p.params[k] for k in space},
        distributions=dict(space),
        intermediate_values=p.progress or None,
        user_attrs={"run_id": p.run_id, "verdict": p.verdict},
        constraints={CONSTRAINT_KEY: constraint_for(p.verdict)},
    )


def study_copy(
    past: Sequence[PastTrial], space: Mapping[str, Any], mode: str, seed: Optional[int] = 0
) -> optuna.Study:
    """A fresh in-memory study holding `past` and a constrained, healthy-only-good TPE."""
    trials = [t for t in (_frozen(p, space) for p in past) if t is not None]
    n_healthy = sum(1 for t in trials if t.user_attrs["verdict"] == "healthy")
    with warnings.catch_warnings():  # multivariate TPE is experimental; `gamma` deprecated (v6)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)
        sampler = optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=0,
            constant_liar=True,
            multivariate=True,
            gamma=lambda n: min(math.ceil(0.25 * n_healthy), 25),
        )
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study in memory" line per call
    try:
        study = optuna.create_study(direction="maximize" if mode == "max" else "minimize", sampler=sampler)
    finally:
        optuna.logging.set_verbosity(level)
    study.add_trials(trials)
    return study


def distance(a: Mapping[str, Any], b: Mapping[str, Any], space: Mapping[str, Any]) -> float:
    """Euclidean distance in the unit (log) space; a differing choice counts 1."""
    total = 0.0
    for k, d in space.items():
        if not hasattr(d, "low"):
            total += float(a.get(k) != b.get(k))
        else:
            total += (unit(k, a.get(k), space) - unit(k, b.get(k), space)) ** 2
    return math.sqrt(total)


METHODS = ("feasible", "tpe")
"""`feasible`: EI × P(healthy) of the feasible-region model (archer_sweep/feasible/), the
default; `tpe`: the constrained TPE below (the behaviour before the model)."""


def propose(
    past: Sequence[PastTrial],
    space: Mapping[str, Any],
    mode: str = "max",
    count: int = 2,
    seed: Optional[int] = 0,
    neighbours: int = 3,
    method: str = "feasible",
    monotone: bool = True,
) -> list[Proposal]:
    """`count` configurations, each with its nearest past trials; `method` from METHODS
    (`feasible` falls back to TPE for a space with a categorical parameter)."""
    if not space:
        raise ValueError("the spec searches no parameter: nothing to propose (search.space is empty)")
    if method not in METHODS:
        raise ValueError(f"unknown proposal method {method!r} (expected one of {', '.join(METHODS)})")
    if method == "feasible" and numeric(space):
        usable = [p for p in past if all(k in p.params for k in space)]
        return [
            Proposal(
                d["params"],
                _nearest(d["params"], usable, space, neighbours),
                d["p_healthy"],
                d["expected"],
                d["expected_std"],
                d["why"],
            )
            for d in feasible_next.propose_feasible(past, space, mode, count, seed, monotone)
        ]
    return _propose_tpe(past, space, mode, count, seed, neighbours)


def _nearest(
    params: Mapping[str, Any], usable: Sequence[PastTrial], space: Mapping[str, Any], neighbours: int
) -> list[tuple[PastTrial, float]]:
    """The `neighbours` past trials closest to `params`, nearest first, with their distances."""
    near = sorted(((p, distance(params, p.params, space)) for p in usable), key=lambda x: x[1])
    return near[:neighbours]


def _propose_tpe(past, space, mode, count, seed, neighbours) -> list[Proposal]:
    study = study_copy(past, space, mode, seed)
    usable = [p for p in past if all(k in p.params for k in space)]
    out: list[Proposal] = []
    for _ in range(count):
        for _try in range(MAX_ASKS):
            trial = study.ask(dict(space))  # stays RUNNING: the constant liar spreads the next ask
            seen = [p.params for p in usable] + [q.params for q in out]
            if all(distance(trial.params, s, space) > DUPLICATE_DISTANCE for s in seen):
                break
            # TPE can return a past point itself (one "good" trial makes a narrow kernel):
            # a rerun teaches nothing new, so that ask is dropped and asked again.
            study.tell(trial, state=TrialState.FAIL)
        out.append(Proposal(dict(trial.params), _nearest(trial.params, usable, space, neighbours)))
    return out


# ---------------------------------------------------------------- outputs


def bump_name(name: str) -> str:
    """entropy -> entropy-v2, entropy-v2 -> entropy-v3."""
    head, sep, tail = name.rpartition("-v")
    if sep and tail.isdigit():
        return f"{head}-v{int(tail) + 1}"
    return f"{name}-v2"


def next_spec(
    spec_data: Mapping[str, Any], proposals: Sequence[Proposal], name: Optional[str] = None
) -> dict:
    """The original spec with the proposals as `points_to_evaluate` and a bumped name."""
    data = copy.deepcopy(dict(spec_data))
    data["name"] = name or bump_name(str(data.get("name", "sweep")))
    search = data.setdefault("search", {})
    search["points_to_evaluate"] = [dict(p.params) for p in proposals]
    search["num_samples"] = max(int(search.get("num_samples", 1)), len(proposals))
    return data


def override_lines(spec_data: Mapping[str, Any], proposals: Sequence[Proposal]) -> list[str]:
    """For the command backend: the external trainer's command line per proposal."""
    trainable = spec_data.get("trainable") or {}
    if trainable.get("backend") != "command":
        return []
    from trainable.backends.command_config import VERL_KEY_MAP, flatten

    cfg = trainable.get("config") or {}
    keys = {**VERL_KEY_MAP, **(cfg.get("key_map") or {})}
    fixed = cfg.get("overrides") or {}
    fixed = flatten(fixed) if isinstance(fixed, dict) else dict(x.split("=", 1) for x in fixed)
    argv = list(cfg.get("argv") or [])
    lines = []
    for p in proposals:
        args = [f"{k}={v}" for k, v in fixed.items()] + [f"{keys.get(k, k)}={v}" for k, v in p.params.items()]
        lines.append(shlex.join(argv + args))
    return lines


def reference(past: Sequence[PastTrial], mode: str = "max") -> Optional[PastTrial]:
    """The "current" version: the best healthy trial, else the one that got furthest."""
    sign = 1 if mode == "max" else -1
    healthy = [p for p in past if p.verdict == "healthy" and p.objective is not None]
    if healthy:
        return max(healthy, key=lambda p: sign * p.objective)
    ran = [p for p in past if p.progress]
    if not ran:
        return None
    return max(ran, key=lambda p: (max(p.progress), sign * p.progress[max(p.progress)]))


def _ratio(new: Any, old: Any) -> str:
    if not isinstance(new, (int, float)) or not isinstance(old, (int, float)) or old == 0:
        return f"{old} → {new}"
    r = new / old
    return f"×{r:.2g}" if r >= 1 else f"÷{1 / r:.2g}"


def describe_near(prop: Proposal) -> str:
    """`id (verdict @ step, d=…)` of the nearest past trials."""

    def one(p: PastTrial, d: float) -> str:
        step = f" @ {p.stop_step}" if p.verdict.startswith("stopped") and p.stop_step else ""
        return f"{p.run_id} ({p.verdict}{step}, d={d:.2f})"

    return "; ".join(one(p, d) for p, d in prop.nearest) or "no past run in this space"


def rationale(
    prop: Proposal, ref: Optional[PastTrial], space: Mapping[str, Any], brief: bool = False
) -> dict[str, str]:
    """Per parameter: the change against the reference and the nearest past trials' verdicts
    (`brief`: the model's evidence is shown in a table of its own, so only P(healthy) here)."""
    if prop.why and brief:
        lead = f"P(healthy) {prop.p_healthy:.2f}, evidence below"
    elif prop.why:
        lead = prop.why
    elif not prop.nearest:
        lead = "first point: TPE samples its prior"
    else:
        p, d = prop.nearest[0]
        if p.verdict == "healthy":
            lead = f"TPE stays near healthy {p.run_id} (d={d:.2f})"
        elif d >= EXPLORE_DISTANCE:
            lead = f"TPE explores untried space (nearest past run {p.run_id}, {p.verdict}, d={d:.2f})"
        else:
            lead = f"TPE keeps d={d:.2f} from {p.run_id} ({p.verdict})"
    out = {}
    for k in space:
        change = _ratio(prop.params.get(k), ref.params.get(k)) if ref is not None else "new"
        rel = f"{change} vs {ref.run_id}" if ref is not None else change
        out[k] = f"{rel}; {lead}"
    return out
