"""Build the TrainingSchedule CustomResourceDefinition from its pydantic models.

The same conversion as the TrainingJob CRD (`crd.structural`); `jobTemplate` is the TrainingJob
spec schema itself, with the TrainingJob's cross-field CEL (but not its immutability rules: a
schedule's template may change, the next run uses the new one).
"""

from __future__ import annotations

from trainforge_api import rules, schedule_rules, trainingschedule
from trainforge_api.base import GROUP, VERSION
from trainforge_operator.crd import Schema, _model_schema, spec_schema

PRINTER_COLUMNS: list[Schema] = [
    {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule"},
    {"name": "Last run", "type": "string", "jsonPath": ".status.lastRun"},
    {"name": "Last result", "type": "string", "jsonPath": ".status.lastResult"},
    {"name": "Champion metric", "type": "number", "jsonPath": ".status.champion.metric"},
    {"name": "Next run", "type": "string", "jsonPath": ".status.nextRun"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Champion", "type": "string", "jsonPath": ".status.champion.run", "priority": 1},
    {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
]


def schedule_spec_schema() -> Schema:
    schema = _model_schema(trainingschedule.TrainingScheduleSpec)
    schema["description"] = "When to retrain, what to run, and what a better model is."
    template = spec_schema()
    template["x-kubernetes-validations"] = [r.crd() for r in rules.SPEC_RULES]
    template["description"] = "The TrainingJob spec of every run."
    schema["properties"]["jobTemplate"] = template
    schema["x-kubernetes-validations"] = [r.crd() for r in schedule_rules.SPEC_RULES]
    return schema


def schedule_status_schema() -> Schema:
    schema = _model_schema(trainingschedule.TrainingScheduleStatus)
    schema["description"] = "Observed state, written by the operator."
    conditions = schema["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    conditions["items"]["required"] = ["type", "status"]
    for sub in schema["properties"].values():
        sub.pop("default", None)
    return schema


def build_schedule_crd() -> Schema:
    """The whole TrainingSchedule CustomResourceDefinition object."""
    root: Schema = {
        "type": "object",
        "description": "Retrains a TrainingJob on a cron schedule or when its data changes, and "
        "promotes a run only when it beats its baseline and the current champion.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": schedule_spec_schema(),
            "status": schedule_status_schema(),
        },
        "x-kubernetes-validations": [r.crd() for r in schedule_rules.METADATA_RULES],
    }
    ts = trainingschedule
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{ts.PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "trainforge"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": ts.KIND,
                "listKind": f"{ts.KIND}List",
                "plural": ts.PLURAL,
                "singular": ts.SINGULAR,
                "shortNames": ts.SHORT_NAMES,
                "categories": ts.CATEGORIES,
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }
