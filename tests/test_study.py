"""`storage.study` checks that need no database server: the URL parses, names an installed
driver and holds no password (at validate time, one located line), and an unreachable
server stops `run` and `resume` with one line before Ray starts."""

from __future__ import annotations

import socket
import sys

import pytest

from archer_sweep.engine import sweep as cmd_run
from archer_sweep.engine.live import summary
from archer_sweep.errors import SpecError, UserError
from archer_sweep.spec.load import load_spec
from archer_sweep.spec.study import shown_url


def spec_file(tmp_path, study: str):
    path = tmp_path / "spec.yaml"
    path.write_text(f"name: s\nstorage:\n  path: {tmp_path / 'results'}\n  study: {study!r}\n")
    return path


@pytest.mark.parametrize(
    "url, message",
    [
        (
            "postgresql://alice:hunter2@db:5432/sweeps",
            "storage.study: the URL holds a password, which would be written to spec.yaml "
            "(expected the password in PGPASSWORD or ~/.pgpass, and postgresql://user@host/db here)",
        ),
        (
            "postgresql://alice@db/sweeps?password=hunter2",
            "storage.study: the URL holds a password, which would be written to spec.yaml",
        ),
        (
            "results/study.db",
            "storage.study: 'results/study.db' is not a database URL "
            "(expected e.g. postgresql://user@host:5432/db or sqlite:///path/study.db)",
        ),
        (
            "postgres://db/sweeps",
            "storage.study: unknown database 'postgres' in postgres://db/sweeps "
            "(expected postgresql, mysql or sqlite)",
        ),
    ],
)
def test_bad_study_url_is_one_located_line(tmp_path, url, message):
    path = spec_file(tmp_path, url)
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    line = str(exc.value)
    assert line.startswith(f"{path}:4: {message}"), line
    assert "\n" not in line and "hunter2" not in line


def test_missing_postgres_driver_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` now fails
    with pytest.raises(SpecError) as exc:
        load_spec(spec_file(tmp_path, "postgresql://alice@db/sweeps"))
    assert (
        "storage.study: postgresql://alice@db/sweeps needs the database driver 'psycopg', which is not installed"
        in str(exc.value)
    )
    assert str(exc.value).endswith("(expected it installed: pip install 'archer-sweep[postgres]')")


def test_good_urls_pass_unchanged(tmp_path):
    for url in (
        "postgresql://alice@db:5432/sweeps",
        f"sqlite:///{tmp_path}/s.db",
        "postgresql+psycopg://db/s",
    ):
        assert load_spec(spec_file(tmp_path, url)).storage.study == url


def test_shown_url_masks_a_password():
    assert shown_url("postgresql://alice:hunter2@db/s") == "postgresql://alice:***@db/s"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_stops_run_with_one_line_before_ray(tmp_path):
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/sweeps"  # nothing listens there
    spec = load_spec(spec_file(tmp_path, url))
    with pytest.raises(UserError) as exc:
        cmd_run.run(spec)
    line = str(exc.value)
    assert line.startswith(f"storage.study: cannot open {url}: connection failed: ") and "\n" not in line
    assert line.endswith("(expected a reachable database the user may write to)")
    assert not (tmp_path / "results").exists()  # nothing written


def test_summary_names_a_database_study_and_its_dashboard_command(tmp_path):
    (tmp_path / "s").mkdir()
    text = summary(tmp_path / "s", "critic/score/mean", "max", 1, study="postgresql://alice@db/sweeps")
    assert "(verdicts.jsonl, spec.yaml; `archer-sweep analyze" in text
    assert text.splitlines()[-1] == "Study: `optuna-dashboard postgresql://alice@db/sweeps`"
    default = summary(tmp_path / "s", "critic/score/mean", "max", 1)
    assert "(verdicts.jsonl, study.db, spec.yaml;" in default and "Study:" not in default


def test_unreachable_server_stops_resume_with_one_line(tmp_path):
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/sweeps"
    sweep_dir = tmp_path / "results" / "s"
    sweep_dir.mkdir(parents=True)
    (sweep_dir / "tuner.pkl").write_bytes(b"")  # resume reads nothing before the check
    (sweep_dir / "spec.yaml").write_text(spec_file(tmp_path, url).read_text())
    with pytest.raises(UserError, match=r"^storage.study: cannot open .* \(expected a reachable database"):
        cmd_run.resume(sweep_dir)
