"""Crash windows: a pass cut short between acting and writing status must not change the outcome.

Each row is a world (stored status + pods) in which one pass makes a decisive move (success,
failure, restart, a new attempt). The pass runs in the controller's order (create -> write
status -> delete, `Controller.execute`) and is cut at each crash point; then fresh passes run
until nothing changes. The end must be the one an uninterrupted run reaches: same phase,
attempt, restarts and lastFailure, same pods, and no pod of an attempt created twice.
tests/integration/test_crash_windows.py replays the same table on the controller against a real
API server.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from trainforge_operator.config import OperatorConfig
from trainforge_operator.decision import decide
from trainforge_operator.plan import Observed, Plan
from trainforge_operator.status import status_dict

from .conftest import T0, make_job, make_pod

Obj = dict[str, Any]
ATTEMPT = "trainforge.io/attempt"
INDEX = "trainforge.io/replica-index"
# Where a pass can be cut: after its creates (before the status write), after the status write
# (before its deletes), after its first delete.
CRASH_POINTS = ["after-create", "after-write", "mid-delete"]
MAX_PASSES = 12


@dataclass
class World:
    """The API server's view of one job: its stored status, its pods, and every pod creation."""

    spec: Obj
    status: Obj
    pods: dict[str, Obj]
    at: float = 10.0
    creations: Counter[tuple[int, int]] = field(default_factory=Counter)

    def observe(self) -> Observed:
        return Observed(
            body=make_job(self.spec, status=copy.deepcopy(self.status)),
            pods=[copy.deepcopy(p) for p in self.pods.values()],
            has_service=True,
            has_configmap=True,
            now=T0 + dt.timedelta(seconds=self.at),
        )

    def create(self, obj: Obj) -> None:
        """An idempotent create, as kube.py's: an existing name is AlreadyExists."""
        name = obj["metadata"]["name"]
        if obj["kind"] != "Pod" or name in self.pods:
            return
        labels = obj["metadata"]["labels"]
        self.creations[(int(labels[ATTEMPT]), int(labels[INDEX]))] += 1
        stamp = (T0 + dt.timedelta(seconds=self.at)).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.pods[name] = {
            "metadata": {"name": name, "labels": dict(labels), "creationTimestamp": stamp},
            "spec": {"nodeName": "node-1"},
            "status": {"phase": "Pending"},
        }

    def outcome(self) -> Obj:
        """What must not depend on where a pass was cut."""
        return {
            "phase": self.status.get("phase"),
            "attempt": self.status.get("attempt", 0),
            "restarts": self.status.get("restarts", 0),
            "lastFailure": {
                k: v
                for k, v in (self.status.get("lastFailure") or {}).items()
                if k in ("pod", "exitCode", "reason", "attempt")
            },
            "pods": sorted((n, p["metadata"]["labels"][ATTEMPT]) for n, p in self.pods.items()),
        }


def one_pass(world: World, config: OperatorConfig, crash: str | None = None) -> Plan:
    """One pass in Controller.execute's order, cut at `crash` (None: runs to the end)."""
    plan = decide(world.observe(), config)
    for obj in plan.create:
        world.create(obj)
    if crash == "after-create":
        return plan
    world.status = status_dict(plan.status)
    if crash == "after-write":
        return plan
    for n, name in enumerate(plan.delete_pods):
        if crash == "mid-delete" and n == 1:
            return plan
        world.pods.pop(name, None)
    return plan


def settle(world: World, config: OperatorConfig) -> None:
    """Fresh passes (a restarted operator) until a pass changes nothing; time moves to each
    requeue, so backoffs elapse."""
    for _ in range(MAX_PASSES):
        before = (copy.deepcopy(world.status), sorted(world.pods))
        plan = one_pass(world, config)
        if (world.status, sorted(world.pods)) == before and not plan.create:
            return
        world.at += plan.requeue_after or 1.0
    pytest.fail(f"no steady state after {MAX_PASSES} passes: {world.outcome()}")


def pods(*specs: tuple[int, str, int | None]) -> dict[str, Obj]:
    return {
        f"digits-worker-{i}": make_pod(i, phase, exit_code=code, created="2026-01-01T12:00:01Z")
        for i, phase, code in specs
    }


