"""Recovery without recreating the gang: InPlace recovery, elastic sizes, and membership.

Under `runPolicy.recovery: InPlace` (the default) the workers meet through torch elastic's c10d
rendezvous, hosted by node 0's agent. When a worker other than node 0 fails retryably or
disappears, only that pod is recreated (same name, same attempt); the agents of the others
restart their processes in place and re-rendezvous, and every rank resumes from the newest
checkpoint. A fixed gang waits for the pod to come back; an elastic one (minNodes < maxNodes)
keeps training while at least minNodes workers run and grows again when the pod runs. Node 0
lost (the rendezvous host), a permanent failure, or `runPolicy.maxRestarts` reached fall back to
the failure policy (gang recreation, or Failed), as does `recovery: RecreateGang` always.

Membership is read from the pods: `status.members` holds the node indexes that ran at the last
pass, and a change between passes becomes a `membershipChanges` entry and an Event.
"""

from __future__ import annotations

from typing import Any, Literal

from trainforge_api.launchers import resolve_launcher
from trainforge_api.trainingjob import (
    MEMBERSHIP_HISTORY_LIMIT,
    MembershipChange,
    TrainingJobSpec,
)
from trainforge_operator import builders, pods
from trainforge_operator.names import worker_name
from trainforge_operator.policies import failure, failure_rules, recovered
from trainforge_operator.policies.state import PENDING_REQUEUE, Pass
from trainforge_operator.status import iso

Obj = dict[str, Any]
Change = Literal["Joined", "Left"]

RUNNING = ("Running", "Succeeded")  # a worker that finished did not leave the gang


def _running_indexes(current: list[Obj]) -> list[int]:
    return sorted(
        i for pod in current if pods.phase(pod) in RUNNING and (i := pods.index(pod)) is not None
    )


def track_membership(p: Pass, current: list[Obj]) -> None:
    """Record which workers run now; while the gang trains, name each join and leave."""
    now = _running_indexes(current)
    before = set(p.old.members)
    p.status.current_nodes = len(now)
    p.status.members = now
    if p.old.phase != "Running" or not before:
        return
    changes: list[tuple[int, Change]] = [(i, "Left") for i in sorted(before - set(now))]
    changes += [(i, "Joined") for i in sorted(set(now) - before)]
    for index, change in changes:
        pod = worker_name(p.job.name, index)
        entry = MembershipChange(time=iso(p.now), change=change, pod=pod, nodes=len(now))
        p.status.membership_changes = [*p.status.membership_changes, entry][
            -MEMBERSHIP_HISTORY_LIMIT:
        ]
        verb = "left" if change == "Left" else "joined"
        if change == "Joined" and p.spec is not None and p.spec.parallelism.elastic:
            p.plan.restart_kind = p.plan.restart_kind or "elastic-grow"
        p.event(
            "Warning" if change == "Left" else "Normal",
            f"Worker{change}",
            f"{pod} {verb} the gang: {len(now)} workers running",
        )


