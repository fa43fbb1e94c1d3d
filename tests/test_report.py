"""report: report.md tables checked against the verdicts; PNG plots written."""

import re

import pytest
from typer.testing import CliRunner

from archer_sweep.cli.app import app
from archer_sweep.criteria import Rule
from archer_sweep.report.plots import metric_plot
from archer_sweep.report.render import trial_table
from archer_sweep.results.analysis import load_sweep
from archer_sweep.results.history import load_history, read_verdicts
from tests.sweep_data import fake_sweep, handmade_sweep
from trainable import metrics as M

PNG = b"\x89PNG\r\n\x1a\n"


def _cli(*args):
    return CliRunner().invoke(app, list(map(str, args)))


def _section(text, title):
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 3)
    return text[start : end if end > 0 else None]


def test_seed_v1_table_in_the_seeds_style():
    (run,) = load_history("tests/data/seed_v1.jsonl")
    table = trial_table(run)
    assert "| Metric | Step 20 | Step 61 | Step 102 | Step 148 | Trend |" in table
    assert "| `actor/entropy` | 5.93 | 7.35 | 7.17 | 8.01 | rising |" in table
    assert "| `token/logical_connectives` | 0.154 | 0.04 | 0.022 | 0.015 | collapsed |" in table
    assert "| `response_length/pos/mean` | 192 | 14 | 16 | 22 | collapsed |" in table


def test_report_tables_match_the_verdicts(tmp_path):
    d = handmade_sweep(tmp_path)
    res = _cli("report", d, "-o", tmp_path / "out")
    assert res.exit_code == 0, res.output
    text = (tmp_path / "out" / "report.md").read_text()
    head = _section(text, "Sweep") if "## Sweep" in text else text[: text.index("## Trials")]
    assert "| Trials | 3 (1 healthy, 1 stopped:entropy_high, 1 unhealthy:entropy_band) |" in head
    assert "| Compute used | 11 trial-steps |" in head
    assert "| Compute saved by stops | 11 trial-steps (of a 14-step budget per trial) |" in head
    assert re.search(r"\| Project commit \| `[0-9a-f]{7,}|unknown` \|", head)
    trials = _section(text, "Trials")
    for tid, verdict in [
        ("t_high", "stopped:entropy_high"),
        ("t_ok", "healthy"),
        ("t_band", "unhealthy:entropy_band"),
    ]:
        assert re.search(rf"\| `{tid}` \| [^\n]* \| {verdict} \|", trials)
    diag = _section(text, "Diagnosis")
    assert (
        "`t_high` (entropy_coeff=0.03, kl_loss_coef=0.01) was stopped at step 3 by rule `entropy_high` "
        "(actor/entropy > 6.5 (after step 2)): `actor/entropy` = 7."
    ) in diag
    assert (
        "`t_band` (entropy_coeff=0.002, kl_loss_coef=0.02) finished but missed the good rule `entropy_band`"
        in diag
    )
    assert "t_ok" not in diag
    nxt = _section(text, "Proposed next change")
    assert "| Parameter | current | proposed | rationale |" in nxt
    assert (
        "| `entropy_coeff` | 0.005 |" in nxt and "| `kl_loss_coef` | 0.01 |" in nxt
    )  # current = healthy t_ok
    crit = _section(text, "Monitoring criteria in force")
    assert (
        "| `actor/entropy` | entropy_band: actor/entropy in [3.8, 5.5] (at step 12) | "
        "entropy_high: actor/entropy > 6.5 (after step 2); entropy_low: actor/entropy < 2.5 (after step 2) |"
    ) in crit
    for png in ["actor_entropy.png", "critic_score_mean.png", "param_space.png"]:
        assert f"]({png})" in text
        assert (tmp_path / "out" / png).read_bytes()[:8] == PNG


def test_metric_plot_draws_thresholds_and_stop_marks(tmp_path, monkeypatch):
    import matplotlib.figure

    saved = {}
    real = matplotlib.figure.Figure.savefig

    def keep(fig, *a, **k):
        saved["fig"] = fig
        return real(fig, *a, **k)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    runs = load_sweep(handmade_sweep(tmp_path)).runs
    rules = [
        Rule("entropy_high", M.ENTROPY, "bad", op=">", value=6.5),
        Rule("entropy_band", M.ENTROPY, "good", between=(3.8, 5.5)),
    ]
    assert metric_plot(runs, M.ENTROPY, rules, tmp_path / "e.png").exists()
    ax = saved["fig"].axes[0]
    hlines = [l for l in ax.lines if list(l.get_ydata()) == [6.5, 6.5]]
    stops = [l for l in ax.lines if l.get_marker() == "X"]
    assert len(hlines) == 1 and len(stops) == 1 and list(stops[0].get_xdata()) == [3]
    assert any("entropy_band" in str(p.get_label()) for p in ax.patches)


def test_report_input_errors_exit_2(tmp_path):
    res = _cli("report", tmp_path / "nope")
    assert res.exit_code == 2 and "no such directory" in res.output


@pytest.mark.slow
def test_report_on_a_sweep_the_engine_ran(tmp_path):
    d = fake_sweep()
    res = _cli("report", d, "-o", tmp_path / "r")
    assert res.exit_code == 0, res.output
    text = (tmp_path / "r" / "report.md").read_text()
    trials, diag = _section(text, "Trials"), _section(text, "Diagnosis")
    for tid, v in read_verdicts(d).items():
        assert re.search(rf"\| `{tid}` \| [^\n]* \| {re.escape(v['verdict'])} \|", trials)
        if v["verdict"].startswith("stopped:"):
            assert f"`{tid}` " in diag and f"was stopped at step {v['step']} by rule `{v['rule']}`" in diag
        if v["verdict"] == "healthy":
            assert f"`{tid}` " not in diag
    for png in ["actor_entropy.png", "critic_score_mean.png", "param_space.png"]:
        assert (tmp_path / "r" / png).read_bytes()[:8] == PNG


def test_importance_plot_needs_six_trials_with_an_objective(tmp_path):
    from archer_sweep.report.plots import importance_plot
    from archer_sweep.report.write import importance_study
    from archer_sweep.results.analysis import Sweep
    from archer_sweep.results.history import Run

    spec = load_sweep(handmade_sweep(tmp_path)).spec
    runs = [
        Run(
            f"r{i}",
            {"algorithm.entropy_coeff": ec, "algorithm.kl_loss_coef": kl},
            [{M.STEP: 1, M.SCORE_MEAN: 0.1}, {M.STEP: 2, M.SCORE_MEAN: 1 - 20 * ec}],
        )
        for i, (ec, kl) in enumerate(
            [(0.001, 0.01), (0.002, 0.05), (0.004, 0.002), (0.008, 0.02), (0.016, 0.004), (0.03, 0.08)]
        )
    ]
    assert importance_plot(importance_study(Sweep(tmp_path, "s", spec, runs[:5])), tmp_path / "a.png") is None
    out = importance_plot(importance_study(Sweep(tmp_path, "s", spec, runs)), tmp_path / "b.png")
    assert out is not None and out.read_bytes()[:8] == PNG
