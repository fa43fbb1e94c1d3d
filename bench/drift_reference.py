"""Re-run the first steps of a recorded table's first run under a chosen set of torch CPU kernels.

    .venv/bin/python bench/drift_reference.py --capability avx2 --write tests/data/table_drift.jsonl
    .venv/bin/python bench/drift_reference.py --table T --capability avx512 --print   # what the drift test reads

Why kernels: torch's CPU kernels are picked per CPU (ATen's AVX2 vs AVX-512 paths), and the
tiny world's sampled tokens depend on the last bits of the logits: the same code gives another
world on another CPU (2 of 3 steps differ). Pinning `ATEN_CPU_CAPABILITY` makes a run
reproducible on every CPU that has those kernels, Intel or AMD, so the drift test checks the
table (recorded with AVX-512) where the CPU has AVX-512 and this AVX2 reference everywhere.

Exit 3 when this CPU cannot run the requested kernels (the drift test then skips that reference).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

log = logging.getLogger("drift_reference")
ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "bench" / "data" / "tiny-world-v2.jsonl.gz"
CAPABILITY_ENV = "ATEN_CPU_CAPABILITY"
NO_SUCH_KERNELS = 3


def first_steps(table: Path, steps: int) -> list[dict]:
    """The first `steps` rows of the first run of a table (gzipped or plain JSONL)."""
    rows: list[dict] = []
    opener = gzip.open if table.suffix == ".gz" else open
    with opener(table, "rt") as f:
        for line in f:
            row = json.loads(line)
            if len(rows) == steps or (rows and row["run"] != rows[0]["run"]):
                break
            rows.append(row)
    return rows


def cpu_capability() -> str:
    """The kernel set torch dispatches to in this process (e.g. AVX2, AVX512)."""
    import torch

    return torch.backends.cpu.get_cpu_capability()


def cpu_vendor() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("vendor_id"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def provenance_path(table: Path) -> Path:
    """The provenance file beside a table or reference: `NAME.provenance.json`."""
    return table.with_name(table.name.split(".jsonl")[0] + ".provenance.json")


def provenance_of(table: Path) -> dict:
    """The provenance beside a table or reference ({} when none)."""
    path = provenance_path(table)
    return json.loads(path.read_text()) if path.exists() else {}


def use_table_warm_start(table: Path, provenance: dict, cache: Path) -> None:
    """Make a proxy table's own warm start (`NAME.warmstart.pt`, make_table) the one the trainer
    loads, from a fresh cache: a rebuilt one would round differently on another CPU. Its key
    must still be the trainer's: another key means the warm start's recipe or sizes changed."""
    from trainable import warmstart
    from trainable.config import TinyModelConfig

    ws = provenance["warm_start"]
    key = warmstart.cache_key(TinyModelConfig(**provenance.get("model", {})), warmstart.SFTSettings())
    if key != ws["key"]:
        sys.exit(f"the warm start's key is now {key}, the table's {ws['key']}: re-record {table.name}")
    shutil.copyfile(table.with_name(ws["file"]), cache / warmstart.file_name(key))
    os.environ["ARCHER_SWEEP_CACHE"] = str(cache)


def rerun(params: dict, steps: int, table: Path = TABLE) -> list[dict]:
    """The reports of a trainer built as make_table builds the run with these params, at the
    table's model sizes and with its warm start (a proxy table's, `bench/proxy.py`)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from make_table import config_of

    from trainable import build_trainer

    provenance = provenance_of(table)
    before = os.environ.get("ARCHER_SWEEP_CACHE")
    with tempfile.TemporaryDirectory() as cache:
        try:
            if "warm_start" in provenance:
                use_table_warm_start(table, provenance, Path(cache))
            trainer = build_trainer(config_of(params, provenance.get("model")))
            reports = [trainer.step() for _ in range(steps)]
            trainer.close()
        finally:  # the temporary cache is gone after this: a later build must not look there
            if before is None:
                os.environ.pop("ARCHER_SWEEP_CACHE", None)
            else:
                os.environ["ARCHER_SWEEP_CACHE"] = before
    return reports


def pinned(capability: str) -> None:
    """Make sure this process runs `capability`'s kernels: re-exec with the variable set, or exit 3."""
    if cpu_capability().lower() == capability.lower():
        return
    if os.environ.get(CAPABILITY_ENV, "").lower() != capability.lower():
        # ATen reads the variable once, at its first dispatch: only a fresh process can change it.
        env = {**os.environ, CAPABILITY_ENV: capability.lower()}
        sys.exit(subprocess.run([sys.executable, *sys.argv], env=env).returncode)
    log.error("this CPU cannot run torch's %s kernels (it runs %s)", capability, cpu_capability())
    sys.exit(NO_SUCH_KERNELS)


def write(rows: list[dict], reports: list[dict], out: Path, table: Path) -> None:
    table_provenance = json.loads(provenance_path(table).read_text())
    lines = [json.dumps({**row, "metrics": report}) for row, report in zip(rows, reports)]
    out.write_text("\n".join(lines) + "\n")
    provenance = {
        "table": str(table.relative_to(ROOT)),
        "table_commit": table_provenance["commit"],
        "run": rows[0]["run"],
        "steps": len(rows),
        "cpu_capability": cpu_capability(),
        "cpu_vendor": cpu_vendor(),
        "date": dt.date.today().isoformat(),
        "command": f"python bench/drift_reference.py --capability {cpu_capability().lower()} --write {out.name}",
    }
    out.with_name(out.stem + ".provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    log.info("wrote %s (%s, %d steps, %s kernels)", out, rows[0]["run"], len(rows), cpu_capability())


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--table", type=Path, default=TABLE, help="the recorded table (default: the v2 table)"
    )
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--capability", required=True, help="torch CPU kernels to run: avx2, avx512, …")
    out = parser.add_mutually_exclusive_group(required=True)
    out.add_argument("--print", action="store_true", help="print the reports as one JSON list")
    out.add_argument("--write", type=Path, help="write the reports as a reference JSONL + provenance")
    args = parser.parse_args()
    pinned(args.capability)
    rows = first_steps(args.table, args.steps)
    reports = rerun(rows[0]["params"], args.steps, args.table)
    if args.print:
        sys.stdout.write(json.dumps(reports) + "\n")
    else:
        write(rows, reports, args.write.resolve(), args.table.resolve())


if __name__ == "__main__":
    main()
