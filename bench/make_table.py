"""Record the tiny-world table: full runs (no stopping, every metric key, every step) over a
grid of (entropy_coeff, kl_loss_coef, seed), plus off-grid configs, at the default sweep's
settings (its validation outcome included).

    .venv/bin/python bench/make_table.py [--jobs 2] [--parts DIR] [--out FILE]
    .venv/bin/python bench/make_table.py --status       # parts done of how many
    .venv/bin/python bench/make_table.py --only-merge   # merge finished parts, run nothing
    .venv/bin/python bench/make_table.py --jobs 1 --model n_layer=2,d_model=64 --seeds 0,1 \
        --no-off-grid --kernels avx2 --out bench/data/tiny-world-proxy.jsonl.gz   # a proxy world

Resumable: each finished run is written to its own file under `--parts` (atomically), and
a rerun skips those. When every run is there, the parts are merged into one gzipped
history JSONL (`--out`, the format `archer-sweep backtest`/`next` and `backend: replay`
read) and a provenance file beside it (commit, machine, date, wall time, grid, off-grid).
The commit is the one each recording invocation started from (kept in `--parts`), not the
one that merges: merging may happen sessions later.

A proxy world (#24 item 7, bench/proxy.py) is the same grid at other model sizes (`--model`,
any `TinyModelConfig` field), fewer seeds (`--seeds`), without the off-grid configs
(`--no-off-grid`); `--parts` and `--out` default to names derived from `--out`. Its sizes, seeds,
kernels and command are kept in `--parts` (a resume with others is refused: one world per
table) and written to the provenance. Sizes without a shipped warm start build one (SFT, once)
and the table's copy of it is written beside the table (`NAME.warmstart.pt`), so the drift test
re-runs the table's own weights: another CPU or thread count rounds the SFT differently.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import gzip
import hashlib
import json
import logging
import multiprocessing as mp
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from trainable import build_trainer, warmstart
from trainable.config import TinyModelConfig

log = logging.getLogger("make_table")
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data"
ENTROPY = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.3)
KL = (0.001, 0.01, 0.03, 0.1)
SEEDS = (0, 1, 2, 3, 4)
#: (entropy_coeff, kl_loss_coef) inside a grid cell on the log scale in both axes, to test
#: `backend: replay`'s nearest-config rule (`archer_sweep.results.replay.snap`) against a
#: recorded truth. Each sits about 1/3 or 2/3 of the way across its cell on each axis (2
#: significant digits), not at the geometric midpoint: a midpoint is equidistant from the
#: cell's four corners, so its nearest config would be decided by the tie-break alone.
#: The corner it snaps to varies; half of them lie where the default sweep searches
#: hardest (entropy 0.002–0.05, the runaway cliff).
OFF_GRID = (
    (0.0013, 0.0046),
    (0.0037, 0.014),
    (0.0063, 0.067),
    (0.0079, 0.014),
    (0.013, 0.0046),
    (0.016, 0.014),
    (0.027, 0.067),
    (0.037, 0.0022),
    (0.063, 0.021),
    (0.21, 0.045),
)
#: The files this table's world is made of: a recording from a worktree where they differ
#: from the commit would not be the commit's world.
WORLD_FILES = ("trainable", "sweeps/entropy.yaml", "bench/make_table.py")


@dataclass(frozen=True)
class Recording:
    """What a table's world is made of besides the code: the defaults are the v2 table's."""

    model: dict = field(default_factory=dict)
    """TinyModelConfig fields that differ from the default sweep's model (a proxy world)."""
    seeds: tuple[int, ...] = SEEDS
    off_grid: bool = True
    kernels: str | None = None
    """torch CPU kernels the runs were pinned to (`ATEN_CPU_CAPABILITY`; None: the CPU's own)."""


def parse_model(text: str) -> dict:
    """`n_layer=2,d_model=64` → the TinyModelConfig fields named, validated (a typo is an error)."""
    raw = dict(item.split("=", 1) for item in text.split(",") if item)
    try:
        cfg = TinyModelConfig.model_validate(raw)
    except ValueError as exc:
        raise SystemExit(f"--model {text!r}: {exc}") from exc
    return {k: getattr(cfg, k) for k in raw}


def base_config(model: dict | None = None) -> dict:
    """The default sweep's trainable config (sweeps/entropy.yaml), one thread per run; `model`:
    TinyModelConfig fields of a proxy world (none: the sweep's own model)."""
    spec = yaml.safe_load((ROOT / "sweeps" / "entropy.yaml").read_text())
    config = copy.deepcopy(spec["trainable"]["config"])
    config["backend"] = spec["trainable"]["backend"]
    config.setdefault("trainer", {})["threads"] = 1
    if model:
        config.setdefault("model", {}).update(model)
    return config


def config_of(params: dict, model: dict | None = None) -> dict:
    """The trainable config of one recorded run, from its dotted params and its table's model
    sizes (what the drift test rebuilds a recorded run with)."""
    config = base_config(model)
    for key, value in params.items():
        *path, leaf = key.split(".")
        node = config
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return config


