"""Failure: which pod failed and why, whose fault it was, and whether the gang restarts.

Any failed pod fails the gang. The root cause is the failed container that terminated first,
looking past ranks that only fell over because a peer went away. The failure policy's rules
(`failure_rules.py`, docs/failure-policy.md) give it an action: Fail names pod, container and
exit code; Restart restarts the whole gang after an exponential backoff, counted against
`runPolicy.maxRestarts`; RestartIgnoringMax does the same without counting (the default for
preemption, eviction and node loss); Ignore recreates the gang after the base backoff and counts
it nowhere. The defaults reproduce the classification of docs/architecture.md.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

from trainforge_api import termination
from trainforge_api.exitcodes import TRANSIENT, UPLOAD_FAILED
from trainforge_api.trainingjob import LastFailure, RunPolicy, TrainingJobSpec
from trainforge_operator import builders, pods
from trainforge_operator.names import worker_name
from trainforge_operator.policies import failure_rules, recovered, success, ttl
from trainforge_operator.policies.failure_rules import Verdict
from trainforge_operator.policies.state import PENDING_REQUEUE, Pass
from trainforge_operator.status import (
    condition_true,
    count_workers,
    human_duration,
    iso,
    parse_time,
)

Obj = dict[str, Any]
FailureClass = Literal["retryable", "permanent"]

DISRUPTION_REASONS = frozenset({"Evicted", "Preempting", "Preempted", "NodeLost", "Shutdown"})
# How long a failure that is only fallout of a peer's death waits for that peer's own status
# (kubelets report on their own schedule), so the job is blamed on the rank that really failed.
PEER_FALLOUT_GRACE_S = 20.0
# How soon to look again while the failed gang's pods are being deleted.
GANG_DELETION_REQUEUE = 1.0


@dataclass(frozen=True)
class PodFailure:
    """Why one worker pod failed, from its status."""

    pod: str
    container: str
    exit_code: int | None
    signal: int | None
    reason: str
    message: str
    finished_at: str
    disrupted: bool
    # The runtime said this rank failed only because a peer went away (exitReason PeerFailure):
    # fallout, not a cause, unless nothing else failed.
    peer_fallout: bool = False
    # What the failure-policy rules match on (failure_rules.Facts).
    facts: failure_rules.Facts = field(default_factory=failure_rules.Facts)

    def describe(self) -> str:
        """Human sentence naming the pod, container and exit code or signal."""
        where = f"pod {self.pod}" + (f" container {self.container}" if self.container else "")
        if self.signal is not None:
            what = f"was killed by signal {self.signal}"
            if self.exit_code is not None:
                what += f" (exit code {self.exit_code})"
        elif self.exit_code is not None:
            what = f"exited with code {self.exit_code}"
        else:
            what = "failed"
        why = f": {self.reason}" if self.reason else ""
        detail = f" ({self.message})" if self.message and self.disrupted else ""
        return f"{where} {what}{why}{detail}"


# --- reading a failure from a pod -------------------------------------------------------------


def _disrupted(pod: Obj) -> bool:
    status = pod.get("status") or {}
    if status.get("reason") in DISRUPTION_REASONS:
        return True
    return any(
        c.get("type") == "DisruptionTarget" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _failed_container(pod: Obj) -> Obj | None:
    """The terminated state of the first container that exited non-zero, init containers (the
    dataset initializer) first: a pod whose init container failed never ran its worker."""
    status = pod.get("status") or {}
    for cs in [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]:
        term = (cs.get("state") or {}).get("terminated")
        if term and term.get("exitCode", 0) != 0:
            return dict(term, name=cs.get("name", ""))
    return None


def pod_failure(pod: Obj) -> PodFailure | None:
    """A PodFailure when the pod failed (phase Failed or a container exited non-zero)."""
    status = pod.get("status") or {}
    term = _failed_container(pod)
    if term is None and status.get("phase") != "Failed":
        return None
    if term is None:
        gone = failure_rules.disruption(pod)
        return PodFailure(
            pod=pods.name(pod),
            container="",
            exit_code=None,
            signal=None,
            reason=gone.reason if gone else status.get("reason") or "PodFailed",
            message=(gone.message if gone else status.get("message") or "")[:512],
            finished_at="",
            disrupted=_disrupted(pod),
            facts=failure_rules.facts(pod, None),
        )
    code = term.get("exitCode")
    signal = term.get("signal")
    if signal is None and isinstance(code, int) and code > 128:
        signal = code - 128
    text = term.get("message") or status.get("message") or ""
    reported = termination.decode(text)
    return PodFailure(
        pod=pods.name(pod),
        container=term.get("name", ""),
        exit_code=code,
        signal=signal,
        reason=term.get("reason") or status.get("reason") or "Error",
        message=termination.describe(text, reported),
        finished_at=term.get("finishedAt") or "",
        disrupted=_disrupted(pod),
        peer_fallout=termination.is_peer_fallout(reported),
        facts=failure_rules.facts(pod, code),
    )


def classify(failure: PodFailure, policy: RunPolicy) -> FailureClass:
    """Retryable or permanent, per the table in docs/architecture.md (what the default rules
    of failure_rules.py decide when the spec has no rules of its own)."""
    if failure.disrupted:
        return "retryable"
    code = failure.exit_code
    if code is None:
        # Killed by a signal, or failed without a container exit (node lost before start).
        return "retryable"
    if code in policy.permanent_exit_codes:
        return "permanent"
    if code in policy.retryable_exit_codes:
        return "retryable"
    if code == TRANSIENT or code >= 128:
        return "retryable"
    return "permanent"


def root_cause(failures: list[PodFailure]) -> PodFailure:
    """The failed container that terminated first (ties: lowest pod name), looking past ranks
    that only fell over because a peer went away."""
    return min(failures, key=lambda f: (f.peer_fallout, f.finished_at or "9999", f.pod))


def backoff_seconds(restarts: int, policy: RunPolicy) -> float:
    """Exponential backoff before restart number `restarts + 1`, capped."""
    base = float(policy.restart_backoff_seconds)
    delay = base * (2 ** min(restarts, 20))
    return float(min(delay, float(policy.max_restart_backoff_seconds)))


# --- the policy ---------------------------------------------------------------------------------


def gang_failed(p: Pass, spec: TrainingJobSpec, current: list[Obj]) -> bool:
    """A worker of the current attempt failed, or a running gang lost one: restart the gang,
    fail the job, or wait briefly for the real culprit. True when this decided the pass."""
    failures = [f for f in (pod_failure(pod) for pod in current) if f is not None]
    if not failures:
        return _lost_member(p, spec, current)
    cause = root_cause(failures)
    if cause.peer_fallout and _awaiting_culprit(p, cause, failures, current):
        return True
    verdict = failure_rules.decide(cause.facts, spec.run_policy)
    if verdict.action == "Fail":
        success.absorb_summary(p, current)
        reason, why = "WorkerFailed", "a permanent failure: not restarted"
        if cause.exit_code == UPLOAD_FAILED:
            # The upload never wrote its manifest: status must not point at a partial one.
            p.status.artifacts = None
            reason = "ArtifactUploadFailed"
            why = "the artifact upload failed after its retries; nothing was published"
        if verdict.rule.startswith("rules["):
            why = f"failed by failurePolicy.{verdict.rule}: not restarted"
        fail(
            p,
            reason,
            f"{cause.describe()} ({why})",
            spec.run_policy.clean_pod_policy,
            cause,
            verdict,
        )
    else:
        restart(p, spec, cause, "WorkerFailed", verdict)
    return True


def _awaiting_culprit(
    p: Pass, fallout: PodFailure, failures: list[PodFailure], current: list[Obj]
) -> bool:
    """Only victims of a peer's death failed so far while other workers still look alive:
    wait (briefly) for the culprit's status before deciding."""
    failed = {f.pod for f in failures}
    alive = [
        pod for pod in current if pods.name(pod) not in failed and pods.phase(pod) != "Succeeded"
    ]
    finished = parse_time(fallout.finished_at)
    if not alive or finished is None:
        return False
    waited = (p.now - finished).total_seconds()
    if waited >= PEER_FALLOUT_GRACE_S:
        return False
    p.requeue(PEER_FALLOUT_GRACE_S - waited)
    return True


