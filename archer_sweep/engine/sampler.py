"""`sampler: {type: feasible}`: the feasible-region model of `next` (archer_sweep/feasible/)
as the live sweep's Optuna sampler, so the sweep itself learns where the cliff is.

Each new trial is proposed from every finished trial of the study: its verdict (the
`archer_verdict` user attr that `CriteriaOptunaSearch` writes before it tells Optuna) and
its objective. Before any trial is healthy it goes where P(healthy) is highest; after,
where expected improvement × P(healthy)⁴ is; with the monotone prior on the entropy/KL
pair, nothing at least as risky as a past runaway (or as collapse-prone as a past
collapse) is proposed. Running trials are kept at a distance, as proposals are. The first
`n_startup_trials` (0 by default: one finished trial is evidence enough) and any
parameter the model cannot place (a choice) are drawn at random."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from archer_sweep.feasible import model as F
from archer_sweep.feasible.space import candidates, from_unit, to_unit
from archer_sweep.objective import CONSTRAINT_KEY, LOST_ATTR, VERDICT_ATTR

JUDGED = (TrialState.COMPLETE, TrialState.PRUNED)


def verdict_of(trial: FrozenTrial) -> str:
    """The rules' verdict of a finished trial; from its state and constraint when the
    trial was told by something other than the criteria searcher."""
    row = trial.user_attrs.get(VERDICT_ATTR)
    if isinstance(row, Mapping) and row.get("verdict"):
        return str(row["verdict"])
    if trial.state == TrialState.PRUNED:
        return "stopped:pruned"
    flag = (trial.constraints or {}).get(CONSTRAINT_KEY)
    return "unhealthy" if flag is not None and flag > 0 else "healthy"


def _index(trials: list[FrozenTrial], number: int) -> int:
    """The trial's place among the sweep's configs: its number without the trials lost with a
    killed driver before it, so a resumed sweep draws the candidates the uninterrupted one did."""
    return sum(t.number < number and LOST_ATTR not in t.user_attrs for t in trials)


class FeasibleSampler(optuna.samplers.BaseSampler):
    def __init__(
        self,
        space: Mapping[str, BaseDistribution],
        seed: Optional[int] = None,
        n_startup_trials: int = 0,
        monotone: bool = True,
    ):
        # Only ranges have unit coordinates; choices are drawn at random.
        self._space = {k: d for k, d in space.items() if hasattr(d, "low") and not d.single()}
        self._seed = seed
        self._startup = n_startup_trials
        self._directions = F.MONOTONE_DEFAULT if monotone else {}
        self._random = optuna.samplers.RandomSampler(seed=seed)

    def reseed_rng(self) -> None:
        self._random.reseed_rng()

    def infer_relative_search_space(self, study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return dict(self._space)

    def sample_relative(self, study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict:
        if not search_space:
            return {}
        trials = study.get_trials(deepcopy=False)
        judged = [t for t in trials if t.state in JUDGED and all(k in t.params for k in search_space)]
        if len(judged) < max(self._startup, 1):
            return {}  # sample_independent draws at random
        keys = list(search_space)
        rows = [
            (
                [to_unit(k, t.params[k], search_space) for k in keys],
                verdict_of(t),
                t.value if t.state == TrialState.COMPLETE else None,
            )
            for t in judged
        ]
        ev = F.evidence_of(rows, keys)
        running = [
            [to_unit(k, t.params[k], search_space) for k in keys]
            for t in trials
            if t.state == TrialState.RUNNING and t.number != trial.number and all(k in t.params for k in keys)
        ]
        seed = None if self._seed is None else self._seed + _index(trials, trial.number)
        X = candidates(ev, len(keys), seed)
        mode = "max" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "min"
        s = F.score_candidates(ev, X, mode, self._directions)
        avoid = np.vstack([ev.x, np.array(running).reshape(-1, len(keys))])
        chosen = F.pick(X, s.acquisition, 1, avoid)
        if not chosen:
            return {}
        return {k: from_unit(k, X[chosen[0], i], search_space) for i, k in enumerate(keys)}

    def sample_independent(
        self, study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)