def recover_in_place(p: Pass, spec: TrainingJobSpec, current: list[Obj]) -> bool:
    """Recreate only the failed or lost workers (not node 0) under InPlace recovery; True when
    this decided the pass. False leaves the failure policy to restart the gang or fail.

    Each failure gets the failure-policy verdict (policies/failure_rules.py) as a gang restart
    would: Fail falls back to the failure policy, and Restart, RestartIgnoringMax and Ignore
    count exactly as they do for a gang restart."""
    if spec.run_policy.recovery != "InPlace":
        return False
    if resolve_launcher(spec, p.config.default_image) == "standalone":
        return False  # the standalone launcher has no elastic agent to restart ranks in place
    failed = [(pod, cause) for pod in current if (cause := failure.pod_failure(pod)) is not None]
    running_before = p.old.phase == "Running"
    present = {pods.index(pod) for pod in current}
    missing = [i for i in range(spec.parallelism.nodes) if i not in present]
    # Only a member that left is lost: an index never run (the gang grew) is simply created.
    if not failed and not (running_before and set(missing) & set(p.old.members)):
        return False
    if any(pods.index(pod) == 0 for pod, _ in failed) or (running_before and 0 in missing):
        return False  # node 0 hosts the rendezvous: only a new gang can continue
    lost = [failure.vanished(p, worker_name(p.job.name, i)) for i in missing if i in p.old.members]
    causes = [cause for _, cause in failed] + lost
    verdicts = [failure_rules.decide(cause.facts, spec.run_policy) for cause in causes]
    if any(v.action == "Fail" for v in verdicts):
        return False  # the failure policy fails the job and names the cause
    counted = sum(1 for v in verdicts if v.counted)
    if counted and p.status.restarts_counted_towards_max + counted > spec.run_policy.max_restarts:
        return False  # the failure policy fails the job with MaxRestartsExceeded
    for cause, verdict in zip(causes, verdicts, strict=True):
        _recover(p, spec, cause, verdict)
    p.delete([pod for pod, _ in failed])
    for index in missing:
        p.plan.create.append(
            builders.build_worker_pod(p.job, spec, p.config, index, p.status.attempt)
        )
    p.requeue(PENDING_REQUEUE if missing else 1.0)
    return True


def _recover(
    p: Pass, spec: TrainingJobSpec, cause: failure.PodFailure, verdict: failure_rules.Verdict
) -> None:
    """Count one in-place recovery as its verdict says, and say what happens next."""
    policy = spec.run_policy
    par = spec.parallelism
    if verdict.action != "Ignore":
        p.status.restarts += 1
    if verdict.counted:
        p.status.restarts_counted_towards_max += 1
    p.status.in_place_restarts += 1
    p.status.last_failure = failure.last_failure(p, cause, verdict)
    kind = "elastic-shrink" if par.elastic else "in-place"
    p.status.last_recovery = recovered.started(p, kind=kind)
    p.plan.restart_kind = kind
    then = (
        f"training continues while at least {par.min_size} workers run"
        if par.elastic
        else "the other workers wait for it in the rendezvous"
    )
    message = (
        f"{cause.describe()}; recreating only that pod ({then}), resuming from the newest "
        f"checkpoint ({failure.counting(p, verdict, policy.max_restarts)})"
    )
    p.status.message = message
    p.condition("PodsReady", False, "RecoveringInPlace", message)
    p.event("Warning", "RecoveringInPlace", message)


def trains(p: Pass, spec: TrainingJobSpec, current: list[Obj]) -> bool:
    """An elastic gang trains once minNodes workers run (the rest join as they start)."""
    par = spec.parallelism
    return par.elastic and len(_running_indexes(current)) >= par.min_size


def rejoining(p: Pass, spec: TrainingJobSpec, current: list[Obj]) -> bool:
    """A gang that already trained in this attempt waits for recreated workers: it stays
    Running (no pending timeout) and says who it waits for. True when this decided the phase."""
    if spec.run_policy.recovery != "InPlace" or p.status.running_time is None:
        return False
    if p.old.phase != "Running":
        return False
    running = _running_indexes(current)
    waiting = [i for i in range(spec.parallelism.nodes) if i not in running]
    names = ", ".join(worker_name(p.job.name, i) for i in waiting)
    message = (
        f"attempt {p.status.attempt}: recovering in place: {len(running)}/"
        f"{spec.parallelism.nodes} workers running, waiting for {names}"
    )
    p.set_phase("Running", message)
    p.condition("PodsReady", False, "RecoveringInPlace", message)
    p.requeue(PENDING_REQUEUE)
    return True


def elastic_done(spec: TrainingJobSpec, current: list[Obj]) -> bool:
    """An elastic job is done when node 0 succeeded and no worker still runs: a worker that
    never got to join (still pending, or turned away by the closed rendezvous) does not hold
    it back."""
    if not spec.parallelism.elastic:
        return False
    node0 = pods.rank0(current)
    if node0 is None or pods.phase(node0) != "Succeeded":
        return False
    return not any(pods.phase(pod) == "Running" for pod in current)
