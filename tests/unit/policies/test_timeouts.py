"""Time limits: activeDeadlineSeconds, maxPendingSeconds, progressTimeoutSeconds and onStall."""

from __future__ import annotations

import pytest

from trainforge_operator.config import OperatorConfig

from ..conftest import make_pod
from .table import Seen, Want, at, outcome, row, worker

TWO = {"parallelism": {"nodes": 2}}
DEADLINE_100 = {"runPolicy": {"activeDeadlineSeconds": 100}}
PENDING_30 = {**TWO, "runPolicy": {"maxPendingSeconds": 30}}
PENDING_60 = {"runPolicy": {"maxPendingSeconds": 60}}
STALL_60 = {"runPolicy": {"progressTimeoutSeconds": 60}}
STALL_10_FAIL = {"runPolicy": {"progressTimeoutSeconds": 10, "onStall": "fail"}}
UNSCHEDULABLE = [make_pod(0, "Pending", scheduled=False), make_pod(1, "Pending", scheduled=False)]
IMAGE_PULL = make_pod(0, "Pending", containerStatuses=[{"name": "worker", "state": {
    "waiting": {"reason": "ImagePullBackOff", "message": "pull access denied"}}}])  # fmt: skip
RUNNING_SINCE_T0 = {"phase": "Running", "startTime": at(0), "runningTime": at(0)}
AT_STEP_5 = {**RUNNING_SINCE_T0, "progress": {"step": 5, "lastAdvanceTime": at(0)}}
UNREPORTED = {"step": None, "phase": "unreported"}
SILENT = {**RUNNING_SINCE_T0, "progress": {**UNREPORTED, "lastAdvanceTime": at(0)}}
WARNED = {**SILENT, "conditions": [{"type": "ProgressReported", "status": "False"}]}
STALLED = {**AT_STEP_5, "conditions": [{"type": "Stalled", "status": "True"}]}

CASES = [
    # activeDeadlineSeconds, counted from startTime
    row("within the deadline: running, and a look again at the deadline at the latest",
        Seen(DEADLINE_100, RUNNING_SINCE_T0, [make_pod(0)], at=50),
        Want(phase="Running", requeue=5)),
    row("past the deadline: Failed, whatever the gang is doing",
        Seen(DEADLINE_100, RUNNING_SINCE_T0, [make_pod(0)], at=101),
        Want(phase="Failed", failed="DeadlineExceeded", deleted=[worker(0)],
             says="longer than runPolicy.activeDeadlineSeconds=100")),
    row("a deadline far off is the next look",
        Seen({"runPolicy": {"activeDeadlineSeconds": 100}}, {"phase": "Restarting",
             "startTime": at(0), "restartAfter": at(500)}, [], at=90),
        Want(phase="Restarting", requeue=10)),
    # maxPendingSeconds, counted from the gang's creation
    row("pending within the limit: say what the scheduler says",
        Seen(PENDING_30, {"phase": "Pending"}, UNSCHEDULABLE, at=20),
        Want(phase="Pending", says="Insufficient nvidia.com/gpu", requeue=10.5)),  # the deadline
    row("pending past the limit: Failed with the scheduler's reason, every pod deleted",
        Seen(PENDING_30, {"phase": "Pending"}, UNSCHEDULABLE, at=31),
        Want(phase="Failed", failed="PendingTimeout", deleted=[worker(0), worker(1)],
             says="Insufficient nvidia.com/gpu")),
    row("a container that cannot start counts as pending",
        Seen(PENDING_60, {"phase": "Pending"}, [IMAGE_PULL], at=61),
        Want(phase="Failed", failed="PendingTimeout", says="ImagePullBackOff")),
    row("nothing said: how many workers ran",
        Seen(PENDING_30, {"phase": "Starting"}, [make_pod(0), make_pod(1, "Pending")], at=31),
        Want(phase="Failed", says="maxPendingSeconds=30: only 1/2 workers were running")),
    # progressTimeoutSeconds, counted from the later of runningTime and the last step advance
    row("the step advanced recently: running, look again when it would stall",
        Seen(STALL_60, AT_STEP_5, [make_pod(0)], at=50, progress={"step": 5}),
        Want(phase="Running", conditions={"Stalled": None}, requeue=5)),
    row("no advance for longer than the timeout: Stalled, the gang restarts",
        Seen(STALL_60, AT_STEP_5, [make_pod(0)], at=61, progress={"step": 5}),
        Want(phase="Restarting", events=["Stalled", "Restarting"], restarted=True,
             conditions={"Stalled": "True"}, says="failed: Stalled; restarting the gang in 10s",
             status={"lastFailure": {"pod": worker(0), "container": "worker",
                                     "reason": "Stalled"}})),
    row("stalled with onStall: fail: Failed",
        Seen(STALL_10_FAIL, RUNNING_SINCE_T0, [make_pod(0)], at=11),
        Want(phase="Failed", failed="Stalled", events=["Stalled", "Stalled"],
             says="no training progress for 11s (no step reported")),
    row("the step advances again: no longer Stalled",
        Seen(STALL_60, STALLED, [make_pod(0)], at=70, progress={"step": 6}),
        Want(phase="Running", conditions={"Stalled": "False"}, events=[])),
    # a plain script with no trainforge_sdk: the launcher says nothing reports progress
    row("nothing reports progress past the timeout: a warning condition, not a restart",
        Seen(STALL_60, SILENT, [make_pod(0)], at=61, progress=UNREPORTED),
        Want(phase="Running", events=["NoProgressSource"],
             conditions={"Stalled": None, "ProgressReported": "False"})),
    row("the warning is given once",
        Seen(STALL_60, WARNED, [make_pod(0)], at=200, progress=UNREPORTED),
        Want(phase="Running", events=[], conditions={"Stalled": None})),
]  # fmt: skip


@pytest.mark.parametrize(("seen", "want"), CASES)
def test_timeouts(seen: Seen, want: Want, config: OperatorConfig) -> None:
    assert outcome(seen.decide(config), want) == want.fields()
