"""Per-trial overhead of a sweep: W&B through Ray's logging actors (old) vs driver threads (new).

    .venv/bin/python bench/trial_overhead.py [--spec sweeps/entropy.yaml] [--rounds 2]
        [--set search.num_samples=4 ...] [--keep DIR]

Runs `archer-sweep run SPEC` alternately with each path, `--rounds` times each, in one
script run on the same tree: `old` swaps `DriverWandbLoggerCallback` back for Ray's stock
`WandbLoggerCallback` (two Ray actors and a wandb-core per trial), `new` is the product
as is. A Tune callback added to both records, on the driver, when each trial starts, reports
and ends. Per run: wall time of the command, user+sys CPU s of its whole process tree (this
script is the subreaper of Ray's daemons), the trials' first-iteration time
(`time_this_iter_s`: build_trainer + step 1), the delay of its first result on the driver
beyond that (trial start to first result, minus the iteration: the old path blocks the
driver on a queue actor still starting), the gap from a trial's end to the next trial's
start (Tune's bookkeeping, the next trial's Ray worker start-up and its imports), and the
1-minute load average before the run. Then the ratios new/old of the means, and a check that the
trials of the same config reported the same metrics, bit for bit, in every run.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from first_run import PR_SET_CHILD_SUBREAPER, _descends, proc_stats  # bench/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
#: result keys that time things or name the process: not the trial's numbers
NOT_NUMBERS = ("timing_s/", "perf/", "time_", "timestamp", "date", "pid", "hostname", "node_ip", "trial_id")


def child(path: str, timeline: str, argv: list[str]) -> int:
    """The `archer-sweep` command with the `path` W&B callback and a timeline callback."""
    from ray import tune
    from ray.air.integrations.wandb import WandbLoggerCallback

    from archer_sweep.cli.app import main
    from archer_sweep.engine import runner

    class Timeline(tune.Callback):
        def __init__(self):
            self.events: list[tuple[float, str, str]] = []

        def on_trial_start(self, iteration, trials, trial, **info):
            self.events.append((time.time(), "start", trial.trial_id))

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.events.append((time.time(), "result", trial.trial_id))

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.events.append((time.time(), "end", trial.trial_id))

        def on_experiment_end(self, trials, **info):
            Path(timeline).write_text(json.dumps(self.events))

    class RayActorsWandb(WandbLoggerCallback):  # archer-sweep's callback before the change
        def __del__(self):
            try:
                super().__del__()
            except Exception:
                pass

    if path == "old":
        runner.DriverWandbLoggerCallback = RayActorsWandb
    build_parts = runner.build_parts

    def with_timeline(*args, **kwargs):
        parts = build_parts(*args, **kwargs)
        parts.callbacks.append(Timeline())
        return parts

    runner.build_parts = with_timeline
    sys.argv = ["archer-sweep", *argv]
    return main()


def _kind(cmdline: str) -> str:
    if cmdline.startswith("ray::"):
        return cmdline.split()[0]  # a Ray worker's title: its actor class
    if "wandb-core" in cmdline:
        return "wandb-core"
    if "--child" in cmdline:
        return "driver"
    return "ray daemons" if "/ray/" in cmdline else "other"


def tree_cpu(root: int, seen: dict[int, list]) -> None:
    """Add `root`'s descendants to `seen` (pid -> [kind, user+sys s]), keeping the last
    values of those that ended (this script is their subreaper)."""
    for pid, ppid, cpu, entry in proc_stats(root):
        if pid in seen or _descends(ppid, root):
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:  # ended just now: it keeps the kind it had
                cmdline = ""
            kind = _kind(cmdline) if cmdline else seen.get(pid, ["other"])[0]
            if pid in seen and seen[pid][0].startswith("ray::") and not kind.startswith("ray::"):
                kind = seen[pid][0]
            seen[pid] = [kind, cpu]


def _run_tree(cmd: list[str], cwd: Path, log: Path) -> tuple[int, float, dict[str, float]]:
    """Exit status, wall s and user+sys CPU s by process kind of the command's process tree,
    polled from /proc (Ray's raylet does not wait for its workers: no RUSAGE_CHILDREN)."""
    seen: dict[int, list] = {}
    t0 = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            tree_cpu(os.getpid(), seen)
            time.sleep(0.25)
    wall = time.monotonic() - t0
    end = time.monotonic() + 30  # Ray's daemons, handed to this subreaper, end after the driver
    while time.monotonic() < end:
        tree_cpu(os.getpid(), seen)
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                time.sleep(0.25)
        except ChildProcessError:
            break
    by_kind: dict[str, float] = {}
    for kind, cpu in seen.values():
        by_kind[kind] = by_kind.get(kind, 0.0) + cpu
    return proc.returncode, wall, by_kind


def run_once(path: str, name: str, args, work: Path) -> dict:
    timeline = work / f"{name}.timeline.json"
    cmd = [sys.executable, __file__, "--child", path, str(timeline), "run", str(args.spec)]
    cmd += ["--name", name, "--storage", str(work / "results")]
    for s in args.sets:
        cmd += ["--set", s]
    load = os.getloadavg()[0]
    rc, wall, cpu = _run_tree(cmd, work, work / f"{name}.log")
    warm = "building the tiny warm start" in (work / f"{name}.log").read_text()
    if rc != 0:
        raise SystemExit(f"{name}: exit {rc}; see {work / f'{name}.log'}")
    return {
        "path": path,
        "name": name,
        "wall": wall,
        "cpu": sum(cpu.values()),
        "cpu_by_kind": cpu,
        "warm_start_built": warm,
        "load": load,
        **trial_times(json.loads(timeline.read_text()), work / "results" / name),
    }


def trial_times(events: list, sweep_dir: Path) -> dict:
    starts, firsts, ends = {}, {}, {}
    for t, kind, trial in events:
        if kind == "start":
            starts[trial] = t
        elif kind == "result":
            firsts.setdefault(trial, t)
        else:
            ends[trial] = t
    first_iter, delay, numbers = [], [], {}
    for trial in starts:
        rows = [json.loads(line) for line in (sweep_dir / trial / "result.json").read_text().splitlines()]
        first_iter.append(rows[0]["time_this_iter_s"])
        delay.append(firsts[trial] - rows[0]["time_this_iter_s"] - starts[trial])
        key = json.dumps(rows[0]["config"], sort_keys=True)
        numbers[key] = [{k: v for k, v in r.items() if not k.startswith(NOT_NUMBERS)} for r in rows]
    # each start after the first slots opened: the time since the latest trial end before it
    gaps = []
    for s in sorted(starts.values()):
        before = [e for e in ends.values() if e <= s]
        if before:
            gaps.append(s - max(before))
    return {"first_iter": first_iter, "delay": delay, "gaps": gaps, "numbers": numbers}


def _mean(xs) -> float:
    return statistics.fmean(xs) if xs else float("nan")


def report(runs: list[dict]) -> str:
    lines = [
        f"{'run':<8} {'wall s':>7} {'cpu s':>7} {'load':>5} {'1st iter s':>11} {'1st delay s':>11} {'gap s':>6}"
    ]
    for r in runs:
        lines.append(
            f"{r['name']:<8} {r['wall']:7.1f} {r['cpu']:7.1f} {r['load']:5.2f} "
            f"{_mean(r['first_iter']):11.2f} {_mean(r['delay']):11.2f} {_mean(r['gaps']):6.2f}"
        )
    lines.append("")
    for label, key in (("wall", "wall"), ("cpu", "cpu")):
        old = _mean([r[key] for r in runs if r["path"] == "old"])
        new = _mean([r[key] for r in runs if r["path"] == "new"])
        lines.append(f"{label:<10} old {old:7.1f}  new {new:7.1f}  new/old {new / old:.2f}")
    for label, key in (("1st iter", "first_iter"), ("delay", "delay"), ("gap", "gaps")):
        old = _mean([x for r in runs if r["path"] == "old" for x in r[key]])
        new = _mean([x for r in runs if r["path"] == "new" for x in r[key]])
        lines.append(f"{label:<10} old {old:7.2f}  new {new:7.2f}  new/old {new / old:.2f}")
    lines.append("")
    lines.append("cpu s by process, mean per run:")
    kinds = sorted({k for r in runs for k in r["cpu_by_kind"]})
    for path in ("old", "new"):
        mine = [r["cpu_by_kind"] for r in runs if r["path"] == path]
        parts = [f"{k} {_mean([c.get(k, 0.0) for c in mine]):.1f}" for k in kinds]
        lines.append(f"  {path}: " + ", ".join(parts))
    built = [r["name"] for r in runs if r["warm_start_built"]]
    if built:
        lines.append(f"NOTE: {', '.join(built)} built the warm start (its cache key changed mid-bench)")
    return "\n".join(lines)


def same_numbers(runs: list[dict]) -> str:
    seen: dict[str, tuple[str, list]] = {}
    compared = 0
    for r in runs:
        for config, rows in r["numbers"].items():
            if config in seen:
                compared += 1
                if rows != seen[config][1]:
                    return f"DIFFERENT: config {config} in {seen[config][0]} and {r['name']}"
            else:
                seen[config] = (r["name"], rows)
    return f"same metrics bit for bit: {compared} trial(s) of {len(seen)} config(s) seen in more than one run"


def prepare(spec: Path, sets: list[str]) -> None:
    """Build the warm start (if not cached) before any timed run."""
    code = (
        "import sys; from archer_sweep.spec.load import load_spec; "
        "from archer_sweep.spec.space import base_config; "
        "from trainable.trainer import prepare_backend; "
        "prepare_backend(base_config(load_spec(sys.argv[1], sys.argv[2:])))"
    )
    subprocess.run([sys.executable, "-c", code, str(spec), *sets], check=True)


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        return child(sys.argv[2], sys.argv[3], sys.argv[4:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "sweeps" / "entropy.yaml")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each path, alternating")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="passed to `run --set`")
    parser.add_argument("--keep", type=Path, default=None, help="keep the results here")
    args = parser.parse_args()
    args.spec = args.spec.resolve()
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # Ray's daemons stay ours
    work = args.keep or Path(tempfile.mkdtemp(prefix="archer-trial-overhead-"))
    work.mkdir(parents=True, exist_ok=True)
    prepare(args.spec, args.sets)
    runs = []
    for i in range(args.rounds):
        for path in ("old", "new") if i % 2 == 0 else ("new", "old"):
            runs.append(run_once(path, f"{path}{i}", args, work))
            print(f"{runs[-1]['name']}: {runs[-1]['wall']:.1f} s (load {runs[-1]['load']:.2f})", flush=True)
    print(report(runs))
    print(same_numbers(runs))
    print(f"results: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
