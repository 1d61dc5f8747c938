"""The rules on updates (CEL transition rules with `oldSelf`) and their Python twins agree.

An elastic job resizes while it runs (only spec.parallelism.nodes, within its unchanged
[minNodes, maxNodes]); everything else about the gang's shape and program stays until the job is
suspended. The CEL runs here with cel-python; tests/integration/test_elastic_scale.py shows the
real API server enforcing it (kubectl patch and kubectl scale).
"""

from __future__ import annotations

import copy
from typing import Any

import celpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from spec_strategies import RESIZE_IDS, RESIZES, specs

from trainforge_api import rules
from trainforge_api.trainingjob import TrainingJobSpec
from trainforge_operator.crd import _SPEC_DEFAULTS

_CEL = celpy.Environment()
_PROGRAMS = {r.cel: _CEL.program(_CEL.compile(r.cel)) for r in rules.TRANSITION_RULES}
SHAPE = rules.TRANSITION_RULES[0]


def cel_allows(rule: rules.TransitionRule, old: TrainingJobSpec, new: TrainingJobSpec) -> bool:
    """The rule's CEL on both objects as the API server sees them (defaults applied)."""

    def body(spec: TrainingJobSpec) -> Any:
        dumped = spec.model_dump(by_alias=True, exclude_none=True, mode="json")
        return celpy.json_to_cel({**_SPEC_DEFAULTS, **dumped})

    return bool(_PROGRAMS[rule.cel].evaluate({"self": body(new), "oldSelf": body(old)}))


@st.composite
def updates(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A spec, and an edit of it a user might apply: a resize, new bounds, another field."""
    old = draw(specs())
    new = copy.deepcopy(old)
    par = new["parallelism"]
    if draw(st.booleans()):
        par["nodes"] = draw(st.integers(1, 12))
    for bound in ("minNodes", "maxNodes"):
        if draw(st.integers(0, 3)) == 0:
            value = draw(st.none() | st.integers(1, 12))
            par.pop(bound, None) if value is None else par.__setitem__(bound, value)
    if draw(st.integers(0, 4)) == 0:
        par["procsPerNode"] = draw(st.integers(1, 8))
    if draw(st.integers(0, 4)) == 0:
        par["layout"] = draw(st.sampled_from(["data", "fsdp", "pipeline", "tensor"]))
    if draw(st.integers(0, 4)) == 0:
        new["resources"]["gpus"] = draw(st.integers(0, 8))
    if draw(st.integers(0, 4)) == 0:
        new["image"] = "other:1"
    for spec in (old, new):
        if draw(st.integers(0, 4)) == 0:
            spec["runPolicy"]["suspend"] = True
    return old, new


@settings(max_examples=300, deadline=None)
@given(update=updates())
def test_every_transition_rule_and_its_cel_twin_agree(
    update: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    try:
        old, new = (TrainingJobSpec.model_validate(s) for s in update)
    except ValidationError:
        return  # the schema rejects it before any rule runs
    for rule in rules.TRANSITION_RULES:
        assert rule.holds(old, new) == cel_allows(rule, old, new), rule.cel


def _spec(**parallelism: Any) -> TrainingJobSpec:
    return TrainingJobSpec.model_validate({"command": ["python"], "parallelism": parallelism})


@pytest.mark.parametrize(("old", "new", "allowed"), RESIZES, ids=RESIZE_IDS)
def test_only_an_elastic_job_resizes_while_it_runs(
    old: dict[str, Any], new: dict[str, Any], allowed: int
) -> None:
    before, after = _spec(**old), _spec(**new)
    assert SHAPE.holds(before, after) == cel_allows(SHAPE, before, after) == bool(allowed)


def test_a_suspended_job_may_change_its_shape() -> None:
    old = _spec(nodes=2)
    new = TrainingJobSpec.model_validate(
        {"command": ["python"], "parallelism": {"nodes": 3}, "runPolicy": {"suspend": True}}
    )
    assert SHAPE.holds(old, new)
    assert cel_allows(SHAPE, old, new)
