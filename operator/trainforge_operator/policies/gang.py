"""The gang while nothing is wrong: create what is missing, then report how far it got.

The Service and the context ConfigMap are created once and the ConfigMap rewritten when the spec
changed; the current attempt's missing workers are created, but only once no pod of an older
attempt is left (the names are the same in every attempt). The phase then says where the gang
is: Pending (not all scheduled), Starting (scheduled, not all running), Running.
"""

from __future__ import annotations

from typing import Any

from trainforge_api.trainingjob import Phase, TrainingJobSpec
from trainforge_operator import builders, pods
from trainforge_operator.policies.state import Pass
from trainforge_operator.status import condition_true, iso, parse_progress, record_history

Obj = dict[str, Any]


def prepare(p: Pass, spec: TrainingJobSpec) -> None:
    """Pending on the first pass; the start time; the Service and an up-to-date ConfigMap."""
    if p.status.phase is None:
        p.set_phase("Pending", "creating the gang")
    if p.status.start_time is None:
        p.status.start_time = iso(p.now)
    if not p.obs.has_service:
        p.plan.create.append(builders.build_service(p.job))
    if p.obs.has_configmap and p.obs.configmap_data is None:
        # Known to be up to date for this spec (cache.children_known): rendering the context
        # on every pass, only to compare it with nothing, was a third of a steady pass.
        return
    context = builders.build_configmap(p.job, spec, p.config)
    if not p.obs.has_configmap:
        p.plan.create.append(context)
    elif p.obs.configmap_data is not None and p.obs.configmap_data != context["data"]:
        # Spec edited (e.g. while suspended): the next gang must read the new context.
        p.plan.update.append(context)


def adopt(p: Pass) -> None:
    """Pods of a newer attempt than the status records were created by a pass whose status
    write was lost (a crash, a conflict): take their attempt as the current one instead of
    deleting them as stale, so no attempt's pods are ever created twice."""
    newest = max((a for a in map(pods.attempt, p.live) if a is not None), default=None)
    if newest is None or newest <= p.status.attempt:
        return
    p.status.attempt = newest
    p.status.restart_after = None
    if condition_true(p.status.conditions, "Restarting"):
        p.condition("Restarting", False, "GangRecreated", f"attempt {newest} created")
    if p.status.phase == "Restarting":
        p.set_phase("Pending", f"attempt {newest}: creating the gang")


def split_attempts(p: Pass) -> tuple[list[Obj], list[Obj]]:
    """The live pods of the current attempt, and every pod of another attempt."""
    attempt = p.status.attempt
    current = [pod for pod in p.live if pods.attempt(pod) == attempt]
    stale = [pod for pod in p.obs.pods if pods.attempt(pod) != attempt]
    return current, stale


def create_missing(p: Pass, spec: TrainingJobSpec, current: list[Obj], blocked: bool) -> None:
    """Create the attempt's missing workers unless older pods still hold their names."""
    nodes = spec.parallelism.nodes
    present = {pods.index(pod) for pod in current}
    if not blocked:
        for i in range(nodes):
            if i not in present:
                worker = builders.build_worker_pod(p.job, spec, p.config, i, p.status.attempt)
                p.plan.create.append(worker)
    if p.plan.create and not condition_true(p.status.conditions, "Created"):
        p.condition("Created", True, "ChildrenCreated", "service, context and pods created")
        p.event("Normal", "Created", f"created the gang of {nodes} worker pods")


def all_succeeded(spec: TrainingJobSpec, current: list[Obj]) -> bool:
    return len(current) == spec.parallelism.nodes and all(
        pods.phase(pod) == "Succeeded" for pod in current
    )


def all_running(spec: TrainingJobSpec, current: list[Obj]) -> bool:
    """Every worker runs (or already finished): the gang trains."""
    return len(current) == spec.parallelism.nodes and all(
        pods.phase(pod) in ("Running", "Succeeded") for pod in current
    )


def running(p: Pass, current: list[Obj]) -> None:
    """Running, with rank 0's progress when it was read; look again at the next poll. The
    annotation source needs no timer: a changed annotation is a pod event, which wakes the job
    (the deadlines of a running gang ask for their own pass)."""
    if p.old.phase != "Running":
        p.event("Normal", "Running", f"all {len(current)} workers are running")
        first = pods.first_created(current)
        if first is not None:
            p.plan.time_to_running = (p.now - first).total_seconds()
    if p.status.running_time is None:
        p.status.running_time = iso(p.now)
    p.set_phase("Running", f"attempt {p.status.attempt}: all workers running")
    p.condition("PodsReady", True, "AllWorkersRunning", "all worker pods are running")
    if p.obs.progress is not None:
        progress, findings = parse_progress(p.obs.progress, p.status.progress, p.now)
        p.status.progress = progress
        p.status.findings = findings
        p.status.metric_history = record_history(p.status.metric_history, progress)
    if p.config.progress_source != "annotation":
        p.requeue(p.config.progress_interval_seconds)


def waiting(p: Pass, spec: TrainingJobSpec, current: list[Obj]) -> None:
    """Pending until every worker is scheduled, then Starting, naming what holds the gang.

    No timer: every change of a worker pod wakes the job (the pod informer), and the deadlines
    of a waiting gang (scheduling timeout, image pull limit) ask for their own pass; the loop's
    resync is the backstop. A 2 s timer here only added passes that found nothing new."""
    nodes = spec.parallelism.nodes
    all_scheduled = len(current) == nodes and all(pods.scheduled(pod) for pod in current)
    phase: Phase = "Starting" if all_scheduled else "Pending"
    ready = sum(1 for pod in current if pods.phase(pod) in ("Running", "Succeeded"))
    message = (
        pods.why_waiting(current) or f"attempt {p.status.attempt}: {ready}/{nodes} workers running"
    )
    p.set_phase(phase, message)
    p.condition("PodsReady", False, "WaitingForWorkers", message)
