"""decide_sweep(): one pure pass over a TrainingSweep and its trials (TrainingJobs)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from trainforge_api.trainingsweep import TrainingSweepSpec
from trainforge_operator.sweepdecision import SweepObserved, SweepPlan, build_trial, decide_sweep

from ..golden import assert_golden
from .conftest import sweep_spec

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
STOP = "trainforge.io/stop-reason"


def sweep_body(status: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    return {
        "apiVersion": "trainforge.io/v1alpha1",
        "kind": "TrainingSweep",
        "metadata": {
            "name": "hp",
            "namespace": "ml",
            "uid": "uid-hp",
            "generation": 1,
            "labels": {"kueue.x-k8s.io/queue-name": "team-a"},
        },
        "spec": sweep_spec(**changes),
        "status": status or {},
    }


def decide(
    trials: list[dict[str, Any]],
    status: dict[str, Any] | None = None,
    at: float = 0,
    **changes: Any,
) -> SweepPlan:
    body = sweep_body(status, **changes)
    return decide_sweep(SweepObserved(body, trials, [], T0 + dt.timedelta(seconds=at)))


def passes(n: int, **changes: Any) -> tuple[list[dict[str, Any]], SweepPlan]:
    """Run n passes where every created trial appears as a child (Pending) in the next one."""
    trials: list[dict[str, Any]] = []
    status: dict[str, Any] = {}
    plan = SweepPlan()
    for _ in range(n):
        plan = decide(trials, status, **changes)
        trials += plan.create
        status = plan.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    return trials, plan


def finish(trial: dict[str, Any], value: float, steps: dict[int, float]) -> dict[str, Any]:
    trial = json.loads(json.dumps(trial))
    trial["status"] = {
        "phase": "Succeeded",
        "results": {"test_accuracy": value},
        "metricHistory": [{"step": s, "metrics": {"val_accuracy": v}} for s, v in steps.items()],
    }
    return trial


def running(trial: dict[str, Any], steps: dict[int, float]) -> dict[str, Any]:
    trial = json.loads(json.dumps(trial))
    trial["status"] = {
        "phase": "Running",
        "metricHistory": [{"step": s, "metrics": {"val_accuracy": v}} for s, v in steps.items()],
    }
    return trial


def test_the_trial_object_is_the_template_with_typed_params(update_goldens: bool) -> None:
    body = sweep_body()
    spec = TrainingSweepSpec.model_validate(body["spec"])
    params = {"lr": 0.003, "hidden": 64, "opt": "sgd"}
    trial = build_trial(body, spec, 3, params, {"grid_id": 3})
    assert_golden("sweep/trial", [trial], update_goldens)


def test_first_pass_creates_parallel_trials_with_deterministic_names() -> None:
    plan = decide([])
    assert [t["metadata"]["name"] for t in plan.create] == ["hp-0", "hp-1"]
    assert [e.reason for e in plan.events] == ["TrialCreated", "TrialCreated"]
    assert plan.status.phase == "Running"
    assert plan.status.trials.done == "0/6"


def test_a_pass_whose_writes_were_lost_creates_the_same_trials() -> None:
    """An operator killed after creating trials re-decides the same names and params (its
    creates then meet AlreadyExists), and with the trials visible it creates nothing."""
    first, again = decide([]), decide([])
    assert first.create == again.create
    assert decide(first.create).create == []


def test_next_trial_number_follows_the_highest_existing_one() -> None:
    trials, _ = passes(1)
    done = [finish(trials[0], 0.9, {10: 0.9}), trials[1]]
    plan = decide(done)
    assert [t["metadata"]["name"] for t in plan.create] == ["hp-2"]


def test_pruning_annotates_the_trial_and_frees_its_slot() -> None:
    trials, _ = passes(1)
    seen = [finish(trials[0], 0.9, {10: 0.8, 20: 0.9}), running(trials[1], {10: 0.1})]
    plan = decide(seen)
    assert plan.annotate["hp-1"][STOP] == "Pruned"
    reasons = ["TrialPruned", "TrialCreated", "TrialCreated", "NewBest"]
    assert [e.reason for e in plan.events] == reasons
    assert [t["metadata"]["name"] for t in plan.create] == ["hp-2", "hp-3"]
    assert plan.status.trials.pruned == 1
    assert plan.status.best_trial is not None
    assert plan.status.best_trial.name == "hp-0"


def test_goal_reached_completes_and_stops_running_trials() -> None:
    trials, _ = passes(1)
    seen = [finish(trials[0], 0.97, {10: 0.97}), running(trials[1], {10: 0.5})]
    plan = decide(seen, objective={"metric": "test_accuracy", "goal": 0.95})
    assert plan.status.phase == "Completed"
    assert plan.create == []
    assert plan.annotate == {"hp-1": {STOP: "SweepEnded"}}
    ended = [e for e in plan.events if e.reason == "Completed"]
    assert [(e.type, e.message) for e in ended] == [
        ("Normal", "hp-0 reached the goal 0.95 (GoalReached)")
    ]
    assert next(c for c in plan.status.conditions if c.type == "Complete").reason == "GoalReached"


def test_too_many_failures_fail_the_sweep_and_are_not_retried() -> None:
    trials, _ = passes(1, maxFailedTrials=1)
    failed = [json.loads(json.dumps(t)) | {"status": {"phase": "Failed"}} for t in trials]
    plan = decide(failed, maxFailedTrials=1)
    assert plan.status.phase == "Failed"
    assert plan.create == []
    assert plan.status.trials.failed == 2
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "Failed")]


@pytest.mark.parametrize(("retention", "kept"), [("All", 3), ("Best", 1), ("None", 0)])
def test_retention_once_finished(retention: str, kept: int) -> None:
    trials, _ = passes(1, maxTrials=3)
    seen = [finish(t, 0.5 + i / 10, {}) for i, t in enumerate(trials)]
    seen.append(finish(build_trial_like(trials[0], 2), 0.1, {}))
    plan = decide(seen, maxTrials=3, retention=retention)
    assert plan.status.phase == "Completed"
    assert len(seen) - len(plan.delete) == kept
    if retention == "Best":
        assert plan.delete == ["hp-0", "hp-2"]


def build_trial_like(trial: dict[str, Any], number: int) -> dict[str, Any]:
    other = json.loads(json.dumps(trial))
    other["metadata"]["name"] = f"hp-{number}"
    other["metadata"]["labels"]["trainforge.io/trial-number"] = str(number)
    return other


def test_an_invalid_spec_is_reported_not_run() -> None:
    plan = decide([], parameters=[])
    assert plan.status.phase == "Failed"
    assert plan.create == []
    assert "the search space is empty" in plan.status.message
    assert [c.type for c in plan.status.conditions] == ["InvalidSpec"]


def test_an_engine_error_is_reported_once_and_a_fix_resumes() -> None:
    bad = {"type": "tpe", "settings": {"no_such_option": 1}}
    first = decide([], algorithm=bad)
    assert first.status.phase == "Failed"
    assert [e.reason for e in first.events] == ["InvalidSpec"]
    stored = first.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    again = decide([], stored, algorithm=bad)
    assert again.events == []
    assert again.status == first.status
    fixed = decide([], stored)
    assert fixed.status.phase == "Running"
    assert [t["metadata"]["name"] for t in fixed.create] == ["hp-0", "hp-1"]
    assert [(c.type, c.status) for c in fixed.status.conditions] == [
        ("InvalidSpec", "False"),
        ("Complete", "False"),
    ]


def test_after_retention_deleted_trials_the_status_keeps_the_full_account() -> None:
    trials, _ = passes(1, maxTrials=2)
    seen = [finish(t, 0.5 + i / 10, {}) for i, t in enumerate(trials)]
    done = decide(seen, maxTrials=2, retention="Best")
    assert done.delete == ["hp-0"]
    stored = done.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    later = decide([seen[1]], stored, maxTrials=2, retention="Best")
    assert later.delete == []
    assert later.status == done.status
    assert later.events == []


def test_trials_stopped_because_the_sweep_ended_are_counted_apart_from_pruned_ones() -> None:
    trials, _ = passes(1)
    seen = [finish(trials[0], 0.97, {10: 0.97}), running(trials[1], {10: 0.5})]
    goal = {"metric": "test_accuracy", "goal": 0.95}
    ended = decide(seen, objective=goal)
    assert ended.annotate == {"hp-1": {STOP: "SweepEnded"}}
    stored = ended.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    cut = json.loads(json.dumps(seen[1]))
    cut["metadata"].setdefault("annotations", {})[STOP] = "SweepEnded"
    cut["status"]["phase"] = "Stopped"
    later = decide([seen[0], cut], stored, at=10, objective=goal)
    counts = later.status.trials
    assert (counts.succeeded, counts.pruned, counts.stopped, counts.done) == (1, 0, 1, "2/6")
    assert [e.reason for e in later.events] == []  # nothing new to say
