"""The field's multi-fidelity peers that are not Optuna (SMAC, syne-tune) on the recorded world,
scored as bench/decisions.py scores its search methods (#24 item 4).

    bash bench/peers/setup.sh                        # .venv-peers: the project + smac + syne-tune
    .venv-peers/bin/python bench/peers/run.py        # ≈ minutes, one process; Markdown tables
    .venv-peers/bin/python bench/peers/run.py --quick

Each peer plays the world as decide_search's methods do: v1 first, trial k (the k-th new config)
on recorded seed `seeds[k]` of the config it snaps to, trials one after another, the same
budget and cap in trial-steps (bench/decide_search.run_method; a promotion resumes its run and
costs only the steps it adds, bench/peers/resume.py). Each peer runs plain (its own stopping
only) and `+ rules stop` (a trial also ends where archer-sweep's rules end it, told to the tool
as failed), which separates what the rules add from what the search adds. Reference rows from
decide_search (hunt, TPE + MedianPruner, random) run beside them with the same seeds. Every
cell: the report seeds 3–4, the tuned-on seeds 0–2 in brackets.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import time
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from decide_search import METHODS, run_method
from decisions import anytime_table, merge_groups, search_headers, search_table
from registry import MISSING, PEERS, RULES, SLOW
from world import REPORT_SEEDS, TABLE, TUNE_SEEDS, load_world

from archer_sweep.tables import fmt, md_table

log = logging.getLogger("peers")
REFERENCES = ("hunt (archer-sweep)", "TPE + MedianPruner (Optuna)", "random")
PACKAGES = ("smac", "ConfigSpace", "syne-tune", "optuna", "scikit-learn", "xgboost", "statsmodels", "numpy")
# syne-tune's searchers warn about pandas' future default RNG on every process; not ours to fix.
warnings.filterwarnings("ignore", message="After 0.17 or January 2028", category=FutureWarning)


def versions() -> str:
    def v(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return ", ".join([f"Python {platform.python_version()}", *(f"{p} {v(p)}" for p in PACKAGES)])


def score_all(table: Path, names: list[str], n_seeds: int, budget: int, cap: int):
    """{group: world}, {group: {method: [SearchScore per bench seed]}}, one process."""
    methods = {**METHODS, **PEERS}
    worlds, scores = {}, {}
    for group, seeds in (("report", REPORT_SEEDS), ("tune", TUNE_SEEDS)):
        worlds[group] = world = load_world(table=table, seeds=seeds)
        scores[group] = {}
        for name in names:
            t0 = time.monotonic()
            scores[group][name] = [
                run_method(world, name, s, budget, cap, methods=methods, shortest_trial=1)
                for s in range(n_seeds)
            ]
            log.info("%s seeds, %s: %.1f s", group, name, time.monotonic() - t0)
    return worlds, scores


def report(worlds: dict, scores: dict, names: list[str], args, wall: float) -> str:
    rows = {g: search_table(worlds[g], scores[g], methods=names) for g in worlds}
    parts = [
        f"# Peers on the recorded tiny world ({args.table.name})\n",
        f"Versions: {versions()}.\n",
        "Every cell: report seeds 3–4 (tuned-on seeds 0–2 in brackets). `+ rules stop`: the trial also "
        "ends where archer-sweep's rules end it, told to the tool as failed.\n",
        f"\n## Search ({args.seeds} seeds per method and seed group; best healthy objective in the "
        f"report seeds {fmt(worlds['report'].best_healthy())})\n",
        md_table(search_headers(args.budget, args.cap), merge_groups(rows["report"], rows["tune"])),
        f"\n## Anytime outcome regret (trial-steps 1–{args.budget}; normalised: 0 = the group's best "
        "val, 1 = its worst or nothing healthy)\n",
        md_table(*anytime_table(worlds, scores, args.budget, methods=names)),
    ]
    if MISSING:
        parts.append(
            "\nLeft out (not importable here): " + "; ".join(f"{m}: {e}" for m, e in MISSING.items())
        )
    parts.append(f"\nWall time: {wall:.0f} s, one process.\n")
    return "\n".join(parts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=100, help="bench seeds per method and seed group")
    ap.add_argument("--budget", type=int, default=720, help="trial-steps budget for 'best healthy'")
    ap.add_argument("--cap", type=int, default=1800, help="trial-steps after which a search gives up")
    ap.add_argument("--table", type=Path, default=TABLE, help="recorded table (default: the v2 table)")
    ap.add_argument("--out", type=Path, default=Path("bench/out/peers"))
    ap.add_argument("--slow", action="store_true", help=f"also the slow peers ({', '.join(sorted(SLOW))})")
    ap.add_argument("--no-references", action="store_true", help="peers only, no decide_search rows")
    ap.add_argument("--quick", action="store_true", help="smoke run: 4 seeds")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds = 4
    # force: syne-tune configures the root logger on import, which would swallow the progress lines
    logging.basicConfig(level=logging.INFO, format="%(message)s", force=True)
    if not PEERS:
        log.error("no peer is importable (%s); run bench/peers/setup.sh and use .venv-peers", MISSING)
        return 2
    names = [*(() if args.no_references else REFERENCES)]
    names += [n for n in PEERS if args.slow or n.removesuffix(RULES) not in SLOW]
    t0 = time.monotonic()
    worlds, scores = score_all(args.table, names, args.seeds, args.budget, args.cap)
    text = report(worlds, scores, names, args, time.monotonic() - t0)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "peers.md").write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
