"""Past runs in one in-memory form, read from every place runs leave metrics behind.

`Run(run_id, params, steps, verdict, source)`: `params` are dotted trainable-config
keys (`algorithm.entropy_coeff`), `steps` one dict per report (metric keys of
`trainable.metrics`, always with `step`), `verdict` a verdicts.jsonl-style dict or None.

Readers (chosen by `load_history(path)` from what the path holds):
- a sweep results directory (Ray Tune trial dirs' params.json + result.json, verdicts.jsonl),
- a JSONL history file `{"run", "step", "params", "metrics"[, "verdict"]}` (docs/design.md),
- verl's JSONL file logger `{"step": N, "data": {...}}`,
- verl console logs, lines `step:N - key:value - ...`,
- W&B offline run directories (`wandb/offline-run-*`, the `.wandb` record log).
Bad input raises `UserError` naming the file (and line); a run with missing steps is
kept with a warning.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Optional

from archer_sweep.errors import UserError
from archer_sweep.results.runs import Run, finalize, flatten, metrics_of
from archer_sweep.results.sweepdir import SPEC_FILE, VERDICTS_FILE, read_verdicts, space_keys, trial_dirs
from archer_sweep.values import jsonable
from trainable import metrics as M
from trainable.backends.verl_logs import parse_console_line

log = logging.getLogger(__name__)

TRIAL_FILES = ("result.json", "params.json")


def _json_lines(path: Path, torn_tail_ok: bool = False) -> Iterator[tuple[int, dict]]:
    """(line number, object) per non-empty line; a bad line is a UserError naming it.

    `torn_tail_ok`: files the engine appends to (result.json, verdicts.jsonl) may end in a
    line cut by a crash; that last line is skipped with a warning.
    """
    try:
        text = read_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read ({exc})") from exc
    lines = text.splitlines()
    for no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            if torn_tail_ok and no == len(lines) and not text.endswith("\n"):
                log.warning("%s:%d: torn last line skipped (interrupted write)", path, no)
                return
            raise UserError(f"{path}:{no}: not a JSON line ({exc.msg})") from exc
        if not isinstance(obj, dict):
            raise UserError(f"{path}:{no}: expected a JSON object, got {type(obj).__name__}")
        yield no, obj


def _step_of(obj: dict, path: Path, no: int, key: str = M.STEP) -> int:
    s = obj.get(key)
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s):
        raise UserError(f"{path}:{no}: missing or non-numeric {key!r} (expected an integer step)")
    return int(s)


# ---------------------------------------------------------------- file readers


def read_history_jsonl(path: Path) -> list[Run]:
    """The archer-sweep history format: one line per report of a run."""
    runs: dict[str, Run] = {}
    for no, obj in _json_lines(path):
        missing = [k for k in ("run", "step", "metrics") if k not in obj]
        if missing:
            raise UserError(
                f'{path}:{no}: history line lacks {missing} (expected {{"run", "step", "params", "metrics"}})'
            )
        if not isinstance(obj["metrics"], dict):
            raise UserError(f"{path}:{no}: 'metrics' must be an object")
        rid = str(obj["run"])
        run = runs.setdefault(rid, Run(rid, source=str(path)))
        run.params.update(obj.get("params") or {})
        if obj.get("verdict"):
            run.verdict = obj["verdict"]
        run.steps.append(metrics_of(obj["metrics"]) | {M.STEP: _step_of(obj, path, no)})
    return [finalize(r) for r in runs.values()]


def read_verl_jsonl(path: Path) -> list[Run]:
    """verl's `file` logger: `{"step": N, "data": {...}}` per step."""
    run = Run(path.stem, source=str(path))
    for no, obj in _json_lines(path):
        if not isinstance(obj.get("data"), dict):
            raise UserError(f"{path}:{no}: verl log line lacks a 'data' object")
        run.steps.append(metrics_of(obj["data"]) | {M.STEP: _step_of(obj, path, no)})
    return [finalize(run)]


def read_verl_console(path: Path) -> list[Run]:
    """verl console output: `step:N - key:value - ...` lines; other lines are ignored."""
    run = Run(path.stem, source=str(path))
    try:
        lines = read_text(path, errors="replace").splitlines()
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc})") from exc
    for line in lines:
        record = parse_console_line(line)
        if record is not None:
            run.steps.append(dict(record.metrics) | {M.STEP: record.step})
    if not run.steps:
        raise UserError(f"{path}: no `step:N - key:value` lines found")
    return [finalize(run)]


