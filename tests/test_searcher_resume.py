"""A searcher restored after a kill proposes what the uninterrupted one did, for every sampler,
and never more than `num_configs` configs (engine/searcher.py, with max_concurrent 1 as Tune
drives it: ask, run, tell, ask …)."""

from __future__ import annotations

import math

import optuna
import pytest

from archer_sweep.criteria import Verdict
from archer_sweep.engine.searcher import SAMPLERS, CriteriaOptunaSearch
from tests import test_searcher
from trainable import metrics as M

optuna.logging.set_verbosity(optuna.logging.WARNING)
CONFIGS = 6


def make(directory, kind):
    return test_searcher.make(directory, kind=kind, num_configs=CONFIGS)


def params_of(config) -> tuple:
    return (config["algorithm"]["entropy_coeff"], config["algorithm"]["kl_loss_coef"])


def judge(searcher, store, tid, config) -> None:
    """A deterministic trial: its score and verdict follow from its params."""
    e, k = params_of(config)
    score = 1 / (1 + abs(math.log(e / 0.004)) + abs(math.log(k / 0.02)))
    searcher.on_trial_result(tid, {M.SCORE_MEAN: score, "training_iteration": 1})
    verdict = Verdict("stopped:entropy_high", rule="entropy_high", step=1) if e > 0.02 else Verdict("healthy")
    store.record(tid, {}, verdict)
    searcher.on_trial_complete(tid, {M.SCORE_MEAN: score, "training_iteration": 1})


def sweep(directory, kind, kill_after=None):
    """Run CONFIGS trials one at a time; with kill_after=n, checkpoint after n trials, ask one
    more (lost with the driver), and go on with a restored searcher. The params in order."""
    searcher, store = make(directory, kind)
    proposed = []
    for n in range(CONFIGS + 2):  # the searcher must say FINISHED after CONFIGS
        tid = f"t{n}"
        if kill_after is not None and n == kill_after:
            ckpt = directory / "searcher.pkl"
            searcher.save(str(ckpt))
            searcher.suggest("lost")  # asked after the last checkpoint: the kill comes here
            searcher, store = make(directory, kind)  # resume: from tuner.pkl, then the checkpoint
            searcher.restore(str(ckpt))
            kill_after = None
        config = searcher.suggest(tid)
        if config == CriteriaOptunaSearch.FINISHED or config is None:
            return proposed
        proposed.append(params_of(config))
        judge(searcher, store, tid, config)
    return proposed


@pytest.mark.parametrize("kind", sorted(set(SAMPLERS) - {"grid"}))
@pytest.mark.parametrize("kill_after", [1, 3])
def test_a_restored_searcher_proposes_what_the_uninterrupted_one_did(tmp_path, kind, kill_after):
    if kind == "cmaes":
        pytest.importorskip("cmaes")  # Optuna's CMA-ES needs it; not a dependency
    if kind == "qmc":  # its Sobol index lives in the study and a lost ask advanced it
        pytest.xfail("qmc: a resumed sweep skips the point of the ask lost with the driver")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    uninterrupted = sweep(tmp_path / "a", kind)
    resumed = sweep(tmp_path / "b", kind, kill_after=kill_after)
    assert len(uninterrupted) == CONFIGS
    assert resumed == uninterrupted
