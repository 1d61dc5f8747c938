# ruff: noqa: F811  (pytest fixtures imported from operator_fixture are re-bound as arguments)
"""TrainingJobs admitted by a real Kueue (v0.19, hack/build-kueue.sh) on the control-plane tier.

Kueue's manager runs as a tier process (tf_kueue.py); the operator runs with `kueue: true` and
speaks the Workload protocol (docs/kueue.md). Each test gets its own ClusterQueue (selecting only
its namespace) and a LocalQueue `team`; jobs ask for 2 workers x 4 GPUs = 8 GPUs per gang.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from operator_fixture import (  # noqa: F401  (fixtures)
    Cluster,
    OperatorHandle,
    kube_client,
    operator_config_for,
    trainforge_crd,
    wait_for,
)
from prometheus_client import REGISTRY
from tf_controlplane import ControlPlane

EXIT = "kwok.trainforge.io/exit-code"
KUEUE = "kueue.x-k8s.io/v1beta2"
GANG_GPUS = 8


@pytest.fixture(scope="session")
def kueue(control_plane: ControlPlane) -> ControlPlane:
    """Kueue's manager, started once for the session, and a GPU ResourceFlavor."""
    control_plane.start_kueue()
    control_plane.apply(
        {
            "apiVersion": KUEUE,
            "kind": "ResourceFlavor",
            "metadata": {"name": "a100"},
            "spec": {
                "nodeLabels": {"trainforge.io/pool": "gpu"},
                "tolerations": [
                    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
                ],
            },
        }
    )
    return control_plane


@pytest.fixture
def kueue_operator(
    kueue: ControlPlane, kube_client: Any, trainforge_crd: None, namespace: str
) -> Iterator[OperatorHandle]:
    config = operator_config_for(namespace).model_copy(update={"kueue": True})
    handle = OperatorHandle(config=config, api_client=kube_client)
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


def queues(cp: ControlPlane, namespace: str, gangs: int, preemption: bool = False) -> str:
    """A ClusterQueue for this namespace with quota for `gangs` gangs, and LocalQueue `team`."""
    spec: dict[str, Any] = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        "resourceGroups": [
            {
                "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                "flavors": [
                    {
                        "name": "a100",
                        "resources": [
                            {"name": "cpu", "nominalQuota": "1000"},
                            {"name": "memory", "nominalQuota": "10Ti"},
                            {"name": "nvidia.com/gpu", "nominalQuota": str(gangs * GANG_GPUS)},
                        ],
                    }
                ],
            }
        ],
    }
    if preemption:
        spec["preemption"] = {"withinClusterQueue": "LowerPriority"}
    cq = f"cq-{namespace}"[:63]
    cp.apply({"apiVersion": KUEUE, "kind": "ClusterQueue", "metadata": {"name": cq}, "spec": spec})
    cp.apply(
        {
            "apiVersion": KUEUE,
            "kind": "LocalQueue",
            "metadata": {"name": "team", "namespace": namespace},
            "spec": {"clusterQueue": cq},
        }
    )
    return cq


def tj(name: str, priority: str | None = None, **run_policy: Any) -> dict[str, Any]:
    labels = {"kueue.x-k8s.io/queue-name": "team"}
    if priority:
        labels["kueue.x-k8s.io/priority-class"] = priority
    return {
        "apiVersion": "trainforge.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "command": ["python", "train.py"],
            "nodePool": "gpu",
            "resources": {"gpus": GANG_GPUS // 2},
            "parallelism": {"nodes": 2},
            "runPolicy": {"restartBackoffSeconds": 1, **run_policy},
        },
    }


def submit(cp: ControlPlane, namespace: str, manifest: dict[str, Any]) -> None:
    cp.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest), check=True)


def live_pods(c: Cluster, name: str) -> list[Any]:
    return [p for p in c.pods(name) if p.metadata.deletion_timestamp is None]


def finish(c: Cluster, name: str) -> None:
    for pod in live_pods(c, name):
        c.annotate_pod(pod.metadata.name, {EXIT: "0"})
    c.wait_phase(name, "Succeeded")


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(x for x in status.get("conditions") or [] if x["type"] == type_)


def workload(cp: ControlPlane, namespace: str, job: str) -> dict[str, Any]:
    items = cp.kubectl_json("get", "workloads.kueue.x-k8s.io", "-n", namespace)["items"]
    return next(w for w in items if w["metadata"]["ownerReferences"][0]["name"] == job)


def queued_count() -> float:
    return REGISTRY.get_sample_value("trainforge_job_queued_seconds_count") or 0.0


