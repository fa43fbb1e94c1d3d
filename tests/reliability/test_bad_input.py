"""Bad input corpus: every broken spec exits 2 with one line naming file and line, no traceback,
in under 2 s, and writes nothing (issue 7 item 5).

Each file in bad_specs/ starts with `# expect: LINE: message`; files that cannot hold a
comment (empty, UTF-16) have their expectation in BYTE_LEVEL. The 50 MB file is made here.
"""

import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archer_sweep.cli.app import app

CORPUS = Path(__file__).parent / "bad_specs"
BYTE_LEVEL = {
    "empty.yaml": "1: the file is empty (expected a sweep spec mapping with at least `name`)",
    "encoding_utf16.yaml": "1: byte 0xff at column 1 is not UTF-8 (expected a UTF-8 text file)",
}
FILES = sorted(CORPUS.glob("*.yaml"))


def expected(path: Path) -> str:
    if path.name in BYTE_LEVEL:
        return BYTE_LEVEL[path.name]
    first = path.read_bytes().split(b"\n", 1)[0].decode("utf-8")
    assert first.startswith("# expect: "), path
    return first.removeprefix("# expect: ")


def test_corpus_is_big_and_covers_every_kind():
    assert len(FILES) >= 40
    kinds = {p.name.split("_")[0] for p in FILES}
    assert {
        "syntax",
        "type",
        "range",
        "unknown",
        "rules",
        "huge",
        "negative",
        "encoding",
        "alias",
        "duplicate",
        "empty",
        "resources",
    } <= kinds


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_bad_spec_exits_2_with_one_located_line(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative results/ would land here
    start = time.perf_counter()
    res = CliRunner().invoke(app, ["validate", str(path)])
    elapsed = time.perf_counter() - start
    assert res.exit_code == 2, res.output
    assert res.stdout == ""
    assert res.stderr == f"error: {path}:{expected(path)}\n"
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert elapsed < 2.0
    assert list(tmp_path.iterdir()) == []


def test_50_mb_file_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    big = tmp_path / "big.yaml"
    chunk = b"name: big\n" + b"# padding padding padding padding padding padding padding padding\n" * 15_000
    with open(big, "wb") as fh:
        while fh.tell() < 50 * 2**20:
            fh.write(chunk)
        fh.truncate(50 * 2**20)
    start = time.perf_counter()
    res = CliRunner().invoke(app, ["validate", "big.yaml"])
    assert time.perf_counter() - start < 2.0
    assert res.exit_code == 2
    assert res.stderr == (
        "error: big.yaml:1: file is 52428800 bytes (expected at most 1000000 bytes for a sweep spec)\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.yaml"]


def test_real_process_on_the_whole_corpus(tmp_path):
    """One real `archer-sweep validate` over every file: one line each, no traceback, fast."""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "archer_sweep.cli", "validate", *map(str, FILES)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.perf_counter() - start
    assert out.returncode == 2
    assert out.stdout == ""
    assert "Traceback" not in out.stderr
    assert out.stderr.splitlines() == [f"error: {p}:{expected(p)}" for p in FILES]
    assert elapsed < 2.0 * len(FILES)
    assert elapsed < 10.0, elapsed  # one start-up plus a few ms per file
    assert list(tmp_path.iterdir()) == []


def test_set_values_never_reach_a_shell(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = CORPUS.parent.parent.parent / "sweeps" / "seed-v2.yaml"
    res = CliRunner().invoke(
        app,
        [
            "validate",
            str(spec),
            "--set",
            "ray.num_cpus=8",
            "--set",
            "storage.path=$(touch pwned); touch pwned2",
            "--set",
            "tracking.wandb.project=a && touch pwned3 | cat",
        ],
    )
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["validate", str(spec), "--set", "name=$(touch pwned)"])
    assert res.exit_code == 2
    assert res.stderr.startswith("error: --set:1: name: '$(touch pwned)' is not a valid name")
    assert list(tmp_path.iterdir()) == []


def test_endless_pipe_is_cut_at_the_size_limit(tmp_path):
    """A spec read from a pipe (no size to stat) is capped by the read itself."""
    out = subprocess.run(
        [sys.executable, "-m", "archer_sweep.cli", "validate", "/dev/stdin"],
        cwd=tmp_path,
        input=b"name: x\n" + b"#" * 3_000_000,
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert out.stderr.decode() == (
        "error: /dev/stdin:1: file is more than 1000000 bytes (expected at most "
        "1000000 bytes for a sweep spec)\n"
    )
