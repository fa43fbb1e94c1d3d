"""Report and analyze on rules with a reference (relative_to, drop): plots draw no absolute
line for them and the good band of a relative rule is not read as absolute."""

from __future__ import annotations

from archer_sweep.criteria import Rule
from archer_sweep.report.plots import metric_plot
from archer_sweep.results.analysis import band
from archer_sweep.results.runs import Run
from trainable import metrics as M

RULES = [
    Rule("low", M.ENTROPY, "bad", op="<", value=0.05, relative_to="start"),
    Rule("drop", M.ENTROPY, "bad", drop=0.5),
    Rule("band", M.ENTROPY, "good", between=(0.5, 1.5), relative_to="start"),
    Rule("high", M.ENTROPY, "bad", op=">", value=7),
]


def test_plot_with_reference_rules(tmp_path):
    runs = [Run("a", {}, [{M.STEP: s, M.ENTROPY: 3.0 - 0.1 * s} for s in range(1, 11)])]
    out = metric_plot(runs, M.ENTROPY, RULES, tmp_path / "e.png")
    assert out is not None and out.stat().st_size > 0


def test_relative_band_is_not_an_absolute_band():
    assert band(M.ENTROPY, RULES) is None
    assert band(M.ENTROPY, [*RULES, Rule("abs", M.ENTROPY, "good", between=(3, 6))]) == (3, 6)
