"""The cross-field rules agree everywhere: the operator's check, the runtime's check and the CEL
the API server runs (evaluated here with cel-python; tests/integration/test_rules_apiserver.py
sends a sample to a real API server).
"""

from __future__ import annotations

import json
from typing import Any

import celpy
import pytest
from hypothesis import given, settings
from spec_strategies import manifest, names, specs

from trainforge_api import exitcodes, rules
from trainforge_api.context import (
    InvalidSpecError,
    JobContext,
    job_context_from_manifest,
    parse_spec,
)
from trainforge_api.trainingjob import TrainingJobSpec
from trainforge_runtime.config import validate_context
from trainforge_runtime.layouts import mesh_shape

_CEL = celpy.Environment()
_PROGRAMS = {rule.cel: _CEL.program(_CEL.compile(rule.cel)) for rule in rules.ALL_RULES}


def cel_scopes(name: str, spec: TrainingJobSpec) -> dict[str, Any]:
    """`self` for each rule scope, as the API server sees the object (defaults applied).

    Built once per spec, not once per rule: the JSON-to-CEL conversion was a fifth of this
    file's CPU time."""
    body = spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    return {
        "spec": celpy.json_to_cel(body),
        "parallelism": celpy.json_to_cel(body["parallelism"]),
        "metadata": celpy.json_to_cel({"metadata": {"name": name}, "spec": body}),
    }


def cel_holds(rule: rules.Rule, name: str, spec: TrainingJobSpec) -> bool:
    """Evaluate the rule's CEL on the object as the API server sees it (defaults applied)."""
    return cel_holds_in(rule, cel_scopes(name, spec))


def cel_holds_in(rule: rules.Rule, scopes: dict[str, Any]) -> bool:
    """Evaluate the rule's CEL on its scope from `cel_scopes`."""
    return bool(_PROGRAMS[rule.cel].evaluate({"self": scopes[rule.scope]}))


@settings(max_examples=1000, deadline=None)
@given(name=names, spec=specs())
def test_accepted_specs_run_and_rejected_ones_name_the_field(
    name: str, spec: dict[str, Any]
) -> None:
    try:
        ctx = job_context_from_manifest(manifest(name, spec), in_cluster=True)
    except InvalidSpecError:
        parsed = TrainingJobSpec.model_validate(spec)
        problems = rules.spec_problems(parsed, name)
        assert problems, "rejected without a problem"
        for problem in problems:
            assert problem.startswith(("spec.", "metadata.name")), problem
        return
    # What the operator renders into the ConfigMap passes the worker's check, and the runtime can
    # build its device mesh from it (mesh_shape is the runtime's own account of what it can run).
    worker = JobContext.model_validate(json.loads(ctx.to_json()))
    validate_context(worker)
    par = worker.parallelism
    mesh_shape(par.layout, par.world_size, par.tensor_parallel, par.pipeline_stages)


@settings(max_examples=1000, deadline=None)
@given(name=names, spec=specs())
def test_every_rule_and_its_cel_twin_agree(name: str, spec: dict[str, Any]) -> None:
    parsed = TrainingJobSpec.model_validate(spec)
    scopes = cel_scopes(name, parsed)
    for rule in rules.ALL_RULES:
        assert rule.holds(name, parsed) == cel_holds_in(rule, scopes), rule.cel


@pytest.mark.parametrize(
    ("parallelism", "fragment"),
    [
        # Both passed the API server and the operator once; every rank then exited 64.
        ({"layout": "fsdp", "tensorParallel": 2}, "layout fsdp shards the model"),
        (
            {"layout": "tensor", "tensorParallel": 2, "pipelineStages": 2, "nodes": 4},
            "layout tensor needs tensorParallel >= 2 and pipelineStages: 1",
        ),
    ],
)
def test_specs_the_runtime_cannot_run_are_rejected(
    parallelism: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(InvalidSpecError, match=fragment):
        parse_spec(manifest("bad", {"command": ["python"], "parallelism": parallelism}))


def test_every_message_names_its_field_and_the_crd_carries_them() -> None:
    from trainforge_operator.crd import build_crd

    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]
    in_crd = [
        *schema["x-kubernetes-validations"],
        *spec["x-kubernetes-validations"],
        *spec["properties"]["parallelism"]["x-kubernetes-validations"],
    ]
    for rule in rules.ALL_RULES:
        assert rule.message.startswith(("spec.", "metadata.name")), rule.message
        assert rule.crd() in in_crd


@pytest.mark.parametrize(
    ("command", "args"),
    [
        (["torchrun", "--nnodes=2", "train.py"], []),
        (["/usr/local/bin/torchrun"], ["train.py"]),
        (["python", "-m", "torch.distributed.run", "train.py"], []),
        (["python"], ["-m", "torch.distributed.run", "--nproc-per-node=2", "train.py"]),
        (["python3", "-u", "-m", "torch.distributed.launch", "train.py"], []),
        (["bash", "-c", "cd /app && torchrun --nproc-per-node=2 train.py"], []),
        (["/bin/sh"], ["-c", "set -e\n/opt/conda/bin/torchrun train.py"]),
        (["bash", "-l", "-c", "python -m torch.distributed.run train.py"], []),
    ],
)
def test_torchrun_under_trainforge_is_rejected_with_what_to_write(
    command: list[str], args: list[str]
) -> None:
    # Nested torchrun once formed one world per node in local mode and still Succeeded.
    spec = {"command": command, "args": args, "parallelism": {"nodes": 2}}
    with pytest.raises(InvalidSpecError, match=r"write command: \[python, train.py\]"):
        parse_spec(manifest("nested", spec))
    rule = next(r for r in rules.SPEC_RULES if "torchrun" in r.message)
    assert not cel_holds(rule, "nested", TrainingJobSpec.model_validate(spec))


def test_torchrun_in_a_worker_context_is_rejected_before_any_process() -> None:
    ctx = JobContext.model_validate(
        {"job": {"name": "t"}, "command": ["python"], "args": ["-m", "torch.distributed.run"]}
    )
    with pytest.raises(exitcodes.InvalidContextError, match="torchrun"):
        validate_context(ctx)


@pytest.mark.parametrize(
    ("command", "args"),
    [
        (["bash", "-c", "python train.py --note torchrunner"], []),
        (["python", "train.py", "-c", "torchrun x"], []),
    ],
)
def test_a_shell_that_does_not_start_torchrun_is_accepted(
    command: list[str], args: list[str]
) -> None:
    spec = TrainingJobSpec.model_validate({"command": command, "args": args})
    rule = next(r for r in rules.SPEC_RULES if "torchrun" in r.message)
    assert rule.holds("plain", spec)
    assert cel_holds(rule, "plain", spec)


@pytest.mark.parametrize(
    ("launcher", "command", "ok"),
    [
        ("standalone", ["python", "-m", "trainforge_runtime.trainers.digits"], False),
        ("standalone", ["python3", "-u", "-m", "trainforge_runtime.trainers.gpt"], False),
        ("standalone", ["python", "train.py"], True),
        ("runtime", ["python", "-m", "trainforge_runtime.trainers.digits"], True),
        ("auto", ["python", "-m", "trainforge_runtime.trainers.digits"], True),
    ],
)
def test_standalone_launcher_refuses_trainforges_own_trainers(
    launcher: str, command: list[str], ok: bool
) -> None:
    spec = TrainingJobSpec.model_validate({"command": command, "launcher": launcher})
    rule = next(r for r in rules.SPEC_RULES if r.message.startswith("spec.launcher"))
    assert rule.holds("j", spec) == cel_holds(rule, "j", spec) == ok
