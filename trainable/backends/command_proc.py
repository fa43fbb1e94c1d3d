"""Process plumbing of the `command` backend: launch in a new session, read output, end all.

Run as a script (`python command_proc.py SID OWNER GRACE TMPDIR|- SINCE|-`) it is the trial's
watchdog: it ends the trainer's session if the Ray worker that owns it dies first, and when
the session is empty (however it ended) removes what the session left behind: the shared
memory segments in /dev/shm its processes had mapped or open (vLLM / Python shared memory
leaves ~400 MB of `psm_*` even on a clean exit) and the trial's TMPDIR. Only what this
session's processes held is removed, never another trial's. Stdlib only, so it starts fast
and needs no import path.

The trainer starts as the leader of a new session (`start_new_session=True`), so its
process group id and session id are its pid. Ending a trial signals every process of
that session, not only the group: a Python driver below a wrapper script may move
itself (and the Ray daemons it starts) into a new process group with `setpgrp`, but
nothing short of `setsid` leaves the session. Linux `/proc` is read to find them.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Optional

log = logging.getLogger(__name__)


def _stat_fields(pid: int) -> Optional[tuple[str, int, int]]:
    """(state, pgrp, session) of a pid from /proc/<pid>/stat; None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = raw[raw.rfind(")") + 2 :].split()  # the command name may contain spaces and ')'
    return rest[0], int(rest[2]), int(rest[3])


def live_processes(*, pgid: Optional[int] = None, sid: Optional[int] = None) -> list[int]:
    """Pids (zombies excluded) whose process group is `pgid` or whose session is `sid`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is None or fields[0] in ("Z", "X"):
            continue
        if (pgid is not None and fields[1] == pgid) or (sid is not None and fields[2] == sid):
            found.append(int(entry))
    return found


def _signal_session(sid: int, sig: int) -> int:
    """Send `sig` to the session's process groups and members; return how many were alive."""
    pids = live_processes(pgid=sid, sid=sid)
    groups = {sid}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            groups.add(fields[1])
    for group in groups:
        try:
            os.killpg(group, sig)
        except (ProcessLookupError, PermissionError):
            pass
    for pid in pids:  # members of groups whose leader left the session
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    return len(pids)


#: how long end_session_id waits for SIGKILLed processes to be gone
_KILL_WAIT_S = 5.0


