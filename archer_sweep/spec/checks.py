"""Checks across fields of a parsed spec (what one pydantic field cannot know alone).

Each check raises the first problem as a `SpecError` located at the offending key:
the backend and its trainer config (validated with the backend's own pydantic model,
so `trainable.config` errors point at their line), files the config names (the
backend's `check`, e.g. the hf backend's data sets), the space (distribution shape,
keys that exist in the trainer config, values the trainer accepts), the
points_to_evaluate, the rules (`rule_checks`), the metric keys the backend reports,
and the resources a local Ray can give.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any, Optional

from pydantic import BaseModel, ValidationError

from archer_sweep.spec import space as sp
from archer_sweep.spec.errors import (
    did_you_mean,
    error_loc,
    given_fields,
    located,
    message_for,
    show,
    validate_model,
)
from archer_sweep.spec.rule_checks import check_rules

CONFIG = ("trainable", "config")
SPACE = ("search", "space")


def check_spec(spec: Any, data: dict, lines: Any) -> None:
    model = _trainer_model(spec, lines)
    trainer = _check_trainer(spec, model, lines)
    _check_backend_files(spec, trainer, lines)
    _check_space(spec, model, lines)
    _check_points(spec, lines)
    _check_repeats(spec, lines)
    check_rules(spec, lines, step_budget(spec, trainer))
    _check_scheduler(spec, lines, step_budget(spec, trainer))
    _check_metrics(spec, trainer, lines)
    _check_trainer_gpus(spec, trainer, lines)
    _check_resources(spec, lines)


def _trainer_model(spec: Any, lines: Any) -> type[BaseModel]:
    from trainable.backends import BACKENDS, load_object

    name = spec.trainable.backend
    if ":" in name and name not in BACKENDS:  # a user's own `package.module:Class` backend
        from trainable.backends import backend_entry
        from trainable.config import ConfigError

        try:
            return load_object(backend_entry(name).config)
        except (ConfigError, ImportError, AttributeError) as exc:
            raise located(lines, ("trainable", "backend"), str(exc)) from None
    if name not in BACKENDS:
        raise located(
            lines,
            ("trainable", "backend"),
            f"unknown backend {show(name)}{did_you_mean(name, BACKENDS)} "
            f"(expected one of {', '.join(BACKENDS)})",
        )
    try:
        return load_object(BACKENDS[name].config)
    except (ImportError, AttributeError) as exc:
        raise located(
            lines,
            ("trainable", "backend"),
            f"backend {show(name)} cannot load its config ({type(exc).__name__}: {exc}) "
            "(expected an installed backend)",
        ) from None


def _base_config(spec: Any, model: type[BaseModel], lines: Any) -> dict:
    cfg = dict(spec.trainable.config)
    name = spec.trainable.backend
    if "backend" in cfg and cfg["backend"] != name:
        raise located(
            lines,
            CONFIG + ("backend",),
            f"{show(cfg['backend'])} contradicts trainable.backend {show(name)} "
            "(expected the same backend, or no backend key here)",
        )
    if "backend" in model.model_fields:
        cfg["backend"] = name
    return cfg


def _check_trainer(spec: Any, model: type[BaseModel], lines: Any) -> BaseModel:
    return validate_model(model, _base_config(spec, model, lines), lines, prefix=CONFIG)


def _check_backend_files(spec: Any, trainer: BaseModel, lines: Any) -> None:
    """The backend's own check of files its config names (the hf backend's data sets)."""
    from trainable.backends import BACKENDS, load_object
    from trainable.config import ConfigError

    entry = BACKENDS.get(spec.trainable.backend)
    if entry is None or not entry.check:
        return
    try:
        load_object(entry.check)(trainer)
    except ConfigError as exc:
        path = CONFIG + tuple(exc.path.split(".")) if exc.path else CONFIG
        raise located(lines, path, exc.message) from None


def step_budget(spec: Any, trainer: Optional[BaseModel]) -> Optional[int]:
    """Fewest steps a trial can run (trainer.total_steps; the smallest searched value)."""
    own = getattr(trainer, "steps_budget", None)  # backends whose budget lives elsewhere
    budget = own() if callable(own) else getattr(getattr(trainer, "trainer", None), "total_steps", None)
    searched = spec.search.space.get("trainer.total_steps")
    if searched is not None:
        values = [v for v in sp.sample_values(searched) if isinstance(v, (int, float))]
        budget = int(min(values)) if values else budget
    return budget if isinstance(budget, int) else None


def config_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted leaf key of a trainer config model (for did-you-mean)."""
    from archer_sweep.spec.errors import model_at

    out = []
    for name in model.model_fields:
        sub = model_at(model, (name,))
        out += config_keys(sub, f"{prefix}{name}.") if sub else [f"{prefix}{name}"]
    return out


