"""Build the TrainingSweep CustomResourceDefinition from the pydantic models.

The same conversion as the TrainingJob's (`crd.structural`); the embedded `trialTemplate` is the
TrainingJob spec schema itself, with the TrainingJob's own CEL rules, so a template that could not
run as a TrainingJob is rejected when the sweep is applied, not when its first trial is created.
The sweep's cross-field rules come from `trainforge_api.sweeprules`.
"""

from __future__ import annotations

from trainforge_api import sweeprules, trainingsweep
from trainforge_operator import crd

PRINTER_COLUMNS: list[crd.Schema] = [
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
    crd.AGE_COLUMN,
    crd.MESSAGE_COLUMN,
]


def sweep_spec_schema() -> crd.Schema:
    schema = crd._model_schema(trainingsweep.TrainingSweepSpec)
    schema["description"] = "Desired state: objective, search space, algorithm, limits, template."
    props = schema["properties"]
    # Absent lists are [] for the CEL rules (which error on a missing key instead of comparing).
    for sub in props.values():
        if sub.get("type") == "array":
            sub.setdefault("default", [])
    props["trialTemplate"] = crd.template_schema(props["trialTemplate"].get("description", ""))
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


def sweep_status_schema() -> crd.Schema:
    return crd.status_schema_of(trainingsweep.TrainingSweepStatus)


def build_sweep_crd() -> crd.Schema:
    """The whole TrainingSweep CustomResourceDefinition object."""
    return crd.custom_resource(
        trainingsweep,
        "A hyperparameter search whose trials are TrainingJobs, driven by Optuna.",
        sweep_spec_schema(),
        sweep_status_schema(),
        PRINTER_COLUMNS,
    )
