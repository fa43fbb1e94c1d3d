"""The README's main command as a new user runs it: fresh clone, empty pip and warm-start caches.

    .venv/bin/python bench/first_run.py [--commit A --commit B ...] [--keep]
        [--venv PATH] [--build-warmstart] [--set search.num_samples=2 ...]

Each commit (default HEAD) is cloned into a temp dir and run in turn, on the same machine
in one run of the script: `python3 -m venv .venv && pip install torch==2.13.0 -e .`
with `PIP_CACHE_DIR` an empty dir, then `archer-sweep run sweeps/entropy.yaml` with
`XDG_CACHE_HOME` an empty dir (so no cached warm start). Wall time is split into install,
start-up (imports, spec), warm start and sweep by the command's own log lines, timed as
they arrive: the warm start runs from "building the tiny warm start" to its last "warm
start SFT step N/N" line (every commit since the driver builds it logs both), the sweep
from there to the exit. CPU use per phase: the whole machine's from /proc/stat (honest
only on an idle machine) and the command's own, user+sys of its process tree / wall /
cores (this script is the subreaper of Ray's daemons, so every descendant is counted).

Since the default warm start ships with the package, a first run loads it (start-up
absorbs the fraction of a second); `--build-warmstart` makes every commit train it as
before (`ARCHER_SWEEP_WARMSTART=build`).

`--venv` skips the install and runs the clone's code with an existing environment (a
smoke run: add `--set` overrides for a small sweep); `--keep` leaves the clones.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTALL = "python3 -m venv .venv && .venv/bin/pip install -q torch==2.13.0 -e ."
WARM_BEGIN = re.compile(r"building the tiny warm start")
WARM_END = re.compile(r"warm start SFT step (\d+)/\1\b")
PHASES = ("install", "start-up", "warm start", "sweep")
PR_SET_CHILD_SUBREAPER = 36


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine from /proc/stat's first line."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def proc_stats(root: int):
    """(pid, parent pid, user+sys s, its /proc dir) of every process but `root`."""
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == root:
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        after = stat.rsplit(")", 1)[1].split()  # the name may hold spaces
        yield int(entry.name), int(after[1]), (float(after[11]) + float(after[12])) / tick, entry


def tree_cpu_s(root: int, seen: dict[int, float]) -> float:
    """user+sys seconds of `root`'s descendants (this script is their subreaper), living or
    seen before; `seen` keeps each pid's last value so a process that ended still counts."""
    for pid, ppid, cpu, _ in proc_stats(root):
        if pid in seen or _descends(ppid, root):
            seen[pid] = cpu
    return sum(seen.values())


def _descends(pid: int, root: int) -> bool:
    for _ in range(64):
        if pid == root:
            return True
        if pid <= 1:
            return False
        try:
            pid = int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            return False
    return False


@dataclass
class Phase:
    wall: float = 0.0
    machine_busy: float = float("nan")  # share of all cores busy, whole machine
    own_cpu: float = 0.0  # user+sys seconds of the command's processes


@dataclass
class Result:
    commit: str
    rc: int = 0
    phases: dict[str, Phase] = field(default_factory=lambda: {p: Phase() for p in PHASES})
    rusage_cpu: float = 0.0  # user+sys of every reaped descendant (RUSAGE_CHILDREN delta)
    tail: list[str] = field(default_factory=list)


class Sampler:
    """Marks phase boundaries: wall clock, /proc/stat and the process tree's CPU at each."""

    def __init__(self):
        self.seen: dict[int, float] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.marks: list[tuple[str, float, tuple[float, float], float]] = []
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:  # keeps each pid's latest CPU before it ends
        while not self.stop.wait(0.25):
            with self.lock:
                tree_cpu_s(os.getpid(), self.seen)

    def mark(self, name: str) -> None:
        with self.lock:
            own = tree_cpu_s(os.getpid(), self.seen)
        self.marks.append((name, time.perf_counter(), cpu_times(), own))

    def phases(self, cores: int) -> dict[str, Phase]:
        out = {p: Phase() for p in PHASES}
        for (name, t0, (b0, n0), c0), (_, t1, (b1, n1), c1) in zip(self.marks, self.marks[1:]):
            busy = (b1 - b0) / (n1 - n0) if n1 > n0 else float("nan")
            out[name] = Phase(wall=t1 - t0, machine_busy=busy, own_cpu=c1 - c0)
        return out


def _shell(cmd: str, cwd: Path, env: dict) -> int:
    return subprocess.run(["bash", "-c", cmd], cwd=cwd, env=env).returncode