def run_name(ec: float, kl: float, seed: int) -> str:
    return f"ec{ec:g}-kl{kl:g}-s{seed}"


def configs(off_grid: bool = True) -> list[tuple[float, float]]:
    return [(ec, kl) for ec in ENTROPY for kl in KL] + (list(OFF_GRID) if off_grid else [])


def jobs(
    seeds: tuple[int, ...] = SEEDS, off_grid: bool = True, model: dict | None = None
) -> list[tuple[str, dict, dict]]:
    """Seed-major order, so a partial table already covers every config once."""
    out = []
    for seed in seeds:
        for ec, kl in configs(off_grid):
            params = {"algorithm.entropy_coeff": ec, "algorithm.kl_loss_coef": kl, "trainer.seed": seed}
            out.append((run_name(ec, kl, seed), params, config_of(params, model)))
    return out


def record(job: tuple[str, dict, dict, str]) -> tuple[str, float]:
    """Run one config to its end and write its part file; returns (name, seconds)."""
    name, params, config, parts = job
    t0 = time.time()
    trainer = build_trainer(config)
    lines = []
    while not trainer.done():
        metrics = trainer.step()
        step = int(metrics["step"])
        lines.append(json.dumps({"run": name, "step": step, "params": params, "metrics": metrics}))
    trainer.close()
    target = Path(parts) / f"{name}.jsonl"
    tmp = target.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, target)
    return name, time.time() - t0


def git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, text=True, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""


def commit() -> str:
    """HEAD's short hash, `+dirty` when the world's files differ from it."""
    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--", *WORLD_FILES).strip() else "")


def note_commit(parts: Path) -> None:
    """Remember the commit this invocation records from; warn when it differs from earlier ones."""
    path = parts / "commits.txt"
    earlier = path.read_text().split() if path.exists() else []
    now = commit()
    if now.endswith("+dirty"):
        log.warning("the world's files (%s) differ from HEAD: the provenance says so", ", ".join(WORLD_FILES))
    if earlier and now not in earlier:
        log.warning("resuming at %s, but parts were recorded at %s: two worlds in one table", now, earlier)
    if now not in earlier:
        path.write_text("".join(f"{c}\n" for c in [*earlier, now]))


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


def note_world(parts: Path, recording: Recording) -> None:
    """Keep what makes the recording's world in `parts` (model sizes, kernels, CPU vendor) and
    the first command; refuse to resume with another world (two worlds in one table). Seeds and
    off-grid configs may grow: each part is one run of the same world."""
    from drift_reference import cpu_capability, cpu_vendor  # a sibling script, as in merge

    path = parts / "world.json"
    now = {"model": recording.model, "kernels": recording.kernels}
    now |= {"cpu_capability": cpu_capability(), "cpu_vendor": cpu_vendor()}
    if path.exists():
        earlier = json.loads(path.read_text())
        if {k: earlier.get(k) for k in now} != now:
            raise SystemExit(f"{parts} was recorded with {earlier}, not {now}: use another --parts")
        return
    path.write_text(json.dumps({**now, "command": shlex.join(["python", *sys.argv])}, indent=2) + "\n")


def keep_warm_start(parts: Path, model: dict) -> None:
    """Copy a built (not shipped) warm start into `parts` once; a later invocation must have
    built the same weights (a rebuilt cache rounds differently on another CPU)."""
    cfg, sft = TinyModelConfig(**model), warmstart.SFTSettings()
    key = warmstart.cache_key(cfg, sft)
    if not cfg.warm_start or warmstart.shipped_path(key).exists():
        return
    cached, kept = warmstart.cache_dir() / warmstart.file_name(key), parts / warmstart.file_name(key)
    if not kept.exists():
        shutil.copyfile(cached, kept)
    elif sha256(kept) != sha256(cached):
        raise SystemExit(
            f"the warm start in {warmstart.cache_dir()} differs from the one {parts} was recorded with"
        )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def missing(all_jobs: list, parts: Path) -> list[str]:
    return [name for name, *_ in all_jobs if not (parts / f"{name}.jsonl").exists()]


