# ruff: noqa: F811  (pytest fixtures imported from operator_fixture are re-bound as arguments)
"""The operator against a real control plane (apiserver, scheduler, KCM/GC) with kwok GPU nodes.

Worker pods are simulated by kwok: they run until the test (or the podTemplate) sets the
annotation `kwok.trainforge.io/exit-code`, then terminate with that code.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from operator_fixture import (  # noqa: F401  (fixtures)
    Cluster,
    OperatorHandle,
    kube_client,
    tf_operator,
    trainforge_crd,
    wait_for,
)
from prometheus_client import REGISTRY
from tf_controlplane import ControlPlane, free_port

EXIT = "kwok.trainforge.io/exit-code"
RUN_SECONDS = "kwok.trainforge.io/run-seconds"
MESSAGE = "kwok.trainforge.io/termination-message"


def http_get(url: str, timeout: float = 20) -> str:
    """GET with retries while the server starts."""

    def probe() -> str | None:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return str(resp.read().decode())
        except OSError:
            return None

    return wait_for(url, probe, timeout)


def job(name: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "command": ["python", "-m", "trainforge_runtime.trainers.digits"],
        "parallelism": {"nodes": 2},
        "runPolicy": {"restartBackoffSeconds": 1, "maxRestartBackoffSeconds": 2},
    }
    body.update(spec or {})
    return {
        "apiVersion": "trainforge.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": body,
    }


def apply(cp: ControlPlane, ns: str, manifest: dict[str, Any]) -> Any:
    return cp.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest))


def running_pods(c: Cluster, name: str, n: int, attempt: int = 0) -> list[Any]:
    def probe() -> list[Any] | None:
        pods = [
            p
            for p in c.pods(name)
            if p.status.phase == "Running"
            and p.metadata.labels["trainforge.io/attempt"] == str(attempt)
            and p.metadata.deletion_timestamp is None
        ]
        return pods if len(pods) == n else None

    return wait_for(f"{n} running pods of {name} attempt {attempt}", probe)


def test_children_env_and_placement(
    control_plane: ControlPlane, namespace: str, kube_client: Any, tf_operator: OperatorHandle
) -> None:
    c = Cluster(kube_client, namespace)
    spec = {"nodePool": "gpu", "resources": {"gpus": 8}, "parallelism": {"nodes": 2}}
    assert apply(control_plane, namespace, job("place", spec)).returncode == 0
    pods = running_pods(c, "place", 2)
    c.wait_phase("place", "Running")
    svc = c.core.read_namespaced_service("place", namespace)
    assert svc.spec.cluster_ip == "None"
    assert svc.spec.publish_not_ready_addresses
    cm = c.core.read_namespaced_config_map("place-context", namespace)
    ctx = json.loads(cm.data["context.json"])
    assert ctx["parallelism"]["procsPerNode"] == 8
    assert ctx["rendezvous"]["masterAddr"] == f"place-worker-0.place.{namespace}.svc"
    nodes = {n.metadata.name: n for n in c.core.list_node().items}
    for pod in pods:
        env = {e.name: e.value for e in pod.spec.containers[0].env}
        index = pod.metadata.labels["trainforge.io/replica-index"]
        assert env["WORLD_SIZE"] == "16"
        assert env["NODE_RANK"] == index
        assert env["MASTER_ADDR"] == f"place-worker-0.place.{namespace}.svc"
        assert pod.spec.hostname == pod.metadata.name
        assert pod.spec.subdomain == "place"
        assert pod.spec.containers[0].resources.limits["nvidia.com/gpu"] == "8"
        assert pod.metadata.owner_references[0].kind == "TrainingJob"
        assert nodes[pod.spec.node_name].metadata.labels["trainforge.io/pool"] == "gpu"
    assert {p.spec.node_name for p in pods} == {"gpu-0", "gpu-1"}
    table = control_plane.kubectl("get", "tj", "-n", namespace, check=True).stdout
    assert "place" in table
    assert "Running" in table
    assert "GPUS" in table


def test_success_reports_results(
    control_plane: ControlPlane, namespace: str, kube_client: Any, tf_operator: OperatorHandle
) -> None:
    c = Cluster(kube_client, namespace)
    summary = {"exitReason": "completed", "metrics": {"test_accuracy": 0.97}}
    annotations = {EXIT: "0", RUN_SECONDS: "2", MESSAGE: json.dumps(summary)}
    apply(control_plane, namespace, job("ok", {"podTemplate": {"annotations": annotations}}))
    status = c.wait_phase("ok", "Succeeded")
    assert status["results"] == {"test_accuracy": 0.97}
    assert status["completionTime"]
    assert any(cond["type"] == "Succeeded" and cond["status"] == "True"
               for cond in status["conditions"])  # fmt: skip
    assert "Succeeded" in c.event_reasons("ok", "Succeeded")


def test_retryable_failure_restarts_gang_then_succeeds(
    control_plane: ControlPlane, namespace: str, kube_client: Any, tf_operator: OperatorHandle
) -> None:
    c = Cluster(kube_client, namespace)
    policy = {"restartBackoffSeconds": 1, "maxRestartBackoffSeconds": 2, "recovery": "RecreateGang"}
    apply(control_plane, namespace, job("retry", {"runPolicy": policy}))
    running_pods(c, "retry", 2, attempt=0)
    c.annotate_pod("retry-worker-1", {EXIT: "137", RUN_SECONDS: "0"})
    new = running_pods(c, "retry", 2, attempt=1)
    status = c.status("retry")
    assert status["restarts"] == 1
    assert status["attempt"] == 1
    assert status["lastFailure"]["pod"] == "retry-worker-1"
    assert status["lastFailure"]["exitCode"] == 137
    for pod in new:
        c.annotate_pod(pod.metadata.name, {EXIT: "0", RUN_SECONDS: "0"})
    c.wait_phase("retry", "Succeeded")
    reasons = c.event_reasons("retry", "Restarting", "Succeeded")
    assert reasons.count("Restarting") == 1


def test_permanent_failure_reports_exit_code(
    control_plane: ControlPlane, namespace: str, kube_client: Any, tf_operator: OperatorHandle
) -> None:
    c = Cluster(kube_client, namespace)
    annotations = {EXIT: "1", RUN_SECONDS: "1"}
    apply(control_plane, namespace, job("perm", {"podTemplate": {"annotations": annotations}}))
    status = c.wait_phase("perm", "Failed")
    assert status["lastFailure"]["exitCode"] == 1
    assert status["restarts"] == 0
    assert "exited with code 1" in status["message"]
    failed = next(x for x in status["conditions"] if x["type"] == "Failed")
    assert failed["reason"] == "WorkerFailed"


def test_max_restarts_exhausted(
    control_plane: ControlPlane, namespace: str, kube_client: Any, tf_operator: OperatorHandle
) -> None:
    c = Cluster(kube_client, namespace)
    spec = {
        "parallelism": {"nodes": 1},
        "podTemplate": {"annotations": {EXIT: "75", RUN_SECONDS: "0"}},
        "runPolicy": {"maxRestarts": 1, "restartBackoffSeconds": 1},
    }
    apply(control_plane, namespace, job("exhaust", spec))
    status = c.wait_phase("exhaust", "Failed", timeout=60)
    assert status["restarts"] == 1
    assert "maxRestarts=1" in status["message"]
    assert status["lastFailure"]["exitCode"] == 75


def test_max_pending_names_the_missing_resource(
    control_plane: ControlPlane, namespace: str, kube_client: Any, tf_operator: OperatorHandle
) -> None:
    c = Cluster(kube_client, namespace)
    spec = {
        "nodePool": "gpu",
        "resources": {"gpus": 8},
        "parallelism": {"nodes": 3},
        "runPolicy": {"maxPendingSeconds": 5},
    }
    apply(control_plane, namespace, job("toobig", spec))
    status = c.wait_phase("toobig", "Failed", timeout=60)
    assert "maxPendingSeconds=5" in status["message"]
    assert "nvidia.com/gpu" in status["message"]
    wait_for("pods of the pending gang deleted", lambda: not c.pods("toobig"))


def test_suspend_and_resume(
    control_plane: ControlPlane, namespace: str, kube_client: Any, tf_operator: OperatorHandle
) -> None:
    c = Cluster(kube_client, namespace)
    apply(control_plane, namespace, job("pause"))
    running_pods(c, "pause", 2)
    c.patch_job("pause", {"runPolicy": {"suspend": True}})
    c.wait_phase("pause", "Suspended")
    wait_for("pods deleted on suspend", lambda: not c.pods("pause"))
    # Placement may change while suspended (Kueue does this on admission).
    c.patch_job("pause", {"placement": {"nodeSelector": {"kubernetes.io/os": "linux"}}})
    c.patch_job("pause", {"runPolicy": {"suspend": False}})
    running_pods(c, "pause", 2)
    c.wait_phase("pause", "Running")
    reasons = c.event_reasons("pause", "Suspended", "Resumed")
    assert "Suspended" in reasons
    assert "Resumed" in reasons


def test_delete_cleans_up_children(
    control_plane: ControlPlane, namespace: str, kube_client: Any, tf_operator: OperatorHandle
) -> None:
    c = Cluster(kube_client, namespace)
    apply(control_plane, namespace, job("gone"))
    running_pods(c, "gone", 2)
    control_plane.kubectl("delete", "tj", "gone", "-n", namespace, "--wait=true", check=True)

    def cleaned() -> bool:
        cms = c.core.list_namespaced_config_map(namespace).items
        svcs = c.core.list_namespaced_service(namespace).items
        return not c.pods("gone") and not any(
            x.metadata.name.startswith("gone") for x in cms + svcs
        )

    wait_for("garbage collection of pods, service and configmap", cleaned, timeout=60)


def reconciles() -> float:
    """Reconcile passes of the in-process operator so far (each test's operator has one job)."""
    return REGISTRY.get_sample_value("trainforge_reconcile_duration_seconds_count") or 0.0


def test_operator_restart_leaves_no_duplicates(
    control_plane: ControlPlane, namespace: str, kube_client: Any, tf_operator: OperatorHandle
) -> None:
    c = Cluster(kube_client, namespace)
    apply(control_plane, namespace, job("durable", {"parallelism": {"nodes": 3}}))
    wait_for("first pod created", lambda: c.pods("durable"))
    tf_operator.stop()  # killed mid-creation or right after it
    tf_operator.start()
    pods = running_pods(c, "durable", 3)
    c.wait_phase("durable", "Running")
    uids = {p.metadata.uid for p in pods}
    tf_operator.stop()
    tf_operator.start()
    controller = tf_operator.controller
    assert controller is not None
    wait_for(
        "the restarted operator to adopt the job",
        lambda: controller.loops.get((namespace, "durable")),
    )
    before = reconciles()
    wait_for(
        "three reconciles of the running gang by the restarted operator",
        lambda: reconciles() >= before + 3,
        timeout=10 * tf_operator.config.resync_seconds,
    )
    after = c.pods("durable")
    assert len(after) == 3
    assert {p.metadata.uid for p in after} == uids
    assert c.status("durable")["attempt"] == 0
    assert len(c.core.list_namespaced_service(namespace).items) == 1


# Each invalid spec with the fragment of the API server's error that names its rule: the CEL
# rules' messages (crd.py, from trainforge_api.rules) or the OpenAPI schema's own messages.
INVALID_SPECS = [
    pytest.param(
        job("tp", {"parallelism": {"layout": "tensor", "tensorParallel": 3, "nodes": 2}}),
        "must divide the world size",
        id="tensor-parallel-does-not-divide",
    ),
    pytest.param(
        job("dp", {"parallelism": {"layout": "data", "tensorParallel": 2, "nodes": 2}}),
        "spec.parallelism: layout data",
        id="data-layout-with-tensor-parallel",
    ),
    pytest.param(job("n" * 60), "metadata.name is too long", id="name-too-long"),
    pytest.param(job("Bad_Name"), "metadata.name must be a DNS-1035 label", id="name-not-dns-1035"),
    pytest.param(
        job("zero", {"parallelism": {"nodes": 0}}),
        "spec.parallelism.nodes in body should be greater than or equal to 1",
        id="zero-nodes",
    ),
    pytest.param(
        job("lay", {"parallelism": {"layout": "mesh"}}),
        'spec.parallelism.layout: Unsupported value: "mesh"',
        id="unknown-layout",
    ),
]


@pytest.mark.parametrize(("manifest", "fragment"), INVALID_SPECS)
def test_invalid_specs_are_rejected_at_apply(
    control_plane: ControlPlane,
    namespace: str,
    trainforge_crd: None,
    manifest: dict[str, Any],
    fragment: str,
) -> None:
    """The API server itself rejects them (no operator runs), with the rule's own message."""
    name = manifest["metadata"]["name"]
    proc = apply(control_plane, namespace, manifest)
    assert proc.returncode != 0, f"{name} was accepted"
    assert fragment in proc.stderr, proc.stderr
    assert control_plane.kubectl("get", "tj", name, "-n", namespace).returncode != 0


def test_parallelism_is_immutable_unless_suspended(
    control_plane: ControlPlane, namespace: str, kube_client: Any, tf_operator: OperatorHandle
) -> None:
    c = Cluster(kube_client, namespace)
    apply(control_plane, namespace, job("fixed"))
    running_pods(c, "fixed", 2)
    proc = apply(control_plane, namespace, job("fixed", {"parallelism": {"nodes": 3}}))
    assert proc.returncode != 0
    assert "immutable unless the job is suspended" in proc.stderr
    suspended = job("fixed", {"runPolicy": {"suspend": True}})
    assert apply(control_plane, namespace, suspended).returncode == 0
    resized = job("fixed", {"parallelism": {"nodes": 3}, "runPolicy": {"suspend": True}})
    assert apply(control_plane, namespace, resized).returncode == 0
    resumed = job("fixed", {"parallelism": {"nodes": 3}, "runPolicy": {"suspend": False}})
    assert apply(control_plane, namespace, resumed).returncode == 0
    running_pods(c, "fixed", 3)
    cm = c.core.read_namespaced_config_map("fixed-context", namespace)
    assert json.loads(cm.data["context.json"])["parallelism"]["nodes"] == 3


def test_hang_detection_marks_stalled(
    control_plane: ControlPlane, namespace: str, kube_client: Any, tf_operator: OperatorHandle
) -> None:
    c = Cluster(kube_client, namespace)
    spec = {
        "parallelism": {"nodes": 1},
        "runPolicy": {"progressTimeoutSeconds": 6, "onStall": "fail"},
    }
    apply(control_plane, namespace, job("hang", spec))
    running_pods(c, "hang", 1)
    c.wait_phase("hang", "Running")
    for step in (1, 2, 3):
        progress = {"step": step, "totalSteps": 100, "metrics": {"loss": 1.0 / step}}
        c.annotate_pod("hang-worker-0", {"trainforge.io/progress": json.dumps(progress)})
        wait_for(
            f"step {step} in status",
            lambda s=step: (c.status("hang").get("progress") or {}).get("step") == s,
        )  # type: ignore[misc]
    table = control_plane.kubectl("get", "tj", "hang", "-n", namespace, check=True).stdout
    assert "0.333" in table  # the Loss column
    status = c.wait_phase("hang", "Failed", timeout=30)
    stalled = next(x for x in status["conditions"] if x["type"] == "Stalled")
    assert stalled["status"] == "True"
    assert "step 3" in stalled["message"]
    assert "Stalled" in c.event_reasons("hang", "Stalled")


def test_no_progress_source_warns_instead_of_restarting(
    control_plane: ControlPlane, namespace: str, kube_client: Any, tf_operator: OperatorHandle
) -> None:
    # A plain script with no trainforge_sdk: the launcher's /progress says `unreported`.
    c = Cluster(kube_client, namespace)
    spec = {"parallelism": {"nodes": 1}, "runPolicy": {"progressTimeoutSeconds": 4}}
    apply(control_plane, namespace, job("silent", spec))
    running_pods(c, "silent", 1)
    c.wait_phase("silent", "Running")
    unreported = {"step": None, "phase": "unreported"}
    c.annotate_pod("silent-worker-0", {"trainforge.io/progress": json.dumps(unreported)})
    warned = wait_for(
        "the ProgressReported=False warning",
        lambda: next(
            (
                x
                for x in c.status("silent").get("conditions", [])
                if x["type"] == "ProgressReported" and x["status"] == "False"
            ),
            None,
        ),
        timeout=40,
    )
    assert warned["reason"] == "NoProgressSource"
    assert "trainforge_sdk.report" in warned["message"]
    assert "NoProgressSource" in c.event_reasons("silent", "NoProgressSource")
    time.sleep(6)  # past the timeout again: still running, never Stalled nor restarted
    status = c.status("silent")
    assert status["phase"] == "Running"
    assert status.get("restarts", 0) == 0
    assert not any(x["type"] == "Stalled" for x in status.get("conditions", []))


def test_entrypoint_serves_metrics_and_health(
    control_plane: ControlPlane,
    namespace: str,
    kube_client: Any,
    trainforge_crd: None,
    tmp_path: Path,
) -> None:
    """The real `trainforge_operator.main` process: config file, JSON logs, /metrics, /healthz."""
    metrics_port, health_port = free_port(), free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "namespaces": [namespace],
                "metricsPort": metrics_port,
                "healthPort": health_port,
                "nodePools": {"cpu": {"nodeSelector": {"trainforge.io/pool": "cpu"}}},
                "defaultNodePool": "cpu",
            }
        )
    )
    env = {**control_plane.env(), "TRAINFORGE_CONFIG": str(config)}
    log = (tmp_path / "operator.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainforge_operator.main"], env=env, stdout=log, stderr=log
    )
    try:
        c = Cluster(kube_client, namespace)
        apply(control_plane, namespace, job("entry", {"parallelism": {"nodes": 1}}))
        c.wait_phase("entry", "Running")
        text = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert 'trainforge_jobs{phase="Running"} 1.0' in text
        assert "trainforge_reconcile_duration_seconds_count" in text
        assert http_get(f"http://127.0.0.1:{health_port}/healthz")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    lines = (tmp_path / "operator.log").read_text().splitlines()
    assert lines, "the operator logged nothing"
    assert all(line.startswith("{") for line in lines if line.strip()), lines[:5]