def _key_exists(model: type[BaseModel], key: str) -> bool:
    from archer_sweep.spec.errors import model_at

    parts = key.split(".")
    for depth, part in enumerate(parts):
        parent = model_at(model, parts[:depth])
        if parent is None:  # a leaf or free-form section: deeper keys are the model's business
            return depth > 0
        if part not in parent.model_fields:
            return False
    return True


def _check_space(spec: Any, model: type[BaseModel], lines: Any) -> None:
    base = _base_config(spec, model, lines)
    for key, p in spec.search.space.items():
        problem = sp.param_problem(p, given_fields(p))
        if problem:
            raise located(lines, SPACE + (key, problem[0]), problem[1])
        if not _key_exists(model, key) or key == "backend":
            raise located(
                lines,
                SPACE + (key,),
                f"not a key of trainable.config{did_you_mean(key, config_keys(model))} "
                "(expected a dotted trainer config key, e.g. algorithm.entropy_coeff)",
            )
        if spec.search.sampler.type == "grid" and not (
            p.type in ("choice", "fixed") or (p.type == "int" and not p.log)
        ):
            raise located(
                lines,
                SPACE + (key, "type"),
                f"{p.type}{' with log' if p.log else ''} cannot be enumerated by "
                "search.sampler.type grid (expected choice, int without log, or fixed)",
            )
        field = {"choice": "values", "fixed": "value"}.get(p.type)
        for i, value in enumerate(sp.sample_values(p)):
            _check_value(model, base, key, value, field or ("low", "high")[i], lines)


def _check_value(model: type[BaseModel], base: dict, key: str, value: Any, field: str, lines: Any) -> None:
    """The trainer must accept the space's value (e.g. no negative coefficient)."""
    try:
        cfg = sp.apply_params(base, {key: value})
        model.model_validate(cfg, strict=True)
    except ValueError as exc:
        if not isinstance(exc, ValidationError):
            raise located(lines, SPACE + (key,), f"{exc} (expected a trainer config key)") from None
        err = exc.errors(include_url=False)[0]
        inner = message_for(model, dict(err, loc=error_loc(err, cfg)), CONFIG)
        raise located(
            lines, SPACE + (key, field), f"{show(value)} is not valid for the trainer: {inner}"
        ) from None


def _check_points(spec: Any, lines: Any) -> None:
    space = spec.search.space
    points = spec.search.points_to_evaluate
    for i, point in enumerate(points):
        for key, value in point.items():
            path = ("search", "points_to_evaluate", i, key)
            if key not in space:
                raise located(
                    lines,
                    path,
                    f"not a key of search.space{did_you_mean(key, space)} "
                    f"(expected one of {', '.join(space) or 'no keys: the space is empty'})",
                )
            if not sp.contains(space[key], value):
                raise located(
                    lines, path, f"{show(value)} is outside the space (expected {_describe(space[key])})"
                )
    if len(points) > spec.search.num_samples:
        raise located(
            lines,
            ("search", "num_samples"),
            f"{spec.search.num_samples} is fewer than the {len(points)} points_to_evaluate "
            f"(expected at least {len(points)})",
        )


def _check_repeats(spec: Any, lines: Any) -> None:
    repeats = spec.search.repeats
    if repeats is None:
        return
    if repeats.quorum is not None and repeats.quorum > repeats.count:
        raise located(
            lines,
            ("search", "repeats", "quorum"),
            f"{repeats.quorum} is more than the {repeats.count} seeds of search.repeats.count "
            f"(expected at most {repeats.count})",
        )
    if sp.SEED_KEY in spec.search.space:
        raise located(
            lines,
            SPACE + (sp.SEED_KEY,),
            "searched while search.repeats sets each trial's seed "
            "(expected trainer.seed out of the space, or no search.repeats)",
        )


