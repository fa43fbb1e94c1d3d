"""The proxy slice (#24 item 7): bench/proxy.py's figures on hand-made inputs, the recorder's
defaults still the v2 table's, and the proxy table still the trainer's world (bench/make_table.py
--model …, re-run for a few steps under the kernels it was recorded with, as tests/test_table_drift.py
re-runs the v2 table)."""

from __future__ import annotations

import gzip
import json
import math
import sys
from pathlib import Path

import pytest

from tests.test_table_drift import WIDER_HARDWARE_REL_TOL, departures, provenance
from trainable import metrics as M

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
V2_TABLE = REPO / "bench" / "data" / "tiny-world-v2.jsonl.gz"
PROXY_TABLE = REPO / "bench" / "data" / "tiny-world-proxy.jsonl.gz"
#: ~0.5 s a step at the proxy sizes. 3 as in the v2 test: the table was recorded with ATen pinned
#: to AVX2 on AVX-512 hardware (a Zen 4 EPYC), where MKL and oneDNN took their own paths, so
#: another CPU's run departs in the last bits from step 1 and its tokens may follow later (under
#: AVX-512 kernels they do at step 5); 3 steps keep the check about the trainer, not the CPU.
STEPS = 3


def test_spearman_on_known_inputs():
    from rank_agreement import ranks, spearman

    assert ranks([10, 30, 20, 20]) == [1, 4, 2.5, 2.5]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1)
    # d = (0, -2, 1, 1): rho = 1 - 6 * 6 / (4 * 15) = 0.4, the textbook formula without ties
    assert spearman([1, 2, 3, 4], [1, 4, 2, 3]) == pytest.approx(0.4)
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))
    with pytest.raises(ValueError):
        spearman([1, 2], [1, 2, 3])


def test_agreement_and_top_k_on_known_inputs():
    from rank_agreement import both_healthy_or_not, cross_agreement, self_agreement, top_k, top_k_overlap

    a = {(1, 1): ["healthy", "healthy"], (2, 2): ["stopped:x", "healthy"]}
    b = {(1, 1): ["healthy", "unhealthy:y"], (2, 2): ["stopped:x", "stopped:x"]}
    # (1,1): 2 of 4 pairs agree; (2,2): 2 of 4 → 0.5
    assert cross_agreement(a, b) == pytest.approx(0.5)
    # healthy-or-not: (1,1) 2/4, (2,2) stopped pairs agree 2/4 → 0.5; self: a (1,1) 1, (2,2) 0
    assert cross_agreement(a, b, both_healthy_or_not) == pytest.approx(0.5)
    assert self_agreement(a) == pytest.approx(0.5)
    assert self_agreement(b) == pytest.approx(0.5)
    assert math.isnan(self_agreement({(1, 1): ["healthy"]}))  # one seed: no pair to agree
    values = {(1, 1): 0.9, (2, 2): 0.5, (3, 3): 0.7, (4, 4): 0.7}
    assert top_k(values, 2) == {(1, 1), (3, 3)}  # the tie at 0.7 goes to the smaller config
    assert top_k_overlap(values, {(1, 1): 0.1, (2, 2): 0.9, (3, 3): 0.8, (4, 4): 0.0}, 2) == 1


def test_the_default_recording_is_the_v2_tables():
    """The proxy options change nothing by default: the jobs and config are the v2 table's."""
    from make_table import ENTROPY, KL, OFF_GRID, base_config, jobs

    recorded = provenance(V2_TABLE)
    assert base_config() == recorded["config"]
    grid = [(ec, kl) for ec in ENTROPY for kl in KL] + list(OFF_GRID)
    want = [(ec, kl, s) for s in recorded["grid"]["trainer.seed"] for ec, kl in grid]
    got = jobs()
    assert [
        (p["algorithm.entropy_coeff"], p["algorithm.kl_loss_coef"], p["trainer.seed"]) for _, p, _ in got
    ] == want
    assert len(got) == recorded["runs"] and all("model" not in config for *_, config in got)


