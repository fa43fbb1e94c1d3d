"""The live trial table (a Ray Tune Callback) and the final summary of a sweep.

On a terminal the table redraws in place (rich.live); otherwise (CI logs, pipes) one
line per trial event is printed: start, every `every` steps, and the verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from ray.tune import Callback
from rich.console import Console
from rich.table import Table

from archer_sweep.engine.progress import SweepProgress
from archer_sweep.engine.verdicts import VerdictStore, describe
from archer_sweep.objective import result_step
from archer_sweep.results.sweepdir import params_of, read_results, trial_dirs
from trainable import metrics as M

COLUMNS: tuple[tuple[str, str], ...] = (
    ("entropy", M.ENTROPY),
    ("pos len", M.RESP_LEN_POS),
    ("connect.", M.LOGICAL_CONNECTIVES),
    ("score", M.SCORE_MEAN),
)


_STATUS = {"RUNNING": "run", "TERMINATED": "done", "ERROR": "error", "PENDING": "wait"}


def _fmt(x: Any, digits: int = 4) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e6:
        return str(int(x))
    if isinstance(x, float):
        return "nan" if math.isnan(x) else f"{x:.{digits}g}"
    return "" if x is None else str(x)


def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1]


class LiveTable(Callback):
    def __init__(
        self,
        store: VerdictStore,
        param_keys: Sequence[str],
        every: int = 5,
        console: Optional[Console] = None,
        repeats: Any = None,
        budget: Optional[tuple[int, int]] = None,
    ):
        """`budget` = (trials, steps per trial): a terminal also shows a progress bar with an ETA."""
        self.store = store
        self.repeats = repeats  # search.repeats: a seed's verdict also shows its config's agreement
        self.param_keys = list(param_keys)
        self.every = max(1, every)
        self.rows: dict[str, dict] = {}
        self._console = console
        self._live = None
        self.progress = SweepProgress(*budget) if budget else None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.update(_console=None, _live=None)  # terminals do not pickle
        return state

    @property
    def console(self) -> Console:
        if self._console is None:
            self._console = Console(highlight=False, soft_wrap=True)
        return self._console

    # -- Ray Tune callback hooks ----------------------------------------------------------
    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        row = self._row(trial)
        row["status"] = "RUNNING"
        self._emit(trial, f"started {self._params_text(row)}")

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        row = self._row(trial)
        row.update(status="RUNNING", step=result.get(M.STEP, result.get("training_iteration")))
        row.update({label: result.get(key) for label, key in COLUMNS})
        step = row["step"]
        if self.progress is not None and isinstance(step, (int, float)):
            self.progress.report(trial.trial_id, int(step))
        if isinstance(step, (int, float)) and int(step) % self.every == 0:
            self._emit(trial, self._metrics_text(row))

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._finish(trial, "TERMINATED")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._finish(trial, "ERROR")

    def on_experiment_end(self, trials, **info) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    # -- rendering ------------------------------------------------------------------------
    def _row(self, trial) -> dict:
        if trial.trial_id not in self.rows:
            self.rows[trial.trial_id] = {
                "params": params_of(trial.config, self.param_keys),
                "status": "PENDING",
                "step": None,
            }
        return self.rows[trial.trial_id]

    def _finish(self, trial, status: str) -> None:
        row = self._row(trial)
        row["status"] = status
        if self.progress is not None:
            self.progress.end(trial.trial_id)
        verdict = self.store.get(trial.trial_id)
        row["verdict"] = verdict["verdict"] if verdict else ""
        text = describe(verdict) if verdict else "no verdict"
        if verdict and self.repeats is not None and verdict.get("group") is not None:
            from archer_sweep.results.configs import configs

            (config,) = configs(
                [r for r in self.store.rows() if r.get("group") == verdict["group"]], self.repeats
            )
            agreement = f"config {verdict['group']}: {config.verdict.describe()}"
            row["verdict"] += f" ({agreement})"
            text += f"; {agreement}"
        self._emit(trial, f"{status.lower()}: {text}")

    def _params_text(self, row: Mapping) -> str:
        return " ".join(f"{_short(k)}={_fmt(v)}" for k, v in row["params"].items())

    def _metrics_text(self, row: Mapping) -> str:
        cells = " ".join(f"{label}={_fmt(row.get(label))}" for label, _ in COLUMNS)
        return f"step {_fmt(row.get('step'))}: {cells}"

    def _emit(self, trial, text: str) -> None:
        if self.console.is_terminal:
            self._redraw()
            return
        self.console.print(f"[{trial.trial_id}] {text}", markup=False)

    def _redraw(self) -> None:
        from rich.live import Live

        if self._live is None:
            self._live = Live(self.view(), console=self.console, refresh_per_second=4)
            self._live.start()
        self._live.update(self.view())

    def view(self):
        """The table, with the sweep's progress bar below it when the budget is known."""
        return self.table() if self.progress is None else self.progress.below(self.table())

    def table(self) -> Table:
        table = Table(title="archer-sweep trials", padding=(0, 1))
        table.add_column("trial", no_wrap=True, min_width=8)
        for col in (
            *(_short(k) for k in self.param_keys),
            "status",
            "step",
            *(label for label, _ in COLUMNS),
        ):
            table.add_column(col)
        table.add_column("verdict", overflow="fold", min_width=20)
        for tid, row in self.rows.items():
            table.add_row(
                tid,
                *(_fmt(row["params"].get(k), 3) for k in self.param_keys),
                _STATUS.get(row["status"], row["status"]),
                _fmt(row.get("step")),
                *(_fmt(row.get(label), 3) for label, _ in COLUMNS),
                row.get("verdict", ""),
            )
        return table


