"""Shared builders of TrainingJob bodies and observed pods for the pure-logic unit tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from trainforge_operator.config import NodePool, OperatorConfig

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def make_job(
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    name: str = "digits",
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    base: dict[str, Any] = {"command": ["python", "-m", "train"]}
    base.update(spec or {})
    return {
        "apiVersion": "trainforge.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {
            "name": name,
            "namespace": "ml",
            "uid": "uid-1",
            "generation": 1,
            "resourceVersion": "10",
            "labels": labels or {},
        },
        "spec": base,
        "status": status or {},
    }


def make_pod(
    index: int,
    phase: str = "Running",
    attempt: int = 0,
    job: str = "digits",
    exit_code: int | None = None,
    finished_at: str = "2026-01-01T12:00:05Z",
    created: str = "2026-01-01T12:00:00Z",
    message: str = "",
    scheduled: bool = True,
    **status: Any,
) -> dict[str, Any]:
    pod_status: dict[str, Any] = {"phase": phase, **status}
    if exit_code is not None:
        pod_status["containerStatuses"] = [
            {
                "name": "worker",
                "state": {
                    "terminated": {
                        "exitCode": exit_code,
                        "reason": "Completed" if exit_code == 0 else "Error",
                        "finishedAt": finished_at,
                        "message": message,
                    }
                },
            }
        ]
    if not scheduled:
        pod_status.setdefault("conditions", []).append(
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
            }
        )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{job}-worker-{index}",
            "namespace": "ml",
            "creationTimestamp": created,
            "labels": {
                "trainforge.io/job-name": job,
                "trainforge.io/job-uid": "uid-1",
                "trainforge.io/replica-index": str(index),
                "trainforge.io/attempt": str(attempt),
            },
        },
        "spec": {"nodeName": "node-1"} if scheduled else {},
        "status": pod_status,
    }


def node_pools() -> dict[str, NodePool]:
    """An NVIDIA pool with its taint and an AMD pool, as the tests' operator config maps them."""
    return {
        "gpu": NodePool(
            node_selector={"trainforge.io/pool": "gpu"},
            tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            gpu_resource_name="nvidia.com/gpu",
        ),
        "amd": NodePool(node_selector={"pool": "amd"}, gpu_resource_name="amd.com/gpu"),
    }


@pytest.fixture
def config() -> OperatorConfig:
    return OperatorConfig(default_image="trainforge/worker:test", node_pools=node_pools())
