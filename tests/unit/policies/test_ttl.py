"""A finished job: cleanPodPolicy for its pods, ttlSecondsAfterFinished for itself."""

from __future__ import annotations

import pytest

from trainforge_operator.config import OperatorConfig

from ..conftest import make_pod
from .table import Seen, Want, at, outcome, row, worker

THREE = {"parallelism": {"nodes": 3}}
TTL_60 = {"runPolicy": {"ttlSecondsAfterFinished": 60}}
SUCCEEDED = {"phase": "Succeeded", "completionTime": at(0)}
FAILED = {"phase": "Failed", "completionTime": at(0)}
# A pod still running, one done, one failed, one whose container exited though its phase lags.
MIXED = [make_pod(0, "Running", exit_code=1), make_pod(1), make_pod(2, "Failed", exit_code=1),
         make_pod(3, "Succeeded", exit_code=0)]  # fmt: skip


def clean(policy: str) -> dict[str, object]:
    return {"runPolicy": {"cleanPodPolicy": policy}}


CASES = [
    row("TTL not over: look again exactly when it is",
        Seen(TTL_60, SUCCEEDED, [], at=30),
        Want(phase="Succeeded", requeue=30, delete_job=False, events=[])),
    row("TTL over: delete the job",
        Seen(TTL_60, SUCCEEDED, [], at=61),
        Want(delete_job=True)),
    row("no TTL: kept, and no timer",
        Seen({}, FAILED, [], at=3600),
        Want(phase="Failed", delete_job=False, requeue=None)),
    row("cleanPodPolicy Running (default): only running pods go; a lagging phase is done",
        Seen({}, FAILED, MIXED),
        Want(deleted=[worker(1)])),
    row("cleanPodPolicy All: every pod goes",
        Seen(clean("All"), SUCCEEDED, MIXED),
        Want(deleted=[worker(0), worker(1), worker(2), worker(3)])),
    row("cleanPodPolicy None: every pod stays",
        Seen(clean("None"), SUCCEEDED, MIXED),
        Want(deleted=[])),
    row("an unreadable spec: the default policy, never a restart",
        Seen({"parallelism": {"nodes": 0}}, FAILED, MIXED),
        Want(phase="Failed", deleted=[worker(1)], events=[])),
    row("the failing pass cleans up too, keeping the pod whose phase lags",
        Seen(THREE, {"phase": "Running"}, MIXED[:3]),
        Want(phase="Failed", deleted=[worker(1)])),
    row("the succeeding pass schedules the TTL",
        Seen({**TTL_60, "parallelism": {"nodes": 1}}, {"phase": "Running"},
             [make_pod(0, "Succeeded", exit_code=0)], at=10),
        Want(phase="Succeeded", requeue=60, status={"completionTime": at(10)})),
]  # fmt: skip


@pytest.mark.parametrize(("seen", "want"), CASES)
def test_ttl_and_cleanup(seen: Seen, want: Want, config: OperatorConfig) -> None:
    assert outcome(seen.decide(config), want) == want.fields()
