# ruff: noqa: F811  (pytest fixtures imported from operator_fixture are re-bound as arguments)
"""Resizing an elastic gang on purpose, against a real API server with kwok workers: the
desired size `spec.parallelism.nodes` patched 2 -> 3 -> 2, and `kubectl scale` through the CRD's
scale subresource (policies/scale.py). The API server's transition rule lets only an elastic
job change nodes while it runs, within [minNodes, maxNodes]."""

from __future__ import annotations

import json
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
from spec_strategies import RESIZE_IDS, RESIZES
from test_operator import apply, job
from test_recovery import all_running, uids
from tf_controlplane import ControlPlane

ELASTIC = {"parallelism": {"nodes": 2, "minNodes": 2, "maxNodes": 3}}


def status_with(c: Cluster, name: str, **fields: Any) -> dict[str, Any]:
    """The job's status once it has these field values."""

    def probe() -> dict[str, Any] | None:
        s = c.status(name)
        return s if all(s.get(k) == v for k, v in fields.items()) else None

    return wait_for(f"{name} status {fields}", probe)


def changes(status: dict[str, Any]) -> list[tuple[str, str, int]]:
    return [(m["change"], m["pod"], m["nodes"]) for m in status.get("membershipChanges", [])]


def test_an_elastic_gang_grows_and_shrinks_when_nodes_changes(
    control_plane: ControlPlane, namespace: str, kube_client: Any, tf_operator: OperatorHandle
) -> None:
    c = Cluster(kube_client, namespace)
    apply(control_plane, namespace, job("grow", ELASTIC))
    wait_for("2 running workers", lambda: all_running(c, "grow", 2))
    c.wait_phase("grow", "Running")
    before = uids(c, "grow")

    patch = json.dumps({"spec": {"parallelism": {"nodes": 3}}})
    control_plane.kubectl("patch", "tj", "grow", "-n", namespace, "--type=merge", "-p", patch,
                          check=True)  # fmt: skip
    wait_for("3 running workers", lambda: all_running(c, "grow", 3))
    grown = status_with(c, "grow", currentNodes=3, desiredNodes=3)
    assert (grown["phase"], grown["attempt"]) == ("Running", 0), grown
    assert (grown["restarts"], grown["inPlaceRestarts"]) == (0, 0), grown
    assert changes(grown) == [("Joined", "grow-worker-2", 3)]
    now = uids(c, "grow")
    assert {k: now[k] for k in before} == before  # the running workers were left alone
    reasons = c.event_reasons("grow", "ScaledUp", "WorkerJoined")
    assert not {"Restarting", "RecoveringInPlace", "GangRecreated"} & set(reasons), reasons

    patch = json.dumps({"spec": {"parallelism": {"nodes": 2}}})
    control_plane.kubectl("patch", "tj", "grow", "-n", namespace, "--type=merge", "-p", patch,
                          check=True)  # fmt: skip
    wait_for("worker 2 removed", lambda: "grow-worker-2" not in uids(c, "grow"))
    shrunk = status_with(c, "grow", currentNodes=2, desiredNodes=2)
    assert (shrunk["phase"], shrunk["attempt"], shrunk["restarts"]) == ("Running", 0, 0)
    assert changes(shrunk)[-1] == ("Left", "grow-worker-2", 2)
    assert uids(c, "grow") == before
    reasons = c.event_reasons("grow", "ScaledDown", "WorkerLeft")
    assert not {"Restarting", "RecoveringInPlace", "GangRecreated"} & set(reasons), reasons
    scaled = [m for r, m in c.events("grow") if r in ("ScaledUp", "ScaledDown")]
    assert any("2 -> 3 nodes" in m for m in scaled), scaled
    assert any("3 -> 2 nodes" in m and "grow-worker-2" in m for m in scaled), scaled


def test_kubectl_scale_resizes_an_elastic_job_and_only_within_its_bounds(
    control_plane: ControlPlane, namespace: str, kube_client: Any, tf_operator: OperatorHandle
) -> None:
    c = Cluster(kube_client, namespace)
    apply(control_plane, namespace, job("scaled", ELASTIC))
    apply(control_plane, namespace, job("fixed", {"parallelism": {"nodes": 2}}))
    wait_for("2 running workers", lambda: all_running(c, "scaled", 2))
    c.wait_phase("scaled", "Running")
    c.wait_phase("fixed", "Running")

    scale = control_plane.kubectl_json("get", "tj", "scaled", "-n", namespace,
                                       "--subresource=scale")  # fmt: skip
    assert scale["kind"] == "Scale"
    assert (scale["spec"]["replicas"], scale["status"]["replicas"]) == (2, 2), scale
    selector = scale["status"]["selector"]
    assert selector.startswith("trainforge.io/job-name=scaled,trainforge.io/job-uid="), selector
    by_selector = c.core.list_namespaced_pod(namespace, label_selector=selector).items
    assert sorted(p.metadata.name for p in by_selector) == ["scaled-worker-0", "scaled-worker-1"]

    control_plane.kubectl("scale", "tj/scaled", "-n", namespace, "--replicas=3", check=True)
    wait_for("3 running workers", lambda: all_running(c, "scaled", 3))
    status_with(c, "scaled", currentNodes=3)
    scale = control_plane.kubectl_json("get", "tj", "scaled", "-n", namespace,
                                       "--subresource=scale")  # fmt: skip
    assert (scale["spec"]["replicas"], scale["status"]["replicas"]) == (3, 3), scale

    beyond = control_plane.kubectl("scale", "tj/scaled", "-n", namespace, "--replicas=4")
    assert beyond.returncode != 0
    assert "need minNodes <= nodes <= maxNodes" in beyond.stderr, beyond.stderr
    fixed = control_plane.kubectl("scale", "tj/fixed", "-n", namespace, "--replicas=3")
    assert fixed.returncode != 0
    assert "immutable unless the job is suspended" in fixed.stderr, fixed.stderr
    assert c.job("fixed")["spec"]["parallelism"]["nodes"] == 2  # type: ignore[index]


@pytest.mark.parametrize(("old", "new", "allowed"), RESIZES, ids=RESIZE_IDS)
def test_the_api_server_lets_only_an_elastic_job_resize(
    control_plane: ControlPlane,
    namespace: str,
    trainforge_crd: None,
    old: dict[str, Any],
    new: dict[str, Any],
    allowed: int,
) -> None:
    """The transition rule on the real API server, row by row as its cel-python twin
    (tests/unit/test_transition_rules.py); no operator runs, the update is a server dry run."""
    assert apply(control_plane, namespace, job("edit", {"parallelism": old})).returncode == 0
    body = json.dumps(job("edit", {"parallelism": new}))
    proc = control_plane.kubectl("apply", "-n", namespace, "--dry-run=server", "-f", "-",
                                 input=body)  # fmt: skip
    assert (proc.returncode == 0) == bool(allowed), proc.stderr
    if not allowed:
        assert "immutable unless the job is suspended" in proc.stderr, proc.stderr
