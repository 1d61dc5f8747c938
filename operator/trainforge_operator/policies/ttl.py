"""A finished job's leftovers: its pods per `cleanPodPolicy`, itself per `ttlSecondsAfterFinished`.

Applied on the pass that finishes the job and on every pass after it, so a pod that was still
running at the end, or a TTL that elapses while the operator was down, is dealt with later.
"""

from __future__ import annotations

from trainforge_operator import pods
from trainforge_operator.policies.state import Pass
from trainforge_operator.status import parse_time

# Without a readable spec: keep the finished pods and their logs, stop the running ones.
DEFAULT_CLEAN_POD_POLICY = "Running"
# Failures that leave no pods behind whatever cleanPodPolicy says (the gang never ran, or its
# spec cannot run), so a later pass deletes what the failing pass did not get to.
NO_LEFTOVERS = frozenset(
    {"InvalidSpec", "PendingTimeout", "ReconcileError", "InvalidImageName", "ImagePullBackOff"}
)


def finished(p: Pass) -> None:
    """A Succeeded or Failed job: clean up its pods, and delete it once its TTL has elapsed."""
    spec = p.spec
    policy = spec.run_policy.clean_pod_policy if spec else DEFAULT_CLEAN_POD_POLICY
    failed = next((c for c in p.status.conditions if c.type == "Failed"), None)
    if failed is not None and failed.status == "True" and failed.reason in NO_LEFTOVERS:
        policy = "All"
    cleanup(p, policy)
    schedule_deletion(p)


def cleanup(p: Pass, policy: str) -> None:
    """Delete pods of a finished job per cleanPodPolicy (Running, All or None)."""
    if policy == "All":
        p.delete(p.live)
    elif policy == "Running":
        # A pod whose container already exited is finished even while its phase still says
        # Running (the kubelet reports on its own schedule): keep it, and its logs.
        p.delete(
            [
                pod
                for pod in p.live
                if pods.phase(pod) not in ("Succeeded", "Failed")
                and pods.terminated_state(pod) is None
            ]
        )


def schedule_deletion(p: Pass) -> None:
    """Delete the job when ttlSecondsAfterFinished has passed since completion, else look again
    exactly then (this replaces any earlier requeue: nothing else is left to watch)."""
    ttl = p.spec.run_policy.ttl_seconds_after_finished if p.spec else None
    done = parse_time(p.status.completion_time)
    if ttl is None or done is None:
        return
    remaining = (done - p.now).total_seconds() + ttl
    if remaining <= 0:
        p.plan.delete_job = True
    else:
        p.plan.requeue_after = remaining
