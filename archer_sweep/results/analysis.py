"""Per-trial summaries of a sweep (or of imported history): status, verdict, stop
reason, last/best key metrics, trend words, compute used and saved.

Pure functions over `history.Run`; `load_sweep(dir)` reads a results directory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from archer_sweep.criteria import DECIDED, Rule
from archer_sweep.errors import UserError
from archer_sweep.objective import reduce_objective, result_step
from archer_sweep.results.history import SPEC_FILE, Run, is_results_dir, read_results_dir
from archer_sweep.spec.space import total_steps
from archer_sweep.values import jsonable, to_float
from trainable import metrics as M

#: Metrics of the per-trial tables, in the seed's order (key metrics + group counts).
TABLE_METRICS: tuple[str, ...] = (
    M.ENTROPY,
    M.SCORE_MEAN,
    M.VALID,
    M.SOLVE_NONE,
    M.SOLVE_ALL,
    M.LOGICAL_CONNECTIVES,
    M.RESP_LEN_POS,
)

STATUS_OF = {"healthy": "finished", "unhealthy": "finished", "stopped": "stopped", "error": "error"}


@dataclass
class Sweep:
    directory: Path
    name: str
    spec: Any
    """The resolved SweepSpec (spec.yaml), or None for a bare history."""
    runs: list[Run]

    @property
    def rules(self) -> list[Rule]:
        return self.spec.rules() if self.spec is not None else []

    @property
    def objective(self) -> str:
        return self.spec.search.metric if self.spec is not None else M.SCORE_MEAN

    @property
    def mode(self) -> str:
        return self.spec.search.mode if self.spec is not None else "max"

    @property
    def reduce(self) -> str:
        """`search.objective_reduce`: which of a trial's objective values is its result."""
        return self.spec.search.objective_reduce if self.spec is not None else "last"

    @property
    def space_keys(self) -> list[str]:
        if self.spec is not None and self.spec.search.space:
            return list(self.spec.search.space)
        return sorted({k for r in self.runs for k in r.params})

    @property
    def total_steps(self) -> Optional[int]:
        return total_steps(self.spec) if self.spec is not None else None


def load_sweep(directory: Path | str) -> Sweep:
    """A results directory as a Sweep; missing or foreign directories are UserErrors."""
    directory = Path(directory)
    if not directory.exists():
        raise UserError(f"{directory}: no such directory")
    if not is_results_dir(directory):
        raise UserError(
            f"{directory}: not a results directory (expected {SPEC_FILE}, "
            f"verdicts.jsonl or trial result.json files; run `archer-sweep run` first)"
        )
    spec = read_resolved_spec(directory / SPEC_FILE) if (directory / SPEC_FILE).exists() else None
    name = spec.name if spec is not None else directory.name
    return Sweep(directory, name, spec, read_results_dir(directory))


def read_resolved_spec(path: Path):
    """A results dir's spec.yaml (already checked by `run`): parsed by the pydantic models
    only, so results stay readable where the sweep's backend is not installed."""
    import yaml
    from pydantic import ValidationError

    from archer_sweep.spec.model import SweepSpec

    try:
        return SweepSpec.model_validate(yaml.safe_load(path.read_text()) or {})
    except (yaml.YAMLError, ValidationError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path}: not a valid resolved spec ({first})") from exc


# ---------------------------------------------------------------- per-trial facts


def status(run: Run) -> str:
    if DECIDED in str((run.verdict or {}).get("reason") or ""):
        return "stopped"  # unhealthy, and ended where that was decided
    kind = run.verdict_name.split(":", 1)[0]
    return STATUS_OF.get(kind, "running" if run.steps else "pending")


def direction(metric: str, rules: Sequence[Rule], objective: str, mode: str) -> Optional[str]:
    """Which way is better for `metric`: "max", "min", or None (two-sided, e.g. entropy)."""
    if metric == objective:
        return mode
    dirs = set()
    for r in rules:
        if r.metric != metric or r.op is None:
            continue
        low_is_bad = r.op in ("<", "<=")
        dirs.add(("max" if low_is_bad else "min") if r.verdict == "bad" else ("min" if low_is_bad else "max"))
    return dirs.pop() if len(dirs) == 1 else None


def last_value(run: Run, metric: str) -> Optional[float]:
    _, ys = run.series(metric)
    return ys[-1] if ys else None


def band(metric: str, rules: Sequence[Rule]) -> Optional[tuple[float, float]]:
    """The good `between` band of a metric, if a good rule gives one."""
    return next(
        (
            r.between
            for r in rules
            if r.metric == metric and r.verdict == "good" and r.between is not None and r.relative_to is None
        ),
        None,
    )


