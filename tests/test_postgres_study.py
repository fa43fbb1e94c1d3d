"""`storage.study: postgresql://…` end to end against a real PostgreSQL server (started by
the fixture from the Debian package's binaries): `run` (SIGKILLed mid-sweep), `resume`,
the printed `optuna-dashboard` URL, `next`, `report`, and a second sweep of the same name
refused because the shared database already holds its study.
"""

from __future__ import annotations

import optuna
import pytest

from archer_sweep.engine import sweep as cmd_run
from archer_sweep.errors import UserError
from archer_sweep.spec.load import load_spec
from tests.postgres_server import PostgresServer, server_bin
from tests.reliability.helpers import (
    kill_session,
    sigkill_when,
    spec_data,
    start_cli,
    verdict_rows,
    wait_gone,
    write_spec,
)

COEFFS = [0.001, 0.03, 0.005, 0.002]  # healthy, stopped:entropy_high, healthy, healthy
NAME = "pg"
TIMEOUT_S = 150

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pg():
    bin_dir = server_bin()
    if bin_dir is None:
        pytest.skip(
            "no PostgreSQL server binary (/usr/lib/postgresql/*/bin/postgres): "
            "`apt-get install postgresql` provides it (.ci/run does)"
        )
    server = PostgresServer(bin_dir)
    try:
        yield server.start()
    finally:
        server.stop()


def cli(*args: str, log, **env: str) -> int:
    proc = start_cli(*args, log=log, **env)
    try:
        code = proc.wait(timeout=TIMEOUT_S)
        assert wait_gone(proc.pid, timeout=30) == []
        return code
    finally:
        kill_session(proc.pid)
        proc.wait()


def test_run_killed_then_resume_next_report_on_postgres(pg, tmp_path):
    url = pg.create_db("sweeps")
    storage = {"path": str(tmp_path / "results"), "study": url}
    spec = write_spec(tmp_path, spec_data(tmp_path, NAME, COEFFS, steps=8, sleep_s=0.2, storage=storage))
    sweep_dir = tmp_path / "results" / NAME

    proc = start_cli("run", str(spec), log=tmp_path / "run.log")
    try:  # SIGKILL the driver once two trials are judged: the study is left mid-sweep
        reached = lambda: len(verdict_rows(sweep_dir)) >= 2
        sigkill_when(proc, reached, tmp_path / "run.log", "two verdicts", TIMEOUT_S)
    finally:
        kill_session(proc.pid)
        proc.wait()
    assert cli("resume", str(sweep_dir), log=tmp_path / "resume.log") == 0, (
        tmp_path / "resume.log"
    ).read_text()[-3000:]

    rows = verdict_rows(sweep_dir)
    assert len(rows) == len({r["trial_id"] for r in rows}) == len(COEFFS)
    assert not (sweep_dir / "study.db").exists()  # the study lives in PostgreSQL only
    out = (tmp_path / "resume.log").read_text()
    printed = f"Study: `optuna-dashboard {url}`"
    assert printed in out and "(verdicts.jsonl, spec.yaml;" in out, out[-2000:]

    # the printed URL opens the study (what optuna-dashboard does): one told trial per
    # Ray trial, none left RUNNING, stops PRUNED and healthy trials COMPLETE
    study = optuna.load_study(study_name=NAME, storage=url)
    by_ray: dict[str, list] = {}
    for t in study.trials:
        by_ray.setdefault(t.user_attrs.get("ray_trial_id"), []).append(t)
    assert [t.number for t in study.trials if t.state.name in ("RUNNING", "WAITING")] == []
    for r in rows:
        (t,) = by_ray[r["trial_id"]]
        assert t.state.name == ("PRUNED" if r["verdict"].startswith("stopped:") else "COMPLETE"), (r, t)
    assert {r["verdict"] for r in rows} == {"healthy", "stopped:entropy_high"}

    # next and report read the sweep; the proposed spec is runnable on the same database
    assert cli("next", str(sweep_dir), "-o", str(tmp_path / "next.yaml"), log=tmp_path / "next.log") == 0
    proposed = load_spec(tmp_path / "next.yaml")
    assert proposed.storage.study == url and proposed.name != NAME
    assert cli("report", str(sweep_dir), log=tmp_path / "report.log") == 0
    assert "stopped:entropy_high" in (sweep_dir / "report" / "report.md").read_text()

    # a fresh sweep of the same name elsewhere would join that study: refused before Ray starts
    other = tmp_path / "elsewhere"
    with pytest.raises(UserError) as exc:
        cmd_run.run(cmd_run.with_overrides(load_spec(spec), None, other))
    assert str(exc.value) == (
        f"storage.study: {url} already holds a study named {NAME!r} "
        "(expected a new --name, or `archer-sweep resume` of the sweep that made it)"
    )
    assert not other.exists()