def _lost_member(p: Pass, spec: TrainingJobSpec, current: list[Obj]) -> bool:
    """A running gang that lost a pod (deleted, node gone) restarts as a whole. Only a member
    is lost: an index that never ran (an elastic gang grew) is simply created."""
    if p.old.phase != "Running":
        return False
    present = {pods.index(pod) for pod in current}
    missing = [i for i in range(spec.parallelism.nodes) if i not in present]
    if p.old.members:  # empty only in a status written before membership was tracked
        missing = [i for i in missing if i in p.old.members]
    if not missing:
        return False
    lost = vanished(p, worker_name(p.job.name, missing[0]))
    verdict = failure_rules.decide(lost.facts, spec.run_policy)
    if verdict.action == "Fail":
        fail(
            p,
            "WorkerLost",
            f"{lost.describe()} (failed by failurePolicy.{verdict.rule})",
            spec.run_policy.clean_pod_policy,
            lost,
            verdict,
        )
    else:
        restart(p, spec, lost, "NodeLost" if lost.reason == "NodeLost" else "WorkerLost", verdict)
    return True


def vanished(p: Pass, name: str) -> PodFailure:
    """Why a worker of the running gang is gone, from its last state: still terminating, or as
    the pod watch last saw it before it was deleted (the pod GC marks the pods of a deleted node
    DisruptionTarget/DeletionByPodGC first). PodDeleted when nothing says why."""
    attempt = p.status.attempt
    last = [
        pod
        for pod in [*p.obs.pods, *p.obs.departed]
        if pods.name(pod) == name and pods.attempt(pod) == attempt
    ]
    seen = last[0] if last else None
    failed = pod_failure(seen) if seen is not None else None
    if failed is not None:
        return failed
    gone = failure_rules.disruption(seen) if seen is not None else None
    reason = gone.reason if gone else failure_rules.POD_DELETED
    return PodFailure(
        pod=name,
        container="",
        exit_code=None,
        signal=None,
        reason=reason,
        message=gone.message if gone else "the pod disappeared while the gang was running",
        finished_at="",
        disrupted=True,
        facts=failure_rules.facts(seen, None, (reason,)),
    )


