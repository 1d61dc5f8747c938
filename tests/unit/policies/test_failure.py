"""Failure: classification, root cause, backoff, and what the pass does about a failed gang."""

from __future__ import annotations

import json

import pytest

from trainforge_api.trainingjob import RunPolicy
from trainforge_operator.config import OperatorConfig
from trainforge_operator.policies.failure import (
    PodFailure,
    backoff_seconds,
    classify,
    pod_failure,
    root_cause,
)

from ..conftest import make_pod
from .table import Seen, Want, at, outcome, row, worker

TWO = {"parallelism": {"nodes": 2}}
RUNNING = {"phase": "Running"}
PEER_FALLOUT = json.dumps({"exitReason": "PeerFailure", "exitCode": 75, "message": "gloo: closed"})
HEALTH_STOP = json.dumps(
    {
        "exitReason": "health rule nan_loss fired",
        "findings": [{"rule": "nan_loss", "step": 12, "message": "loss is NaN", "action": "stop"}],
    }
)
UPLOAD_FAILED = json.dumps(
    {"exitReason": "UploadFailed", "artifacts": {"uri": "s3://b/ml/digits/", "files": 2}}
)
VICTIM = make_pod(0, "Failed", exit_code=75, message=PEER_FALLOUT)  # finished at T0 + 5 s
NODE_LOST = make_pod(1, "Failed", reason="NodeLost")  # no container ever terminated
NODE_LOST["status"]["message"] = "node vanished"


def failure_of(pod: dict[str, object]) -> PodFailure:
    failure = pod_failure(pod)  # type: ignore[arg-type]
    assert failure is not None
    return failure


# --- reading and classifying one failed pod -----------------------------------------------------


def failed(code: int | None = None, **status: object) -> dict[str, object]:
    return make_pod(0, "Failed", exit_code=code, **status)


DISRUPTED = [{"type": "DisruptionTarget", "status": "True"}]


@pytest.mark.parametrize(
    ("pod", "policy", "expected"),
    [
        pytest.param(failed(1), RunPolicy(), "permanent", id="1 user error"),
        pytest.param(failed(64), RunPolicy(), "permanent", id="64 invalid context"),
        pytest.param(failed(65), RunPolicy(), "permanent", id="65 health stop"),
        pytest.param(failed(66), RunPolicy(), "permanent", id="66 upload failed"),
        pytest.param(failed(75), RunPolicy(), "retryable", id="75 transient"),
        pytest.param(failed(137), RunPolicy(), "retryable", id="137 SIGKILL"),
        pytest.param(failed(143), RunPolicy(), "retryable", id="143 SIGTERM"),
        pytest.param(failed(), RunPolicy(), "retryable", id="failed before any exit"),
        pytest.param(failed(1), RunPolicy(retryable_exit_codes=[1]), "retryable",
                     id="retryableExitCodes wins over the default"),
        pytest.param(failed(137), RunPolicy(permanent_exit_codes=[137]), "permanent",
                     id="permanentExitCodes wins over the default"),
        pytest.param(failed(1, reason="Evicted"), RunPolicy(), "retryable",
                     id="eviction retries whatever the code"),
        pytest.param(failed(1, conditions=DISRUPTED), RunPolicy(permanent_exit_codes=[1]),
                     "retryable", id="a disruption retries even a permanent code"),
    ],
)  # fmt: skip
def test_exit_code_classes(pod: dict[str, object], policy: RunPolicy, expected: str) -> None:
    assert classify(failure_of(pod), policy) == expected


@pytest.mark.parametrize(
    ("pod", "describe", "message"),
    [
        pytest.param(make_pod(2, "Failed", exit_code=137),
                     "pod digits-worker-2 container worker was killed by signal 9 "
                     "(exit code 137): Error",
                     "", id="signal derived from 128+N"),
        pytest.param(failed(65, message='{"exitReason": "nan_loss at step 7"}'),
                     "pod digits-worker-0 container worker exited with code 65: Error",
                     "nan_loss at step 7", id="runtime summary: its exitReason"),
        pytest.param(make_pod(0, "Failed", exit_code=1, message=json.dumps(
                         {"exitReason": "UserError", "exitCode": 1, "metrics": {"loss": 2.3},
                          "message": "ValueError: batch_size 3 is not divisible by world 2"})),
                     "pod digits-worker-0 container worker exited with code 1: Error",
                     "UserError: ValueError: batch_size 3 is not divisible by world 2",
                     id="runtime summary: reason and error"),
        pytest.param(NODE_LOST,
                     "pod digits-worker-1 failed: NodeLost (the node node-1 was lost (node "
                     "vanished))", "the node node-1 was lost (node vanished)",
                     id="no container exit: the pod's reason"),
    ],
)  # fmt: skip
def test_a_failure_names_pod_container_and_code(
    pod: dict[str, object], describe: str, message: str
) -> None:
    failure = failure_of(pod)
    assert (failure.describe(), failure.message) == (describe, message)


