"""results/durable.py: a writer SIGKILLed mid-write leaves the old or the new file, never a
part of one; a JSONL line a kill cut short is cut off before the next append."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from archer_sweep.engine.verdicts import VerdictStore
from archer_sweep.results.durable import atomic_write, complete_lines
from archer_sweep.results.sweepdir import read_verdicts

REPO = Path(__file__).resolve().parents[1]

WRITER = """
import sys
from archer_sweep.results.durable import atomic_write
path = sys.argv[1]
n = 0
while True:
    n += 1
    atomic_write(path, (str(n % 10) * 2_000_000).encode())  # 2 MB: a kill often lands inside
    if n == 1:
        open(path + ".started", "w").close()
"""


def test_a_writer_killed_mid_write_leaves_a_whole_file(tmp_path):
    path = tmp_path / "state.json"
    atomic_write(path, b"0" * 2_000_000)
    for kill_after_s in (0.05, 0.11, 0.23, 0.37):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=REPO)
        deadline = time.monotonic() + 60
        while not Path(str(path) + ".started").exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(kill_after_s)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        Path(str(path) + ".started").unlink()
        data = path.read_bytes()
        assert len(data) == 2_000_000 and len(set(data)) == 1  # one whole version
    left = [p.name for p in tmp_path.iterdir() if p.name != "state.json"]
    assert all(p.endswith(".tmp") for p in left)  # only temp files a kill left, never the target


def test_complete_lines_drops_a_torn_last_line():
    assert complete_lines(b'{"a": 1}\n{"b": 2}\n{"c"') == b'{"a": 1}\n{"b": 2}\n'
    assert complete_lines(b'{"c"') == b""
    assert complete_lines(b"") == b""


def test_a_verdict_after_a_torn_line_is_readable(tmp_path):
    from archer_sweep.criteria import Verdict

    store = VerdictStore(tmp_path)
    store.record("t1", {"x": 1}, Verdict("healthy"))
    with open(tmp_path / "verdicts.jsonl", "a") as f:
        f.write('{"trial_id": "t2", "par')  # the kill cut this append short
    store = VerdictStore(tmp_path)  # what resume does
    store.record("t2", {"x": 2}, Verdict("stopped:entropy_high", rule="entropy_high", step=3))
    rows = read_verdicts(tmp_path)
    assert list(rows) == ["t1", "t2"] and rows["t2"]["verdict"] == "stopped:entropy_high"
    assert (tmp_path / "verdicts.jsonl").read_text().count("\n") == 2
