"""The sweep rules agree: the Python check and the CEL twin the API server runs (cel-python
here; tests/integration/test_sweep.py sends the same cases to a real API server)."""

from __future__ import annotations

from typing import Any

import celpy
import pytest

from trainforge_api import sweeprules
from trainforge_api.trainingsweep import TrainingSweepSpec

from .conftest import sweep_spec

_CEL = celpy.Environment()
_PROGRAMS = {
    r.cel: _CEL.program(_CEL.compile(r.cel)) for r in sweeprules.ALL_RULES if r.scope != "schema"
}

BAD = [
    pytest.param({"parameters": []}, "the search space is empty", id="empty-space"),
    pytest.param(
        {"parameters": [{"name": "opt", "type": "categorical", "choices": []}]},
        "spec.parameters[opt]: a categorical parameter needs at least one entry in choices",
        id="categorical-without-choices",
    ),
    pytest.param(
        {"parameters": [{"name": "lr", "type": "float", "low": 0, "high": 1, "log": True}]},
        "spec.parameters[lr]: a log-scale range must not include 0",
        id="log-range-with-zero",
    ),
    pytest.param(
        {"parameters": [{"name": "x", "type": "float", "low": 2, "high": 1}]},
        "low <= high",
        id="low-above-high",
    ),
    pytest.param(
        {"parameters": [{"name": "n", "type": "int", "low": 1, "high": 9, "step": 1.5}]},
        "must be a whole number",
        id="int-fractional-step",
    ),
    pytest.param(
        {"algorithm": {"type": "grid"}},
        "grid search needs a step on every float parameter",
        id="grid-continuous",
    ),
    pytest.param(
        {"maxTrials": 2, "parallelTrials": 3},
        "spec.parallelTrials must be <= spec.maxTrials",
        id="parallel-over-max",
    ),
    pytest.param(
        {"objective": {"metric": "bleu"}}, "which never reports that metric", id="unknown-metric"
    ),
    pytest.param(
        {"objective": {"metric": "test_accuracy", "intermediateMetric": "perplexity"}},
        "which never reports that metric",
        id="unknown-intermediate-metric",
    ),
    pytest.param(
        {"secondaryObjectives": [{"metric": "test_loss", "direction": "minimize"}]},
        "pruning needs a single objective",
        id="multi-objective-pruning",
    ),
    pytest.param(
        {"algorithm": {"type": "nsga2"}, "earlyStopping": {"type": "none"}},
        "nsga2 is for multi-objective search",
        id="nsga2-single-objective",
    ),
    pytest.param(
        {"trialTemplate": {"command": ["x"], "runPolicy": {"ttlSecondsAfterFinished": 5}}},
        "must not delete themselves",
        id="trials-with-ttl",
    ),
]


def cel_holds(rule: sweeprules.SweepRule, spec: TrainingSweepSpec) -> bool:
    """The rule's CEL on the spec as the API server sees it (defaults applied)."""
    body = spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    scopes = body["parameters"] if rule.scope == "parameter" else [body]
    program = _PROGRAMS[rule.cel]
    return all(bool(program.evaluate({"self": celpy.json_to_cel(s)})) for s in scopes)


@pytest.mark.parametrize(("change", "message"), BAD)
def test_bad_sweeps_name_the_field_and_the_fix(change: dict[str, Any], message: str) -> None:
    spec = TrainingSweepSpec.model_validate(sweep_spec(**change))
    problems = sweeprules.sweep_problems(spec)
    assert any(message in p for p in problems), problems


@pytest.mark.parametrize("change", [{}, *(p.values[0] for p in BAD)])
def test_every_rule_and_its_cel_twin_agree(change: dict[str, Any]) -> None:
    spec = TrainingSweepSpec.model_validate(sweep_spec(**change))
    for rule in sweeprules.ALL_RULES:
        if rule.scope != "schema":
            assert rule.holds(spec) == cel_holds(rule, spec), rule.cel


def test_a_valid_sweep_has_no_problem() -> None:
    assert sweeprules.sweep_problems(TrainingSweepSpec.model_validate(sweep_spec())) == []


def test_own_programs_may_report_any_metric() -> None:
    spec = sweep_spec(objective={"metric": "bleu"}, trialTemplate={"command": ["python", "x.py"]})
    assert sweeprules.sweep_problems(TrainingSweepSpec.model_validate(spec)) == []
