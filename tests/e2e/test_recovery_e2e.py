"""In-place recovery on kind with real DDP workers (gloo, CPU) and the helm-installed operator:
a worker pod deleted mid-training in an elastic job, and a worker killed in a fixed gang. Neither
recreates the gang: only the lost pod comes back, in the same attempt, and the job finishes."""

from __future__ import annotations

import json
from typing import Any

from recovery_lib import kill_worker_and_time, recovery_job
from tf_kind import KindCluster


def unscraped(job: dict[str, Any]) -> dict[str, Any]:
    """No test here reads Prometheus: the pods need not keep /metrics up after training
    (metrics.lingerSeconds 0 instead of 15 s per pod)."""
    job["spec"]["metrics"]["lingerSeconds"] = 0
    return job


def test_elastic_job_continues_when_a_worker_pod_is_deleted(kind_cluster: KindCluster) -> None:
    job = unscraped(recovery_job("elastic-loss", "InPlace", nodes=2, minNodes=1, maxNodes=2))
    timing, status = kill_worker_and_time(kind_cluster, job)
    print(
        f"elastic: worker 1 deleted at step {timing.killed_at_step}; training advanced "
        f"again {timing.seconds:.1f}s later (resumed from step {timing.resumed_from_step})"
    )
    assert status["phase"] == "Succeeded", json.dumps(status)[:3000]
    assert status["attempt"] == 0, status  # no gang restart
    assert status["inPlaceRestarts"] >= 1, status
    assert any(
        m["change"] == "Left" and m["pod"] == "elastic-loss-worker-1"
        for m in status["membershipChanges"]
    ), status["membershipChanges"]
    events = kind_cluster.events_for("elastic-loss")
    assert "WorkerLeft" in events, events
    assert "Restarting" not in events, events


def test_fixed_gang_recovers_a_killed_worker_in_place(kind_cluster: KindCluster) -> None:
    job = unscraped(recovery_job("fixed-inplace", "InPlace", nodes=2))
    timing, status = kill_worker_and_time(kind_cluster, job)
    print(
        f"in-place recovery time (kill -> steps advancing again): {timing.seconds:.1f}s "
        f"(killed at step {timing.killed_at_step}, resumed from {timing.resumed_from_step})"
    )
    assert status["phase"] == "Succeeded", json.dumps(status)[:3000]
    assert (status["attempt"], status["inPlaceRestarts"]) == (0, 1), status
    assert status["lastFailure"]["pod"] == "fixed-inplace-worker-1", status["lastFailure"]
    assert "RecoveringInPlace" in kind_cluster.events_for("fixed-inplace")


def test_elastic_job_grows_when_scaled_mid_training(kind_cluster: KindCluster) -> None:
    """`kubectl scale` of a running elastic job (nodes 2, maxNodes 3): the third worker is
    created, joins the running world, and the job finishes without any restart counted."""
    job = unscraped(
        recovery_job("elastic-grow", "InPlace", epochs=15, nodes=2, minNodes=2, maxNodes=3)
    )
    # The digits trainer splits each global batch over the ranks: it must divide by 2 and 3.
    job["spec"]["hyperparameters"]["batch_size"] = 60
    kind_cluster.recreate_job(job)
    kind_cluster.wait_job(
        "elastic-grow",
        lambda s: s.get("phase") == "Running" and ((s.get("progress") or {}).get("step") or 0) > 0,
        timeout=600,
        what="train on two nodes",
    )
    kind_cluster.kubectl("scale", "tj/elastic-grow", "--replicas=3", check=True)
    grown = kind_cluster.wait_job(
        "elastic-grow",
        lambda s: s.get("currentNodes") == 3 or s.get("phase") in ("Succeeded", "Failed"),
        timeout=600,
        what="grow to three running workers",
    )
    assert grown.get("currentNodes") == 3, json.dumps(grown)[:3000]
    status = kind_cluster.wait_job("elastic-grow")
    print(f"grown to 3 at step {(grown.get('progress') or {}).get('step')}; {status['message']}")
    assert status["phase"] == "Succeeded", json.dumps(status)[:3000]
    assert (status["attempt"], status["restarts"]) == (0, 0), status
    joined = [m for m in status["membershipChanges"] if m["change"] == "Joined"]
    assert [m["pod"] for m in joined] == ["elastic-grow-worker-2"], status["membershipChanges"]
    events = kind_cluster.events_for("elastic-grow")
    assert "ScaledUp" in events, events
    assert "WorkerJoined" in events, events
    assert "Restarting" not in events, events
