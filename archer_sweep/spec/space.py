"""The search space: spec distributions -> Optuna distributions, dotted keys -> nested config.

A space key is a dotted path into the nested trainable config
(`algorithm.entropy_coeff` is `config["algorithm"]["entropy_coeff"]`).
Distribution types (`ParamSpec.type`):

| type | fields | Optuna |
|---|---|---|
| uniform | low, high, step?, log? | FloatDistribution(low, high, step=step, log=log) |
| loguniform | low > 0, high | FloatDistribution(low, high, log=True) |
| int | low, high, step?, log? | IntDistribution(low, high, step=step or 1, log=log) |
| choice | values | CategoricalDistribution(values) |
| fixed | value | none: `fixed_params` sets it on every trial |

`param_problem` is the one place the shape of a distribution is checked; the spec
validator turns its answer into a `FILE:LINE` message. Optuna is imported lazily so
that `archer-sweep validate` stays fast.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # pragma: no cover
    from optuna.distributions import BaseDistribution

    from archer_sweep.spec.model import ParamSpec

SEED_KEY = "trainer.seed"
"""The trainer's seed as a space key: what `search.repeats` varies per seed, and what picks a
recorded seed in the replay backend."""

NEEDS: dict[str, tuple[str, ...]] = {
    "uniform": ("low", "high"),
    "loguniform": ("low", "high"),
    "int": ("low", "high"),
    "choice": ("values",),
    "fixed": ("value",),
}
"""Fields each distribution type requires."""
ALLOWED: dict[str, tuple[str, ...]] = {
    "uniform": ("low", "high", "step", "log"),
    "loguniform": ("low", "high"),
    "int": ("low", "high", "step", "log"),
    "choice": ("values",),
    "fixed": ("value",),
}
"""Fields each distribution type accepts (besides `type`)."""
SCALAR_TYPES = (type(None), bool, int, float, str)
"""What Optuna's CategoricalDistribution can store."""


def _space(spec: Any) -> Mapping[str, ParamSpec]:
    """Accept a SweepSpec, a SearchSpec or the space mapping itself."""
    search = getattr(spec, "search", spec)
    return getattr(search, "space", search)


def _float(p: ParamSpec) -> BaseDistribution:
    from optuna.distributions import FloatDistribution

    log = p.type == "loguniform" or p.log
    return FloatDistribution(p.low, p.high, log=log, step=None if log else p.step)


def _int(p: ParamSpec) -> BaseDistribution:
    from optuna.distributions import IntDistribution

    return IntDistribution(int(p.low), int(p.high), log=p.log, step=int(p.step or 1))


def _choice(p: ParamSpec) -> BaseDistribution:
    from optuna.distributions import CategoricalDistribution

    return CategoricalDistribution(list(p.values))


DISTRIBUTIONS: dict[str, Callable[[ParamSpec], BaseDistribution]] = {
    "uniform": _float,
    "loguniform": _float,
    "int": _int,
    "choice": _choice,
}
"""Searched types -> Optuna distribution builder (`fixed` is not searched)."""


def to_optuna_space(spec: Any) -> dict[str, BaseDistribution]:
    """Dotted key -> Optuna distribution for every searched (non-fixed) parameter."""
    return {key: DISTRIBUTIONS[p.type](p) for key, p in _space(spec).items() if p.type != "fixed"}


def fixed_params(spec: Any) -> dict[str, Any]:
    """Dotted key -> value of every `fixed` parameter (set on every trial)."""
    return {key: copy.deepcopy(p.value) for key, p in _space(spec).items() if p.type == "fixed"}


def base_config(spec: Any) -> dict:
    """The trainable config every trial starts from: the spec's config, backend and `fixed`
    parameters (sampled params are applied on top by the searcher)."""
    config = {"backend": spec.trainable.backend, **dict(spec.trainable.config)}
    return apply_params(config, fixed_params(spec))


