"""Search methods on the recorded world (bench/decisions.py): how many trial-steps until the
first healthy config, and the best healthy objective within a fixed budget.

Every method starts from the user's current config (the seed's v1, entropy_coeff 0.01,
kl_loss_coef 0.01) as its first trial and searches the spec's space. Trial k of every
method plays recorded seed `seeds[k]` of whatever config it snaps to (common random
numbers: the methods differ only in what they propose). Trials run one after another.
- `hunt (archer-sweep)`: round 1 = the spec's sampler (sweeps/replay.yaml: `feasible`, the
  feasible-region model proposing from the second trial on) with v1 enqueued, trials told
  to Optuna as `CriteriaOptunaSearch` tells them (stopped → PRUNED, verdict → constraint
  and the `archer_verdict` user attr); later rounds = `planning.nextver.propose` over every
  earlier trial, `round_size` proposals a round; criteria stopping throughout;
- `hunt, next by TPE (before)`: the same with `next --method tpe` (its behaviour before
  the feasible-region model);
- `hunt, sweep sampler TPE (before)`: the same with round 1 by TPE with 4 random startup
  trials (the spec's sampler before the `feasible` sampler);
- `run (archer-sweep, one sweep)`: round 1 only, as long as the budget lasts;
- `TPE + MedianPruner`: Optuna's documented set-up, the objective reported every step;
- `TPE + HyperbandPruner`: the same with Optuna's Hyperband (min resource 1 step, max the
  full run, η = 3);
- `GP (Optuna)`, `random`: no stopping;
- `TPE + rules`, `GP + rules`, `random + rules`: one archer-sweep sweep with that `sampler`
  (10 startup trials as Optuna's default; `gp` is the product's GP that also models the
  rule-stopped trials): the rules' constraint and stops added to each plain search, so the
  value of the rules and of the search show apart;
- `manual halving`: the seed author's method: after a trial that is not healthy, halve
  entropy_coeff when entropy went up (a runaway, or ended above the middle of the healthy
  band), double it when entropy went down; kl_loss_coef stays; stopped by the rules'
  thresholds (the author killed runs by the same table), a decided run watched to its end.
A trial is healthy when the table calls its played run healthy and the method let it finish.
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState
from world import EC, KL, RUNAWAY, V1, Key, World, cached_world

from archer_sweep.engine.searcher import make_sampler
from archer_sweep.objective import CONSTRAINT_KEY, VERDICT_ATTR, constraint_for, optuna_outcome
from archer_sweep.planning.nextver import PastTrial, propose
from trainable.metrics import ENTROPY

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


@dataclass
class Trial:
    params: dict
    key: Key
    steps: int
    verdict: str
    """The verdict the method saw (`pruned` for an Optuna prune)."""
    healthy: bool
    objective: float | None
    proposed: bool = False
    """Proposed by a model (not the enqueued start, not a startup/random draw)."""


def _criteria_trial(world: World, params: dict, seed: int, proposed: bool = False, stops=None) -> Trial:
    key = world.snap(params, seed)
    verdict, used = (stops or world.stop)[key]
    ok = verdict == "healthy"
    return Trial(params, key, used, verdict, ok, world.objective[key] if ok else None, proposed)


def _tell_like_the_searcher(world: World, study: optuna.Study, ot: optuna.Trial, t: Trial) -> None:
    st = world.settings
    for rep in world.runs[t.key].steps[: t.steps]:
        ot.report(float(rep[st.metric]), int(rep["step"]))
    ot.set_constraint(CONSTRAINT_KEY, constraint_for(t.verdict))
    ot.set_user_attr(VERDICT_ATTR, {"verdict": t.verdict, "step": t.steps})
    name, value = optuna_outcome(t.verdict, world.objective[t.key])
    study.tell(ot, value, state=TrialState[name])


def _past(world: World, trials: list[Trial]) -> list[PastTrial]:
    st = world.settings
    out = []
    for i, t in enumerate(trials):
        steps = world.runs[t.key].steps[: t.steps]
        progress = {int(r["step"]): float(r[st.metric]) for r in steps if math.isfinite(r[st.metric])}
        objective = world.objective[t.key] if not t.verdict.startswith("stopped:") else None
        out.append(PastTrial(f"t{i}", dict(t.params), t.verdict, objective, "bench", progress, t.steps))
    return out


def hunt(
    world: World,
    seeds: list[int],
    sampler_seed: int,
    round_size: int,
    rounds: bool = True,
    method: str = "feasible",
    sampler: tuple[str, int] | None = None,
):
    """`sampler`: (type, n_startup_trials) of round 1 instead of the spec's."""
    spec = world.spec.search
    kind, startup = sampler or (spec.sampler.type, spec.sampler.n_startup_trials)
    sampler = make_sampler(kind, sampler_seed, startup, world.space)
    study = optuna.create_study(direction="maximize" if spec.mode == "max" else "minimize", sampler=sampler)
    study.enqueue_trial(dict(V1))
    trials: list[Trial] = []
    k = 0
    for _ in range(round_size if rounds else len(seeds)):
        ot = study.ask(world.space)
        t = _criteria_trial(world, dict(ot.params), seeds[k], proposed=k >= max(startup, 1))
        _tell_like_the_searcher(world, study, ot, t)
        trials.append(t)
        k += 1
        yield t
    while rounds and k < len(seeds):
        props = propose(
            _past(world, trials), world.space, spec.mode, round_size, seed=sampler_seed, method=method
        )
        for p in props:
            if k >= len(seeds):
                break
            t = _criteria_trial(world, dict(p.params), seeds[k], proposed=True)
            trials.append(t)
            k += 1
            yield t


