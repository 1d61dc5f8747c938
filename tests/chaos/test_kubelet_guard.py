"""The fake-kubelet guard (chaos_lib.guard_fake_kubelet_deletes) refuses only kwok's stale replay.

kwok finishes a pod's deletion with DELETE by name, grace period 0 and no UID precondition. The
guard refuses that request for a pod not marked for deletion (a replay that would remove the
next attempt's pod of the same name) and must let everything else through: kwok finishing a
pod that is being deleted, a graceful delete, and a force delete that names the pod's UID.
"""

from __future__ import annotations

from typing import Any

import pytest
from chaos_lib import KUBELET_GUARD, guard_fake_kubelet_deletes
from kubernetes import client as k8s
from operator_fixture import use_kubeconfig, wait_for
from tf_controlplane import ControlPlane


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [{"name": "c", "image": "guard-test"}],
            "nodeSelector": {"trainforge.io/pool": "cpu"},
        },
    }


def running(core: k8s.CoreV1Api, namespace: str, name: str) -> k8s.V1Pod:
    def ready() -> k8s.V1Pod | None:
        p = core.read_namespaced_pod(name, namespace)
        return p if p.status.phase == "Running" else None

    found: k8s.V1Pod = wait_for(f"{name} Running", ready, timeout=60)
    return found


def gone(core: k8s.CoreV1Api, namespace: str, name: str) -> bool:
    try:
        core.read_namespaced_pod(name, namespace)
    except k8s.ApiException as err:
        return err.status == 404
    return False


@pytest.mark.timeout(300)
def test_the_guard_refuses_only_a_stale_force_delete(
    chaos_tier: ControlPlane, namespace: str
) -> None:
    guard_fake_kubelet_deletes(chaos_tier, namespace)
    core = k8s.CoreV1Api(use_kubeconfig(chaos_tier.kubeconfig))
    for name in ("stale", "graceful", "with-uid"):
        core.create_namespaced_pod(namespace, pod(name))
    stale = running(core, namespace, "stale")

    # kwok's replay: by name, grace period 0, no precondition, on a pod nobody is deleting
    with pytest.raises(k8s.ApiException) as refused:
        core.delete_namespaced_pod("stale", namespace, grace_period_seconds=0)
    assert refused.value.status in (400, 403, 422), refused.value
    assert KUBELET_GUARD in str(refused.value.body)
    assert core.read_namespaced_pod("stale", namespace).metadata.uid == stale.metadata.uid

    # a graceful delete (the operator's kind): kwok then finishes it, which the guard allows
    running(core, namespace, "graceful")
    core.delete_namespaced_pod("graceful", namespace)
    wait_for("graceful finished by kwok", lambda: gone(core, namespace, "graceful"), timeout=60)

    # a force delete that names the pod's UID (a real kubelet's kind)
    uid = running(core, namespace, "with-uid").metadata.uid
    core.delete_namespaced_pod(
        "with-uid",
        namespace,
        body=k8s.V1DeleteOptions(
            grace_period_seconds=0, preconditions=k8s.V1Preconditions(uid=uid)
        ),
    )
    wait_for("with-uid deleted", lambda: gone(core, namespace, "with-uid"), timeout=30)

    # and the stale pod, once marked for deletion, is finished as usual
    core.delete_namespaced_pod("stale", namespace)
    wait_for("stale finished by kwok", lambda: gone(core, namespace, "stale"), timeout=60)