def end_session_id(sid: int, grace_s: float, reap: Callable[[], object] = lambda: None) -> None:
    """SIGTERM every process of session `sid`, SIGKILL what is left after `grace_s`.
    `reap` collects the leader's exit status (our child), or it stays a zombie member."""
    if not _signal_session(sid, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        reap()
        if not live_processes(pgid=sid, sid=sid):
            return
        time.sleep(0.05)
    left = _signal_session(sid, signal.SIGKILL)
    log.warning(
        "trainer session %d: %d process(es) ignored SIGTERM for %.0fs; sent SIGKILL", sid, left, grace_s
    )
    # A SIGKILLed process stays listed until the kernel has torn it down (longer on a loaded
    # machine), and a child forked while we signalled missed the signal: wait until the session is
    # empty, killing late arrivals, so that callers see no process left when this returns.
    deadline = time.monotonic() + _KILL_WAIT_S
    while time.monotonic() < deadline:
        reap()
        if not _signal_session(sid, signal.SIGKILL):
            return
        time.sleep(0.02)


def end_session(proc: subprocess.Popen, grace_s: float) -> Optional[int]:
    """End `proc`'s whole session (see `end_session_id`); return the main process's exit code.
    Safe to call when everything already exited."""
    end_session_id(proc.pid, grace_s, proc.poll)
    try:
        return proc.wait(timeout=max(grace_s, 5.0))
    except subprocess.TimeoutExpired:
        return proc.poll()


def alive(pid: int) -> bool:
    """The process exists and is no zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


SHM_DIR = "/dev/shm"


def shm_held(pids: list[int], shm_dir: str = SHM_DIR, maps: bool = True) -> set[str]:
    """Paths under `shm_dir` that the processes have open (and, with `maps`, mapped);
    deleted ones excluded."""
    prefix = shm_dir.rstrip("/") + "/"
    held: set[str] = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith(prefix) and not target.endswith(" (deleted)"):
                    held.add(target)
            if maps:
                held |= _mapped(pid, prefix)
        except OSError:
            continue
    return held


def _mapped(pid: int, prefix: str) -> set[str]:
    out = set()
    with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith(prefix) and not parts[5].endswith("(deleted)\n"):
                out.add(parts[5].rstrip("\n"))
    return out


def orphan_semaphores(since: Optional[float], shm_dir: str = SHM_DIR) -> set[str]:
    """The Python multiprocessing semaphores (`sem.mp-*`) created since `since` (the trainer's
    launch, epoch seconds) that no process on the machine holds any more: one leaks per verl
    run, created and closed within a second (too fast to be seen held), and an unheld named
    semaphore is in use by no one."""
    if since is None:
        return set()
    sems = set()
    for name in _listing(shm_dir):
        path = f"{shm_dir}/{name}"
        try:
            if name.startswith("sem.mp-") and os.stat(path).st_ctime >= since:
                sems.add(path)
        except OSError:
            continue
    if not sems:
        return set()
    pids = [int(e) for e in os.listdir("/proc") if e.isdigit()]
    return sems - shm_held(pids, shm_dir)


def _listing(shm_dir: str = SHM_DIR) -> set[str]:
    try:
        return set(os.listdir(shm_dir))
    except OSError:
        return set()


def remove_tree(path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def remove_leftovers(shm: set[str], tmpdir: Optional[str]) -> None:
    """Remove the session's shared memory segments still present, and its TMPDIR."""
    gone = 0
    for path in sorted(shm):
        try:
            os.unlink(path)
            gone += 1
        except OSError:
            pass
    if tmpdir:
        remove_tree(tmpdir)
    if gone:
        log.info("removed %d shared memory segment(s) the trainer left in %s", gone, SHM_DIR)


def watch(
    sid: int,
    owner: int,
    grace_s: float,
    tmpdir: Optional[str] = None,
    since: Optional[float] = None,
    poll_s: float = 0.5,
) -> None:
    """Until session `sid` is empty: if process `owner` (the Ray worker that launched the
    trainer) dies without ending it — driver SIGKILLed, worker force-killed — end it. Each
    poll note the /dev/shm segments the session holds; once it is empty, remove them."""
    shm: set[str] = set()
    scans, names = 0, _listing()
    while pids := live_processes(pgid=sid, sid=sid):
        # open files each poll; mappings every 2 s, and at once when a new entry appears
        now = _listing()
        shm |= shm_held(pids, maps=scans % 4 == 0 or bool(now - names))
        scans, names = scans + 1, now
        if not alive(owner):
            log.warning("owner %d of trainer session %d is gone; ending the session", owner, sid)
            shm |= shm_held(live_processes(pgid=sid, sid=sid))
            end_session_id(sid, grace_s)
            break
        time.sleep(poll_s)
    remove_leftovers(shm | orphan_semaphores(since), tmpdir)


def start_watchdog(sid: int, grace_s: float, tmpdir=None, since: Optional[float] = None) -> int:
    """Start `watch` for this process as a detached grandchild; return its pid.

    Detached because Ray kills a worker's direct children when the worker dies; a process
    reparented to init (own session) survives to end the trainer's session.
    """
    starter = subprocess.Popen(
        [
            sys.executable,
            os.path.abspath(__file__),
            str(sid),
            str(os.getpid()),
            str(grace_s),
            str(tmpdir or "-"),
            str(since if since is not None else "-"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        start_new_session=True,
        close_fds=True,
    )
    pid = int(starter.stdout.readline() or 0)
    starter.stdout.close()
    starter.wait()
    return pid


class OutputPump:
    """Copies the trainer's merged stdout/stderr to a log file, keeps the last lines,
    and hands each complete line to `on_line` (from a daemon thread)."""

    def __init__(
        self, stream, log_path: Path, tail_lines: int, on_line: Optional[Callable[[str], None]] = None
    ):
        self.tail: deque[str] = deque(maxlen=tail_lines)
        self._stream, self._log_path, self._on_line = stream, log_path, on_line
        self._thread = threading.Thread(target=self._run, name="trainer-output", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with open(self._log_path, "ab") as sink:
            for raw in iter(self._stream.readline, b""):
                sink.write(raw)
                sink.flush()
                line = raw.decode("utf-8", errors="replace")
                self.tail.append(line.rstrip("\r\n"))
                # A final line without newline was cut off mid-write: never parse it.
                if self._on_line is not None and raw.endswith(b"\n"):
                    self._on_line(line)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


class FileTail:
    """Complete new lines of a growing file (verl's JSONL logger), read on demand.

    A file replaced (another inode) or truncated (shorter than what was read: verl opens it
    with `wb` when `fit()` starts) is read again from its start."""

    def __init__(self, path: Path):
        self.path, self._offset, self._partial = path, 0, b""
        self._inode: Optional[int] = None

    def read_lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                if st.st_ino != self._inode or st.st_size < self._offset:
                    self._inode, self._offset, self._partial = st.st_ino, 0, b""
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        return [line.decode("utf-8", errors="replace") for line in lines]


def spawn(argv: list[str], cwd: str, env: dict[str, str]) -> subprocess.Popen:
    """Start the trainer as a new session leader; argv is a list, never a shell string."""
    return subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        shell=False,
    )


def drain(q: queue.Queue) -> list:
    items = []
    while True:
        try:
            items.append(q.get_nowait())
        except queue.Empty:
            return items


if __name__ == "__main__":
    if os.fork() > 0:  # the starter exits at once; the watchdog is reparented
        os._exit(0)
    print(os.getpid(), flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    logging.basicConfig(level=logging.WARNING, format="archer-sweep watchdog: %(message)s")
    tmp, since = (None if a == "-" else a for a in (sys.argv[4:6] + ["-", "-"])[:2])
    watch(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), tmp, float(since) if since else None)
