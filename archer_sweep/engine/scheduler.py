"""`CriteriaScheduler`: stop a trial the moment a bad monitoring rule fires.

Each result goes to the trial's `criteria.CriteriaTracker` (the same code the
offline backtest runs). A firing bad rule (its threshold, or its forecast) returns STOP and
records `stopped:<rule>` with its step and value in `verdicts.jsonl`; with
`stop_when_decided` a good `at_step` rule that misses returns STOP and records
`unhealthy:<rule>` at that step; a finished trial gets `healthy` / `unhealthy:<rule>` from
the good rules; a live trainer that never reports a watched key is `stopped:nan` (a replay
of recorded runs, `recorded=True`, instead leaves the rules on that key out, with a
warning); a crash gets `error` with the exception's message. ASHA, when configured, runs
on the objective after the rules (`stopped:asha`). With `search.repeats` each verdict row also
names its config `group` and `seed`, and (`stop_siblings`) a seed's bad-rule stop stops the
config's other seeds, pending or running, as `stopped:sibling:<rule>` (criteria/repeats.py);
the stops happen on the controller's next step, like those of hung trials. Ray Tune keeps no scheduler state
across restore, so trackers are rebuilt from `verdicts.jsonl` and each trial's
`result.json` on the first result after a resume.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler

from archer_sweep.criteria import STEP_KEY, CriteriaTracker, Rule, Verdict
from archer_sweep.criteria.repeats import sibling_verdict, stops_siblings
from archer_sweep.engine import libcompat
from archer_sweep.engine.verdicts import VerdictStore
from archer_sweep.results.sweepdir import RESULT_FILE, params_of
from archer_sweep.values import jsonable

log = logging.getLogger(__name__)

ITER = "training_iteration"
TIMEOUT_VERDICT = "stopped:timeout"
ASHA_VERDICT = "stopped:asha"


def error_message(trial: Any) -> str:
    """The exception's last line (`RuntimeError: …`), read from what Tune stored."""
    text = ""
    local = getattr(trial, "error_file", None)  # written in the driver's staging dir first
    try:
        if local and os.path.exists(local):
            with open(local, encoding="utf-8", errors="replace") as f:
                text = f.read()
        else:
            text = str(trial.get_error() or "")
    except Exception:  # unreadable: fall through to the generic message
        text = ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "trial failed (no error message recorded)"


