"""Record the tiny-world table: full runs (no stopping, every metric key, every step) over a
grid of (entropy_coeff, kl_loss_coef, seed) at the default sweep's settings.

    .venv/bin/python bench/make_table.py [--jobs 2] [--parts DIR] [--out FILE]

Resumable: each finished run is written to its own file under `--parts` (atomically), and
a rerun skips those. When every run is there, the parts are merged into one gzipped
history JSONL (`--out`, the format `archer-sweep backtest`/`next` and `backend: replay`
read) and a provenance file beside it (commit, machine, date, wall time).
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import gzip
import json
import logging
import multiprocessing as mp
import os
import platform
import subprocess
import time
from pathlib import Path

import yaml

from trainable import build_trainer

log = logging.getLogger("make_table")
ROOT = Path(__file__).resolve().parents[1]
ENTROPY = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.3)
KL = (0.001, 0.01, 0.03, 0.1)
SEEDS = (0, 1, 2)


def base_config() -> dict:
    """The default sweep's trainable config (sweeps/entropy.yaml), one thread per run."""
    spec = yaml.safe_load((ROOT / "sweeps" / "entropy.yaml").read_text())
    config = copy.deepcopy(spec["trainable"]["config"])
    config["backend"] = spec["trainable"]["backend"]
    config.setdefault("trainer", {})["threads"] = 1
    return config


def run_name(ec: float, kl: float, seed: int) -> str:
    return f"ec{ec:g}-kl{kl:g}-s{seed}"


def jobs() -> list[tuple[str, dict, dict]]:
    """Seed-major order, so a partial table already covers the whole grid once."""
    out = []
    for seed in SEEDS:
        for ec in ENTROPY:
            for kl in KL:
                params = {"algorithm.entropy_coeff": ec, "algorithm.kl_loss_coef": kl}
                config = copy.deepcopy(base_config())
                config["algorithm"].update(entropy_coeff=ec, kl_loss_coef=kl)
                config["trainer"]["seed"] = seed
                out.append((run_name(ec, kl, seed), {**params, "trainer.seed": seed}, config))
    return out


def record(job: tuple[str, dict, dict, str]) -> str:
    name, params, config, parts = job
    target = Path(parts) / f"{name}.jsonl"
    if target.exists():
        return name
    trainer = build_trainer(config)
    lines = []
    while not trainer.done():
        metrics = trainer.step()
        step = int(metrics["step"])
        lines.append(json.dumps({"run": name, "step": step, "params": params, "metrics": metrics}))
    trainer.close()
    tmp = target.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, target)
    return name


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True, capture_output=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def add_wall(parts: Path, seconds: float) -> float:
    """Wall time summed over every invocation (the table may be built in several)."""
    path = parts / "wall_s.txt"
    total = (float(path.read_text()) if path.exists() else 0.0) + seconds
    path.write_text(f"{total:.1f}\n")
    return total


def merge(all_jobs: list, parts: Path, out: Path, wall_s: float) -> None:
    with gzip.open(out, "wt") as f:
        for name, _, _, _ in all_jobs:
            f.write((parts / f"{name}.jsonl").read_text())
    provenance = {
        "commit": commit(),
        "date": dt.date.today().isoformat(),
        "machine": cpu_model(),
        "cores": os.cpu_count(),
        "wall_s": round(wall_s, 1),
        "grid": {"algorithm.entropy_coeff": ENTROPY, "algorithm.kl_loss_coef": KL, "trainer.seed": SEEDS},
        "runs": len(all_jobs),
        "config": base_config(),
        "command": "python bench/make_table.py --jobs 2",
    }
    out.with_name(out.name.replace(".jsonl.gz", ".provenance.json")).write_text(
        json.dumps(provenance, indent=2) + "\n"
    )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--parts", default=str(ROOT / "bench" / "data" / "tiny-world.parts"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "data" / "tiny-world.jsonl.gz"))
    args = parser.parse_args()
    parts = Path(args.parts)
    parts.mkdir(parents=True, exist_ok=True)
    all_jobs = [(*j, str(parts)) for j in jobs()]
    build_trainer(base_config())  # the warm start once, before the workers start
    t0 = time.time()
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        for i, name in enumerate(pool.imap_unordered(record, all_jobs), 1):
            log.info("%d/%d %s (%.0f s)", i, len(all_jobs), name, time.time() - t0)
    merge(all_jobs, parts, Path(args.out), add_wall(parts, time.time() - t0))
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