def final_values(sweep_dir: str | Path, metric: str) -> dict[str, float]:
    """Last reported value of `metric` per trial id."""
    out = {}
    for tdir in trial_dirs(sweep_dir):
        reports = read_results(tdir)
        if reports:
            last = reports[-1]
            value = last.get(metric)
            out[str(last.get("trial_id", tdir.name))] = (
                float(value) if isinstance(value, (int, float)) else math.nan
            )
    return out


def best_values(sweep_dir: str | Path, metric: str, mode: str) -> dict[str, tuple[float, int]]:
    """(best value, its step) of `metric` per trial id (`search.objective_reduce: best`)."""
    out = {}
    for tdir in trial_dirs(sweep_dir):
        reports = read_results(tdir)
        steps = [int(r.get(M.STEP, i + 1)) for i, r in enumerate(reports)]
        values = [r.get(metric) for r in reports]
        step = result_step(steps, values, "best", mode)
        if step is not None:
            out[str(reports[-1].get("trial_id", tdir.name))] = (float(values[steps.index(step)]), step)
    return out


def best_healthy(rows: Sequence[Mapping], values: Mapping[str, float], mode: str) -> Optional[dict]:
    """The healthy trial with the best final objective (None if none is healthy)."""
    healthy = [
        r
        for r in rows
        if r.get("verdict") == "healthy" and math.isfinite(values.get(r["trial_id"], math.nan))
    ]
    if not healthy:
        return None
    sign = 1.0 if mode == "max" else -1.0
    return max(healthy, key=lambda r: sign * values[r["trial_id"]])


def summary(
    sweep_dir: str | Path,
    objective: str,
    mode: str,
    total: int,
    budget: Optional[int] = None,
    study: Optional[str] = None,
    repeats: Any = None,
    rules: Sequence = (),
    reduce: str = "last",
) -> str:
    """The closing text: each trial's verdict (rule, step, value), the best healthy, what
    the early stops spared (given the per-trial step `budget`), paths, and the study's
    database when it is not the sweep dir's study.db (`study`, from storage.study). With
    `reduce` best, each trial's result is its best objective step (checkpoint kept)."""
    sweep_dir = Path(sweep_dir)
    rows = sorted(VerdictStore(sweep_dir).rows(), key=lambda r: r["trial_id"])
    values = final_values(sweep_dir, objective)
    best = best_values(sweep_dir, objective, mode) if reduce == "best" else {}
    values |= {tid: v for tid, (v, _) in best.items()}
    cfgs = []
    header = f"Sweep {sweep_dir.name}: {len(rows)}/{total} trials judged"
    if repeats is not None:
        from archer_sweep.results.configs import configs, not_started, summary_lines

        cfgs = configs(rows, repeats, rules, values)
        skipped = not_started(cfgs, repeats)
        if skipped:
            # Not lost trials: a bad rule closed their config before a slot freed for them.
            header += f", {skipped} not started (their config was stopped by a bad rule first)"
    lines = [header]
    for r in rows:
        params = " ".join(f"{_short(k)}={_fmt(v)}" for k, v in (r.get("params") or {}).items())
        value = values.get(r["trial_id"])
        final = "no report" if value is None else f"final {objective}={_fmt(value)}"
        if r["trial_id"] in best:
            final = f"best {objective}={_fmt(value)} @ step {best[r['trial_id']][1]} (checkpoint kept)"
        lines.append(f"  {r['trial_id']}  {params}  {describe(r)}  {final}")
    if repeats is not None:
        lines += summary_lines(cfgs, objective)
    best = best_healthy(rows, values, mode)
    if best is None:
        lines.append("Best healthy trial: none (no trial met every good rule)")
    else:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in best["params"].items())
        lines.append(
            f"Best healthy trial: {best['trial_id']} ({params}) {objective}={_fmt(values[best['trial_id']])}"
        )
    if budget:
        from archer_sweep.results.analysis import load_sweep, stop_savings

        stopped, steps, seconds = stop_savings(load_sweep(sweep_dir), budget)
        if stopped:
            lines.append(
                f"Stopped early: {stopped} of {total} trials; {steps} of the sweep's "
                f"{budget * total} trial-steps not run "
                f"({100 * steps / (budget * total):.0f}%), about {seconds / 60:.1f} min "
                f"of trial time at their own step times"
            )
    files = "verdicts.jsonl, spec.yaml" if study else "verdicts.jsonl, study.db, spec.yaml"
    lines.append(f"Results: {sweep_dir}  ({files}; `archer-sweep analyze {sweep_dir}`)")
    if study:
        from archer_sweep.spec.study import shown_url

        lines.append(f"Study: `optuna-dashboard {shown_url(study)}`")
    return "\n".join(lines)
