"""Every cross-field rule of a TrainingSweep, stated once: a Python check beside its CEL twin.

Like `rules.py` for TrainingJobs: the API server runs the CEL (generated into the CRD), the
operator and `trainforge sweep --local` run `sweep_problems` before they start a trial, and
tests/unit/test_sweep_rules.py proves that the two halves of every row agree. Each message names
the field and says what to change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from trainforge_api.trainingsweep import Objective, Parameter, TrainingSweepSpec

SweepScope = Literal["spec", "parameter", "schema"]

# What the shipped trainers report (trainforge_runtime/trainers): progress metrics while they
# train and rank 0's final metrics (status.results). An objective outside these can never be read.
SHIPPED_TRAINER_METRICS: dict[str, tuple[str, ...]] = {
    "trainforge_runtime.trainers.digits": (
        "accuracy",
        "epoch",
        "grad_norm",
        "loss",
        "lr",
        "test_accuracy",
        "test_f1_macro",
        "test_loss",
        "val_accuracy",
        "val_loss",
    ),
    "trainforge_runtime.trainers.gpt": ("grad_norm", "loss", "lr", "val_loss"),
}


@dataclass(frozen=True)
class SweepRule:
    """One rule. `cel` runs with `self` at `scope` (the spec, or one item of spec.parameters);
    `holds` is the same rule in Python on the spec (parameter rules are checked per item).
    Scope `schema`: CEL cannot see the field (typed choices have no CEL type), so the API server
    enforces it through the OpenAPI schema (`schema`, merged into a parameter's schema)."""

    scope: SweepScope
    cel: str
    message: str
    holds: Callable[[TrainingSweepSpec], bool]
    reason: str = "FieldValueInvalid"
    schema: dict[str, Any] | None = None

    def crd(self) -> dict[str, str]:
        return {"rule": self.cel, "message": self.message, "reason": self.reason}


def _each(check: Callable[[Parameter], bool]) -> Callable[[TrainingSweepSpec], bool]:
    def holds(spec: TrainingSweepSpec) -> bool:
        return all(check(p) for p in spec.parameters)

    return holds


def _bounded(p: Parameter) -> bool:
    return p.type == "categorical" or (p.low is not None and p.high is not None and p.low <= p.high)


def _log_positive(p: Parameter) -> bool:
    return not p.log or p.type == "categorical" or (p.low is not None and p.low > 0)


def _int_log_step(p: Parameter) -> bool:
    return not (p.type == "int" and p.log) or p.step is None or p.step == 1


def _int_step_whole(p: Parameter) -> bool:
    return p.type != "int" or p.step is None or p.step == int(p.step)


def _trainer_metrics(spec: TrainingSweepSpec) -> tuple[str, ...] | None:
    for module, known in SHIPPED_TRAINER_METRICS.items():
        if module in spec.trial_template.command:
            return known
    return None


def _reports(module: str) -> Callable[[TrainingSweepSpec], bool]:
    def holds(spec: TrainingSweepSpec) -> bool:
        if module not in spec.trial_template.command:
            return True
        known = SHIPPED_TRAINER_METRICS[module]
        return all(
            o.metric in known and (o.intermediate_metric is None or o.intermediate_metric in known)
            for o in spec.objectives
        )

    return holds


def _reports_cel(module: str) -> str:
    known = ", ".join(f"'{m}'" for m in SHIPPED_TRAINER_METRICS[module])

    def ok(o: str) -> str:
        return (
            f"{o}.metric in [{known}] && (!has({o}.intermediateMetric) || "
            f"{o}.intermediateMetric in [{known}])"
        )

    # [self.objective] + self.secondaryObjectives does not type-check: two declared types.
    return (
        f"!self.trialTemplate.command.exists(c, c == '{module}') || "
        f"({ok('self.objective')} && self.secondaryObjectives.all(o, {ok('o')}))"
    )


PARAMETER_RULES: list[SweepRule] = [
    SweepRule(
        "schema",
        "self.type != 'categorical' || size(self.choices) > 0",
        "spec.parameters[]: a categorical parameter needs at least one entry in choices",
        _each(lambda p: p.type != "categorical" or len(p.choices) > 0),
        # Either not categorical, or choices with at least one entry.
        schema={
            "anyOf": [
                {"properties": {"type": {"enum": ["float", "int"]}}},
                {"required": ["choices"], "properties": {"choices": {"minItems": 1}}},
            ]
        },
    ),
    SweepRule(
        "parameter",
        "self.type == 'categorical' || (has(self.low) && has(self.high) && self.low <= self.high)",
        "spec.parameters[]: a float or int parameter needs low and high with low <= high",
        _each(_bounded),
    ),
    SweepRule(
        "parameter",
        "!self.log || self.type == 'categorical' || (has(self.low) && self.low > 0)",
        "spec.parameters[]: a log-scale range must not include 0: set low > 0 or log: false",
        _each(_log_positive),
    ),
    SweepRule(
        "parameter",
        "!(self.type == 'int' && self.log) || !has(self.step) || self.step == 1.0",
        "spec.parameters[]: an int parameter on a log scale takes no step (or step: 1)",
        _each(_int_log_step),
    ),
    SweepRule(
        "parameter",
        "self.type != 'int' || !has(self.step) || self.step == double(int(self.step))",
        "spec.parameters[]: the step of an int parameter must be a whole number",
        _each(_int_step_whole),
    ),
]

SPEC_RULES: list[SweepRule] = [
    SweepRule(
        "spec",
        "size(self.parameters) > 0",
        "spec.parameters: the search space is empty; add at least one parameter to tune",
        lambda spec: len(spec.parameters) > 0,
    ),
    SweepRule(
        "spec",
        "self.algorithm.type != 'grid' || self.parameters.all(p, p.type != 'float' || has(p.step))",
        "spec.parameters: grid search needs a step on every float parameter (a continuous range "
        "has no grid); add step, or use algorithm random, tpe, gp or cmaes",
        lambda spec: (
            spec.algorithm.type != "grid"
            or all(p.type != "float" or p.step is not None for p in spec.parameters)
        ),
    ),
    SweepRule(
        "spec",
        "self.parallelTrials <= self.maxTrials",
        "spec.parallelTrials must be <= spec.maxTrials",
        lambda spec: spec.parallel_trials <= spec.max_trials,
    ),
    SweepRule(
        "spec",
        "size(self.secondaryObjectives) == 0 || "
        "self.algorithm.type in ['random', 'grid', 'tpe', 'nsga2']",
        "spec.algorithm: a multi-objective sweep (secondaryObjectives) needs algorithm nsga2, "
        "tpe, random or grid",
        lambda spec: (
            not spec.multi_objective or spec.algorithm.type in ("random", "grid", "tpe", "nsga2")
        ),
    ),
    SweepRule(
        "spec",
        "size(self.secondaryObjectives) == 0 || self.earlyStopping.type == 'none'",
        "spec.earlyStopping: pruning needs a single objective; set earlyStopping.type: none or "
        "remove secondaryObjectives",
        lambda spec: not spec.multi_objective or spec.early_stopping.type == "none",
    ),
    SweepRule(
        "spec",
        "self.algorithm.type != 'nsga2' || size(self.secondaryObjectives) > 0",
        "spec.algorithm: nsga2 is for multi-objective search; add secondaryObjectives or use tpe",
        lambda spec: spec.algorithm.type != "nsga2" or spec.multi_objective,
    ),
    SweepRule(
        "spec",
        "!has(self.trialTemplate.runPolicy.ttlSecondsAfterFinished)",
        "spec.trialTemplate.runPolicy.ttlSecondsAfterFinished: the study is rebuilt from the "
        "trials, so they must not delete themselves; use spec.retention instead",
        lambda spec: spec.trial_template.run_policy.ttl_seconds_after_finished is None,
    ),
    *(
        SweepRule(
            "spec",
            _reports_cel(module),
            f"spec.objective: the trial template runs {module}, which never reports that "
            f"metric; it reports {', '.join(SHIPPED_TRAINER_METRICS[module])}",
            _reports(module),
        )
        for module in SHIPPED_TRAINER_METRICS
    ),
]

ALL_RULES: list[SweepRule] = [*PARAMETER_RULES, *SPEC_RULES]


def _named(rule: SweepRule, spec: TrainingSweepSpec) -> str:
    """The message, with the offending parameter's name in place of `[]`."""
    if rule.scope == "spec":
        return rule.message
    bad = [p.name for p in spec.parameters if not rule.holds(_only(spec, p))]
    return rule.message.replace("[]", f"[{', '.join(bad)}]", 1)


def _only(spec: TrainingSweepSpec, param: Parameter) -> TrainingSweepSpec:
    return spec.model_copy(update={"parameters": [param]})


def sweep_problems(spec: TrainingSweepSpec) -> list[str]:
    """Every rule a schema-valid sweep spec breaks, each phrased as what to fix."""
    return [_named(rule, spec) for rule in ALL_RULES if not rule.holds(spec)]


def objective_metrics(objectives: list[Objective]) -> set[str]:
    return {o.metric for o in objectives} | {o.progress_metric for o in objectives}


def trainer_metrics(spec: TrainingSweepSpec) -> tuple[str, ...] | None:
    """What the template's shipped trainer reports, or None for a user's own program."""
    return _trainer_metrics(spec)
