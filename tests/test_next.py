"""next: proposals from the study + history, away from stopped runs; a runnable spec."""

import hashlib
import json

import pytest
import yaml
from optuna.distributions import FloatDistribution
from typer.testing import CliRunner

from archer_sweep.cli.app import app
from archer_sweep.planning.nextver import (
    PastTrial,
    Proposal,
    bump_name,
    distance,
    from_runs,
    next_spec,
    override_lines,
    propose,
)
from archer_sweep.results.history import Run, load_history, write_history
from archer_sweep.spec.load import load_spec
from tests.sweep_data import fake_sweep, handmade_sweep
from trainable import metrics as M

EC, KL = "algorithm.entropy_coeff", "algorithm.kl_loss_coef"
SPACE = {EC: FloatDistribution(1e-4, 5e-2, log=True), KL: FloatDistribution(1e-3, 1e-1, log=True)}


def _cli(*args):
    return CliRunner().invoke(app, list(map(str, args)))


def _stopped(rid, ec, kl, step=10):
    return PastTrial(rid, {EC: ec, KL: kl}, "stopped:entropy_high", None, "test", {1: 0.1, step: 0.2}, step)


def test_no_healthy_trial_proposes_away_from_the_stopped_ones():
    (v1,) = from_runs(load_history("tests/data/seed_v1.jsonl"), [], M.SCORE_MEAN)
    v1.verdict = "stopped:entropy_high"
    past = [v1, _stopped("b", 0.02, 0.005), _stopped("c", 0.03, 0.03), _stopped("d", 0.005, 0.05)]
    props = propose(past, SPACE, count=4)
    assert len({tuple(p.params.values()) for p in props}) == 4  # the constant liar spreads them
    for p in props:
        # unit log-space; the diagonal is 1.41, these stopped points sit in one corner region
        assert min(distance(p.params, q.params, SPACE) for q in past) > 0.2, p.params
        assert p.nearest[0][0].run_id in {"v1", "b", "c", "d"}


def test_proposal_changes_when_history_is_added():
    base = [_stopped("a", 0.01, 0.01)]
    more = base + [_stopped("far", 2e-4, 2e-3), PastTrial("ok", {EC: 0.004, KL: 0.02}, "healthy", 0.5, "t")]
    p1 = [p.params for p in propose(base, SPACE, count=2)]
    p2 = [p.params for p in propose(more, SPACE, count=2)]
    assert p1 != p2
    assert propose(base, SPACE, count=2)[0].params == p1[0]  # same inputs, same seed: same proposal


def test_history_without_verdict_is_judged_by_the_rules():
    from archer_sweep.criteria import Rule

    (v1,) = from_runs(
        load_history("tests/data/seed_v1.jsonl"),
        [Rule("entropy_high", M.ENTROPY, "bad", op=">", value=7, after_step=5)],
        M.SCORE_MEAN,
    )
    assert v1.verdict == "stopped:entropy_high" and v1.stop_step == 61


def test_bump_name_and_next_spec():
    assert bump_name("entropy") == "entropy-v2" and bump_name("entropy-v2") == "entropy-v3"
    spec = next_spec({"name": "e", "search": {"num_samples": 1}}, [Proposal({EC: 0.003}, [])] * 2)
    assert spec["name"] == "e-v2" and spec["search"]["points_to_evaluate"] == [{EC: 0.003}] * 2
    assert spec["search"]["num_samples"] == 2


def test_command_backend_override_line():
    data = {
        "trainable": {
            "backend": "command",
            "config": {
                "argv": ["python", "-m", "dapo.main_dapo"],
                "overrides": {"data.train_batch_size": 64},
            },
        }
    }
    (line,) = override_lines(data, [Proposal({EC: 0.004, KL: 0.02}, [])])
    assert line == (
        "python -m dapo.main_dapo data.train_batch_size=64 "
        "actor_rollout_ref.actor.entropy_coeff=0.004 actor_rollout_ref.actor.kl_loss_coef=0.02"
    )
    assert override_lines({"trainable": {"backend": "tiny"}}, []) == []


def test_next_cli_writes_a_runnable_spec_and_cites_past_runs(tmp_path):
    d = handmade_sweep(tmp_path)
    out = tmp_path / "v2.yaml"
    res = _cli("next", d, "-o", out, "--count", "3")
    assert res.exit_code == 0, res.output
    spec = load_spec(out)  # validates like `archer-sweep run` would
    assert spec.name == "hand-v2" and len(spec.search.points_to_evaluate) == 3
    text = out.with_suffix(".md").read_text()
    assert "current (t_ok, healthy)" in text
    assert "t_high (stopped:entropy_high @ 3, d=" in text or "t_band (unhealthy:entropy_band, d=" in text
    # a recorded runaway where the first proposal lies moves the proposals away from it
    first = yaml.safe_load(out.read_text())["search"]["points_to_evaluate"][0]
    extra = write_history(
        [
            Run(
                "old",
                {EC: first[EC], KL: first[KL]},
                [
                    {M.STEP: 1, M.ENTROPY: 9.0, M.SCORE_MEAN: 0.0},
                    {M.STEP: 3, M.ENTROPY: 9.0, M.SCORE_MEAN: 0.0},
                ],
            )
        ],
        tmp_path / "old.jsonl",
    )
    res = _cli("next", d, "-o", tmp_path / "v2b.yaml", "--count", "3", "--history", extra)
    assert res.exit_code == 0, res.output
    again = yaml.safe_load((tmp_path / "v2b.yaml").read_text())["search"]["points_to_evaluate"]
    assert first not in again
    assert "ran away" in (tmp_path / "v2b.md").read_text()


