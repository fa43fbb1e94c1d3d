"""report.md in the seed's style, built from a Sweep (pure text; plots come from plots.py).

Sections: header table; trials; per-trial metric × step tables with a trend word;
diagnosis of every stopped/unhealthy trial from its verdict; parameter → outcome
table; the proposed next change; the monitoring criteria in force; plots.
"""

from __future__ import annotations

import datetime as dt
import math
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from archer_sweep.criteria import DECIDED, Rule
from archer_sweep.objective import reduce_objective, result_step
from archer_sweep.results.analysis import TABLE_METRICS, Sweep, checkpoints, compute, status, trend, value_at
from archer_sweep.results.configs import configs_table, sweep_configs
from archer_sweep.results.runs import Run
from archer_sweep.tables import fmt, md_table, short_param
from trainable import metrics as M

OUTCOME_METRICS = (M.SCORE_MEAN, M.ENTROPY, M.RESP_LEN_POS, M.LOGICAL_CONNECTIVES)


def project_commit() -> str:
    """The archer-sweep source commit (short hash), or "unknown" outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _params(run: Run, keys: Sequence[str]) -> str:
    return ", ".join(f"{short_param(k)}={fmt(run.params.get(k))}" for k in keys)


def header(sweep: Sweep, commit: str) -> str:
    used, saved = compute(sweep)
    counts: dict[str, int] = {}
    for r in sweep.runs:
        counts[r.verdict_name] = counts.get(r.verdict_name, 0) + 1
    verdicts = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
    rows = [
        ["Sweep", f"`{sweep.name}`"],
        ["Spec", f"`{sweep.directory / 'spec.yaml'}`"],
        ["Project commit", f"`{commit}`"],
        ["Generated", dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")],
        ["Objective", f"{sweep.mode} `{sweep.objective}`, {sweep.reduce} of each trial"],
        ["Trials", f"{len(sweep.runs)} ({verdicts or 'none'})"],
        ["Compute used", f"{used} trial-steps"],
        [
            "Compute saved by stops",
            f"{saved} trial-steps"
            + (f" (of a {sweep.total_steps}-step budget per trial)" if sweep.total_steps else ""),
        ],
    ]
    return md_table(["Field", "Value"], rows)


def trial_table(run: Run, metrics: Sequence[str] = TABLE_METRICS, k: int = 4) -> str:
    """Metric | Step a | Step b | … | Trend (the seed's V1 results summary)."""
    steps = checkpoints([int(s[M.STEP]) for s in run.steps], k)
    rows = []
    for m in metrics:
        vals = [value_at(run, m, s) for s in steps]
        if all(v is None for v in vals):
            continue
        rows.append([f"`{m}`", *vals, trend(run.series(m)[1])])
    return md_table(["Metric", *(f"Step {s}" for s in steps), "Trend"], rows)


def _rule(rules: Sequence[Rule], name: Optional[str]) -> Optional[Rule]:
    return next((r for r in rules if r.name == name), None)


def diagnosis(run: Run, rules: Sequence[Rule], keys: Sequence[str]) -> Optional[str]:
    """Plain words from the verdict (rule, step, value) and the metrics' trends."""
    v = run.verdict or {}
    name = run.verdict_name
    if name == "healthy" or name == "unknown":
        return None
    rule = _rule(rules, v.get("rule"))
    cond = f" ({rule.describe()})" if rule else ""
    value = fmt(_f(v.get("value")))
    who = f"`{run.run_id}` ({_params(run, keys)})"
    if name.startswith("stopped:nan"):
        what = f"was stopped at step {v.get('step')}: `{v.get('metric')}` became {value}" + (
            f" ({v['reason']})" if v.get("reason") else ""
        )
    elif name.startswith("stopped:"):
        ahead = f" ({v['reason']})" if str(v.get("reason") or "").startswith("forecast") else ""
        what = (
            f"was stopped at step {v.get('step')} by rule `{v.get('rule')}`{cond}: "
            f"`{v.get('metric')}` = {value}{ahead}"
        )
    elif name.startswith("unhealthy:"):
        if DECIDED in str(v.get("reason") or ""):
            what = (
                f"was stopped at step {v.get('step')} when it missed the good rule `{v.get('rule')}`"
                f"{cond}: `{v.get('metric')}` = {value} (its verdict could no longer change)"
            )
        else:
            what = (
                f"finished but missed the good rule `{v.get('rule')}`{cond}: "
                f"`{v.get('metric')}` = {value} at step {v.get('step')}"
            )
    elif name == "error":
        what = "crashed" + (f": {v['reason']}" if v.get("reason") else "")
    else:
        what = f"ended as {name}"
    lines = [f"- {who} {what}."]
    for m in M.KEY_METRICS:
        xs, ys = run.series(m)
        ys = [y for y in ys if math.isfinite(y)]
        if len(ys) >= 2:
            word = trend(ys)
            if word != "stable":
                lines.append(f"  - `{m}` {word}: {fmt(ys[0])} → {fmt(ys[-1])} (steps {xs[0]}–{xs[-1]})")
    return "\n".join(lines)


def _f(x):
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None


def outcome_table(sweep: Sweep) -> str:
    """Parameters → verdict and final metrics across trials (the seed's V0–Vn summary)."""
    keys = sweep.space_keys
    runs = sorted(
        sweep.runs,
        key=lambda r: tuple(
            r.params.get(k) if isinstance(r.params.get(k), (int, float)) else math.inf for k in keys
        ),
    )
    rows = []
    for r in runs:
        rows.append(
            [
                f"`{r.run_id}`",
                *(r.params.get(k) for k in keys),
                r.verdict_name,
                status(r),
                r.last_step,
                _result(sweep, r),
                *(r.series(m)[1][-1] if r.series(m)[1] else None for m in OUTCOME_METRICS),
            ]
        )
    return md_table(
        [
            "Trial",
            *(f"`{short_param(k)}`" for k in keys),
            "Verdict",
            "Status",
            "Steps",
            f"result ({sweep.reduce} `{sweep.objective}` @ step)",
            *(f"final `{m}`" for m in OUTCOME_METRICS),
        ],
        rows,
    )


def _result(sweep: Sweep, run: Run) -> str:
    """The trial's result (objective by `search.objective_reduce`) and its step."""
    steps, values = run.series(sweep.objective)
    value = reduce_objective(values, sweep.reduce, sweep.mode)
    step = result_step(steps, values, sweep.reduce, sweep.mode)
    return "—" if value is None else f"{fmt(value)} @ {step}"


def criteria_table(rules: Sequence[Rule]) -> str:
    """Metric | Good | Bad (the seed's monitoring table)."""
    metrics = list(dict.fromkeys(r.metric for r in rules))
    rows = []
    for m in metrics:
        good = "; ".join(f"{r.name}: {r.describe()}" for r in rules if r.metric == m and r.verdict == "good")
        bad = "; ".join(f"{r.name}: {r.describe()}" for r in rules if r.metric == m and r.verdict == "bad")
        rows.append([f"`{m}`", good or None, bad or None])
    return md_table(["Metric", "Good", "Bad (stops the trial)"], rows)


def next_change_table(rows: Sequence[Sequence]) -> str:
    return md_table(["Parameter", "current", "proposed", "rationale"], rows)


def render(
    sweep: Sweep,
    plots: dict[str, str],
    next_rows: Sequence[Sequence],
    next_note: str = "",
    commit: Optional[str] = None,
) -> str:
    """The whole report.md. `plots`: title → relative PNG path."""
    keys = sweep.space_keys
    parts = [f"# Sweep `{sweep.name}`: results report", "", header(sweep, commit or project_commit()), ""]
    parts += ["## Trials", "", outcome_table(sweep), ""]
    configs = sweep_configs(sweep)
    if configs:  # search.repeats: the verdict that counts is the config's
        parts += ["## Configs (each judged over its seeds)", "", configs_table(configs), ""]
    parts += ["## Per-trial metrics", ""]
    for r in sweep.runs:
        parts += [f"### `{r.run_id}` ({_params(r, keys)}): {r.verdict_name}", ""]
        parts += [trial_table(r) if r.steps else "_no reports_", ""]
    diag = [d for d in (diagnosis(r, sweep.rules, keys) for r in sweep.runs) if d]
    parts += ["## Diagnosis", "", "\n".join(diag) if diag else "No trial was stopped or unhealthy.", ""]
    parts += [
        "## Proposed next change",
        "",
        next_change_table(next_rows)
        if next_rows
        else "_no proposal: the sweep searches no parameter (every search.space entry is fixed)_",
        "",
    ]
    if next_note:
        parts += [next_note, ""]
    parts += [
        "## Monitoring criteria in force",
        "",
        criteria_table(sweep.rules) if sweep.rules else "_no rules_",
        "",
    ]
    if plots:
        parts += ["## Plots", ""] + [f"![{t}]({p})" for t, p in plots.items()] + [""]
    return "\n".join(parts)