def _optuna_plain(
    world: World,
    seeds: list[int],
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner | None,
    startup: int,
):
    st = world.settings
    prune = pruner is not None
    pruner = pruner or optuna.pruners.NopPruner()
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    study.enqueue_trial(dict(V1))
    for k, seed in enumerate(seeds):
        ot = study.ask(world.space)
        key = world.snap(ot.params, seed)
        stop = None
        for rep in world.runs[key].steps:
            step = int(rep["step"])
            ot.report(float(rep[st.metric]), step)
            if prune and ot.should_prune():
                stop = step
                break
        if stop is None:
            study.tell(ot, world.objective[key])
            ok = world.truth[key] == "healthy"
            verdict, steps = world.truth[key], world.runs[key].last_step
        else:
            study.tell(ot, state=TrialState.PRUNED)
            ok, verdict, steps = False, "pruned", stop
        yield Trial(
            dict(ot.params), key, steps, verdict, ok, world.objective[key] if ok else None, k >= startup
        )


def manual(world: World, seeds: list[int]) -> Iterator[Trial]:
    ec, kl = V1[EC], V1[KL]
    lo, hi = world.space[EC].low, world.space[EC].high
    band = next((r.between for r in world.rules if r.metric == ENTROPY and r.between), (3.0, 6.0))
    before = world.stops_of("before")  # the author's own table: thresholds, runs to their end
    for seed in seeds:
        t = _criteria_trial(world, {EC: ec, KL: kl}, seed, stops=before)
        yield t
        if t.healthy:
            continue
        # The author read the entropy curve: up (a runaway, or drifting above the middle of
        # the healthy band) → halve the bonus; down (a collapse) → double it.
        last = world.runs[t.key].steps[t.steps - 1].get(ENTROPY, math.nan)
        up = t.verdict == RUNAWAY or (t.verdict != "stopped:entropy_low" and last > sum(band) / 2)
        ec = max(ec / 2, lo) if up else min(ec * 2, hi)


MethodFn = Callable[[World, list[int], int], Iterator[Trial]]
"""A search method: (world, recorded seed of trial k, bench seed) → its trials, in order."""

