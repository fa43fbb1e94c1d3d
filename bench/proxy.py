"""Does a smaller tiny model rank the configs like the target? (#24 item 7: JF-HPO's proxy lever)

    python bench/proxy.py [--proxy bench/data/tiny-world-proxy.jsonl.gz] [--out bench/out/proxy] [--measure 10]

The proxy table (bench/make_table.py --model …: the same 32-config grid at smaller sizes, fewer
seeds) and the target table (the v2 table) are both read as `bench/world.World`s judged by the
same rules (sweeps/replay.yaml), so a run's verdict is the product's verdict of its full run and
its outcome is the benchmark's outcome (best validation score at steps ≥ 10). Per grid config:
- Spearman rank correlation of the mean outcome over seeds (and of the mean final validation
  score), over every config and over the target-healthy ones (healthy in ≥ half its seeds),
  beside the rho that shuffled configs reach 5 % of the time: the runaways alone make the first
  high, the second asks whether the proxy orders good configs;
- verdict agreement: the chance that one proxy run and one target run of the same config get the
  same verdict (every proxy seed × target seed pair), beside the target's own floor, the chance
  that two of its seeds agree (every pair of distinct target seeds); exact verdicts and
  healthy-or-not; where each world's runaway cliff sits; runs by verdict on each side;
- top-k overlap: how many of the proxy's k best configs (mean outcome) are the target's k best,
  and how often the proxy's k best are healthy on the target (what a second stage starts from);
- cost: seconds per trial-step of each table (its runs' median GRPO step + validation time, and
  its provenance's wall time × jobs / trial-steps; the two tables may come from other CPUs) and,
  with `--measure`, both models timed side by side here.
Columns: the proxy against the target's 5 seeds; the same with the score rules' thresholds scaled
to the proxy's weaker warm start; the proxy and the target's own seeds 0–1 against its seeds 2–4
(the ceiling: how well two seeds of the target itself rank like the others).
Prints the Markdown tables (written to `--out`/proxy.md too) and a scatter PNG.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from drift_reference import provenance_path
from rank_agreement import (
    both_healthy_or_not,
    chance_rho,
    cross_agreement,
    self_agreement,
    spearman,
    top_k,
    top_k_overlap,
)
from world import EC, KL, RUNAWAY, SEED, TABLE, Key, World, full_run_verdicts, load_world

from archer_sweep.tables import md_table
from trainable.metrics import SCORE_MEAN, TIME_STEP, TIME_VAL
from trainable.metrics import TINY_VAL_SCORE as VAL

log = logging.getLogger("proxy")
ROOT = Path(__file__).resolve().parents[1]
PROXY = ROOT / "bench" / "data" / "tiny-world-proxy.jsonl.gz"
Config = tuple[float, float]
CEILING_SEEDS, HELD_SEEDS = (0, 1), (2, 3, 4)
"""The ceiling column: the target at the proxy's seed count against its other seeds, the best a
proxy could rank like the target when only seed noise separates them."""


def _seeds(world: World) -> str:
    s = world.seeds
    return f"{s[0]}–{s[-1]}" if s == list(range(s[0], s[-1] + 1)) and len(s) > 1 else ",".join(map(str, s))


def final_val(world: World, key: Key) -> float:
    """The run's last validation score (what a run to its end ships without a best checkpoint)."""
    return [float(r[VAL]) for r in world.runs[key].steps if VAL in r][-1]


def per_config(world: World, configs: Sequence[Config], of: Callable[[Key], float]) -> dict[Config, float]:
    """Mean over the world's seeds of `of(run key)`, per config."""
    return {c: statistics.fmean(of((*c, s)) for s in world.seeds) for c in configs}


def verdicts(world: World, configs: Sequence[Config]) -> dict[Config, list[str]]:
    return {c: [world.truth[(*c, s)] for s in world.seeds] for c in configs}


def seconds_per_trial_step(world: World, table: Path) -> dict[str, float]:
    """From the runs' own timings (GRPO step + validation; the median run) and from the
    provenance's wall time × jobs (what the recording paid, start-up included)."""
    per_run = [
        sum(float(r[TIME_STEP]) + float(r.get(TIME_VAL, 0.0)) for r in run.steps) / run.last_step
        for run in world.runs.values()
    ]
    prov = json.loads(provenance_path(table).read_text())
    jobs = int(prov["command"].split("--jobs")[1].split()[0]) if "--jobs" in prov["command"] else 2
    steps = prov["runs"] * prov["config"]["trainer"]["total_steps"]  # the whole recording's
    return {
        "steps": statistics.median(per_run),
        "wall": prov["wall_s"] * jobs / steps if prov.get("wall_s") else math.nan,
        "machine": prov.get("machine", "?"),
        "kernels": prov.get("cpu_capability", "?"),
    }