def measure(commit: str, args, work: Path) -> Result:
    src = work / f"clone-{commit[:12]}"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(src)], check=True)
    subprocess.run(["git", "-C", str(src), "checkout", "--quiet", commit], check=True)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ARCHER_SWEEP_", "VIRTUAL_ENV", "PYTHON"))
    }
    env.update(
        PIP_CACHE_DIR=str(work / f"pip-{commit[:12]}"), XDG_CACHE_HOME=str(work / f"xdg-{commit[:12]}")
    )
    env["PYTHONUNBUFFERED"] = "1"  # lines arrive when written: they time the phases
    if args.build_warmstart:  # commits before the shipped warm start ignore it (they always build)
        env["ARCHER_SWEEP_WARMSTART"] = "build"
    result = Result(commit)
    sampler = Sampler()
    before = _children_cpu()
    sampler.mark("install")
    if args.venv:
        run = [str(Path(args.venv).resolve() / "bin" / "python"), "-m", "archer_sweep.cli"]
        env["PYTHONPATH"] = str(src)
    else:
        result.rc = _shell(INSTALL, src, env)
        run = [str(src / ".venv" / "bin" / "archer-sweep")]
    sampler.mark("start-up")
    if result.rc == 0:
        cmd = [*run, "run", "sweeps/entropy.yaml", *(x for s in args.sets for x in ("--set", s))]
        result.rc = _follow(cmd, src, env, sampler, result, src.parent / f"run-{commit[:9]}.log")
    sampler.mark("end")
    _reap()
    sampler.stop.set()
    result.phases = sampler.phases(os.cpu_count() or 1)
    result.rusage_cpu = _children_cpu() - before
    if not args.keep:
        shutil.rmtree(src, ignore_errors=True)
    return result


def _follow(cmd: list[str], cwd: Path, env: dict, sampler: Sampler, result: Result, log: Path) -> int:
    """Run the command, stamp the phase boundaries as its lines arrive, keep its tail (and
    its whole output in `log`, beside the clone: kept with --keep)."""
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    phase = "start-up"
    out = log.open("w", encoding="utf-8")
    for line in proc.stdout:
        out.write(line)
        result.tail = (result.tail + [line.rstrip()])[-15:]
        if phase == "start-up" and WARM_BEGIN.search(line):
            sampler.mark(phase := "warm start")
        elif phase != "sweep" and (WARM_END.search(line) or re.search(r"\] started ", line)):
            if phase == "start-up":
                sampler.mark("warm start")  # cached or absent: a warm start of zero length
            sampler.mark(phase := "sweep")
    out.close()
    return proc.wait()


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _reap(timeout: float = 30.0) -> None:
    """Wait for the daemons handed to this subreaper (Ray's), so their rusage counts."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.2)


def _resolve(commit: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", commit], check=True, capture_output=True, text=True
    ).stdout.strip()


def table(results: list[Result], cores: int) -> str:
    head = ["commit", "rc", *PHASES, "total", "machine busy", "own CPU / cores", "own (rusage)"]
    rows = []
    for r in results:
        ph = r.phases
        wall = sum(p.wall for p in ph.values())
        run = [ph[p] for p in ("warm start", "sweep")]
        run_wall = sum(p.wall for p in run) or float("nan")
        busy = sum(p.machine_busy * p.wall for p in run) / run_wall
        own = sum(p.own_cpu for p in run) / run_wall / cores
        rows.append(
            [r.commit[:9], str(r.rc), *(f"{ph[p].wall:.0f} s" for p in PHASES), f"{wall:.0f} s"]
            + [f"{busy:.0%}", f"{own:.0%}", f"{r.rusage_cpu / wall / cores:.0%}"]
        )
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    lines = ["  ".join(x.ljust(w) for x, w in zip(row, widths)) for row in [head, *rows]]
    lines.append("busy/own CPU: over warm start + sweep; rusage: over the whole command, install included")
    if len(results) > 1:
        base = results[0]
        for r in results[1:]:
            ratios = []
            for p in (*PHASES, "total"):
                a = sum(x.wall for x in base.phases.values()) if p == "total" else base.phases[p].wall
                b = sum(x.wall for x in r.phases.values()) if p == "total" else r.phases[p].wall
                ratios.append(f"{p} {b / a:.2f}" if a > 0 else f"{p} -")
            lines.append(f"{r.commit[:9]} / {base.commit[:9]}: " + ", ".join(ratios))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commit", action="append", default=None, help="repeatable; default HEAD")
    parser.add_argument("--keep", action="store_true", help="keep the clones (and their results)")
    parser.add_argument("--venv", default=None, help="use this environment instead of installing")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="passed to `run --set`")
    parser.add_argument(
        "--build-warmstart",
        action="store_true",
        help="ARCHER_SWEEP_WARMSTART=build: train the warm start instead of loading the shipped one",
    )
    args = parser.parse_args()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # Ray's daemonised processes stay ours
    cores = len(os.sched_getaffinity(0))
    work = Path(tempfile.mkdtemp(prefix="archer-first-run-"))
    results = []
    try:
        for commit in args.commit or ["HEAD"]:
            sha = _resolve(commit)
            print(f"== {sha[:9]}: fresh clone in {work}, load {os.getloadavg()[0]:.1f}", flush=True)
            results.append(measure(sha, args, work))
            if results[-1].rc:
                print("\n".join(results[-1].tail), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{cores} cores; load average now {os.getloadavg()[0]:.1f}")
    print(table(results, cores))
    return max(r.rc for r in results)


if __name__ == "__main__":
    sys.exit(main())
