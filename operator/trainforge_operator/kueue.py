"""Kueue's Workload protocol, as pure functions: the Workload a TrainingJob asks Kueue to admit,
what Kueue answered, and the Workload status trainforge writes back (docs/kueue.md).

trainforge is the job controller of its Workloads (Kueue's "external framework" integration):
it creates one Workload per job (deterministic name, owned by the job), starts the gang only once
the Workload is Admitted, places the pods on the admitted ResourceFlavors, and when Kueue evicts
the Workload (preemption) it stops the gang and gives the quota back by clearing the admission,
the step Kueue's own job reconciler does for its built-in jobs. When the job ends it marks the
Workload Finished, which frees the quota.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from trainforge_api.trainingjob import TrainingJobSpec
from trainforge_operator import builders
from trainforge_operator.config import OperatorConfig
from trainforge_operator.names import QUEUE_LABEL

Obj = dict[str, Any]

GROUP = "kueue.x-k8s.io"
VERSION = "v1beta2"  # the storage version of Kueue v0.19's CRDs; the only one trainforge speaks
API_VERSION = f"{GROUP}/{VERSION}"
WORKLOADS = "workloads"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"  # names a WorkloadPriorityClass
POD_SET = "workers"  # the gang is one pod set: every worker asks for the same resources


def queue_name(body: Obj) -> str | None:
    """The LocalQueue the job is submitted to (its kueue.x-k8s.io/queue-name label)."""
    labels = (body.get("metadata") or {}).get("labels") or {}
    value = labels.get(QUEUE_LABEL)
    return str(value) if value else None


def priority_class(body: Obj) -> str | None:
    labels = (body.get("metadata") or {}).get("labels") or {}
    value = labels.get(PRIORITY_LABEL)
    return str(value) if value else None


def workload_name(job: str, uid: str) -> str:
    """`trainingjob-<job>-<5 hex of the uid>`: stable for one job object, and a namesake created
    after a delete gets its own Workload (the old one goes with its owner)."""
    return f"trainingjob-{job}-{hashlib.sha256(uid.encode()).hexdigest()[:5]}"


def build_workload(
    body: Obj, spec: TrainingJobSpec, config: OperatorConfig, priority: int | None
) -> Obj:
    """The Workload for a job: one pod set, the gang, with the worker pod's own spec as template
    (so Kueue counts exactly the requests the pods will make, init containers included)."""
    job = builders.JobRef.from_body(body)
    worker = builders.build_worker_pod(job, spec, config, 0, 0)
    template = {
        "metadata": {"labels": builders.job_labels(job)},
        "spec": worker["spec"],
    }
    wl_spec: Obj = {
        "queueName": queue_name(body) or "",
        "podSets": [{"name": POD_SET, "count": spec.parallelism.nodes, "template": template}],
    }
    klass = priority_class(body)
    if klass is not None and priority is not None:
        wl_spec["priorityClassRef"] = {
            "group": GROUP,
            "kind": "WorkloadPriorityClass",
            "name": klass,
        }
        wl_spec["priority"] = priority
    return {
        "apiVersion": API_VERSION,
        "kind": "Workload",
        "metadata": {
            "name": workload_name(job.name, job.uid),
            "namespace": job.namespace,
            "labels": builders.job_labels(job),
            "ownerReferences": [builders.owner_reference(job)],
        },
        "spec": wl_spec,
    }


def _condition(wl: Obj, type_: str) -> Obj | None:
    for cond in (wl.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def _true(wl: Obj, type_: str) -> bool:
    cond = _condition(wl, type_)
    return cond is not None and cond.get("status") == "True"


@dataclass(frozen=True)
class Admission:
    """Kueue's answer for one Workload, as the queue policy needs it."""

    admitted: bool  # Admitted=True: the gang may run
    evicted: bool  # Evicted=True: stop the gang (preempted, queue stopped, ...)
    finished: bool  # Finished=True: trainforge already reported the end
    cluster_queue: str | None  # from the admission (None while pending)
    reason: str  # Kueue's reason: why it waits or why it evicted
    message: str  # Kueue's message, as it wrote it