def test_unknown_node_pool_fails_with_invalid_spec(
    control_plane: ControlPlane, namespace: str, kube_client: Any, tf_operator: OperatorHandle
) -> None:
    c = Cluster(kube_client, namespace)
    assert apply(control_plane, namespace, job("nopool", {"nodePool": "tpu"})).returncode == 0
    status = c.wait_phase("nopool", "Failed")
    invalid = next(x for x in status["conditions"] if x["type"] == "InvalidSpec")
    assert invalid["status"] == "True"
    assert "spec.nodePool 'tpu' is not configured" in invalid["message"]
    assert not c.pods("nopool")
    # The operator keeps serving other jobs.
    apply(control_plane, namespace, job("fine", {"parallelism": {"nodes": 1}}))
    c.wait_phase("fine", "Running")


def test_ttl_deletes_finished_job(
    control_plane: ControlPlane, namespace: str, kube_client: Any, tf_operator: OperatorHandle
) -> None:
    c = Cluster(kube_client, namespace)
    spec = {
        "parallelism": {"nodes": 1},
        "podTemplate": {"annotations": {EXIT: "0", RUN_SECONDS: "0"}},
        "runPolicy": {"ttlSecondsAfterFinished": 2},
    }
    apply(control_plane, namespace, job("short", spec))
    wait_for("the finished job to be deleted", lambda: c.job("short") is None, timeout=40)
    wait_for("its pods to be collected", lambda: not c.pods("short"), timeout=40)
