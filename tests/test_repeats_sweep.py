"""End to end: `search.repeats` on the replay backend (real Ray Tune, Optuna and the criteria
scheduler): one Optuna trial per config told the aggregated verdict of its seeds, sibling stops,
and `backtest` of the sweep dir judging each config as the live sweep did."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import ray

from archer_sweep.criteria.repeats import aggregate
from archer_sweep.engine import runner
from archer_sweep.engine import sweep as cmd_run
from archer_sweep.planning.backtest import settings_from_spec
from archer_sweep.planning.repeats import replay_repeats
from archer_sweep.report.render import render
from archer_sweep.results.analysis import load_sweep
from archer_sweep.results.configs import sweep_configs
from archer_sweep.results.sweepdir import read_groups, read_verdicts
from archer_sweep.spec.load import load_spec

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={
            "env_vars": {"PYTHONPATH": str(REPO), "RAY_CHDIR_TO_TRIAL_DIR": "0", "WANDB_SILENT": "true"}
        },
    )
    yield
    ray.shutdown()


def _run(tmp_path, monkeypatch, *overrides):
    monkeypatch.chdir(REPO)  # the spec names the table relative to the repository
    spec = load_spec(REPO / "sweeps" / "replay.yaml", ["search.num_samples=4", "ray.num_cpus=2", *overrides])
    spec = cmd_run.with_overrides(spec, None, tmp_path)
    assert cmd_run.run(spec, live=False) == 0
    return spec, runner.sweep_dir_of(spec)


def test_each_config_runs_k_seeds_and_optuna_hears_it_once(tmp_path, monkeypatch):
    spec, sweep_dir = _run(
        tmp_path,
        monkeypatch,
        "search.repeats=3",
        # v1 and a recorded runaway (entropy above 7 on every seed) first, so that a sibling stop
        # happens whatever the sampler proposes next
        "search.points_to_evaluate=[{algorithm.entropy_coeff: 0.01, algorithm.kl_loss_coef: 0.01},"
        " {algorithm.entropy_coeff: 0.05, algorithm.kl_loss_coef: 0.01}]",
    )
    rows, groups = read_verdicts(sweep_dir), read_groups(sweep_dir)
    study = optuna.load_study(study_name=spec.name, storage=f"sqlite:///{sweep_dir}/study.db")
    assert len(study.trials) == 4  # num_samples counts configs
    sibling_stops = 0
    for t in study.trials:
        attrs = t.user_attrs["archer_repeats"]
        seeds = attrs["seeds"]
        assert [s["seed"] for s in seeds] == list(range(len(seeds)))
        assert {groups[s["trial_id"]]["group"] for s in seeds} == {t.number}
        verdicts = [rows[s["trial_id"]]["verdict"] for s in seeds]
        assert [s["verdict"] for s in seeds] == verdicts
        agg = aggregate(verdicts, 3, 3)
        assert t.user_attrs["archer_verdict"]["verdict"] == agg.verdict
        assert attrs["agreement"] == agg.agreement
        assert t.constraints == {"rules": -1.0 if agg.verdict == "healthy" else 1.0}
        assert t.state.name == ("PRUNED" if agg.verdict.startswith("stopped:") else "COMPLETE")
        if t.state.name == "COMPLETE":
            objectives = [s["objective"] for s in seeds]
            assert len(seeds) == 3 and t.value == pytest.approx(sum(objectives) / 3)
            assert attrs["objective_std"] == pytest.approx(float(__import__("numpy").std(objectives)))
        cut = [v for v in verdicts if v.startswith("stopped:sibling:")]
        # the runaway's other seeds echo its stop: stopped as siblings, or never started when the
        # first seed was stopped before a slot freed (the order depends on the machine's timing)
        sibling_stops += len(cut) + (3 - len(seeds) if agg.verdict.startswith("stopped:") else 0)
        if cut:  # a bad rule stopped a seed (any of them: they run side by side); the others echo it
            causes = {v.split(":", 1)[1] for v in verdicts if v.startswith("stopped:") and v not in cut}
            assert causes and {v.rsplit(":", 1)[1] for v in cut} <= causes
    assert sibling_stops >= 1  # the runaway's seeds
    # trials run each seed of the recorded config: trainer.seed 0, 1, 2 play different runs
    played = {}
    for run in load_sweep(sweep_dir).runs:
        if run.steps:
            played.setdefault(groups[run.run_id]["group"], set()).add(run.steps[-1]["replay/trainer.seed"])
    assert any(len(seeds) == 3 for seeds in played.values())
    # backtest of the sweep dir: every config judged as the live searcher told Optuna
    told = {t.number: t.user_attrs["archer_verdict"]["verdict"] for t in study.trials}
    told_agreement = {t.number: t.user_attrs["archer_repeats"]["agreement"] for t in study.trials}
    judged = replay_repeats(
        load_sweep(sweep_dir).runs, spec.rules(), settings_from_spec(spec), spec.search.repeats
    )
    assert {c.key[1]: c.verdict.verdict for c in judged} == told
    assert {c.key[1]: c.verdict.agreement for c in judged} == told_agreement
    # `analyze` and the report show each config's agreement as Optuna heard it
    shown = {c.group: c.verdict.agreement for c in sweep_configs(load_sweep(sweep_dir))}
    assert shown == told_agreement
    assert "## Configs (each judged over its seeds)" in render(load_sweep(sweep_dir), {}, [], commit="test")


def test_siblings_run_on_when_stop_siblings_is_off(tmp_path, monkeypatch):
    spec, sweep_dir = _run(
        tmp_path,
        monkeypatch,
        "search.repeats={count: 3, quorum: 2, stop_siblings: false}",
        "search.num_samples=3",
    )
    rows = read_verdicts(sweep_dir)
    assert len(rows) == 9 and not any(r["verdict"].startswith("stopped:sibling:") for r in rows.values())
    study = optuna.load_study(study_name=spec.name, storage=f"sqlite:///{sweep_dir}/study.db")
    for t in study.trials:
        verdicts = [s["verdict"] for s in t.user_attrs["archer_repeats"]["seeds"]]
        assert t.user_attrs["archer_verdict"]["verdict"] == aggregate(verdicts, 3, 2).verdict
