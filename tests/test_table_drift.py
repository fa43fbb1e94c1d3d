"""The recorded tiny world is still the trainer's world: the first steps of the v2 table's first
run, re-run at HEAD with the recorder's own config (bench/make_table.py), give the recorded reports.

When this fails, the trainer's floats (or the default sweep's config) changed since the table
was recorded: re-record it (`bench/make_table.py`) and its AVX2 reference
(`bench/drift_reference.py`), don't loosen the test. The shipped `tiny-world.jsonl.gz` (793cc62)
is not checked: it is known stale (#24).

torch picks its CPU kernels per CPU, and the sampled tokens follow the logits' last bits, so each
reference is re-run (bench/drift_reference.py, a fresh process) under the kernels it was
recorded with: the table under AVX-512 where the CPU has them, a committed copy of its first steps
recorded under AVX2 (`tests/data/table_drift.jsonl`) on every CPU.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from trainable import metrics as M

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
V2_TABLE = REPO / "bench" / "data" / "tiny-world-v2.jsonl.gz"
FIXTURE = REPO / "tests" / "data" / "table_drift.jsonl"
RERUN = REPO / "bench" / "drift_reference.py"
STEPS = 3  # a few seconds: the warm start, one validation and three GRPO steps

#: Counted from sampled tokens and greedy validations: any drift in the floats that matters
#: flips a token somewhere, so these must match exactly.
EXACT = {
    M.STEP, M.SCORE_MEAN, M.SCORE_MAX, M.SCORE_MIN, M.RESP_LEN_MEAN, M.RESP_LEN_POS, M.RESP_LEN_NEG,
    M.RESP_CLIP_RATIO, M.SOLVE_NONE, M.SOLVE_ALL, M.VALID, M.LOGICAL_CONNECTIVES, M.GIBBERISH_FRAC,
}  # fmt: skip
#: Wall-clock keys: never reproducible.
SKIP_PREFIXES = ("timing_s/", M.THROUGHPUT)
#: With the kernels pinned, the losses, entropy, KL and grad norm may still differ in the last
#: bits where the BLAS takes another path on another CPU vendor; a real trainer change moves
#: them by far more than 1e-6. Values near zero (advantage mean, ppo_kl at step 1) get the
#: absolute bound.
REL_TOL, ABS_TOL = 1e-6, 1e-9
#: On a CPU whose own kernels are wider than the pinned ones (AVX-512 hardware re-running the
#: AVX2 reference), only ATen's kernels are pinned: MKL and oneDNN still pick their own paths.
#: A Zen 4 EPYC re-running the Zen 3 EPYC's AVX2 reference gave every token and score exactly,
#: and KL loss and grad norm apart by up to 2.6e-6 (with MKL/oneDNN capped at AVX2 too: 1.5e-6).
WIDER_HARDWARE_REL_TOL = 1e-5


def provenance(path: Path) -> dict:
    """The provenance file beside a recorded table or reference (`NAME.provenance.json`)."""
    from drift_reference import provenance_path

    return json.loads(provenance_path(path).read_text())


def _same(key: str, want: float, got: float, rel_tol: float) -> bool:
    if math.isnan(want) or math.isnan(got):
        return math.isnan(want) and math.isnan(got)
    if key in EXACT or key.startswith((M.VAL_CORE + "/", M.VAL_AUX + "/")):
        return want == got
    return math.isclose(want, got, rel_tol=rel_tol, abs_tol=ABS_TOL)


def _kept(report: dict) -> dict:
    return {k: v for k, v in report.items() if not k.startswith(SKIP_PREFIXES)}


def drift(rows: list[dict], reports: list[dict], rel_tol: float = REL_TOL) -> list[str]:
    """Where re-run `reports` depart from the recorded `rows` (empty: nowhere)."""
    problems = []
    for row, report in zip(rows, reports, strict=True):
        want, got = _kept(row["metrics"]), _kept(report)
        if want.keys() != got.keys():
            problems.append(f"step {row['step']}: keys {sorted(want.keys() ^ got.keys())}")
        problems += [
            f"step {row['step']}: {k} recorded {v!r}, now {got[k]!r}"
            for k, v in want.items()
            if k in got and not _same(k, v, got[k], rel_tol)
        ]
    return problems


def test_drift_names_each_departure():
    row = {"step": 1, "metrics": {M.SCORE_MEAN: 0.25, M.ENTROPY: 3.0, "timing_s/gen": 1.0}}
    assert drift([row], [{M.SCORE_MEAN: 0.25, M.ENTROPY: 3.0 * (1 + 1e-7), "timing_s/gen": 9.0}]) == []
    assert drift([row], [{M.SCORE_MEAN: 0.25 + 1e-12, M.ENTROPY: 3.001}]) == [
        f"step 1: {M.SCORE_MEAN} recorded 0.25, now {0.25 + 1e-12!r}",
        f"step 1: {M.ENTROPY} recorded 3.0, now 3.001",
    ]
    wider = [{M.SCORE_MEAN: 0.25, M.ENTROPY: 3.0 * (1 + 3e-6)}]
    assert drift([row], wider) == [f"step 1: {M.ENTROPY} recorded 3.0, now {3.0 * (1 + 3e-6)!r}"]
    assert drift([row], wider, WIDER_HARDWARE_REL_TOL) == []
    assert drift([row], [{M.SCORE_MEAN: 0.25, M.ENTROPY: 3.001}], WIDER_HARDWARE_REL_TOL) != []


def departures(path: Path, rows: list[dict], kernels: str, rel_tol: float) -> list[str]:
    """Where the recorded `rows` (a table's first run) depart from the trainer at HEAD re-running
    them under `kernels` (bench/drift_reference.py, a fresh process); skips where this CPU has no
    such kernels."""
    from drift_reference import NO_SUCH_KERNELS

    cmd = [
        sys.executable,
        str(RERUN),
        *("--table", str(path), "--steps", str(len(rows)), "--capability", kernels, "--print"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    if proc.returncode == NO_SUCH_KERNELS:
        pytest.skip(f"this CPU has no {kernels} kernels for torch: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return drift(rows, json.loads(proc.stdout.splitlines()[-1]), rel_tol)


@pytest.mark.parametrize("path", [V2_TABLE, FIXTURE], ids=["table", "avx2_reference"])
def test_trainer_at_head_reproduces_a_recorded_run(path):
    from drift_reference import cpu_capability, cpu_vendor, first_steps

    rows, recorded = first_steps(path, STEPS), provenance(path)
    assert len(rows) == STEPS and [r["step"] for r in rows] == list(range(1, STEPS + 1))
    assert any(k.startswith(M.VAL_CORE + "/") for k in rows[0]["metrics"])  # the outcome is checked too
    kernels = recorded["cpu_capability"]
    if path == V2_TABLE and cpu_vendor() != recorded["cpu_vendor"]:
        pytest.skip(f"the table was recorded on {recorded['cpu_vendor']}; the AVX2 reference is checked here")
    wider = cpu_capability().lower() != kernels.lower()  # this process runs the hardware's own
    problems = departures(path, rows, kernels, WIDER_HARDWARE_REL_TOL if wider else REL_TOL)
    head = f"the trainer no longer reproduces {rows[0]['run']} ({kernels} kernels): re-record the table"
    assert not problems, "\n".join([head, *problems[:20]])


def test_the_avx2_reference_mirrors_the_table():
    """Re-recording the table without its reference fails here (bench/drift_reference.py --write)."""
    from drift_reference import first_steps

    reference, table = first_steps(FIXTURE, STEPS), first_steps(V2_TABLE, STEPS)
    assert [(r["run"], r["step"], r["params"]) for r in reference] == [
        (r["run"], r["step"], r["params"]) for r in table
    ]
    assert provenance(FIXTURE)["table_commit"] == provenance(V2_TABLE)["commit"]
    assert provenance(FIXTURE)["cpu_capability"] == "AVX2"


def test_off_grid_configs_lie_inside_a_cell_nearer_one_corner():
    """An off-grid config at a cell's midpoint would snap by the tie-break alone (make_table.OFF_GRID)."""
    from make_table import ENTROPY, KL, OFF_GRID

    for config in OFF_GRID:
        for x, grid in zip(config, (ENTROPY, KL)):
            lo = max(g for g in grid if g < x)
            hi = min(g for g in grid if g > x)
            frac = math.log(x / lo) / math.log(hi / lo)
            assert abs(frac - 0.5) > 0.1, (config, x, frac)
