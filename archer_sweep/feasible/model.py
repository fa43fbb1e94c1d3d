"""A model of the feasible (healthy) region learnt from every past verdict,
and the acquisition `next` ranks candidates by: expected improvement × P(healthy)⁴, the
constrained Bayesian optimisation of Gardner et al. (2014) made risk-averse (a run that
turns out unhealthy costs a GPU-round; a missed small improvement costs little; the power
is RISK_POWER, chosen on the tuning seeds by bench/next_rounds.py), with two small,
readable models:

- P(healthy | x): a kernel-smoothed Beta–Bernoulli estimate over the past verdicts (healthy =
  1; stopped, unhealthy = 0) in the unit (log) parameter space: where there is no evidence it
  falls back to the prior, near evidence it follows the verdicts; along the monotone
  parameters a failed trial's evidence reaches further toward its failure side (more
  entropy bonus / less KL beyond a failure is no safer: `directed_weights`);
- the objective: a kernel-weighted mean of the finished trials' objectives (Nadaraya–Watson),
  shrunk to their overall mean, with an uncertainty that falls as evidence grows.
- a monotone prior (on by default for the entropy/KL pair): more entropy bonus or less KL
  never lowers the runaway risk. A point at least as risky as a past runaway (entropy_coeff
  ≥ and kl_loss_coef ≤ the runaway's) is excluded, and one at least as collapse-prone as a
  past entropy collapse likewise.
Everything here is pure numpy over arrays of unit coordinates: no I/O, no Optuna.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np

#: Parameter -> direction in which runaway risk grows (+1: with the value, -1: against it).
MONOTONE_DEFAULT: dict[str, int] = {"algorithm.entropy_coeff": +1, "algorithm.kl_loss_coef": -1}
RUNAWAY = "stopped:entropy_high"
COLLAPSE = "stopped:entropy_low"
BANDWIDTH = 0.12
"""Kernel width in the unit space: a trial informs points within about a tenth of each range."""
REACH = 0.0
"""How far a failed trial's evidence reaches toward its failure side (`directed_weights`): 0 =
a point beyond it along a monotone parameter weighs as if level with it. Chosen on the tuning
seeds 0–2 of the v2 table (bench/next_rounds.py): 1 → 0 lifted `next`'s healthy proposals
after a feasible sweep from 37 % to 58 % in round 2."""
RISK_POWER = 4
"""The acquisition is EI × P(healthy)^RISK_POWER: the smallest power whose `next` proposals
were ≥ 50 % healthy in every round after either kind of first round on the tuning seeds
(powers 2, 3, 4, 6, 8 tried, with REACH = 0; the best objective found was the same)."""


@dataclass(frozen=True)
class Evidence:
    """Past trials as arrays: `x` [n, d] in unit coordinates (columns = `keys`)."""

    keys: tuple[str, ...]
    x: np.ndarray
    healthy: np.ndarray
    """1.0 healthy, 0.0 anything else judged."""
    objective: np.ndarray
    """Objective of trials that finished (healthy or unhealthy); NaN for stopped ones."""
    verdicts: tuple[str, ...]


def weights(ev: Evidence, X: np.ndarray, bandwidth: float = BANDWIDTH) -> np.ndarray:
    """Gaussian kernel weights [m, n] between candidates X [m, d] and the evidence."""
    if len(ev.x) == 0:
        return np.zeros((len(X), 0))
    d2 = ((X[:, None, :] - ev.x[None, :, :]) ** 2).sum(-1)
    return np.exp(-d2 / (2 * bandwidth**2))


def failure_side(verdict: str) -> float:
    """+1: a failure on the runaway side (too much entropy bonus, too little KL); −1: on the
    collapse side; 0: healthy (its evidence reaches no further one way than the other)."""
    if verdict == "healthy":
        return 0.0
    return -1.0 if verdict == COLLAPSE else 1.0


def directed_weights(
    ev: Evidence, X: np.ndarray, directions: Mapping[str, int], reach: float, bandwidth: float = BANDWIDTH
) -> np.ndarray:
    """Kernel weights [m, n] whose failed trials reach further toward their failure side: along
    a monotone parameter, a candidate on the failing side of a failed trial is `reach` times as
    far from it as it is (1: the plain kernel; 0: as if level with it). Soft evidence of the
    monotone prior: a failure says that further the same way is no safer."""
    if len(ev.x) == 0:
        return np.zeros((len(X), 0))
    diff = X[:, None, :] - ev.x[None, :, :]
    scale = np.ones_like(diff)
    side = np.array([failure_side(v) for v in ev.verdicts])
    for k, sign in directions.items():
        if k in ev.keys and reach != 1.0:
            c = ev.keys.index(k)
            beyond = (side[None, :] * sign * diff[:, :, c]) > 0
            scale[:, :, c] = np.where(beyond, reach, 1.0)
    d2 = ((diff * scale) ** 2).sum(-1)
    return np.exp(-d2 / (2 * bandwidth**2))


def p_healthy(
    ev: Evidence,
    X: np.ndarray,
    bandwidth: float = BANDWIDTH,
    strength: float = 2.0,
    directions: Optional[Mapping[str, int]] = None,
    reach: float = REACH,
) -> np.ndarray:
    """Posterior mean per point of a Beta prior updated with kernel-weighted verdicts. The
    prior's mean is the healthy share of all past trials (with one healthy and one unhealthy
    pseudo-trial), so untried space is as promising as the search so far, not a coin flip.
    With `directions`, failed trials weigh with `directed_weights`."""
    base = (1.0 + ev.healthy.sum()) / (2.0 + len(ev.healthy))
    w = directed_weights(ev, X, directions, reach, bandwidth) if directions else weights(ev, X, bandwidth)
    return (strength * base + w @ ev.healthy) / (strength + w.sum(1))


def objective_model(
    ev: Evidence, X: np.ndarray, bandwidth: float = BANDWIDTH
) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) of the objective at X: kernel regression shrunk to the overall mean."""
    ok = np.isfinite(ev.objective)
    ys = ev.objective[ok]
    if len(ys) == 0:
        return np.zeros(len(X)), np.ones(len(X))
    m0 = float(ys.mean())
    s0 = float(ys.std()) if len(ys) > 1 and ys.std() > 0 else max(abs(m0), 1.0) * 0.5
    w = weights(Evidence(ev.keys, ev.x[ok], ev.healthy[ok], ys, ()), X, bandwidth)
    mean = (m0 + w @ ys) / (1.0 + w.sum(1))
    return mean, s0 / np.sqrt(1.0 + w.sum(1))


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float, sign: float = 1.0) -> np.ndarray:
    """EI of a Gaussian over `best` (sign = +1 to maximise, −1 to minimise)."""
    z = (sign * (mean - best)) / std
    pdf = np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    cdf = 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))
    return std * (z * cdf + pdf)


