"""Every rejected input of the spec: the exact one-line message (FILE:LINE: key: problem (expected …))."""

import pytest
from typer.testing import CliRunner

from archer_sweep.cli.app import app
from archer_sweep.criteria import Forecast
from archer_sweep.spec.load import SpecError, load_spec
from tests.spec_helpers import edit, write

CASES = [
    pytest.param(
        {22: "storag: {path: results}"},
        (),
        "s.yaml:22: storag: unknown key; did you mean `storage`? (expected one of name, trainable, search, criteria, scheduler, resources, storage, tracking, ray, failure, checkpoint)",
        id="unknown_top_key",
    ),
    pytest.param(
        {10: "  num_sample: 8"},
        (),
        "s.yaml:10: search.num_sample: unknown key; did you mean `num_samples`? (expected one of metric, mode, num_samples, max_concurrent, sampler, space, points_to_evaluate, objective_reduce, repeats)",
        id="unknown_nested_key",
    ),
    pytest.param(
        {18: '  - {name: entropy_high, metric: actor/entropy, op: ">", value: 7, afterstep: 5}'},
        (),
        "s.yaml:18: criteria[0].afterstep: unknown key; did you mean `after_step`? (expected one of name, metric, op, value, between, after_step, at_step, patience, verdict, on_nan, window, forecast, relative_to, drop, drop_ratio)",
        id="unknown_rule_key",
    ),
    pytest.param(
        {11: "  max_concurrent: 2\n  num_samples: 4"},
        (),
        "s.yaml:12: search.num_samples: duplicate key (first at line 10) (expected each key once per mapping)",
        id="duplicate_key",
    ),
    pytest.param(
        {10: "  num_samples: eight"},
        (),
        "s.yaml:10: search.num_samples: got 'eight' (expected an integer)",
        id="wrong_type_int",
    ),
    pytest.param(
        {21: "resources: 1"}, (), "s.yaml:21: resources: got 1 (expected a mapping)", id="wrong_type_mapping"
    ),
    pytest.param(
        {17: "criteria: {}", 18: None, 19: None, 20: None},
        (),
        "s.yaml:17: criteria: got a mapping (expected a list)",
        id="wrong_type_list",
    ),
    pytest.param(
        {14: "    algorithm.entropy_coeff: {type: uniform, low: 0.05, high: 0.01}"},
        (),
        "s.yaml:14: search.space.algorithm.entropy_coeff.low: low=0.05 >= high=0.01 (expected low < high)",
        id="low_ge_high",
    ),
    pytest.param(
        {14: "    algorithm.entropy_coeff: {type: loguniform, low: 0, high: 0.05}"},
        (),
        "s.yaml:14: search.space.algorithm.entropy_coeff.low: low=0 on a log scale (expected low > 0)",
        id="log_low_zero",
    ),
    pytest.param(
        {14: "    algorithm.entropy_coeff: {type: normal, low: 0, high: 0.05}"},
        (),
        "s.yaml:14: search.space.algorithm.entropy_coeff.type: unknown distribution 'normal'; did you mean `uniform`? (expected one of uniform, loguniform, int, choice, fixed)",
        id="unknown_distribution",
    ),
    pytest.param(
        {12: "  sampler: {type: bayes}"},
        (),
        "s.yaml:12: search.sampler.type: unknown sampler 'bayes'; did you mean `cmaes`? (expected one of tpe, random, gp, cmaes, qmc, grid, feasible)",
        id="unknown_sampler",
    ),
    pytest.param(
        {3: "  backend: tinny"},
        (),
        "s.yaml:3: trainable.backend: unknown backend 'tinny'; did you mean `tiny`? (expected one of tiny, hf, command, replay)",
        id="unknown_backend",
    ),
    pytest.param(
        {18: '  - {name: entropy_high, metric: actor/entropy, op: "=>", value: 7}'},
        (),
        "s.yaml:18: criteria[0].op: unknown rule operator '=>'; did you mean `>`? (expected one of >, >=, <, <=, ==, !=)",
        id="unknown_operator",
    ),
    pytest.param(
        {18: '  - {name: entropy_high, metric: actor/entropie, op: ">", value: 7}'},
        (),
        "s.yaml:18: criteria[0].metric: unknown metric 'actor/entropie' for backend tiny; did you mean `actor/entropy`? (expected a metric the backend reports)",
        id="unknown_metric",
    ),
    pytest.param(
        {8: "  metric: critic/score"},
        (),
        "s.yaml:8: search.metric: unknown metric 'critic/score' for backend tiny; did you mean `critic/score/min`? (expected a metric the backend reports)",
        id="unknown_objective",
    ),
    pytest.param(
        {19: '  - {name: entropy_high, metric: actor/entropy, op: "<", value: 1}'},
        (),
        "s.yaml:19: criteria[1].name: duplicate rule name 'entropy_high' (first at line 18) (expected unique names)",
        id="duplicate_rule",
    ),
    pytest.param(
        {20: "  - {name: entropy_band, metric: actor/entropy, between: [3, 6], at_step: 100, verdict: good}"},
        (),
        "s.yaml:20: criteria[2].at_step: 100 is beyond the step budget of 60 steps (expected at most 60)",
        id="at_step_beyond",
    ),
    pytest.param(
        {10: "  num_samples: 0"},
        (),
        "s.yaml:10: search.num_samples: 0 is out of range (expected a value >= 1)",
        id="num_samples_zero",
    ),
    pytest.param(
        {11: "  max_concurrent: 3"},
        (),
        "s.yaml:11: search.max_concurrent: 3 trials at once need 3 × resources.cpu=1 CPUs but the local Ray has 2 (expected at most 2)",
        id="max_concurrent_over",
    ),
    pytest.param(
        {21: "resources: {cpu: 4, gpu: 0}"},
        (),
        "s.yaml:21: resources.cpu: 4 CPUs per trial but the local Ray has 2 (expected at most 2, or a larger ray.num_cpus)",
        id="cpu_over",
    ),
    pytest.param(
        {21: "resources: {cpu: 1, gpu: 1}"},
        (),
        "s.yaml:21: resources.gpu: 1 GPU per trial but this machine has no GPU and ray.address is null (expected gpu: 0, or ray.address of a cluster with GPUs)",
        id="gpu_none",
    ),
    pytest.param(
        {15: "    algorithm.kl_loss_coeff: {type: loguniform, low: 1.0e-3, high: 1.0e-1}"},
        (),
        "s.yaml:15: search.space.algorithm.kl_loss_coeff: not a key of trainable.config; did you mean `algorithm.kl_loss_coef`? (expected a dotted trainer config key, e.g. algorithm.entropy_coeff)",
        id="space_key_missing",
    ),
    pytest.param(
        {15: "    algorithm.kl_loss_coef: {type: uniform, low: -0.1, high: 0.1}"},
        (),
        "s.yaml:15: search.space.algorithm.kl_loss_coef.low: -0.1 is not valid for the trainer: trainable.config.algorithm.kl_loss_coef: -0.1 is out of range (expected a value >= 0)",
        id="space_value_rejected",
    ),
    pytest.param(
        {16: "  points_to_evaluate: [{algorithm.entropy_coef: 0.01}]"},
        (),
        "s.yaml:16: search.points_to_evaluate[0].algorithm.entropy_coef: not a key of search.space; did you mean `algorithm.entropy_coeff`? (expected one of algorithm.entropy_coeff, algorithm.kl_loss_coef)",
        id="point_key_missing",
    ),
    pytest.param(
        {16: "  points_to_evaluate: [{algorithm.entropy_coeff: 0.5}]"},
        (),
        "s.yaml:16: search.points_to_evaluate[0].algorithm.entropy_coeff: 0.5 is outside the space (expected a number in [0.0001, 0.05])",
        id="point_out_of_space",
    ),
    pytest.param(
        {6: "    trainer: {total_step: 60}"},
        (),
        "s.yaml:6: trainable.config.trainer.total_step: unknown key; did you mean `total_steps`? (expected one of total_steps, seed, save_freq, threads, test_freq, val_before_train)",
        id="trainer_unknown_key",
    ),
    pytest.param(
        {5: "    algorithm: {entropy_coeff: -0.005, kl_loss_coef: 0.01}"},
        (),
        "s.yaml:5: trainable.config.algorithm.entropy_coeff: -0.005 is out of range (expected a value >= 0)",
        id="trainer_negative",
    ),
    pytest.param(
        {
            6: "    trainer: {total_steps: 60}\n    data: {train_batch_size: 16}\n    actor:\n      ppo_mini_batch_size: 5"
        },
        (),
        "s.yaml:9: trainable.config.actor.ppo_mini_batch_size: invalid value (expected actor.ppo_mini_batch_size=5 to divide data.train_batch_size=16)",
        id="trainer_mini_batch",
    ),
    pytest.param(
        {},
        ("search.num_sample=4",),
        "--set:1: search.num_sample: unknown key; did you mean `num_samples`? (expected one of metric, mode, num_samples, max_concurrent, sampler, space, points_to_evaluate, objective_reduce, repeats)",
        id="set_unknown",
    ),
    pytest.param(
        {},
        ("search.num_samples=4", "trainable.config.algorithm.entropy_coef=0.1"),
        "--set:2: trainable.config.algorithm.entropy_coef: unknown key; did you mean `entropy_coeff`? (expected one of adv_estimator, norm_adv_by_std_in_grpo, entropy_coeff, kl_loss_coef, kl_loss_type, clip_ratio_low, clip_ratio_high, clip_ratio_c, loss_agg_mode)",
        id="set_unknown_trainer",
    ),
    pytest.param(
        {},
        ("search.num_samples=-1",),
        "--set:1: search.num_samples: -1 is out of range (expected a value >= 1)",
        id="set_bad_value",
    ),
    pytest.param(
        {},
        ("num_samples",),
        "--set:1: 'num_samples': not an override (expected dotted.key=value, e.g. search.num_samples=4)",
        id="set_not_override",
    ),
    pytest.param(
        {},
        ("criteria.entropy_band.at_step=61",),
        "--set:1: criteria[2].at_step: 61 is beyond the step budget of 60 steps (expected at most 60)",
        id="set_rule_by_name",
    ),
    pytest.param(
        "", (), "s.yaml:1: the file is empty (expected a sweep spec mapping with at least `name`)", id="empty"
    ),
    pytest.param(
        {5: "    algorithm: {entropy_coeff: 0.005, kl_loss_coef: 0.01"},
        (),
        "s.yaml:6: YAML syntax error: expected ',' or '}', but got ':', while parsing a flow mapping at line 5 (expected valid YAML)",
        id="syntax",
    ),
    pytest.param(
        {
            20: "  - {name: entropy_band, metric: actor/entropy, op: '>', value: 8, at_step: 50, verdict: good}"
        },
        (),
        "s.yaml:20: criteria[2]: good rule 'entropy_band' can never hold: every value it accepts fires bad rule 'entropy_high' (expected ranges that do not contradict)",
        id="good_vs_bad",
    ),
    pytest.param(
        {18: '  - {name: entropy_high, metric: actor/entropy, op: ">", value: 7, after_step: 60}'},
        (),
        "s.yaml:18: criteria[0].after_step: 60 leaves no step of the budget of 60 steps to check (expected less than 60)",
        id="after_step_beyond",
    ),
    pytest.param(
        {1: None},
        (),
        "s.yaml:1: name: missing (expected `name`: Sweep name: the results subdirectory and W&B group)",
        id="name_missing",
    ),
]