def merge(all_jobs: list, parts: Path, out: Path, recording: Recording) -> None:
    from drift_reference import cpu_capability, cpu_vendor, provenance_path  # a sibling script

    with gzip.open(out, "wt") as f:
        for name, *_ in all_jobs:
            f.write((parts / f"{name}.jsonl").read_text())
    commits_file, wall_file, world_file = parts / "commits.txt", parts / "wall_s.txt", parts / "world.json"
    commits = commits_file.read_text().split() if commits_file.exists() else [commit()]
    # the recording's kernels, not the merging process's (a pinned recording may merge unpinned)
    world = json.loads(world_file.read_text()) if world_file.exists() else {}
    provenance = {
        "commit": commits[0],
        **({"commits": commits} if len(commits) > 1 else {}),
        "date": dt.date.today().isoformat(),
        "machine": cpu_model(),
        "cores": os.cpu_count(),
        # the world depends on torch's CPU kernels (tests/test_table_drift.py re-runs under them)
        "cpu_vendor": world.get("cpu_vendor", cpu_vendor()),
        "cpu_capability": world.get("cpu_capability", cpu_capability()),
        "wall_s": float(wall_file.read_text()) if wall_file.exists() else None,
        "grid": {
            "algorithm.entropy_coeff": ENTROPY,
            "algorithm.kl_loss_coef": KL,
            "trainer.seed": recording.seeds,
        },
        "off_grid": [
            {"algorithm.entropy_coeff": ec, "algorithm.kl_loss_coef": kl}
            for ec, kl in (OFF_GRID if recording.off_grid else ())
        ],
        "runs": len(all_jobs),
        "config": base_config(recording.model),
        "command": world.get("command", "python bench/make_table.py --jobs 2"),
    }
    if recording.model:
        provenance["model"] = recording.model
    provenance |= ship_warm_start(parts, out, recording.model)
    provenance_path(out).write_text(json.dumps(provenance, indent=2) + "\n")
    log.info("wrote %s (%d runs) and its provenance", out, len(all_jobs))


def ship_warm_start(parts: Path, out: Path, model: dict) -> dict:
    """The recording's own warm start beside the table (`NAME.warmstart.pt`), named in the
    provenance; nothing when the sizes' warm start ships with the package."""
    kept = list(parts.glob(warmstart.file_name("*")))
    if not kept:
        return {}
    target = out.with_name(out.name.replace(".jsonl.gz", ".warmstart.pt"))
    shutil.copyfile(kept[0], target)
    key = warmstart.cache_key(TinyModelConfig(**model), warmstart.SFTSettings())
    return {"warm_start": {"file": target.name, "key": key, "sha256": sha256(target)}}


def run_all(all_jobs: list, parts: Path, n_jobs: int, recording: Recording) -> None:
    """Record the missing runs, logging i/N, elapsed and an ETA from the rate so far."""
    todo = [j for j in all_jobs if j[0] in set(missing(all_jobs, parts))]
    done0 = len(all_jobs) - len(todo)
    log.info("%d of %d runs already recorded; %d to go with %d jobs", done0, len(all_jobs), len(todo), n_jobs)
    if not todo:
        return
    note_commit(parts)
    note_world(parts, recording)
    build_trainer(base_config(recording.model))  # the warm start once, before the workers start
    keep_warm_start(parts, recording.model)
    t0 = time.time()
    try:
        with mp.get_context("spawn").Pool(n_jobs) as pool:
            results = pool.imap_unordered(record, [(*j, str(parts)) for j in todo])
            for i, (name, secs) in enumerate(results, 1):
                elapsed = time.time() - t0
                eta_h = elapsed / i * (len(todo) - i) / 3600
                n, total = done0 + i, len(all_jobs)
                log.info(
                    "%d/%d %s: run %.0f s, elapsed %.0f s, ETA %.1f h", n, total, name, secs, elapsed, eta_h
                )
    finally:  # an interrupted invocation's time still counts
        add_wall(parts, time.time() - t0)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default=str(DATA / "tiny-world-v2.jsonl.gz"))
    parser.add_argument("--parts", help="where finished runs are kept (default: --out's name, .parts)")
    parser.add_argument("--model", default="", help="TinyModelConfig fields, e.g. n_layer=2,d_model=64")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="comma-separated trainer seeds")
    parser.add_argument("--no-off-grid", action="store_true", help="the grid only")
    parser.add_argument(
        "--kernels", help="pin torch's CPU kernels (avx2, avx512): reproducible on other CPUs"
    )
    parser.add_argument("--status", action="store_true", help="log parts done of how many, run nothing")
    parser.add_argument("--only-merge", action="store_true", help="merge the parts (all must be done)")
    args = parser.parse_args()
    if args.kernels:
        from drift_reference import pinned

        pinned(args.kernels)  # before the first torch op: re-executes this script pinned
    recording = Recording(
        parse_model(args.model),
        tuple(int(s) for s in args.seeds.split(",")),
        not args.no_off_grid,
        args.kernels,
    )
    out = Path(args.out)
    parts = Path(args.parts or out.with_name(out.name.replace(".jsonl.gz", ".parts")))
    parts.mkdir(parents=True, exist_ok=True)
    all_jobs = jobs(recording.seeds, recording.off_grid, recording.model)
    if args.status:
        left = missing(all_jobs, parts)
        done = len(all_jobs) - len(left)
        log.info("%d of %d parts done in %s; next: %s", done, len(all_jobs), parts, left[:3])
        return
    if not args.only_merge:
        run_all(all_jobs, parts, args.jobs, recording)
    left = missing(all_jobs, parts)
    if left:
        log.error("%d runs missing (first: %s); nothing merged", len(left), left[0])
        sys.exit(1)
    merge(all_jobs, parts, out, recording)


if __name__ == "__main__":
    main()