class CriteriaScheduler(FIFOScheduler):
    def __init__(
        self,
        rules: Sequence[Rule],
        store: VerdictStore,
        objective: str,
        mode: str = "max",
        param_keys: Sequence[str] = (),
        asha: Optional[Mapping[str, Any]] = None,
        max_t: Optional[int] = None,
        step_timeout_s: Optional[float] = None,
        start_timeout_s: Optional[float] = None,
        stop_when_decided: bool = True,
        recorded: bool = False,
        groups: Any = None,
        stop_siblings: bool = False,
    ):
        super().__init__()
        self.groups = groups  # engine.repeats.GroupStore with search.repeats, else None
        self.stop_siblings = stop_siblings and groups is not None
        self._sibling_stops: list[tuple[str, str, Optional[int]]] = []  # (stopped seed, rule, step)
        self.rules = list(rules)
        self.stop_when_decided = stop_when_decided
        self.recorded = recorded  # trials play recorded runs (backend: replay)
        self.store = store
        self.objective = objective
        self._mode = mode
        self.param_keys = list(param_keys)
        self.step_timeout_s = step_timeout_s
        self.start_timeout_s = start_timeout_s if start_timeout_s is not None else step_timeout_s
        self._start_key = "start_timeout_s" if start_timeout_s is not None else "step_timeout_s"
        self.trackers: dict[str, CriteriaTracker] = {}
        self._judged_skipped = False  # resume: judged trials were taken off the queue
        self._last_report: dict[str, float] = {}  # monotonic time of each live trial's last result
        self._started: dict[str, float] = {}  # ... of a running trial's (re)start, until it reports
        self.asha = None
        if asha is not None:
            self.asha = AsyncHyperBandScheduler(
                time_attr=ITER,
                metric=objective,
                mode=mode,
                max_t=max_t or 100,
                grace_period=int(asha["grace_period"]),
                reduction_factor=float(asha["reduction_factor"]),
            )

    # -- Ray Tune hooks -------------------------------------------------------------
    def set_search_properties(self, metric: Optional[str], mode: Optional[str], **spec) -> bool:
        return True  # the objective comes from the spec, not from TuneConfig

    def on_trial_add(self, tune_controller, trial) -> None:
        if self.asha is not None and not libcompat.asha_tracks(self.asha, trial.trial_id):
            self.asha.on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if self.store.get(trial.trial_id) is not None:
            return TrialScheduler.STOP  # judged before an interruption
        self._last_report[trial.trial_id] = time.monotonic()
        self._started.pop(trial.trial_id, None)
        verdict = self._tracker(trial, result).update(result)
        if verdict is None:
            verdict = self._timeout(result)
        if verdict is not None:
            self._record(trial, verdict, report=result)
            return TrialScheduler.STOP
        if self.asha is None:
            return TrialScheduler.CONTINUE
        self.on_trial_add(tune_controller, trial)
        decision = self.asha.on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP:
            value = result.get(self.objective)
            self._record(
                trial,
                Verdict(
                    ASHA_VERDICT,
                    rule="asha",
                    step=_step(result),
                    metric=self.objective,
                    value=float(value) if value is not None else None,
                    reason="below the ASHA rung cut-off",
                ),
                report=result,
            )
        return decision

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        if self.asha is not None and libcompat.asha_tracks(self.asha, trial.trial_id):
            self.asha.on_trial_complete(tune_controller, trial, result)
        if self.store.get(trial.trial_id) is not None:
            return
        tracker = self._tracker(trial, result)
        # Tune hands the final (done=True) result only here, not to on_trial_result.
        if result and (not tracker.history or _step(result) > tracker.history[-1][STEP_KEY]):
            tracker.update(result)
        if self.recorded and tracker.verdict is None:
            for key in tracker.unreported():
                log.warning("trial %s never reports %s: the rules on it do not apply", trial.trial_id, key)
        self._record(trial, tracker.finish())

    def on_trial_error(self, tune_controller, trial) -> None:
        if self.asha is not None and libcompat.asha_tracks(self.asha, trial.trial_id):
            self.asha.on_trial_remove(tune_controller, trial)
        if trial.status == "ERROR" and trial.should_recover():
            # Tune is requeueing it for a retry (FailureConfig): no verdict yet; the tracker
            # is rebuilt from result.json when the retried trial reports again.
            self.trackers.pop(trial.trial_id, None)
            self._last_report.pop(trial.trial_id, None)  # restoring is not a hung step
            self._started.pop(trial.trial_id, None)  # the retry's clock starts when it runs
            return
        last = trial.last_result or {}
        self._record(trial, Verdict("error", step=_step(last) if last else None, reason=error_message(trial)))

    def on_trial_remove(self, tune_controller, trial) -> None:
        if self.asha is not None and libcompat.asha_tracks(self.asha, trial.trial_id):
            self.asha.on_trial_remove(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller):
        if not self._judged_skipped:
            self._skip_judged(tune_controller)
        if self._sibling_stops:
            self._stop_siblings(tune_controller)
        # Tune calls this on every controller step (≤ 0.1 s apart): the place to notice a
        # step that hangs and never reports.
        if self.start_timeout_s is not None or self.step_timeout_s is not None:
            self._stop_hung(tune_controller)
        return super().choose_trial_to_run(tune_controller)

    def _skip_judged(self, tune_controller) -> None:
        """After a resume, never start again a trial judged before the interruption (Tune's
        saved state may predate its verdict): no rerun step, no re-judging."""
        self._judged_skipped = True
        if self.stop_siblings:  # a sibling stop the interruption cut short
            for row in self.store.rows():
                rule = stops_siblings(Verdict(str(row["verdict"]), rule=row.get("rule")), self.rules)
                if rule is not None:
                    self._sibling_stops.append((row["trial_id"], rule, row.get("step")))
        for trial in list(tune_controller.get_trials()):
            if trial.status in ("PENDING", "PAUSED") and self.store.get(trial.trial_id):
                tune_controller.stop_trial(trial)

    def _stop_siblings(self, tune_controller) -> None:
        queued, self._sibling_stops = self._sibling_stops, []
        by_id = {t.trial_id: t for t in tune_controller.get_trials()}
        for origin, rule, step in queued:
            row = self.groups.get(origin)
            for tid in self.groups.members(row["group"]) if row else ():
                trial = by_id.get(tid)
                if trial is None or self.store.get(tid) is not None:
                    continue  # never started (the searcher closes the group), or judged
                if trial.status not in ("PENDING", "PAUSED", "RUNNING"):
                    continue
                last = trial.last_result or {}
                ran = _step(last) if ITER in last else None  # a pending sibling never reported
                self._record(trial, sibling_verdict(rule, origin, step, ran))
                tune_controller.stop_trial(trial)

    def _stop_hung(self, tune_controller) -> None:
        now = time.monotonic()
        for trial in list(tune_controller.get_live_trials()):
            if trial.status != "RUNNING":
                self._started.pop(trial.trial_id, None)  # waiting for resources is no hang
                continue
            verdict = self._hang(trial, now)
            if verdict is not None:
                self._record(trial, verdict)
                tune_controller.stop_trial(trial)

    def _hang(self, trial, now: float) -> Optional[Verdict]:
        """A timeout verdict for a running trial silent for too long, else None. Until its
        first report since it (re)started (setup, model loading, a restore, the first step)
        `start_timeout_s` applies; after that `step_timeout_s`."""
        seen = self._last_report.get(trial.trial_id)
        if seen is None:
            since, limit, key = (
                self._started.setdefault(trial.trial_id, now),
                self.start_timeout_s,
                self._start_key,
            )
        else:
            since, limit, key = seen, self.step_timeout_s, "step_timeout_s"
        waited = now - since
        if limit is None or waited <= limit:
            return None
        last = trial.last_result or {}
        step = _step(last) + 1 if last else 1
        what = f"step {step} still running" if seen is not None else f"no report (setup and step {step})"
        return Verdict(
            TIMEOUT_VERDICT,
            rule="timeout",
            step=step,
            metric="time_this_iter_s",
            value=round(waited, 1),
            reason=f"{what} after {waited:.0f}s > {key}={limit:g}",
        )

    def debug_string(self) -> str:
        stopped = sum(1 for r in self.store.rows() if str(r["verdict"]).startswith("stopped:"))
        return f"CriteriaScheduler: {len(self.rules)} rules, {stopped} trials stopped"

    # -- helpers --------------------------------------------------------------------
    def _record(self, trial, verdict: Verdict, report: Optional[Mapping[str, Any]] = None) -> None:
        """`report`: the result the verdict was judged on, kept in its verdict line: Tune's
        logger writes it only after this hook, and a driver killed in between would leave
        it in no file (`salvage.restore_judged_reports` writes it back on resume)."""
        member = self.groups.get(trial.trial_id) if self.groups is not None else None
        extra = {"group": member["group"], "seed": member["seed"]} if member else {}
        if report is not None:
            extra["report"] = judged_report(report)
        params = params_of(trial.config, self.param_keys)
        self.store.record(trial.trial_id, params, verdict, extra or None)
        rule = stops_siblings(verdict, self.rules) if self.stop_siblings else None
        if rule is not None:
            self._sibling_stops.append((trial.trial_id, rule, verdict.step))
        self.trackers.pop(trial.trial_id, None)
        self._last_report.pop(trial.trial_id, None)
        self._started.pop(trial.trial_id, None)

    def _timeout(self, result: Mapping[str, Any]) -> Optional[Verdict]:
        took = result.get("time_this_iter_s")
        if self.step_timeout_s is None or not isinstance(took, (int, float)):
            return None
        if took <= self.step_timeout_s:
            return None
        return Verdict(
            TIMEOUT_VERDICT,
            rule="timeout",
            step=_step(result),
            metric="time_this_iter_s",
            value=float(took),
            reason=f"step took {took:.1f}s > step_timeout_s={self.step_timeout_s:g}",
        )

    def _tracker(self, trial, result: Mapping[str, Any]) -> CriteriaTracker:
        tracker = self.trackers.get(trial.trial_id)
        if tracker is None:
            tracker = CriteriaTracker(
                self.rules,
                objective=self.objective,
                recorded=self.recorded,
                stop_when_decided=self.stop_when_decided,
            )
            for past in _past_results(trial, before=result.get(ITER)):
                tracker.update(past)  # resume: replay what the trial reported before
            self.trackers[trial.trial_id] = tracker
        return tracker


