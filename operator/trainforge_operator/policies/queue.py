"""Kueue admission (docs/kueue.md): a job with the `kueue.x-k8s.io/queue-name` label has no pods
until Kueue admits its Workload, and gives its pods up whenever Kueue evicts it.

- no Workload yet: plan it (kueue.build_workload); the job is Queued;
- not admitted: Queued, no pods, a `Queued` condition naming the LocalQueue and ClusterQueue with
  Kueue's own reason;
- evicted (preempted, queue stopped): delete the gang, keep everything else (status, progress,
  the checkpoint in storage, the restart counters: an eviction is not a failure), and once the
  pods are gone clear the Workload's admission so Kueue queues it again;
- admitted: the gang runs as usual, its pods placed on the admitted ResourceFlavors;
- finished: the Workload is marked Finished, which frees the quota.

Time spent Queued counts towards no deadline: the start time is set only once admitted (and
reset by an eviction), and maxPendingSeconds counts from the pods' creation.
"""

from __future__ import annotations

from typing import Any

from trainforge_api.trainingjob import TrainingJobSpec
from trainforge_operator import kueue
from trainforge_operator.plan import QueueView
from trainforge_operator.policies.state import Pass
from trainforge_operator.status import parse_time

Obj = dict[str, Any]
# How often a queued job looks at its Workload again (the operator polls; it does not watch).
QUEUED_POLL_S = 2.0
# The Queued condition's reason once the Workload was marked Finished (nothing more to write).
DONE = "WorkloadFinished"


def managed(p: Pass) -> bool:
    """Kueue admits this job: the operator is configured for Kueue and the job names a queue."""
    return p.config.kueue and kueue.queue_name(p.obs.body) is not None


def holds(p: Pass, spec: TrainingJobSpec) -> bool:
    """True while Kueue keeps the job from running (the pass ends here); False once admitted."""
    view = p.obs.queue
    if not managed(p) or view is None:
        return False
    if view.workload is None:
        return _create(p, spec, view)
    state = kueue.admission(view.workload)
    if state.evicted:
        _evicted(p, view, state)
        return True
    if not state.admitted:
        p.delete(p.live)  # the admission was withdrawn before the gang ran
        _queued(p, view, state.reason, state.message)
        return True
    _admitted(p, state)
    # Workloads are polled, not watched: an admitted job reads its Workload again every
    # progressIntervalSeconds, so an eviction is seen that soon whatever else wakes the job.
    p.requeue(p.config.progress_interval_seconds)
    return False


def place(p: Pass) -> None:
    """Put the pods this pass creates on the ResourceFlavors Kueue admitted the gang to."""
    view = p.obs.queue
    if not managed(p) or view is None or view.workload is None:
        return
    selector, tolerations = kueue.placement(view.workload, view.flavors)
    if not selector and not tolerations:
        return
    for obj in p.plan.create:
        if obj.get("kind") != "Pod":
            continue
        pod_spec = obj["spec"]
        pod_spec["nodeSelector"] = {**(pod_spec.get("nodeSelector") or {}), **selector}
        present = pod_spec.setdefault("tolerations", [])
        present.extend(t for t in tolerations if t not in present)


def finish(p: Pass) -> None:
    """A finished job marks its Workload Finished, once (Kueue then frees the quota)."""
    view = p.obs.queue
    if not managed(p) or view is None or view.workload is None:
        return
    if kueue.admission(view.workload).finished:
        p.condition("Queued", False, DONE, "the job finished; its Kueue Workload is Finished")
        return
    succeeded = p.status.phase == "Succeeded"
    message = f"TrainingJob {p.status.phase}: {p.status.message}"
    p.plan.workload_status = kueue.finished(view.workload, succeeded, message, p.now)


def needs_view(body: Obj) -> bool:
    """Whether the controller must read Kueue's objects for this job: not once a finished job's
    Workload is marked Finished."""
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Queued" and cond.get("reason") == DONE:
            return False
    return True


