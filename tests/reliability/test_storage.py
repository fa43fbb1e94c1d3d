"""Storage faults: two processes on one sweep, a read-only results disk, secrets."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.reliability.helpers import kill_session, spec_data, start_cli, verdict_rows, write_spec

SECRET_KEY = "wandb-k3y-never-on-disk-7f3a"
SECRET_TOKEN = "spec-marked-s3cret-91c2"


def finish(proc: subprocess.Popen, timeout: float = 150) -> int:
    try:
        return proc.wait(timeout=timeout)
    finally:
        kill_session(proc.pid)
        proc.wait()


def one_line_error(log: Path) -> str:
    text = log.read_text()
    assert "Traceback" not in text, text[-2000:]
    lines = [x for x in text.splitlines() if x.strip()]
    assert len(lines) == 1, text[-2000:]
    return lines[0]


def test_second_process_on_a_running_sweep_is_refused_and_secrets_stay_off_disk(tmp_path):
    data = spec_data(
        tmp_path, "busy", [0.001, 0.03, 0.005], steps=6, sleep_s=0.2, tracking={"wandb": {"mode": "offline"}}
    )
    spec = write_spec(tmp_path, data)
    sweep_dir = tmp_path / "results" / "busy"
    env = {"WANDB_API_KEY": SECRET_KEY, "ARCHER_TEST_TOKEN": SECRET_TOKEN}
    first = start_cli("run", str(spec), log=tmp_path / "first.log", **env)
    try:
        deadline = time.monotonic() + 120
        while not list(sweep_dir.glob("*/result.json")):
            assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()[
                -2000:
            ]
            time.sleep(0.1)
        second = start_cli("resume", str(sweep_dir), log=tmp_path / "second.log")
        assert finish(second, 60) == 2
        line = one_line_error(tmp_path / "second.log")
        assert line == (
            f"error: {sweep_dir}: another archer-sweep run is using this sweep "
            f"(pid {first.pid}); wait for it or choose another --name"
        )
        third = start_cli("run", str(spec), log=tmp_path / "third.log")
        assert finish(third, 60) == 2
        assert one_line_error(tmp_path / "third.log").startswith(
            f"error: {sweep_dir} already holds a sweep ("
        )
        assert finish(first) == 0, (tmp_path / "first.log").read_text()[-2000:]
    finally:
        kill_session(first.pid)
    rows = verdict_rows(sweep_dir)  # the first run's files, not interleaved with others
    assert len(rows) == 3 == len({r["trial_id"] for r in rows})
    # secrets from the environment never reach any file under results/
    files = [p for p in (tmp_path / "results").rglob("*") if p.is_file()]
    assert any("wandb" in p.parts for p in files)  # W&B offline runs were written
    for path in files:
        blob = path.read_bytes()
        assert SECRET_KEY.encode() not in blob and SECRET_TOKEN.encode() not in blob, path


def _mount_tmpfs(path: Path, size: str = "16m") -> None:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode()[:200]}")


def test_read_only_results_disk_fails_clearly_and_keeps_earlier_results(tmp_path):
    disk = tmp_path / "disk"
    _mount_tmpfs(disk)
    try:
        earlier = disk / "results" / "earlier"
        earlier.mkdir(parents=True)
        (earlier / "verdicts.jsonl").write_text('{"trial_id": "a", "verdict": "healthy"}\n')
        (earlier / "spec.yaml").write_text("name: earlier\n")
        (earlier / "tuner.pkl").write_bytes(b"not used")
        before = {p: p.read_bytes() for p in earlier.rglob("*") if p.is_file()}
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        data = spec_data(tmp_path, "fresh", [0.001], steps=4)
        data["storage"]["path"] = str(disk / "results")
        spec = write_spec(tmp_path, data)
        run = start_cli("run", str(spec), log=tmp_path / "run.log")
        assert finish(run, 60) == 2
        assert one_line_error(tmp_path / "run.log") == (
            f"error: {disk / 'results' / 'fresh'}: cannot write the results directory: "
            "Read-only file system (expected a writable storage.path / --storage with free space)"
        )
        again = start_cli("resume", str(earlier), log=tmp_path / "resume.log")
        assert finish(again, 60) == 2
        assert "cannot write the results directory: Read-only file system" in one_line_error(
            tmp_path / "resume.log"
        )
        assert {p: p.read_bytes() for p in earlier.rglob("*") if p.is_file()} == before
        assert not (disk / "results" / "fresh").exists()
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.mark.slow
def test_full_results_disk_fails_clearly_and_keeps_earlier_results(tmp_path):
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, size="200k")
    try:
        earlier = disk / "results" / "earlier"
        earlier.mkdir(parents=True)
        (earlier / "verdicts.jsonl").write_text('{"trial_id": "a", "verdict": "healthy"}\n')
        before = (earlier / "verdicts.jsonl").read_bytes()
        data = spec_data(tmp_path, "filler", [0.001, 0.002, 0.005], steps=8)
        data["storage"]["path"] = str(disk / "results")
        spec = write_spec(tmp_path, data)
        run = start_cli("run", str(spec), log=tmp_path / "run.log")
        code = finish(run, 150)
        text = (tmp_path / "run.log").read_text()
        assert code == 1, text[-3000:]
        failed = [x for x in text.splitlines() if x.startswith("run failed: ")]
        assert failed and ("disk is full" in failed[-1] or "No space left" in failed[-1]), text[-3000:]
        assert f"continue with: archer-sweep resume {disk / 'results' / 'filler'}" in text
        assert (earlier / "verdicts.jsonl").read_bytes() == before
        assert spec.exists()
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
