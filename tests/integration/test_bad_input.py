# ruff: noqa: F811  (pytest fixtures imported from operator_fixture are re-bound as arguments)
"""Bad input against a real API server: rejected at apply naming the field, or, when only a
child or a pass can find it out, the job Failed with the reason. Never an empty status."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from operator_fixture import (  # noqa: F401  (fixtures)
    GROUP,
    PLURAL,
    VERSION,
    Cluster,
    OperatorHandle,
    kube_client,
    operator_config_for,
    tf_operator,
    trainforge_crd,
    wait_for,
)
from tf_controlplane import ControlPlane

from trainforge_operator.controller import Controller
from trainforge_operator.kube import KubeApi
from trainforge_operator.progress import AnnotationProgressSource


def job(name: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {"command": ["python", "-m", "train"], **(spec or {})},
    }


APPLY_TIME = [
    pytest.param({"resources": {"memory": "lots"}}, "spec.resources.memory", id="memory-lots"),
    pytest.param({"resources": {"cpu": "-2"}}, "spec.resources.cpu", id="negative-cpu"),
    pytest.param({"artifacts": {"uri": "s3:/bucket/x"}}, "spec.artifacts.uri: use s3://",
                 id="artifacts-missing-slash"),
    pytest.param({"checkpoint": {"uri": "ftp://host/ckpt"}}, "spec.checkpoint.uri: use s3://",
                 id="checkpoint-bad-scheme"),
    pytest.param({"checkpoint": {"uri": "ckpt/relative"}}, "spec.checkpoint.uri",
                 id="checkpoint-relative-path"),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "field"), APPLY_TIME)
def test_rejected_at_apply_naming_the_field(
    control_plane: ControlPlane, trainforge_crd: None, namespace: str, spec: Any, field: str
) -> None:
    proc = control_plane.kubectl(
        "apply", "-n", namespace, "-f", "-", input=json.dumps(job("bad", spec))
    )
    assert proc.returncode != 0, "the API server accepted it"
    assert field in proc.stderr, proc.stderr


def test_env_without_a_name_is_invalid_spec_with_the_message(
    control_plane: ControlPlane, namespace: str, kube_client: Any, tf_operator: OperatorHandle
) -> None:
    """The API server refuses the pod (422); the job says so at once, quoting it."""
    c = Cluster(kube_client, namespace)
    c.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, job("noname", {"env": [{"value": "x"}]})
    )
    status = c.wait_phase("noname", "Failed", timeout=30)
    assert "Pod noname-worker-0: " in status["message"], status["message"]
    assert "].name: Required value" in status["message"], status["message"]  # the env entry
    invalid = next(x for x in status["conditions"] if x["type"] == "InvalidSpec")
    assert invalid["status"] == "True"
    assert not c.pods("noname")


class BrokenApi(KubeApi):
    """The real adapter with an operator bug in one call: listing pods raises KeyError."""

    async def list_pods(self, namespace: str, job: str, uid: str) -> list[Any]:
        raise KeyError("items")


def test_an_unforeseen_error_fails_the_job_with_it(
    trainforge_crd: None, namespace: str, kube_client: Any
) -> None:
    c = Cluster(kube_client, namespace)
    body = c.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, job("bug"))
    config = operator_config_for(namespace).model_copy(update={"max_reconcile_errors": 2})
    # The first pass writes Pending without listing pods; the next ones hit the bug.
    controller = Controller(config, BrokenApi(), AnnotationProgressSource())

    async def run() -> None:
        controller.notify(namespace, "bug", body["metadata"]["resourceVersion"], body)
        try:
            for _ in range(60):
                await asyncio.sleep(0.5)
                if c.phase("bug") == "Failed":
                    return
        finally:
            await controller.stop()
            await controller.api.close()

    asyncio.run(run())
    status = c.status("bug")
    assert status["phase"] == "Failed", status
    assert "KeyError: 'items'" in status["message"]
    failed = next(x for x in status["conditions"] if x["type"] == "Failed")
    assert failed["reason"] == "ReconcileError"


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((x for x in status.get("conditions") or [] if x["type"] == type_), {})


def test_a_forbidden_create_says_why_and_goes_on_once_fixed(
    namespace: str, kube_client: Any, tf_operator: OperatorHandle
) -> None:
    """A ServiceAccount that does not exist: the API server answers the pod create 403. The job
    shows the server's message while the operator retries; creating the account lets it run."""
    c = Cluster(kube_client, namespace)
    c.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL,
        job("nosa", {"podTemplate": {"serviceAccountName": "trainer"}}),
    )  # fmt: skip
    status = wait_for(
        "the CreateFailed condition",
        lambda: s if _condition(s := c.status("nosa"), "CreateFailed").get("status") == "True"
        else None,
        timeout=30,
    )  # fmt: skip
    refused = _condition(status, "CreateFailed")
    assert 'serviceaccount "trainer" not found' in refused["message"], refused
    assert "(HTTP 403)" in refused["message"], refused
    assert status["phase"] == "Pending", status
    assert "cannot create the children yet, retrying" in status["message"], status
    assert _condition(status, "Created").get("status") != "True", status
    c.event_reasons("nosa", "FailedCreate")
    warning = next(m for r, m in c.events("nosa") if r == "FailedCreate")
    assert "create that ServiceAccount or fix spec.podTemplate.serviceAccountName" in warning

    c.core.create_namespaced_service_account(namespace, {"metadata": {"name": "trainer"}})
    wait_for("the worker once the account exists", lambda: c.pods("nosa") or None, 60)
    status = wait_for(
        "CreateFailed turned False",
        lambda: s if _condition(s := c.status("nosa"), "CreateFailed").get("status") == "False"
        else None,
        timeout=30,
    )  # fmt: skip
    assert _condition(status, "Created")["status"] == "True", status


def test_a_forbidden_create_fails_the_job_past_max_pending(
    namespace: str, kube_client: Any, tf_operator: OperatorHandle
) -> None:
    """A PriorityClass that does not exist (403 from the Priority admission plugin), with
    runPolicy.maxPendingSeconds: 5: the job fails with reason CreateFailed and the message."""
    c = Cluster(kube_client, namespace)
    spec = {
        "placement": {"priorityClassName": "no-such-class"},
        "runPolicy": {"maxPendingSeconds": 5},
    }
    c.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, job("noprio", spec))
    status = c.wait_phase("noprio", "Failed", timeout=60)
    failed = _condition(status, "Failed")
    assert failed["reason"] == "CreateFailed", failed
    assert "runPolicy.maxPendingSeconds=5" in status["message"], status
    assert "no PriorityClass with name no-such-class was found" in status["message"], status
    assert "create that PriorityClass or fix spec.placement.priorityClassName" in status["message"]
    assert not c.pods("noprio")
