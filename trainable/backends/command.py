"""The `command` backend: one external trainer process (Archer2.0, verl) per trial.

`step()` blocks until the trainer reports its next step (console `step:N - …` lines or
verl's JSONL file logger, parsed by `verl_logs`) and returns it under archer-sweep's
metric names. The process runs as the leader of its own session; `close()` (a stop
from the scheduler, the end of the trial, an error) ends every process in it.

Restart semantics: `save` records the last reported step, the experiment name and the
output directory. After `load` the trainer is launched again with the same name and
directory plus `resume_overrides` (verl: `trainer.resume_mode=auto`), so the external
trainer resumes from its own checkpoints; steps it reports again (those up to the saved
step) are skipped.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from trainable import metrics as M
from trainable.backends import command_best, verl_logs
from trainable.backends.command_config import CommandConfig, flatten
from trainable.backends.command_proc import (
    FileTail,
    OutputPump,
    alive,
    drain,
    end_session,
    live_processes,
    remove_leftovers,
    shm_held,
    spawn,
    start_watchdog,
)

log = logging.getLogger(__name__)

STATE_FILE = "command_state.json"
LOG_FILE = "trainer.log"
ARGV_FILE = "trainer_argv.json"
_UNQUOTED = re.compile(r"^[A-Za-z_/][A-Za-z0-9_\-+./@%*?|:]*$")
_NOT_A_STRING = re.compile(r"^(?i:[-+]?(\d[\d_]*\.?\d*(e[-+]?\d+)?|inf|nan)|true|false|null)$")
# Variables a Ray worker sets for itself; a trainer starting its own Ray must not inherit them.
_RAY_WORKER_VARS = (
    "RAY_RAYLET_PID",
    "RAY_JOB_ID",
    "RAY_CLIENT_MODE",
    "RAY_LD_PRELOAD_ON_WORKERS",
    "RAY_ADDRESS",
)


class TrainerExited(RuntimeError):
    """The external trainer died (non-zero exit) or stopped reporting."""


class UnreportedMetric(ValueError):
    """A rule watches a key the trainer's first report does not carry (it never will)."""


#: keys logged only every `trainer.test_freq` steps (verl's validation): not checked at step 1
_PERIODIC_PREFIXES = ("val-", "val/")


def unreported_message(watch: dict[str, str], reported: set[str], step: int) -> Optional[str]:
    """One line naming each (rule, key) of `watch` the report lacks, and the keys it has;
    None when every watched key is there."""
    missing = [
        (rule, key)
        for rule, key in watch.items()
        if key not in reported and not key.startswith(_PERIODIC_PREFIXES)
    ]
    if not missing:
        return None
    what = "; ".join(f"rule `{rule}` watches `{key}`" for rule, key in missing)
    keys = ", ".join(sorted(reported - {M.STEP}))
    return (
        f"{what}, which the trainer does not report (step {step}; it reports "
        f"{len(reported - {M.STEP})} keys: {keys}); "
        "map a key it logs with metric_map or drop the rule"
    )


