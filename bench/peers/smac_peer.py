"""SMAC 2.4's multi-fidelity facades as search methods on the recorded world.

- `SMAC Hyperband`: `HyperbandFacade` (random configs, Hyperband brackets);
- `SMAC BO + Hyperband`: `MultiFidelityFacade` (its random-forest model proposes, Hyperband
  brackets; SMAC's own BOHB-like set-up).
The fidelity is the run's training steps, from the spec's scheduler settings (grace period
10 → max 60, η = reduction factor 3, so SMAC's budgets are 20 and 60); SMAC minimises, so it is
told −objective of the prefix played. The start config v1 is the first config of its initial
design; SMAC's own initial design (random configs) follows. A forced stop of the rules is told
as CRASHED at SMAC's crash cost, set to the worst value of the objective metric in the world
(SMAC's default, infinity, turns into NaN in its random forest's targets).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ConfigSpace import Configuration, ConfigurationSpace, Float
from decide_search import Trial
from resume import Resumer
from smac import HyperbandFacade, MultiFidelityFacade, Scenario
from smac.runhistory.dataclasses import TrialValue
from smac.runhistory.enumerations import StatusType
from world import V1, World

log = logging.getLogger(__name__)
FACADES = {"SMAC Hyperband": HyperbandFacade, "SMAC BO + Hyperband": MultiFidelityFacade}
IDLE_ASKS = 1000
"""Asks in a row that add no step (re-asks of finished runs) after which the search gives up."""


def _space(world: World, seed: int) -> ConfigurationSpace:
    # Short names: ConfigSpace reserves no character, but the spec's dots read as nesting in logs.
    cs = ConfigurationSpace(seed=seed)
    for name, dist in world.space.items():
        cs.add(Float(name.split(".")[-1], (dist.low, dist.high), log=dist.log))
    return cs


def _params(world: World, config: Configuration) -> dict:
    values = dict(config)
    return {name: float(values[name.split(".")[-1]]) for name in world.space}


def _not_called(config, seed: int = 0, budget: float = 0.0) -> float:
    """SMAC checks a target function's signature; in ask-and-tell it never calls it."""
    raise RuntimeError("the bench plays trials by ask and tell")


def _sign(world: World) -> float:
    """SMAC minimises a cost: the objective's sign for it."""
    return -1.0 if world.settings.mode == "max" else 1.0


def _crash_cost(world: World) -> float:
    metric = world.settings.metric
    return max(_sign(world) * float(r[metric]) for run in world.runs.values() for r in run.steps)


def _facade(name: str, world: World, seed: int, out: Path):
    facade = FACADES[name]
    st = world.settings
    last = min(r.last_step for r in world.runs.values())
    scenario = Scenario(
        _space(world, seed),
        deterministic=True,  # the seed of a trial is the bench's common random number, not SMAC's
        n_trials=100_000,  # the bench's trial-step budget ends the search, not SMAC's count
        min_budget=st.grace_period,
        max_budget=last,
        seed=seed,
        crash_cost=_crash_cost(world),
        output_directory=out,
    )
    start = Configuration(scenario.configspace, values={k.split(".")[-1]: v for k, v in V1.items()})
    design = facade.get_initial_design(scenario, additional_configs=[start])
    # SMAC appends additional configs after its random ones; v1 first, as every bench method.
    configs = design.select_configurations()
    design.select_configurations = lambda: [start, *(c for c in configs if c != start)]
    intensifier = facade.get_intensifier(scenario, eta=int(st.reduction_factor))
    return facade(
        scenario,
        _not_called,
        initial_design=design,
        intensifier=intensifier,
        overwrite=True,
        logging_level=logging.ERROR,
    )


def smac_search(name: str, world: World, seeds: list[int], bench_seed: int, rules: bool) -> Iterator[Trial]:
    resumer = Resumer(world, seeds, rules)
    with tempfile.TemporaryDirectory(prefix="smac-") as tmp:
        smac = _facade(name, world, bench_seed, Path(tmp))
        idle = 0
        while idle < IDLE_ASKS:
            info = smac.ask()
            params = _params(world, info.config)
            cid = tuple(sorted(params.items()))
            # Model proposals: the acquisition maximiser's configs, not the initial design or
            # SMAC's interleaved random ones.
            proposed = (info.config.origin or "").startswith("Acquisition Function Maximizer")
            step = resumer.play(cid, params, round(info.budget), proposed)
            if step.value is None:
                smac.tell(info, TrialValue(cost=smac.scenario.crash_cost, status=StatusType.CRASHED))
            else:
                smac.tell(info, TrialValue(cost=_sign(world) * step.value))
            idle = 0 if step.trial.steps else idle + 1
            yield step.trial
        log.warning("%s: %d asks in a row added no step; the search ends", name, IDLE_ASKS)
