"""`archer-sweep` command line (typer). Exit 0 ok, 1 run failed, 2 bad input.

Each verb is a thin wrapper: the work lives in `archer_sweep.cmd_<verb>` modules,
imported lazily so that `--help` and `validate` never start Ray or torch.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from archer_sweep.errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Automated GRPO hyperparameter rounds: a Ray Tune trainable runs the GRPO step, "
    "an Optuna searcher proposes entropy_coeff / kl_loss_coef, and a criteria scheduler "
    "stops trials that break the monitoring rules. Exit codes: 0 ok, 1 run failed, 2 bad input.",
)

SET_HELP = (
    "Override a spec value by dotted key, e.g. --set search.num_samples=4 "
    "--set trainable.config.trainer.total_steps=16 (repeatable; values parsed as YAML)."
)


def _call(module: str, **kwargs) -> None:
    """Run `archer_sweep.<module>.main(**kwargs)`; user errors exit 2 with one line."""
    try:
        code = importlib.import_module(f"archer_sweep.cli.{module}").main(**kwargs)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code or 0)


@app.command()
def validate(
    spec: list[Path] = typer.Argument(..., help="Sweep spec YAML file(s)."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Parse and check sweep spec(s); print `SPEC:LINE: what is wrong` and exit 2 on error."""
    _call("validate", specs=spec, overrides=set_)


