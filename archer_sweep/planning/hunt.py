"""The automated hunt: rounds of run → report → next → run.

Round N lives in `<storage>/<name>/round-N/` (a normal sweep directory: `analyze`,
`report`, `next`, `resume` work on it). Round 1 runs the user's spec; round N+1 runs
the spec `next` wrote into round N (`round-N/next.yaml`), whose points are proposed
from every earlier round's trials. `<storage>/<name>/index.md` links the rounds'
reports. The hunt stops when a trial is healthy (`until="healthy"`) or the rounds
end. It is resumable: a finished round (every trial judged) is not rerun, an
interrupted one is resumed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml

from archer_sweep.errors import UserError
from archer_sweep.results.analysis import load_sweep
from archer_sweep.results.durable import atomic_write
from archer_sweep.results.history import SPEC_FILE, read_verdicts
from archer_sweep.tables import md_table

log = logging.getLogger(__name__)

UNTIL = ("healthy", "budget")
NEXT_FILE = "next.yaml"
INDEX_FILE = "index.md"


@dataclass
class RoundResult:
    number: int
    directory: Path
    trials: int
    healthy: int
    best: Optional[float]
    rc: int


def round_dir(root: Path, n: int) -> Path:
    return root / f"round-{n}"


def is_finished(directory: Path, num_samples: int) -> bool:
    """Every trial of the round has a verdict."""
    return (directory / SPEC_FILE).exists() and len(read_verdicts(directory)) >= num_samples


def round_spec_data(data: dict, root: Path, n: int) -> dict:
    """A spec (as data) placed as round n of the hunt rooted at `root`."""
    out = dict(data)
    out["name"] = f"round-{n}"
    out["storage"] = dict(out.get("storage") or {}) | {"path": str(root)}
    out["storage"].pop("study", None)  # each round keeps its own study beside its results
    return out


def user_data(path: Path, overrides: Sequence[str]) -> dict:
    """The user's spec as written (plus --set), not the resolved model: the checks reject
    defaults that do not apply to a type (e.g. `log` of loguniform)."""
    from archer_sweep.spec.overrides import apply_overrides
    from archer_sweep.spec.yamlio import load_yaml

    data, lines = load_yaml(path)
    return apply_overrides(data, lines, list(overrides)) if overrides else data


def _write_spec(data: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, yaml.safe_dump(data, sort_keys=False))  # a resumed hunt reads it
    return path


def run_round(spec_path: Path, directory: Path, num_samples: int) -> int:
    """Run (or resume) one round; 0 when every trial got a verdict."""
    from archer_sweep.engine import sweep
    from archer_sweep.engine.runner import TUNER_FILE

    if is_finished(directory, num_samples):
        log.info("round %s already finished; kept", directory.name)
        return 0
    if (directory / TUNER_FILE).exists():
        return sweep.resume(directory)
    return sweep.run(sweep.load(spec_path), live=False)


def summarize_round(n: int, directory: Path, rc: int) -> RoundResult:
    sweep = load_sweep(directory)
    healthy = [r for r in sweep.runs if r.verdict_name == "healthy"]
    from archer_sweep.planning.backtest import objective_value

    vals = [
        objective_value(r, sweep.objective, sweep.spec.search.objective_reduce, sweep.mode) for r in healthy
    ]
    vals = [v for v in vals if v is not None]
    best = (max(vals) if sweep.mode == "max" else min(vals)) if vals else None
    return RoundResult(n, directory, len(sweep.runs), len(healthy), best, rc)


def write_index(root: Path, name: str, results: Sequence[RoundResult], status: str) -> Path:
    rows = [
        [
            f"round {r.number}",
            r.trials,
            r.healthy,
            r.best,
            f"[report]({r.directory.name}/report/report.md)",
            f"[next spec]({r.directory.name}/{NEXT_FILE})" if (r.directory / NEXT_FILE).exists() else None,
        ]
        for r in results
    ]
    text = (
        f"# Hunt `{name}`\n\n{status}\n\n"
        + md_table(["Round", "trials", "healthy", "best healthy objective", "report", "next"], rows)
        + "\n"
    )
    path = root / INDEX_FILE
    path.write_text(text)
    return path


def propose_next(root: Path, n: int, count: int) -> Path:
    """Write round n's next.yaml from round n plus every earlier round (as history)."""
    from archer_sweep.planning.nextver import next_spec
    from archer_sweep.planning.propose import make_proposals, spec_data

    directory = round_dir(root, n)
    sweep = load_sweep(directory)
    earlier = [round_dir(root, k) for k in range(1, n)]
    _, _, props = make_proposals(sweep, earlier, count)
    data = spec_data(sweep)
    return _write_spec(round_spec_data(next_spec(data, props), root, n + 1), directory / NEXT_FILE)


def hunt(
    spec_path: Path,
    rounds: int,
    until: str = "healthy",
    storage: Optional[Path] = None,
    overrides: Sequence[str] = (),
    on_round: Optional[Callable[[RoundResult], None]] = None,
) -> int:
    """Run up to `rounds` rounds; 0 when done (healthy found or budget spent), 1 when a round failed."""
    from archer_sweep.engine import sweep
    from archer_sweep.planning.propose import report_with_next

    if until not in UNTIL:
        raise UserError(f"--until {until!r}: expected one of {', '.join(UNTIL)}")
    spec = sweep.load(Path(spec_path), overrides)  # checks the user's spec (and --set) first
    root = Path(storage or spec.storage.path).expanduser().resolve() / spec.name
    first = round_spec_data(user_data(Path(spec_path), overrides), root, 1)
    spec_file = (
        _write_spec(first, root / "round-1.yaml")
        if not (root / "round-1.yaml").exists()
        else root / "round-1.yaml"
    )
    results: list[RoundResult] = []
    status = "running"
    for n in range(1, rounds + 1):
        directory = round_dir(root, n)
        samples = sweep.load(spec_file).search.num_samples
        rc = run_round(spec_file, directory, samples)
        if rc != 0:
            status = f"round {n} did not finish (exit {rc}); rerun `archer-sweep hunt` to resume it"
            if (directory / SPEC_FILE).exists():
                results.append(summarize_round(n, directory, rc))
            write_index(root, spec.name, results, status)
            return 1
        report_with_next(
            load_sweep(directory), directory / "report", history=[round_dir(root, k) for k in range(1, n)]
        )
        res = summarize_round(n, directory, rc)
        results.append(res)
        if on_round:
            on_round(res)
        if until == "healthy" and res.healthy:
            status = f"stopped after round {n}: {res.healthy} healthy trial(s)"
            break
        if n == rounds:
            status = f"all {rounds} round(s) run; {res.healthy or 'no'} healthy trial(s) in the last"
            break
        spec_file = directory / NEXT_FILE
        if not spec_file.exists():
            propose_next(root, n, samples)
        write_index(root, spec.name, results, f"round {n + 1} next")
    path = write_index(root, spec.name, results, status)
    log.info("hunt index: %s", path)
    return 0
