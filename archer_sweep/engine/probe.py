"""`probe`: run a spec's trainer for a couple of steps before a sweep spends GPU-hours on it.

One trainer, no Ray Tune: the trial config every trial starts from (the spec's config and its
first point), `steps` steps, then its process session is ended while it still runs. What it
finds is one `ProbeReport`: rows for the table and one line per problem:
- overrides accepted: the trainer reached its first step (Hydra and the trainer's own config
  checks passed), else its last error line;
- every watched key (rule metrics, the objective) logged at the first step, else which rules
  can never judge;
- time to the first step and per step after it;
- the session kill: processes in the trainer's session before and after;
- leftovers: /dev/shm entries that appeared during the probe and are still there, held by
  no process (another program's live segments are not the trainer's), and the trial's TMPDIR.
With `tiny`, the model and data are the CPU-verl kit's tiny Qwen3 and its rows
(`.venv-verl/tiny-qwen3`, built by scripts/verl-cpu-setup.sh), so the probe runs on a CPU box.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from archer_sweep.errors import UserError
from archer_sweep.spec.space import apply_params, base_config
from trainable.backends.command_proc import SHM_DIR, live_processes, shm_held

log = logging.getLogger(__name__)

TINY_DIR = Path(".venv-verl") / "tiny-qwen3"
TINY_KEYS = {
    "model.path": "model",
    "data.train_files": "train.parquet",
    "data.val_files": "test.parquet",
}
"""Dotted trainable-config key → file of the kit's tiny stand-in (`--tiny`)."""
PERIODIC = ("val-", "val/")
"""Keys logged every `trainer.test_freq` steps only: not expected at the first step."""


@dataclass
class ProbeReport:
    rows: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    log_path: Optional[str] = None

    def add(self, what: str, value: str, problem: Optional[str] = None) -> None:
        self.rows.append((what, value))
        if problem:
            self.problems.append(problem)


def probe_config(spec: Any, tiny: bool, steps: int, root: Path) -> dict:
    """The trial config of the probe: the spec's first point, `steps` + 1 steps (it is ended
    while running), with `tiny` the kit's tiny Qwen3 and rows."""
    if spec.trainable.backend != "command":
        raise UserError(
            f"probe: trainable.backend is {spec.trainable.backend!r}; probe runs external "
            "trainers (backend: command)"
        )
    first = dict(spec.search.points_to_evaluate[0]) if spec.search.points_to_evaluate else {}
    config = apply_params(base_config(spec), first)
    config["total_steps"] = steps + 1
    if tiny:
        tiny_dir = (root / TINY_DIR).resolve()
        if not (tiny_dir / "train.parquet").exists():
            raise UserError(
                f"probe --tiny: no tiny stand-in at {tiny_dir} (expected: bash scripts/verl-cpu-setup.sh)"
            )
        config = apply_params(config, {k: str(tiny_dir / name) for k, name in TINY_KEYS.items()})
    return config


def watched(spec: Any) -> dict[str, str]:
    return {**{r.name: r.metric for r in spec.rules()}, "search.metric": spec.search.metric}


def unheld(names: set[str]) -> set[str]:
    """Of new /dev/shm entries, those no live process holds: the trainer's processes are gone,
    so an entry still held belongs to another program on the machine (a database, another
    trial), not to what the probe left behind."""
    pids = [int(e) for e in os.listdir("/proc") if e.isdigit()]
    held = {Path(p).name for p in shm_held(pids)}
    return {n for n in names if n not in held}


def _shm() -> set[str]:
    try:
        return set(os.listdir(SHM_DIR))
    except OSError:
        return set()


def run_probe(spec: Any, trial_dir: Path, tiny: bool = False, steps: int = 2) -> ProbeReport:
    from trainable.trainer import build_trainer

    trial_dir.mkdir(parents=True, exist_ok=True)
    config = probe_config(spec, tiny, steps, Path(os.getcwd()))
    report = ProbeReport()
    trainer = build_trainer(config)
    trainer.attach_trial({"id": "probe", "dir": str(trial_dir), "experiment": f"{spec.name}-probe"})
    report.log_path = str(trainer.log_path)
    shm_before = _shm()
    started = time.monotonic()
    times: list[float] = []
    error: Optional[str] = None
    try:
        for _ in range(steps):
            trainer.step()
            times.append(time.monotonic())
    except Exception as exc:  # the trainer's own failure is what the probe reports
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        error = lines[-1] if lines else type(exc).__name__
    sid = trainer.session_id
    before = len(live_processes(pgid=sid, sid=sid)) if sid else 0
    tmpdir = getattr(trainer, "_tmpdir", None)
    trainer.close()
    after = len(live_processes(pgid=sid, sid=sid)) if sid else 0
    _accepted(report, times, error)
    _keys(report, spec, trainer.logged_keys if times else None)
    _timing(report, started, times, steps)
    report.add(
        "session kill",
        f"{before} processes running, {after} left",
        f"{after} trainer processes survived the end of its session" if after else None,
    )
    time.sleep(0.5)  # the watchdog removes what the session held once it is empty
    left = sorted(unheld(_shm() - shm_before))
    if tmpdir is not None and Path(tmpdir).exists():
        left.append(str(tmpdir))
    report.add(
        "leftovers",
        ", ".join(left[:5]) + (f" (+{len(left) - 5})" if len(left) > 5 else "") if left else "none",
        f"left behind: {', '.join(left)}" if left else None,
    )
    return report


def _accepted(report: ProbeReport, times: list[float], error: Optional[str]) -> None:
    if times:
        report.add("overrides accepted", "yes (the trainer reached step 1)")
        if error:
            report.problems.append(f"the trainer failed after step {len(times)}: {error}")
        return
    report.add("overrides accepted", "no step reached", f"the trainer never reached step 1: {error}")


def _keys(report: ProbeReport, spec: Any, logged: Optional[set[str]]) -> None:
    if logged is None:
        report.add("watched metrics", "not checked (no step)")
        return
    missing: dict[str, list[str]] = {}
    for rule, key in watched(spec).items():
        if key not in logged and not key.startswith(PERIODIC):
            missing.setdefault(key, []).append(rule)
    seen = sorted({k for k in watched(spec).values() if k in logged})
    report.add("watched metrics seen", ", ".join(seen) or "none")
    for key, rules in sorted(missing.items()):
        names = ", ".join(rules)
        report.add(
            f"never judgeable: {key}",
            names,
            f"`{key}` is never logged by the trainer: {names} can never judge (map a logged key "
            "with metric_map, or drop the rule)",
        )


def _timing(report: ProbeReport, started: float, times: list[float], steps: int) -> None:
    if not times:
        report.add("time to first step", f"none within {time.monotonic() - started:.0f} s")
        return
    report.add("time to first step", f"{times[0] - started:.1f} s")
    gaps = [b - a for a, b in zip(times, times[1:])]
    report.add("step time", f"{sum(gaps) / len(gaps):.2f} s" if gaps else f"(one step of {steps})")
