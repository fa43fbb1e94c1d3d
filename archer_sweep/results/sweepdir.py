"""What lives inside a sweep directory, and `load_results(path)` for notebooks.

`results/<name>/` is a Ray Tune experiment directory (trial dirs with
`result.json`, `experiment_state-*.json`, `tuner.pkl`) plus archer-sweep's files.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"
VERDICTS_FILE = "verdicts.jsonl"
GROUPS_FILE = "groups.jsonl"
"""With `search.repeats`: one line per trial, `{"trial_id", "group", "seed_index", "seed"}`
(group = the Optuna trial number of the config), written when the trial is proposed."""
SPEC_FILE = "spec.yaml"
STUDY_FILE = "study.db"
LOCK_FILE = ".archer-sweep.lock"
PARAMS_FILE = "params.json"
TUNER_FILE = "tuner.pkl"
"""Ray Tune's Tuner state in the sweep dir (its presence marks a sweep Tune has saved)."""
TRIAL_ID_KEY = "trial_id"
ITER_KEY = "training_iteration"


def get_dotted(config: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """`config["a"]["b"]` for key `a.b` (a flat key that contains dots wins)."""
    if key in config:
        return config[key]
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def params_of(config: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The searched parameters of a trial config, by dotted key."""
    return {k: get_dotted(config or {}, k) for k in keys}


def study_url(sweep_dir: str | Path) -> str:
    return f"sqlite:///{Path(sweep_dir).resolve() / STUDY_FILE}"


def trial_dirs(sweep_dir: str | Path) -> list[Path]:
    """Trial directories of a sweep (those holding a `result.json`), sorted by name."""
    return sorted(p.parent for p in Path(sweep_dir).glob(f"*/{RESULT_FILE}"))


def read_results(trial_dir: str | Path) -> list[dict]:
    """A trial's reports in order; a re-run iteration after a resume replaces the earlier one."""
    by_iter: dict[int, dict] = {}
    path = Path(trial_dir) / RESULT_FILE
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line from a crash
        by_iter[int(row.get(ITER_KEY, len(by_iter) + 1))] = row
    return [by_iter[i] for i in sorted(by_iter)]


def read_verdicts(sweep_dir: str | Path) -> dict[str, dict]:
    """trial_id -> its verdict line from `verdicts.jsonl`, in file order.

    The driver writes one line per trial and never a second (`VerdictStore.record`), so
    should a line repeat anyway (a file joined by hand) the first is the verdict, as in
    the live store. An unreadable line (a torn last line after a crash) or one without a
    trial id is skipped with a warning.
    """
    path = Path(sweep_dir) / VERDICTS_FILE
    out: dict[str, dict] = {}
    if not path.exists():
        return out
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            log.warning("ignoring unreadable line %d of %s", n, path)
            continue
        if not isinstance(row, dict) or "trial_id" not in row:
            log.warning("ignoring line %d of %s: no trial_id", n, path)
            continue
        out.setdefault(str(row["trial_id"]), row)
    return out


def read_groups(sweep_dir: str | Path) -> dict[str, dict]:
    """trial_id -> its line of `groups.jsonl` ({} without repeats); torn lines skipped."""
    path = Path(sweep_dir) / GROUPS_FILE
    out: dict[str, dict] = {}
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line from a crash
        if isinstance(row, dict) and "trial_id" in row:
            out.setdefault(str(row["trial_id"]), row)
    return out


def load_results(path: str | Path):
    """One pandas DataFrame: a row per trial and step with params and verdict columns.

    Columns: `trial_id`, `step`, every reported metric, `param:<dotted key>` for each
    searched parameter, and `verdict`, `verdict_rule`, `verdict_step`, `verdict_value`
    (NaN/None while a trial has no verdict).
    """
    import pandas as pd

    sweep_dir = Path(path)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"no sweep directory at {sweep_dir}")
    verdicts = read_verdicts(sweep_dir)
    keys = space_keys(sweep_dir)
    rows = []
    for tdir in trial_dirs(sweep_dir):
        params = _trial_params(tdir, keys)
        for report in read_results(tdir):
            tid = str(report.get(TRIAL_ID_KEY, tdir.name))
            v = verdicts.get(tid, {"params": params})
            row = {
                k: val for k, val in report.items() if isinstance(val, (int, float, str, bool)) or val is None
            }
            row["trial_id"] = tid
            step = report.get("step", report.get(ITER_KEY))
            row["step"] = int(step) if isinstance(step, (int, float)) and math.isfinite(step) else step
            for key, value in (v.get("params") or {}).items():
                row[f"param:{key}"] = value
            row.update(
                verdict=v.get("verdict"),
                verdict_rule=v.get("rule"),
                verdict_step=v.get("step"),
                verdict_value=_num(v.get("value")),
            )
            rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.sort_values(["trial_id", "step"], kind="stable").reset_index(drop=True)
    return frame


def space_keys(sweep_dir: Path) -> list[str]:
    """The searched dotted keys of a sweep, from its spec.yaml ([] when it has none)."""
    import yaml

    try:
        spec = yaml.safe_load((sweep_dir / SPEC_FILE).read_text(encoding="utf-8")) or {}
        return list(((spec.get("search") or {}).get("space") or {}).keys())
    except (OSError, yaml.YAMLError, AttributeError):
        return []


def _trial_params(trial_dir: Path, keys: list[str]) -> dict:
    """Searched params of a trial without a verdict yet (from Ray's params.json)."""
    try:
        config = json.loads((trial_dir / PARAMS_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return params_of(config, keys)


def _num(x: Any) -> Any:
    if isinstance(x, str):
        try:
            return float(x)
        except ValueError:
            return x
    return math.nan if x is None else x
