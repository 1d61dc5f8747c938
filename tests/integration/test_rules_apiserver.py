# ruff: noqa: F811  (pytest fixtures imported from operator_fixture are re-bound as arguments)
"""The CRD's CEL rules and the Python rules agree on a real API server.

A sample of the same generated specs as tests/unit/test_rules.py goes through server-side
dry-run creates (nothing is stored): the API server must accept exactly the specs that
`trainforge_api.context.parse_spec` accepts, and a rejection must carry the rule's message.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from operator_fixture import trainforge_crd  # noqa: F401  (fixture)
from spec_strategies import manifest, names, specs
from tf_controlplane import ControlPlane

from trainforge_api import rules
from trainforge_api.context import InvalidSpecError, parse_spec
from trainforge_api.trainingjob import TrainingJobSpec


def server_verdict(control_plane: ControlPlane, body: dict[str, Any]) -> str | None:
    """None when the API server accepts the object, else its error text."""
    proc = control_plane.kubectl(
        "create", "--dry-run=server", "-o", "name", "-f", "-", input=json.dumps(body)
    )
    return None if proc.returncode == 0 else proc.stderr


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=names, spec=specs())
def test_api_server_and_python_rules_agree(
    control_plane: ControlPlane, trainforge_crd: None, name: str, spec: dict[str, Any]
) -> None:
    body = manifest(name, spec)
    try:
        parse_spec(body)
        problems: list[str] = []
    except InvalidSpecError:
        problems = rules.spec_problems(TrainingJobSpec.model_validate(spec), name)
    error = server_verdict(control_plane, body)
    if not problems:
        assert error is None, f"the API server rejected a spec the operator accepts: {error}"
        return
    assert error is not None, f"the API server accepted a spec the operator rejects: {problems}"
    said = " ".join(error.split())
    parsed = TrainingJobSpec.model_validate(spec)
    for rule in rules.ALL_RULES:
        if not rule.holds(name, parsed):
            assert " ".join(rule.message.split()) in said, (rule.message, said)


@pytest.mark.parametrize(
    ("parallelism", "fragment"),
    [
        # Both once passed `kubectl apply` and the operator, then every rank exited 64.
        ({"layout": "fsdp", "tensorParallel": 2, "nodes": 2}, "layout fsdp shards the model"),
        (
            {"layout": "tensor", "tensorParallel": 2, "pipelineStages": 2, "nodes": 4},
            "layout tensor needs tensorParallel >= 2 and pipelineStages: 1",
        ),
    ],
    ids=["fsdp-with-tensor-parallel", "tensor-with-pipeline-stages"],
)
def test_kubectl_apply_rejects_what_the_runtime_cannot_run(
    control_plane: ControlPlane,
    trainforge_crd: None,
    namespace: str,
    parallelism: dict[str, Any],
    fragment: str,
) -> None:
    body = manifest("bad", {"command": ["python", "train.py"], "parallelism": parallelism})
    body["metadata"]["namespace"] = namespace
    proc = control_plane.kubectl("apply", "-f", "-", input=json.dumps(body))
    assert proc.returncode != 0
    assert fragment in " ".join(proc.stderr.split()), proc.stderr


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        (
            {"command": ["bash", "-c", "cd /app && torchrun --nproc-per-node=2 train.py"]},
            "do not start torchrun",
        ),
        (
            {
                "command": ["python", "-m", "trainforge_runtime.trainers.digits"],
                "launcher": "standalone",
            },
            "spec.launcher: standalone runs your own script in any image",
        ),
    ],
    ids=["torchrun-in-a-shell", "standalone-with-a-trainforge-trainer"],
)
def test_kubectl_apply_rejects_launcher_mixups(
    control_plane: ControlPlane, trainforge_crd: None, spec: dict[str, Any], fragment: str
) -> None:
    error = server_verdict(control_plane, manifest("mixup", spec))
    assert error is not None
    assert fragment in " ".join(error.split())
    fine = {"command": ["bash", "-c", "python train.py"], "launcher": "standalone"}
    assert server_verdict(control_plane, manifest("fine", fine)) is None