def measure(tables: dict[str, Path], steps: int, rounds: int = 2) -> dict[str, dict[str, float]]:
    """Seconds per trial-step of each table's world here, side by side in this process (the
    same CPU, kernels and load): v1's config (entropy_coeff 0.01, kl_loss_coef 0.01, seed 0)
    re-run for `steps` steps, the tables taking turns `rounds` times. Per trial-step = the median
    GRPO step + the median validation × the validations per step of a recorded run (7 in 60)."""
    from drift_reference import cpu_capability, rerun

    params = {EC: 0.01, KL: 0.01, SEED: 0}
    steps_s: dict[str, list[float]] = {n: [] for n in tables}
    val_s: dict[str, list[float]] = {n: [] for n in tables}
    for _ in range(rounds):
        for name, table in tables.items():
            for report in rerun(params, steps, table):
                steps_s[name].append(float(report[TIME_STEP]))
                if TIME_VAL in report:
                    val_s[name].append(float(report[TIME_VAL]))
    share = 7 / 60
    return {
        n: {
            "steps": statistics.median(steps_s[n]) + share * statistics.median(val_s[n]),
            "kernels": cpu_capability(),
        }
        for n in tables
    }


def cliff(world: World, configs: Sequence[Config], runaway: str = RUNAWAY) -> dict[float, float | None]:
    """Per kl_loss_coef, the lowest entropy_coeff whose runs run away in ≥ half their seeds
    (None: none does): where the world's runaway cliff sits."""
    out: dict[float, float | None] = {}
    for kl in sorted({c[1] for c in configs}):
        away = [c[0] for c in configs if c[1] == kl and _share(world, c, runaway) >= 0.5]
        out[kl] = min(away, default=None)
    return out


def _share(world: World, config: Config, verdict: str) -> float:
    return statistics.fmean(world.truth[(*config, s)] == verdict for s in world.seeds)


def warm_start_val(world: World) -> float:
    """The validation score at step 1: the warm start's, the same for every run of a world."""
    return statistics.median(float(run.steps[0][VAL]) for run in world.runs.values() if VAL in run.steps[0])


def rescaled(world: World, factor: float) -> World:
    """The world judged by its rules with the training score's thresholds × `factor`: the
    rules were written for the target's warm start, a weaker proxy starts lower on the score."""
    rules = [
        dataclasses.replace(r, value=r.value * factor)
        if r.metric == SCORE_MEAN and r.value is not None
        else r
        for r in world.rules
    ]
    return dataclasses.replace(world, truth=full_run_verdicts(world, rules))


def grid_configs(proxy: World, target: World) -> list[Config]:
    """The configs both tables recorded (the target's off-grid ones are not in a proxy table)."""
    return sorted(set(proxy.configs) & set(target.configs))


def compare(proxy: World, target: World, configs: Sequence[Config] | None = None) -> dict:
    """Every figure of the table, by name (pure: two judged worlds in, numbers out), over
    `configs` (default: those both recorded)."""
    configs = list(configs or grid_configs(proxy, target))
    healthy = [c for c in configs if target.healthy_share(c) >= 0.5]
    outcome = {
        n: per_config(w, configs, lambda k, w=w: w.outcome[k]) for n, w in (("p", proxy), ("t", target))
    }
    final = {
        n: per_config(w, configs, lambda k, w=w: final_val(w, k)) for n, w in (("p", proxy), ("t", target))
    }

    def rho(values: dict, among: list[Config]) -> float:
        return spearman([values["p"][c] for c in among], [values["t"][c] for c in among])

    pv, tv = verdicts(proxy, configs), verdicts(target, configs)
    return {
        "configs": configs,
        "healthy": healthy,
        "outcome": outcome,
        "rho_outcome": (rho(outcome, configs), rho(outcome, healthy)),
        "rho_final": (rho(final, configs), rho(final, healthy)),
        "verdicts": (pv, tv),
        "agree": (cross_agreement(pv, tv), self_agreement(tv), self_agreement(pv)),
        "agree_healthy": (
            cross_agreement(pv, tv, both_healthy_or_not),
            self_agreement(tv, both_healthy_or_not),
            self_agreement(pv, both_healthy_or_not),
        ),
        "top": {k: (top_k_overlap(outcome["p"], outcome["t"], k), k) for k in (3, 5)},
        # what a two-stage hunt's second stage would start from: the proxy's best by outcome
        "top_healthy": {
            k: statistics.fmean(target.healthy_share(c) for c in top_k(outcome["p"], k)) for k in (3, 5)
        },
        "all_healthy": statistics.fmean(target.healthy_share(c) for c in configs),
        "proxy_healthy": [c for c in configs if proxy.healthy_share(c) >= 0.5],
        "cliff": (cliff(proxy, configs), cliff(target, configs)),
    }


