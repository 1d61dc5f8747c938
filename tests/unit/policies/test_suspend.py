"""runPolicy.suspend: no pods while suspended; resuming recreates the gang."""

from __future__ import annotations

import pytest

from trainforge_operator.config import OperatorConfig

from ..conftest import make_pod
from .table import Seen, Want, at, outcome, row, worker

SUSPEND = {"runPolicy": {"suspend": True}}
SUSPENDED = {"phase": "Suspended", "conditions": [{"type": "Suspended", "status": "True"}]}

CASES = [
    row("suspend a running job: every pod deleted, times reset",
        Seen(SUSPEND, {"phase": "Running", "startTime": at(0), "runningTime": at(0)},
             [make_pod(0), make_pod(1, "Pending", attempt=1)], at=30),
        Want(phase="Suspended", events=["Suspended"], created=[],
             deleted=[worker(0), worker(1)],
             conditions={"Suspended": "True", "PodsReady": "False"},
             status={"startTime": None, "runningTime": None})),
    row("still suspended: no repeated Event",
        Seen(SUSPEND, SUSPENDED, []),
        Want(phase="Suspended", events=[], created=[], deleted=[])),
    row("a suspended job is not created in the first place",
        Seen(SUSPEND, {}, [], children=False),
        Want(phase="Suspended", created=[])),
    row("resume: Pending, the gang recreated, start time from now",
        Seen({}, SUSPENDED, [], at=30),
        Want(phase="Pending", events=["Resumed", "Created"], created=[worker(0)],
             conditions={"Suspended": "False"}, status={"startTime": at(30)})),
]  # fmt: skip


@pytest.mark.parametrize(("seen", "want"), CASES)
def test_suspend(seen: Seen, want: Want, config: OperatorConfig) -> None:
    assert outcome(seen.decide(config), want) == want.fields()