@app.command()
def run(
    spec: Path = typer.Argument(..., help="Sweep spec YAML file."),
    name: Optional[str] = typer.Option(None, "--name", help="Sweep name (default: the spec's `name`)."),
    storage: Optional[Path] = typer.Option(
        None, "--storage", help="Results root (default: the spec's storage.path)."
    ),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Run a sweep with a live table of trials (status, step, key metrics, verdict)."""
    _call("run", spec=spec, name=name, storage=storage, overrides=set_)


@app.command()
def resume(
    directory: Path = typer.Argument(..., help="Results directory of the sweep, e.g. results/entropy."),
) -> None:
    """Continue an interrupted sweep; finished trials and verdicts are kept."""
    _call("run", resume_dir=directory)


@app.command()
def analyze(
    directory: Path = typer.Argument(..., help="Results directory of a sweep."),
    json_: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Per-trial table: params, status, verdict, stop reason, result (objective) and its step, last/best metrics."""
    _call("analyze", directory=directory, as_json=json_)


@app.command()
def report(
    directory: Path = typer.Argument(..., help="Results directory of a sweep."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Output folder (default: DIR/report)."),
) -> None:
    """Write report.md in the seed's style (metric x step tables, diagnosis, next change) + PNG plots."""
    _call("report", directory=directory, out=out)


@app.command("next")
def next_(
    directory: Path = typer.Argument(..., help="Results directory of a sweep."),
    history: list[Path] = typer.Option(
        [],
        "--history",
        help="Extra history (JSONL, verl JSONL log, W&B offline run dir, Ray results dir); repeatable.",
    ),
    out: Optional[Path] = typer.Option(
        None, "-o", "--out", help="Where to write the proposed spec (default: DIR/next.yaml)."
    ),
    count: int = typer.Option(2, "--count", min=1, help="Configurations to propose."),
    method: str = typer.Option(
        "feasible",
        "--method",
        help="feasible: expected improvement x P(healthy) learnt from every past verdict; "
        "tpe: Optuna's constrained TPE (the behaviour before the feasible-region model).",
    ),
    monotone: bool = typer.Option(
        True,
        "--monotone/--no-monotone",
        help="feasible: exclude points at least as runaway-prone as a past runaway (more "
        "entropy_coeff, less kl_loss_coef) or as collapse-prone as a past collapse.",
    ),
) -> None:
    """Propose the next version(s) with a rationale table, as a runnable spec."""
    _call(
        "next", directory=directory, history=history, out=out, count=count, method=method, monotone=monotone
    )


@app.command()
def hunt(
    spec: Path = typer.Argument(..., help="Sweep spec YAML file."),
    rounds: int = typer.Option(3, "--rounds", min=1, help="Most rounds to run."),
    until: str = typer.Option(
        "healthy", "--until", help="Stop condition: healthy (a healthy trial) or budget (run all rounds)."
    ),
    storage: Optional[Path] = typer.Option(
        None, "--storage", help="Results root (default: the spec's storage.path)."
    ),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Rounds of run -> report -> next -> run, until a trial is healthy or the rounds end."""
    _call("hunt", spec=spec, rounds=rounds, until=until, storage=storage, overrides=set_)


OUTCOME_REDUCE_HELP = (
    "best: a run's outcome is its best value of KEY, kept by a stop at or after that step "
    "(best checkpoints); last: its final value, kept only by running to the end."
)


@app.command()
def backtest(
    history: list[Path] = typer.Argument(..., help="History file(s) or results dirs."),
    spec: Path = typer.Option(..., "--spec", help="Spec whose criteria and objective to replay."),
    json_: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    outcome: Optional[str] = typer.Option(
        None,
        "--outcome",
        help="Also score each policy by this key per run (higher is better, e.g. "
        "val-core/archer-sweep/arithmetic/reward/mean@1): outcome-regret and outcome-false-stops.",
    ),
    within: float = typer.Option(
        0.0, "--within", help="With --outcome: runs within this of the best outcome count as top runs."
    ),
    outcome_reduce: str = typer.Option(
        "best",
        "--outcome-reduce",
        help=OUTCOME_REDUCE_HELP,
    ),
) -> None:
    """Replay recorded runs under the spec's criteria, ASHA, median and no stopping."""
    _call(
        "backtest",
        history=history,
        spec=spec,
        as_json=json_,
        outcome=outcome,
        within=within,
        outcome_reduce=outcome_reduce,
    )


@app.command()
def calibrate(
    history: list[Path] = typer.Argument(..., help="History file(s) or results dirs of past runs."),
    spec: Path = typer.Option(..., "--spec", help="Spec whose rules to fit."),
    outcome: str = typer.Option(
        ...,
        "--outcome",
        help="Outcome key (higher is better), e.g. val-core/archer-sweep/arithmetic/reward/mean@1.",
    ),
    within: float = typer.Option(
        0.0, "--within", help="Runs within this of the best outcome are the top runs to keep."
    ),
    out: Optional[Path] = typer.Option(
        None, "-o", "--out", help="Write the fitted spec here (default: print it)."
    ),
    form: str = typer.Option(
        "auto",
        "--form",
        help="fixed: fit value/between; relative: fit them × the run's start (relative_to: start, "
        "carries over to a model on another scale); auto: relative where every run starts the "
        "metric above 0 and within 2x of each other (a scale the model sets), else fixed.",
    ),
    margin: float = typer.Option(
        0.1, "--margin", help="Move each fitted threshold this share further from the top runs."
    ),
    outcome_reduce: str = typer.Option(
        "best",
        "--outcome-reduce",
        help=OUTCOME_REDUCE_HELP,
    ),
) -> None:
    """Fit the spec's thresholds to past runs with an outcome: per rule, runs stopped, top runs
    lost, steps saved; then thresholds that lose no top run, written as a spec."""
    _call(
        "calibrate",
        history=history,
        spec=spec,
        outcome=outcome,
        within=within,
        out=out,
        form=form,
        margin=margin,
        outcome_reduce=outcome_reduce,
    )


@app.command()
def probe(
    spec: Path = typer.Argument(..., help="Sweep spec YAML file (backend: command)."),
    tiny: bool = typer.Option(
        False,
        "--tiny",
        help="Train the CPU-verl kit's tiny Qwen3 on its rows instead of the spec's model and data.",
    ),
    steps: int = typer.Option(
        2, "--steps", min=1, help="Steps to run before the trainer's session is ended."
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Directory of the probe's trainer log and output."
    ),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Run the spec's trainer for a couple of steps; report overrides accepted, watched metrics
    seen (or rules that can never judge), time to first step, step time, the session kill and
    leftovers. Exit 2 with one line per problem."""
    _call("probe", spec=spec, tiny=tiny, steps=steps, overrides=set_, out=out)


QUIET_LOGGERS = ("tensorboardX.summary",)
"""INFO chatter kept off the console: Ray's TensorBoard logger renames verl's `…/mean@1` val
keys with one INFO line per report ("Summary name … is illegal")."""


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def main() -> None:
    # Idle OpenMP threads sleep instead of spinning (read when torch loads, so before it is
    # imported; Ray's workers inherit it): with more torch threads than free cores (the warm
    # start on a shared machine) spinning made 2 threads 4.5x slower than 1; asleep, no loss.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    configure_logging()
    # Bad input must never show a traceback; anything else is a bug and keeps it.
    app(prog_name="archer-sweep")


if __name__ == "__main__":
    main()
    sys.exit(0)
