"""Defects of the `command` backend that real verl 0.9.1 showed and the stand-in hid, each
reproduced on tests/fake_verl_trainer.py (docs/archer2.md, "real verl on CPU"): a watched key
the trainer never logs, verl rewriting its JSONL file, hangs without a timeout, /dev/shm and
temp leftovers, concurrent trials sharing temp paths, the start-up after a resume."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.test_command_backend import assert_session_gone, record, trainer
from trainable import metrics as M
from trainable.backends.command_attempt import UnreportedMetric
from trainable.backends.command_config import DEFAULT_TIMEOUT_S, CommandConfig
from trainable.backends.command_proc import FileTail

FAKE_KEYS = (
    "actor/entropy, actor/kl_loss, actor/pg_loss, batch/solve_none, critic/score/max, "
    "critic/score/mean, critic/score/min, fake/only_here, response_length/mean, "
    "response_length/pos/mean, timing_s/update, token/logical_connectives"
)


def test_a_watched_key_the_trainer_never_logs_is_one_clear_error_at_the_first_report(tmp_path):
    t = trainer(tmp_path)
    t.attach_trial(
        {
            **t.trial,
            "watch": {
                "search.metric": M.SCORE_MEAN,
                "clipping": "actor/pg_clipfrac",
                "entropy_high": M.ENTROPY,
                "stale": "actor/ppo_kl",
                "val_acc": "val-core/openai/gsm8k/reward/mean@1",  # logged every test_freq only
            },
        }
    )
    with pytest.raises(UnreportedMetric) as err:
        t.step()
    assert str(err.value) == (
        "rule `clipping` watches `actor/pg_clipfrac`; rule `stale` watches `actor/ppo_kl`, "
        f"which the trainer does not report (step 1; it reports 12 keys: {FAKE_KEYS}); "
        "map a key it logs with metric_map or drop the rule"
    )
    assert_session_gone(record(t)["sid"])


def test_every_watched_key_reported_passes(tmp_path):
    t = trainer(tmp_path)
    t.attach_trial({**t.trial, "watch": {"entropy_high": M.ENTROPY, "guessing": M.RESP_LEN_POS}})
    assert t.step()[M.STEP] == 1.0
    t.close()


def test_file_tail_reads_a_truncated_or_replaced_file_from_its_start(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n')
    tail = FileTail(path)
    assert len(tail.read_lines()) == 3
    with open(path, "wb") as f:  # verl: open(path, "wb") when fit() starts
        f.write(b'{"step": 4}\n')
    assert tail.read_lines() == ['{"step": 4}']
    path.rename(tmp_path / "m.jsonl.1")  # set aside (an unlinked inode may be reused at once)
    path.write_text('{"step": 5}\n{"step": 6}\n{"step": 7}\n{"step": 8}\n')  # a new inode, longer
    assert tail.read_lines() == ['{"step": 5}', '{"step": 6}', '{"step": 7}', '{"step": 8}']


def test_a_resumed_trial_reports_its_own_steps_not_the_earlier_attempts_lines(tmp_path):
    kw = {
        "metrics": {"source": "jsonl"},
        "overrides": {
            "fake.format": "jsonl",
            "fake.jsonl_mode": "wb",
            "trainer.save_freq": 2,
            "fake.step_s": 0.3,  # closed after step 2, before its checkpoint of step 4
        },
    }
    t = trainer(tmp_path, **kw)
    first = [t.step() for _ in range(2)]
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    t.save(str(ckpt))
    t.close()
    # the earlier attempt logged steps past its checkpoint before it died
    with open(t.output_dir / "metrics.jsonl", "a") as f:
        for step in (3, 4):
            f.write(json.dumps({"step": step, "data": {M.ENTROPY: 99.0}}) + "\n")
    t2 = trainer(tmp_path, **{**kw, "overrides": {**kw["overrides"], "fake.start_s": 0.5}})
    t2.load(str(ckpt))
    rest = [t2.step() for _ in range(4)]
    assert t2.done()
    t2.close()
    assert [r[M.STEP] for r in first + rest] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert all(r[M.ENTROPY] < 9 for r in rest)
    uninterrupted = trainer(tmp_path / "u", **kw)
    again = [uninterrupted.step() for _ in range(6)]
    uninterrupted.close()
    assert [r[M.ENTROPY] for r in first + rest] == [r[M.ENTROPY] for r in again]
    assert (t.output_dir / "metrics.jsonl.1").exists()  # the earlier attempt's file, kept aside


def test_start_and_step_timeouts_are_finite_by_default():
    cfg = CommandConfig(argv=["python"])
    assert (cfg.step_timeout_s, cfg.start_timeout_s) == (DEFAULT_TIMEOUT_S, DEFAULT_TIMEOUT_S) == (3600, 3600)
    assert CommandConfig(argv=["python"], step_timeout_s=None).step_timeout_s is None  # overridable


def test_the_first_step_after_a_resume_gets_start_timeout_not_step_timeout(tmp_path):
    kw = {
        "step_timeout_s": 1.5,
        "start_timeout_s": 8.0,
        "overrides": {"fake.start_s": 2.0, "fake.step_s": 0.5},
    }
    t = trainer(tmp_path, **kw)
    t.step()
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    t.save(str(ckpt))
    t.close()
    t2 = trainer(tmp_path, **kw)
    t2.load(str(ckpt))
    assert t2.step()[M.STEP] == 2.0  # 2 s of start-up again: > step_timeout_s, < start_timeout_s
    t2.close()


#: In this process's fake segments' names (fake.shm_tag): other pytest-xdist workers' are not ours.
SHM_TAG = f"w{os.getpid()}-"


def _shm_trainer(tmp_path, shm: int, step_s: float, **kw):
    """A fake trainer that leaves `shm` /dev/shm segments (and a semaphore) named with SHM_TAG."""
    return trainer(
        tmp_path, overrides={"fake.shm": shm, "fake.shm_tag": SHM_TAG, "fake.step_s": step_s}, **kw
    )


def _fake_shm() -> set[str]:
    return {
        n for n in os.listdir("/dev/shm") if n.startswith((f"psm_fake_{SHM_TAG}", f"sem.mp-fake{SHM_TAG}"))
    }


@pytest.mark.parametrize("how", ["stopped", "finished"])
def test_the_trials_shm_segments_and_tmpdir_are_removed_when_its_session_ends(tmp_path, how):
    foreign = Path(f"/dev/shm/psm_fake_{SHM_TAG}other_trial")
    foreign.write_bytes(b"y")
    older_sem = Path(f"/dev/shm/sem.mp-fake{SHM_TAG}older")  # unheld, there before the session
    older_sem.write_bytes(b"z")
    time.sleep(0.2)
    try:
        t = _shm_trainer(tmp_path, 2, 0.3, total_steps=3)
        t.step()
        rec = record(t)
        assert len(_fake_shm() - {foreign.name, older_sem.name}) == 3 and Path(rec["tmpdir"]).is_dir()
        if how == "finished":
            while not t.done():
                t.step()
        t.close()
        assert_session_gone(rec["sid"])
        # what this trial's processes held, and the semaphore it leaked; not the others'
        assert _fake_shm() == {foreign.name, older_sem.name}
        assert not Path(rec["tmpdir"]).exists()
    finally:
        foreign.unlink()
        older_sem.unlink()


def test_two_concurrent_trials_get_their_own_tmpdir_and_tag(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / ("a-long-sweep-worker-scratch-dir-" * 2)))  # a Ray worker's
    a = _shm_trainer(tmp_path, 1, 0.2, trial_id="t0000a")
    b = _shm_trainer(tmp_path, 1, 0.2, trial_id="t0000b")
    a.step(), b.step()
    ra, rb = record(a), record(b)
    assert ra["tmpdir"] != rb["tmpdir"] and ra["tag"] != rb["tag"]
    assert Path(ra["tmpdir"], "rl-colocate-zmq-01000000.sock").exists()
    assert Path(rb["tmpdir"], "rl-colocate-zmq-01000000.sock").exists()
    assert len(ra["tmpdir"]) <= 30  # room for Ray's socket paths under the 107-byte limit
    a.close()
    assert Path(rb["tmpdir"]).is_dir() and not Path(ra["tmpdir"]).exists()
    b.step()
    b.close()
    time.sleep(0.1)
    assert not Path(rb["tmpdir"]).exists() and _fake_shm() == set()


def test_the_last_error_line_skips_hydras_closing_hint_and_rays_prefix():
    from trainable.backends.verl_logs import last_error_line

    tail = [
        "\x1b[36m(TaskRunnerV1 pid=1372)\x1b[0m step:1 - actor/entropy:5.9",
        '  File "flops_counter.py", line 85, in get_device_flops',
        "\x1b[36m(TaskRunnerV1 pid=1372)\x1b[0m TypeError: argument of type 'int' is not iterable",
        "",
        "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.",
    ]
    assert last_error_line(tail) == "TypeError: argument of type 'int' is not iterable"
    assert last_error_line(["ray.exceptions.RayTaskError(RuntimeError): boom"]) == (
        "ray.exceptions.RayTaskError(RuntimeError): boom"
    )
    assert last_error_line(["training finished"]) is None


def test_a_live_semaphore_of_another_program_is_never_removed(tmp_path):
    """glibc maps a semaphore under a temp name it then renames: holders are matched by inode
    (by name, vLLM's live EngineCore semaphore created during another session was removed)."""
    import multiprocessing

    t = _shm_trainer(tmp_path, 1, 0.3, total_steps=2)
    t.step()
    lock = multiprocessing.get_context("spawn").Lock()  # created after the trainer's launch
    sem = Path("/dev/shm", "sem." + lock._semlock.name.lstrip("/"))
    assert sem.exists()
    while not t.done():
        t.step()
    t.close()
    assert sem.exists()  # held by this process: not the trial's leak
    assert _fake_shm() == set()  # the trial's own (its unheld sem.mp-fake*, its psm segment) are gone
    del lock


def test_a_trainer_that_cannot_start_leaves_no_tmpdir(tmp_path):
    from trainable.backends.command import TrainerExited

    before = {p.name for p in Path("/tmp").glob("as-t0000x-*")}
    t = trainer(tmp_path, trial_id="t0000x", argv=["/nonexistent/trainer-binary"])
    with pytest.raises(TrainerExited):
        t.step()
    t.close()
    assert {p.name for p in Path("/tmp").glob("as-t0000x-*")} == before
