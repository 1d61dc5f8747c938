"""The level-triggered reconcile decision, as one pure function.

`decide(observed, config)` looks at a TrainingJob and its actual children and returns a `Plan`:
children to create, pods to delete, whether to delete the job (TTL), the complete new status and
the Events to send after the status write. It never calls the API or reads the clock (`now` is
observed), so every policy (restart, deadlines, suspension, hang detection) is unit-tested as a
table of observed states. The controller carries the plan out (`Controller.execute`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

from trainforge_api.context import InvalidSpecError, parse_spec
from trainforge_api.progress import percent_done
from trainforge_api.trainingjob import (
    TERMINAL_PHASES,
    ArtifactSummary,
    Finding,
    LastFailure,
    Phase,
    Progress,
    TrainingJobSpec,
)
from trainforge_operator import builders, names
from trainforge_operator.config import OperatorConfig
from trainforge_operator.plan import Event, EventType, Observed, Plan
from trainforge_operator.policies import (
    PodFailure,
    backoff_seconds,
    classify,
    pod_failure,
    root_cause,
    terminated_state,
    termination_summary,
)
from trainforge_operator.status import (
    condition_true,
    count_workers,
    human_duration,
    iso,
    parse_progress,
    parse_status,
    parse_time,
    set_condition,
)

Obj = dict[str, Any]

PENDING_REQUEUE = 2.0
# How long a failure that is only fallout of a peer's death waits for that peer's own status
# (kubelets report on their own schedule), so the job is blamed on the rank that really failed.
PEER_FALLOUT_GRACE_S = 20.0


def _label_int(pod: Obj, key: str) -> int | None:
    value = (pod["metadata"].get("labels") or {}).get(key)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _terminating(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def _pod_phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def _scheduling_message(pods: list[Obj]) -> str:
    """The scheduler's reason from the first unschedulable pod (names the short resource)."""
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        for c in (pod.get("status") or {}).get("conditions") or []:
            if c.get("type") == "PodScheduled" and c.get("status") == "False":
                msg = c.get("message") or c.get("reason") or "unschedulable"
                return f"pod {pod['metadata']['name']} is unschedulable: {msg}"
    return ""


def _container_waiting_message(pods: list[Obj]) -> str:
    """Why a scheduled container does not start (image pull, missing secret or config map)."""
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason and reason != "ContainerCreating":
                detail = f" ({waiting['message']})" if waiting.get("message") else ""
                return (
                    f"pod {pod['metadata']['name']} container {cs.get('name', '')} is waiting: "
                    f"{reason}{detail}"
                )
    return ""