def rows(columns: Sequence[dict]) -> list[list]:
    """One figure a row, one comparison (`compare`'s result) a column."""

    def row(name: str, cell: Callable[[dict], object]) -> list:
        return [name, *(cell(r) for r in columns)]

    return [
        row(
            "configs (target-healthy: healthy in ≥ half its seeds)",
            lambda r: f"{len(r['configs'])} ({len(r['healthy'])})",
        ),
        row("Spearman, mean outcome, all configs", lambda r: f"{r['rho_outcome'][0]:.2f}"),
        row("Spearman, mean outcome, target-healthy configs", lambda r: f"{r['rho_outcome'][1]:.2f}"),
        row(
            "… chance level (95th percentile of shuffled configs), all / healthy",
            lambda r: f"{chance_rho(len(r['configs'])):.2f} / {chance_rho(len(r['healthy'])):.2f}",
        ),
        row("Spearman, mean final val, all configs", lambda r: f"{r['rho_final'][0]:.2f}"),
        row("Spearman, mean final val, target-healthy configs", lambda r: f"{r['rho_final'][1]:.2f}"),
        row("verdict agreement, one run vs one run", lambda r: f"{r['agree'][0]:.2f}"),
        row("… the target's own floor (seed vs seed)", lambda r: f"{r['agree'][1]:.2f}"),
        row("… the proxy side's seed vs seed", lambda r: f"{r['agree'][2]:.2f}"),
        row("healthy-or-not agreement, one run vs one run", lambda r: f"{r['agree_healthy'][0]:.2f}"),
        row("… the target's own floor (seed vs seed)", lambda r: f"{r['agree_healthy'][1]:.2f}"),
        row("configs healthy in ≥ half their seeds, proxy side", lambda r: len(r["proxy_healthy"])),
        row(
            "runaway cliff: lowest entropy_coeff running away, kl_loss_coef 0.001 0.01 0.03 0.1 (proxy | target)",
            lambda r: (
                " ".join(f"{_g(r['cliff'][0][kl])}" for kl in r["cliff"][0])
                + " | "
                + " ".join(f"{_g(r['cliff'][1][kl])}" for kl in r["cliff"][1])
            ),
        ),
        *(row(f"top-{k} overlap (mean outcome)", lambda r, k=k: f"{r['top'][k][0]} / {k}") for k in (3, 5)),
        *(
            row(
                f"target's healthy share of the proxy side's top-{k} (all configs' share)",
                lambda r, k=k: f"{r['top_healthy'][k]:.2f} ({r['all_healthy']:.2f})",
            )
            for k in (3, 5)
        ),
    ]


def _g(x: float | None) -> str:
    return "—" if x is None else f"{x:g}"


def verdict_rows(r: dict) -> list[list]:
    """Share of each side's runs by verdict: where the proxy's world differs (a cliff moved)."""
    pv, tv = r["verdicts"]
    flat = {side: [v for vs in d.values() for v in vs] for side, d in (("p", pv), ("t", tv))}
    names = sorted(set(flat["p"]) | set(flat["t"]), key=lambda v: (v != "healthy", v))
    return [[v, *(f"{100 * flat[s].count(v) / len(flat[s]):.0f}%" for s in ("p", "t"))] for v in names]


def cost_rows(cost: dict) -> list[list]:
    """Each table's cost as recorded (on its own machine and kernels), and as measured here."""
    from make_table import cpu_model

    p, t = cost["p"], cost["t"]
    measured = [
        ("recorded runs' own timings (GRPO step + validation), median run", "steps"),
        ("recording wall time × jobs / trial-steps", "wall"),
    ]
    if "here" in p:
        measured.append((f"measured here, side by side ({cpu_model()}, {p['here_kernels']})", "here"))
    return [[what, f"{p[key]:.3f}", f"{t[key]:.3f}", f"{p[key] / t[key]:.2f}"] for what, key in measured] + [
        [
            "recorded on, torch kernels",
            f"{p['machine']}, {p['kernels']}",
            f"{t['machine']}, {t['kernels']}",
            "",
        ]
    ]


