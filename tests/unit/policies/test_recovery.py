"""InPlace recovery, elastic sizes and membership (policies/recovery.py), as a table."""

from __future__ import annotations

import pytest

from trainforge_operator.config import OperatorConfig

from ..conftest import make_pod
from .table import Seen, Want, at, outcome, row, worker

THREE = {"parallelism": {"nodes": 3}}
ELASTIC = {"parallelism": {"nodes": 3, "minNodes": 2}}
TRAINING = {"phase": "Running", "members": [0, 1, 2], "runningTime": "2026-01-01T12:00:01Z"}
CREATED = [{"type": "Created", "status": "True", "reason": "ChildrenCreated"}]
ALL_RUN = [make_pod(0), make_pod(1), make_pod(2)]
LEFT_1 = {"time": at(0), "change": "Left", "pod": worker(1), "nodes": 2}
JOINED_1 = {"time": at(0), "change": "Joined", "pod": worker(1), "nodes": 3}

CASES = [
    row("a retryable failure of worker 1 recreates only that pod; the others keep running",
        Seen(THREE, TRAINING, [make_pod(0), make_pod(1, "Failed", exit_code=137), make_pod(2)]),
        Want(phase="Running", deleted=[worker(1)], created=[], restarted=False,
             events=["WorkerLeft", "RecoveringInPlace"],
             conditions={"PodsReady": "False"}, says="recreating only that pod",
             status={"restarts": 1, "inPlaceRestarts": 1, "attempt": 0, "currentNodes": 2,
                     "members": [0, 2], "lastFailure": {"pod": worker(1), "exitCode": 137},
                     "membershipChanges": [LEFT_1]})),
    row("the failed pod is gone: it is created again in the same attempt, not counted twice",
        Seen(THREE, {**TRAINING, "members": [0, 2], "restarts": 1, "conditions": CREATED},
             [make_pod(0), make_pod(2)]),
        Want(phase="Running", created=[worker(1)], deleted=[], events=[],
             status={"restarts": 1, "attempt": 0})),
    row("while it starts the gang stays Running and names who it waits for",
        Seen(THREE, {**TRAINING, "members": [0, 2]},
             [make_pod(0), make_pod(1, "Pending"), make_pod(2)]),
        Want(phase="Running", created=[], deleted=[], events=[],
             says="waiting for digits-worker-1", conditions={"PodsReady": "False"})),
    row("back in the rendezvous: it joins, named in status and an Event",
        Seen(THREE, {**TRAINING, "members": [0, 2]}, ALL_RUN),
        Want(phase="Running", events=["WorkerJoined"], conditions={"PodsReady": "True"},
             status={"currentNodes": 3, "members": [0, 1, 2],
                     "membershipChanges": [JOINED_1]})),
    row("a worker pod deleted while training is recreated and counted",
        Seen(THREE, TRAINING, [make_pod(0), make_pod(2)]),
        Want(phase="Running", created=[worker(1)], deleted=[],
             events=["WorkerLeft", "RecoveringInPlace"],
             status={"restarts": 1, "inPlaceRestarts": 1})),
    row("node 0 (the rendezvous host) failed: the whole gang is recreated",
        Seen(THREE, TRAINING, [make_pod(0, "Failed", exit_code=137), make_pod(1), make_pod(2)]),
        Want(phase="Restarting", deleted=[worker(0), worker(1), worker(2)], restarted=True,
             status={"inPlaceRestarts": 0, "restarts": 1})),
    row("node 0 deleted: the whole gang is recreated",
        Seen(THREE, TRAINING, [make_pod(1), make_pod(2)]),
        Want(phase="Restarting", restarted=True)),
    row("a permanent failure of a worker still fails the job",
        Seen(THREE, TRAINING, [make_pod(0), make_pod(1, "Failed", exit_code=1), make_pod(2)]),
        Want(phase="Failed", failed="WorkerFailed", status={"inPlaceRestarts": 0})),
    row("in-place recoveries count towards maxRestarts",
        Seen({**THREE, "runPolicy": {"maxRestarts": 1}},
             {**TRAINING, "restarts": 1, "restartsCountedTowardsMax": 1},
             [make_pod(0), make_pod(1, "Failed", exit_code=137), make_pod(2)]),
        Want(phase="Failed", failed="MaxRestartsExceeded")),
    row("an evicted worker is recovered in place without counting, maxRestarts used up or not",
        Seen({**THREE, "runPolicy": {"maxRestarts": 1}},
             {**TRAINING, "restarts": 1, "restartsCountedTowardsMax": 1},
             [make_pod(0), make_pod(1, "Failed", reason="Evicted"), make_pod(2)]),
        Want(phase="Running", deleted=[worker(1)], says="not counted against maxRestarts",
             status={"restarts": 2, "restartsCountedTowardsMax": 1, "inPlaceRestarts": 1,
                     "lastFailure": {"reason": "Evicted", "action": "RestartIgnoringMax"},
                     "lastRecovery": {"kind": "in-place"}})),
    row("a failure-policy rule that fails the job wins over in-place recovery",
        Seen({**THREE, "runPolicy": {"failurePolicy": {"rules": [
            {"action": "Fail", "onExitCodes": {"operator": "In", "values": [137]}}]}}},
             TRAINING, [make_pod(0), make_pod(1, "Failed", exit_code=137), make_pod(2)]),
        Want(phase="Failed", failed="WorkerFailed", says="failurePolicy.rules[0]",
             status={"inPlaceRestarts": 0})),
    row("recovery RecreateGang restarts the gang for a worker's failure",
        Seen({**THREE, "runPolicy": {"recovery": "RecreateGang"}}, TRAINING,
             [make_pod(0), make_pod(1, "Failed", exit_code=137), make_pod(2)]),
        Want(phase="Restarting", restarted=True, status={"inPlaceRestarts": 0})),
    row("the standalone launcher (an image without trainforge) recreates the gang instead",
        Seen({**THREE, "image": "pytorch/pytorch:2.5", "command": ["python", "train.py"]},
             TRAINING, [make_pod(0), make_pod(1, "Failed", exit_code=137), make_pod(2)]),
        Want(phase="Restarting", restarted=True, status={"inPlaceRestarts": 0})),
    row("elastic: the gang trains once minNodes workers run",
        Seen(ELASTIC, {"phase": "Starting"},
             [make_pod(0), make_pod(1), make_pod(2, "Pending", scheduled=False)]),
        Want(phase="Running", events=["Running"], status={"currentNodes": 2})),
    row("elastic: a lost worker while minNodes remain keeps Running, the pod is recreated",
        Seen(ELASTIC, TRAINING, [make_pod(0), make_pod(1)]),
        Want(phase="Running", created=[worker(2)], events=["WorkerLeft", "RecoveringInPlace"],
             says="training continues while at least 2 workers run")),
    row("elastic: training goes on with the recreated pod still pending",
        Seen(ELASTIC, {**TRAINING, "members": [0, 1]},
             [make_pod(0), make_pod(1), make_pod(2, "Pending")]),
        Want(phase="Running", events=[], conditions={"PodsReady": "True"})),
    row("elastic: node 0 finished and no worker runs: Succeeded, a pending late pod aside",
        Seen(ELASTIC, {**TRAINING, "members": [0, 1]},
             [make_pod(0, "Succeeded", exit_code=0), make_pod(1, "Succeeded", exit_code=0),
              make_pod(2, "Pending")]),
        Want(phase="Succeeded", events=["Succeeded"])),
]  # fmt: skip


@pytest.mark.parametrize(("seen", "want"), CASES)
def test_recovery_policy(seen: Seen, want: Want, config: OperatorConfig) -> None:
    assert outcome(seen.decide(config), want) == want.fields()