def restart(
    p: Pass,
    spec: TrainingJobSpec,
    failure: PodFailure,
    reason: str,
    verdict: Verdict = failure_rules.STALL,
) -> None:
    """Gang restart per the verdict's action (Restart, RestartIgnoringMax, Ignore), or Failed
    when a counted restart finds runPolicy.maxRestarts used up."""
    policy = spec.run_policy
    counted = p.status.restarts_counted_towards_max
    if verdict.counted and counted >= policy.max_restarts:
        fail(
            p,
            "MaxRestartsExceeded",
            f"{failure.describe()}; the gang was already restarted {counted} counted "
            f"times (runPolicy.maxRestarts={policy.max_restarts})",
            policy.clean_pod_policy,
            failure,
            verdict,
        )
        return
    ignored = verdict.action == "Ignore"
    # Ignore waits only the base backoff, so an ignored failure can never hot-loop.
    delay = (
        float(policy.restart_backoff_seconds)
        if ignored
        else backoff_seconds(p.status.restarts, policy)
    )
    p.status.last_failure = _last_failure(p, failure, verdict)
    p.status.last_recovery = recovered.started(p)
    if not ignored:
        p.status.restarts += 1
    if verdict.counted:
        p.status.restarts_counted_towards_max += 1
    p.status.restart_after = iso(p.now + dt.timedelta(seconds=delay))
    p.status.running_time = None
    if p.status.progress is not None:
        p.status.progress.last_advance_time = None
    message = (
        f"attempt {p.status.attempt} failed: {failure.describe()}; restarting the gang in "
        f"{human_duration(delay)} ({counting(p, verdict, policy.max_restarts)})"
    )
    p.set_phase("Restarting", message)
    p.condition("Restarting", True, reason, message)
    p.condition("PodsReady", False, reason, message)
    p.delete(p.obs.pods)
    p.event(
        "Normal" if ignored else "Warning", "FailureIgnored" if ignored else "Restarting", message
    )
    p.plan.restarted = True
    p.plan.restart_kind = "gang"
    p.requeue(delay)


