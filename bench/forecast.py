"""Trial-steps the criteria save on the recorded tiny world: today's plain thresholds, plus
stop-when-decided, plus forecasting bad rules; and the false stops each makes.

    .venv/bin/python bench/forecast.py [--spec sweeps/replay.yaml] [--rule entropy_high]

Every row replays all 96 recorded runs (`bench/data/tiny-world.jsonl.gz`, 60 steps each)
through `planning.backtest.replay_criteria`, the live scheduler's code path. Ground truth
is the verdict of the full recorded run with forecasts off (`backtest`'s "health"):
- false stop: a run that truth calls healthy but the policy ended early;
- forecast stops: runs a forecast (not a plain threshold) stopped; "never crossed": of
  those, runs whose recorded metric never meets the rule's condition in all 60 steps (a
  wrong forecast, even where the run is bad for another reason);
- saved beyond plain: trial-steps saved relative to the stop-when-decided row.
The grid row marked `*` is the pick for sweeps/replay.yaml (`pick`: zero false stops and
no wrong forecast, with a margin of twice the horizon).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a fresh clone

from archer_sweep.criteria import Forecast, without_forecasts
from archer_sweep.planning.backtest import judge, replay_criteria, settings_from_spec
from archer_sweep.results.replay import load_table
from archer_sweep.spec.load import load_spec
from archer_sweep.tables import md_table

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "bench" / "data" / "tiny-world.jsonl.gz"
log = logging.getLogger("bench.forecast")

WINDOWS = (5, 8, 12)
HORIZONS = (3, 5, 10, 20)
CONFIDENCES = (0.8, 0.9, 0.95, 0.99)


def measure(runs, rules, st, truth, plain_used=None) -> dict:
    outs = replay_criteria(runs, rules, st)
    by_id = {r.run_id: r for r in runs}
    used = sum(o.steps_used for o in outs)
    total = sum(r.last_step for r in runs)
    false = [o.run_id for o in outs if o.stop_step is not None and truth[o.run_id] == "healthy"]
    forecast = never = 0
    for o in outs:
        v = judge(by_id[o.run_id], rules, st)
        if v is not None and (v.reason or "").startswith("forecast"):
            forecast += 1
            never += not crosses(by_id[o.run_id], next(r for r in rules if r.name == v.rule))
    return {
        "used": used,
        "saved": total - used,
        "saved %": f"{100 * (total - used) / total:.1f}%",
        "beyond plain": (plain_used - used) if plain_used is not None else 0,
        "false stops": len(false),
        "forecast stops": forecast,
        "never crossed": never,
    }


def crosses(run, rule) -> bool:
    """Does the recorded run (never stopped) ever meet the bad rule's condition after its
    after_step? A forecast stop on a run that never does was a wrong forecast."""
    xs, ys = run.series(rule.metric)
    return any(rule.holds(y) for x, y in zip(xs, ys) if x > rule.after_step and y == y)


def with_forecast(rules, name: str, f: Forecast | None):
    return [dataclasses.replace(r, forecast=f) if r.name == name else r for r in rules]


def pick(grid: list[tuple[tuple[int, int, float], dict]]) -> tuple | None:
    """The most saving setting that makes no false stop and no wrong forecast, and none at
    twice its horizon either (a margin: the table is one draw of the world); ties go to the
    higher confidence, then the shorter horizon."""
    by = dict(grid)

    def clean(key) -> bool:
        m = by.get(key)
        return m is not None and m["false stops"] == 0 and m["never crossed"] == 0

    safe = [(k, m) for k, m in grid if clean(k) and clean((k[0], 2 * k[1], k[2]))]
    return max(safe, key=lambda g: (g[1]["saved"], g[0][2], -g[0][1]), default=None)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(ROOT / "sweeps" / "replay.yaml"))
    ap.add_argument("--rule", default="entropy_high", help="bad rule that forecasts in the grid")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    spec = load_spec(args.spec)
    runs = load_table((str(TABLE),)).runs
    st = settings_from_spec(spec)
    plain = without_forecasts(spec.rules())
    truth = {r.run_id: judge(r, plain, st).verdict for r in runs}
    today = measure(runs, plain, dataclasses.replace(st, stop_when_decided=False), truth)
    decided = measure(runs, plain, dataclasses.replace(st, stop_when_decided=True), truth)
    decided["beyond plain"] = 0
    rows = [["today: thresholds only", *today.values()], ["+ stop when decided", *decided.values()]]
    grid = []
    for w, h, c in itertools.product(WINDOWS, HORIZONS, CONFIDENCES):
        f = Forecast(window=w, horizon=h, confidence=c)
        m = measure(runs, with_forecast(plain, args.rule, f), st, truth, decided["used"])
        grid.append(((w, h, c), m))
    best = pick(grid)
    for (w, h, c), m in grid:
        mark = " *" if best is not None and (w, h, c) == best[0] else ""
        rows.append([f"+ forecast {args.rule} w={w} h={h} c={c}{mark}", *m.values()])
    in_spec = next((r.forecast for r in spec.rules() if r.name == args.rule and r.forecast), None)
    if in_spec is not None:
        m = measure(runs, spec.rules(), st, truth, decided["used"])
        rows.append([f"spec as written ({args.rule}: {in_spec})", *m.values()])
    heads = ["policy", "trial-steps used", "saved", "saved %", "saved beyond plain", "false stops"]
    log.info(md_table([*heads, "forecast stops", "never crossed"], rows))
    log.info(
        "\n%d runs, %d healthy by the full-run verdict",
        len(runs),
        sum(v == "healthy" for v in truth.values()),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