@pytest.mark.parametrize(
    "pod",
    [make_pod(0, "Running"), make_pod(0, "Succeeded", exit_code=0), make_pod(0, "Pending")],
    ids=["running", "succeeded", "pending"],
)
def test_a_live_or_finished_pod_is_no_failure(pod: dict[str, object]) -> None:
    assert pod_failure(pod) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pods", "culprit"),
    [
        pytest.param([make_pod(0, "Failed", exit_code=143, finished_at="2026-01-01T12:00:09Z"),
                      make_pod(1, "Failed", exit_code=1, finished_at="2026-01-01T12:00:03Z")],
                     "digits-worker-1", id="the first to terminate"),
        pytest.param([make_pod(1, "Failed", exit_code=1), make_pod(0, "Failed", exit_code=1)],
                     "digits-worker-0", id="a tie: the lowest pod name"),
        pytest.param([make_pod(0, "Failed", exit_code=75, finished_at="2026-01-01T12:00:03Z",
                               message=PEER_FALLOUT),
                      make_pod(1, "Failed", exit_code=137, finished_at="2026-01-01T12:00:04Z")],
                     "digits-worker-1", id="past a rank that only lost its peer"),
        pytest.param([VICTIM], "digits-worker-0", id="a peer's victim alone: nothing better"),
    ],
)  # fmt: skip
def test_root_cause(pods: list[dict[str, object]], culprit: str) -> None:
    assert root_cause([failure_of(p) for p in pods]).pod == culprit


def test_backoff_doubles_and_caps() -> None:
    policy = RunPolicy(restart_backoff_seconds=10, max_restart_backoff_seconds=35)
    assert [backoff_seconds(n, policy) for n in range(4)] == [10, 20, 35, 35]


# --- the policy: restart, fail, or wait for the culprit -----------------------------------------

# The gang path: recovery InPlace (the default) is tested in test_recovery.py.
GANG = {**TWO, "runPolicy": {"recovery": "RecreateGang"}}
BACKOFF_10 = {**TWO, "runPolicy": {"restartBackoffSeconds": 10, "recovery": "RecreateGang"}}
RESTARTING = {"phase": "Restarting", "restarts": 1, "restartAfter": at(10)}