def _open_text(path: Path, errors: str = "strict"):
    """A text stream of `path`; `*.gz` files (e.g. the shipped tiny-world table) are unzipped."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors=errors)
    return path.open(encoding="utf-8", errors=errors)


def read_text(path: Path, errors: str = "strict") -> str:
    with _open_text(path, errors) as fh:
        return fh.read()


def _sniff(path: Path) -> Callable[[Path], list[Run]]:
    try:
        with _open_text(path, errors="replace") as fh:
            first = next((l for l in fh if l.strip()), "")
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc})") from exc
    if parse_console_line(first) is not None or not first.lstrip().startswith("{"):
        return read_verl_console
    try:
        obj = json.loads(first)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:1: not a JSON line ({exc.msg})") from exc
    if isinstance(obj, dict) and "data" in obj and "metrics" not in obj:
        return read_verl_jsonl
    return read_history_jsonl


# ---------------------------------------------------------------- directory readers


def is_results_dir(path: Path) -> bool:
    return path.is_dir() and (
        (path / VERDICTS_FILE).exists() or (path / SPEC_FILE).exists() or bool(trial_dirs(path))
    )


def _trial_params(trial: Path, space: Optional[set[str]]) -> dict[str, Any]:
    p = trial / "params.json"
    if not p.exists():
        return {}
    try:
        flat = flatten(json.loads(p.read_text()))
    except json.JSONDecodeError as exc:
        raise UserError(f"{p}: not JSON ({exc.msg})") from exc
    if space:
        # The trial config may nest the space keys under a config section.
        return {k: v for k, v in flat.items() if k in space} or {
            k2: v for k, v in flat.items() for k2 in space if k.endswith("." + k2)
        }
    return flat


def read_results_dir(root: Path) -> list[Run]:
    """A sweep's results directory: one Run per Ray Tune trial, verdicts attached."""
    verdicts = read_verdicts(root)
    space = space_keys(root)
    runs: list[Run] = []
    for trial in trial_dirs(root):
        path = trial / "result.json"
        tid, steps = trial.name, []
        for no, obj in _json_lines(path, torn_tail_ok=True):
            tid = str(obj.get("trial_id", tid))
            key = M.STEP if M.STEP in obj else "training_iteration"
            rep = {k: v for k, v in metrics_of(obj).items() if "/" in k or k == M.STEP}
            steps.append(rep | {M.STEP: _step_of(obj, path, no, key)})
        params = _trial_params(trial, space)
        v = verdicts.pop(tid, None)
        if v and v.get("params") and not params:
            params = dict(v["params"])
        runs.append(finalize(Run(tid, params, steps, v, str(trial))))
    for tid, v in verdicts.items():  # a trial that never reported (e.g. crashed at setup)
        runs.append(Run(tid, dict(v.get("params") or {}), [], v, str(root)))
    return runs


def _wandb_files(path: Path) -> list[Path]:
    if path.is_file() and path.suffix == ".wandb":
        return [path]
    return sorted(path.glob("run-*.wandb")) or sorted(path.glob("**/offline-run-*/run-*.wandb"))


def load_history(path: Path | str) -> list[Run]:
    """Every run stored at `path` (file or directory), in one form."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    if path.is_dir():
        if is_results_dir(path):
            return read_results_dir(path)
        files = _wandb_files(path)
        if files:
            from archer_sweep.results.wandb_reader import read_wandb_run

            return [read_wandb_run(f) for f in files]
        raise UserError(
            f"{path}: not a results directory (no verdicts.jsonl, spec.yaml or "
            f"trial result.json) nor a W&B offline run directory"
        )
    if path.suffix == ".wandb":
        from archer_sweep.results.wandb_reader import read_wandb_run

        return [read_wandb_run(path)]
    return _sniff(path)(path)


def load_histories(paths: Iterable[Path | str]) -> list[Run]:
    """Runs from several sources; run ids are made unique by their source when they clash."""
    runs: list[Run] = []
    seen: set[str] = set()
    for p in paths:
        for r in load_history(p):
            if r.run_id in seen:
                r.run_id = f"{Path(p).stem}:{r.run_id}"
            seen.add(r.run_id)
            runs.append(r)
    return runs


def write_history(runs: Iterable[Run], path: Path | str) -> Path:
    """Write runs as JSONL history (one line per report; the verdict on each run's last line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for run in runs:
            for i, s in enumerate(run.steps):
                line = {
                    "run": run.run_id,
                    "step": int(s[M.STEP]),
                    "params": run.params,
                    "metrics": jsonable({k: v for k, v in s.items() if k != M.STEP}),
                }
                if run.verdict and i == len(run.steps) - 1:
                    line["verdict"] = run.verdict
                fh.write(json.dumps(line) + "\n")
    return path