def _where(p: Pass, view: QueueView, cluster_queue: str | None = None) -> str:
    """`LocalQueue a (ClusterQueue b)`: the ClusterQueue from the admission, else from the
    LocalQueue's spec (left out when neither is known)."""
    cq = cluster_queue or ((view.local_queue or {}).get("spec") or {}).get("clusterQueue")
    where = f"LocalQueue {kueue.queue_name(p.obs.body)}"
    return f"{where} (ClusterQueue {cq})" if cq else where


def _create(p: Pass, spec: TrainingJobSpec, view: QueueView) -> bool:
    if view.priority_missing:
        message = (
            f"WorkloadPriorityClass {kueue.priority_class(p.obs.body)} (label "
            f"{kueue.PRIORITY_LABEL}) does not exist: create it or fix the label"
        )
        _queued(p, view, "PriorityClassNotFound", message)
        return True
    p.plan.workload_create = kueue.build_workload(p.obs.body, spec, p.config, view.priority)
    # A gang whose Workload was deleted under it runs on no quota: stop it, as Kueue's own job
    # reconciler suspends a running job that has no Workload.
    p.delete(p.live)
    _queued(p, view, "Pending", "waiting for Kueue to reserve quota")
    return True


def _queued(p: Pass, view: QueueView, reason: str, message: str) -> None:
    """Phase Queued, the condition naming the queue, an Event when the job starts waiting."""
    text = f"queued in {_where(p, view)}: {message}"
    if p.old.phase != "Queued":
        p.event("Normal", "Queued", text)
    p.set_phase("Queued", text)
    p.condition("Queued", True, reason, text)
    p.condition("PodsReady", False, "Queued", "waiting for Kueue to admit the job")
    p.requeue(QUEUED_POLL_S)


def _evicted(p: Pass, view: QueueView, state: kueue.Admission) -> None:
    """Stop the gang; once its pods are gone, give Kueue the quota back. Not a failure."""
    assert view.workload is not None
    p.delete(p.live)
    step = p.status.progress.step if p.status.progress else None
    kept = f"checkpoint kept (last reported step {step})" if step is not None else "checkpoint kept"
    if p.old.phase != "Queued":
        p.event(
            "Warning",
            "Evicted",
            f"Kueue evicted the job ({state.reason}: {state.message}): stopping the gang, "
            f"{kept}; it resumes when admitted again (no restart is counted)",
        )
    gone = not p.obs.pods
    if gone and (view.workload.get("status") or {}).get("admission"):
        p.plan.workload_status = kueue.released(view.workload, p.now)
    p.status.start_time = None  # deadlines count from the next admission
    p.status.running_time = None
    p.status.restart_after = None
    text = f"evicted by Kueue ({state.reason}: {state.message}); {kept}; requeued"
    p.set_phase("Queued", f"queued in {_where(p, view, state.cluster_queue)}: {text}")
    p.condition("Queued", True, state.reason, p.status.message)
    p.condition("PodsReady", False, "Evicted", "the gang was stopped: Kueue evicted the job")
    p.requeue(QUEUED_POLL_S if gone else 1.0)


def _admitted(p: Pass, state: kueue.Admission) -> None:
    """The pass that first sees the admission: leave Queued, measure the wait, say so."""
    queued = next((c for c in p.old.conditions if c.type == "Queued"), None)
    if queued is None or queued.status != "True":
        return
    since = parse_time(queued.last_transition_time)
    if since is not None:
        p.plan.queued_seconds = max((p.now - since).total_seconds(), 0.0)
    where = f"ClusterQueue {state.cluster_queue}" if state.cluster_queue else "Kueue"
    p.condition("Queued", False, "Admitted", f"admitted by {where}")
    p.event("Normal", "Admitted", f"admitted by {where}: creating the gang")
    p.set_phase("Pending", f"admitted by {where}")