@pytest.mark.parametrize("changes, overrides, expected", CASES)
def test_rejected_with_exact_message(tmp_path, monkeypatch, changes, overrides, expected):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, changes if isinstance(changes, str) else edit(changes))
    with pytest.raises(SpecError) as exc:
        load_spec("s.yaml", overrides)
    assert str(exc.value) == expected
    assert "\n" not in str(exc.value)
    # the CLI prints the same line and exits 2
    args = ["validate", "s.yaml"] + [a for o in overrides for a in ("--set", o)]
    res = CliRunner().invoke(app, args)
    assert (res.exit_code, res.stdout, res.stderr) == (2, "", f"error: {expected}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]  # nothing written


def test_base_spec_loads(tmp_path):
    spec = load_spec(write(tmp_path, edit()))
    assert spec.name == "entropy" and spec.search.num_samples == 8
    assert [r.name for r in spec.rules()] == ["entropy_high", "guessing", "entropy_band"]
    assert spec.criteria[2].to_rule().between == (3.0, 6.0)
    # YAML 1.2 floats (1e-4) are numbers, not strings
    text = edit({14: "    algorithm.entropy_coeff: {type: loguniform, low: 1e-4, high: 5e-2}"})
    assert load_spec(write(tmp_path, text)).search.space["algorithm.entropy_coeff"].low == 1e-4


def test_every_shipped_sweep_validates():
    from pathlib import Path

    specs = sorted(Path(__file__).resolve().parents[1].glob("sweeps/*.yaml"))
    assert any(p.name == "seed-v2.yaml" for p in specs)
    for path in specs:
        load_spec(path, ["ray.num_cpus=8"])  # independent of this machine's core count


def test_seed_v2_is_the_seed_table():
    from pathlib import Path

    from trainable import metrics as M

    spec = load_spec(Path(__file__).resolve().parents[1] / "sweeps/seed-v2.yaml", ["ray.num_cpus=8"])
    rules = {r.name: r for r in spec.rules()}
    got = {(r.metric, r.verdict, r.op, r.value, r.between, r.at_step) for r in rules.values()}
    assert got == {
        (M.ENTROPY, "bad", ">", 7, None, None),
        (M.ENTROPY, "bad", "<", 1, None, None),
        (M.ENTROPY, "good", None, None, (3.0, 6.0), 100),
        (M.LOGICAL_CONNECTIVES, "bad", "<", 0.02, None, None),
        (M.LOGICAL_CONNECTIVES, "good", ">", 0.05, None, None),
        (M.RESP_LEN_POS, "bad", "<", 20, None, None),
        (M.RESP_LEN_POS, "good", ">", 50, None, None),
        (M.SCORE_MEAN, "bad", "<", 0.1, None, 100),
        (M.SCORE_MEAN, "good", ">", 0.2, None, 100),
    }
    assert spec.trainable.config["trainer"]["total_steps"] >= 100
    assert spec.trainable.config["algorithm"]["entropy_coeff"] == 0.005


def test_validation_imports_neither_torch_nor_ray():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = (
        "import sys; from archer_sweep.spec.load import load_spec; "
        "load_spec('sweeps/seed-v2.yaml', ['ray.num_cpus=8']); "
        "from archer_sweep.cli.app import app; "
        "print(sorted(m for m in ('torch', 'ray', 'optuna', 'wandb', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_line_of_a_list_item_and_a_flow_key(tmp_path):
    from archer_sweep.spec.yamlio import load_yaml

    data, lines = load_yaml(write(tmp_path, edit()))
    assert lines.locate(("criteria", 1)) == (str(tmp_path / "s.yaml"), 19)
    assert lines.locate(("criteria", 1, "patience"))[1] == 19
    assert lines.locate(("search", "space", "algorithm.kl_loss_coef", "high"))[1] == 15
    assert lines.locate(("search", "points_to_evaluate", 1, "algorithm.entropy_coeff"))[1] == 16
    assert lines.locate(("failure", "max_failures"))[1] == 1  # absent: the top of the file


def test_gpu_resources_follow_the_machine(tmp_path, monkeypatch):
    from archer_sweep.spec.checks import local_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert local_gpus() == 2
    text = edit({21: "resources: {cpu: 1, gpu: 1}", 23: "ray: {num_cpus: 4}"})
    assert load_spec(write(tmp_path, text)).resources.gpu == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert local_gpus() == 0
    with pytest.raises(SpecError, match=r"resources.gpu: 1 GPU per trial but this machine has no GPU"):
        load_spec(write(tmp_path, text))
    # a cluster's resources are its own business
    text = edit({21: "resources: {cpu: 64, gpu: 8}", 23: "ray: {address: auto}"})
    assert load_spec(write(tmp_path, text)).ray.address == "auto"


def test_max_concurrent_counts_gpus(tmp_path):
    text = edit({21: "resources: {cpu: 1, gpu: 1}", 23: "ray: {num_cpus: 8, num_gpus: 1}"})
    with pytest.raises(SpecError) as exc:
        load_spec(write(tmp_path, text))
    assert str(exc.value).endswith(
        ":11: search.max_concurrent: 2 trials at once need 2 × "
        "resources.gpu=1 GPUs but the local Ray has 1 (expected at most 1)"
    )


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {18: '  - {name: nan, metric: actor/entropy, op: ">", value: 7}'},
            "criteria[0].name: 'nan' is reserved for the verdict stopped:nan (expected another name)",
        ),
        (
            {18: '  - {name: x, metric: actor/entropy, op: ">"}'},
            "criteria[0].op: '>' has no threshold (expected `value`)",
        ),
        (
            {18: "  - {name: x, metric: actor/entropy}"},
            "criteria[0]: no condition (expected op with value, or between: [low, high])",
        ),
        (
            {18: "  - {name: x, metric: actor/entropy, value: 3, between: [1, 2]}"},
            "criteria[0].value: given without `op` (expected op with value)",
        ),
        (
            {18: "  - {name: x, metric: actor/entropy, between: [5, 2]}"},
            "criteria[0].between: [5, 2] is empty (expected low <= high)",
        ),
        (
            {18: '  - {name: x, metric: actor/entropy, op: ">", value: 7, at_step: 9, after_step: 3}'},
            "criteria[0].after_step: given with at_step (expected one of at_step or after_step)",
        ),
        (
            {
                20: "  - {name: entropy_band, metric: actor/entropy, between: [3, 6], patience: 2, verdict: good}"
            },
            "criteria[2].patience: applies only to bad rules (expected at_step for a good rule, or verdict: bad)",
        ),
        (
            {
                20: "  - {name: entropy_band, metric: actor/entropy, between: [3, 6], on_nan: skip, verdict: good}"
            },
            "criteria[2].on_nan: applies only to bad rules (expected at_step for a good rule, or verdict: bad)",
        ),
        (
            {18: '  - {name: x, metric: actor/entropy, op: ">", value: 7, after_step: 58, patience: 3}'},
            "criteria[0].patience: 3 reports in a row cannot happen in the 2 steps after step 58 (expected at most 2)",
        ),
        (
            {
                20: "  - {name: entropy_band, metric: actor/entropy, between: [3, 6], at_step: 50, window: 51, verdict: good}"
            },
            "criteria[2].window: 51 reports cannot be averaged by step 50 (expected at most 50)",
        ),
        (
            {
                18: '  - {name: x, metric: actor/entropy, op: ">", value: 7.5}\n  - {name: y, metric: actor/entropy, op: "<=", value: 7.5}'
            },
            "criteria[1]: with rule 'x' every value of actor/entropy is bad (expected a range of values that keeps a trial running)",
        ),
        (
            {12: "  sampler: {type: grid}"},
            "search.space.algorithm.entropy_coeff.type: loguniform cannot be enumerated by search.sampler.type grid "
            "(expected choice, int without log, or fixed)",
        ),
        (
            {10: "  num_samples: 1"},
            "search.num_samples: 1 is fewer than the 2 points_to_evaluate (expected at least 2)",
        ),
        (
            {5: "    algorithm: {entropy_coeff: 0.005, kl_loss_coef: 0.01}\n    backend: hf"},
            "trainable.config.backend: 'hf' contradicts trainable.backend 'tiny' (expected the same backend, or no backend key here)",
        ),
    ],
)
def test_contradictions(tmp_path, changes, message):
    with pytest.raises(SpecError) as exc:
        load_spec(write(tmp_path, edit(changes)))
    assert str(exc.value).split(": ", 1)[1] == message


