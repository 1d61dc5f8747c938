"""The gang while nothing is wrong: children created once, then Pending, Starting, Running."""

from __future__ import annotations

import json

import pytest

from trainforge_operator.config import OperatorConfig

from ..conftest import make_pod
from .table import Seen, Want, outcome, row, worker

TWO = {"parallelism": {"nodes": 2}}
THREE = {"parallelism": {"nodes": 3}}
CREATED = [{"type": "Created", "status": "True"}]
UNSCHEDULABLE = make_pod(1, "Pending", scheduled=False)
IMAGE_PULL = make_pod(0, "Pending", containerStatuses=[{"name": "worker", "state": {
    "waiting": {"reason": "ImagePullBackOff", "message": "pull access denied"}}}])  # fmt: skip
STALE_CONTEXT = {"context.json": '{"parallelism": {"nodes": 2}}'}

CASES = [
    row("a new job: Service, context and every worker, one Created Event",
        Seen(TWO, children=False),
        Want(phase="Pending", events=["Created"], conditions={"Created": "True"},
             created=["digits", "digits-context", worker(0), worker(1)])),
    row("the pods observed: nothing created, no Event again",
        Seen(TWO, {"phase": "Pending", "conditions": CREATED},
             [make_pod(0, "Pending"), make_pod(1, "Pending")], at=1),
        Want(created=[], events=[])),
    row("a partly created gang is completed without duplicates",
        Seen(THREE, {"phase": "Pending"}, [make_pod(0, "Pending")]),
        Want(created=[worker(1), worker(2)])),
    row("a missing Service is recreated",
        Seen({}, {"phase": "Running", "conditions": CREATED}, [make_pod(0)], children=False),
        Want(created=["digits", "digits-context"], events=[])),
    row("pods of another attempt are deleted before any new one is created",
        Seen({}, {"phase": "Pending", "attempt": 1}, [make_pod(0, attempt=0)]),
        Want(deleted=[worker(0)], created=[])),
    row("the spec changed: the context ConfigMap is rewritten",
        Seen(THREE, {"phase": "Pending", "conditions": CREATED}, [], configmap=STALE_CONTEXT),
        Want(updated=["digits-context"])),
    row("not all scheduled: Pending, with the scheduler's reason",
        Seen(TWO, {"phase": "Pending"}, [make_pod(0, "Pending"), UNSCHEDULABLE]),
        Want(phase="Pending", conditions={"PodsReady": "False"},
             says="pod digits-worker-1 is unschedulable: 0/3 nodes are available")),
    row("scheduled, a container cannot start: Starting, with the kubelet's reason",
        Seen({}, {"phase": "Pending"}, [IMAGE_PULL], at=10),
        Want(phase="Starting",
             says="pod digits-worker-0 container worker is waiting: ImagePullBackOff "
                  "(pull access denied)")),
    row("scheduled, not all running: Starting, counting the running",
        Seen(TWO, {"phase": "Pending"}, [make_pod(0), make_pod(1, "Pending")]),
        Want(phase="Starting", says="attempt 0: 1/2 workers running")),
    row("every worker running: Running, and time to running from the first pod's creation",
        Seen(TWO, {"phase": "Starting"}, [make_pod(0), make_pod(1)], at=5),
        Want(phase="Running", events=["Running"], time_to_running=5, requeue=5,
             conditions={"PodsReady": "True"}, says="attempt 0: all workers running")),
    row("still running: no Event, no time to running again",
        Seen(TWO, {"phase": "Running"}, [make_pod(0), make_pod(1)], at=50),
        Want(phase="Running", events=[], time_to_running=None)),
    row("rank 0's progress is recorded with its ETA",
        Seen({}, {"phase": "Starting"}, [make_pod(0)], progress={
            "step": 5, "totalSteps": 100, "percent": 5.0, "etaSeconds": 125,
            "metrics": {"loss": 0.5}, "findings": [{"rule": "nan_loss", "step": 5}]}),
        Want(phase="Running", status={
            "progress": {"step": 5, "totalSteps": 100, "percent": 5.0, "eta": "2m05s",
                         "metrics": {"loss": 0.5}, "lastAdvanceTime": "2026-01-01T12:00:00Z"},
            "findings": [{"rule": "nan_loss", "step": 5, "message": "", "action": ""}]})),
]  # fmt: skip


@pytest.mark.parametrize(("seen", "want"), CASES)
def test_gang(seen: Seen, want: Want, config: OperatorConfig) -> None:
    assert outcome(seen.decide(config), want) == want.fields()


def test_the_rewritten_context_has_the_new_spec(config: OperatorConfig) -> None:
    stale = Seen(THREE, {"phase": "Suspended"}, [], configmap=STALE_CONTEXT).decide(config)
    data = stale.update[0]["data"]
    assert json.loads(data["context.json"])["parallelism"]["nodes"] == 3
    current = Seen(THREE, {"phase": "Suspended"}, [], configmap=data).decide(config)
    assert current.update == []


@pytest.mark.parametrize(
    "workers",
    [
        pytest.param([make_pod(0, "Pending"), UNSCHEDULABLE], id="not all scheduled"),
        pytest.param([make_pod(0, "Running"), make_pod(1, "Pending")], id="starting"),
    ],
)
def test_a_waiting_gang_sets_no_timer(
    workers: list[dict[str, object]], config: OperatorConfig
) -> None:
    """Every change of a worker pod wakes the job, and a waiting gang's deadlines ask for their
    own pass (test_timeouts.py): no timer, the loop's resync is the backstop."""
    plan = Seen(TWO, {"phase": "Pending", "conditions": CREATED}, workers, at=3).decide(config)
    assert plan.status.phase in ("Pending", "Starting")
    assert plan.requeue_after is None


@pytest.mark.parametrize(
    ("source", "requeue"), [("auto", 5.0), ("http", 5.0), ("annotation", None)]
)
def test_a_running_gang_is_polled_only_when_its_progress_costs_a_request(
    source: str, requeue: float | None, config: OperatorConfig
) -> None:
    """rank 0's /progress over HTTP is asked every progressIntervalSeconds; a changed annotation
    is a pod event, which wakes the job by itself."""
    polled = config.model_copy(update={"progress_source": source})
    running = [make_pod(0, "Running"), make_pod(1, "Running")]
    plan = Seen(TWO, {"phase": "Running", "conditions": CREATED}, running, at=30).decide(polled)
    assert plan.status.phase == "Running"
    assert plan.requeue_after == requeue