def total_steps(spec: Any) -> Optional[int]:
    """Steps per trial: the spec's `trainer.total_steps`, else the backend's default; None when
    the backend has no step budget (or its config no longer validates). The run summary, the
    report and the scheduler all read it here, so they agree."""
    steps = (spec.trainable.config.get("trainer") or {}).get("total_steps")
    if steps is None:
        from trainable import validate_config  # the backend registry: only when the spec is silent

        try:
            trainer = getattr(validate_config(base_config(spec)), "trainer", None)
        except (ValueError, ImportError):
            return None
        steps = getattr(trainer, "total_steps", None)
    return int(steps) if steps is not None else None


def apply_params(base_config: Mapping[str, Any], params: Mapping[str, Any]) -> dict:
    """A deep copy of `base_config` with each dotted key of `params` set (sections created)."""
    out = copy.deepcopy(dict(base_config))
    for key, value in params.items():
        *parents, leaf = key.split(".")
        node = out
        for i, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                where = ".".join(parents[: i + 1])
                raise ValueError(f"cannot set {key=}: `{where}` holds {child!r}, not a section")
            node = child
        node[leaf] = copy.deepcopy(value)
    return out


def sample_values(p: ParamSpec) -> list[Any]:
    """Values that span the distribution (its bounds, every choice), for validation."""
    if p.type == "fixed":
        return [p.value]
    if p.type == "choice":
        return list(p.values or [])
    if p.type == "int":
        return [int(p.low), int(p.high)]
    return [p.low, p.high]


def contains(p: ParamSpec, x: Any) -> bool:
    """Is `x` a value the distribution can produce? (for points_to_evaluate)"""
    if p.type == "fixed":
        return x == p.value
    if p.type == "choice":
        return any(x == v and type(x) is type(v) for v in p.values or [])
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    if p.type == "int" and not float(x).is_integer():
        return False
    return p.low <= x <= p.high


def _integral(x: Optional[float]) -> bool:
    return x is None or float(x).is_integer()


def param_problem(p: ParamSpec, given: set[str]) -> Optional[tuple[str, str]]:
    """(field, problem) for the first thing wrong with a distribution, else None.

    `given` is the set of fields the user wrote (to tell "absent" from "null").
    """
    for name in NEEDS[p.type]:
        if name not in given or (name != "value" and getattr(p, name) is None):
            return name, f"missing for type {p.type} (expected {', '.join(NEEDS[p.type])})"
    for name in sorted(given - {"type"} - set(ALLOWED[p.type])):
        return name, f"does not apply to type {p.type} (expected only {', '.join(ALLOWED[p.type])})"
    if p.type == "choice":
        return _choice_problem(p.values)
    if p.type == "fixed":
        return None
    return _range_problem(p)


def _choice_problem(values: list) -> Optional[tuple[str, str]]:
    if not values:
        return "values", "empty list (expected at least one candidate)"
    for v in values:
        if not isinstance(v, SCALAR_TYPES) or (isinstance(v, float) and not math.isfinite(v)):
            return (
                "values",
                f"candidate {v!r} is not a plain value (expected null, true/false, "
                "a finite number or a string)",
            )
    if len({(type(v), v) for v in values}) != len(values):
        return "values", "repeated candidate (expected distinct values)"
    return None


def _range_problem(p: ParamSpec) -> Optional[tuple[str, str]]:
    log = p.type == "loguniform" or p.log
    if p.type == "int" and not (_integral(p.low) and _integral(p.high) and _integral(p.step)):
        bad = next(n for n in ("low", "high", "step") if not _integral(getattr(p, n)))
        return bad, f"{getattr(p, bad):g} is not a whole number (expected an integer for type int)"
    if p.low >= p.high:
        return "low", f"low={p.low:g} >= high={p.high:g} (expected low < high)"
    if log and p.low <= 0:
        return "low", f"low={p.low:g} on a log scale (expected low > 0)"
    if p.step is not None:
        if log and p.step != 1:
            return "step", f"step={p.step:g} with a log scale (expected no step, or step 1 for int)"
        if p.step <= 0:
            return "step", f"step={p.step:g} (expected step > 0)"
        if p.step > p.high - p.low:
            return (
                "step",
                f"step={p.step:g} is wider than high - low={p.high - p.low:g} (expected step <= high - low)",
            )
    return None
