"""Resizing an elastic gang on purpose (policies/scale.py): spec.parallelism.nodes is the desired
size, and a change of it grows or shrinks the running gang, as a table."""

from __future__ import annotations

from typing import Any

import pytest

from trainforge_operator.config import OperatorConfig

from ..conftest import make_pod
from .table import Seen, Want, at, outcome, row, worker


def elastic(nodes: int, min_nodes: int = 1) -> dict[str, Any]:
    return {"parallelism": {"nodes": nodes, "minNodes": min_nodes, "maxNodes": 3}}


def training(desired: int, members: list[int]) -> dict[str, Any]:
    return {
        "phase": "Running",
        "members": members,
        "desiredNodes": desired,
        "runningTime": "2026-01-01T12:00:01Z",
        "conditions": [{"type": "Created", "status": "True", "reason": "ChildrenCreated"}],
    }


def gone(index: int) -> dict[str, Any]:
    pod = make_pod(index)
    pod["metadata"]["deletionTimestamp"] = at(0)
    return pod


TWO = [make_pod(0), make_pod(1)]
THREE = [make_pod(0), make_pod(1), make_pod(2)]
SELECTOR = "trainforge.io/job-name=digits,trainforge.io/job-uid=uid-1"
NOT_COUNTED = {"restarts": 0, "inPlaceRestarts": 0, "restartsCountedTowardsMax": 0}


def changed(change: str, index: int, nodes: int) -> dict[str, Any]:
    return {"time": at(0), "change": change, "pod": worker(index), "nodes": nodes}


CASES = [
    row("the first pass records the desired size and the pods' selector, naming no change",
        Seen(elastic(2), {"phase": "Running", "members": [0, 1],
                          "runningTime": "2026-01-01T12:00:01Z"}, TWO),
        Want(phase="Running", events=[], created=[],
             status={"desiredNodes": 2, "selector": SELECTOR})),
    row("scaled up 2 -> 3: index 2 is created, no recovery is counted, the gang trains on",
        Seen(elastic(3), training(2, [0, 1]), TWO),
        Want(phase="Running", created=[worker(2)], deleted=[], events=["ScaledUp"],
             restarted=False, restart_kind=None, conditions={"PodsReady": "True"},
             status={**NOT_COUNTED, "desiredNodes": 3, "currentNodes": 2, "lastFailure": None})),
    row("the new worker is pending: the gang trains on at 2, nothing is recreated",
        Seen(elastic(3), training(3, [0, 1]), [*TWO, make_pod(2, "Pending", scheduled=False)]),
        Want(phase="Running", created=[], deleted=[], events=[], restart_kind=None,
             status=NOT_COUNTED)),
    row("the new worker runs: it joins, counted as an elastic grow (not a failure)",
        Seen(elastic(3), training(3, [0, 1]), THREE),
        Want(phase="Running", events=["WorkerJoined"], restart_kind="elastic-grow",
             status={**NOT_COUNTED, "currentNodes": 3, "members": [0, 1, 2],
                     "membershipChanges": [changed("Joined", 2, 3)]})),
    row("a fixed-size recovery policy grows the same way: the new index is not a lost worker",
        Seen({**elastic(3), "runPolicy": {"recovery": "RecreateGang"}}, training(2, [0, 1]), TWO),
        Want(phase="Running", created=[worker(2)], deleted=[], restarted=False,
             status=NOT_COUNTED)),
    row("scaled down 3 -> 2: the highest index is deleted, it leaves, an elastic shrink",
        Seen(elastic(2), training(3, [0, 1, 2]), THREE),
        Want(phase="Running", created=[], deleted=[worker(2)],
             events=["ScaledDown", "WorkerLeft"], restart_kind="elastic-shrink",
             status={**NOT_COUNTED, "desiredNodes": 2, "currentNodes": 2, "members": [0, 1],
                     "membershipChanges": [changed("Left", 2, 2)]})),
    row("scaled down 3 -> 1: the highest indexes go, node 0 stays",
        Seen(elastic(1), training(3, [0, 1, 2]), THREE),
        Want(phase="Running", deleted=[worker(1), worker(2)],
             events=["ScaledDown", "WorkerLeft", "WorkerLeft"], status={"currentNodes": 1})),
    row("a pending worker beyond the new size is deleted too, with no shrink to count",
        Seen(elastic(2), training(3, [0, 1]), [*TWO, make_pod(2, "Pending")]),
        Want(phase="Running", deleted=[worker(2)], events=["ScaledDown"], restart_kind=None)),
    row("the removed pod terminating: no recovery, no event",
        Seen(elastic(2), training(2, [0, 1]), [*TWO, gone(2)]),
        Want(phase="Running", created=[], deleted=[], events=[], status=NOT_COUNTED)),
    row("shrunk, then node 0 and the rest finish: Succeeded",
        Seen(elastic(2), training(2, [0, 1]),
             [make_pod(0, "Succeeded", exit_code=0), make_pod(1, "Succeeded", exit_code=0)]),
        Want(phase="Succeeded", events=["Succeeded"])),
    row("shrunk while a removed pod still terminates: node 0 finished is still Succeeded",
        Seen(elastic(2), training(2, [0, 1]),
             [make_pod(0, "Succeeded", exit_code=0), make_pod(1, "Succeeded", exit_code=0),
              gone(2)]),
        Want(phase="Succeeded")),
    row("the standalone launcher cannot resize a world: the gang is recreated, not counted",
        Seen({**elastic(3), "image": "pytorch/pytorch:2.5", "command": ["python", "train.py"]},
             training(2, [0, 1]), TWO),
        Want(phase="Restarting", deleted=[worker(0), worker(1)], events=["ScaledUp"],
             restart_kind="gang", status={**NOT_COUNTED, "desiredNodes": 3})),
]  # fmt: skip


@pytest.mark.parametrize(("seen", "want"), CASES)
def test_scale_policy(seen: Seen, want: Want, config: OperatorConfig) -> None:
    assert outcome(seen.decide(config), want) == want.fields()


def test_events_name_the_change(config: OperatorConfig) -> None:
    up = Seen(elastic(3), training(2, [0, 1]), TWO).decide(config).events
    assert [e.message for e in up] == [
        "desired size 2 -> 3 nodes (minNodes 1, maxNodes 3): the new workers join the running "
        "gang as they start"
    ]
    down = Seen(elastic(2), training(3, [0, 1, 2]), THREE).decide(config).events[0]
    assert down.message.startswith(
        "desired size 3 -> 2 nodes (minNodes 1, maxNodes 3): removing digits-worker-2"
    )
