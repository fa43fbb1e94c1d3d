"""SIGKILL of a sweep with `search.repeats`, then `archer-sweep resume`: every seed of every
config is judged once, Optuna is told once per config (never twice, none left RUNNING),
and the configs' aggregated verdicts equal those of a sweep that was never interrupted."""

from __future__ import annotations

from pathlib import Path

import pytest

from archer_sweep.engine.searcher import REPEATS_ATTR
from archer_sweep.results.sweepdir import read_groups
from tests.reliability.helpers import (
    kill_session,
    sigkill_when,
    spec_data,
    start_cli,
    start_killer,
    study_trials,
    verdict_rows,
    write_spec,
)

COEFFS = [0.001, 0.03, 0.005]  # healthy, stopped:entropy_high, healthy
SEEDS = 2
NAME = "reps"
TIMEOUT_S = 150


def make_spec(tmp: Path) -> Path:
    data = spec_data(tmp, NAME, COEFFS, steps=6, sleep_s=0.15)
    data["search"]["repeats"] = {"count": SEEDS}
    return write_spec(tmp, data)


def run_to_end(*args: str, log: Path) -> int:
    proc = start_cli(*args, log=log)
    try:
        return proc.wait(timeout=TIMEOUT_S)
    finally:
        kill_session(proc.pid)
        proc.wait()


def configs(sweep_dir: Path) -> list[tuple]:
    """(entropy_coeff, Optuna state, aggregated verdict, seeds told) per config, sorted."""
    out = []
    for t in study_trials(sweep_dir, NAME):
        if t.state.name in ("COMPLETE", "PRUNED"):
            reps = t.user_attrs.get(REPEATS_ATTR) or {}
            verdict = (t.user_attrs.get("archer_verdict") or {}).get("verdict")
            out.append(
                (t.params["algorithm.entropy_coeff"], t.state.name, verdict, len(reps.get("seeds", [])))
            )
    return sorted(out)


@pytest.fixture(scope="module")
def want(tmp_path_factory):
    ref = tmp_path_factory.mktemp("ref")
    assert run_to_end("run", str(make_spec(ref)), log=ref / "run.log") == 0, (ref / "run.log").read_text()[
        -3000:
    ]
    out = configs(ref / "results" / NAME)
    assert [c[0] for c in out] == sorted(COEFFS)
    return out


@pytest.mark.slow
@pytest.mark.parametrize(
    "inside",
    [None, "searcher_save:before", "tune_state_torn"],
    ids=["after_two_verdicts", "inside_a_tune_save", "tune_state_torn"],
)
def test_kill_a_repeats_sweep_after_two_verdicts_then_resume(tmp_path, want, inside):
    """Killed after two verdicts; or, once two exist, inside Tune's next save: between its
    experiment state and the searcher's files (mended from groups.jsonl), or halfway through
    the experiment state (the torn file stays in staging; once it was copied over the good one
    and resume died in Tune with a JSONDecodeError)."""
    tmp = tmp_path / "killed"
    tmp.mkdir()
    sweep_dir = tmp / "results" / NAME
    if inside is None:
        proc = start_cli("run", str(make_spec(tmp)), log=tmp / "run.log")
    else:
        spec = str(make_spec(tmp))
        proc = start_killer(
            inside, 1, "run", spec, log=tmp / "run.log", after_verdicts=2, sweep_dir=sweep_dir
        )
    try:
        if inside is None:
            reached = lambda: len(verdict_rows(sweep_dir)) >= 2
            sigkill_when(proc, reached, tmp / "run.log", "two verdicts", TIMEOUT_S)
        else:
            assert proc.wait(timeout=TIMEOUT_S) == -9, (tmp / "run.log").read_text()[-3000:]
    finally:
        kill_session(proc.pid)  # the rest of its session: Ray's node and trial workers
        proc.wait()
    before = {r["trial_id"]: r for r in verdict_rows(sweep_dir)}

    code = run_to_end("resume", str(sweep_dir), log=tmp / "resume.log")
    assert code == 0, (tmp / "resume.log").read_text()[-3000:]
    rows = verdict_rows(sweep_dir)
    ids = [r["trial_id"] for r in rows]
    assert len(ids) == len(set(ids))  # one verdict per seed-trial
    for tid, row in before.items():  # judged before the kill: not re-judged
        assert next(r for r in rows if r["trial_id"] == tid) == row
    groups = read_groups(sweep_dir)
    per_config: dict[int, set[int]] = {}
    for tid in ids:
        per_config.setdefault(groups[tid]["group"], set()).add(groups[tid]["seed_index"])
    # every config has each of its seeds judged once (a sibling stop judges the rest)
    assert len(per_config) == len(COEFFS) and all(s == set(range(SEEDS)) for s in per_config.values())
    trials = study_trials(sweep_dir, NAME)
    assert [t.number for t in trials if t.state.name in ("RUNNING", "WAITING")] == []
    assert configs(sweep_dir) == want
