"""`archer-sweep calibrate HISTORY… --spec SPEC --outcome KEY [--within X] [--form F] [-o FILE]`:
fit the spec's thresholds to past runs with an outcome (archer_sweep.planning.calibrate) and
write the spec with the fitted rules, a comment per rule saying what it was fitted on."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import typer
import yaml

from archer_sweep.cli.backtest import outcome_spec
from archer_sweep.criteria import Rule
from archer_sweep.errors import UserError
from archer_sweep.planning import calibrate as cal
from archer_sweep.planning import outcome as oc
from archer_sweep.results.history import load_histories
from archer_sweep.spec.load import read_spec
from archer_sweep.tables import md_table

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Rule)}
_ORDER = ("name", "metric", "op", "value", "between", "relative_to", "drop", "drop_ratio")


def rule_yaml(rule: Rule) -> str:
    """The rule as one flow mapping, fields in the spec's order, defaults left out."""
    d: dict[str, Any] = {}
    for name in _ORDER + tuple(k for k in _DEFAULTS if k not in _ORDER):
        v = getattr(rule, name)
        if name in ("name", "metric", "verdict") or v != _DEFAULTS.get(name):
            d[name] = (
                dataclasses.asdict(v)
                if dataclasses.is_dataclass(v)
                else list(v)
                if isinstance(v, tuple)
                else v
            )
    return yaml.safe_dump(
        d, default_flow_style=True, sort_keys=False, width=10_000, allow_unicode=True
    ).strip()


def _names(ids: list[str]) -> str:
    return f"{len(ids)}" + (f" ({', '.join(ids[:4])}{', …' if len(ids) > 4 else ''})" if ids else "")


def comment(fit: cal.RuleFit, n_runs: int, top: list[str], o: oc.OutcomeSpec) -> str:
    base = f"# {fit.rule.name}: {fit.note}"
    if fit.given is None:
        return base
    e = fit.effect
    assert e is not None
    return (
        f"{base}. Fitted on {n_runs} runs, {len(top)} top ({o.reduce} {o.key} within {o.within:g} of the best): "
        f"ends {len(e.ended)}, top runs lost {len(e.top_lost)}, saves {e.steps_saved} steps "
        f"(as given: ends {len(fit.given.ended)}, top lost {len(fit.given.top_lost)}, saves {fit.given.steps_saved})."
    )


def spec_text(
    original: str, fits: Sequence[cal.RuleFit], n_runs: int, top: list[str], o: oc.OutcomeSpec
) -> str:
    """The original spec with its `criteria:` block replaced by the fitted rules."""
    block = ["criteria:"]
    for f in fits:
        block += ["  " + comment(f, n_runs, top, o), "  - " + rule_yaml(f.fitted)]
    lines = original.splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"^criteria\s*:", line)), None)
    if start is None:
        return "\n".join(lines + block) + "\n"
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"^[A-Za-z_]", lines[i])), len(lines))
    return "\n".join(lines[:start] + block + lines[end:]) + "\n"


def to_markdown(fits: Sequence[cal.RuleFit], top: list[str], o: oc.OutcomeSpec) -> str:
    rows = []
    for f in fits:
        g, e = f.given, f.effect
        if g is None or e is None:
            rows.append([f.rule.name, "not judged", "—", "—", "—", "—", "—", "—", f.note])
            continue
        rows.append(
            [f.rule.name, f.rule.describe(), _names(g.ended), _names(g.top_lost), g.steps_saved]
            + [f.fitted.describe(), _names(e.ended), _names(e.top_lost), e.steps_saved, f.note]
        )
    head = ["rule", "as given", "ends", "top runs lost", "steps saved"]
    head += ["fitted", "ends", "top runs lost", "steps saved", "fitted on"]
    intro = (
        f"Top runs ({o.reduce} {o.key} within {o.within:g} of the best): "
        f"{', '.join(top) or 'none'}. A top run is lost when a rule ends it before the step of its outcome.\n\n"
    )
    return intro + md_table(head, rows) + "\n"


def main(
    history: Sequence[Path],
    spec: Path,
    outcome: str,
    within: float = 0.0,
    out: Optional[Path] = None,
    form: str = "auto",
    margin: float = 0.1,
    outcome_reduce: str = "best",
) -> int:
    sweep = read_spec(spec)
    runs = [r for r in load_histories(history) if r.steps]
    if not runs:
        raise UserError(f"{', '.join(map(str, history))}: no run with any reports")
    if form not in cal.FORMS:
        raise UserError(f"--form: unknown form {form!r} (expected one of {', '.join(cal.FORMS)})")
    if not 0 <= margin < 1:
        raise UserError(f"--margin: {margin:g} is not a share (expected 0 <= margin < 1)")
    o = outcome_spec(runs, outcome, within, outcome_reduce)
    fits = cal.calibrate(sweep.rules(), runs, o, form, margin)
    top = oc.top_runs([oc.run_outcome(r, o) for r in runs], o.within)
    typer.echo(to_markdown(fits, top, o))
    text = spec_text(Path(spec).read_text(encoding="utf-8"), fits, len(runs), top, o)
    if out is None:
        typer.echo(text)
        return 0
    out.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {out}")
    return 0