def judged_report(result: Mapping[str, Any]) -> dict[str, Any]:
    """The flat result Tune hands the scheduler, as its logger would write it: the trial
    config left out (it is in the trial's params.json), numpy scalars as Python numbers,
    anything else that is not a JSON scalar dropped."""
    out: dict[str, Any] = {}
    for key, value in result.items():
        if key.startswith("config/"):
            continue
        if hasattr(value, "item") and not isinstance(value, (str, bytes)):
            try:
                value = value.item()
            except (TypeError, ValueError):  # an array of several values
                continue
        if value is None or isinstance(value, (bool, int, float, str)):
            out[key] = value
    return jsonable(out)


def _step(result: Mapping[str, Any]) -> int:
    step = result.get(STEP_KEY, result.get(ITER, 0))
    try:
        return int(step) if not (isinstance(step, float) and math.isnan(step)) else 0
    except (TypeError, ValueError):
        return 0


def _past_results(trial, before: Optional[int]) -> list[dict]:
    """Results the trial wrote before iteration `before` (deduplicated by iteration)."""
    path = getattr(trial, "local_path", None)
    if not path or before is None or not os.path.exists(os.path.join(path, RESULT_FILE)):
        return []
    by_iter: dict[int, dict] = {}
    with open(os.path.join(path, RESULT_FILE), encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            it = row.get(ITER)
            if isinstance(it, int) and it < before:
                by_iter[it] = row
    return [by_iter[i] for i in sorted(by_iter)]