def admission(wl: Obj) -> Admission:
    status = wl.get("status") or {}
    evicted = _condition(wl, "Evicted")
    reserved = _condition(wl, "QuotaReserved")
    shown = evicted if evicted and evicted.get("status") == "True" else reserved
    return Admission(
        admitted=_true(wl, "Admitted"),
        evicted=_true(wl, "Evicted"),
        finished=_true(wl, "Finished"),
        cluster_queue=(status.get("admission") or {}).get("clusterQueue"),
        reason=str((shown or {}).get("reason") or "Pending"),
        message=str((shown or {}).get("message") or "waiting for Kueue to reserve quota"),
    )


def placement(wl: Obj, flavors: dict[str, Obj]) -> tuple[dict[str, str], list[Obj]]:
    """The node labels and tolerations of the ResourceFlavors Kueue assigned to the gang."""
    selector: dict[str, str] = {}
    tolerations: list[Obj] = []
    assignments = ((wl.get("status") or {}).get("admission") or {}).get("podSetAssignments")
    for assignment in assignments or []:
        for flavor_name in sorted(set((assignment.get("flavors") or {}).values())):
            flavor = (flavors.get(flavor_name) or {}).get("spec") or {}
            selector.update(flavor.get("nodeLabels") or {})
            for toleration in flavor.get("tolerations") or []:
                if toleration not in tolerations:
                    tolerations.append(copy.deepcopy(toleration))
    return selector, tolerations


def flavor_names(wl: Obj) -> list[str]:
    assignments = ((wl.get("status") or {}).get("admission") or {}).get("podSetAssignments")
    names = {f for a in assignments or [] for f in (a.get("flavors") or {}).values()}
    return sorted(names)


def _iso(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _set(conditions: list[Obj], cond: Obj, now: dt.datetime) -> list[Obj]:
    """Upsert like meta.SetStatusCondition: the transition time moves only on a status flip."""
    old = next((c for c in conditions if c.get("type") == cond["type"]), None)
    since = old.get("lastTransitionTime") if old and old.get("status") == cond["status"] else None
    new = {**cond, "lastTransitionTime": since or _iso(now)}
    if old is None:
        return [*conditions, new]
    return [new if c.get("type") == cond["type"] else c for c in conditions]


def _with_status(wl: Obj, status: Obj) -> Obj:
    out = {k: copy.deepcopy(v) for k, v in wl.items() if k != "status"}
    out["status"] = status
    return out


def released(wl: Obj, now: dt.datetime) -> Obj:
    """The evicted Workload once its pods are gone: admission cleared, QuotaReserved and
    Admitted False, Requeued True, so Kueue queues it again (what Kueue's job reconciler does
    for its own jobs after stopping them)."""
    evicted = _condition(wl, "Evicted") or {}
    reason = str(evicted.get("reason") or "Evicted")
    message = str(evicted.get("message") or "evicted")[:1024]
    generation = (wl.get("metadata") or {}).get("generation")
    status = copy.deepcopy(wl.get("status") or {})
    status.pop("admission", None)
    conditions = list(status.get("conditions") or [])
    for cond in (
        {"type": "Requeued", "status": "True", "reason": reason, "message": message},
        {"type": "QuotaReserved", "status": "False", "reason": "Pending", "message": message},
        {
            "type": "Admitted",
            "status": "False",
            "reason": "NoReservation",
            "message": "The workload has no reservation",
        },
    ):
        conditions = _set(conditions, {**cond, "observedGeneration": generation}, now)
    status["conditions"] = conditions
    return _with_status(wl, status)


def finished(wl: Obj, succeeded: bool, message: str, now: dt.datetime) -> Obj:
    """The Workload marked Finished (Kueue then frees its quota)."""
    generation = (wl.get("metadata") or {}).get("generation")
    status = copy.deepcopy(wl.get("status") or {})
    cond = {
        "type": "Finished",
        "status": "True",
        "reason": "Succeeded" if succeeded else "Failed",
        "message": (message or "the TrainingJob finished")[:1024],
        "observedGeneration": generation,
    }
    status["conditions"] = _set(list(status.get("conditions") or []), cond, now)
    return _with_status(wl, status)
