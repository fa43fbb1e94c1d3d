"""Trial-steps saved by the criteria scheduler, and whether the best healthy trial is kept.

    .venv/bin/python bench/stopping.py [SPEC] [--set key=value ...] [--storage DIR]

1. Runs the sweep with the criteria scheduler (as `archer-sweep run`).
2. Runs the very same configurations (same order, same seeds) again with every bad
   rule removed, so each trial runs to the end.
3. Prints the trial-steps of both, the saving, and the best healthy trial of each: in
   the full run a trial is healthy when replaying the *whole* rule set over its full
   history (`criteria.evaluate`) says so, i.e. when the criteria would not have lost it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a fresh clone

from archer_sweep.criteria import evaluate
from archer_sweep.engine import runner
from archer_sweep.engine import sweep as cmd_run
from archer_sweep.engine.live import best_healthy
from archer_sweep.engine.verdicts import VerdictStore
from archer_sweep.results.sweepdir import read_results, trial_dirs


def histories(sweep_dir: Path) -> dict[str, list[dict]]:
    return {str(r[-1]["trial_id"]): r for r in map(read_results, trial_dirs(sweep_dir)) if r}


def trial_steps(hist: dict[str, list[dict]]) -> int:
    return sum(len(h) for h in hist.values())


def sweep(spec, live: bool) -> tuple[Path, float]:
    start = time.time()
    code = cmd_run.run(spec, live=live)
    if code != 0:
        raise SystemExit(f"sweep {spec.name} exited {code}")
    return runner.sweep_dir_of(spec), time.time() - start


def to_the_end(spec, rows: list[dict]):
    """The same configurations in the same order, every bad rule removed."""
    search = spec.search.model_copy(
        update={
            "points_to_evaluate": [r["params"] for r in rows],
            "num_samples": len(rows),
            "max_concurrent": spec.search.max_concurrent,
        }
    )
    return spec.model_copy(
        update={
            "name": f"{spec.name}-full",
            "search": search,
            "criteria": [c for c in spec.criteria if c.verdict == "good"],
        }
    )


def _key(params: dict) -> str:
    return json.dumps(params, sort_keys=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", nargs="?", default="sweeps/entropy.yaml")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--storage", default=None, help="results root (default: a temp dir)")
    ap.add_argument("--live", action="store_true", help="show the live trial lines")
    ap.add_argument(
        "--reuse",
        default=None,
        help="a finished `archer-sweep run` dir to use as the criteria run "
        "(its spec.yaml is the spec; only the to-the-end run is made)",
    )
    args = ap.parse_args()
    root = Path(args.storage or tempfile.mkdtemp(prefix="archer-bench-"))
    spec_path = Path(args.reuse) / "spec.yaml" if args.reuse else Path(args.spec)
    spec = cmd_run.load(spec_path, args.sets)
    spec = spec.model_copy(
        update={
            "storage": spec.storage.model_copy(update={"path": str(root)}),
            "tracking": spec.tracking.model_copy(
                update={"wandb": spec.tracking.wandb.model_copy(update={"mode": "disabled"})}
            ),
        }
    )
    if args.reuse:
        crit_dir, crit_s = Path(args.reuse).resolve(), math.nan
    else:
        crit_dir, crit_s = sweep(spec, args.live)
    rows = sorted(VerdictStore(crit_dir).rows(), key=lambda r: r["time"])
    full_dir, full_s = sweep(to_the_end(spec, rows), args.live)

    crit_hist, full_hist = histories(crit_dir), histories(full_dir)
    metric, mode, rules = spec.search.metric, spec.search.mode, spec.rules()
    full_rows = []
    for r in sorted(VerdictStore(full_dir).rows(), key=lambda r: r["time"]):
        v = evaluate(rules, full_hist[r["trial_id"]], objective=metric)
        full_rows.append({"trial_id": r["trial_id"], "params": r["params"], "verdict": v.verdict})

    def last(hist):
        return {t: float(h[-1].get(metric, math.nan)) for t, h in hist.items()}

    best_c = best_healthy(rows, last(crit_hist), mode)
    best_f = best_healthy(full_rows, last(full_hist), mode)
    steps_c, steps_f = trial_steps(crit_hist), trial_steps(full_hist)
    saved = 1 - steps_c / steps_f if steps_f else 0.0
    print(f"spec: {spec_path}  trials: {len(rows)}  results: {root}")
    print(f"{'trial':>10}  {'params':<44} {'criteria verdict':<36} {'steps':>5}  {'full':>5}")
    full_of = {_key(f["params"]): f for f in full_rows}
    n_stopped = ran = full = 0  # trials stopped by a rule; their steps run; to the end
    for r in rows:
        f = full_of[_key(r["params"])]
        if str(r["verdict"]).startswith("stopped:"):
            n_stopped += 1
            ran += len(crit_hist[r["trial_id"]])
            full += len(full_hist[f["trial_id"]])
        params = " ".join(f"{k.rsplit('.', 1)[-1]}={v:.4g}" for k, v in r["params"].items())
        print(
            f"{r['trial_id']:>10}  {params:<44} {r['verdict']:<36} "
            f"{len(crit_hist[r['trial_id']]):>5}  {len(full_hist[f['trial_id']]):>5}"
        )
    print(
        f"trial-steps with criteria: {steps_c}   every trial to the end: {steps_f}   "
        f"saved: {100 * saved:.1f}%"
    )
    if n_stopped:
        print(
            f"stopped trials: {n_stopped}, {ran} of their {full} trial-steps run "
            f"({100 * (1 - ran / full):.1f}% of their steps saved)"
        )
    crit_wall = "not timed (--reuse)" if math.isnan(crit_s) else f"{crit_s:.0f}s"
    print(f"wall time: criteria {crit_wall}, to the end {full_s:.0f}s")
    same = (best_c is None and best_f is None) or (
        best_c is not None and best_f is not None and best_c["params"] == best_f["params"]
    )
    print(f"best healthy with criteria: {best_c and best_c['params']}")
    print(f"best healthy run to the end: {best_f and best_f['params']}")
    print(f"same best healthy trial: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
