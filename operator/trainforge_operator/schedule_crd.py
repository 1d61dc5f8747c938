"""Build the TrainingSchedule CustomResourceDefinition from its pydantic models.

The same conversion as the TrainingJob CRD (`crd.structural`); `jobTemplate` is the TrainingJob
spec schema itself, with the TrainingJob's cross-field CEL (but not its immutability rules: a
schedule's template may change, the next run uses the new one).
"""

from __future__ import annotations

from trainforge_api import schedule_rules, trainingschedule
from trainforge_operator import crd

PRINTER_COLUMNS: list[crd.Schema] = [
    {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule"},
    {"name": "Last run", "type": "string", "jsonPath": ".status.lastRun"},
    {"name": "Last result", "type": "string", "jsonPath": ".status.lastResult"},
    {"name": "Champion metric", "type": "number", "jsonPath": ".status.champion.metric"},
    {"name": "Next run", "type": "string", "jsonPath": ".status.nextRun"},
    crd.AGE_COLUMN,
    {"name": "Champion", "type": "string", "jsonPath": ".status.champion.run", "priority": 1},
    crd.MESSAGE_COLUMN,
]


def schedule_spec_schema() -> crd.Schema:
    schema = crd._model_schema(trainingschedule.TrainingScheduleSpec)
    schema["description"] = "When to retrain, what to run, and what a better model is."
    schema["properties"]["jobTemplate"] = crd.template_schema("The TrainingJob spec of every run.")
    schema["x-kubernetes-validations"] = [r.crd() for r in schedule_rules.SPEC_RULES]
    return schema


def schedule_status_schema() -> crd.Schema:
    return crd.status_schema_of(trainingschedule.TrainingScheduleStatus)


def build_schedule_crd() -> crd.Schema:
    """The whole TrainingSchedule CustomResourceDefinition object."""
    return crd.custom_resource(
        trainingschedule,
        "Retrains a TrainingJob on a cron schedule or when its data changes, and "
        "promotes a run only when it beats its baseline and the current champion.",
        schedule_spec_schema(),
        schedule_status_schema(),
        PRINTER_COLUMNS,
        [r.crd() for r in schedule_rules.METADATA_RULES],
    )
