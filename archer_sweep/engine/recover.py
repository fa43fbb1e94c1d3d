"""Before `resume` hands a sweep dir to Ray Tune: make its newest saved state usable.

A driver killed inside Tune's save leaves (engine/tune_state.py):
- an experiment state newer than the searcher's files of the same save: mended here, since the
  experiment state knows every trial: the trial count and the live trials of the concurrency
  limiter are set from it, and the Optuna trial of a trial the searcher file does not know yet is
  found in the study by its `ray_trial_id` (with search.repeats a seed joins its config group
  from `groups.jsonl`);
- a torn or empty file: the session's save is set aside (renamed `*.unusable`) and the previous
  session's is resumed.
Each is one INFO line. With no usable save left, resume stops with one line: exit 2 when Tune
never saved a state (run the spec again), exit 1 when it did (the judged trials stay in the dir).
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Optional

from archer_sweep.engine import libcompat, tune_state
from archer_sweep.errors import UserError
from archer_sweep.results.durable import atomic_write
from archer_sweep.results.sweepdir import (
    PARAMS_FILE,
    SPEC_FILE,
    STUDY_FILE,
    TUNER_FILE,
    VERDICTS_FILE,
    read_groups,
    read_verdicts,
)

log = logging.getLogger(__name__)

UNUSABLE_SUFFIX = ".unusable"
UNUSABLE_DIR = ".unusable"


class Unrecoverable(Exception):
    """Tune saved states, but none can be resumed; the message says what to do."""


def prepare_resume(spec, sweep_dir: Path) -> None:
    """Before Ray starts: the reports a killed driver never synced, then a usable Tune state
    (UserError when Tune never saved one, Unrecoverable when none is usable)."""
    from archer_sweep.engine.salvage import restore_judged_reports, salvage_staging

    salvage_staging(sweep_dir, spec.name)
    restore_judged_reports(sweep_dir)
    recover(sweep_dir, spec.name, sweep_dir.parent)


def recover(sweep_dir: Path, name: str, storage: Path) -> None:
    """Leave `sweep_dir` with a usable newest save, or raise (UserError / Unrecoverable)."""
    sweep_dir = Path(sweep_dir)
    sessions = tune_state.sessions(sweep_dir)
    if not sessions:
        raise UserError(never_saved(sweep_dir, name, storage))
    problems = []
    for session in reversed(sessions):
        state = tune_state.read_state(sweep_dir, session)
        if state.problem is None:
            set_aside_orphans(sweep_dir, state)
            drop_deleted_checkpoints(state)
            break
        if state.torn is None and mend(state):
            log.info("mended Ray Tune's saved state %s: %s", session, state.problem)
            set_aside_orphans(sweep_dir, state)
            drop_deleted_checkpoints(state)
            break
        problems.append(f"{session}: {state.problem}")
        for path in state.paths():
            if path.exists():
                path.rename(path.with_name(path.name + UNUSABLE_SUFFIX))
        log.info(
            "Ray Tune's saved state %s is unusable (%s); set aside as *%s, resuming from the one before",
            session,
            state.problem,
            UNUSABLE_SUFFIX,
        )
    else:
        raise Unrecoverable(
            f"{sweep_dir}: no saved Ray Tune state can be resumed ({'; '.join(problems)}); its judged "
            f"trials stay in verdicts.jsonl and study.db (`archer-sweep analyze {sweep_dir}`); to run "
            f"the sweep again, `archer-sweep run {sweep_dir / SPEC_FILE} --name {name}-2 --storage {storage}`"
        )


def drop_deleted_checkpoints(state: tune_state.SavedState) -> None:
    """A trial's saved state may name checkpoints the killed driver deleted after the save
    (`checkpoint.num_to_keep`): restoring from one fails (`Could not recover from checkpoint as
    it does not exist on storage anymore`). Drop them; the trial restores from the newest one
    left, or starts afresh (the trainer is deterministic, so its reports come out the same)."""
    import json

    import ray.cloudpickle as cloudpickle

    path = state.paths()[0]
    data = json.loads(path.read_text(encoding="utf-8"))
    dropped = []
    for entry in data["trial_data"]:
        meta = json.loads(entry[1])
        blob = meta.get("checkpoint_manager")
        if not isinstance(blob, dict) or "value" not in blob:
            continue
        manager = cloudpickle.loads(bytes.fromhex(blob["value"]))
        if libcompat.drop_missing_checkpoints(manager, lambda p: Path(p).exists()):
            blob["value"] = cloudpickle.dumps(manager).hex()
            entry[1] = json.dumps(meta)
            dropped.append(json.loads(entry[0])["trial_id"])
    if dropped:
        atomic_write(path, json.dumps(data))
        log.info(
            "trial(s) %s: checkpoints the stopped driver had deleted left out of the saved state",
            ", ".join(dropped),
        )


def set_aside_orphans(sweep_dir: Path, state: tune_state.SavedState) -> None:
    """Trial dirs of Ray trials that the resumed save does not list and that have no verdict
    (started after that save, lost with the driver) move to `.unusable/`: the searcher asks
    for their configs again, and they would read as extra unjudged trials."""
    judged = read_verdicts(sweep_dir)
    orphans = [
        p.parent
        for p in sweep_dir.glob(f"*/{PARAMS_FILE}")
        if p.parent.name not in state.trials and p.parent.name not in judged
    ]
    for trial_dir in orphans:
        target = sweep_dir / UNUSABLE_DIR / trial_dir.name
        target.parent.mkdir(exist_ok=True)
        trial_dir.rename(target)
    if orphans:
        log.info(
            "moved %d trial dir(s) that Ray Tune's saved state does not list and no verdict judged to %s (%s)",
            len(orphans),
            UNUSABLE_DIR,
            ", ".join(sorted(p.name for p in orphans)),
        )


def set_aside_unstarted(sweep_dir: Path) -> None:
    """Before `run`: a sweep stopped before Tune saved its first state (no saved state, no
    verdict) left only `tuner.pkl` and the study of its unstarted trials; set them aside so
    that `run` starts it again, as `resume` tells."""
    sweep_dir = Path(sweep_dir)
    if tune_state.sessions(sweep_dir) or (sweep_dir / VERDICTS_FILE).exists():
        return
    stale = [sweep_dir / f for f in (TUNER_FILE, STUDY_FILE) if (sweep_dir / f).exists()]
    for path in stale:
        path.rename(path.with_name(path.name + UNUSABLE_SUFFIX))
    if stale:
        log.info("%s: set aside what a run stopped before its first saved state left", sweep_dir)


def never_saved(sweep_dir: Path, name: str, storage: Path) -> str:
    return (
        f"{sweep_dir}: the sweep was stopped before Ray Tune saved its first state, so there is "
        f"nothing to resume; start it again with "
        f"`archer-sweep run {sweep_dir / SPEC_FILE} --name {name} --storage {storage}`"
    )


def mend(state: tune_state.SavedState) -> bool:
    """Make the searcher's files of `state` agree with its (readable) experiment state; False
    when that cannot be done (a torn file, or a trial whose Optuna trial is not found)."""
    if not state.trials:
        return False
    experiment, searcher_path, gen_path = state.paths()
    try:
        searcher = _load(searcher_path, pickle.load)
        gen = _load(gen_path, _cloudpickle().load)
    except Exception:  # torn: nothing to mend from
        return False
    if searcher is None or gen is None:
        return False
    missing = [t for t in state.trials if t not in _proposed(searcher)]
    if searcher.get("_repeats") is not None:
        found = _mend_repeats(searcher, missing, state.directory)
    else:
        found = _optuna_trials(searcher, missing)
    if found is None:
        return False
    searcher["_ot_trials"].update(found)
    unfinished = {t for t, status in state.trials.items() if status not in tune_state.FINISHED}
    gen["counter"] = len(state.trials)
    limiter = gen.get(tune_state.LIMITER_KEY)
    if limiter is not None:
        limiter["live_trials"] = unfinished
        limiter["num_unfinished_live_trials"] = len(unfinished)
    atomic_write(searcher_path, pickle.dumps(searcher))
    atomic_write(gen_path, _cloudpickle().dumps(gen))
    return True


def _proposed(searcher: dict) -> set:
    return set(searcher.get("_ot_trials") or {}) | set(searcher.get("_group_of") or {})


def _optuna_trials(searcher: dict, missing: list[str]) -> Optional[dict]:
    """Ray trial id -> a live `optuna.Trial` of the searcher's study, for each missing id."""
    if not missing:
        return {}
    from archer_sweep.engine.searcher import RAY_TRIAL_ATTR

    study = searcher.get("_ot_study")
    if study is None:
        return None
    by_ray = {t.user_attrs.get(RAY_TRIAL_ATTR): t for t in study.get_trials(deepcopy=False)}
    if any(t not in by_ray for t in missing):
        return None
    return {t: libcompat.live_trial(study, by_ray[t]) for t in missing}


def _mend_repeats(searcher: dict, missing: list[str], sweep_dir: Path) -> Optional[dict]:
    """With search.repeats: the seeds the searcher file lacks join their config group from
    `groups.jsonl` (written before Tune saw the trial); the first seed of a new group also
    needs its Optuna trial."""
    groups = read_groups(sweep_dir)
    firsts = [t for t in missing if t in groups and int(groups[t]["seed_index"]) == 0]
    found = _optuna_trials(searcher, firsts)
    if found is None or any(t not in groups for t in missing):
        return None
    members, group_of = searcher["_members"], searcher["_group_of"]
    for tid in sorted(missing, key=lambda t: (groups[t]["group"], groups[t]["seed_index"])):
        group = int(groups[tid]["group"])
        group_of[tid] = group
        members.setdefault(group, []).append(tid)
        searcher["_done"].setdefault(group, {})
    searcher["_open"] = max(members, default=None)
    return found


def _load(path: Path, read):
    with open(path, "rb") as f:
        return read(f)


def _cloudpickle():
    import ray.cloudpickle as cloudpickle

    return cloudpickle