def test_next_input_errors_exit_2(tmp_path):
    res = _cli("next", tmp_path / "nope")
    assert res.exit_code == 2 and "no such directory" in res.output
    d = handmade_sweep(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"run": "x", "step": 1, "metrics": {}}\nnot json\n')
    res = _cli("next", d, "--history", bad)
    assert res.exit_code == 2 and "bad.jsonl:2: not a JSON line" in res.output
    res = _cli("next", d, "--method", "gp")
    assert res.exit_code == 2
    assert res.output.strip().splitlines()[-1] == "error: --method 'gp': expected one of feasible, tpe"


def test_next_methods_feasible_shows_its_model_and_tpe_does_not(tmp_path):
    d = handmade_sweep(tmp_path)
    res = _cli("next", d, "-o", tmp_path / "f.yaml", "--count", "2")
    assert res.exit_code == 0, res.output
    assert "| proposal | P(healthy) | expected objective | evidence |" in res.output
    res = _cli("next", d, "-o", tmp_path / "t.yaml", "--count", "2", "--method", "tpe", "--no-monotone")
    assert res.exit_code == 0, res.output
    assert "P(healthy)" not in res.output and "TPE" in res.output


@pytest.mark.slow
def test_next_on_an_engine_sweep_leaves_the_stored_study_alone(tmp_path):
    d = fake_sweep()
    db = d / "study.db"
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    res = _cli("next", d, "-o", tmp_path / "n.yaml", "--history", "tests/data/seed_v1.jsonl")
    assert res.exit_code == 0, res.output
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert load_spec(tmp_path / "n.yaml").name == "fakesweep-v2"
    text = (tmp_path / "n.md").read_text()
    verdicts = [json.loads(l)["verdict"] for l in (d / "verdicts.jsonl").read_text().splitlines()]
    assert any(v in text for v in verdicts)


def test_a_sweep_with_only_fixed_parameters_has_nothing_to_propose(tmp_path):
    d = handmade_sweep(tmp_path)
    data = yaml.safe_load((d / "spec.yaml").read_text())
    data["search"]["space"] = {EC: {"type": "fixed", "value": 0.005}}
    data["search"]["points_to_evaluate"] = []
    (d / "spec.yaml").write_text(yaml.safe_dump(data))
    res = _cli("next", d)
    assert res.exit_code == 2 and "the sweep searches no parameter" in res.output
    res = _cli("report", d, "-o", tmp_path / "r")
    assert res.exit_code == 0, res.output
    assert "_no proposal: the sweep searches no parameter" in (tmp_path / "r" / "report.md").read_text()


def test_no_proposal_repeats_a_past_point():
    # Seen on the tiny backend: with one healthy trial TPE returned that trial's exact params.
    space = {EC: FloatDistribution(1e-3, 1e-1, log=True), KL: FloatDistribution(1e-3, 1e-1, log=True)}
    past = [
        PastTrial("h", {EC: 0.001345853577688475, KL: 0.0016076701053478258}, "healthy", 0.078, "t"),
        _stopped("s1", 0.01, 0.01, 11),
        _stopped("s2", 0.016, 0.012, 7),
        PastTrial("u", {EC: 0.007, KL: 0.0196}, "unhealthy:reasoning_length", 0.04, "t", {30: 0.04}, 30),
    ]
    props = propose(past, space, count=4)
    for i, p in enumerate(props):
        others = [q.params for q in past] + [q.params for q in props[:i]]
        assert min(distance(p.params, o, space) for o in others) > 1e-3, p.params


def test_from_study_reads_one_study_of_a_shared_database(tmp_path):
    import optuna

    from archer_sweep.planning.nextver import from_study

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    for name, x in (("mine", 0.25), ("theirs", 0.75)):
        study = optuna.create_study(study_name=name, storage=url)
        study.add_trial(
            optuna.trial.create_trial(
                params={EC: x}, distributions={EC: FloatDistribution(0.0, 1.0)}, value=x
            )
        )
    assert [p.params[EC] for p in from_study(url, "mine")] == [0.25]
    assert sorted(p.params[EC] for p in from_study(url)) == [0.25, 0.75]
