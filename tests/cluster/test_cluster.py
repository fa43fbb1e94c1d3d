"""`archer-sweep run` with `ray.address` on a three-node Ray cluster started by the test:
a head (1 CPU, no GPU) and two workers (1 CPU and 4 fake GPUs each), every node its own
`ray start` with its own loopback IP. Trials spread over the nodes and their results reach
the driver's results dir; a worker node whose raylet is SIGKILLed mid-trial costs the
trial one retry from its last checkpoint on another node (`failure.max_failures: 1`),
with one verdict per trial and no step lost; a `command` trial on a worker node is
stopped by a rule together with its trainer's whole process session.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import pytest

from archer_sweep.results.sweepdir import read_results
from tests.cluster.ray_nodes import LocalCluster
from tests.reliability.helpers import (
    REPO,
    kill_session,
    last_reports,
    spec_data,
    start_cli,
    study_trials,
    verdict_rows,
    wait_gone,
    write_spec,
)
from trainable.backends.command_proc import live_processes

log = logging.getLogger(__name__)
NODE_BACKEND = "tests.cluster.node_backend:NodeTrainer"
RUN_TIMEOUT_S = 120
STEPS, CKPT_EVERY = 12, 2

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    c = LocalCluster()
    try:
        c.head(num_cpus=1, num_gpus=0)
        c.worker("worker-a", num_cpus=1, num_gpus=4)
        c.worker("worker-b", num_cpus=1, num_gpus=4)
        c.wait_up()
        yield c
    finally:
        left = c.stop()
    assert left == [], f"Ray processes left: {left}"


def driver_env(c: LocalCluster) -> dict:
    """What a driver on a cluster machine needs: the cluster's token (never in a spec)."""
    return {k: c.env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}


def run_cli(c: LocalCluster, spec: Path, log: Path, until=None) -> int:
    """`archer-sweep run SPEC` against the cluster; `until(proc)` runs while it does."""
    proc = start_cli("run", str(spec), log=log, **driver_env(c))
    try:
        if until is not None:
            until(proc)
        code = proc.wait(timeout=RUN_TIMEOUT_S)
        assert wait_gone(proc.pid, timeout=20) == []  # the driver leaves nothing behind
        return code
    finally:
        kill_session(proc.pid)
        proc.wait()


def node_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.endswith("}")]