def _scheduled(pod: Obj) -> bool:
    if (pod.get("spec") or {}).get("nodeName"):
        return True
    return any(
        c.get("type") == "PodScheduled" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


class _Reconciler:
    """One reconcile pass; methods mutate `self.plan`/`self.status`, then `decide` returns."""

    def __init__(self, obs: Observed, config: OperatorConfig) -> None:
        self.obs = obs
        self.config = config
        self.now = obs.now
        meta = obs.body.get("metadata", {})
        self.generation: int | None = meta.get("generation")
        self.job = builders.JobRef.from_body(obs.body)
        self.old = parse_status(obs.body.get("status"))
        self.status = self.old.model_copy(deep=True)
        self.status.observed_generation = self.generation
        self.plan = Plan()
        self.pods = [p for p in obs.pods if not _terminating(p)]

    # --- helpers --------------------------------------------------------------------------------

    def cond(self, type_: str, value: bool, reason: str, message: str = "") -> None:
        self.status.conditions = set_condition(
            self.status.conditions, type_, value, reason, message, self.now, self.generation
        )

    def event(self, type_: EventType, reason: str, message: str) -> None:
        self.plan.events.append(Event(type_, reason, message))

    def set_phase(self, phase: Phase, message: str) -> None:
        self.status.phase = phase
        self.status.message = message

    def delete(self, pods: list[Obj]) -> None:
        for pod in pods:
            name = pod["metadata"]["name"]
            if not _terminating(pod) and name not in self.plan.delete_pods:
                self.plan.delete_pods.append(name)

    def cleanup(self, policy: str) -> None:
        """Delete pods of a finished job per cleanPodPolicy (Running, All or None)."""
        if policy == "All":
            self.delete(self.pods)
        elif policy == "Running":
            # A pod whose container already exited is finished even while its phase still says
            # Running (the kubelet reports on its own schedule): keep it, and its logs.
            self.delete(
                [
                    p
                    for p in self.pods
                    if _pod_phase(p) not in ("Succeeded", "Failed") and terminated_state(p) is None
                ]
            )

    def fail(
        self, reason: str, message: str, policy: str, failure: PodFailure | None = None
    ) -> None:
        if failure is not None:
            self.status.last_failure = self._last_failure(failure)
        self.set_phase("Failed", message)
        self.status.completion_time = iso(self.now)
        self.status.restart_after = None
        self.cond("Failed", True, reason, message)
        self.cond("PodsReady", False, reason, message)
        if condition_true(self.status.conditions, "Restarting"):
            self.cond("Restarting", False, reason, message)
        self.cleanup(policy)
        self.event("Warning", reason, message)
        self.plan.failed_reason = reason
        self._requeue_ttl()

    def _last_failure(self, f: PodFailure) -> LastFailure:
        return LastFailure(
            pod=f.pod,
            container=f.container,
            exit_code=f.exit_code,
            signal=f.signal,
            reason=f.reason,
            message=f.message,
            attempt=self.status.attempt,
        )

    def _requeue_ttl(self) -> None:
        spec = self._spec_or_none()
        ttl = spec.run_policy.ttl_seconds_after_finished if spec else None
        done = parse_time(self.status.completion_time)
        if ttl is None or done is None:
            return
        remaining = (done - self.now).total_seconds() + ttl
        if remaining <= 0:
            self.plan.delete_job = True
        else:
            self.plan.requeue_after = remaining

    def _spec_or_none(self) -> TrainingJobSpec | None:
        try:
            return parse_spec(self.obs.body)
        except InvalidSpecError:
            return None

    # --- the pass -------------------------------------------------------------------------------

    def run(self) -> Plan:
        self.status.workers = count_workers(self.pods)
        if self.old.phase in TERMINAL_PHASES:
            self.finished()
        elif self.obs.rejected:
            self.invalid(f"the API server rejected {self.obs.rejected}")
        else:
            try:
                spec = parse_spec(self.obs.body)
                self.config.pool(spec.node_pool)
            except (InvalidSpecError, KeyError) as err:
                self.invalid(str(err).strip("\"'"))
            else:
                self.active(spec)
        self.plan.status = self.status
        return self.plan

    def finished(self) -> None:
        spec = self._spec_or_none()
        self.cleanup(spec.run_policy.clean_pod_policy if spec else "Running")
        self._requeue_ttl()

    def invalid(self, message: str) -> None:
        text = f"invalid spec: {message}"
        self.cond("InvalidSpec", True, "InvalidSpec", text)
        self.fail("InvalidSpec", text, "All")

    def active(self, spec: TrainingJobSpec) -> None:
        if spec.run_policy.suspend:
            self.suspend()
            return
        if self.old.phase == "Suspended":
            self.cond("Suspended", False, "Resumed", "the job was resumed")
            self.event("Normal", "Resumed", "job resumed: recreating the gang")
            self.set_phase("Pending", "resumed")
        if self.status.phase is None:
            self.set_phase("Pending", "creating the gang")
        if self.status.start_time is None:
            self.status.start_time = iso(self.now)
        if not self.obs.has_service:
            self.plan.create.append(builders.build_service(self.job))
        context = builders.build_configmap(self.job, spec, self.config)
        if not self.obs.has_configmap:
            self.plan.create.append(context)
        elif self.obs.configmap_data is not None and self.obs.configmap_data != context["data"]:
            # Spec edited (e.g. while suspended): the next gang must read the new context.
            self.plan.update.append(context)
        if self._deadline_exceeded(spec):
            return
        attempt = self.status.attempt
        stale = [p for p in self.obs.pods if _label_int(p, names.LABEL_ATTEMPT) != attempt]
        self.delete(stale)
        current = [p for p in self.pods if _label_int(p, names.LABEL_ATTEMPT) == attempt]
        if self.old.phase == "Restarting":
            self.restarting(spec, current)
            return
        if self._failed(spec, current):
            return
        self.progressing(spec, current, blocked=bool(stale))

    def suspend(self) -> None:
        self.delete(self.obs.pods)
        if self.old.phase != "Suspended":
            self.event("Normal", "Suspended", "job suspended: worker pods deleted")
        self.set_phase("Suspended", "suspended (spec.runPolicy.suspend is true)")
        self.cond("Suspended", True, "Suspended", "spec.runPolicy.suspend is true")
        self.cond("PodsReady", False, "Suspended", "the job is suspended")
        self.status.start_time = None
        self.status.running_time = None
        self.status.restart_after = None

    def _deadline_exceeded(self, spec: TrainingJobSpec) -> bool:
        deadline = spec.run_policy.active_deadline_seconds
        started = parse_time(self.status.start_time)
        if deadline is None or started is None:
            return False
        elapsed = (self.now - started).total_seconds()
        if elapsed <= deadline:
            self._requeue(deadline - elapsed)
            return False
        self.fail(
            "DeadlineExceeded",
            f"the job ran {int(elapsed)}s, longer than runPolicy.activeDeadlineSeconds={deadline}",
            spec.run_policy.clean_pod_policy,
        )
        return True

    def _requeue(self, seconds: float) -> None:
        seconds = max(seconds, 0.5)
        if self.plan.requeue_after is None or seconds < self.plan.requeue_after:
            self.plan.requeue_after = seconds

    def restart(self, spec: TrainingJobSpec, failure: PodFailure, reason: str) -> None:
        """Gang restart after a retryable failure, or Failed when restarts are exhausted."""
        policy = spec.run_policy
        if self.status.restarts >= policy.max_restarts:
            self.fail(
                "MaxRestartsExceeded",
                f"{failure.describe()}; the gang was already restarted {self.status.restarts} "
                f"times (runPolicy.maxRestarts={policy.max_restarts})",
                policy.clean_pod_policy,
                failure,
            )
            return
        delay = backoff_seconds(self.status.restarts, policy)
        self.status.last_failure = self._last_failure(failure)
        self.status.restarts += 1
        self.status.restart_after = iso(self.now + dt.timedelta(seconds=delay))
        self.status.running_time = None
        if self.status.progress is not None:
            self.status.progress.last_advance_time = None
        message = (
            f"attempt {self.status.attempt} failed: {failure.describe()}; restarting the gang in "
            f"{human_duration(delay)} (restart {self.status.restarts} of {policy.max_restarts})"
        )
        self.set_phase("Restarting", message)
        self.cond("Restarting", True, reason, message)
        self.cond("PodsReady", False, reason, message)
        self.delete(self.obs.pods)
        self.event("Warning", "Restarting", message)
        self.plan.restarted = True
        self._requeue(delay)

    def restarting(self, spec: TrainingJobSpec, current: list[Obj]) -> None:
        """Wait until the old gang is gone and the backoff elapsed, then create attempt+1."""
        self.delete(current)
        if self.obs.pods:
            self._requeue(1.0)
            return
        after = parse_time(self.status.restart_after)
        if after is not None and self.now < after:
            self._requeue((after - self.now).total_seconds())
            return
        self.status.attempt += 1
        self.status.restart_after = None
        self.cond("Restarting", False, "GangRecreated", f"attempt {self.status.attempt} created")
        self.set_phase("Pending", f"attempt {self.status.attempt}: creating the gang")
        self.event("Normal", "GangRecreated", f"created attempt {self.status.attempt}")
        self.plan.create.extend(
            builders.build_gang(self.job, spec, self.config, self.status.attempt)
        )
        self.status.workers = count_workers([])
        self._requeue(PENDING_REQUEUE)

    def _failed(self, spec: TrainingJobSpec, current: list[Obj]) -> bool:
        failures = [f for f in (pod_failure(p) for p in current) if f is not None]
        if not failures:
            return self._lost_member(spec, current)
        cause = root_cause(failures)
        if cause.peer_fallout and self._awaiting_culprit(cause, failures, current):
            return True
        if classify(cause, spec.run_policy) == "permanent":
            self.absorb_summary(current)
            self.fail(
                "WorkerFailed",
                f"{cause.describe()} (a permanent failure: not restarted)",
                spec.run_policy.clean_pod_policy,
                cause,
            )
        else:
            self.restart(spec, cause, "WorkerFailed")
        return True

    def _awaiting_culprit(
        self, fallout: PodFailure, failures: list[PodFailure], current: list[Obj]
    ) -> bool:
        """Only victims of a peer's death failed so far while other workers still look alive:
        wait (briefly) for the culprit's status before deciding."""
        failed = {f.pod for f in failures}
        alive = [
            p
            for p in current
            if p["metadata"]["name"] not in failed and _pod_phase(p) != "Succeeded"
        ]
        finished = parse_time(fallout.finished_at)
        if not alive or finished is None:
            return False
        waited = (self.now - finished).total_seconds()
        if waited >= PEER_FALLOUT_GRACE_S:
            return False
        self._requeue(PEER_FALLOUT_GRACE_S - waited)
        return True

    def _lost_member(self, spec: TrainingJobSpec, current: list[Obj]) -> bool:
        """A running gang that lost a pod (deleted, node gone) restarts as a whole."""
        if self.old.phase != "Running":
            return False
        present = {_label_int(p, names.LABEL_INDEX) for p in current}
        missing = [i for i in range(spec.parallelism.nodes) if i not in present]
        if not missing:
            return False
        lost = PodFailure(
            pod=names.worker_name(self.job.name, missing[0]),
            container="",
            exit_code=None,
            signal=None,
            reason="PodDeleted",
            message="the pod disappeared while the gang was running",
            finished_at="",
            disrupted=True,
        )
        self.restart(spec, lost, "WorkerLost")
        return True

    def progressing(self, spec: TrainingJobSpec, current: list[Obj], blocked: bool) -> None:
        nodes = spec.parallelism.nodes
        present = {_label_int(p, names.LABEL_INDEX) for p in current}
        if not blocked:
            for i in range(nodes):
                if i not in present:
                    self.plan.create.append(
                        builders.build_worker_pod(
                            self.job, spec, self.config, i, self.status.attempt
                        )
                    )
        if self.plan.create and not condition_true(self.status.conditions, "Created"):
            self.cond("Created", True, "ChildrenCreated", "service, context and pods created")
            self.event("Normal", "Created", f"created the gang of {nodes} worker pods")
        phases = [_pod_phase(p) for p in current]
        if len(current) == nodes and all(ph == "Succeeded" for ph in phases):
            self.succeed(spec, current)
            return
        if len(current) == nodes and all(ph in ("Running", "Succeeded") for ph in phases):
            self.running(spec, current)
            return
        self.waiting(spec, current)

    def absorb_summary(self, current: list[Obj]) -> None:
        """Final metrics, artifacts and findings from rank 0's termination message, if any."""
        rank0 = next((p for p in current if _label_int(p, names.LABEL_INDEX) == 0), None)
        summary = (termination_summary(rank0) if rank0 is not None else None) or {}
        metrics = summary.get("metrics")
        if isinstance(metrics, dict):
            self.status.results = metrics
        arts = summary.get("artifacts")
        if isinstance(arts, dict):
            known = {k: arts[k] for k in ("uri", "files", "bytes") if k in arts}
            with contextlib.suppress(ValueError):
                self.status.artifacts = ArtifactSummary.model_validate(known)
        self._absorb_final_progress(summary)
        findings = summary.get("findings")
        if isinstance(findings, list) and findings:
            with contextlib.suppress(ValueError):
                self.status.findings = [
                    Finding.model_validate(
                        {k: f[k] for k in ("rule", "step", "message", "action") if k in f}
                    )
                    for f in findings
                    if isinstance(f, dict)
                ]

    def _absorb_final_progress(self, summary: Obj) -> None:
        """The last step (and the checkpoint step it resumed from) as rank 0 reported them on
        exit: the final word, even when the run ended between two progress polls."""
        step = summary.get("step")
        if not isinstance(step, int):
            return
        progress = self.status.progress or Progress()
        progress.step = step
        total = summary.get("totalSteps")
        if isinstance(total, int) and total > 0:
            progress.total_steps = total
            progress.percent = percent_done(step, total)
        resumed = summary.get("resumedFromStep")
        if isinstance(resumed, int):
            progress.resumed_from_step = resumed
        progress.eta_seconds, progress.eta = None, None
        self.status.progress = progress

    def succeed(self, spec: TrainingJobSpec, current: list[Obj]) -> None:
        self.absorb_summary(current)
        message = f"all {len(current)} workers completed with exit code 0"
        self.set_phase("Succeeded", message)
        self.status.completion_time = iso(self.now)
        self.cond("Succeeded", True, "AllWorkersSucceeded", message)
        self.cond("PodsReady", False, "Completed", message)
        self.cleanup(spec.run_policy.clean_pod_policy)
        self.event("Normal", "Succeeded", message)
        self._requeue_ttl()

    def running(self, spec: TrainingJobSpec, current: list[Obj]) -> None:
        if self.old.phase != "Running":
            self.event("Normal", "Running", f"all {len(current)} workers are running")
            created = [parse_time(p["metadata"].get("creationTimestamp")) for p in current]
            first = min((c for c in created if c is not None), default=None)
            if first is not None:
                self.plan.time_to_running = (self.now - first).total_seconds()
        if self.status.running_time is None:
            self.status.running_time = iso(self.now)
        self.set_phase("Running", f"attempt {self.status.attempt}: all workers running")
        self.cond("PodsReady", True, "AllWorkersRunning", "all worker pods are running")
        if self.obs.progress is not None:
            progress, findings = parse_progress(self.obs.progress, self.status.progress, self.now)
            self.status.progress = progress
            self.status.findings = findings
        self._requeue(self.config.progress_interval_seconds)
        self.check_stall(spec)

    def check_stall(self, spec: TrainingJobSpec) -> None:
        timeout = spec.run_policy.progress_timeout_seconds
        if timeout is None:
            return
        marks = [
            parse_time(self.status.running_time),
            parse_time(self.status.progress.last_advance_time if self.status.progress else None),
        ]
        since = max((m for m in marks if m is not None), default=None)
        if since is None:
            return
        idle = (self.now - since).total_seconds()
        if idle <= timeout:
            if condition_true(self.status.conditions, "Stalled"):
                self.cond("Stalled", False, "Progressing", "the step advances again")
            self._requeue(timeout - idle + 0.5)
            return
        step = self.status.progress.step if self.status.progress else None
        at = f"step {step}" if step is not None else "no step reported"
        message = (
            f"no training progress for {int(idle)}s ({at}; "
            f"runPolicy.progressTimeoutSeconds={timeout})"
        )
        self.cond("Stalled", True, "ProgressTimeout", message)
        self.event("Warning", "Stalled", message)
        stall = PodFailure(
            pod=names.worker_name(self.job.name, 0),
            container=names.CONTAINER,
            exit_code=None,
            signal=None,
            reason="Stalled",
            message=message,
            finished_at="",
            disrupted=False,
        )
        if spec.run_policy.on_stall == "fail":
            self.fail("Stalled", message, spec.run_policy.clean_pod_policy, stall)
        else:
            self.restart(spec, stall, "Stalled")

    def waiting(self, spec: TrainingJobSpec, current: list[Obj]) -> None:
        nodes = spec.parallelism.nodes
        all_scheduled = len(current) == nodes and all(_scheduled(p) for p in current)
        phase: Phase = "Starting" if all_scheduled else "Pending"
        sched = _scheduling_message(current) or _container_waiting_message(current)
        ready = sum(1 for p in current if _pod_phase(p) in ("Running", "Succeeded"))
        message = sched or f"attempt {self.status.attempt}: {ready}/{nodes} workers running"
        self.set_phase(phase, message)
        self.cond("PodsReady", False, "WaitingForWorkers", message)
        self._requeue(PENDING_REQUEUE)
        limit = spec.run_policy.max_pending_seconds
        if limit is None:
            return
        created = [parse_time(p["metadata"].get("creationTimestamp")) for p in current]
        first = min((c for c in created if c is not None), default=None)
        if first is None:
            return
        waited = (self.now - first).total_seconds()
        if waited <= limit:
            self._requeue(limit - waited + 0.5)
            return
        detail = sched or f"only {ready}/{nodes} workers were running"
        self.fail(
            "PendingTimeout",
            f"the gang was not running within runPolicy.maxPendingSeconds={limit}: {detail}",
            spec.run_policy.clean_pod_policy,
        )
        # A job that never ran leaves no pods behind, whatever cleanPodPolicy says.
        self.delete(self.pods)


def decide(observed: Observed, config: OperatorConfig) -> Plan:
    """Compute the plan for one reconcile of one TrainingJob (pure)."""
    return _Reconciler(observed, config).run()