def test_rules_that_do_not_contradict_pass(tmp_path):
    # bad > 7 only after step 5 cannot spoil a good band judged at step 3; patience > 1 neither
    text = edit(
        {20: "  - {name: entropy_band, metric: actor/entropy, op: '>', value: 8, at_step: 3, verdict: good}"}
    )
    assert load_spec(write(tmp_path, text))
    text = edit(
        {
            18: '  - {name: x, metric: actor/entropy, op: ">", value: 7, patience: 2}\n'
            '  - {name: y, metric: actor/entropy, op: "<", value: 8}',
            20: None,
        }
    )
    assert load_spec(write(tmp_path, text))


@pytest.mark.parametrize("exclude_unset", [False, True])
def test_a_dumped_spec_loads_back(tmp_path, exclude_unset):
    """The resolved spec.yaml of a sweep (defaults written out or not) passes load_spec again."""
    import yaml

    spec = load_spec(
        write(
            tmp_path,
            edit({18: '  - {name: entropy_high, metric: actor/entropy, op: ">", value: 7, at_step: 9}'}),
        )
    )
    again = write(
        tmp_path, yaml.safe_dump(spec.model_dump(mode="json", exclude_unset=exclude_unset)), "r.yaml"
    )
    assert load_spec(again) == spec


def test_asha_grace_period_inside_the_budget(tmp_path):
    with pytest.raises(SpecError) as exc:
        load_spec(
            write(tmp_path, edit({22: "storage: {path: results}\nscheduler: {asha: {grace_period: 60}}"}))
        )
    assert str(exc.value).split(": ", 1)[1] == (
        "scheduler.asha.grace_period: 60 leaves ASHA no step of the "
        "budget of 60 steps (expected less than 60)"
    )
    assert load_spec(write(tmp_path, edit({22: "scheduler: {asha: {grace_period: 10}}"}))).scheduler.asha


