"""TrainingSchedule rules: each Python check agrees with its CEL twin (cel-python), and a bad
schedule is rejected with a message that says what to fix."""

from __future__ import annotations

from typing import Any

import celpy
import pytest

from trainforge_api import schedule_rules
from trainforge_api.trainingschedule import TrainingScheduleSpec

_CEL = celpy.Environment()
_PROGRAMS = {r.cel: _CEL.program(_CEL.compile(r.cel)) for r in schedule_rules.ALL_RULES}
TEMPLATE = {"command": ["python", "-m", "trainforge_runtime.trainers.digits"]}


def cel_holds(rule: schedule_rules.ScheduleRule, name: str, spec: TrainingScheduleSpec) -> bool:
    body = spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    scope = {"spec": body, "metadata": {"metadata": {"name": name}, "spec": body}}[rule.scope]
    return bool(_PROGRAMS[rule.cel].evaluate({"self": celpy.json_to_cel(scope)}))


def spec(**fields: Any) -> TrainingScheduleSpec:
    return TrainingScheduleSpec.model_validate({"jobTemplate": TEMPLATE, **fields})


CASES: list[tuple[str, str, dict[str, Any], str | None]] = [
    ("cron", "nightly", {"schedule": "0 3 * * *"}, None),
    ("macro", "nightly", {"schedule": "@daily", "timeZone": "Europe/Berlin"}, None),
    ("names", "nightly", {"schedule": "*/15 9-17 * JAN-MAR MON-FRI"}, None),
    ("data only", "ondata", {"newData": {"by": "etag"}}, None),
    ("both", "both", {"schedule": "@hourly", "newData": {"by": "mtime"}}, None),
    ("neither", "none", {}, "spec: set schedule"),
    ("four fields", "bad", {"schedule": "0 3 * *"}, "spec.schedule is not a cron expression"),
    ("words", "bad", {"schedule": "every day"}, "spec.schedule is not a cron expression"),
    ("zone", "bad", {"schedule": "@daily", "timeZone": "Berlin time"}, "spec.timeZone"),
    (
        "deadline",
        "bad",
        {"schedule": "@daily", "startingDeadlineSeconds": -1},
        "spec.startingDeadlineSeconds must not be negative",
    ),
    (
        "ok limit",
        "bad",
        {"schedule": "@daily", "successfulRunsHistoryLimit": -2},
        "spec.successfulRunsHistoryLimit must not be negative",
    ),
    (
        "failed limit",
        "bad",
        {"schedule": "@daily", "failedRunsHistoryLimit": -1},
        "spec.failedRunsHistoryLimit must not be negative",
    ),
    (
        "interval",
        "bad",
        {"newData": {"by": "etag", "minIntervalSeconds": -5}},
        "spec.newData.minIntervalSeconds must not be negative",
    ),
    (
        "margin",
        "bad",
        {"schedule": "@daily", "promotion": {"margin": -0.1}},
        "spec.promotion.margin must not be negative",
    ),
    ("long name", "x" * 43, {"schedule": "@daily"}, "metadata.name must be a DNS-1035 label"),
    ("upper name", "Nightly", {"schedule": "@daily"}, "metadata.name must be a DNS-1035 label"),
]


@pytest.mark.parametrize(
    ("name", "fields", "problem"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_rules_reject_with_a_fix_and_agree_with_cel(
    name: str, fields: dict[str, Any], problem: str | None
) -> None:
    parsed = spec(**fields)
    problems = schedule_rules.schedule_problems(parsed, name)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1, problems
        assert problems[0].startswith(problem), problems
    for rule in schedule_rules.ALL_RULES:
        assert rule.holds(name, parsed) == cel_holds(rule, name, parsed), rule.cel


def test_job_template_is_the_trainingjob_spec() -> None:
    from trainforge_api.trainingjob import TrainingJobSpec

    field = TrainingScheduleSpec.model_fields["job_template"]
    assert field.annotation is TrainingJobSpec


def test_the_example_schedule_is_valid_everywhere() -> None:
    from pathlib import Path

    import yaml

    from trainforge_operator.schedules.decision import spec_problems

    path = Path(__file__).resolve().parents[2] / "examples" / "digits-schedule.yaml"
    body = yaml.safe_load(path.read_text())
    body["metadata"]["namespace"] = "ml"
    parsed, problems = spec_problems(body)
    assert problems == []
    assert parsed is not None
    for rule in schedule_rules.ALL_RULES:
        assert cel_holds(rule, body["metadata"]["name"], parsed), rule.cel
