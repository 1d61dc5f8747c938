"""One TrainingSchedule pass as a pure function: what is due, what to create, skip, delete or
promote, and the status that results.

`decide()` reads the schedule, its runs (child TrainingJobs), the clock and, when the controller
looked this pass, the data's fingerprint. It returns a `SchedulePlan`; the controller carries it
out and writes the status once. Everything it remembers between passes is in the status and in
the runs' annotations, so a restarted operator decides the same.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from trainforge_api.rules import spec_problems as job_problems
from trainforge_api.schedule_rules import schedule_problems
from trainforge_api.trainingschedule import (
    Champion,
    RunRecord,
    TrainingScheduleSpec,
    TrainingScheduleStatus,
    Trigger,
)
from trainforge_operator.plan import Event
from trainforge_operator.schedules import cron
from trainforge_operator.schedules.promotion import Verdict, judge
from trainforge_operator.schedules.runs import (
    Run,
    artifacts_uri,
    build_run,
    pointer_uri,
    run_name,
)
from trainforge_operator.status import iso, parse_time, set_condition

Obj = dict[str, Any]
ACTIVE_POLL_SECONDS = 30.0  # runs finishing also wake the schedule (watch); this is a backstop
MAX_REQUEUE = 3600.0
DEFAULT_DATA_INTERVAL = 300


@dataclass(frozen=True)
class ScheduleObserved:
    body: Obj
    runs: list[Run]
    now: dt.datetime
    fingerprint: str | None = None  # the data's fingerprint, when the controller looked
    data_error: str | None = None  # why looking at the data failed


@dataclass(frozen=True)
class Pointer:
    """The champion pointer to write (atomically) before the status."""

    uri: str
    content: Obj
    endpoint: str | None = None


@dataclass
class SchedulePlan:
    create: list[Obj] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    pointer: Pointer | None = None
    status: TrainingScheduleStatus = field(default_factory=TrainingScheduleStatus)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    results: list[str] = field(default_factory=list)  # verdicts reached this pass (metrics)


def parse_schedule_status(raw: Obj | None) -> TrainingScheduleStatus:
    try:
        return TrainingScheduleStatus.model_validate(raw or {})
    except ValidationError:
        return TrainingScheduleStatus()


def spec_problems(body: Obj) -> tuple[TrainingScheduleSpec | None, list[str]]:
    """The parsed spec and everything wrong with it: schema, rules, croniter and zoneinfo."""
    try:
        spec = TrainingScheduleSpec.model_validate(body.get("spec") or {})
    except ValidationError as err:
        return None, [
            f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        ]
    problems = schedule_problems(spec, body["metadata"].get("name"))
    problems += [f"spec.jobTemplate: {p}" for p in job_problems(spec.job_template)]
    if spec.schedule is not None and not problems:
        problems += [p for p in [cron.cron_problem(spec.schedule)] if p]
    problems += [p for p in [cron.zone_problem(spec.time_zone)] if p]
    return spec, problems


def data_check_due(
    spec: TrainingScheduleSpec, status: TrainingScheduleStatus, now: dt.datetime
) -> bool:
    """Should the controller look at the data this pass (at most every minIntervalSeconds)?"""
    if spec.new_data is None or spec.job_template.data.uri is None:
        return False
    checked = parse_time(status.data_checked_at)
    return checked is None or (now - checked).total_seconds() >= spec.new_data.min_interval_seconds


def wants_data(body: Obj, runs: list[Run], now: dt.datetime) -> bool:
    """Should the controller fingerprint the data before deciding: the newData check interval
    passed, or a cron run is due (each run records the data it trained on)."""
    spec, problems = spec_problems(body)
    if spec is None or problems or spec.job_template.data.uri is None or spec.suspend:
        return False
    status = parse_schedule_status(body.get("status"))
    if data_check_due(spec, status, now):
        return True
    plan = SchedulePlan(status=status)
    return _Pass(ScheduleObserved(body, runs, now), spec, plan)._cron_due() is not None


def decide(obs: ScheduleObserved) -> SchedulePlan:
    body, now = obs.body, obs.now
    old = parse_schedule_status(body.get("status"))
    spec, problems = spec_problems(body)
    generation = body["metadata"].get("generation")
    status = old.model_copy(deep=True)
    status.observed_generation = generation
    plan = SchedulePlan(status=status)
    if spec is None or problems:
        message = "; ".join(problems)
        status.conditions = set_condition(
            status.conditions, "InvalidSpec", True, "InvalidSpec", message, now, generation
        )
        status.message = f"invalid spec, nothing is scheduled: {message}"
        if not any(c.type == "InvalidSpec" and c.status == "True" for c in old.conditions):
            plan.events.append(Event("Warning", "InvalidSpec", message))
        return plan
    status.conditions = set_condition(
        status.conditions, "InvalidSpec", False, "Valid", "", now, generation
    )
    _Pass(obs, spec, plan).run()
    return plan


class _Pass:
    """The steps of one decision, sharing the observed state and the plan being built."""

    def __init__(self, obs: ScheduleObserved, spec: TrainingScheduleSpec, plan: SchedulePlan):
        self.obs, self.spec, self.plan, self.status = obs, spec, plan, plan.status
        self.meta = obs.body["metadata"]
        self.name: str = self.meta["name"]
        self.namespace: str = self.meta["namespace"]
        self.now = obs.now
        self.runs = sorted(obs.runs, key=lambda r: r.scheduled, reverse=True)  # newest first
        self.records = {r.name: r for r in self.status.runs}

    def run(self) -> None:
        self.judge_finished()
        self.look_at_data()
        self.start_due_run()
        self.trim_history()
        self.summarise()

    # --- finished runs ---------------------------------------------------------------------

    def judge_finished(self) -> None:
        for run in reversed(self.runs):  # oldest first: a later run competes with the new champion
            record = self.records.get(run.name)
            if record is None:
                record = self.records[run.name] = self._record(run)
            if not run.finished or record.result != "Running":
                continue
            verdict = judge(
                run.phase == "Succeeded",
                run.results,
                run.findings,
                self.status.champion,
                self.spec.promotion,
            )
            self._apply(run, record, verdict)

    def _record(self, run: Run) -> RunRecord:
        return RunRecord(
            name=run.name,
            scheduled_time=iso(run.scheduled),
            trigger=run.trigger,
            data_fingerprint=run.fingerprint,
        )

    def _apply(self, run: Run, record: RunRecord, verdict: Verdict) -> None:
        record.metric, record.baseline, record.reason = (
            verdict.metric,
            verdict.baseline,
            verdict.reason,
        )
        self.plan.results.append(
            "Failed"
            if run.phase != "Succeeded"
            else ("Promoted" if verdict.promote else "NotPromoted")
        )
        if run.phase != "Succeeded":
            record.result = "Failed"
            self.plan.events.append(Event("Warning", "RunFailed", f"run {run.name} failed"))
            return
        self.status.last_successful_time = iso(self.now)
        if not verdict.promote:
            record.result = "NotPromoted"
            self.plan.events.append(
                Event("Normal", "NotPromoted", f"run {run.name} is not promoted: {verdict.reason}")
            )
            return
        record.result = "Promoted"
        assert verdict.metric is not None
        champion = Champion(
            run=run.name,
            metric=verdict.metric,
            artifacts_uri=run.artifacts_uri or artifacts_uri(self.spec, self.namespace, run.name),
            data_fingerprint=run.fingerprint,
            promoted_at=iso(self.now),
        )
        if self.status.champion is not None:
            limit = self.spec.promotion.champion_history_limit
            self.status.champion_history = [self.status.champion, *self.status.champion_history][
                :limit
            ]
        self.status.champion = champion
        uri = pointer_uri(self.spec, self.namespace, self.name)
        if uri is not None:
            content = {
                "schedule": self.name,
                "namespace": self.namespace,
                **champion.model_dump(by_alias=True, exclude_none=True, mode="json"),
                "metricName": self.spec.promotion.metric,
                "direction": self.spec.promotion.direction,
                "baseline": verdict.baseline,
            }
            self.plan.pointer = Pointer(uri, content, self.spec.job_template.artifacts.s3_endpoint)
        self.plan.events.append(
            Event(
                "Normal", "ModelPromoted", f"run {run.name} is the new champion: {verdict.reason}"
            )
        )

    # --- triggers -----------------------------------------------------------------------------

    def look_at_data(self) -> None:
        if self.obs.data_error is not None:
            self.status.conditions = set_condition(
                self.status.conditions,
                "DataReachable",
                False,
                "DataUnreachable",
                self.obs.data_error,
                self.now,
                self.status.observed_generation,
            )
            self.status.data_checked_at = iso(self.now)
        elif self.obs.fingerprint is not None:
            self.status.conditions = set_condition(
                self.status.conditions,
                "DataReachable",
                True,
                "Fingerprinted",
                "",
                self.now,
                self.status.observed_generation,
            )
            self.status.data_fingerprint = self.obs.fingerprint
            self.status.data_checked_at = iso(self.now)

    def _since(self) -> dt.datetime:
        """The newest cron time already acted on (status, or the runs themselves)."""
        times = [
            parse_time(self.status.last_schedule_time),
            parse_time(self.meta.get("creationTimestamp")),
        ]
        times += [r.scheduled for r in self.runs if r.trigger == "schedule"]
        known = [t for t in times if t is not None]
        return max(known) if known else self.now

    def _cron_due(self) -> cron.Due | None:
        if self.spec.schedule is None:
            return None
        return cron.due(
            self.spec.schedule,
            self.spec.time_zone,
            self._since(),
            self.now,
            self.spec.starting_deadline_seconds,
        )

    def _data_due(self) -> bool:
        """The data changed since the newest run started (the first fingerprint starts one)."""
        if self.spec.new_data is None or self.status.data_fingerprint is None:
            return False
        newest = self.runs[0] if self.runs else None
        if newest is not None and newest.fingerprint == self.status.data_fingerprint:
            return False
        data_runs = [r for r in self.runs if r.trigger == "newData"]
        if data_runs:
            waited = (self.now - data_runs[0].scheduled).total_seconds()
            if waited < self.spec.new_data.min_interval_seconds:
                return False
        return True

    def start_due_run(self) -> None:
        due = self._cron_due()
        data = self._data_due()
        if self.spec.suspend:
            if due is not None:
                self.status.last_schedule_time = iso(due.time)
            return
        when: dt.datetime | None = None
        trigger: Trigger = "schedule"
        if due is not None:
            self.status.last_schedule_time = iso(due.time)
            if due.missed:
                self.plan.events.append(
                    Event(
                        "Warning",
                        "RunsMissed",
                        f"{due.missed} scheduled run(s) were missed while the operator was away; "
                        f"only the latest ({iso(due.time)}) is caught up",
                    )
                )
            if due.too_late:
                self.plan.events.append(
                    Event(
                        "Warning",
                        "RunSkipped",
                        f"the run scheduled at {iso(due.time)} is more than "
                        f"startingDeadlineSeconds ({self.spec.starting_deadline_seconds}) late; "
                        "skipped",
                    )
                )
            else:
                when = due.time
        if when is None and data:
            when, trigger = self.now.replace(second=0, microsecond=0), "newData"
        if when is None:
            return
        self._start(when, trigger, due is not None and not due.too_late and data)

    def _start(self, when: dt.datetime, trigger: Trigger, both: bool) -> None:
        name = run_name(self.name, when)
        if any(r.name == name for r in self.runs):
            return  # created by an earlier pass
        active = [r for r in self.runs if not r.finished]
        why = "new data" if trigger == "newData" else f"schedule {self.spec.schedule}"
        if both:
            why += " and new data"
        policy = self.spec.concurrency_policy
        if active and policy == "Forbid":
            self.plan.events.append(
                Event(
                    "Normal",
                    "RunSkipped",
                    f"{why}: run {active[0].name} is still active and concurrencyPolicy is Forbid",
                )
            )
            return
        if active and policy == "Replace":
            self.plan.delete += [r.name for r in active]
            self.plan.events.append(
                Event(
                    "Normal",
                    "RunReplaced",
                    f"{why}: deleting active run(s) {', '.join(r.name for r in active)} "
                    "(concurrencyPolicy Replace)",
                )
            )
        fingerprint = self.status.data_fingerprint
        champion = self.status.champion
        scores = None if champion is None else {self.spec.promotion.metric: champion.metric}
        job = build_run(
            self.obs.body, self.spec, when, trigger, fingerprint, self._warm_start(), scores
        )
        self.plan.create.append(job)
        self.plan.events.append(Event("Normal", "RunCreated", f"created run {name} ({why})"))
        self.records[name] = RunRecord(
            name=name, scheduled_time=iso(when), trigger=trigger, data_fingerprint=fingerprint
        )
        self.runs.insert(
            0, Run(name=name, scheduled=when, trigger=trigger, fingerprint=fingerprint)
        )

    def _warm_start(self) -> str | None:
        if self.spec.warm_start == "champion" and self.status.champion is not None:
            return self.status.champion.artifacts_uri
        if self.spec.warm_start == "latest":
            for run in self.runs:
                if run.phase == "Succeeded":
                    return run.artifacts_uri or artifacts_uri(self.spec, self.namespace, run.name)
        return None

    # --- history ------------------------------------------------------------------------------

    def trim_history(self) -> None:
        """Delete finished runs beyond the history limits, oldest first. Only runs whose verdict
        is already in the stored status go, so no verdict is lost with its run."""
        judged = {r.name: r.result for r in self.plan_status_before()}
        ok = [r for r in self.runs if judged.get(r.name) in ("Promoted", "NotPromoted")]
        failed = [r for r in self.runs if judged.get(r.name) == "Failed"]
        doomed = (
            ok[self.spec.successful_runs_history_limit :]
            + failed[self.spec.failed_runs_history_limit :]
        )
        for run in doomed:
            if run.name not in self.plan.delete:
                self.plan.delete.append(run.name)
        gone = set(self.plan.delete)
        self.runs = [r for r in self.runs if r.name not in gone]

    def plan_status_before(self) -> list[RunRecord]:
        return parse_schedule_status(self.obs.body.get("status")).runs

    # --- status -------------------------------------------------------------------------------

    def summarise(self) -> None:
        st, spec = self.status, self.spec
        st.runs = [self.records[r.name] for r in self.runs if r.name in self.records]
        st.active = [r.name for r in self.runs if not r.finished and r.name not in self.plan.delete]
        if self.runs:
            st.last_run = self.runs[0].name
            st.last_result = self.records[self.runs[0].name].result
        waits: list[float] = []
        if spec.schedule is not None and not spec.suspend:
            nxt = cron.next_after(spec.schedule, spec.time_zone, self.now)
            st.next_run = iso(nxt)
            waits.append((nxt - self.now).total_seconds() + 0.5)
        else:
            st.next_run = None
        if spec.new_data is not None and not spec.suspend:
            waits.append(float(max(spec.new_data.min_interval_seconds, 1)))
        if st.active:
            waits.append(ACTIVE_POLL_SECONDS)
        self.plan.requeue_after = min([*waits, MAX_REQUEUE]) if waits else None
        st.message = self._message()

    def _message(self) -> str:
        st = self.status
        if self.spec.suspend:
            return "suspended: no new runs"
        parts = []
        if st.active:
            parts.append(f"running {', '.join(st.active)}")
        if st.champion is not None:
            metric = self.spec.promotion.metric
            parts.append(f"champion {st.champion.run} ({metric} {st.champion.metric:.4g})")
        else:
            parts.append("no champion yet")
        if st.next_run:
            parts.append(f"next run {st.next_run}")
        return "; ".join(parts)
