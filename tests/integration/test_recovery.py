# ruff: noqa: F811  (pytest fixtures imported from operator_fixture are re-bound as arguments)
"""In-place recovery and elastic membership against a real control plane with kwok workers:
which pods the operator deletes and creates when one worker fails or disappears, and what the
status and Events say (policies/recovery.py). kwok pods run until the test sets the annotation
`kwok.trainforge.io/exit-code`, then terminate with that code."""

from __future__ import annotations

from typing import Any

from operator_fixture import (  # noqa: F401  (fixtures)
    Cluster,
    OperatorHandle,
    kube_client,
    tf_operator,
    trainforge_crd,
    wait_for,
)
from test_operator import EXIT, RUN_SECONDS, apply, job
from tf_controlplane import ControlPlane


def uids(c: Cluster, name: str) -> dict[str, str]:
    """Pod name -> uid of the job's live pods."""
    return {
        p.metadata.name: p.metadata.uid
        for p in c.pods(name)
        if p.metadata.deletion_timestamp is None
    }


def all_running(c: Cluster, name: str, n: int) -> dict[str, Any] | None:
    pods = [p for p in c.pods(name) if p.metadata.deletion_timestamp is None]
    ok = len(pods) == n and all(p.status.phase == "Running" for p in pods)
    return {p.metadata.name: p for p in pods} if ok else None


def test_a_failed_worker_is_recreated_alone_in_the_same_attempt(
    control_plane: ControlPlane, namespace: str, kube_client: Any, tf_operator: OperatorHandle
) -> None:
    c = Cluster(kube_client, namespace)
    apply(control_plane, namespace, job("inplace", {"parallelism": {"nodes": 3}}))
    wait_for("3 running workers", lambda: all_running(c, "inplace", 3))
    c.wait_phase("inplace", "Running")
    before = uids(c, "inplace")
    c.annotate_pod("inplace-worker-1", {EXIT: "137", RUN_SECONDS: "0"})

    def recovered() -> dict[str, Any] | None:
        now = all_running(c, "inplace", 3)
        new = uids(c, "inplace").get("inplace-worker-1")
        return now if now and new != before["inplace-worker-1"] else None

    pods = wait_for("worker 1 recreated and running", recovered)
    after = uids(c, "inplace")
    assert after["inplace-worker-0"] == before["inplace-worker-0"]  # survivors untouched
    assert after["inplace-worker-2"] == before["inplace-worker-2"]
    assert {p.metadata.labels["trainforge.io/attempt"] for p in pods.values()} == {"0"}
    status = wait_for(
        "status with 3 members again",
        lambda: s if (s := c.status("inplace")).get("currentNodes") == 3 else None,
    )
    assert (status["phase"], status["attempt"]) == ("Running", 0), status
    assert (status["restarts"], status["inPlaceRestarts"]) == (1, 1), status
    assert status["lastFailure"]["pod"] == "inplace-worker-1"
    changes = [(m["change"], m["pod"]) for m in status["membershipChanges"]]
    assert changes == [("Left", "inplace-worker-1"), ("Joined", "inplace-worker-1")], changes
    reasons = c.event_reasons("inplace", "RecoveringInPlace", "WorkerLeft", "WorkerJoined")
    assert "Restarting" not in reasons
    assert "GangRecreated" not in reasons


def test_an_elastic_gang_keeps_running_when_a_worker_pod_is_deleted(
    control_plane: ControlPlane, namespace: str, kube_client: Any, tf_operator: OperatorHandle
) -> None:
    c = Cluster(kube_client, namespace)
    spec = {"parallelism": {"nodes": 3, "minNodes": 2, "maxNodes": 3}}
    apply(control_plane, namespace, job("elastic", spec))
    wait_for("3 running workers", lambda: all_running(c, "elastic", 3))
    c.wait_phase("elastic", "Running")
    before = uids(c, "elastic")
    control_plane.kubectl(
        "delete", "pod", "-n", namespace, "elastic-worker-2", "--wait=false", check=True
    )
    old = before["elastic-worker-2"]
    wait_for(
        "worker 2 back",
        lambda: (
            uids(c, "elastic").get("elastic-worker-2") not in (None, old)
            and all_running(c, "elastic", 3)
        ),
    )
    status = wait_for(
        "status with 3 members again",
        lambda: s if (s := c.status("elastic")).get("currentNodes") == 3 else None,
    )
    assert (status["phase"], status["attempt"], status["inPlaceRestarts"]) == ("Running", 0, 1)
    assert uids(c, "elastic")["elastic-worker-0"] == before["elastic-worker-0"]
    reasons = c.event_reasons("elastic", "WorkerLeft", "WorkerJoined", "RecoveringInPlace")
    assert "Restarting" not in reasons


def test_losing_node_0_still_recreates_the_gang(
    control_plane: ControlPlane, namespace: str, kube_client: Any, tf_operator: OperatorHandle
) -> None:
    c = Cluster(kube_client, namespace)
    apply(control_plane, namespace, job("host", {"parallelism": {"nodes": 2}}))
    wait_for("2 running workers", lambda: all_running(c, "host", 2))
    c.wait_phase("host", "Running")
    c.annotate_pod("host-worker-0", {EXIT: "137", RUN_SECONDS: "0"})
    wait_for(
        "attempt 1 running",
        lambda: (
            (p := all_running(c, "host", 2))
            and {x.metadata.labels["trainforge.io/attempt"] for x in p.values()} == {"1"}
        ),
    )
    status = c.status("host")
    assert (status["attempt"], status["restarts"], status["inPlaceRestarts"]) == (1, 1, 0)
    assert "Restarting" in c.event_reasons("host", "Restarting")
