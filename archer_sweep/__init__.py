"""archer-sweep: automated GRPO hyperparameter rounds (Ray Tune + Optuna + monitoring rules).

Python API for notebooks: `archer_sweep.load_results(path)` -> pandas DataFrame.
"""

from __future__ import annotations

__all__ = ["load_results"]


def load_results(path):
    """One DataFrame for a sweep dir: a row per trial and step, params and verdict columns."""
    from archer_sweep.results.sweepdir import load_results as _load

    return _load(path)
