"""Data staging: the DataStaged condition follows each pod's `stage-data` init container, and a
stager that fails fails the job like a worker, naming the URI and the error."""

from __future__ import annotations

import json
from typing import Any

import pytest

from trainforge_operator.config import OperatorConfig

from ..conftest import make_pod
from .table import Seen, Want, outcome, row, worker

URI = "s3://datasets/digits/"
DATA = {"parallelism": {"nodes": 2}, "data": {"uri": URI}}
STAGED_MESSAGE = "staged 1.2 MiB (3 files) from s3://datasets/digits/ in 0.4s"


def stager(state: str, **detail: Any) -> dict[str, Any]:
    return {"initContainerStatuses": [{"name": "stage-data", "state": {state: detail}}]}


def staged(index: int, phase: str = "Running") -> dict[str, Any]:
    summary = {"exitReason": "DataStaged", "exitCode": 0, "message": STAGED_MESSAGE}
    term = stager("terminated", exitCode=0, reason="Completed", message=json.dumps(summary))
    return make_pod(index, phase, **term)


def staging(index: int) -> dict[str, Any]:
    return make_pod(index, "Pending", **stager("running", startedAt="2026-01-01T12:00:01Z"))


FAILED_MESSAGE = json.dumps(
    {
        "exitReason": "DataStagingFailed",
        "exitCode": 67,
        "message": f"cannot stage {URI}: FileNotFoundError: no objects under datasets/digits",
    }
)
STAGING_FAILED = make_pod(
    0,
    "Failed",
    **stager(
        "terminated",
        exitCode=67,
        reason="Error",
        message=FAILED_MESSAGE,
        finishedAt="2026-01-01T12:00:03Z",
    ),
)
UNREACHABLE = make_pod(
    0,
    "Failed",
    **stager(
        "terminated",
        exitCode=75,
        reason="Error",
        finishedAt="2026-01-01T12:00:03Z",
        message=json.dumps(
            {
                "exitReason": "Transient",
                "exitCode": 75,
                "message": f"cannot stage {URI}: ConnectTimeoutError: timed out",
            }
        ),
    ),
)

CASES = [
    row("both pods staging: DataStaged False, the phase message says so",
        Seen(DATA, {"phase": "Pending"}, [staging(0), staging(1)]),
        Want(phase="Starting", conditions={"DataStaged": "False"},
             says=f"attempt 0: staging {URI} into /var/trainforge/data: 0/2 pods done")),
    row("one pod staged, one staging: counted",
        Seen(DATA, {"phase": "Starting"}, [staged(0), staging(1)]),
        Want(phase="Starting", says="1/2 pods done", events=[])),
    row("every pod staged and running: DataStaged True with rank 0's account, one Event",
        Seen(DATA, {"phase": "Starting"}, [staged(0), staged(1)]),
        Want(phase="Running", events=["Running", "DataStaged"],
             conditions={"PodsReady": "True", "DataStaged": "True"})),
    row("the stager could not read the URI: the job fails, naming it (permanent, exit 67)",
        Seen(DATA, {"phase": "Starting"}, [STAGING_FAILED, staging(1)], at=10),
        Want(phase="Failed", failed="WorkerFailed",
             says=f"pod {worker(0)} container stage-data exited with code 67",
             status={"lastFailure": {
                 "container": "stage-data", "exitCode": 67,
                 "message": f"DataStagingFailed: cannot stage {URI}: FileNotFoundError: no "
                            "objects under datasets/digits"}})),
    row("the storage was unreachable: the gang restarts (exit 75)",
        Seen(DATA, {"phase": "Starting"}, [UNREACHABLE, staging(1)], at=10),
        Want(phase="Restarting", restarted=True)),
    row("a job without data has no DataStaged condition",
        Seen({"parallelism": {"nodes": 1}}, {"phase": "Starting"}, [make_pod(0)]),
        Want(conditions={"PodsReady": "True"})),
]  # fmt: skip


@pytest.mark.parametrize(("seen", "want"), CASES)
def test_data_staging(seen: Seen, want: Want, config: OperatorConfig) -> None:
    assert outcome(seen.decide(config), want) == want.fields()


def test_the_staged_condition_carries_rank_0s_account(config: OperatorConfig) -> None:
    plan = Seen(DATA, {"phase": "Starting"}, [staged(0), staged(1)]).decide(config)
    cond = next(c for c in plan.status.conditions if c.type == "DataStaged")
    assert (cond.status, cond.reason, cond.message) == ("True", "Staged", STAGED_MESSAGE)


def test_no_condition_without_data(config: OperatorConfig) -> None:
    plan = Seen({}, {"phase": "Starting"}, [make_pod(0)]).decide(config)
    assert "DataStaged" not in {c.type for c in plan.status.conditions}
