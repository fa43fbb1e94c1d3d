"""Shared pieces of the reliability suite: spec text, result readers, process checks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import yaml

REPO = Path(__file__).resolve().parents[2]
FAULTY = "tests.reliability.faulty_backend:FaultyTrainer"
OBJECTIVE = "critic/score/mean"


def spec_data(
    tmp: Path,
    name: str,
    coeffs: list[float],
    *,
    steps: int = 8,
    sleep_s: float = 0.02,
    faults: Optional[list[dict]] = None,
    concurrent: int = 2,
    **sections: Any,
) -> dict:
    """A deterministic sweep on the faulty backend: one trial per entropy_coeff in `coeffs`.

    Every trial's params come from `points_to_evaluate`, so the set of trials (and, the
    backend being seeded, their metrics and verdicts) does not depend on sampler state.
    """
    data = {
        "name": name,
        "trainable": {
            "backend": FAULTY,
            "config": {
                "trainer": {"total_steps": steps, "seed": 0},
                "fake": {"sleep_s": sleep_s, "noise": 0.0},
                "faults": faults or [],
            },
        },
        "search": {
            "metric": OBJECTIVE,
            "mode": "max",
            "num_samples": len(coeffs),
            "max_concurrent": concurrent,
            "sampler": {"type": "tpe", "seed": 0},
            "space": {"algorithm.entropy_coeff": {"type": "choice", "values": list(coeffs)}},
            "points_to_evaluate": [{"algorithm.entropy_coeff": c} for c in coeffs],
        },
        "criteria": [
            {"name": "entropy_high", "metric": "actor/entropy", "op": ">", "value": 5.5, "after_step": 2}
        ],
        "storage": {"path": str(tmp / "results")},
        "tracking": {"wandb": {"mode": "disabled"}},
        "ray": {"num_cpus": 2},
        "checkpoint": {"frequency": 2},
    }
    data.update(sections)
    return data


def write_spec(tmp: Path, data: dict, file: str = "spec.yaml") -> Path:
    path = tmp / file
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def verdict_rows(sweep_dir: Path) -> list[dict]:
    path = Path(sweep_dir) / "verdicts.jsonl"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def by_coeff(rows: list[dict]) -> dict[float, dict]:
    return {r["params"]["algorithm.entropy_coeff"]: r for r in rows}


def study_trials(sweep_dir: Path, name: str) -> list:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{sweep_dir}/study.db")
    return study.get_trials(deepcopy=False)


def last_reports(sweep_dir: Path, trial_id: str) -> list[dict]:
    path = Path(sweep_dir) / trial_id / "result.json"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


# -- processes ---------------------------------------------------------------------------
def cli_env(**extra: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def start_cli(*args: str, log: Path, **env: str) -> subprocess.Popen:
    """`archer-sweep ARGS` as the leader of a new session, output to `log`."""
    out = open(log, "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "archer_sweep.cli", *args],
        cwd=REPO,
        env=cli_env(**env),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def start_killer(point: str, nth: int, *args: str, log: Path, after_verdicts: int = 0, sweep_dir=None):
    """`archer-sweep ARGS` that SIGKILLs itself the `nth` time it reaches `point`
    (tests/reliability/killer.py), counting only once `sweep_dir` has `after_verdicts` verdicts."""
    env = {}
    if after_verdicts:
        env = {
            "KILLER_VERDICTS_FILE": str(Path(sweep_dir) / "verdicts.jsonl"),
            "KILLER_AFTER_VERDICTS": str(after_verdicts),
        }
    out = open(log, "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.killer", point, str(nth), *args],
        cwd=REPO,
        env=cli_env(**env),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def sigkill_when(proc: subprocess.Popen, reached, log: Path, what: str, timeout: float) -> None:
    """Wait until `reached()` while `proc` (a driver from `start_cli`) runs, failing with its
    log's tail if it ends first or `timeout` s pass; then SIGKILL it and reap it (the rest of
    its session is the caller's: `kill_session`)."""
    deadline = time.monotonic() + timeout
    while not reached():
        assert proc.poll() is None, f"run ended before {what}: " + log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{what} never reached"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def session_pids(sid: int) -> list[int]:
    """Live (non-zombie) processes whose session id is `sid`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[3]) == sid:
            pids.append(int(entry))
    return pids


def wait_gone(sid: int, timeout: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := session_pids(sid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def kill_session(sid: int) -> None:
    try:
        os.killpg(sid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def descendants(root: int) -> list[int]:
    """Live processes below `root` in the process tree."""
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            if fields[0] != "Z":
                parent[int(entry)] = int(fields[1])
    found, frontier = [], [root]
    while frontier:
        kids = [p for p, pp in parent.items() if pp in frontier]
        found += kids
        frontier = kids
    return found


def assert_no_ray_left(root: int, timeout: float = 15.0) -> None:
    """No raylet, GCS or `ray::` worker remains below `root` (after ray.shutdown)."""
    deadline = time.monotonic() + timeout
    while True:
        left = [
            c for c in command_lines(descendants(root)) if "ray::" in c or "raylet" in c or "gcs_server" in c
        ]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert left == [], left


def run_to_end(*args: str, log: Path, timeout: float) -> int:
    """Run `archer-sweep ARGS` to its end; its exit code. A driver that exits must leave no Ray
    or trial process behind (asserted)."""
    proc = start_cli(*args, log=log)
    try:
        code = proc.wait(timeout=timeout)
        left = command_lines(wait_gone(proc.pid, timeout=30))
        assert left == [], left
        return code
    finally:
        kill_session(proc.pid)
        proc.wait()


def command_lines(pids: list[int]) -> list[str]:
    out = []
    for pid in pids:
        try:
            out.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            pass
    return out