def test_command_trial_on_a_worker_node_is_stopped_with_its_whole_session(cluster, tmp_path):
    coeff_bad, coeff_ok = 0.03, 0.001
    data = {
        "name": "cmd",
        "trainable": {
            "backend": "command",
            "config": {
                "argv": [sys.executable, str(REPO / "tests" / "fake_verl_trainer.py")],
                "grace_period_s": 1.0,
                "gpus_per_trial": 4,  # the seed's trial shape: only a worker has 4 GPUs
                "total_steps": STEPS,
                # children: a plain one, one that leaves the process group, one that ignores SIGTERM
                "overrides": {"fake.step_s": 0.15, "fake.children": 3, "fake.record": True},
                "algorithm": {"entropy_coeff": coeff_ok, "kl_loss_coef": 0.01},
            },
        },
        "search": {
            "num_samples": 2,
            "max_concurrent": 2,
            "space": {"algorithm.entropy_coeff": {"type": "choice", "values": [coeff_bad, coeff_ok]}},
            "points_to_evaluate": [
                {"algorithm.entropy_coeff": coeff_bad},
                {"algorithm.entropy_coeff": coeff_ok},
            ],
        },
        "criteria": [
            {"name": "entropy_high", "metric": "actor/entropy", "op": ">", "value": 7, "after_step": 3}
        ],
        "resources": {"cpu": 1, "gpu": 4},
        "storage": {"path": str(tmp_path / "results")},
        "tracking": {"wandb": {"mode": "disabled"}},
        "ray": {"address": cluster.address},
        "checkpoint": {"frequency": 0},
    }
    out = tmp_path / "run.log"
    assert run_cli(cluster, write_spec(tmp_path, data), out) == 0, out.read_text()[-3000:]
    sweep_dir = tmp_path / "results" / "cmd"
    rows = {r["params"]["algorithm.entropy_coeff"]: r for r in verdict_rows(sweep_dir)}
    assert rows[coeff_bad]["verdict"] == "stopped:entropy_high" and rows[coeff_bad]["step"] < STEPS
    assert rows[coeff_ok]["verdict"] == "healthy" and rows[coeff_ok]["step"] == STEPS
    workers = {n.ip for n in cluster.nodes[1:]}
    ran_on = {}
    for coeff, row in rows.items():
        ips = {r["node_ip"] for r in last_reports(sweep_dir, row["trial_id"])}  # Ray's own record
        assert len(ips) == 1 and ips <= workers, (coeff, ips)
        ran_on[coeff] = ips.pop()
    assert len(set(ran_on.values())) == 2  # 4 GPUs each: one trial per worker node
    records = [json.loads(p.read_text()) for p in sweep_dir.rglob("fake_record.json")]
    assert len(records) == 2
    for rec in records:  # the stopped trainer and the finished one: no process of either
        assert rec["ray_address"] == "local"  # the trainer did not join the sweep's cluster
        deadline = time.monotonic() + 10
        while live_processes(pgid=rec["sid"], sid=rec["sid"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert live_processes(pgid=rec["sid"], sid=rec["sid"]) == [], rec
    log.info("command trials ran on %s", ran_on)


def test_trials_spread_over_nodes_and_a_killed_node_retries_from_its_checkpoint(cluster, tmp_path):
    coeffs = [0.001, 0.002, 0.003]  # healthy trials, one per node (1 CPU each)
    node_log = tmp_path / "nodes.jsonl"
    data = spec_data(
        tmp_path,
        "spread",
        coeffs,
        steps=STEPS,
        sleep_s=0.4,
        concurrent=3,
        failure={"max_failures": 1},
        ray={"address": cluster.address},
        checkpoint={"frequency": CKPT_EVERY},
    )
    data["trainable"]["backend"] = NODE_BACKEND
    data["trainable"]["config"]["node_log"] = str(node_log)
    victim_node = cluster.nodes[1]
    victim_id = cluster.node_id(victim_node)
    ids = {cluster.node_id(n): n.name for n in cluster.nodes}
    assert len(ids) == 3 and victim_id in ids
    killed = {}

    def kill_mid_trial(proc) -> None:
        """SIGKILL worker-a's raylet once its trial is past its step-4 checkpoint."""
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while max((x["step"] for x in node_lines(node_log) if x["node"] == victim_id), default=0) < 5:
            assert proc.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no trial reached step 5 on worker-a"
            time.sleep(0.05)
        on_victim = [x for x in node_lines(node_log) if x["node"] == victim_id]
        killed["raylet"] = cluster.kill_raylet(victim_node)
        killed["trial"], killed["step"] = on_victim[0]["trial"], on_victim[-1]["step"]

    out = tmp_path / "run.log"
    code = run_cli(cluster, write_spec(tmp_path, data), out, until=kill_mid_trial)
    assert code == 0, out.read_text()[-3000:]
    sweep_dir = tmp_path / "results" / "spread"
    lines = node_lines(node_log)

    # trials landed on all three nodes, and Ray's own record of each report agrees
    first_node, first_ip = {}, {}
    for x in lines:
        first_node.setdefault(x["trial"], x["node"])
        first_ip.setdefault(x["trial"], x["ip"])
    assert set(first_node.values()) == set(ids), {t: ids[n] for t, n in first_node.items()}
    for trial, ip in first_ip.items():
        assert last_reports(sweep_dir, trial)[0]["node_ip"] == ip
    assert set(first_ip.values()) == {n.ip for n in cluster.nodes}

    # the killed node's trial: two attempts, the second on another node, from a checkpoint
    victim = killed["trial"]
    attempts: dict[int, list[dict]] = {}
    for x in lines:
        if x["trial"] == victim:
            attempts.setdefault(x["pid"], []).append(x)
    assert len(attempts) == 2, attempts  # first attempt + max_failures=1 retry
    before, after = attempts.values()
    assert {x["node"] for x in before} == {victim_id}
    assert len({x["node"] for x in after}) == 1 and after[0]["node"] != victim_id
    restart = after[0]["step"] - 1  # the checkpoint it resumed from
    assert restart >= 4 and restart % CKPT_EVERY == 0 and restart <= before[-1]["step"], (before, after)
    assert after[-1]["step"] == STEPS

    # exactly one verdict per trial, all healthy; every step's report is in the driver's
    # results dir, each once (a re-run step replaces the one the kill cut short)
    rows = verdict_rows(sweep_dir)
    assert len(rows) == 3 and len({r["trial_id"] for r in rows}) == 3
    assert all(r["verdict"] == "healthy" and r["step"] == STEPS for r in rows), rows
    for r in rows:
        assert [int(x["step"]) for x in read_results(sweep_dir / r["trial_id"])] == list(range(1, STEPS + 1))
        assert (sweep_dir / r["trial_id"] / "params.json").exists()
        assert list((sweep_dir / r["trial_id"]).glob("checkpoint_*"))  # written by the node, kept here
    reported_ips = [x["node_ip"] for x in last_reports(sweep_dir, victim)]
    assert reported_ips[0] == victim_node.ip and reported_ips[-1] != victim_node.ip
    trials = {t.user_attrs["ray_trial_id"]: t for t in study_trials(sweep_dir, "spread")}
    assert len(trials) == 3 and {t.state.name for t in trials.values()} == {"COMPLETE"}

    # the dead node left no process behind; the other two still serve
    deadline = time.monotonic() + 15
    while cluster.processes_of(victim_node) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert cluster.processes_of(victim_node) == []
    log.info(
        "first attempts: %s; raylet of %s SIGKILLed at step %d of %s, whose worker ran to step %d "
        "before Ray ended it; the retry resumed at step %d on %s",
        ", ".join(f"{t} on {ids[n]}" for t, n in first_node.items()),
        ids[victim_id],
        killed["step"],
        victim,
        before[-1]["step"],
        after[0]["step"],
        ids[after[0]["node"]],
    )
