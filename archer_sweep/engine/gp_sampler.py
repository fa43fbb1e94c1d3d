"""Optuna's GPSampler that also learns from the trials the rules stopped.

Optuna 5's GPSampler fits its objective and constraint models on COMPLETE trials only
(`sample_relative` reads `study._get_trials(states=(COMPLETE, RUNNING))`), so a runaway
that the criteria stopped, told as PRUNED with a violated "rules" constraint, is
invisible to it: the GP keeps proposing where the runaways were. `RulesAwareGPSampler`
shows it every PRUNED trial with a last report as a COMPLETE one whose value is that
report and whose constraint stays violated, so constrained EI learns where the rules
stop trials. The study itself is not changed: stopped trials stay PRUNED there.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Container
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from archer_sweep.engine import libcompat


def as_finished(trial: FrozenTrial) -> FrozenTrial | None:
    """A PRUNED trial as the COMPLETE one the GP should see (its last report as value), or
    None when it reported nothing finite."""
    if not trial.intermediate_values:
        return None
    value = trial.intermediate_values[max(trial.intermediate_values)]
    if not math.isfinite(value):
        return None
    shown = copy.copy(trial)
    shown.state = TrialState.COMPLETE
    shown.value = value
    return shown


class _StoppedAsComplete:
    """A read-through view of a study whose trial lists include stopped trials as finished."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None, use_cache: bool = False
    ) -> list[FrozenTrial]:
        trials = libcompat.trials_in(self._study, deepcopy=deepcopy, states=states, use_cache=use_cache)
        if states is None or TrialState.COMPLETE not in states or TrialState.PRUNED in states:
            return trials
        pruned = libcompat.trials_in(
            self._study, deepcopy=False, states=(TrialState.PRUNED,), use_cache=use_cache
        )
        shown = [t for t in map(as_finished, pruned) if t is not None]
        # the GP requires one set of constraint names over the trials it models
        names = {frozenset(t.constraints) for t in trials if t.state == TrialState.COMPLETE}
        if names:
            shown = [t for t in shown if frozenset(t.constraints) in names]
        return sorted(trials + shown, key=lambda t: t.number)


class RulesAwareGPSampler(optuna.samplers.GPSampler):
    """GPSampler whose models also see rule-stopped (PRUNED) trials; see the module doc."""

    def sample_relative(self, study, trial, search_space):
        return super().sample_relative(_StoppedAsComplete(study), trial, search_space)
