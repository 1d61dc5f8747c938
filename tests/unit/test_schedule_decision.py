"""decide() for TrainingSchedules: what is created, skipped, replaced, trimmed and promoted."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from trainforge_operator.schedules.decision import (
    ScheduleObserved,
    SchedulePlan,
    decide,
    wants_data,
)
from trainforge_operator.schedules.runs import (
    CHAMPION_ENV,
    DATA_FINGERPRINT,
    WARM_START_ENV,
    Run,
    read_run,
    run_name,
)

UTC = dt.UTC
CREATED = dt.datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
NOW = dt.datetime(2026, 3, 1, 10, 0, 20, tzinfo=UTC)
TEN = dt.datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def schedule(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "trainforge.io/v1alpha1",
        "kind": "TrainingSchedule",
        "metadata": {
            "name": "nightly",
            "namespace": "ml",
            "uid": "u-1",
            "generation": 1,
            "creationTimestamp": "2026-03-01T09:00:00Z",
        },
        "spec": {
            "schedule": "0 * * * *",
            "jobTemplate": {
                "command": ["python", "-m", "trainforge_runtime.trainers.digits"],
                "artifacts": {"uri": "s3://models"},
                "data": {"uri": "file:///data/digits"},
            },
            **spec,
        },
    }
    if status is not None:
        body["status"] = status
    return body


def run(minute: dt.datetime, phase: str | None = None, **kw: Any) -> Run:
    return Run(name=run_name("nightly", minute), scheduled=minute, phase=phase, **kw)


def pass_(
    body: dict[str, Any], runs: list[Run] | None = None, now: dt.datetime = NOW, **kw: Any
) -> SchedulePlan:
    return decide(ScheduleObserved(body=body, runs=runs or [], now=now, **kw))


def reasons(plan: SchedulePlan) -> list[str]:
    return [e.reason for e in plan.events]


def test_due_time_creates_one_run_named_by_its_minute() -> None:
    plan = pass_(schedule(status={"lastScheduleTime": "2026-03-01T09:00:00Z"}))
    (job,) = plan.create
    assert job["metadata"]["name"] == f"nightly-{int(TEN.timestamp()) // 60}"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert job["metadata"]["labels"]["trainforge.io/schedule"] == "nightly"
    assert job["spec"]["command"][-1] == "trainforge_runtime.trainers.digits"
    assert reasons(plan) == ["RunCreated"]
    assert plan.status.last_schedule_time == "2026-03-01T10:00:00Z"
    assert plan.status.next_run == "2026-03-01T11:00:00Z"
    assert plan.status.active == [job["metadata"]["name"]]
    assert plan.status.last_result == "Running"


def test_a_created_run_reads_back_as_itself() -> None:
    plan = pass_(schedule(), fingerprint="mtime:abc")
    parsed = read_run(plan.create[0])
    assert parsed == Run(
        name=run_name("nightly", TEN), scheduled=TEN, trigger="schedule", fingerprint="mtime:abc"
    )


def test_nothing_twice_when_the_run_exists_already() -> None:
    body = schedule()
    plan = pass_(body, [run(TEN)])
    assert plan.create == []
    assert "RunCreated" not in reasons(plan)


def test_nothing_before_the_first_fire_time_after_creation() -> None:
    body = schedule()
    body["metadata"]["creationTimestamp"] = "2026-03-01T10:00:10Z"
    plan = pass_(body)
    assert plan.create == []
    assert plan.requeue_after == pytest.approx(60 * 60 - 20 + 0.5)


@pytest.mark.parametrize(
    ("policy", "created", "deleted", "event"),
    [
        ("Allow", True, [], "RunCreated"),
        ("Forbid", False, [], "RunSkipped"),
        ("Replace", True, ["nightly-29539260"], "RunReplaced"),
    ],
)
def test_concurrency_policies_with_an_active_run(
    policy: str, created: bool, deleted: list[str], event: str
) -> None:
    nine = dt.datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    assert run_name("nightly", nine) == "nightly-29539260"
    body = schedule(concurrencyPolicy=policy, status={"lastScheduleTime": "2026-03-01T09:00:00Z"})
    plan = pass_(body, [run(nine, "Running")])
    assert bool(plan.create) is created
    assert plan.delete == deleted
    assert event in reasons(plan)
    # Forbid consumes the cron time like a CronJob: the next pass does not retry it.
    assert plan.status.last_schedule_time == "2026-03-01T10:00:00Z"


def test_catch_up_after_downtime_is_one_run_not_a_flood() -> None:
    body = schedule(schedule="* * * * *", status={"lastScheduleTime": "2026-03-01T09:30:00Z"})
    plan = pass_(body)
    assert len(plan.create) == 1
    assert plan.create[0]["metadata"]["name"] == run_name("nightly", TEN)
    assert reasons(plan) == ["RunsMissed", "RunCreated"]
    assert "29 scheduled run(s) were missed" in plan.events[0].message


def test_past_the_starting_deadline_nothing_runs() -> None:
    body = schedule(startingDeadlineSeconds=10, status={"lastScheduleTime": "2026-03-01T09:00:00Z"})
    plan = pass_(body)
    assert plan.create == []
    assert "RunSkipped" in reasons(plan)
    assert plan.status.last_schedule_time == "2026-03-01T10:00:00Z"


def test_suspended_schedule_creates_nothing_and_does_not_queue() -> None:
    body = schedule(suspend=True, status={"lastScheduleTime": "2026-03-01T09:00:00Z"})
    plan = pass_(body)
    assert plan.create == []
    assert plan.status.last_schedule_time == "2026-03-01T10:00:00Z"
    assert plan.status.message == "suspended: no new runs"


def promoted_status(**extra: Any) -> dict[str, Any]:
    return {"lastScheduleTime": "2026-03-01T10:00:00Z", **extra}


def test_a_better_run_is_promoted_with_a_pointer() -> None:
    done = run(
        TEN,
        "Succeeded",
        results={"test_accuracy": 0.97, "baseline_test_accuracy": 0.11},
        fingerprint="etag:1",
    )
    plan = pass_(schedule(status=promoted_status()), [done])
    champion = plan.status.champion
    assert champion is not None
    assert champion.run == done.name
    assert champion.metric == 0.97
    assert champion.artifacts_uri == f"s3://models/ml/{done.name}"
    assert champion.data_fingerprint == "etag:1"
    assert plan.pointer is not None
    assert plan.pointer.uri == "s3://models/ml/nightly/champion.json"
    assert plan.pointer.content["run"] == done.name
    assert plan.pointer.content["baseline"] == 0.11
    assert reasons(plan) == ["ModelPromoted"]
    assert plan.status.runs[0].result == "Promoted"
    assert plan.status.last_result == "Promoted"
    assert plan.results == ["Promoted"]


def test_a_worse_run_is_not_promoted_and_says_why() -> None:
    old = {"run": "nightly-1", "metric": 0.98, "artifactsUri": "s3://models/ml/nightly-1"}
    done = run(TEN, "Succeeded", results={"test_accuracy": 0.97, "baseline_test_accuracy": 0.11})
    plan = pass_(schedule(status=promoted_status(champion=old)), [done])
    assert plan.status.champion is not None
    assert plan.status.champion.run == "nightly-1"
    assert plan.pointer is None
    assert reasons(plan) == ["NotPromoted"]
    assert "not better than the champion nightly-1" in plan.events[0].message


def test_verdicts_are_reached_once() -> None:
    done = run(TEN, "Succeeded", results={"test_accuracy": 0.97, "baseline_test_accuracy": 0.11})
    first = pass_(schedule(status=promoted_status()), [done])
    stored = first.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    second = pass_(schedule(status=stored), [done])
    assert second.events == []
    assert second.pointer is None
    assert second.status == first.status


def test_champion_history_keeps_the_previous_champions() -> None:
    old = {"run": "nightly-1", "metric": 0.90}
    history = [{"run": f"nightly-0{i}", "metric": 0.5} for i in range(5)]
    done = run(TEN, "Succeeded", results={"test_accuracy": 0.97, "baseline_test_accuracy": 0.1})
    body = schedule(
        status=promoted_status(champion=old, championHistory=history),
        promotion={"championHistoryLimit": 3},
    )
    plan = pass_(body, [done])
    assert [c.run for c in plan.status.champion_history] == [
        "nightly-1",
        "nightly-00",
        "nightly-01",
    ]


def test_history_is_trimmed_only_after_the_verdict_is_stored() -> None:
    minutes = [TEN - dt.timedelta(hours=h) for h in range(5)]
    ok = {"test_accuracy": 0.5, "baseline_test_accuracy": 0.1}
    runs = (
        [run(minutes[0], "Succeeded", results=ok)]
        + [run(m, "Succeeded", results=ok) for m in minutes[1:4]]
        + [run(minutes[4], "Failed")]
    )
    body = schedule(
        successfulRunsHistoryLimit=2, failedRunsHistoryLimit=0, status=promoted_status()
    )
    first = pass_(body, runs)
    assert first.delete == []  # nothing judged was stored yet
    stored = first.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    second = pass_(
        schedule(successfulRunsHistoryLimit=2, failedRunsHistoryLimit=0, status=stored), runs
    )
    assert second.delete == [runs[2].name, runs[3].name, runs[4].name]
    assert [r.name for r in second.status.runs] == [runs[0].name, runs[1].name]


def test_new_data_starts_a_run_that_records_its_fingerprint() -> None:
    body = schedule(schedule=None, newData={"by": "mtime", "minIntervalSeconds": 60})
    del body["spec"]["schedule"]
    assert wants_data(body, [], NOW)
    plan = pass_(body, fingerprint="mtime:aaa")
    (job,) = plan.create
    assert job["metadata"]["annotations"][DATA_FINGERPRINT] == "mtime:aaa"
    assert job["metadata"]["annotations"]["trainforge.io/trigger"] == "newData"
    assert plan.status.data_fingerprint == "mtime:aaa"
    assert plan.requeue_after == 30  # the new run is active
    # Same data later: nothing; changed data: a second run.
    stored = plan.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    body["status"] = stored
    created = read_run(job)
    assert created is not None
    first = dataclasses.replace(created, phase="Succeeded")
    later = NOW + dt.timedelta(minutes=2)
    assert not wants_data(body, [first], NOW + dt.timedelta(seconds=30))
    assert pass_(body, [first], later, fingerprint="mtime:aaa").create == []
    again = pass_(body, [first], later, fingerprint="mtime:bbb")
    assert [j["metadata"]["name"] for j in again.create] == [
        run_name("nightly", later.replace(second=0))
    ]


def test_data_change_waits_while_a_run_is_active_under_forbid() -> None:
    body = schedule(schedule=None, newData={"by": "mtime", "minIntervalSeconds": 0})
    del body["spec"]["schedule"]
    active = run(TEN - dt.timedelta(hours=1), "Running", trigger="newData", fingerprint="mtime:old")
    plan = pass_(body, [active], fingerprint="mtime:new")
    assert plan.create == []
    assert "RunSkipped" in reasons(plan)
    finished = run(
        TEN - dt.timedelta(hours=1), "Failed", trigger="newData", fingerprint="mtime:old"
    )
    assert len(pass_(body, [finished], fingerprint="mtime:new").create) == 1


def test_warm_start_passes_the_champion() -> None:
    champion = {"run": "nightly-1", "metric": 0.9, "artifactsUri": "s3://models/ml/nightly-1"}
    body = schedule(
        warmStart="champion",
        status={"lastScheduleTime": "2026-03-01T09:00:00Z", "champion": champion},
    )
    (job,) = pass_(body).create
    assert {"name": WARM_START_ENV, "value": "s3://models/ml/nightly-1"} in job["spec"]["env"]
    assert {"name": CHAMPION_ENV, "value": '{"test_accuracy": 0.9}'} in job["spec"]["env"]


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"schedule": "61 * * * *"}, "is not a valid cron expression"),
        ({"timeZone": "Mars/Base"}, "unknown time zone 'Mars/Base'"),
        ({"failedRunsHistoryLimit": -1}, "spec.failedRunsHistoryLimit must not be negative"),
        ({"concurrencyPolicy": "Sometimes"}, "spec.concurrencyPolicy"),
        (
            {
                "jobTemplate": {
                    "command": ["x"],
                    "parallelism": {"layout": "fsdp", "tensorParallel": 2},
                }
            },
            "spec.jobTemplate: spec.parallelism: layout fsdp shards the model",
        ),
    ],
)
def test_invalid_spec_is_a_condition_and_creates_nothing(
    spec: dict[str, Any], fragment: str
) -> None:
    plan = pass_(schedule(**spec))
    assert plan.create == []
    (cond,) = [c for c in plan.status.conditions if c.type == "InvalidSpec"]
    assert cond.status == "True"
    assert fragment in cond.message
    assert reasons(plan) == ["InvalidSpec"]
