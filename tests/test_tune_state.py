"""engine/tune_state.py: one save of Ray Tune is usable only when its three files load and agree."""

from __future__ import annotations

from archer_sweep.engine import tune_state
from tests.state_files import write_save, write_save_cut_after_two


def test_a_whole_save_is_usable(tmp_path):
    write_save(tmp_path, "S1", {"a": "TERMINATED", "b": "RUNNING"})
    state = tune_state.read_state(tmp_path, "S1")
    assert state.problem is None and state.trials == {"a": "TERMINATED", "b": "RUNNING"}
    assert tune_state.sessions(tmp_path) == ["S1"]


def test_a_torn_experiment_state_is_unreadable(tmp_path):
    exp, _, _ = write_save(tmp_path, "S1", {"a": "RUNNING"})
    exp.write_bytes(exp.read_bytes()[:20])
    state = tune_state.read_state(tmp_path, "S1")
    assert state.torn == "experiment_state-S1.json is unreadable (JSONDecodeError)"


def test_an_empty_searcher_file_is_unreadable(tmp_path):
    _, pkl, _ = write_save(tmp_path, "S1", {"a": "RUNNING"})
    pkl.write_bytes(b"")
    assert tune_state.read_state(tmp_path, "S1").torn == "searcher-state-S1.pkl is unreadable (EOFError)"


def test_a_missing_file_is_named(tmp_path):
    _, _, gen = write_save(tmp_path, "S1", {"a": "RUNNING"})
    gen.unlink()
    assert tune_state.read_state(tmp_path, "S1").torn == "search_gen_state-S1.json is missing"


def test_an_experiment_state_newer_than_the_searcher_files_is_a_mismatch(tmp_path):
    # the kill came between the experiment state and the searcher's files of one save
    write_save_cut_after_two(tmp_path, {"_ot_trials": {"a": None, "b": None}})
    state = tune_state.read_state(tmp_path, "S1")
    assert state.torn is None
    assert state.mismatch == (
        "experiment_state-S1.json lists 3 trial(s) but search_gen_state-S1.json and "
        "searcher-state-S1.pkl are from an earlier save (the driver was stopped between the two)"
    )


def test_sessions_are_ordered_as_tune_picks_the_newest(tmp_path):
    write_save(tmp_path, "2026-12-03_05-44-50", {"a": "RUNNING"})
    write_save(tmp_path, "2026-12-03_05-44-21", {"a": "RUNNING"})
    assert tune_state.sessions(tmp_path) == ["2026-12-03_05-44-21", "2026-12-03_05-44-50"]
    assert tune_state.is_state_file("searcher-state-x.pkl") and not tune_state.is_state_file("x.pkl")