def test_model_sizes_are_validated_and_reach_the_config():
    from make_table import config_of, parse_model

    model = parse_model("n_layer=2,d_model=64")
    assert model == {"n_layer": 2, "d_model": 64}
    assert config_of({"trainer.seed": 1}, model)["model"] == model
    with pytest.raises(SystemExit, match="d_modl"):
        parse_model("d_modl=64")
    with pytest.raises(SystemExit, match="must divide"):
        parse_model("d_model=64,n_head=5")


def test_the_proxy_table_is_what_make_table_records():
    from make_table import base_config, jobs

    recorded = provenance(PROXY_TABLE)
    model, seeds = recorded["model"], tuple(recorded["grid"]["trainer.seed"])
    assert model["d_model"] < base_config().get("model", {}).get("d_model", 128)  # a smaller model
    assert recorded["off_grid"] == [] and recorded["config"] == base_config(model)
    with gzip.open(PROXY_TABLE, "rt") as f:
        runs = {}
        for line in f:
            row = json.loads(line)
            runs.setdefault(row["run"], (row["params"], []))[1].append(row["step"])
    expected = jobs(seeds, off_grid=False, model=model)
    assert list(runs) == [name for name, *_ in expected]  # every grid config × seed, in job order
    total = recorded["config"]["trainer"]["total_steps"]
    assert all(steps == list(range(1, total + 1)) for _, steps in runs.values())
    assert (PROXY_TABLE.parent / recorded["warm_start"]["file"]).exists()


def test_trainer_at_head_reproduces_the_proxy_table():
    """When this fails, the trainer (or its warm-start recipe) changed: re-record the proxy table
    with the command in its provenance, don't loosen the test."""
    from drift_reference import first_steps

    rows, recorded = first_steps(PROXY_TABLE, STEPS), provenance(PROXY_TABLE)
    assert any(k.startswith(M.VAL_CORE + "/") for k in rows[0]["metrics"])
    # Recorded pinned to AVX2 (`make_table --kernels avx2`), so every x86 CPU with AVX2 can check it.
    kernels = recorded["cpu_capability"]
    # Pinned kernels on wider hardware: only tokens and scores are exact on every CPU (as in
    # test_table_drift's AVX2 reference).
    problems = departures(PROXY_TABLE, rows, kernels, WIDER_HARDWARE_REL_TOL)
    head = f"the trainer no longer reproduces {rows[0]['run']} ({kernels} kernels): re-record the proxy table"
    assert not problems, "\n".join([head, *problems[:20]])


def test_chance_level_shrinks_with_more_configs():
    from rank_agreement import chance_rho

    few, many = chance_rho(8, draws=500), chance_rho(32, draws=500)
    assert 0.4 < few < 0.8 and 0.15 < many < 0.4  # ≈ 1.645 / sqrt(n - 1): 0.62, 0.30
    assert math.isnan(chance_rho(2))


def test_rescaled_rules_move_only_the_score_thresholds():
    """The rescaled proxy world keeps every other rule; a factor of 1 changes no verdict."""
    import dataclasses

    from proxy import rescaled
    from world import load_world

    world = load_world(seeds=(0,))
    world = dataclasses.replace(world, runs=dict(list(world.runs.items())[:12]))
    assert rescaled(world, 1.0).truth == {k: world.truth[k] for k in world.runs}
    # a zero threshold: score_low (< 0) never fires and score_good (> 0) holds wherever any score is
    lowered = rescaled(world, 0.0).truth
    assert "stopped:score_low" not in lowered.values()
    assert all(
        v == lowered[k] for k, v in world.truth.items() if k in lowered and v.startswith("stopped:entropy")
    )


def test_cliff_is_the_lowest_runaway_entropy_per_kl():
    import dataclasses

    from proxy import cliff
    from world import RUNAWAY, load_world

    world = load_world(seeds=(0,))
    configs = [(0.001, 0.01), (0.02, 0.01), (0.05, 0.01), (0.001, 0.1)]
    truth = {(0.001, 0.01, 0): "healthy", (0.02, 0.01, 0): RUNAWAY, (0.05, 0.01, 0): RUNAWAY}
    truth[(0.001, 0.1, 0)] = "stopped:score_low"
    assert cliff(dataclasses.replace(world, truth=truth), configs) == {0.01: 0.02, 0.1: None}
