"""The live view of `run`: a table redrawn in place on a terminal, lines in logs and pipes."""

import io
from types import SimpleNamespace

from rich.console import Console

from archer_sweep.criteria import Verdict
from archer_sweep.engine.live import LiveTable
from archer_sweep.engine.verdicts import VerdictStore
from trainable import metrics as M

KEYS = ["algorithm.entropy_coeff"]


def _drive(tmp_path, terminal: bool) -> tuple[LiveTable, str]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=terminal, width=200, highlight=False)
    store = VerdictStore(tmp_path)
    live = LiveTable(store, KEYS, every=2, console=console)
    trial = SimpleNamespace(trial_id="t1", config={"algorithm": {"entropy_coeff": 0.05}})
    live.on_trial_start(0, [], trial)
    for step, entropy in ((1, 4.0), (2, 7.25)):
        live.on_trial_result(0, [], trial, {M.STEP: step, M.ENTROPY: entropy, M.SCORE_MEAN: 0.125})
    store.record("t1", {KEYS[0]: 0.05}, Verdict("stopped:entropy_high", "entropy_high", 2, M.ENTROPY, 7.25))
    live.on_trial_complete(0, [], trial)
    live.on_experiment_end([])
    return live, out.getvalue()


def test_pipe_gets_one_line_per_event(tmp_path):
    _, text = _drive(tmp_path, terminal=False)
    assert text.splitlines() == [
        "[t1] started entropy_coeff=0.05",
        "[t1] step 2: entropy=7.25 pos len= connect.= score=0.125",
        "[t1] terminated: stopped:entropy_high at step 2: actor/entropy=7.25",
    ]


def test_terminal_gets_a_table_with_status_step_metrics_and_verdict(tmp_path):
    live, text = _drive(tmp_path, terminal=True)
    assert "[t1]" not in text  # no log lines on a terminal
    table = io.StringIO()
    Console(file=table, width=200).print(live.table())
    rendered = table.getvalue()
    for header in ("trial", "entropy_coeff", "status", "step", "entropy", "score", "verdict"):
        assert header in rendered
    row = next(line for line in rendered.splitlines() if "t1" in line)
    assert all(cell in row for cell in ("0.05", "done", "7.25", "0.125", "stopped:entropy_high"))