METHODS: dict[str, MethodFn] = {
    "hunt (archer-sweep)": lambda w, seeds, s: hunt(w, seeds, s, round_size=w.spec.search.num_samples),
    "hunt, next by TPE (before)": lambda w, seeds, s: hunt(
        w, seeds, s, round_size=w.spec.search.num_samples, method="tpe"
    ),
    "hunt, sweep sampler TPE (before)": lambda w, seeds, s: hunt(
        w, seeds, s, round_size=w.spec.search.num_samples, sampler=("tpe", 4)
    ),
    "run (archer-sweep, one sweep)": lambda w, seeds, s: hunt(w, seeds, s, 0, rounds=False),
    # Optuna's defaults: TPE and GP draw their first 10 trials at random (the enqueued v1 among them).
    "TPE + MedianPruner (Optuna)": lambda w, seeds, s: _optuna_plain(
        w, seeds, optuna.samplers.TPESampler(seed=s), optuna.pruners.MedianPruner(), startup=10
    ),
    # Hyperband over the recorded steps: brackets from min_resource 1 to the full 60-step run
    "TPE + HyperbandPruner (Optuna)": lambda w, seeds, s: _optuna_plain(
        w,
        seeds,
        optuna.samplers.TPESampler(seed=s),
        optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=max(r.last_step for r in w.runs.values()), reduction_factor=3
        ),
        startup=10,
    ),
    "GP (Optuna)": lambda w, seeds, s: _optuna_plain(
        w, seeds, optuna.samplers.GPSampler(seed=s), None, startup=10
    ),
    "random": lambda w, seeds, s: _optuna_plain(
        w, seeds, optuna.samplers.RandomSampler(seed=s), None, startup=len(seeds)
    ),
    # The same samplers with the rules able to stop a trial and told as the product's searcher
    # tells them (verdict as constraint, stopped → PRUNED): what the rules add to each search.
    "TPE + rules (sampler: tpe)": lambda w, seeds, s: hunt(w, seeds, s, 0, rounds=False, sampler=("tpe", 10)),
    "GP + rules (sampler: gp)": lambda w, seeds, s: hunt(w, seeds, s, 0, rounds=False, sampler=("gp", 10)),
    "random + rules": lambda w, seeds, s: hunt(w, seeds, s, 0, rounds=False, sampler=("random", len(seeds))),
    "manual halving (seed author)": lambda w, seeds, s: manual(w, seeds),
}


@dataclass
class SearchScore:
    to_first_healthy: float
    """Trial-steps until the first healthy trial finished (inf: none within the cap)."""
    best_at_budget: float | None
    """Best healthy objective among trials finished within the budget (None: none)."""
    outcome_at_budget: float | None
    """Outcome (best validation) of that trial, the config a user would ship (None: none, or no
    validation in the table)."""
    proposed: int
    proposed_healthy: float
    """Sum over model-proposed trials of their config's healthy share in the table."""
    trace: tuple[tuple[int, float | None], ...] = ()
    """After each trial: (trial-steps used, outcome of the incumbent), the incumbent being the
    best-objective healthy trial so far (None: none yet); what anytime curves are drawn from."""


def run_method(
    world: World,
    method: str,
    bench_seed: int,
    budget: int,
    cap: int,
    methods: Mapping[str, MethodFn] = METHODS,
    shortest_trial: int | None = None,
) -> SearchScore:
    """`methods`: where `method` is looked up (bench/peers registers its own); `shortest_trial`:
    the fewest trial-steps a trial may use (default a full run), which sizes the seed list. The
    list is one stream of draws, so a longer one keeps every earlier trial's seed."""
    rng = random.Random(10_000 + bench_seed)
    max_trials = cap // (shortest_trial or min(world.runs[k].last_step for k in world.runs)) + 1
    seeds = [rng.choice(world.seeds) for _ in range(4 * max_trials)]
    used, first, best, outcome = 0, math.inf, None, None
    proposed, share = 0, 0.0
    trace, incumbent, incumbent_outcome = [], None, None
    for t in methods[method](world, seeds, bench_seed):
        used += t.steps
        if t.proposed:
            proposed += 1
            share += world.healthy_share(t.key[:2])
        if t.healthy and math.isinf(first):
            first = used
        if t.healthy and used <= budget and (best is None or t.objective > best):
            best, outcome = t.objective, world.outcome.get(t.key)
        if t.healthy and (incumbent is None or t.objective > incumbent):
            incumbent, incumbent_outcome = t.objective, world.outcome.get(t.key)
        trace.append((used, incumbent_outcome))
        if used >= max(cap, budget) or (used >= budget and not math.isinf(first)):
            break
    return SearchScore(first, best, outcome, proposed, share, tuple(trace))


def search_job(args: tuple) -> tuple[str, int, SearchScore]:
    """One (method, seed) for a process pool: the world is loaded once per process."""
    method, seed, budget, cap = args
    return method, seed, run_method(cached_world(), method, seed, budget, cap)
