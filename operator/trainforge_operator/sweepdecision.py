"""The level-triggered decision of one TrainingSweep pass, as a pure function: `decide_sweep`.

It reads the sweep and its trials (TrainingJobs labelled with the sweep's name) and returns a
`SweepPlan`: trials to create, trials to annotate (stop-reason `Pruned`, Optuna bookkeeping),
trials to delete (retention), the complete new status and the Events. The Optuna study is rebuilt
from the trials on every pass (trainforge_sweep), so nothing lives in the operator's memory: a
restarted operator decides exactly what the old one would have. Trial k is `<sweep>-<k>` and the
next k is one past the highest existing number, so a pass whose status write was lost recreates
the same names (AlreadyExists) instead of new trials.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from trainforge_api.base import API_VERSION
from trainforge_api.context import job_artifacts_uri
from trainforge_api.sweeprules import sweep_problems
from trainforge_api.trainingjob import KIND as JOB_KIND
from trainforge_api.trainingjob import STOP_ANNOTATION
from trainforge_api.trainingsweep import (
    SweepReport,
    TrainingSweepSpec,
    TrainingSweepStatus,
    TrialSummary,
)
from trainforge_operator.names import LABEL_MANAGED, MANAGED_BY, QUEUE_LABEL
from trainforge_operator.plan import Event, EventType
from trainforge_operator.status import iso, parse_time, set_condition
from trainforge_sweep import outcome, study
from trainforge_sweep.trials import (
    ATTRS_ANNOTATION,
    LABEL_SWEEP,
    LABEL_TRIAL,
    PRUNED,
    SWEEP_ENDED,
    TrialRecord,
    record_from_job,
    trial_name,
)

Obj = dict[str, Any]
ACTIVE_REQUEUE = 5.0  # look again this often while trials run (their watch events wake us too)
REPORT_FILE = "report.html"
REPORT_RETRY_SECONDS = 60.0  # a failed report upload is tried again after this long
REPORT_CONDITION = "ReportUploaded"


@dataclass(frozen=True)
class SweepObserved:
    body: Obj
    trials: list[Obj]  # this sweep's TrainingJobs
    warm: list[Obj]  # finished trials of the spec.warmStartFrom sweeps
    now: dt.datetime
    rejected: str | None = None  # the API server refused a trial built from this spec


@dataclass(frozen=True)
class ReportRequest:
    """Render the sweep report from these trials and write it at `uri` (the controller does the
    I/O, then `record_report` puts the outcome into the plan)."""

    spec: TrainingSweepSpec
    records: list[TrialRecord]
    uri: str
    endpoint: str | None
    finished_trials: int
    best_trial: str | None
    final: bool


@dataclass
class SweepPlan:
    create: list[Obj] = field(default_factory=list)
    annotate: dict[str, dict[str, str]] = field(default_factory=dict)  # trial -> annotations
    delete: list[str] = field(default_factory=list)
    status: TrainingSweepStatus = field(default_factory=TrainingSweepStatus)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    report: ReportRequest | None = None

    def event(self, type_: EventType, reason: str, message: str) -> None:
        self.events.append(Event(type_, reason, message))


def parse_sweep_status(raw: Obj | None) -> TrainingSweepStatus:
    known = {f.alias or n for n, f in TrainingSweepStatus.model_fields.items()}
    try:
        return TrainingSweepStatus.model_validate(
            {k: v for k, v in (raw or {}).items() if k in known}
        )
    except ValidationError:
        return TrainingSweepStatus()


@dataclass
class _Pass:
    obs: SweepObserved
    old: TrainingSweepStatus
    plan: SweepPlan

    @property
    def status(self) -> TrainingSweepStatus:
        return self.plan.status

    def condition(self, type_: str, value: bool, reason: str, message: str) -> None:
        self.status.conditions = set_condition(
            self.status.conditions,
            type_,
            value,
            reason,
            message,
            self.obs.now,
            self.status.observed_generation,
        )

    def finish(self, phase: str, reason: str, message: str) -> None:
        if self.old.phase != phase:  # Event Completed (or Failed); the condition says why
            failed = phase == "Failed"
            self.plan.event(
                "Warning" if failed else "Normal", phase if failed else "Completed",
                f"{message} ({reason})",
            )  # fmt: skip
        self.status.phase = "Failed" if phase == "Failed" else "Completed"
        self.status.message = message
        self.status.completion_time = self.status.completion_time or iso(self.obs.now)
        self.condition("Complete", True, reason, message)


def decide_sweep(obs: SweepObserved) -> SweepPlan:
    """The plan for one pass over one TrainingSweep."""
    old = parse_sweep_status(obs.body.get("status"))
    status = old.model_copy(deep=True)
    status.observed_generation = obs.body["metadata"].get("generation")
    p = _Pass(obs, old, SweepPlan(status=status))
    spec, problem = _read_spec(obs)
    if spec is None or problem:
        p.status.phase = "Failed"
        p.status.message = problem
        p.condition("InvalidSpec", True, "InvalidSpec", problem)
        if not _invalid(old):
            p.plan.event("Warning", "InvalidSpec", problem)
        return p.plan
    p.status.start_time = p.status.start_time or iso(obs.now)
    records = [r for r in (record_from_job(t, spec.objectives) for t in obs.trials) if r]
    try:
        _run(p, spec, records)
    except study.EngineError as err:
        p.status.phase = "Failed"
        p.status.message = str(err)
        p.condition("InvalidSpec", True, "InvalidSpec", str(err))
        if not _invalid(old):
            p.plan.event("Warning", "InvalidSpec", str(err))
        return p.plan
    if _invalid(old):  # the spec was fixed: the sweep goes on
        p.condition("InvalidSpec", False, "Valid", "the spec is valid")
    return p.plan


def _invalid(status: TrainingSweepStatus) -> bool:
    return any(c.type == "InvalidSpec" and c.status == "True" for c in status.conditions)


def _read_spec(obs: SweepObserved) -> tuple[TrainingSweepSpec | None, str]:
    try:
        spec = TrainingSweepSpec.model_validate(obs.body.get("spec") or {})
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        return None, f"spec.{where}: {first['msg']}"
    problems = sweep_problems(spec)
    if obs.rejected:
        problems.append(f"the API server rejected {obs.rejected}")
    return spec, "; ".join(problems)


def _finished(status: TrainingSweepStatus) -> bool:
    return status.phase in ("Completed", "Failed") and not _invalid(status)


def _run(p: _Pass, spec: TrainingSweepSpec, records: list[TrialRecord]) -> None:
    name = p.obs.body["metadata"]["name"]
    if _finished(p.old):
        # Finished: stop what still runs, then apply retention. Once retention deleted trials,
        # the status keeps the last full account instead of recounting what is left.
        _stop_active(p, records)
        if len(records) >= p.old.trials.total:
            built, index = study.rebuild(spec, name, records)
            _report(p, spec, records, built, index)
            _want_report(p, spec, records)
            _retain(p, spec, records, built, index)
        else:
            _retain(p, spec, records, None, None)
        return
    warm = [r for r in (record_from_job(t, spec.objectives) for t in p.obs.warm) if r]
    built, index = study.rebuild(spec, name, records, warm)
    records = _prune(p, spec, built, index, records)
    started = parse_time(p.status.start_time)
    elapsed = (p.obs.now - started).total_seconds() if started else None
    ending = outcome.ending(spec, records, elapsed)
    if ending is not None:
        p.finish(ending.phase, ending.reason, ending.message)
        _stop_active(p, records)
        _report(p, spec, records, built, index)
        _want_report(p, spec, records)
        _retain(p, spec, records, built, index)
        return
    records = records + _create(p, spec, built, records)
    p.status.phase = "Running"
    c = outcome.counts(spec, records)
    p.status.message = f"{c.done} trials finished, {c.running + c.pending} running"
    p.condition("Complete", False, "Searching", p.status.message)
    _report(p, spec, records, built, index)
    p.plan.requeue_after = ACTIVE_REQUEUE
    if spec.max_runtime_seconds is not None and elapsed is not None:
        left = spec.max_runtime_seconds - elapsed
        p.plan.requeue_after = max(0.5, min(ACTIVE_REQUEUE, left))
    _want_report(p, spec, records)


def _prune(
    p: _Pass, spec: TrainingSweepSpec, built: Any, index: dict[int, int], records: list[TrialRecord]
) -> list[TrialRecord]:
    """Ask the pruner about every running trial; stop the ones it prunes."""
    running = [r for r in records if r.state == "Running"]
    pruned, changed = study.prune_verdicts(built, index, running)
    for number, attrs in changed.items():
        name = trial_name(p.obs.body["metadata"]["name"], number)
        p.plan.annotate.setdefault(name, {})[ATTRS_ANNOTATION] = json.dumps(attrs, sort_keys=True)
    out: list[TrialRecord] = []
    for r in records:
        if r.number in pruned:
            p.plan.annotate.setdefault(r.name, {})[STOP_ANNOTATION] = PRUNED
            step = r.last_step
            p.plan.event(
                "Normal",
                "TrialPruned",
                f"{r.name} pruned at step {step} ({spec.early_stopping.type})",
            )
            r = dataclasses.replace(r, state="Pruned")
        out.append(r)
    return out


def _create(
    p: _Pass, spec: TrainingSweepSpec, built: Any, records: list[TrialRecord]
) -> list[TrialRecord]:
    n = outcome.wanted(spec, records)
    if n == 0:
        return []
    first = max((r.number for r in records), default=-1) + 1
    new: list[TrialRecord] = []
    for s in study.suggest(built, spec, list(range(first, first + n))):
        body = build_trial(p.obs.body, spec, s.number, s.params, s.system_attrs)
        p.plan.create.append(body)
        name = body["metadata"]["name"]
        shown = ", ".join(f"{k}={_short(v)}" for k, v in s.params.items())
        p.plan.event("Normal", "TrialCreated", f"{name}: {shown}")
        new.append(TrialRecord(s.number, name, body["spec"]["hyperparameters"], "Pending"))
    return new


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _stop_active(p: _Pass, records: list[TrialRecord]) -> None:
    """A finished sweep stops the trials still running (not failures: SweepEnded)."""
    for r in records:
        if r.active:
            p.plan.annotate.setdefault(r.name, {})[STOP_ANNOTATION] = SWEEP_ENDED


def _retain(
    p: _Pass,
    spec: TrainingSweepSpec,
    records: list[TrialRecord],
    built: Any,
    index: dict[int, int] | None,
) -> None:
    """spec.retention, applied once the sweep finished and its trials stopped: keep all, the best
    trial (the Pareto front for several objectives, or what status already lists), or none."""
    if spec.retention == "All" or any(r.active for r in records):
        return
    keep: set[str] = set()
    if spec.retention == "Best":
        if built is not None:
            board = outcome.leaderboard(spec, records, built, index)
            keep = {s.name for s in (board if spec.multi_objective else board[:1])}
        else:
            listed = p.old.leaderboard if spec.multi_objective else [p.old.best_trial]
            keep = {s.name for s in listed if s is not None}
    p.plan.delete = [r.name for r in records if r.name not in keep]


def _report(
    p: _Pass,
    spec: TrainingSweepSpec,
    records: list[TrialRecord],
    built: Any,
    index: dict[int, int] | None,
) -> None:
    """Counts, the best trial (NewBest when it changed), the leaderboard or Pareto front."""
    p.status.trials = outcome.counts(spec, records)
    board = outcome.leaderboard(spec, records, built, index)
    if board or built is not None:
        p.status.leaderboard = board
    best: TrialSummary | None = board[0] if board and not spec.multi_objective else None
    if best is not None:
        p.status.best_trial = best
        if p.old.best_trial is None or p.old.best_trial.name != best.name:
            p.plan.event("Normal", "NewBest", f"{best.name}: {spec.objective.metric}={best.value}")
    p.status.trials_without_improvement = outcome.without_improvement(spec, records)


def report_uri(spec: TrainingSweepSpec, namespace: str, sweep: str) -> str | None:
    """Next to the trials' artifacts (`<artifacts.uri>/<ns>/<sweep>-<k>/`):
    `<artifacts.uri>/<ns>/<sweep>/report.html`; None when the template uploads no artifacts."""
    base = job_artifacts_uri(spec.trial_template.artifacts.uri, namespace, sweep)
    return None if base is None else base + REPORT_FILE


def _want_report(p: _Pass, spec: TrainingSweepSpec, records: list[TrialRecord]) -> None:
    """Ask for a report upload when the uploaded one is stale: the best trial changed, or the
    sweep ended (and the final account differs). A failed upload waits REPORT_RETRY_SECONDS."""
    meta = p.obs.body["metadata"]
    uri = report_uri(spec, meta["namespace"], meta["name"])
    c = p.status.trials
    finished = outcome.finished(c)
    if uri is None or finished == 0:
        return
    best = p.status.best_trial.name if p.status.best_trial else None
    final = p.status.phase in ("Completed", "Failed")
    have = p.old.report
    if (
        have is not None
        and have.upload_time is not None
        and have.uri == uri
        and have.best_trial == best
        and (not final or (have.final and have.finished_trials == finished))
    ):
        return
    tried = parse_time(have.last_attempt_time) if have is not None else None
    if tried is not None and _report_failing(p.old):
        wait = REPORT_RETRY_SECONDS - (p.obs.now - tried).total_seconds()
        if wait > 0:
            p.plan.requeue_after = min(p.plan.requeue_after or wait, wait)
            return
    endpoint = spec.trial_template.artifacts.s3_endpoint
    p.plan.report = ReportRequest(spec, records, uri, endpoint, finished, best, final)


def _report_failing(status: TrainingSweepStatus) -> bool:
    return any(c.type == REPORT_CONDITION and c.status == "False" for c in status.conditions)


def record_report(plan: SweepPlan, old: Obj | None, now: dt.datetime, error: str | None) -> None:
    """Put the outcome of `plan.report`'s upload into the plan: status.report, the
    ReportUploaded condition, and an Event (a failure: once, when it starts failing)."""
    request = plan.report
    if request is None:
        return
    status = plan.status
    before = parse_sweep_status(old)
    if error is None:
        status.report = SweepReport(
            uri=request.uri,
            finished_trials=request.finished_trials,
            best_trial=request.best_trial,
            final=request.final,
            upload_time=iso(now),
            last_attempt_time=iso(now),
        )
        best = f", best {request.best_trial}" if request.best_trial else ""
        message = f"{request.uri} ({request.finished_trials} finished trials{best})"
        status.conditions = set_condition(
            status.conditions, REPORT_CONDITION, True, "Uploaded", message, now,
            status.observed_generation,
        )  # fmt: skip
        plan.event("Normal", "ReportUploaded", message)
        return
    kept = before.report or SweepReport(uri=request.uri)
    status.report = kept.model_copy(update={"last_attempt_time": iso(now)})
    message = (
        f"cannot write the sweep report to {request.uri}: {error}. The operator writes it with "
        "its own storage credentials (chart value operator.storageCredentialsSecret, a Secret with "
        "AWS_* keys) to spec.trialTemplate.artifacts; it tries again every "
        f"{REPORT_RETRY_SECONDS:.0f}s"
    )
    status.conditions = set_condition(
        status.conditions, REPORT_CONDITION, False, "UploadFailed", message, now,
        status.observed_generation,
    )  # fmt: skip
    if not _report_failing(before):
        plan.event("Warning", "ReportUploadFailed", message)
    retry = REPORT_RETRY_SECONDS
    plan.requeue_after = retry if plan.requeue_after is None else min(plan.requeue_after, retry)


def build_trial(
    sweep: Obj, spec: TrainingSweepSpec, number: int, params: dict[str, Any], attrs: dict[str, Any]
) -> Obj:
    """Trial `number` of the sweep: the template with the sampled params in its hyperparameters
    (typed values, no templating), owned by the sweep, carrying its Kueue queue label."""
    meta = sweep["metadata"]
    # The template as written (the API server applies the defaults, as for any TrainingJob).
    body = spec.trial_template.model_dump(
        by_alias=True, exclude_none=True, exclude_unset=True, mode="json"
    )
    body["hyperparameters"] = {**body.get("hyperparameters", {}), **params}
    labels = {LABEL_SWEEP: meta["name"], LABEL_TRIAL: str(number), LABEL_MANAGED: MANAGED_BY}
    queue = (meta.get("labels") or {}).get(QUEUE_LABEL)
    if queue:
        labels[QUEUE_LABEL] = queue
    annotations = {ATTRS_ANNOTATION: json.dumps(attrs, sort_keys=True)} if attrs else {}
    return {
        "apiVersion": API_VERSION,
        "kind": JOB_KIND,
        "metadata": {
            "name": trial_name(meta["name"], number),
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": sweep.get("apiVersion", API_VERSION),
                    "kind": sweep.get("kind", "TrainingSweep"),
                    "name": meta["name"],
                    "uid": meta.get("uid", ""),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": body,
    }
