"""Build the default tiny warm start from scratch and ship it in `trainable/assets/`.

    .venv/bin/python bench/ship_warmstart.py [--check]

Run it whenever the warm start's cache key changes (model sizes, SFT settings, tokenizer,
task or recipe version): tests/test_warmstart.py fails until the shipped file matches the
current key. The build ignores any shipped file and cache (`ARCHER_SWEEP_WARMSTART=build`,
a temporary `ARCHER_SWEEP_CACHE`) and uses every core, exactly as a first run would. Beside
the weights it writes `<name>.json`: key, sha256, settings, torch version, CPU, threads.
`--check` builds again and reports whether the result equals the shipped file bit for bit
(it does on the machine that built it; another CPU may round differently).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

log = logging.getLogger("ship_warmstart")


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="rebuild and compare with the shipped file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    os.environ["ARCHER_SWEEP_WARMSTART"] = "build"
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI: spinning threads crawl under load
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ARCHER_SWEEP_CACHE"] = tmp
        import torch

        from trainable import warmstart
        from trainable.config import TinyModelConfig

        cfg, sft = TinyModelConfig(), warmstart.SFTSettings()
        key = warmstart.cache_key(cfg, sft)
        t0 = time.perf_counter()
        warmstart.load_or_build(cfg, sft)
        built = Path(tmp) / warmstart.file_name(key)
        target = warmstart.shipped_path(key)
        log.info("built in %.0f s: %s (sha256 %s)", time.perf_counter() - t0, built.name, sha256(built)[:16])
        if args.check:
            same = target.exists() and sha256(target) == sha256(built)
            log.info("the shipped %s is %s", target.name, "identical" if same else "DIFFERENT (or missing)")
            return 0 if same else 1
        for old in warmstart.ASSETS.glob("tiny-warmstart-*"):
            old.unlink()  # one shipped warm start: the current key's
        warmstart.ASSETS.mkdir(exist_ok=True)
        shutil.copyfile(built, target)
        meta = {
            "key": key,
            "sha256": sha256(target),
            "model": warmstart.model_sizes(cfg),
            "sft": asdict(sft),
            "task_version": warmstart.TASK_VERSION,
            "recipe_version": warmstart.RECIPE_VERSION,
            "torch": torch.__version__,
            "cpu": cpu_name(),
            "threads": len(os.sched_getaffinity(0)),
        }
        target.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
        log.info("shipped %s (+ .json)", target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
