"""The kind cluster as a user meets it: a GPU pool, a running operator, and bad TrainingJobs
rejected by `kubectl apply` itself, with a message that says what to fix."""

from __future__ import annotations

from typing import Any

import pytest
from tf_kind import KindCluster, load_example


def test_gpu_pool_nodes(kind_cluster: KindCluster) -> None:
    nodes = kind_cluster.kubectl_json("get", "nodes", "-l", "trainforge.io/pool=gpu")["items"]
    assert len(nodes) == 2
    for node in nodes:
        assert node["status"]["capacity"]["nvidia.com/gpu"] == "8"
        assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"} in node[
            "spec"
        ]["taints"]


def test_operator_runs_non_root_and_ready(kind_cluster: KindCluster) -> None:
    pods = kind_cluster.operator_pods()
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    pod = pods[0]
    assert pod["status"]["phase"] == "Running"
    security = pod["spec"]["securityContext"]
    assert security.get("runAsNonRoot") is True
    container = pod["spec"]["containers"][0]["securityContext"]
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False


def _with(spec: dict[str, Any], name: str) -> dict[str, Any]:
    job = load_example("digits-ddp.yaml")
    job["metadata"]["name"] = name
    job["spec"].update(spec)
    return job


@pytest.mark.parametrize(
    ("name", "spec", "message"),
    [
        (
            "bad-tp",
            {"parallelism": {"layout": "tensor", "tensorParallel": 3, "nodes": 2}},
            "must divide the world size",
        ),
        ("bad-layout", {"parallelism": {"layout": "mesh", "nodes": 2}}, "spec.parallelism.layout"),
        ("bad-nodes", {"parallelism": {"layout": "data", "nodes": -1}}, "spec.parallelism.nodes"),
    ],
)
def test_invalid_trainingjob_is_rejected_by_kubectl(
    kind_cluster: KindCluster, name: str, spec: dict[str, Any], message: str
) -> None:
    proc = kind_cluster.apply(_with(spec, name))
    assert proc.returncode != 0, proc.stdout
    assert message in proc.stderr, proc.stderr
    assert kind_cluster.kubectl("get", "trainingjob", name).returncode != 0  # nothing was stored


def test_too_long_name_is_rejected_with_the_limit(kind_cluster: KindCluster) -> None:
    proc = kind_cluster.apply(_with({}, "n" * 60))
    assert proc.returncode != 0
    assert "metadata.name is too long" in proc.stderr, proc.stderr
