"""Progress with an ETA: the warm start's (trainable/progress.py) and the sweep's
(engine/progress.py), as log lines in a pipe and redrawn in place on a terminal (a pty)."""

import logging
import os
import pty
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

from rich.console import Console

from archer_sweep.engine.progress import SweepProgress, duration
from trainable.progress import StepProgress

ROOT = Path(__file__).resolve().parents[1]


def test_pipe_logs_steps_time_and_time_left(caplog):
    clock = iter(float(t) for t in range(0, 1000, 2))  # each step takes 2 s
    log = logging.getLogger("test.progress")
    console = Console(file=open(os.devnull, "w"), force_terminal=False)
    with caplog.at_level(logging.INFO, logger="test.progress"):
        with StepProgress(
            "warm start SFT", 201, log, every=100, console=console, clock=lambda: next(clock)
        ) as p:
            for done in range(1, 202):
                p.advance(done, loss=1.5)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "warm start SFT step 1/201 loss 1.500 (2 s)",
        "warm start SFT step 101/201 loss 1.500 (202 s, 3.3 min left)",
        "warm start SFT step 201/201 loss 1.500 (402 s)",
    ]


def test_sweep_eta_counts_what_is_left_and_drops_a_stopped_trials_steps():
    now = [0.0]
    p = SweepProgress(trials=3, steps=10, clock=lambda: now[0])
    assert p.eta_s() is None and "ETA --:--" in p.text()
    for step in range(1, 6):  # two trials side by side, one step per second each
        p.report("a", step)
        p.report("b", step)
        now[0] += 1.0
    assert (p.done, p.total) == (10, 30)
    assert abs(p.rate() - 9 / 5) < 1e-9  # steps after the first report / seconds since it
    p.end("b")  # stopped at step 5: its last 5 steps leave the budget
    assert p.total == 25 and abs(p.eta_s() - 15 / 1.8) < 1e-9
    assert "10/25 trial-steps" in p.text() and "ETA 0:08" in p.text()
    assert duration(3725) == "1h02"


def test_terminal_shows_bars_with_rate_and_eta_under_a_pty():
    script = textwrap.dedent(
        """
        import logging, time
        from types import SimpleNamespace
        from archer_sweep.engine.live import LiveTable
        from archer_sweep.engine.verdicts import VerdictStore
        from trainable.progress import StepProgress
        import tempfile

        with StepProgress("warm start SFT", 40, logging.getLogger("x")) as p:
            for i in range(1, 41):
                time.sleep(0.01)
                p.advance(i, loss=2.0)
        live = LiveTable(VerdictStore(tempfile.mkdtemp()), ["a.x"], budget=(2, 20))
        trial = SimpleNamespace(trial_id="t1", config={"a": {"x": 1}})
        live.on_trial_start(0, [], trial)
        for step in range(1, 6):
            time.sleep(0.05)
            live.on_trial_result(0, [], trial, {"step": step})
        time.sleep(0.3)
        live.on_experiment_end([])
        """
    )
    main, child = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdin=child, stdout=child, stderr=child, env=env
    )
    os.close(child)
    out = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the child closed the pty
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(timeout=60) == 0, out.decode(errors="replace")[-2000:]
    text = out.decode(errors="replace")
    assert "\x1b[" in text  # redrawn in place, not printed as lines
    assert "warm start SFT" in text and "40/40" in text and "steps/s" in text and "ETA" in text
    sweep = text[text.index("archer-sweep trials") :]
    assert "5/40 trial-steps" in sweep and "steps/s" in sweep and "ETA 0:" in sweep
    assert "[t1] started" not in text  # no pipe lines on a terminal


def test_live_table_without_a_budget_renders_the_table_alone(tmp_path):
    from archer_sweep.engine.live import LiveTable
    from archer_sweep.engine.verdicts import VerdictStore

    live = LiveTable(VerdictStore(tmp_path), ["a.x"])
    live.on_trial_result(0, [], SimpleNamespace(trial_id="t1", config={"a": {"x": 1}}), {"step": 1})
    assert live.view() is not None and live.progress is None
