"""Smoke tests of the control-plane tier itself: fake nodes, scheduling, and kwok pod lifecycles."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tf_controlplane import ControlPlane

T = TypeVar("T")


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


def wait_until(what: str, probe: Callable[[], T | None], timeout: float = 30) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def holds_for(what: str, check: Callable[[], str | None], seconds: float) -> None:
    """Poll `check` for `seconds`; it returns None while `what` holds, else why it does not."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        problem = check()
        assert problem is None, f"{what} stopped holding: {problem}"
        time.sleep(0.3)


def get_pod(cp: ControlPlane, ns: str, name: str) -> Any:
    return cp.kubectl_json("get", "pod", name, "-n", ns)


def wait_pod(cp: ControlPlane, ns: str, name: str, phases: set[str], timeout: float = 30) -> Any:
    """Poll until the pod reaches one of ``phases``; return the pod object."""

    def probe() -> Any:
        obj = get_pod(cp, ns, name)
        return obj if obj.get("status", {}).get("phase") in phases else None

    return wait_until(f"pod {name} in {phases}", probe, timeout)


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

    def still_running() -> str | None:
        pod = get_pod(control_plane, namespace, "plain")
        status = pod["status"]
        if status["phase"] != "Running" or status["containerStatuses"][0]["restartCount"]:
            return json.dumps(status)
        return None

    holds_for("pod plain Running without restarts", still_running, seconds=3)


def test_gpu_pod_schedules_on_gpu_pool(control_plane: ControlPlane, namespace: str) -> None:
    create(control_plane, namespace, pod("gpu", gpus=8))
    obj = wait_pod(control_plane, namespace, "gpu", {"Running"})
    assert obj["spec"]["nodeName"].startswith("gpu-")


def test_gpu_request_beyond_capacity_stays_pending(
    control_plane: ControlPlane, namespace: str
) -> None:
    create(control_plane, namespace, pod("huge", gpus=9))

    def scheduling_verdict() -> Any:
        obj = get_pod(control_plane, namespace, "huge")
        conditions = {c["type"]: c for c in obj["status"].get("conditions", [])}
        return (obj, conditions["PodScheduled"]) if "PodScheduled" in conditions else None

    obj, scheduled = wait_until("the scheduler's verdict on pod huge", scheduling_verdict)
    assert scheduled["status"] == "False"
    assert scheduled["reason"] == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in scheduled["message"]
    assert obj["status"]["phase"] == "Pending"
    assert "nodeName" not in obj["spec"]


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
    after = control_plane.kubectl("get", "pod", "gone", "-n", namespace)
    assert after.returncode != 0
    assert "NotFound" in after.stderr, after.stderr
