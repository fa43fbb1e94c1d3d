"""The Ray / Optuna private attributes archer-sweep relies on exist in the installed versions.

When this fails after an upgrade, `archer_sweep/engine/libcompat.py` is the one file to adapt."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import optuna
import pytest
import ray
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from ray.air.integrations import wandb as wandb_integration
from ray.train._internal.checkpoint_manager import _CheckpointManager
from ray.tune.schedulers import AsyncHyperBandScheduler
from ray.tune.search.optuna import OptunaSearch

from archer_sweep.engine import libcompat

if sys.version_info >= (3, 11):
    import tomllib
else:  # the test extra brings tomli there
    import tomli as tomllib


def _instances() -> dict[str, object]:
    search = OptunaSearch(
        space={"x": optuna.distributions.FloatDistribution(0.0, 1.0)}, metric="m", mode="max"
    )
    search.suggest("t0")
    study = optuna.create_study()
    return {
        "ray.tune.search.optuna.OptunaSearch": search,
        "ray.tune.schedulers.AsyncHyperBandScheduler": AsyncHyperBandScheduler(metric="m", mode="max"),
        "optuna.study.Study": study,
        "optuna.trial.Trial": study.ask(),
        "optuna.trial.FrozenTrial": study.get_trials()[0],
        "ray.air.integrations.wandb.WandbLoggerCallback": wandb_integration.WandbLoggerCallback(project="p"),
        "ray.air.integrations.wandb._WandbLoggingActor": wandb_integration._WandbLoggingActor,
        "ray.air.integrations.wandb": wandb_integration,
        "ray.train._internal.checkpoint_manager._CheckpointManager": _CheckpointManager(
            checkpoint_config=None
        ),
    }


@pytest.mark.parametrize(
    "owner,attr,why", libcompat.PRIVATE_ATTRS, ids=[a for _, a, _ in libcompat.PRIVATE_ATTRS]
)
def test_private_attribute_exists(owner, attr, why):
    obj = _instances()[owner]
    versions = f"ray {ray.__version__}, optuna {optuna.__version__}"
    assert hasattr(obj, attr), (
        f"{owner}.{attr} ({why}) is gone in {versions}; archer-sweep was written against "
        f"ray {'/'.join(libcompat.WRITTEN_AGAINST['ray'])}, optuna {'/'.join(libcompat.WRITTEN_AGAINST['optuna'])}: "
        "adapt archer_sweep/engine/libcompat.py"
    )


def test_every_owner_is_importable():
    for owner, _, _ in libcompat.PRIVATE_ATTRS:
        module, _, name = owner.rpartition(".")
        assert hasattr(importlib.import_module(module), name), owner


def test_wrappers_read_the_live_objects():
    objs = _instances()
    search = objs["ray.tune.search.optuna.OptunaSearch"]
    assert libcompat.study_of(search).trials[0].number == libcompat.trials_of(search)["t0"].number
    assert libcompat.completed_of(search) == set()
    assert not libcompat.asha_tracks(objs["ray.tune.schedulers.AsyncHyperBandScheduler"], "t0")
    study = objs["optuna.study.Study"]
    assert libcompat.stored_trial(study, objs["optuna.trial.Trial"]).state == optuna.trial.TrialState.RUNNING
    live = libcompat.live_trial(study, objs["optuna.trial.FrozenTrial"])
    live.set_user_attr("k", 1)  # the same stored trial, writable
    assert study.get_trials()[0].user_attrs == {"k": 1}


def test_enqueued_params_survive_an_empty_params_dict():
    study = optuna.create_study()
    study.enqueue_trial({"x": 0.25})
    frozen = study.get_trials(deepcopy=False)[0]
    assert frozen.params == {}
    assert libcompat.enqueued_params(frozen) == {"x": 0.25}


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def test_installed_versions_are_the_ones_written_against():
    for lib, tested in libcompat.WRITTEN_AGAINST.items():
        got = importlib.import_module(lib).__version__
        assert _minor(got) in tested, f"{lib} {got} installed; written against {'/'.join(tested)}.x"


def _next_minor(minor: str) -> str:
    major, number = minor.split(".")
    return f"{major}.{int(number) + 1}"


def _requirements() -> dict[str, SpecifierSet]:
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    reqs = (Requirement(line) for line in project["dependencies"])
    return {req.name: req.specifier for req in reqs}


def test_pyproject_admits_exactly_the_tested_minors():
    """A fresh install must be a tested one: a minor newer than NEWEST_TESTED never enters it."""
    reqs = _requirements()
    for lib, newest in libcompat.NEWEST_TESTED.items():
        assert reqs[lib].contains(f"{newest}.0"), f"pyproject.toml refuses {lib} {newest}, the newest tested"
        untested = _next_minor(newest)
        assert not reqs[lib].contains(f"{untested}.0"), (
            f"pyproject.toml admits {lib} {untested}.0, newer than the tested {newest}: bound it "
            f"'<{untested}' or run bench/deps_check.sh and record the new minor in engine/libcompat.py"
        )
    for lib, tested in libcompat.WRITTEN_AGAINST.items():
        assert libcompat.NEWEST_TESTED[lib] == max(tested, key=lambda v: tuple(map(int, v.split("."))))
        for minor in tested:
            assert reqs[lib].contains(f"{minor}.0"), f"pyproject.toml refuses {lib} {minor}, a tested minor"


def test_next_minor_counts_past_nine():
    assert _next_minor("0.9") == "0.10"
    assert _next_minor("2.60") == "2.61"
