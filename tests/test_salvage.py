"""engine/salvage.py: what a killed driver left in Ray's staging dir reaches the sweep dir, but
never a file the kill tore over a good one."""

from __future__ import annotations

import json
import os
import time

from archer_sweep.engine.recover import recover
from archer_sweep.engine.salvage import restore_judged_reports, salvage_staging
from archer_sweep.engine.scheduler import judged_report
from tests.state_files import write_save

NAME = "kill"


def layout(tmp_path):
    """A sweep dir and a staging dir with trial t1 in both; staging files are newer."""
    sweep = tmp_path / "results" / NAME
    staging = tmp_path / "ray" / "session_1" / "artifacts" / "ts" / NAME / "driver_artifacts"
    for d in (sweep, staging):
        (d / "t1").mkdir(parents=True)
        (d / "t1" / "params.json").write_text(json.dumps({"x": 1}))
    synced = time.time() - 60  # Tune synced it before the kill
    os.utime(staging / "t1" / "params.json", (synced, synced))
    return sweep, staging


def newer(*paths) -> None:
    later = time.time() + 60
    for p in paths:
        os.utime(p, (later, later))


def test_complete_lines_of_a_result_file_are_copied_the_torn_one_is_not(tmp_path):
    sweep, staging = layout(tmp_path)
    (sweep / "t1" / "result.json").write_text('{"training_iteration": 1}\n')
    (staging / "t1" / "result.json").write_text(
        '{"training_iteration": 1}\n{"training_iteration": 2}\n{"training_itera'
    )
    newer(staging / "t1" / "result.json")
    assert salvage_staging(sweep, NAME, root=tmp_path / "ray") == 1
    assert (
        sweep / "t1" / "result.json"
    ).read_text() == '{"training_iteration": 1}\n{"training_iteration": 2}\n'


def test_a_torn_json_file_never_replaces_a_good_one(tmp_path, caplog):
    sweep, staging = layout(tmp_path)
    (staging / "t1" / "params.json").write_text('{"x": ')
    newer(staging / "t1" / "params.json")
    with caplog.at_level("INFO", logger="archer_sweep.engine.salvage"):
        assert salvage_staging(sweep, NAME, root=tmp_path / "ray") == 0
    assert json.loads((sweep / "t1" / "params.json").read_text()) == {"x": 1}
    assert [r.getMessage() for r in caplog.records] == [
        f"left 1 torn file(s) of {staging} uncopied (being written when the driver stopped)"
    ]


def test_a_save_with_a_torn_file_is_not_copied_a_whole_one_is(tmp_path):
    sweep, staging = layout(tmp_path)
    old = write_save(sweep, "S1", {"t1": "RUNNING"})
    torn = write_save(staging, "S1", {"t1": "TERMINATED"})
    torn[0].write_bytes(b"")  # the kill came as Tune began the experiment state
    newer(*torn)
    whole = write_save(staging, "S2", {"t1": "TERMINATED"})
    (staging / ".5f1e-tmp-search_gen_state-S2.json").write_bytes(b"\x80")  # Tune's temp file
    salvage_staging(sweep, NAME, root=tmp_path / "ray")
    assert [p.read_bytes() for p in old] == [
        p.read_bytes() for p in write_save(tmp_path / "x", "S1", {"t1": "RUNNING"})
    ]
    assert all((sweep / p.name).read_bytes() == p.read_bytes() for p in whole)
    assert not (sweep / ".5f1e-tmp-search_gen_state-S2.json").exists()


def test_a_save_the_kill_tore_in_the_sweep_dir_is_replaced_by_the_whole_one_in_staging(tmp_path):
    # CI under load (test_kill_after_two_verdicts_then_resume): the driver was SIGKILLed as
    # Tune's sync began copying its first save, leaving three empty files in the sweep dir that
    # were newer than the whole save in staging; resume found no usable state and exited 1.
    sweep, staging = layout(tmp_path)
    whole = write_save(staging, "S1", {"t1": "TERMINATED"})
    for p in whole:
        (sweep / p.name).write_bytes(b"")
    newer(*(sweep / p.name for p in whole))
    assert salvage_staging(sweep, NAME, root=tmp_path / "ray") == 3
    assert all((sweep / p.name).read_bytes() == p.read_bytes() for p in whole)
    recover(sweep, NAME, sweep.parent)  # usable: no Unrecoverable


def test_the_report_a_verdict_was_judged_on_is_written_back_once(tmp_path, caplog):
    sweep, _ = layout(tmp_path)
    (sweep / "t1" / "result.json").write_text('{"training_iteration": 1, "step": 1}\n{"trai')  # torn
    (sweep / "t2").mkdir()
    (sweep / "t2" / "result.json").write_text('{"training_iteration": 3}\n')
    flat = {"training_iteration": 2, "step": 2, "actor/entropy": float("nan"), "config/x": 1, "arr": [1]}
    rows = [
        {"trial_id": "t1", "verdict": "stopped:entropy_high", "step": 2, "report": judged_report(flat)},
        {"trial_id": "t2", "verdict": "stopped:x", "step": 3, "report": {"training_iteration": 3}},
        {"trial_id": "t3", "verdict": "error"},  # no report, no dir
    ]
    (sweep / "verdicts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with caplog.at_level("INFO", logger="archer_sweep.engine.salvage"):
        assert restore_judged_reports(sweep) == 1
        assert restore_judged_reports(sweep) == 0  # already there: never twice
    lines = (sweep / "t1" / "result.json").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"training_iteration": 1, "step": 1},
        {"training_iteration": 2, "step": 2, "actor/entropy": "nan", "done": True, "config": {"x": 1}},
    ]
    assert (sweep / "t2" / "result.json").read_text() == '{"training_iteration": 3}\n'
    assert [r.getMessage() for r in caplog.records] == [
        "trial t1: wrote the report of iteration 2 it was judged on to result.json (the driver stopped "
        "before Ray Tune logged it)"
    ]
