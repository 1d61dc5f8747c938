"""Workers whose image can never be pulled: InvalidImageName at once, back-off after the limit."""

from __future__ import annotations

import dataclasses

import pytest

from trainforge_operator.config import OperatorConfig
from trainforge_operator.decision import unforeseen
from trainforge_operator.plan import Observed

from ..conftest import T0, make_job, make_pod
from .table import Seen, Want, outcome, row, worker

TWO = {"parallelism": {"nodes": 2}}


def waiting(index: int, reason: str, message: str = "", init: bool = False) -> dict[str, object]:
    key = "initContainerStatuses" if init else "containerStatuses"
    state = {"name": "worker", "state": {"waiting": {"reason": reason, "message": message}}}
    return make_pod(index, "Pending", **{key: [state]})


CASES = [
    row("an invalid image name fails the job at once and leaves no pod",
        Seen(TWO, {"phase": "Starting"},
             [waiting(0, "InvalidImageName", 'couldn\'t parse image name "Bad:Image"'),
              make_pod(1, "Running")], at=1),
        Want(phase="Failed", failed="InvalidImageName", deleted=[worker(0), worker(1)],
             says="pod digits-worker-0 container worker: InvalidImageName",
             events=["InvalidImageName"],
             conditions={"Failed": "True"})),
    row("an image pull back-off within the limit waits",
        Seen(TWO, {"phase": "Starting"}, [waiting(0, "ImagePullBackOff"), make_pod(1)], at=100),
        Want(phase="Starting", failed=None, deleted=[])),
    row("an image pull back-off past the limit fails the job, naming the limit",
        Seen(TWO, {"phase": "Starting"},
             [waiting(0, "ErrImagePull", "pull access denied"), make_pod(1)], at=301),
        Want(phase="Failed", failed="ImagePullBackOff", deleted=[worker(0), worker(1)],
             says="imagePullBackOffSeconds=300")),
    row("an init container's image counts too",
        Seen(TWO, {"phase": "Pending"}, [waiting(0, "InvalidImageName", init=True), make_pod(1)]),
        Want(phase="Failed", failed="InvalidImageName")),
    row("other waiting reasons are the pending timeout's business",
        Seen(TWO, {"phase": "Starting"}, [waiting(0, "CreateContainerConfigError"), make_pod(1)],
             at=1000),
        Want(phase="Starting", failed=None)),
]  # fmt: skip


@pytest.mark.parametrize(("seen", "want"), CASES)
def test_images(seen: Seen, want: Want, config: OperatorConfig) -> None:
    assert outcome(seen.decide(config), want) == want.fields()


def test_the_limit_is_the_operators(config: OperatorConfig) -> None:
    seen = Seen(TWO, {"phase": "Starting"}, [waiting(0, "ImagePullBackOff"), make_pod(1)], at=61)
    quick = config.model_copy(update={"image_pull_back_off_seconds": 60})
    assert seen.decide(quick).failed_reason == "ImagePullBackOff"
    assert seen.decide(config).failed_reason is None


def test_an_unforeseen_error_fails_the_job_with_it(config: OperatorConfig) -> None:
    observed = Observed(
        body=make_job(TWO, status={"phase": "Running"}),
        pods=[],
        has_service=True,
        has_configmap=True,
        now=T0,
    )
    plan = unforeseen(observed, config, "KeyError: 'name'")
    assert plan.status.phase == "Failed"
    assert plan.failed_reason == "ReconcileError"
    assert "KeyError: 'name'" in plan.status.message
    assert [e.reason for e in plan.events] == ["ReconcileError"]
    finished = dataclasses.replace(observed, body=make_job(TWO, status={"phase": "Succeeded"}))
    assert unforeseen(finished, config, "boom").status.phase == "Succeeded"
