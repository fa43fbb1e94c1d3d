"""engine/recover.py: resume gets a usable newest save of Ray Tune, or one line saying why not."""

from __future__ import annotations

import logging
import pickle

import optuna
import pytest
import ray.cloudpickle as cloudpickle

from archer_sweep.engine import recover
from archer_sweep.engine.searcher import RAY_TRIAL_ATTR
from archer_sweep.errors import UserError
from tests.state_files import write_save, write_save_cut_after_two


def test_a_usable_newest_save_is_left_as_it_is(tmp_path, caplog):
    paths = write_save(tmp_path, "S1", {"a": "RUNNING"})
    before = [p.read_bytes() for p in paths]
    with caplog.at_level(logging.INFO, logger="archer_sweep.engine.recover"):
        recover.recover(tmp_path, "fuzz", tmp_path.parent)
    assert [p.read_bytes() for p in paths] == before and caplog.records == []


def test_a_torn_newest_save_is_set_aside_for_the_previous_one(tmp_path, caplog):
    write_save(tmp_path, "S1", {"a": "TERMINATED"})
    exp, _, _ = write_save(tmp_path, "S2", {"a": "TERMINATED", "b": "RUNNING"})
    exp.write_bytes(b"")  # the kill came as Tune began writing it
    with caplog.at_level(logging.INFO, logger="archer_sweep.engine.recover"):
        recover.recover(tmp_path, "fuzz", tmp_path.parent)
    assert [r.getMessage() for r in caplog.records] == [
        "Ray Tune's saved state S2 is unusable (experiment_state-S2.json is unreadable (JSONDecodeError)); "
        "set aside as *.unusable, resuming from the one before"
    ]
    assert sorted(p.name for p in tmp_path.glob("*S2*")) == [
        "experiment_state-S2.json.unusable",
        "search_gen_state-S2.json.unusable",
        "searcher-state-S2.pkl.unusable",
    ]


def test_no_usable_save_is_one_line_saying_how_to_start_over(tmp_path):
    sweep = tmp_path / "fuzz"
    exp, _, _ = write_save(sweep, "S1", {"a": "RUNNING"})
    exp.write_bytes(b'{"trial_da')
    with pytest.raises(recover.Unrecoverable) as info:
        recover.recover(sweep, "fuzz", tmp_path)
    assert str(info.value) == (
        f"{sweep}: no saved Ray Tune state can be resumed (S1: experiment_state-S1.json is unreadable "
        f"(JSONDecodeError)); its judged trials stay in verdicts.jsonl and study.db "
        f"(`archer-sweep analyze {sweep}`); to run the sweep again, "
        f"`archer-sweep run {sweep}/spec.yaml --name fuzz-2 --storage {tmp_path}`"
    )


def test_a_sweep_that_never_saved_is_told_to_run_again(tmp_path):
    sweep = tmp_path / "fuzz"
    sweep.mkdir()
    with pytest.raises(UserError) as info:
        recover.recover(sweep, "fuzz", tmp_path)
    assert str(info.value) == (
        f"{sweep}: the sweep was stopped before Ray Tune saved its first state, so there is nothing "
        f"to resume; start it again with `archer-sweep run {sweep}/spec.yaml --name fuzz --storage {tmp_path}`"
    )


def test_run_again_sets_aside_what_an_unstarted_run_left(tmp_path):
    (tmp_path / "tuner.pkl").write_bytes(b"x")
    (tmp_path / "study.db").write_bytes(b"x")
    recover.set_aside_unstarted(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.db.unusable", "tuner.pkl.unusable"]
    (tmp_path / "verdicts.jsonl").write_text("{}\n")
    (tmp_path / "tuner.pkl").write_bytes(b"x")
    recover.set_aside_unstarted(tmp_path)  # a judged trial: that is a sweep to resume
    assert (tmp_path / "tuner.pkl").exists()


def test_a_save_cut_between_its_files_is_mended_from_the_experiment_state(tmp_path):
    study = optuna.create_study(study_name="fuzz", storage=f"sqlite:///{tmp_path}/study.db")
    asked = {}
    for tid in ("a", "b", "c"):
        trial = study.ask()
        trial.set_user_attr(RAY_TRIAL_ATTR, tid)
        asked[tid] = trial
    searcher = {"_ot_trials": {"a": asked["a"], "b": asked["b"]}, "_ot_study": study, "_group_of": {}}
    write_save_cut_after_two(tmp_path, searcher)
    recover.recover(tmp_path, "fuzz", tmp_path.parent)
    gen = cloudpickle.loads((tmp_path / "search_gen_state-S1.json").read_bytes())
    assert gen["counter"] == 3 and gen["name:ConcurrencyLimiter"]["live_trials"] == {"c"}
    mended = pickle.loads((tmp_path / "searcher-state-S1.pkl").read_bytes())
    assert sorted(mended["_ot_trials"]) == ["a", "b", "c"]
    assert mended["_ot_trials"]["c"].number == asked["c"].number


def test_a_trial_dir_the_save_does_not_list_and_no_verdict_judged_is_moved_aside(tmp_path, caplog):
    write_save(tmp_path, "S1", {"a": "TERMINATED"})
    for tid in ("a", "b", "c"):  # b: started after the save, lost; c: judged after the save
        (tmp_path / tid).mkdir()
        (tmp_path / tid / "params.json").write_text("{}")
        (tmp_path / tid / "result.json").write_text("{}\n")
    (tmp_path / "verdicts.jsonl").write_text('{"trial_id": "c", "verdict": "healthy"}\n')
    with caplog.at_level(logging.INFO, logger="archer_sweep.engine.recover"):
        recover.recover(tmp_path, "fuzz", tmp_path.parent)
    assert sorted(p.parent.name for p in tmp_path.glob("*/result.json")) == ["a", "c"]
    assert (tmp_path / ".unusable" / "b" / "result.json").exists()
    assert [r.getMessage() for r in caplog.records] == [
        "moved 1 trial dir(s) that Ray Tune's saved state does not list and no verdict judged to .unusable (b)"
    ]
