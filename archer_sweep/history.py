"""Past runs in one in-memory form, read from every place runs leave metrics behind.

`Run(run_id, params, steps, verdict, source)`: `params` are dotted trainable-config
keys (`algorithm.entropy_coeff`), `steps` one dict per report (metric keys of
`trainable.metrics`, always with `step`), `verdict` a verdicts.jsonl-style dict or None.

Readers (chosen by `load_history(path)` from what the path holds):
- a sweep results directory (Ray Tune trial dirs' params.json + result.json, verdicts.jsonl),
- a JSONL history file `{"run", "step", "params", "metrics"[, "verdict"]}` (DESIGN.md),
- verl's JSONL file logger `{"step": N, "data": {...}}`,
- verl console logs, lines `step:N - key:value - ...`,
- W&B offline run directories (`wandb/offline-run-*`, the `.wandb` record log).
Bad input raises `UserError` naming the file (and line); a run with missing steps is
kept with a warning.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

from archer_sweep.errors import UserError
from archer_sweep.results import SPEC_FILE, space_keys, trial_dirs
from archer_sweep.verdicts import VERDICTS_FILE
from trainable import metrics as M
from trainable.backends.verl_logs import parse_console_line

log = logging.getLogger(__name__)

TRIAL_FILES = ("result.json", "params.json")


@dataclass
class Run:
    run_id: str
    params: dict[str, Any] = field(default_factory=dict)
    steps: list[dict[str, float]] = field(default_factory=list)
    verdict: Optional[dict] = None
    source: str = ""

    @property
    def last_step(self) -> int:
        return int(self.steps[-1][M.STEP]) if self.steps else 0

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """(steps, values) of one metric; reports without it are left out."""
        xs, ys = [], []
        for s in self.steps:
            v = s.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                xs.append(int(s[M.STEP]))
                ys.append(float(v))
        return xs, ys

    @property
    def verdict_name(self) -> str:
        return (self.verdict or {}).get("verdict") or "unknown"


# ---------------------------------------------------------------- helpers

def _num(v: Any) -> Optional[float]:
    """A metric value as float: numbers, and "nan"/"inf" strings (JSON has no NaN)."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """Nested dict -> dotted keys (the spec's `space` keys)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def _metrics(d: dict) -> dict[str, float]:
    out = {}
    for k, v in d.items():
        x = _num(v)
        if x is not None:
            out[k] = x
    return out


def _json_lines(path: Path, torn_tail_ok: bool = False) -> Iterator[tuple[int, dict]]:
    """(line number, object) per non-empty line; a bad line is a UserError naming it.

    `torn_tail_ok`: files the engine appends to (result.json, verdicts.jsonl) may end in a
    line cut by a crash; that last line is skipped with a warning.
    """
    try:
        text = path.read_text(encoding="utf-8")
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


def finalize(run: Run) -> Run:
    """Sort steps, drop duplicate steps (last wins) and warn about gaps; the run is kept."""
    by_step: dict[int, dict] = {}
    for s in run.steps:
        by_step[int(s[M.STEP])] = s
    run.steps = [by_step[k] for k in sorted(by_step)]
    steps = sorted(by_step)
    if len(steps) > 2:
        gaps = [b - a for a, b in zip(steps, steps[1:])]
        stride = min(gaps)
        holes = [a for a, g in zip(steps, gaps) if g != stride]
        if holes:
            log.warning("run %s (%s): missing steps after step(s) %s; kept as is",
                        run.run_id, run.source, ", ".join(map(str, holes[:5])))
    return run


# ---------------------------------------------------------------- file readers

def read_history_jsonl(path: Path) -> list[Run]:
    """The archer-sweep history format: one line per report of a run."""
    runs: dict[str, Run] = {}
    for no, obj in _json_lines(path):
        missing = [k for k in ("run", "step", "metrics") if k not in obj]
        if missing:
            raise UserError(f"{path}:{no}: history line lacks {missing} "
                            f"(expected {{\"run\", \"step\", \"params\", \"metrics\"}})")
        if not isinstance(obj["metrics"], dict):
            raise UserError(f"{path}:{no}: 'metrics' must be an object")
        rid = str(obj["run"])
        run = runs.setdefault(rid, Run(rid, source=str(path)))
        run.params.update(obj.get("params") or {})
        if obj.get("verdict"):
            run.verdict = obj["verdict"]
        run.steps.append(_metrics(obj["metrics"]) | {M.STEP: _step_of(obj, path, no)})
    return [finalize(r) for r in runs.values()]


def read_verl_jsonl(path: Path) -> list[Run]:
    """verl's `file` logger: `{"step": N, "data": {...}}` per step."""
    run = Run(path.stem, source=str(path))
    for no, obj in _json_lines(path):
        if not isinstance(obj.get("data"), dict):
            raise UserError(f"{path}:{no}: verl log line lacks a 'data' object")
        run.steps.append(_metrics(obj["data"]) | {M.STEP: _step_of(obj, path, no)})
    return [finalize(run)]


def read_verl_console(path: Path) -> list[Run]:
    """verl console output: `step:N - key:value - ...` lines; other lines are ignored."""
    run = Run(path.stem, source=str(path))
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc})") from exc
    for line in lines:
        record = parse_console_line(line)
        if record is not None:
            run.steps.append(dict(record.metrics) | {M.STEP: record.step})
    if not run.steps:
        raise UserError(f"{path}: no `step:N - key:value` lines found")
    return [finalize(run)]


def _sniff(path: Path) -> Callable[[Path], list[Run]]:
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
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
    return path.is_dir() and ((path / VERDICTS_FILE).exists() or (path / SPEC_FILE).exists()
                              or bool(trial_dirs(path)))


def read_verdicts(root: Path) -> dict[str, dict]:
    """trial_id -> its latest verdict line (the file is append-only)."""
    path = root / VERDICTS_FILE
    out: dict[str, dict] = {}
    if path.exists():
        for no, obj in _json_lines(path, torn_tail_ok=True):
            if "trial_id" not in obj:
                raise UserError(f"{path}:{no}: verdict line lacks 'trial_id'")
            out[str(obj["trial_id"])] = obj
    return out


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
            k2: v for k, v in flat.items() for k2 in space if k.endswith("." + k2)}
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
            rep = {k: v for k, v in _metrics(obj).items() if "/" in k or k == M.STEP}
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
            from archer_sweep.wandb_reader import read_wandb_run
            return [read_wandb_run(f) for f in files]
        raise UserError(f"{path}: not a results directory (no verdicts.jsonl, spec.yaml or "
                        f"trial result.json) nor a W&B offline run directory")
    if path.suffix == ".wandb":
        from archer_sweep.wandb_reader import read_wandb_run
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


def _clean(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def write_history(runs: Iterable[Run], path: Path | str) -> Path:
    """Write runs as JSONL history (one line per report; the verdict on each run's last line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for run in runs:
            for i, s in enumerate(run.steps):
                line = {"run": run.run_id, "step": int(s[M.STEP]), "params": run.params,
                        "metrics": {k: _clean(v) for k, v in s.items() if k != M.STEP}}
                if run.verdict and i == len(run.steps) - 1:
                    line["verdict"] = run.verdict
                fh.write(json.dumps(line) + "\n")
    return path
