"""trainforge.io/stop-reason: a job ends as Stopped with that reason (a sweep's Pruned), not as a
failure; its pods go, its progress and metric history stay."""

from __future__ import annotations

import pytest

from trainforge_api.trainingjob import MetricPoint, Progress
from trainforge_operator.config import OperatorConfig
from trainforge_operator.status import record_history

from ..conftest import make_pod
from .table import Seen, Want, outcome, row, worker

PRUNED = {"trainforge.io/stop-reason": "Pruned"}
PROGRESS = {"phase": "Running", "progress": {"step": 7}, "metricHistory": [{"step": 7}]}

CASES = [
    row("pruned while running: every pod deleted, Stopped with reason Pruned",
        Seen({}, PROGRESS, [make_pod(0), make_pod(1, "Pending")], annotations=PRUNED),
        Want(phase="Stopped", events=["Pruned"], created=[], deleted=[worker(0), worker(1)],
             conditions={"Stopped": "True", "PodsReady": "False"},
             status={"progress": {"step": 7}, "metricHistory": [{"metrics": {}, "step": 7}]})),
    row("a reason that is no condition reason is reported as Stopped",
        Seen({}, {"phase": "Pending"}, [],
             annotations={"trainforge.io/stop-reason": "not a reason!"}),
        Want(phase="Stopped", events=["Stopped"])),
    row("already stopped: terminal, nothing more happens",
        Seen({}, {"phase": "Stopped"}, [], annotations=PRUNED),
        Want(phase="Stopped", events=[], created=[], deleted=[])),
]  # fmt: skip


@pytest.mark.parametrize(("seen", "want"), CASES)
def test_stop(seen: Seen, want: Want, config: OperatorConfig) -> None:
    assert outcome(seen.decide(config), want) == want.fields()


def test_metric_history_is_bounded_and_spans_the_run() -> None:
    """status.metricHistory (what a sweep's pruner reads) keeps its first point and thins evenly."""
    history: list[MetricPoint] = []
    for step in range(1, 201):
        history = record_history(history, Progress(step=step, metrics={"val_loss": 1 / step}), 8)
    steps = [p.step for p in history]
    assert len(steps) <= 8
    assert steps[0] == 1
    assert steps[-1] == 200
    assert steps == sorted(steps)
    same = record_history(history, Progress(step=200, metrics={"val_loss": 0.0}), 8)
    assert same == history  # the step did not advance: nothing new
