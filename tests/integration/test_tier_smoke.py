"""Smoke tests of the control-plane tier itself: fake nodes, scheduling, and kwok pod lifecycles."""

from __future__ import annotations

import json
import time
from typing import Any

from tf_controlplane import ControlPlane


def pod(name: str, annotations: dict[str, str] | None = None, gpus: int = 0) -> dict[str, Any]:
    """A minimal pod; with GPUs it targets the GPU pool and tolerates its taint."""
    container: dict[str, Any] = {"name": "main", "image": "trainforge/worker:0.1.0"}
    spec: dict[str, Any] = {"containers": [container], "restartPolicy": "Never"}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
        spec["nodeSelector"] = {"trainforge.io/pool": "gpu"}
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": spec,
    }


def create(cp: ControlPlane, ns: str, manifest: dict[str, Any]) -> None:
    cp.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(manifest), check=True)


def wait_pod(cp: ControlPlane, ns: str, name: str, phases: set[str], timeout: float = 30) -> Any:
    """Poll until the pod reaches one of ``phases``; return the pod object."""
    deadline = time.monotonic() + timeout
    obj: Any = {}
    while time.monotonic() < deadline:
        obj = cp.kubectl_json("get", "pod", name, "-n", ns)
        if obj.get("status", {}).get("phase") in phases:
            return obj
        time.sleep(0.3)
    raise AssertionError(f"pod {name} never reached {phases}: {json.dumps(obj.get('status'))}")


def test_nodes_advertise_gpu_pool(control_plane: ControlPlane) -> None:
    nodes = control_plane.kubectl_json("get", "nodes")["items"]
    gpu = [n for n in nodes if n["metadata"]["labels"].get("trainforge.io/pool") == "gpu"]
    cpu = [n for n in nodes if n["metadata"]["labels"].get("trainforge.io/pool") == "cpu"]
    assert len(gpu) >= 2
    assert len(cpu) >= 2
    for node in gpu:
        assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"
        assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"} in node[
            "spec"
        ]["taints"]
    for node in gpu + cpu:
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}
        assert ready["Ready"] == "True"


def test_plain_pod_runs_and_stays_running(control_plane: ControlPlane, namespace: str) -> None:
    create(control_plane, namespace, pod("plain"))
    obj = wait_pod(control_plane, namespace, "plain", {"Running"})
    assert obj["spec"]["nodeName"].startswith("cpu-")  # untolerated GPU taint keeps it off GPUs
    assert obj["status"]["podIP"]
    assert obj["status"]["containerStatuses"][0]["ready"] is True
    time.sleep(3)
    again = control_plane.kubectl_json("get", "pod", "plain", "-n", namespace)
    assert again["status"]["phase"] == "Running"


def test_gpu_pod_schedules_on_gpu_pool(control_plane: ControlPlane, namespace: str) -> None:
    create(control_plane, namespace, pod("gpu", gpus=8))
    obj = wait_pod(control_plane, namespace, "gpu", {"Running"})
    assert obj["spec"]["nodeName"].startswith("gpu-")


def test_gpu_request_beyond_capacity_stays_pending(
    control_plane: ControlPlane, namespace: str
) -> None:
    create(control_plane, namespace, pod("huge", gpus=9))
    time.sleep(2)
    obj = control_plane.kubectl_json("get", "pod", "huge", "-n", namespace)
    assert obj["status"]["phase"] == "Pending"
    scheduled = {c["type"]: c for c in obj["status"].get("conditions", [])}["PodScheduled"]
    assert scheduled["status"] == "False"
    assert "nvidia.com/gpu" in scheduled["message"]


def test_exit_code_annotation_fails_pod(control_plane: ControlPlane, namespace: str) -> None:
    annotations = {
        "kwok.trainforge.io/exit-code": "42",
        "kwok.trainforge.io/run-seconds": "1",
        "kwok.trainforge.io/termination-message": '{"reason": "oom"}',
    }
    create(control_plane, namespace, pod("crash", annotations))
    obj = wait_pod(control_plane, namespace, "crash", {"Failed", "Succeeded"})
    assert obj["status"]["phase"] == "Failed"
    terminated = obj["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 42
    assert terminated["message"] == '{"reason": "oom"}'


def test_exit_code_zero_succeeds(control_plane: ControlPlane, namespace: str) -> None:
    create(control_plane, namespace, pod("done", {"kwok.trainforge.io/exit-code": "0"}))
    started = time.monotonic()
    obj = wait_pod(control_plane, namespace, "done", {"Failed", "Succeeded"})
    assert time.monotonic() - started >= 1.5  # default run-seconds is 2
    assert obj["status"]["phase"] == "Succeeded"
    assert obj["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0


def test_deleted_pod_disappears(control_plane: ControlPlane, namespace: str) -> None:
    create(control_plane, namespace, pod("gone"))
    wait_pod(control_plane, namespace, "gone", {"Running"})
    proc = control_plane.kubectl("delete", "pod", "gone", "-n", namespace, "--timeout=20s")
    assert proc.returncode == 0, proc.stderr
    assert control_plane.kubectl("get", "pod", "gone", "-n", namespace).returncode != 0
