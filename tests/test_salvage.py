"""engine/salvage.py: what a killed driver left in Ray's staging dir reaches the sweep dir, but
never a file the kill tore over a good one."""

from __future__ import annotations

import json
import os
import time

from archer_sweep.engine.salvage import salvage_staging
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