def counting(p: Pass, verdict: Verdict, max_restarts: int) -> str:
    """How this restart counts, in words, naming the rule when it was not a default."""
    rule = f"failurePolicy.{verdict.rule}: " if verdict.rule.startswith("rules[") else ""
    if verdict.action == "Ignore":
        return f"{rule}ignored, not counted"
    if verdict.action == "RestartIgnoringMax":
        return f"{rule}not counted against maxRestarts"
    return f"{rule}restart {p.status.restarts_counted_towards_max} of {max_restarts}"


def recreate_gang(p: Pass, spec: TrainingJobSpec, current: list[Obj]) -> None:
    """Restarting: wait until the old gang is gone and the backoff elapsed, then create the
    next attempt (pod names are the same in every attempt, so never both at once)."""
    p.delete(current)
    if p.obs.pods:
        p.requeue(GANG_DELETION_REQUEUE)
        return
    after = parse_time(p.status.restart_after)
    if after is not None and p.now < after:
        p.requeue((after - p.now).total_seconds())
        return
    p.status.attempt += 1
    p.status.restart_after = None
    p.condition("Restarting", False, "GangRecreated", f"attempt {p.status.attempt} created")
    p.set_phase("Pending", f"attempt {p.status.attempt}: creating the gang")
    p.event("Normal", "GangRecreated", f"created attempt {p.status.attempt}")
    p.plan.create.extend(builders.build_gang(p.job, spec, p.config, p.status.attempt))
    p.status.workers = count_workers([])
    p.requeue(PENDING_REQUEUE)


def fail(
    p: Pass,
    reason: str,
    message: str,
    clean_pod_policy: str,
    failure: PodFailure | None = None,
    verdict: Verdict | None = None,
) -> None:
    """The job has Failed for good: say why, clean its pods up, and schedule its TTL."""
    if failure is not None:
        p.status.last_failure = _last_failure(p, failure, verdict)
    p.set_phase("Failed", message)
    p.status.completion_time = iso(p.now)
    p.status.restart_after = None
    p.condition("Failed", True, reason, message)
    p.condition("PodsReady", False, reason, message)
    if condition_true(p.status.conditions, "Restarting"):
        p.condition("Restarting", False, reason, message)
    ttl.cleanup(p, clean_pod_policy)
    p.event("Warning", reason, message)
    p.plan.failed_reason = reason
    ttl.schedule_deletion(p)


def invalid(p: Pass, problem: str) -> None:
    """The spec cannot run (rejected by rules, by the API server, or an unknown node pool):
    Failed, with every pod deleted."""
    text = f"invalid spec: {problem}"
    p.condition("InvalidSpec", True, "InvalidSpec", text)
    fail(p, "InvalidSpec", text, "All")


def _last_failure(p: Pass, f: PodFailure, verdict: Verdict | None = None) -> LastFailure:
    return LastFailure(
        pod=f.pod,
        container=f.container,
        exit_code=f.exit_code,
        signal=f.signal,
        reason=f.reason,
        message=f.message,
        attempt=p.status.attempt,
        action=verdict.action if verdict else "",
        rule=verdict.rule if verdict else "",
    )


def last_failure(p: Pass, f: PodFailure, verdict: Verdict | None = None) -> LastFailure:
    """`status.lastFailure` for `f` in the current attempt (for the recovery policy too)."""
    return _last_failure(p, f, verdict)