def _describe(p: Any) -> str:
    if p.type == "fixed":
        return f"the fixed value {show(p.value)}"
    if p.type == "choice":
        return "one of " + ", ".join(show(v) for v in p.values)
    kind = "an integer" if p.type == "int" else "a number"
    return f"{kind} in [{p.low:g}, {p.high:g}]"


def _check_scheduler(spec: Any, lines: Any, budget: Optional[int]) -> None:
    asha = spec.scheduler.asha
    if asha is not None and budget is not None and asha.grace_period >= budget:
        raise located(
            lines,
            ("scheduler", "asha", "grace_period"),
            f"{asha.grace_period} leaves ASHA no step of the budget of {budget} steps "
            f"(expected less than {budget})",
        )


def _check_metrics(spec: Any, trainer: BaseModel, lines: Any) -> None:
    from trainable.backends import reported_metrics

    keys = reported_metrics(spec.trainable.backend, trainer)
    if keys is None:  # open-ended backend (e.g. any key an external trainer logs)
        return
    wanted = [(("search", "metric"), spec.search.metric)]
    wanted += [(("criteria", i, "metric"), r.metric) for i, r in enumerate(spec.criteria)]
    for path, metric in wanted:
        if metric not in keys:
            raise located(
                lines,
                path,
                f"unknown metric {show(metric)} for backend "
                f"{spec.trainable.backend}{did_you_mean(metric, sorted(keys))} "
                "(expected a metric the backend reports)",
            )


def local_gpus() -> int:
    """GPUs a local Ray would see, without importing torch (CUDA_VISIBLE_DEVICES, /dev)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [d for d in visible.split(",") if d.strip() and d.strip() != "-1"]
        return 0 if visible.strip() in ("", "NoDevFiles") else len(ids)
    try:
        return sum(1 for f in os.listdir("/dev") if re.fullmatch(r"nvidia\d+", f))
    except OSError:
        return 0


def _check_trainer_gpus(spec: Any, trainer: BaseModel, lines: Any) -> None:
    """A trainer that uses GPUs (command backend's `gpus_per_trial`) needs them reserved."""
    wanted = getattr(trainer, "gpus_per_trial", 0) or 0
    if wanted > spec.resources.gpu:
        raise located(
            lines,
            ("resources", "gpu"),
            f"{spec.resources.gpu:g} GPUs per trial but trainable.config.gpus_per_trial is "
            f"{wanted} (expected resources.gpu: {wanted})",
        )


def _check_resources(spec: Any, lines: Any) -> None:
    if spec.ray.address is not None:  # a cluster: its resources are known only when connected
        return
    res, conc = spec.resources, spec.search.max_concurrent
    cpus = spec.ray.num_cpus or os.cpu_count() or 1
    gpus = spec.ray.num_gpus if spec.ray.num_gpus is not None else local_gpus()
    if res.gpu > 0 and gpus == 0:
        raise located(
            lines,
            ("resources", "gpu"),
            f"{res.gpu:g} GPU per trial but this machine has no GPU and ray.address is null "
            "(expected gpu: 0, or ray.address of a cluster with GPUs)",
        )
    if res.cpu > cpus:
        raise located(
            lines,
            ("resources", "cpu"),
            f"{res.cpu:g} CPUs per trial but the local Ray has {cpus} "
            f"(expected at most {cpus}, or a larger ray.num_cpus)",
        )
    if res.gpu > gpus:
        raise located(
            lines,
            ("resources", "gpu"),
            f"{res.gpu:g} GPUs per trial but the local Ray has {gpus} (expected at most {gpus})",
        )
    slots = math.floor(cpus / res.cpu + 1e-9)
    what = f"{conc} × resources.cpu={res.cpu:g} CPUs but the local Ray has {cpus}"
    if res.gpu > 0 and math.floor(gpus / res.gpu + 1e-9) < slots:
        slots = math.floor(gpus / res.gpu + 1e-9)
        what = f"{conc} × resources.gpu={res.gpu:g} GPUs but the local Ray has {gpus}"
    if conc > slots:
        raise located(
            lines,
            ("search", "max_concurrent"),
            f"{conc} trials at once need {what} (expected at most {slots})",
        )


__all__ = ["check_spec", "step_budget", "config_keys", "local_gpus", "given_fields"]
