"""The monitoring rules, pure: `rules.py` judges a trial's reports (shared by the live
scheduler, backtest, next and the replay benchmark), `trend.py` the robust trend fit that
forecast rules use. No Ray, no Optuna, no I/O."""

from archer_sweep.criteria.rules import (
    DECIDED,
    FORECAST_OPS,
    NAN_VERDICT,
    OPS,
    STEP_KEY,
    CriteriaTracker,
    Rule,
    Verdict,
    evaluate,
    forecast_crossing,
    unreported,
    without_forecasts,
)
from archer_sweep.criteria.trend import Forecast

__all__ = [
    "DECIDED",
    "FORECAST_OPS",
    "NAN_VERDICT",
    "OPS",
    "STEP_KEY",
    "CriteriaTracker",
    "Forecast",
    "Rule",
    "Verdict",
    "evaluate",
    "forecast_crossing",
    "unreported",
    "without_forecasts",
]
