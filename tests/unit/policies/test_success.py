"""Success, and absorbing rank 0's termination summary (results, artifacts, findings, progress)."""

from __future__ import annotations

import json

import pytest

from trainforge_operator.config import OperatorConfig

from ..conftest import make_pod
from .table import Seen, Want, at, outcome, row, worker

TWO = {"parallelism": {"nodes": 2}}
RUNNING = {"phase": "Running"}
SUMMARY = json.dumps(
    {
        "exitReason": "Succeeded",
        "step": 120,
        "totalSteps": 120,
        "resumedFromStep": 50,
        "metrics": {"test_accuracy": 0.97},
        "artifacts": {"uri": "s3://b/m/", "files": 3, "bytes": 1024, "extra": "ignored"},
        "findings": [{"rule": "overfitting", "step": 100, "message": "val loss rises"}],
    }
)

# The kind demo's digits job stopped early at step 228 of 570 and its status read percent 40.
EARLY = json.dumps({"exitReason": "Succeeded", "step": 228, "totalSteps": 570, "metrics": {}})


def done(index: int, message: str = "") -> dict[str, object]:
    return make_pod(index, "Succeeded", exit_code=0, message=message)


CASES = [
    row("every worker exited 0: Succeeded with rank 0's results",
        Seen(TWO, RUNNING, [done(0, SUMMARY), done(1)], at=60),
        Want(phase="Succeeded", events=["Succeeded"], deleted=[],
             says="all 2 workers completed with exit code 0",
             conditions={"Succeeded": "True", "PodsReady": "False"},
             status={"completionTime": at(60),
                     "results": {"test_accuracy": 0.97},
                     "artifacts": {"uri": "s3://b/m/", "files": 3, "bytes": 1024},
                     "findings": [{"rule": "overfitting", "step": 100,
                                   "message": "val loss rises", "action": ""}],
                     # the final word, though never polled while running
                     "progress": {"step": 120, "totalSteps": 120, "percent": 100.0,
                                  "resumedFromStep": 50}})),
    row("stopped early: 100% and the phase says where it stopped, not percent 40",
        Seen(TWO, RUNNING, [done(0, EARLY), done(1)]),
        Want(phase="Succeeded", status={"progress": {
            "step": 228, "totalSteps": 570, "percent": 100.0,
            "phase": "early-stopped at step 228 of 570"}})),
    row("the final step replaces a stale ETA",
        Seen(TWO, {**RUNNING, "progress": {"step": 90, "etaSeconds": 30, "eta": "30s"}},
             [done(0, SUMMARY), done(1)]),
        Want(status={"progress": {"step": 120, "etaSeconds": None, "eta": None}})),
    row("no summary (not the launcher): Succeeded all the same",
        Seen(TWO, RUNNING, [done(0, "bye"), done(1)]),
        Want(phase="Succeeded", status={"results": {}, "progress": None})),
    row("one worker done, one running: not yet",
        Seen(TWO, RUNNING, [done(0), make_pod(1)]),
        Want(phase="Running", events=[])),
    row("done workers of another attempt do not count",
        Seen({}, {"phase": "Pending", "attempt": 1}, [make_pod(0, "Succeeded", attempt=0)]),
        Want(phase="Pending", deleted=[worker(0)], created=[])),
]  # fmt: skip


@pytest.mark.parametrize(("seen", "want"), CASES)
def test_success(seen: Seen, want: Want, config: OperatorConfig) -> None:
    assert outcome(seen.decide(config), want) == want.fields()