ALL = {"parallelism": {"nodes": 2}, "runPolicy": {"cleanPodPolicy": "All"}}
TWO = {"parallelism": {"nodes": 2}, "runPolicy": {"restartBackoffSeconds": 1}}
WINDOWS = {
    "success, cleanPodPolicy All": (
        ALL, {"phase": "Running"}, pods((0, "Succeeded", 0), (1, "Succeeded", 0)),
    ),
    "success while the status says Starting": (
        ALL, {"phase": "Starting"}, pods((0, "Succeeded", 0), (1, "Succeeded", 0)),
    ),
    "retryable failure: gang restart": (
        TWO, {"phase": "Running"}, pods((0, "Failed", 137), (1, "Running", None)),
    ),
    "creation of attempt N+1": (
        TWO,
        {"phase": "Restarting", "attempt": 0, "restarts": 1, "restartAfter": "2026-01-01T12:00:05Z",
         "lastFailure": {"pod": "digits-worker-0", "exitCode": 137, "reason": "Error"}},
        {},
    ),
    "permanent failure, cleanPodPolicy All": (
        ALL, {"phase": "Running"}, pods((0, "Failed", 1), (1, "Running", None)),
    ),
    "maxPendingSeconds exceeded": (
        {"parallelism": {"nodes": 2}, "runPolicy": {"maxPendingSeconds": 5,
                                                    "cleanPodPolicy": "None"}},
        {"phase": "Pending"}, pods((0, "Pending", None), (1, "Pending", None)),
    ),
    "suspend": (
        {"parallelism": {"nodes": 2}, "runPolicy": {"suspend": True}}, {"phase": "Running"},
        pods((0, "Running", None), (1, "Running", None)),
    ),
}  # fmt: skip


def world(name: str) -> World:
    spec, status, found = WINDOWS[name]
    return World(copy.deepcopy(spec), copy.deepcopy(status), copy.deepcopy(found))


@pytest.mark.parametrize("crash", CRASH_POINTS)
@pytest.mark.parametrize("name", list(WINDOWS))
def test_a_pass_cut_short_ends_where_an_uninterrupted_one_does(
    name: str, crash: str, config: OperatorConfig
) -> None:
    clean = world(name)
    one_pass(clean, config)
    settle(clean, config)

    cut = world(name)
    one_pass(cut, config, crash)
    settle(cut, config)

    assert cut.outcome() == clean.outcome()
    assert max(cut.creations.values(), default=1) == 1, f"pods created twice: {cut.creations}"


EXPECTED = {
    "success, cleanPodPolicy All": ("Succeeded", 0, 0, []),
    "success while the status says Starting": ("Succeeded", 0, 0, []),
    "retryable failure: gang restart": (
        "Starting", 1, 1, [("digits-worker-0", "1"), ("digits-worker-1", "1")],
    ),
    "creation of attempt N+1": (
        "Starting", 1, 1, [("digits-worker-0", "1"), ("digits-worker-1", "1")],
    ),
    "permanent failure, cleanPodPolicy All": ("Failed", 0, 0, []),
    "maxPendingSeconds exceeded": ("Failed", 0, 0, []),
    "suspend": ("Suspended", 0, 0, []),
}  # fmt: skip


@pytest.mark.parametrize("name", list(WINDOWS))
def test_the_uninterrupted_run_is_the_right_one(name: str, config: OperatorConfig) -> None:
    """The reference the cut runs are compared with is itself correct."""
    w = world(name)
    one_pass(w, config)
    settle(w, config)
    got = w.outcome()
    assert (got["phase"], got["attempt"], got["restarts"], got["pods"]) == EXPECTED[name]
    if name.startswith(("retryable", "creation")):
        assert got["lastFailure"]["exitCode"] == 137
    if name.startswith("permanent"):
        assert got["lastFailure"]["exitCode"] == 1


def test_the_old_order_lost_the_outcome(config: OperatorConfig) -> None:
    """Why the order matters: deleting before the write (the old order) and crashing turned a
    finished success into a restart with lastFailure PodDeleted."""
    w = world("success, cleanPodPolicy All")
    plan = decide(w.observe(), config)
    for name in plan.delete_pods:
        w.pods.pop(name)
    settle(w, config)
    assert (w.outcome()["phase"], w.outcome()["lastFailure"].get("reason")) != ("Succeeded", None)