def test_quota_for_two_gangs_queues_the_third(
    kueue: ControlPlane, namespace: str, kube_client: Any, kueue_operator: OperatorHandle
) -> None:
    c = Cluster(kube_client, namespace)
    cq = queues(kueue, namespace, gangs=2)
    admitted_before = queued_count()
    names = ["one", "two", "three"]
    for name in names:
        submit(kueue, namespace, tj(name))

    def split() -> tuple[list[str], list[str]] | None:
        running = [n for n in names if c.phase(n) == "Running"]
        queued = [n for n in names if c.phase(n) == "Queued"]
        return (running, queued) if len(running) == 2 and len(queued) == 1 else None

    running, (waiting,) = wait_for("two Running and one Queued", split, timeout=60)

    def kueue_reason() -> dict[str, Any] | None:
        """Kueue's reason reaches the job at the operator's next Workload poll (2 s)."""
        cond = condition(c.status(waiting), "Queued")
        return cond if "insufficient unused quota" in cond["message"] else None

    queued = wait_for("Kueue's reason in the Queued condition", kueue_reason, timeout=30)
    assert live_pods(c, waiting) == []
    assert queued["status"] == "True"
    assert f"LocalQueue team (ClusterQueue {cq})" in queued["message"]
    assert "Queued" in c.event_reasons(waiting, "Queued")
    table = kueue.kubectl("get", "tj", "-n", namespace, check=True).stdout
    assert any(line.split()[0] == waiting and "Queued" in line for line in table.splitlines())
    for name in running:
        pods = live_pods(c, name)
        assert len(pods) == 2
        # Placed by the admitted ResourceFlavor (nodeLabels + tolerations), on the GPU nodes.
        assert all(p.spec.node_selector["trainforge.io/pool"] == "gpu" for p in pods)

    time.sleep(3)  # still queued while the quota is taken: nothing else admits it
    assert c.phase(waiting) == "Queued"
    assert live_pods(c, waiting) == []

    finish(c, running[0])
    wait_for(
        f"{running[0]}'s Workload Finished",
        lambda: any(
            x["type"] == "Finished" and x["status"] == "True"
            for x in workload(kueue, namespace, running[0])["status"]["conditions"]
        ),
    )
    status = c.wait_phase(waiting, "Running", timeout=60)
    assert condition(status, "Queued")["status"] == "False"
    assert "Admitted" in c.event_reasons(waiting, "Admitted")
    assert queued_count() >= admitted_before + 3  # every job's wait was measured


def test_preempted_job_keeps_its_checkpoint_and_resumes(
    kueue: ControlPlane, namespace: str, kube_client: Any, kueue_operator: OperatorHandle
) -> None:
    c = Cluster(kube_client, namespace)
    queues(kueue, namespace, gangs=1, preemption=True)
    low, high = f"{namespace}-low"[:63], f"{namespace}-high"[:63]
    for name, value in ((low, 100), (high, 1000)):
        kueue.apply(
            {
                "apiVersion": KUEUE,
                "kind": "WorkloadPriorityClass",
                "metadata": {"name": name},
                "value": value,
            }
        )
    submit(kueue, namespace, tj("batch", low))
    c.wait_phase("batch", "Running", timeout=60)
    progress = {"step": 30, "totalSteps": 100, "metrics": {"loss": 0.5}}
    c.annotate_pod("batch-worker-0", {"trainforge.io/progress": json.dumps(progress)})
    wait_for("step 30 polled", lambda: (c.status("batch").get("progress") or {}).get("step") == 30)
    before = c.status("batch")

    submit(kueue, namespace, tj("urgent", high))
    status = c.wait_phase("batch", "Queued", timeout=60)
    queued = condition(status, "Queued")
    assert queued["reason"] == "Preempted"
    assert "checkpoint kept (last reported step 30)" in queued["message"]
    assert status["progress"]["step"] == 30  # the status keeps where training got to
    assert "Evicted" in c.event_reasons("batch", "Evicted")
    wait_for("the preempted gang's pods gone", lambda: c.pods("batch") == [])
    c.wait_phase("urgent", "Running", timeout=60)
    assert c.phase("batch") == "Queued"

    finish(c, "urgent")
    status = c.wait_phase("batch", "Running", timeout=60)
    # No failure and no restart is counted: an eviction is not the job's fault.
    assert status["restarts"] == before["restarts"] == 0
    assert status["attempt"] == before["attempt"]
    assert "lastFailure" not in status
    assert len(live_pods(c, "batch")) == 2


def test_deadlines_do_not_count_queued_time(
    kueue: ControlPlane, namespace: str, kube_client: Any, kueue_operator: OperatorHandle
) -> None:
    c = Cluster(kube_client, namespace)
    queues(kueue, namespace, gangs=1)
    submit(kueue, namespace, tj("first"))
    c.wait_phase("first", "Running", timeout=60)
    limits = {"activeDeadlineSeconds": 6, "maxPendingSeconds": 6}
    late = tj("late", **limits)
    submit(kueue, namespace, late)
    c.wait_phase("late", "Queued")
    time.sleep(10)  # queued far longer than either limit
    assert c.phase("late") == "Queued"
    finish(c, "first")
    status = c.wait_phase("late", "Running", timeout=60)
    assert "startTime" in status
    # The deadline still applies, counted from the admission: it fails ~6s after it started.
    status = c.wait_phase("late", "Failed", timeout=30)
    failed = condition(status, "Failed")
    assert failed["reason"] == "DeadlineExceeded"
    body = c.job("late") or {}
    created = body["metadata"]["creationTimestamp"]
    ran = _seconds(status["completionTime"]) - _seconds(status["startTime"])
    waited = _seconds(status["startTime"]) - _seconds(created)
    assert ran < 15, (ran, status)
    assert waited >= 10, (waited, status)


def _seconds(stamp: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
