# ruff: noqa: F811  (pytest fixtures imported from operator_fixture are re-bound as arguments)
"""runPolicy.failurePolicy.rules against real pods: one row per action, and the counting split.

Each row applies a TrainingJob with `maxRestarts: 0` (so any counted restart would fail it),
lets its gang run on kwok nodes, fails one worker for real (an exit code through kwok, or an
eviction through the Eviction API, which the API server marks DisruptionTarget), and checks
what the operator decided: the phase, the attempt that runs next, `restarts` against
`restartsCountedTowardsMax`, and the action and rule recorded in lastFailure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes import client as k8s
from operator_fixture import (  # noqa: F401  (fixtures)
    Cluster,
    OperatorHandle,
    kube_client,
    tf_operator,
    trainforge_crd,
    wait_for,
)
from tf_controlplane import ControlPlane

EXIT = "kwok.trainforge.io/exit-code"
RUN_SECONDS = "kwok.trainforge.io/run-seconds"


def exit_code_rule(action: str, *codes: int) -> dict[str, Any]:
    return {"action": action, "onExitCodes": {"operator": "In", "values": list(codes)}}


@dataclass(frozen=True)
class Row:
    rules: list[dict[str, Any]]
    fail_with: str  # an exit code, or "evict"
    phase: str  # Running (in attempt 1) or Failed
    restarts: int
    counted: int
    action: str
    rule: str
    reason: str = ""  # lastFailure.reason, when the row is about it
    events: list[str] = field(default_factory=list)


ROWS = [
    pytest.param(Row([exit_code_rule("Fail", 137)], "137", "Failed", 0, 0, "Fail", "rules[0]",
                     events=["WorkerFailed"]),
                 id="Fail: a code the defaults retry fails the job"),
    pytest.param(Row([exit_code_rule("Restart", 3)], "3", "Failed", 0, 0, "Restart", "rules[0]",
                     events=["MaxRestartsExceeded"]),
                 id="Restart: counted, so maxRestarts 0 fails it"),
    pytest.param(Row([exit_code_rule("RestartIgnoringMax", 3)], "3", "Running", 1, 0,
                     "RestartIgnoringMax", "rules[0]", events=["Restarting"]),
                 id="RestartIgnoringMax: restarted, not counted"),
    pytest.param(Row([exit_code_rule("Ignore", 3)], "3", "Running", 0, 0, "Ignore", "rules[0]",
                     events=["FailureIgnored"]),
                 id="Ignore: the gang is recreated, counted nowhere"),
    pytest.param(Row([], "evict", "Running", 1, 0, "RestartIgnoringMax",
                     "default:disruption-condition", reason="Evicted", events=["Restarting"]),
                 id="default: an eviction restarts, not counted"),
    pytest.param(Row([{"action": "Restart", "onReasons": ["Evicted"]}], "evict", "Failed", 0, 0,
                     "Restart", "rules[0]", reason="Evicted", events=["MaxRestartsExceeded"]),
                 id="a rule on a reason makes an eviction count"),
    pytest.param(Row([], "1", "Failed", 0, 0, "Fail", "default:other-exit-code",
                     events=["WorkerFailed"]),
                 id="default: exit code 1 fails"),
]  # fmt: skip


def manifest(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "trainforge.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "command": ["python", "-m", "trainforge_runtime.trainers.digits"],
            "parallelism": {"nodes": 2},
            "runPolicy": {
                "maxRestarts": 0,
                "restartBackoffSeconds": 1,
                "maxRestartBackoffSeconds": 2,
                # What each action does to a gang restart (in-place recovery applies the same
                # verdicts: tests/unit/policies/test_recovery.py).
                "recovery": "RecreateGang",
                "failurePolicy": {"rules": rules},
            },
        },
    }


def running(c: Cluster, name: str, attempt: int) -> list[Any]:
    def probe() -> list[Any] | None:
        found = [
            p
            for p in c.pods(name)
            if p.status.phase == "Running"
            and p.metadata.labels["trainforge.io/attempt"] == str(attempt)
            and p.metadata.deletion_timestamp is None
        ]
        return found if len(found) == 2 else None

    return wait_for(f"2 running pods of {name} attempt {attempt}", probe, 60)


def fail_worker(c: Cluster, pod: str, how: str) -> None:
    if how == "evict":
        body = k8s.V1Eviction(metadata=k8s.V1ObjectMeta(name=pod, namespace=c.ns))
        c.core.create_namespaced_pod_eviction(pod, c.ns, body)
    else:
        c.annotate_pod(pod, {EXIT: how, RUN_SECONDS: "0"})


@pytest.mark.parametrize("row", ROWS)
def test_failure_policy_rules(
    control_plane: ControlPlane,
    namespace: str,
    kube_client: Any,
    tf_operator: OperatorHandle,
    row: Row,
) -> None:
    c = Cluster(kube_client, namespace)
    control_plane.kubectl(
        "apply", "-n", namespace, "-f", "-", input=json.dumps(manifest("fp", row.rules)),
        check=True,
    )  # fmt: skip
    running(c, "fp", 0)
    c.wait_phase("fp", "Running")
    fail_worker(c, "fp-worker-1", row.fail_with)
    if row.phase == "Running":
        running(c, "fp", 1)
        status = c.wait_phase("fp", "Running", timeout=60)
        assert status["attempt"] == 1
    else:
        status = c.wait_phase("fp", "Failed", timeout=60)
    last = status["lastFailure"]
    assert (status["restarts"], status.get("restartsCountedTowardsMax", 0)) == (
        row.restarts,
        row.counted,
    ), status
    assert (last["pod"], last["action"], last["rule"]) == ("fp-worker-1", row.action, row.rule)
    if row.reason:
        assert last["reason"] == row.reason, last
    # Events are posted after the status write, off the pass (events.py): wait for them.
    wait_for(
        f"the Events {row.events}",
        lambda: set(row.events) <= set(c.event_reasons("fp", *row.events)),
    )


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        ({"action": "Fail"}, "every rule needs a matcher"),
        ({"action": "Retry", "onReasons": ["Evicted"]}, "Unsupported value"),
        ({"action": "Fail", "onExitCodes": {"operator": "In", "values": [0]}}, "greater than or"),
        ({"action": "Fail", "onExitCodes": {"operator": "Is", "values": [1]}}, "Unsupported"),
        ({"action": "Fail", "onReasons": []}, "should have at least 1 items"),
    ],
    ids=["no matcher", "unknown action", "exit code 0", "unknown operator", "empty reasons"],
)
def test_bad_rules_are_rejected_at_apply(
    control_plane: ControlPlane, namespace: str, trainforge_crd: None, rule: Any, says: str
) -> None:
    result = control_plane.kubectl(
        "apply", "-n", namespace, "-f", "-", input=json.dumps(manifest("bad", [rule]))
    )
    assert result.returncode != 0
    assert says in result.stderr, result.stderr
