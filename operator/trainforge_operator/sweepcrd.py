"""Build the TrainingSweep CustomResourceDefinition from the pydantic models.

The same conversion as the TrainingJob's (`crd.structural`); the embedded `trialTemplate` is the
TrainingJob spec schema itself, with the TrainingJob's own CEL rules, so a template that could not
run as a TrainingJob is rejected when the sweep is applied, not when its first trial is created.
The sweep's cross-field rules come from `trainforge_api.sweeprules`.
"""

from __future__ import annotations

from trainforge_api import sweeprules, trainingsweep
from trainforge_api.base import GROUP, VERSION
from trainforge_operator.crd import Schema, _model_schema, spec_schema

PRINTER_COLUMNS: list[Schema] = [
    {"name": "Algorithm", "type": "string", "jsonPath": ".spec.algorithm.type"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {
        "name": "Trials",
        "type": "string",
        "jsonPath": ".status.trials.done",
        "description": "Finished trials / maxTrials",
    },
    {"name": "Running", "type": "integer", "jsonPath": ".status.trials.running"},
    {"name": "Best", "type": "number", "jsonPath": ".status.bestTrial.value"},
    {"name": "Best trial", "type": "string", "jsonPath": ".status.bestTrial.name"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
]


def sweep_spec_schema() -> Schema:
    schema = _model_schema(trainingsweep.TrainingSweepSpec)
    schema["description"] = "Desired state: objective, search space, algorithm, limits, template."
    props = schema["properties"]
    # Absent lists are [] for the CEL rules (which error on a missing key instead of comparing).
    for sub in props.values():
        if sub.get("type") == "array":
            sub.setdefault("default", [])
    template = spec_schema()
    template["description"] = props["trialTemplate"].get("description", "")
    # TrainingJob transition rules (oldSelf) do not apply inside a template.
    template["x-kubernetes-validations"] = [
        r for r in template["x-kubernetes-validations"] if "oldSelf" not in r["rule"]
    ]
    props["trialTemplate"] = template
    item = props["parameters"]["items"]
    item["properties"]["choices"].setdefault("default", [])
    item["x-kubernetes-validations"] = [
        r.crd() for r in sweeprules.PARAMETER_RULES if r.scope == "parameter"
    ]
    for rule in sweeprules.PARAMETER_RULES:
        if rule.schema is not None:
            item.update(rule.schema)
    schema["x-kubernetes-validations"] = [r.crd() for r in sweeprules.SPEC_RULES]
    return schema


def sweep_status_schema() -> Schema:
    schema = _model_schema(trainingsweep.TrainingSweepStatus)
    schema["description"] = "Observed state, written by the operator."
    conditions = schema["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    conditions["items"]["required"] = ["type", "status"]
    for sub in schema["properties"].values():
        sub.pop("default", None)
    return schema


def build_sweep_crd() -> Schema:
    """The whole TrainingSweep CustomResourceDefinition object."""
    root: Schema = {
        "type": "object",
        "description": "A hyperparameter search whose trials are TrainingJobs, driven by Optuna.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": sweep_spec_schema(),
            "status": sweep_status_schema(),
        },
    }
    kind = trainingsweep.KIND
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{trainingsweep.PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "trainforge"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": trainingsweep.PLURAL,
                "singular": trainingsweep.SINGULAR,
                "shortNames": trainingsweep.SHORT_NAMES,
                "categories": trainingsweep.CATEGORIES,
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