def test_reference_documents_every_field():
    from archer_sweep.spec.doc import reference_markdown, rows

    table = list(rows())
    assert all(meaning for _, _, _, meaning in table), [k for k, _, _, m in table if not m]
    keys = [k for k, _, _, _ in table]
    assert {"search.space.<key>.low", "criteria[].at_step", "ray.num_gpus", "trainable.config"} <= set(keys)
    assert "| `search.num_samples` | int | `8` | Trials in the sweep" in reference_markdown()


def test_reference_documents_every_trainer_config_field():
    from archer_sweep.spec.doc import config_rows, reference_markdown

    table = list(config_rows())
    undocumented = [k for k, _, _, m in table if not m.split(") ", 1)[1]]
    assert not undocumented, undocumented
    keys = {k for k, _, _, _ in table}
    assert {
        "trainable.config.algorithm.entropy_coeff",
        "trainable.config.model.path",
        "trainable.config.argv",
    } <= keys
    assert (
        "| `trainable.config.actor.lr` | float | `0.0002` | (tiny, hf) AdamW learning rate"
        in reference_markdown()
    )


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {
                20: "  - {name: entropy_band, metric: actor/entropy, between: [3, 6], at_step: 50, verdict: good, "
                "forecast: {window: 5}}"
            },
            "s.yaml:20: criteria[2].forecast: applies only to bad rules (expected verdict: bad, or no forecast)",
        ),
        (
            {18: "  - {name: x, metric: actor/entropy, between: [1, 2], forecast: {}}"},
            "s.yaml:18: criteria[0].forecast: a range has no direction to forecast (expected op one of >, >=, <, <=)",
        ),
        (
            {18: '  - {name: x, metric: actor/entropy, op: "==", value: 7, forecast: {}}'},
            "s.yaml:18: criteria[0].forecast: op '==' has no direction to forecast (expected op one of >, >=, <, <=)",
        ),
        (
            {18: '  - {name: x, metric: actor/entropy, op: ">", value: 7, at_step: 9, forecast: {}}'},
            "s.yaml:18: criteria[0].forecast: given with at_step (expected after_step: a forecast watches every report)",
        ),
        (
            {
                18: '  - {name: x, metric: actor/entropy, op: ">", value: 7, after_step: 50, forecast: {window: 20}}'
            },
            "s.yaml:18: criteria[0].forecast.window: 20 reports cannot be fitted in the 10 steps after step 50 "
            "(expected at most 10)",
        ),
        (
            {18: '  - {name: x, metric: actor/entropy, op: ">", value: 7, forecast: {window: 2}}'},
            "s.yaml:18: criteria[0].forecast.window: 2 is out of range (expected a value >= 3)",
        ),
        (
            {18: '  - {name: x, metric: actor/entropy, op: ">", value: 7, forecast: {confidence: 1.0}}'},
            "s.yaml:18: criteria[0].forecast.confidence: 1.0 is out of range (expected a value < 1)",
        ),
        (
            {18: '  - {name: x, metric: actor/entropy, op: ">", value: 7, forecast: {horizn: 5}}'},
            "s.yaml:18: criteria[0].forecast.horizn: unknown key; did you mean `horizon`? "
            "(expected one of window, horizon, confidence)",
        ),
        (
            {18: '  - {name: x, metric: actor/entropy, op: ">", value: 7, forecast: 5}'},
            "s.yaml:18: criteria[0].forecast: got 5 (expected a mapping)",
        ),
        (
            {22: "storage: {path: results}\nscheduler: {stop_when_decided: maybe}"},
            "s.yaml:23: scheduler.stop_when_decided: got 'maybe' (expected true or false)",
        ),
        (
            {22: "storage: {path: results}\nscheduler: {stop_when_decide: false}"},
            "s.yaml:23: scheduler.stop_when_decide: unknown key; did you mean `stop_when_decided`? "
            "(expected one of stop_when_decided, asha)",
        ),
    ],
)
def test_forecast_and_stop_when_decided_keys(tmp_path, changes, message):
    with pytest.raises(SpecError) as exc:
        load_spec(write(tmp_path, edit(changes)))
    assert str(exc.value) == f"{tmp_path}/{message}"


def test_forecast_and_stop_when_decided_reach_the_rules(tmp_path):
    rule = '  - {name: x, metric: actor/entropy, op: "<", value: 1, forecast: {window: 5, horizon: 3}}'
    spec = load_spec(
        write(
            tmp_path, edit({18: rule, 22: "storage: {path: results}\nscheduler: {stop_when_decided: false}"})
        )
    )
    assert spec.rules()[0].forecast == Forecast(window=5, horizon=3, confidence=0.9)
    assert spec.scheduler.stop_when_decided is False
    assert load_spec(write(tmp_path, edit())).scheduler.stop_when_decided is True
