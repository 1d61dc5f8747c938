"""Creates refused for a reason outside the object (403, 429, 5xx): the job says so and waits,
with backoff, then fails with reason CreateFailed past the limit; it is never left silent."""

from __future__ import annotations

import pytest

from trainforge_operator.config import OperatorConfig

from ..conftest import make_pod
from .table import Seen, Want, at, outcome, row, worker

TWO = {"parallelism": {"nodes": 2}}
NO_SA = (
    'Pod digits-worker-0: pods "digits-worker-0" is forbidden: error looking up service account '
    'ns/trainer: serviceaccount "trainer" not found (HTTP 403)'
)
NO_PRIORITY = (
    'Pod digits-worker-0: pods "digits-worker-0" is forbidden: no PriorityClass '
    "with name gold was found (HTTP 403)"
)


def refusing(since: float, message: str = NO_SA) -> dict[str, object]:
    """A stored status: Pending, the creates refused with `message` since `since` s after T0."""
    return {
        "phase": "Pending",
        "attempt": 0,
        "startTime": at(0),
        "conditions": [{"type": "CreateFailed", "status": "True", "reason": "FailedCreate",
                        "message": message, "lastTransitionTime": at(since)}],
    }  # fmt: skip


CASES = [
    row("the first refusal: Pending with the server's message, one Warning, retry soon",
        Seen(TWO, {}, children=False, create_failed=NO_SA),
        Want(phase="Pending", says="cannot create the children yet, retrying: Pod digits-worker-0",
             conditions={"CreateFailed": "True"}, events=["FailedCreate"], created=[],
             updated=[], deleted=[], requeue=2.0, failed=None)),
    row("the refusal goes on: no second Event, the retry backs off",
        Seen(TWO, refusing(0), children=False, create_failed=NO_SA, at=10),
        Want(phase="Pending", events=[], created=[], requeue=10.0)),
    row("another refusal message is a new Warning",
        Seen(TWO, refusing(0), children=False, create_failed=NO_PRIORITY, at=10),
        Want(events=["FailedCreate"], says="no PriorityClass with name gold")),
    row("past the operator's createFailureSeconds the job fails, saying what to do",
        Seen(TWO, refusing(0), children=False, create_failed=NO_SA, at=301),
        Want(phase="Failed", failed="CreateFailed", events=["CreateFailed"], created=[],
             says="for 301s (the operator's createFailureSeconds=300): Pod digits-worker-0: "
                  'pods "digits-worker-0" is forbidden: error looking up service account ns/'
                  'trainer: serviceaccount "trainer" not found (HTTP 403); create that '
                  "ServiceAccount or fix spec.podTemplate.serviceAccountName")),
    row("runPolicy.maxPendingSeconds, when set, is the limit",
        Seen({**TWO, "runPolicy": {"maxPendingSeconds": 60}}, refusing(0), children=False,
             create_failed=NO_PRIORITY, at=61),
        Want(phase="Failed", failed="CreateFailed",
             says="(runPolicy.maxPendingSeconds=60): Pod digits-worker-0")),
    row("pods already created are deleted when the job fails",
        Seen(TWO, refusing(0), [make_pod(0, "Pending")], create_failed=NO_SA, at=301),
        Want(phase="Failed", deleted=[worker(0)])),
    row("the creates go through again: the condition turns False",
        Seen(TWO, refusing(0), children=False, at=20),
        Want(phase="Pending", conditions={"CreateFailed": "False", "Created": "True"},
             created=["digits", "digits-context", worker(0), worker(1)])),
    row("a finished job ignores a refusal",
        Seen(TWO, {"phase": "Succeeded"}, create_failed=NO_SA),
        Want(phase="Succeeded", events=[], failed=None)),
]  # fmt: skip


@pytest.mark.parametrize(("seen", "want"), CASES)
def test_creation(seen: Seen, want: Want, config: OperatorConfig) -> None:
    assert outcome(seen.decide(config), want) == want.fields()


def test_the_wait_counts_from_the_first_refusal(config: OperatorConfig) -> None:
    plan = Seen(TWO, refusing(0), children=False, create_failed=NO_SA, at=10).decide(config)
    refused = next(c for c in plan.status.conditions if c.type == "CreateFailed")
    assert (refused.status, refused.last_transition_time) == ("True", at(0))
    quick = config.model_copy(update={"create_failure_seconds": 5})
    assert (
        Seen(TWO, refusing(0), children=False, create_failed=NO_SA, at=6)
        .decide(quick)
        .failed_reason
        == "CreateFailed"
    )
