"""A Ray cluster of several nodes on this one machine, for tests: each node is one
`ray start --block` (what a user runs on each machine), started by the test itself.

Why each piece:
- Every node is the leader of its own session, so every process of that node (GCS,
  raylet, agents, the trial workers the raylet spawns, which get process groups of their
  own) is found by session id and ended by pid at the end, even when the test failed.
  Never `ray stop`: it ends every Ray on the machine, other people's test runs included.
  Should the test process itself be killed, each `ray start` gets SIGTERM (parent-death
  signal) and ends its node.
- Every node has its own `--temp-dir`: nodes sharing one would share socket paths, and the
  second raylet fails to bind its object store socket. The head's temp dir also keeps its
  `ray_current_cluster` file away from `/tmp/ray`, where a plain `ray.init()` elsewhere on
  the machine would find this cluster and join it.
- Every node has its own loopback address (127.0.0.2, .3, …), so Ray's own per-result
  `node_ip` says which node a report came from. (127.0.0.1 itself Ray swaps for the
  machine's outward address.) Every port is chosen free, none is Ray's fixed default.
- Token authentication with a fresh token in the environment of every node and driver, as
  on a real cluster (Ray 2.60 turns it on by itself when ~/.ray/auth_token exists, and a
  node or driver without the token is then refused).
- GCS health checks every 0.5 s, 3 misses: a killed node is declared dead in ~2 s, not 15 s.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from tests.reliability.helpers import session_pids

RAY = str(Path(sys.executable).parent / "ray")
STARTED = "Ray runtime started"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Node:
    name: str
    ip: str
    proc: subprocess.Popen
    log: Path
    resources: dict = field(default_factory=dict)

    @property
    def sid(self) -> int:
        return self.proc.pid  # start_new_session: the session id is the leader's pid

    def log_tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:]


class LocalCluster:
    """Start with `head()`, then `worker()` per node; `stop()` ends all (idempotent)."""

    def __init__(self) -> None:
        # /tmp, not pytest's tmp_path: Ray's unix socket paths must stay under 108 bytes
        self.root = Path(tempfile.mkdtemp(prefix="archer-cluster-"))
        self.nodes: list[Node] = []
        self._ports: set[int] = set()
        self.port = self.free_port()
        self.env = {
            **os.environ,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(16),
            "RAY_health_check_initial_delay_ms": "1000",
            "RAY_health_check_period_ms": "500",
            "RAY_health_check_failure_threshold": "3",
            "RAY_USAGE_STATS_ENABLED": "0",
        }

    def free_port(self) -> int:
        """A free port no other component of this cluster was given: the kernel may hand the
        same released port out twice, and Ray refuses two components on one port."""
        while (port := free_port()) in self._ports:
            pass
        self._ports.add(port)
        return port

    @property
    def address(self) -> str:
        return f"{self.nodes[0].ip}:{self.port}"

    def head(self, *, num_cpus: int = 1, num_gpus: int = 0) -> Node:
        assert not self.nodes, "the head comes first"
        args = ["--head", "--port", str(self.port), "--include-dashboard=false"]
        args += ["--dashboard-port", str(self.free_port())]  # a minimal dashboard runs anyway
        return self._start("head", "127.0.0.2", num_cpus, num_gpus, args)

    def worker(self, name: str, *, num_cpus: int = 1, num_gpus: int = 0) -> Node:
        ip = f"127.0.0.{2 + len(self.nodes)}"
        return self._start(name, ip, num_cpus, num_gpus, ["--address", self.address])

    def _start(self, name: str, ip: str, num_cpus: int, num_gpus: int, role: list[str]) -> Node:
        temp = self.root / name
        temp.mkdir()
        argv = [
            RAY, "start", "--block", *role,
            "--node-ip-address", ip,
            "--num-cpus", str(num_cpus),
            "--num-gpus", str(num_gpus),
            "--temp-dir", str(temp),
            "--min-worker-port", "0", "--max-worker-port", "0",
            "--dashboard-agent-listen-port", str(self.free_port()),
            "--dashboard-agent-grpc-port", str(self.free_port()),
            "--metrics-export-port", str(self.free_port()),
            "--runtime-env-agent-port", str(self.free_port()),
            "--object-store-memory", str(100 * 1024 * 1024),
            "--disable-usage-stats",
        ]  # fmt: skip
        log = self.root / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                argv,
                env={**self.env, "TMPDIR": str(temp)},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_term_with_parent,
            )
        node = Node(name, ip, proc, log, {"CPU": num_cpus, "GPU": num_gpus})
        self.nodes.append(node)
        return node

    def wait_up(self, timeout: float = 60.0) -> None:
        """Until every node printed that it started (a worker only after it registered)."""
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            while STARTED not in node.log.read_text(errors="replace"):
                if node.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"ray node {node.name} did not start:\n{node.log_tail()}")
                time.sleep(0.2)

    # -- which process is what -------------------------------------------------------------
    def raylet_pid(self, node: Node) -> Optional[int]:
        for pid in session_pids(node.sid):
            if _cmdline(pid).split(" ", 1)[0].endswith("/raylet"):
                return pid
        return None

    def node_id(self, node: Node) -> Optional[str]:
        """Ray's node id, from the raylet's own command line (`--node_id=…`)."""
        pid = self.raylet_pid(node)
        for arg in _cmdline(pid).split() if pid else []:
            if arg.startswith("--node_id="):
                return arg.split("=", 1)[1]
        return None

    def kill_raylet(self, node: Node) -> int:
        """SIGKILL the node's raylet: the node dies as if its machine had."""
        pid = self.raylet_pid(node)
        assert pid is not None, f"no raylet on {node.name}"
        os.kill(pid, signal.SIGKILL)
        return pid

    # -- the end ---------------------------------------------------------------------------
    def processes_of(self, node: Node) -> list[int]:
        return session_pids(node.sid)

    def processes(self) -> list[int]:
        return [pid for node in self.nodes for pid in self.processes_of(node)]

    def stop(self, timeout: float = 20.0) -> list[int]:
        """SIGKILL every process of every node (by pid, never by name); return any left."""
        deadline = time.monotonic() + timeout
        while (left := self.processes()) and time.monotonic() < deadline:
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        for node in self.nodes:
            try:
                node.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(self.root, ignore_errors=True)
        return self.processes()


def _term_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies, even by SIGKILL
    (`ray start --block` then ends its node's processes itself)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
