"""Pure parsers for verl's metric logs: console lines and the JSONL file logger.

verl's console logger prints one line per `logger.log(data, step)` call:

    step:12 - actor/entropy:5.931 - critic/score/mean:0.047 - …

(older verl and the Archer2.0 fork format numbers with 3 decimals; newer verl with
`pprint.pformat`, which under numpy 2 can print `np.float64(0.0469)`). When the
trainer runs inside a Ray actor the line carries Ray's prefix, e.g.
`(TaskRunner pid=811) step:12 - …`, possibly with ANSI colours and a
`[repeated 2x across cluster]` suffix. Newer verl's `file` logger writes one JSON
object per call to `$VERL_FILE_LOGGER_PATH`: `{"step": N, "data": {…}}` (extra
top-level fields such as `elapsed_seconds` are ignored).

Everything here is pure (strings in, dicts out, no I/O) so that the `command`
backend, history import and tests share one code path. A line that is not a metric
record parses to None; a malformed item inside a metric line is dropped, the rest
of the line kept.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Optional

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_REPEATED = re.compile(r"\s*\[repeated \d+x across cluster\]\s*$")
# `step:N` must start the record: at the line start or after a Ray `(Actor pid=…)` prefix.
_STEP = re.compile(r"(?:^|\)\s|^\s+)step:\s*(-?\d+)(?=\s*(?: - |$))")
# numpy 2 reprs (`np.float64(0.5)`), torch-free: keep the number inside.
_NP_WRAP = re.compile(r"^(?:np|numpy)\.[a-z]+\d*\((.*)\)$")
_SPECIAL = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "+inf": math.inf, "true": 1.0, "false": 0.0}


@dataclass(frozen=True)
class StepRecord:
    """One logged step: the step number and its numeric metrics (trainer's names)."""

    step: int
    metrics: dict[str, float] = field(default_factory=dict)


def parse_number(text: str) -> Optional[float]:
    """`'0.047'`, `'nan'`, `'np.float64(0.5)'`, `'True'` → float; anything else → None."""
    s = text.strip()
    wrapped = _NP_WRAP.match(s)
    if wrapped:
        s = wrapped.group(1).strip()
    if s.lower() in _SPECIAL:
        return _SPECIAL[s.lower()]
    try:
        return float(s)
    except ValueError:
        return None


def clean_line(line: str) -> str:
    """Drop ANSI colour codes, carriage-return progress overwrites and Ray's repeat suffix."""
    line = _ANSI.sub("", line)
    line = line.rsplit("\r", 1)[-1] if "\r" in line.rstrip("\r\n") else line
    return _REPEATED.sub("", line.rstrip("\r\n"))


def parse_console_line(line: str) -> Optional[StepRecord]:
    """Parse one console line; None unless it is a verl `step:N - key:value …` record.

    Items that are not `key:number` (a truncated tail, a string value) are skipped.
    """
    text = clean_line(line)
    m = _STEP.search(text)
    if not m:
        return None
    metrics: dict[str, float] = {}
    for item in text[m.end() :].split(" - "):
        key, sep, value = item.strip().rpartition(":")
        if not sep or not key or " " in key:
            continue
        number = parse_number(value)
        if number is not None:
            metrics[key] = number
    return StepRecord(int(m.group(1)), metrics)


def parse_jsonl_line(line: str) -> Optional[StepRecord]:
    """Parse one line of verl's file logger; None for blank, partial or foreign lines.

    Non-numeric values in `data` (strings, lists) are skipped; bools become 0/1.
    """
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), dict):
        return None
    step = obj.get("step")
    if isinstance(step, bool) or not isinstance(step, (int, float)) or step != int(step):
        return None
    metrics = {}
    for key, value in obj["data"].items():
        if isinstance(value, (int, float)):  # bool is an int: True → 1.0
            metrics[str(key)] = float(value)
    return StepRecord(int(step), metrics)


_ERROR_LINE = re.compile(r"^[\w.]*(Error|Exception|Interrupt|Exit)(\([\w.]*\))?:\s*\S")
_RAY_PREFIX = re.compile(r"^\([\w.-]+ pid=\d+(, ip=[\d.]+)?\)\s*")


def last_error_line(lines: Iterable[str]) -> Optional[str]:
    """The last `SomeError: message` line of a log tail (Ray prefix and colours dropped), e.g.
    verl's `RuntimeError: …` before Hydra's closing `Set the environment variable
    HYDRA_FULL_ERROR=1 …` line; None if there is none."""
    found = None
    for line in lines:
        text = _RAY_PREFIX.sub("", clean_line(line).strip())
        if _ERROR_LINE.match(text):
            found = text
    return found


PARSERS = {"console": parse_console_line, "jsonl": parse_jsonl_line}
"""Line parser by metrics source name (the `command` backend's `metrics.source`)."""


def parse_lines(lines: Iterable[str], source: str = "console") -> list[StepRecord]:
    """Every record in `lines`, records of the same step merged (later values win)."""
    parse = PARSERS[source]
    merged: dict[int, dict[str, float]] = {}
    for line in lines:
        rec = parse(line)
        if rec is not None:
            merged.setdefault(rec.step, {}).update(rec.metrics)
    return [StepRecord(s, m) for s, m in merged.items()]


def map_metrics(metrics: Mapping[str, float], metric_map: Mapping[str, str]) -> dict[str, float]:
    """Rename trainer keys to archer-sweep keys; unknown keys pass through unchanged.

    When both a trainer key and its mapped name are present (e.g. verl logs
    `actor/entropy` and a map renames `actor/entropy_loss` to it), the key already
    spelled the archer way wins.
    """
    out: dict[str, float] = {}
    for key, value in metrics.items():
        target = metric_map.get(key, key)
        if target != key and target in metrics:
            out.setdefault(key, value)
            continue
        out[target] = value
    return out
