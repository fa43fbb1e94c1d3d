"""What `next`, `report` and `hunt` share: the past trials of a sweep (its study, its
results and extra history), the proposals made from them, the rationale table, and
the report's next-change rows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from archer_sweep.errors import UserError
from archer_sweep.planning.nextver import (
    Proposal,
    describe_near,
    from_runs,
    from_study,
    merge,
    propose,
    rationale,
    reference,
)
from archer_sweep.report.write import write_report
from archer_sweep.results.analysis import Sweep
from archer_sweep.results.history import load_histories
from archer_sweep.results.sweepdir import SPEC_FILE, STUDY_FILE
from archer_sweep.spec.space import to_optuna_space
from archer_sweep.tables import md_table, short_param


def past_trials(sweep: Sweep, history: Sequence[Path] = ()):
    """Stored study + results-dir runs + imported history, as past trials."""
    extra = load_histories(history) if history else []
    db = sweep.directory / STUDY_FILE
    if sweep.spec is not None and sweep.spec.storage.study:  # a shared database: this sweep's study
        import sqlalchemy.exc

        try:
            study = from_study(sweep.spec.storage.study, sweep.spec.name)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0]
            raise UserError(f"storage.study: cannot read the study {sweep.spec.name!r}: {first}") from None
    else:
        study = from_study(db) if db.exists() else []
    s = sweep.spec.search
    return merge(
        study,
        from_runs(sweep.runs, sweep.rules, s.metric, s.mode, s.objective_reduce),
        from_runs(extra, sweep.rules, s.metric, s.mode, s.objective_reduce),
    )


def make_proposals(
    sweep: Sweep,
    history: Sequence[Path] = (),
    count: int = 2,
    method: str = "feasible",
    monotone: bool = True,
):
    if sweep.spec is None:
        raise UserError(f"{sweep.directory}: no {SPEC_FILE}; `next` needs the sweep's spec")
    space = to_optuna_space(sweep.spec)
    if not space:
        raise UserError(
            f"{sweep.directory}: the sweep searches no parameter (every search.space "
            f"entry is fixed); nothing to propose"
        )
    past = past_trials(sweep, history)
    props = propose(
        past, space, sweep.mode, count, seed=sweep.spec.search.sampler.seed, method=method, monotone=monotone
    )
    return past, space, props


def spec_data(sweep: Sweep) -> dict:
    """The sweep's spec as YAML data without defaults: the resolved spec.yaml also lists
    defaults that the spec checks reject where they do not apply (e.g. `log` of loguniform)."""
    return sweep.spec.model_dump(mode="json", exclude_defaults=True)


def rationale_table(props: Sequence[Proposal], past, space, mode: str) -> str:
    ref = reference(past, mode)
    rows, near = [], []
    for i, p in enumerate(props, start=1):
        why = rationale(p, ref, space, brief=True)
        for k in space:
            rows.append(
                [f"#{i}", f"`{short_param(k)}`", ref.params.get(k) if ref else None, p.params[k], why[k]]
            )
        near.append([f"#{i}", describe_near(p)])
    current = f"{ref.run_id}, {ref.verdict}" if ref else "none"
    model = ""
    if any(p.p_healthy is not None for p in props):
        model = (
            "\n\nThe feasible-region model (EI × P(healthy)⁴, learnt from every past verdict):\n\n"
            + md_table(
                ["proposal", "P(healthy)", "expected objective", "evidence"],
                [
                    [
                        f"#{i}",
                        p.p_healthy,
                        "—" if p.expected is None else f"{p.expected:.3g} ± {p.expected_std:.2g}",
                        p.why,
                    ]
                    for i, p in enumerate(props, start=1)
                ],
            )
        )
    return (
        md_table(["proposal", "Parameter", f"current ({current})", "proposed", "rationale"], rows)
        + model
        + "\n\nNearest past runs (distance in normalised log-parameter space):\n\n"
        + md_table(["proposal", "nearest past runs and their verdicts"], near)
    )


def next_change(sweep: Sweep, history: Sequence[Path] = ()) -> tuple[list[list], list[dict], str]:
    """Rows of the next-change table (first proposal) and all proposals for the plot."""
    if sweep.spec is None or not to_optuna_space(sweep.spec):
        return [], [], ""
    past, space, props = make_proposals(sweep, history, count=2)
    ref = reference(past, sweep.mode)
    why = rationale(props[0], ref, space)
    rows = [
        [f"`{short_param(k)}`", ref.params.get(k) if ref else None, props[0].params[k], why[k]] for k in space
    ]
    note = (
        (f"Current = `{ref.run_id}` ({ref.verdict}). " if ref else "")
        + (f"Nearest past runs: {describe_near(props[0])}. ")
        + (
            f"Run `archer-sweep next {sweep.directory}` to write the runnable spec "
            f"({len(props)} proposals, e.g. the second: "
            + ", ".join(f"{short_param(k)}={v:.3g}" for k, v in props[-1].params.items())
            + ")."
        )
    )
    return rows, [p.params for p in props], note


def report_with_next(sweep: Sweep, out: Path, history: Sequence[Path] = ()) -> Path:
    """The sweep's report with its next change (`history`: e.g. a hunt's earlier rounds)."""
    return write_report(sweep, out, next_change(sweep, history), history)
