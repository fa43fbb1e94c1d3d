"""A throwaway PostgreSQL server for tests, from the Debian package's binaries
(`apt-get install postgresql`: /usr/lib/postgresql/<version>/bin).

`initdb` into a fresh temp dir, `pg_ctl start` on a free 127.0.0.1 port with the unix
socket in that dir (never the system's /var/run/postgresql, never port 5432), trust
authentication for local connections, fsync off (the data is thrown away). PostgreSQL
refuses to run as root, so as root every server command runs as the `postgres` user the
package creates (`runuser`), and the data dir is handed to that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Optional


def server_bin() -> Optional[Path]:
    """The newest installed PostgreSQL's bin dir (None when no server binary is installed)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path and (Path(on_path).parent / "postgres").exists() else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """`start()` → `url(db)` → `stop()` (idempotent; also removes the data)."""

    def __init__(self, bin_dir: Path):
        self.bin = bin_dir
        # /tmp, not pytest's tmp_path: that is private to root, and the server runs as postgres
        self.root = Path(tempfile.mkdtemp(prefix="archer-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = _free_port()
        self.user: Optional[str] = None
        if os.geteuid() == 0:
            self.user = "postgres"
            pw = pwd.getpwnam(self.user)  # KeyError: the package's user is missing
            os.chown(self.root, pw.pw_uid, pw.pw_gid)

    def _run(self, tool: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        argv = [str(self.bin / tool), *args]
        if self.user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def _must(self, tool: str, *args: str) -> None:
        done = self._run(tool, *args)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stdout}{done.stderr}\n{log}")

    def start(self) -> PostgresServer:
        self._must("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._must(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start"
        )
        return self

    def create_db(self, name: str) -> str:
        self._must("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def url(self, db: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        if self.data.exists():
            done = self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            if done.returncode != 0:  # not running, or pg_ctl failed: end the postmaster by pid
                self._kill_postmaster()
        shutil.rmtree(self.root, ignore_errors=True)

    def _kill_postmaster(self) -> None:
        pidfile = self.data / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().split()[0])
            os.kill(pid, 9)
        except (OSError, ValueError, IndexError):
            pass
