"""Kueue admission (policies/queue.py, kueue.py): what one pass decides for each answer of Kueue.

The Workload objects here have the shape Kueue v0.19 writes (conditions QuotaReserved, Admitted,
Evicted, status.admission.podSetAssignments); the same flows run against a real Kueue in
tests/integration/test_kueue.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from trainforge_operator import kueue
from trainforge_operator.config import OperatorConfig
from trainforge_operator.decision import decide
from trainforge_operator.plan import Observed, Plan, QueueView

from ..conftest import T0, make_job, make_pod
from ..golden import assert_golden

Obj = dict[str, Any]
LABELS = {"kueue.x-k8s.io/queue-name": "team", "kueue.x-k8s.io/priority-class": "high"}
SPEC = {"nodePool": "gpu", "resources": {"gpus": 4}, "parallelism": {"nodes": 2}}
LQ = {"spec": {"clusterQueue": "research"}}
FLAVOR = {
    "spec": {
        "nodeLabels": {"cloud.example.com/zone": "a"},
        "tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
    }
}
WL_NAME = kueue.workload_name("digits", "uid-digits")


@pytest.fixture
def kconfig(config: OperatorConfig) -> OperatorConfig:
    return config.model_copy(update={"kueue": True})


def cond(type_: str, status: str, reason: str = "", message: str = "") -> Obj:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def wl(*conditions: Obj, admitted_to: str | None = None) -> Obj:
    status: Obj = {"conditions": list(conditions)}
    if admitted_to:
        status["admission"] = {
            "clusterQueue": admitted_to,
            "podSetAssignments": [{"name": "workers", "count": 2, "flavors": {"cpu": "a100"}}],
        }
    return {
        "apiVersion": kueue.API_VERSION,
        "kind": "Workload",
        "metadata": {"name": WL_NAME, "namespace": "ml", "resourceVersion": "7", "generation": 1},
        "spec": {"queueName": "team"},
        "status": status,
    }


ADMITTED = wl(cond("QuotaReserved", "True"), cond("Admitted", "True"), admitted_to="research")
PENDING = wl(
    cond("QuotaReserved", "False", "Pending", "insufficient unused quota for nvidia.com/gpu")
)
EVICTED = wl(
    cond("QuotaReserved", "True"),
    cond("Admitted", "True"),
    cond("Evicted", "True", "Preempted", "Preempted to accommodate a higher priority Workload"),
    admitted_to="research",
)
QUEUED = {
    "phase": "Queued",
    "conditions": [
        {"type": "Queued", "status": "True", "reason": "Pending",
         "lastTransitionTime": "2026-01-01T12:00:00Z"}
    ],
}  # fmt: skip


def job(status: Obj | None = None) -> Obj:
    body = make_job(SPEC, status=status, labels=LABELS)
    body["metadata"]["uid"] = "uid-digits"
    return body


def decide_with(
    config: OperatorConfig,
    view: QueueView | None,
    status: Obj | None = None,
    pods: list[Obj] | None = None,
    at: float = 0,
) -> Plan:
    observed = Observed(
        body=job(status),
        pods=pods or [],
        has_service=True,
        has_configmap=True,
        now=T0 + dt.timedelta(seconds=at),
        queue=view,
    )
    return decide(observed, config)


def condition(plan: Plan, type_: str) -> Any:
    return next(c for c in plan.status.conditions if c.type == type_)


def test_first_pass_creates_the_workload_and_no_pods(kconfig: OperatorConfig) -> None:
    plan = decide_with(kconfig, QueueView(workload=None, local_queue=LQ, priority=1000))
    assert plan.workload_create is not None
    assert plan.workload_create["spec"]["priority"] == 1000
    assert plan.create == []
    assert plan.status.phase == "Queued"
    queued = condition(plan, "Queued")
    assert queued.status == "True"
    assert "LocalQueue team (ClusterQueue research)" in queued.message
    assert [e.reason for e in plan.events] == ["Queued"]
    assert plan.status.start_time is None  # queued time counts towards no deadline


def test_workload_golden(kconfig: OperatorConfig, update_goldens: bool) -> None:
    plan = decide_with(kconfig, QueueView(workload=None, local_queue=LQ, priority=1000))
    assert plan.workload_create is not None
    assert_golden("kueue/workload", [plan.workload_create], update_goldens)


def test_missing_priority_class_holds_the_job_and_says_so(kconfig: OperatorConfig) -> None:
    plan = decide_with(kconfig, QueueView(workload=None, priority_missing=True))
    assert plan.workload_create is None
    assert condition(plan, "Queued").reason == "PriorityClassNotFound"
    assert "WorkloadPriorityClass high" in plan.status.message


def test_pending_workload_passes_kueue_reason_on(kconfig: OperatorConfig) -> None:
    plan = decide_with(kconfig, QueueView(workload=PENDING, local_queue=LQ), status=QUEUED, at=5)
    assert plan.status.phase == "Queued"
    assert plan.create == []
    assert plan.events == []  # still queued: no repeated Event
    assert "insufficient unused quota" in plan.status.message
    assert plan.requeue_after == 2.0


def test_admission_creates_the_gang_on_the_admitted_flavor(kconfig: OperatorConfig) -> None:
    view = QueueView(workload=ADMITTED, flavors={"a100": FLAVOR})
    plan = decide_with(kconfig, view, status=QUEUED, at=42)
    assert plan.queued_seconds == 42
    assert [e.reason for e in plan.events][:1] == ["Admitted"]
    assert condition(plan, "Queued").status == "False"
    pods = [o for o in plan.create if o["kind"] == "Pod"]
    assert len(pods) == 2
    for pod in pods:
        assert pod["spec"]["nodeSelector"]["cloud.example.com/zone"] == "a"
        assert pod["spec"]["nodeSelector"]["trainforge.io/pool"] == "gpu"  # the pool's, kept
        assert FLAVOR["spec"]["tolerations"][0] in pod["spec"]["tolerations"]
    assert plan.status.start_time is not None


def test_eviction_stops_the_gang_without_counting_a_restart(kconfig: OperatorConfig) -> None:
    running = {
        "phase": "Running",
        "restarts": 1,
        "attempt": 1,
        "startTime": "2026-01-01T12:00:00Z",
        "runningTime": "2026-01-01T12:00:00Z",
        "progress": {"step": 30},
    }
    pods = [make_pod(0, attempt=1), make_pod(1, attempt=1)]
    plan = decide_with(kconfig, QueueView(workload=EVICTED), status=running, pods=pods, at=60)
    assert sorted(plan.delete_pods) == ["digits-worker-0", "digits-worker-1"]
    assert plan.workload_status is None  # the quota is given back only once the pods are gone
    assert plan.status.phase == "Queued"
    assert plan.status.restarts == 1
    assert plan.status.attempt == 1
    assert not plan.restarted
    assert plan.status.start_time is None
    assert plan.status.running_time is None
    queued = condition(plan, "Queued")
    assert queued.reason == "Preempted"
    assert "checkpoint kept (last reported step 30)" in queued.message
    assert [e.reason for e in plan.events] == ["Evicted"]


def test_evicted_without_pods_releases_the_admission(kconfig: OperatorConfig) -> None:
    plan = decide_with(kconfig, QueueView(workload=EVICTED), status=QUEUED, at=61)
    released = plan.workload_status
    assert released is not None
    assert "admission" not in released["status"]
    states = {c["type"]: (c["status"], c["reason"]) for c in released["status"]["conditions"]}
    assert states["QuotaReserved"] == ("False", "Pending")
    assert states["Admitted"] == ("False", "NoReservation")
    assert states["Requeued"] == ("True", "Preempted")
    assert states["Evicted"] == ("True", "Preempted")  # Kueue resets it on the next admission
    assert released["metadata"]["resourceVersion"] == "7"  # written at what was read


def test_finished_job_marks_the_workload_finished_once(kconfig: OperatorConfig) -> None:
    done = {"phase": "Succeeded", "message": "all workers succeeded"}
    plan = decide_with(kconfig, QueueView(workload=ADMITTED), status=done)
    assert plan.workload_status is not None
    finished = plan.workload_status["status"]["conditions"][-1]
    assert (finished["type"], finished["status"], finished["reason"]) == (
        "Finished",
        "True",
        "Succeeded",
    )
    marked = plan.workload_status
    again = decide_with(kconfig, QueueView(workload=marked), status=done)
    assert again.workload_status is None
    assert condition(again, "Queued").reason == "WorkloadFinished"


def test_without_the_kueue_setting_the_label_changes_nothing(config: OperatorConfig) -> None:
    plan = decide_with(config, QueueView(workload=None))
    assert plan.workload_create is None
    assert plan.status.phase == "Pending"
    assert len([o for o in plan.create if o["kind"] == "Pod"]) == 2


def test_a_running_gang_whose_workload_vanished_is_stopped(kconfig: OperatorConfig) -> None:
    pods = [make_pod(0), make_pod(1)]
    plan = decide_with(kconfig, QueueView(workload=None), status={"phase": "Running"}, pods=pods)
    assert plan.workload_create is not None
    assert sorted(plan.delete_pods) == ["digits-worker-0", "digits-worker-1"]
    assert plan.status.phase == "Queued"


def test_an_admitted_running_job_reads_its_workload_again_at_the_progress_interval(
    kconfig: OperatorConfig,
) -> None:
    """Workloads are polled: even with a progress source that needs no timer (the annotation),
    a running admitted job looks at its Workload every progressIntervalSeconds, so an eviction
    is seen that soon."""
    quiet = kconfig.model_copy(update={"progress_source": "annotation"})
    running = {"phase": "Running", "attempt": 0, "conditions": [cond("Admitted", "True")]}
    workers = [make_pod(0, "Running"), make_pod(1, "Running")]
    plan = decide_with(quiet, QueueView(workload=ADMITTED), status=running, pods=workers, at=60)
    assert plan.status.phase == "Running"
    assert plan.requeue_after == quiet.progress_interval_seconds