CASES = [
    row("a retryable exit (137) restarts the gang after the backoff",
        Seen(BACKOFF_10, RUNNING, [make_pod(0), make_pod(1, "Failed", exit_code=137)]),
        Want(phase="Restarting", events=["Restarting"], deleted=[worker(0), worker(1)],
             requeue=10, restarted=True, conditions={"Restarting": "True", "PodsReady": "False"},
             status={"restarts": 1, "restartAfter": at(10),
                     "lastFailure": {"pod": worker(1), "exitCode": 137, "signal": 9}})),
    row("restarting: no new attempt while a pod of the old one exists",
        Seen(BACKOFF_10, RESTARTING, [make_pod(0)], at=20),
        Want(phase="Restarting", created=[], deleted=[worker(0)], requeue=1)),
    row("restarting: the old gang is gone, the backoff is not over",
        Seen(BACKOFF_10, RESTARTING, [], at=5),
        Want(phase="Restarting", created=[], requeue=5, events=[])),
    row("restarting: gone and the backoff is over: attempt 1",
        Seen(BACKOFF_10, RESTARTING, [], at=11),
        Want(phase="Pending", created=[worker(0), worker(1)], events=["GangRecreated"],
             conditions={"Restarting": "False"}, requeue=2,
             status={"attempt": 1, "restarts": 1})),
    row("a permanent exit (1) fails the job and names pod, container and code",
        Seen(TWO, RUNNING, [make_pod(0, "Failed", exit_code=1), make_pod(1)]),
        Want(phase="Failed", failed="WorkerFailed", deleted=[worker(1)], events=["WorkerFailed"],
             says="pod digits-worker-0 container worker exited with code 1",
             conditions={"Failed": "True"}, status={"lastFailure": {"exitCode": 1}})),
    row("an artifact upload that failed (66) fails the job as ArtifactUploadFailed, no artifacts",
        Seen({}, RUNNING, [make_pod(0, "Failed", exit_code=66, message=UPLOAD_FAILED)]),
        Want(phase="Failed", failed="ArtifactUploadFailed", events=["ArtifactUploadFailed"],
             says="nothing was published", conditions={"Failed": "True"},
             status={"lastFailure": {"exitCode": 66}, "artifacts": None})),
    row("a retryable exit after maxRestarts fails the job",
        Seen({"runPolicy": {"maxRestarts": 2}},
             {"phase": "Running", "restarts": 3, "restartsCountedTowardsMax": 2},
             [make_pod(0, "Failed", exit_code=75)]),
        Want(phase="Failed", failed="MaxRestartsExceeded", says="maxRestarts=2",
             status={"restarts": 3, "restartsCountedTowardsMax": 2,
                     "lastFailure": {"action": "Restart", "rule": "default:transient-or-signal"}})),
    row("a running gang that lost a pod restarts",
        Seen(GANG, RUNNING, [make_pod(0)]),
        Want(phase="Restarting", deleted=[worker(0)],
             status={"lastFailure": {"pod": worker(1), "reason": "PodDeleted"}})),
    row("a pod missing before the gang ran is created, not a failure",
        Seen(TWO, {"phase": "Starting"}, [make_pod(0)]),
        Want(phase="Pending", created=[worker(1)], restarted=False)),
    row("a permanent failure still reports rank 0's findings",
        Seen({}, RUNNING, [make_pod(0, "Failed", exit_code=65, message=HEALTH_STOP)]),
        Want(phase="Failed", status={
            "findings": [{"rule": "nan_loss", "step": 12, "message": "loss is NaN",
                          "action": "stop"}],
            "lastFailure": {"message": "health rule nan_loss fired"}})),
    row("a peer's victim waits for the culprit's own status",
        Seen(TWO, RUNNING, [VICTIM, make_pod(1)], at=10),
        Want(phase="Running", deleted=[], events=[], requeue=15)),
    row("the culprit's failure arrives: it is blamed, not its victim",
        Seen(TWO, RUNNING, [VICTIM, make_pod(1, "Failed", exit_code=1,
                                             finished_at="2026-01-01T12:00:06Z")], at=12),
        Want(phase="Failed", status={"lastFailure": {"pod": worker(1), "exitCode": 1}})),
    row("a peer's victim alone after the grace: restart (75 retries)",
        Seen(TWO, RUNNING, [VICTIM, make_pod(1)], at=30),
        Want(phase="Restarting", status={"lastFailure": {"pod": worker(0)}})),
    row("an invalid spec fails the job without creating anything",
        Seen({"nodePool": "tpu"}, children=False),
        Want(phase="Failed", failed="InvalidSpec", created=[], conditions={"InvalidSpec": "True"},
             says="invalid spec: spec.nodePool 'tpu' is not configured")),
    row("a child the API server rejected makes the spec invalid; all pods go",
        Seen({}, {"phase": "Pending"}, [make_pod(0, "Pending")],
             rejected="Pod digits-worker-1: spec.volumes[2].name: Duplicate value"),
        Want(phase="Failed", failed="InvalidSpec", deleted=[worker(0)],
             conditions={"InvalidSpec": "True"}, says="Duplicate value")),
]  # fmt: skip


@pytest.mark.parametrize(("seen", "want"), CASES)
def test_failure_policy(seen: Seen, want: Want, config: OperatorConfig) -> None:
    assert outcome(seen.decide(config), want) == want.fields()


def test_the_next_attempt_is_labelled_as_such(config: OperatorConfig) -> None:
    plan = Seen(BACKOFF_10, RESTARTING, [], at=11).decide(config)
    assert [p["metadata"]["labels"]["trainforge.io/attempt"] for p in plan.create] == ["1", "1"]