def plot(r: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pv, tv = r["verdicts"]
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    for c in r["configs"]:
        healthy = c in r["healthy"]
        ax.scatter(
            r["outcome"]["p"][c],
            r["outcome"]["t"][c],
            c="tab:green" if healthy else "tab:red",
            s=28,
            alpha=0.8,
        )
        ax.annotate(f"{c[0]:g}/{c[1]:g}", (r["outcome"]["p"][c], r["outcome"]["t"][c]), fontsize=6, alpha=0.7)
    ax.set_xlabel("proxy: mean outcome over its seeds (best val, steps ≥ 10)")
    ax.set_ylabel("target: mean outcome over its seeds")
    rho_all, rho_h = r["rho_outcome"]
    ax.set_title(
        "Per config (entropy_coeff/kl_loss_coef); green: target-healthy\n"
        f"Spearman {rho_all:.2f} all, {rho_h:.2f} healthy"
    )
    fig.tight_layout()
    path = out / "proxy_vs_target.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--proxy", type=Path, default=PROXY, help="the proxy table (bench/make_table.py --model …)"
    )
    ap.add_argument("--target", type=Path, default=TABLE, help="the target table (default: the v2 table)")
    ap.add_argument("--out", type=Path, default=Path("bench/out/proxy"))
    ap.add_argument(
        "--measure", type=int, default=0, metavar="STEPS", help="also time both models here, STEPS steps each"
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    proxy, target = load_world(table=args.proxy), load_world(table=args.target)
    log.info(
        "proxy %s: %d runs, seeds %s; target %s: %d runs",
        args.proxy.name,
        len(proxy.runs),
        proxy.seeds,
        args.target.name,
        len(target.runs),
    )
    configs = grid_configs(proxy, target)
    split = {g: load_world(table=args.target, seeds=g) for g in (CEILING_SEEDS, HELD_SEEDS)}
    factor = warm_start_val(proxy) / warm_start_val(target)
    columns = {
        f"proxy vs target (seeds {_seeds(target)})": compare(proxy, target, configs),
        f"proxy, score rules × {factor:.2f}, vs target (seeds {_seeds(target)})": compare(
            rescaled(proxy, factor), target, configs
        ),
        f"proxy vs target (seeds {_seeds(split[HELD_SEEDS])})": compare(proxy, split[HELD_SEEDS], configs),
        f"target seeds {_seeds(split[CEILING_SEEDS])} vs {_seeds(split[HELD_SEEDS])} (ceiling)": compare(
            split[CEILING_SEEDS], split[HELD_SEEDS], configs
        ),
    }
    cost = {"p": seconds_per_trial_step(proxy, args.proxy), "t": seconds_per_trial_step(target, args.target)}
    if args.measure:
        here = measure({"p": args.proxy, "t": args.target}, args.measure)
        for side in cost:
            cost[side] |= {"here": here[side]["steps"], "here_kernels": here[side]["kernels"]}
    prov = json.loads(provenance_path(args.proxy).read_text())
    main_column = next(iter(columns.values()))
    text = "\n".join(
        [
            f"# Proxy slice: {args.proxy.name} (model {prov.get('model', {})}, seeds {_seeds(proxy)}) "
            f"vs {args.target.name}\n",
            "Outcome: a run's best validation score at steps ≥ 10 (bench/world.py); per config the mean "
            "over its seeds. Verdicts: the rules of sweeps/replay.yaml on the full run; the second "
            f"column judges the proxy with the training score's thresholds (score_low, score_good) × "
            f"{factor:.2f}, the ratio of the warm starts' validation scores ({warm_start_val(proxy):.3f} "
            f"proxy, {warm_start_val(target):.3f} target), known before any trial runs.\n",
            md_table(["figure", *columns], rows(list(columns.values()))),
            "\n## Runs by verdict (grid configs, every seed)\n",
            md_table(
                ["verdict", f"proxy (seeds {_seeds(proxy)})", f"target (seeds {_seeds(target)})"],
                verdict_rows(main_column),
            ),
            "\n## Cost per trial-step (seconds)\n",
            md_table(["measured by", "proxy", "target", "proxy / target"], cost_rows(cost)),
            f"\nPlot: {plot(main_column, args.out)}\n",
        ]
    )
    (args.out / "proxy.md").write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