def hydra_value(value: Any) -> str:
    """Render a YAML value in Hydra's override grammar (`1e-06`, `true`, `[a,b]`, `'x y'`)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if not math.isinf(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if _UNQUOTED.match(text) and not _NOT_A_STRING.match(text):
        return text
    # Hydra's quoted strings: escape quotes, double only backslashes that precede a quote
    # (or the closing one), escape `${` so no interpolation runs.
    quoted = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", text)
    quoted = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, quoted).replace("${", "\\${")
    return f"'{quoted}'"


def _override_args(overrides: dict[str, Any] | list[str]) -> dict[str, str]:
    """Bare key → one `key=value` argv item (a `+`/`++`/`~` prefix is kept in the item)."""
    if isinstance(overrides, list):
        return {item.partition("=")[0].strip().lstrip("+~"): item for item in overrides}
    return {k.lstrip("+~"): f"{k}={hydra_value(v)}" for k, v in flatten(overrides).items()}


def build_argv(cfg: CommandConfig, experiment_name: str, output_dir: str, resumed: bool = False) -> list[str]:
    """The trainer's argv: command, fixed overrides, search values, per-trial keys.

    A later source replaces an earlier one for the same key (each key appears once,
    as Hydra rejects duplicates); the per-trial name and directory always win.
    """
    args = _override_args(cfg.overrides)
    key_map = cfg.effective_key_map()
    for key, value in cfg.search_values().items():
        target = key_map.get(key, key)
        prefix = args[target].partition("=")[0][: -len(target)] if target in args else ""
        args[target] = f"{prefix}{target}={hydra_value(value)}"
    for key, value in ((cfg.gpus_key, cfg.gpus_per_trial), (cfg.total_steps_key, cfg.total_steps)):
        if key and value and key not in args:
            args[key] = f"{key}={value}"
    if resumed:
        args.update(_override_args(cfg.resume_overrides))
    args[cfg.experiment_name_key] = f"{cfg.experiment_name_key}={hydra_value(experiment_name)}"
    args[cfg.output_dir_key] = f"{cfg.output_dir_key}={hydra_value(output_dir)}"
    return [*cfg.argv, *args.values()]


def _origin_dir() -> str:
    # Ray Tune runs trainables in a per-trial working directory; the user's paths are
    # relative to where the sweep was started, which Tune exports as TUNE_ORIG_WORKING_DIR.
    return os.environ.get("TUNE_ORIG_WORKING_DIR") or os.getcwd()


class CommandTrainer:
    """Trainer protocol over an external process; see the module docstring."""

    def __init__(self, config: CommandConfig):
        self.config = config
        self.step_count = 0
        self.trial: dict[str, Any] = {}
        self._proc = None
        self._watchdog_pid = 0
        self._pump: Optional[OutputPump] = None
        self._lines: queue.Queue[str] = queue.Queue()
        self._tail_file: Optional[FileTail] = None
        self._pending: dict[int, dict[str, float]] = {}  # logged, not yet reported, by step
        self._early: dict[str, float] = {}  # step-0 records (validation before training)
        self._resumed = False
        self._exit_code: Optional[int] = None
        self._last_report = time.monotonic()
        self._reported_since_launch = False  # until then start_timeout_s applies
        self._tmpdir: Optional[Path] = None
        self._stale: dict[int, dict[str, float]] = {}  # an earlier attempt's steps past step_count
        self.logged_keys: set[str] = set()

    def keep_best(self, step: int) -> None:
        """The best objective step so far (from GRPOTrainable): keep the trainer's checkpoint of it."""
        if self.config.best_checkpoint_dir:
            command_best.keep_best(self.output_dir, self.config.best_checkpoint_dir, step)

    # ---- trial identity -------------------------------------------------------------
    def attach_trial(self, trial: dict[str, Any]) -> None:
        """Trial info from GRPOTrainable: id, name, dir, storage_dir, experiment, and `watch`
        (rule name → metric key the sweep's rules read, checked at the first report)."""
        self.trial = dict(trial)

    @property
    def watch(self) -> dict[str, str]:
        return dict(self.trial.get("watch") or {})

    @property
    def trial_dir(self) -> Path:
        for key in ("storage_dir", "dir"):
            value = self.trial.get(key)
            if value and Path(value).is_dir():
                return Path(value)
        path = Path(_origin_dir()) / "command-trials" / self.trial_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def trial_id(self) -> str:
        return str(self.trial.get("id") or f"pid{os.getpid()}")

    @property
    def experiment_name(self) -> str:
        prefix = self.config.experiment_prefix or self.trial.get("experiment") or "archer-sweep"
        return f"{prefix}-{self.trial_id}"

    @property
    def output_dir(self) -> Path:
        root = self.config.output_root
        base = Path(_origin_dir(), root) if root else self.trial_dir / "trainer_output"
        return base / self.experiment_name

    @property
    def session_id(self) -> Optional[int]:
        """The trainer's session (its pid) while launched."""
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path:
        return self.trial_dir / LOG_FILE

    # ---- process ----------------------------------------------------------------------
    def argv(self) -> list[str]:
        return build_argv(self.config, self.experiment_name, str(self.output_dir), self._resumed)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.config.isolate_ray:
            for name in _RAY_WORKER_VARS:
                env.pop(name, None)
            env["RAY_ADDRESS"] = "local"
        env.update(self.config.env)
        missing = [n for n in self.config.secret_env if n not in os.environ]
        if missing:
            log.info("secret variables not set, trainer runs without them: %s", missing)
        env["PYTHONUNBUFFERED"] = env.get("PYTHONUNBUFFERED", "1")
        if self._tmpdir is not None:  # temp files, sockets keyed by a job id: the trial's own
            env["TMPDIR"] = str(self._tmpdir)
            env["ARCHER_SWEEP_TRIAL_TAG"] = self._tmpdir.name
        if self.config.metrics.source == "jsonl":
            env[self.config.metrics.env_var] = str(self._metrics_path())
        return env

    def _metrics_path(self) -> Path:
        return self.output_dir / self.config.metrics.path

    def _launch(self) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        # Short (Ray puts its sockets in TMPDIR/ray/session_…/sockets, and a unix socket path
        # allows 107 bytes: not below the sweep worker's own TMPDIR), unique per launch,
        # removed with the session.
        self._tmpdir = Path(tempfile.mkdtemp(prefix=f"as-{self.trial_id[-8:]}-", dir=_short_tmp_root()))
        if self.config.metrics.source == "jsonl":
            self._stale = self._earlier_records(_set_aside(self._metrics_path()))
        cwd = str(Path(_origin_dir(), self.config.cwd or "."))
        argv = self.argv()
        log.info("launching trainer for trial %s: %s (cwd %s)", self.trial_id, argv, cwd)
        # What ran, for reproduction (argv and cwd only: secrets live in the environment).
        (self.trial_dir / ARGV_FILE).write_text(json.dumps({"argv": argv, "cwd": cwd}, indent=1))
        launched = time.time() - 0.05  # what the session creates is newer (ctime in ns on tmpfs)
        try:
            self._proc = spawn(argv, cwd, self._env())
        except OSError as exc:
            raise TrainerExited(f"could not start the trainer {argv[0]!r}: {exc}") from None
        self._watchdog_pid = start_watchdog(
            self._proc.pid, self.config.grace_period_s, self._tmpdir, launched
        )
        on_line = self._lines.put if self.config.metrics.source == "console" else None
        self._pump = OutputPump(self._proc.stdout, self.log_path, self.config.log_tail_lines, on_line)
        if self.config.metrics.source == "jsonl":
            self._tail_file = FileTail(self._metrics_path())
        self._last_report = time.monotonic()
        self._reported_since_launch = False

    def _collect(self) -> None:
        """Move newly logged records into `_pending` (merged by step, old steps dropped)."""
        if self._tail_file is not None:
            lines = self._tail_file.read_lines()
        else:
            lines = drain(self._lines)
        parse = verl_logs.PARSERS[self.config.metrics.source]
        for line in lines:
            rec = parse(line)
            if rec is None:
                continue
            if rec.step > 0 and self._stale:
                self._settle_stale(rec.step)
            if rec.step <= 0:
                self._early.update(rec.metrics)
            elif rec.step <= self.step_count:  # reported already (a resumed trainer repeats it)
                log.debug("skipping record of step %d (already at %d)", rec.step, self.step_count)
            else:  # same step logged twice, or re-logged after a restart: one report, merged
                self._pending.setdefault(rec.step, {}).update(rec.metrics)

    def _earlier_records(self, old: Optional[Path]) -> dict[int, dict[str, float]]:
        """Steps after `step_count` that an earlier attempt logged (its file set aside)."""
        if old is None:
            return {}
        lines = old.read_text(encoding="utf-8", errors="replace").splitlines()
        return {r.step: r.metrics for r in verl_logs.parse_lines(lines, "jsonl") if r.step > self.step_count}

    def _settle_stale(self, first_new: int) -> None:
        """The relaunched trainer's first step tells where its checkpoint was: the earlier
        attempt's steps before it were kept by that checkpoint (reported from the old file),
        those from it on are run again (the old lines are dropped)."""
        for step, metrics in sorted(self._stale.items()):
            if step < first_new:
                self._pending.setdefault(step, {}).update(metrics)
        self._stale = {}

    def _failure_text(self, summary: str) -> str:
        """The log tail, then one summary line: Ray shows the whole text, while a verdict
        keeps an error's last line, so that line names the cause and the trainer's last error
        line (verl ends with Hydra's `Set the environment variable HYDRA_FULL_ERROR=1 …`)."""
        tail = list(self._pump.tail) if self._pump else []
        error = verl_logs.last_error_line(tail)
        last = next((ln.strip() for ln in reversed(tail) if ln.strip()), "(no output)")
        where = f"last error line: {error}" if error else f"last log line: {last}"
        return f"last {len(tail)} lines of {self.log_path}:\n" + "\n".join(tail) + f"\n{summary}; {where}"

    def _exit_error(self, code: int) -> TrainerExited:
        return TrainerExited(
            self._failure_text(f"trainer exited with code {code} after step {self.step_count}")
        )

    def _finished(self) -> bool:
        """Poll the process; after it exited, read the rest of its output."""
        if self._proc is None or self._exit_code is not None:
            return self._exit_code is not None
        code = self._proc.poll()
        if code is None:
            return False
        self._pump.join(timeout=1.0)  # children may keep the pipe open: its data is read by now
        self._collect()
        self._exit_code = code
        return True

    # ---- Trainer protocol -------------------------------------------------------------
    def step(self) -> dict[str, float]:
        if self._proc is None:
            self._launch()
        lookahead = self.config.steps_budget() is None
        while True:
            self._collect()
            exited = self._finished()
            if self._pending and (not lookahead or len(self._pending) > 1 or exited):
                step = min(self._pending)
                return self._report(verl_logs.StepRecord(step, self._pending.pop(step)))
            if exited:
                if self._exit_code:
                    raise self._exit_error(self._exit_code)
                raise TrainerExited(
                    self._failure_text(
                        f"trainer exited with code 0 after step {self.step_count}, before "
                        f"total_steps={self.config.steps_budget()}"
                    )
                )
            self._check_timeout()
            time.sleep(0.05)

    def _check_timeout(self) -> None:
        # A (re)launch loads the model and starts its rollout engine again: the first step
        # after it gets start_timeout_s, also when resuming from step N.
        key = "step_timeout_s" if self._reported_since_launch else "start_timeout_s"
        limit = getattr(self.config, key)
        if limit is not None and time.monotonic() - self._last_report > limit:
            self.close()
            raise TimeoutError(
                self._failure_text(
                    f"no step from the trainer for {limit:g}s after step {self.step_count} "
                    f"({key}); its processes were ended"
                )
            )

    def _report(self, rec: verl_logs.StepRecord) -> dict[str, float]:
        metrics = {**self._early, **rec.metrics}
        self._early = {}
        out = verl_logs.map_metrics(metrics, self.config.effective_metric_map())
        if not self._reported_since_launch and self.step_count == 0:
            problem = unreported_message(self.watch, set(out), rec.step)
            if problem is not None:
                self.close()  # minutes of GPU time saved: no rule on the key can ever judge
                raise UnreportedMetric(problem)
        self._reported_since_launch = True
        self.logged_keys = set(out)  # what the trainer itself logged (before the NaN fill)
        for key in M.ALL_KEYS:  # a metric the trainer does not log is NaN, never made up
            out.setdefault(key, math.nan)
        out[M.STEP] = float(rec.step)
        self.step_count = rec.step
        self._last_report = time.monotonic()
        return out

    def done(self) -> bool:
        """True once the trainer exited cleanly with nothing left to report, or reached
        `total_steps` (then its own clean exit is awaited for `exit_timeout_s`)."""
        self._collect()
        budget = self.config.steps_budget()
        if budget is not None and self.step_count >= budget:
            deadline = time.monotonic() + self.config.exit_timeout_s
            while not self._finished() and time.monotonic() < deadline:
                time.sleep(0.1)
            if self._exit_code:
                raise self._exit_error(self._exit_code)
            return True
        return self._finished() and self._exit_code == 0 and not self._pending

    def save(self, directory: str) -> None:
        state = {
            "step": self.step_count,
            "experiment_name": self.experiment_name,
            "output_dir": str(self.output_dir),
            "trial": {k: self.trial.get(k) for k in ("id", "experiment")},
        }
        Path(directory, STATE_FILE).write_text(json.dumps(state))

    def load(self, directory: str | dict) -> None:
        if isinstance(directory, dict):
            raise ValueError(f"the command backend restores from a directory, got {type(directory)=}")
        state = json.loads(Path(directory, STATE_FILE).read_text())
        self.close()
        self.step_count = int(state["step"])
        self.trial.update({k: v for k, v in state.get("trial", {}).items() if v})
        self._resumed = self.step_count > 0
        self._proc, self._pump, self._exit_code, self._pending = None, None, None, {}
        self._tail_file = None

    def close(self) -> None:
        proc = self._proc
        if proc is None:
            return
        held = shm_held(live_processes(pgid=proc.pid, sid=proc.pid))  # the watchdog scans only every 2 s
        code = end_session(proc, self.config.grace_period_s)
        if self._exit_code is None:
            self._exit_code = code
        if self._pump is not None:
            self._pump.join(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()
        if self._watchdog_pid:  # it exits by itself once the session is empty (and cleaned)
            deadline = time.monotonic() + 10
            while alive(self._watchdog_pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            self._watchdog_pid = 0
        remove_leftovers(held, str(self._tmpdir) if self._tmpdir else None)
        self._tmpdir = None


def _short_tmp_root() -> str:
    return "/tmp" if os.access("/tmp", os.W_OK) else tempfile.gettempdir()


def _set_aside(path: Path) -> Optional[Path]:
    """Rename an earlier attempt's metrics file to `<name>.<n>` and return the new path, so
    that the relaunched trainer's tail reads only its own lines: verl reopens the file with
    `wb` only when `fit()` starts, minutes later, and would otherwise be read from past its end."""
    if not path.exists():
        return None
    n = 1
    while path.with_name(f"{path.name}.{n}").exists():
        n += 1
    aside = path.with_name(f"{path.name}.{n}")
    shutil.move(str(path), str(aside))
    return aside
