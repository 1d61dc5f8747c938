"""The CRD generated from the pydantic models is structural, complete and committed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from trainforge_operator.crd import build_crd, render_yaml, update_reference
from trainforge_operator.schedule_crd import build_schedule_crd
from trainforge_operator.sweepcrd import build_sweep_crd

ROOT = Path(__file__).resolve().parents[2]
CRD_FILES = [
    ROOT / "crds" / "trainingjobs.trainforge.io.yaml",
    ROOT / "charts" / "trainforge" / "files" / "crds" / "trainingjobs.trainforge.io.yaml",
]


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return build_crd()


def _schema(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in (node.get("properties") or {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _nodes(node["additionalProperties"], f"{path}[*]")
    if "items" in node:
        yield from _nodes(node["items"], f"{path}[]")


def test_schema_is_structural(crd: dict[str, Any]) -> None:
    for path, node in _nodes(_schema(crd)):
        assert not {"$ref", "$defs", "anyOf", "oneOf", "allOf", "title"} & set(node), path
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
        assert not ("properties" in node and "additionalProperties" in node), path
        assert node.get("additionalProperties") is not True, path


def test_embedded_core_types_preserve_unknown_fields(crd: dict[str, Any]) -> None:
    spec = _schema(crd)["properties"]["spec"]["properties"]
    assert spec["env"]["items"]["x-kubernetes-preserve-unknown-fields"] is True
    assert spec["placement"]["properties"]["affinity"]["x-kubernetes-preserve-unknown-fields"]
    assert spec["podTemplate"]["properties"]["volumes"]["items"]["type"] == "object"
    assert spec["hyperparameters"]["x-kubernetes-preserve-unknown-fields"] is True


def test_enums_minimums_defaults_descriptions(crd: dict[str, Any]) -> None:
    spec = _schema(crd)["properties"]["spec"]["properties"]
    par = spec["parallelism"]
    assert par["default"] == {
        "layout": "data",
        "nodes": 1,
        "tensorParallel": 1,
        "pipelineStages": 1,
        "backend": "auto",
    }
    assert par["properties"]["layout"]["enum"] == ["data", "fsdp", "pipeline", "tensor"]
    assert par["properties"]["backend"]["enum"] == ["auto", "nccl", "gloo"]
    assert par["properties"]["nodes"]["minimum"] == 1
    assert "default" not in par["properties"]["procsPerNode"]
    assert spec["runPolicy"]["properties"]["maxRestarts"]["default"] == 3
    assert spec["metrics"]["properties"]["port"]["default"] == 9400
    assert "description" in par["properties"]["nodes"]
    status = _schema(crd)["properties"]["status"]["properties"]
    assert status["phase"]["enum"] == [
        "Pending", "Starting", "Running", "Restarting", "Succeeded", "Failed", "Suspended",
        "Stopped", "Queued",
    ]  # fmt: skip
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]


def test_cel_rules(crd: dict[str, Any]) -> None:
    root = _schema(crd)
    root_rules = " ".join(r["rule"] for r in root["x-kubernetes-validations"])
    assert "self.metadata.name.matches" in root_rules
    assert "size(self.metadata.name)" in root_rules
    spec = root["properties"]["spec"]
    rules = [r["rule"] for r in spec["x-kubernetes-validations"]]
    assert any("tensorParallel * self.parallelism.pipelineStages" in r for r in rules)
    assert sum("oldSelf" in r for r in rules) == 2
    assert all("suspend" in r for r in rules if "oldSelf" in r)
    layout_rules = spec["properties"]["parallelism"]["x-kubernetes-validations"]
    assert len(layout_rules) == 6  # four layouts, then the elastic sizes
    assert any("self.minNodes <= self.nodes" in r["rule"] for r in layout_rules)
    assert all(r["message"] for r in root["x-kubernetes-validations"] + layout_rules)


def test_names_columns_and_status_subresource(crd: dict[str, Any]) -> None:
    names = crd["spec"]["names"]
    assert names["shortNames"] == ["tj"]
    assert "trainforge" in names["categories"]
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {
        "status": {},
        "scale": {  # kubectl scale and a HorizontalPodAutoscaler resize an elastic job
            "specReplicasPath": ".spec.parallelism.nodes",
            "statusReplicasPath": ".status.currentNodes",
            "labelSelectorPath": ".status.selector",
        },
    }
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    for wanted in ("Layout", "Nodes", "GPUs", "Phase", "Step", "Loss", "Restarts", "ETA", "Age"):
        assert wanted in columns


@pytest.mark.parametrize("path", CRD_FILES, ids=["crds", "chart"])
def test_committed_yaml_matches_the_models(crd: dict[str, Any], path: Path) -> None:
    assert path.exists(), "run `make crds`"
    assert path.read_text() == render_yaml(crd), "CRD drifted from the models: run `make crds`"
    assert yaml.safe_load(path.read_text()) == crd


def test_api_reference_tables_are_current(crd: dict[str, Any]) -> None:
    doc = (ROOT / "docs" / "api-reference.md").read_text()
    assert update_reference(doc, crd) == doc, "docs/api-reference.md drifted: run `make crds`"
    assert "| `spec.runPolicy.maxRestarts` | integer | `3` |" in doc


@pytest.mark.parametrize(
    ("build", "template", "own_rule"),
    [
        pytest.param(
            build_sweep_crd, "trialTemplate", "size(self.parameters) > 0", id="TrainingSweep"
        ),
        pytest.param(
            build_schedule_crd,
            "jobTemplate",
            "has(self.schedule) || has(self.newData)",
            id="TrainingSchedule",
        ),
    ],
)
def test_sweep_and_schedule_reference_tables_are_current(
    build: Callable[[], dict[str, Any]], template: str, own_rule: str
) -> None:
    """Each has its own generated block; its TrainingJob template is one row, not a second copy
    of the TrainingJob's fields and rules."""
    doc = (ROOT / "docs" / "api-reference.md").read_text()
    crd = build()
    assert update_reference(doc, crd, templates=[template]) == doc, "run `make crds`"
    kind = crd["spec"]["names"]["kind"]
    block = doc.split(f"BEGIN GENERATED {kind} FIELD REFERENCE")[1].split("END GENERATED")[0]
    assert f"| `spec.{template}` | object |" in block
    assert f"`spec.{template}.runPolicy" not in block
    assert "oldSelf" not in block  # the TrainingJob's transition rules stay in its own table
    assert f"| `{own_rule.replace('|', chr(92) + '|')}` |" in block
    assert "## Operator metrics" in doc  # the hand-written sections around the blocks survive