def monotone_exclusions(
    ev: Evidence, X: np.ndarray, directions: Mapping[str, int]
) -> tuple[np.ndarray, list[Optional[int]]]:
    """(mask of excluded candidates, index of the past trial that excluded each, or None).

    A candidate is excluded by a past runaway when it is at least as risky in every
    monotone parameter, by a past collapse when it is at least as safe in every one."""
    cols = [(ev.keys.index(k), s) for k, s in directions.items() if k in ev.keys]
    mask = np.zeros(len(X), dtype=bool)
    cause: list[Optional[int]] = [None] * len(X)
    if not cols:
        return mask, cause
    for i, verdict in enumerate(ev.verdicts):
        if verdict not in (RUNAWAY, COLLAPSE):
            continue
        toward = 1.0 if verdict == RUNAWAY else -1.0
        risky = np.all([toward * s * (X[:, c] - ev.x[i, c]) >= 0 for c, s in cols], axis=0)
        for j in np.flatnonzero(risky & ~mask):
            cause[j] = i
        mask |= risky
    return mask, cause


@dataclass(frozen=True)
class Scores:
    p_healthy: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    acquisition: np.ndarray
    excluded: np.ndarray
    cause: list[Optional[int]]


def score_candidates(
    ev: Evidence, X: np.ndarray, mode: str = "max", directions: Optional[Mapping[str, int]] = None
) -> Scores:
    """EI × P(healthy)^RISK_POWER per candidate; before any healthy trial, P(healthy) alone (find the
    feasible region first); excluded candidates score 0."""
    ph = p_healthy(ev, X, directions=directions)
    mean, std = objective_model(ev, X)
    sign = 1.0 if mode == "max" else -1.0
    feasible = np.isfinite(ev.objective) & (ev.healthy > 0)
    if feasible.any():
        best = float((sign * ev.objective[feasible]).max() * sign)
        acq = expected_improvement(mean, std, best, sign) * ph**RISK_POWER
    else:
        acq = ph.copy()
    excluded, cause = monotone_exclusions(ev, X, directions or {})
    ph = np.where(excluded, 0.0, ph)
    acq = np.where(excluded, 0.0, acq)
    return Scores(ph, mean, std, acq, excluded, cause)


def pick(X: np.ndarray, acq: np.ndarray, count: int, avoid: np.ndarray, min_gap: float = 0.05) -> list[int]:
    """Greedy: the best-scoring candidates at least `min_gap` from `avoid` and from each other."""
    chosen: list[int] = []
    taken = list(avoid)
    for j in np.argsort(-acq, kind="stable"):
        if len(chosen) == count:
            break
        if all(np.linalg.norm(X[j] - t) >= min_gap for t in taken):
            chosen.append(int(j))
            taken.append(X[j])
    return chosen


def evidence_of(
    rows: Sequence[tuple[Sequence[float], str, Optional[float]]], keys: Sequence[str]
) -> Evidence:
    """Evidence from (unit coordinates, verdict, objective) rows."""
    x = np.array([list(r[0]) for r in rows], dtype=float).reshape(len(rows), len(keys))
    healthy = np.array([1.0 if r[1] == "healthy" else 0.0 for r in rows])
    obj = np.array(
        [r[2] if r[2] is not None and not r[1].startswith("stopped") else math.nan for r in rows], dtype=float
    )
    return Evidence(tuple(keys), x, healthy, obj, tuple(r[1] for r in rows))