def best_value(
    run: Run, metric: str, way: Optional[str], good_band: Optional[tuple[float, float]] = None
) -> Optional[float]:
    """Best value in direction `way`; for a two-sided metric, the one nearest its good band's centre."""
    ys = [y for y in run.series(metric)[1] if math.isfinite(y)]
    if not ys:
        return None
    if way is None:
        if good_band is None:
            return None
        mid = (good_band[0] + good_band[1]) / 2
        return min(ys, key=lambda y: abs(y - mid))
    return max(ys) if way == "max" else min(ys)


def trend(values: Sequence[float]) -> str:
    """One word for a series at its checkpoints: rising, falling, stable, collapsed (or no data)."""
    ys = [y for y in values if y is not None and math.isfinite(y)]
    if len(ys) < 2:
        return "no data" if not ys else "stable"
    first, last = ys[0], ys[-1]
    scale = max(abs(first), abs(last), max(ys) - min(ys), 1e-12)
    if first > 0 and last >= 0 and last < 0.25 * first:
        return "collapsed"
    change = (last - first) / scale
    if change > 0.1:
        return "rising"
    if change < -0.1:
        return "falling"
    return "stable"


def checkpoints(steps: Sequence[int], k: int = 4) -> list[int]:
    """About `k` report steps spread from the first to the last (the seed's 20/61/102/148)."""
    steps = sorted(set(steps))
    if len(steps) <= k:
        return steps
    idx = sorted({round(i * (len(steps) - 1) / (k - 1)) for i in range(k)})
    return [steps[i] for i in idx]


def value_at(run: Run, metric: str, step: int) -> Optional[float]:
    for s in run.steps:
        if int(s[M.STEP]) == step:
            v = s.get(metric)
            return float(v) if isinstance(v, (int, float)) else None
    return None


@dataclass
class TrialSummary:
    run_id: str
    params: dict
    status: str
    verdict: str
    rule: Optional[str]
    stop_step: Optional[int]
    stop_metric: Optional[str]
    stop_value: Optional[float]
    steps: int
    last: dict[str, Optional[float]] = field(default_factory=dict)
    best: dict[str, Optional[float]] = field(default_factory=dict)
    objective: Optional[float] = None
    """The trial's result: its objective reduced by `search.objective_reduce`."""
    result_step: Optional[int] = None
    """The step that result comes from (with `best`: the best step, whose checkpoint is kept)."""

    def as_dict(self) -> dict:
        return jsonable(self.__dict__.copy())


def summarize(sweep: Sweep) -> list[TrialSummary]:
    out = []
    for r in sweep.runs:
        v = r.verdict or {}
        ways = {m: direction(m, sweep.rules, sweep.objective, sweep.mode) for m in M.KEY_METRICS}
        out.append(
            TrialSummary(
                r.run_id,
                {k: r.params.get(k) for k in sweep.space_keys},
                status(r),
                r.verdict_name,
                v.get("rule"),
                v.get("step") if r.verdict_name.startswith(("stopped", "unhealthy")) else None,
                v.get("metric"),
                to_float(v.get("value")),
                r.last_step,
                {m: last_value(r, m) for m in M.KEY_METRICS},
                {m: best_value(r, m, ways[m], band(m, sweep.rules)) for m in M.KEY_METRICS},
                reduce_objective(r.series(sweep.objective)[1], sweep.reduce, sweep.mode),
                result_step(*r.series(sweep.objective), sweep.reduce, sweep.mode),
            )
        )
    return out


def compute(sweep: Sweep) -> tuple[int, int]:
    """(trial-steps used, trial-steps saved by stops). Saved = budget − stop step per stopped
    trial (decided `unhealthy` trials included)."""
    used = sum(r.last_step for r in sweep.runs)
    return used, stop_savings(sweep)[1]


def stop_savings(sweep: Sweep, budget: Optional[int] = None) -> tuple[int, int, float]:
    """(trials stopped, trial-steps they left unrun out of the per-trial `budget`, seconds
    those steps take at each trial's own mean `timing_s/step`, 0 where none is reported).
    Stopped: a bad rule (or timeout, ASHA) stopped it, or its `unhealthy:<rule>` verdict
    ended it where it was decided (reason `criteria.DECIDED`).
    `budget` defaults to the spec's total_steps, else the longest trial."""
    budget = budget or sweep.total_steps or max((r.last_step for r in sweep.runs), default=0)
    stopped = steps = 0
    seconds = 0.0
    for r in sweep.runs:
        decided = DECIDED in str((r.verdict or {}).get("reason") or "")
        if not (r.verdict_name.startswith("stopped") or decided):
            continue
        left = max(budget - r.last_step, 0)
        times = [t for t in r.series(M.TIME_STEP)[1] if math.isfinite(t)]
        stopped, steps = stopped + 1, steps + left
        seconds += left * (sum(times) / len(times) if times else 0.0)
    return stopped, steps, seconds
