"""syne-tune 0.16's multi-fidelity schedulers as search methods on the recorded world.

- `syne-tune ASHA`: asynchronous successive halving, random configs;
- `syne-tune BOHB`: ASHA with its kernel-density (TPE-like) searcher;
- `syne-tune ASHA-BORE`: ASHA with BORE's classifier-based searcher (xgboost).
Rungs from the spec's scheduler settings (grace period 10, reduction factor 3, max 60: rungs
at 10 and 30), the objective metric reported every step and the scheduler asked each time, as
syne-tune's Tuner would; trials run one after another. v1 is the first of
`points_to_evaluate`. A forced stop of the rules is told as a failed trial (`on_trial_error`).
syne-tune does not say which configs its model chose, so no trial counts as a model proposal.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator

from decide_search import Trial
from resume import Resumer
from syne_tune.backend.trial_status import Trial as StTrial
from syne_tune.config_space import loguniform, uniform
from syne_tune.optimizer.baselines import ASHA, ASHABORE, BOHB
from syne_tune.optimizer.scheduler import SchedulerDecision
from world import V1, World

SCHEDULERS = {"syne-tune ASHA": ASHA, "syne-tune BOHB": BOHB, "syne-tune ASHA-BORE": ASHABORE}
SLOW = {"syne-tune ASHA-BORE"}
"""Seconds a search (an xgboost classifier refit at every suggestion): run on request."""
STEP = "step"


def _scheduler(name: str, world: World, seed: int):
    st = world.settings
    space = {k: (loguniform if d.log else uniform)(d.low, d.high) for k, d in world.space.items()}
    return SCHEDULERS[name](
        space,
        metric=st.metric,
        time_attr=STEP,
        max_t=min(r.last_step for r in world.runs.values()),
        do_minimize=st.mode == "min",
        random_seed=seed,
        grace_period=st.grace_period,
        reduction_factor=st.reduction_factor,
        points_to_evaluate=[dict(V1)],
    )


def synetune_search(
    name: str, world: World, seeds: list[int], bench_seed: int, rules: bool
) -> Iterator[Trial]:
    scheduler = _scheduler(name, world, bench_seed)
    resumer = Resumer(world, seeds, rules)
    metric = world.settings.metric
    for trial_id in range(len(seeds)):
        suggestion = scheduler.suggest()
        if suggestion is None:
            return
        params = {k: float(suggestion.config[k]) for k in world.space}
        st_trial = StTrial(trial_id, suggestion.config, datetime.datetime.now())
        scheduler.on_trial_add(st_trial)
        key = resumer.key_of(trial_id, params)
        _, end = resumer.end(key)
        stop_at = end
        for rep in world.runs[key].steps:
            step = int(rep[STEP])
            if step > end:
                break
            decision = scheduler.on_trial_result(st_trial, {metric: float(rep[metric]), STEP: step})
            if decision == SchedulerDecision.STOP and step < end:
                stop_at = step
                break
        played = resumer.play(trial_id, params, stop_at)
        if stop_at < end:
            yield Trial(params, key, played.trial.steps, "pruned", False, None)
            continue
        if played.value is None:
            scheduler.on_trial_error(st_trial)
        else:
            scheduler.on_trial_complete(st_trial, {metric: played.value, STEP: end})
        yield played.trial
