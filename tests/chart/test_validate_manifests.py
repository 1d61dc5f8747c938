"""hack/validate_manifests.py: strict OpenAPI validation catches what the API server rejects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helmrender import REPO, render

SCRIPT = REPO / "hack" / "validate_manifests.py"
sys.path.insert(0, str(SCRIPT.parent))
from validate_manifests import default_spec_dir  # noqa: E402

pytestmark = pytest.mark.skipif(
    not default_spec_dir().is_dir(),
    reason=f"no Kubernetes OpenAPI spec at {default_spec_dir()}: run hack/lint-chart.sh once",
)


def validate(tmp_path: Path, docs: list[dict]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "manifests.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True, check=False
    )


def test_rendered_chart_is_valid(helm: str, tmp_path: Path) -> None:
    result = validate(tmp_path, render(helm, include_crds=True))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK    Deployment trainforge-system/trainforge" in result.stdout


def test_unknown_field_and_wrong_type_fail(helm: str, tmp_path: Path) -> None:
    docs = render(helm)
    dep = next(d for d in docs if d["kind"] == "Deployment")
    dep["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privilegd"] = True
    svc = next(d for d in docs if d["kind"] == "Service")
    svc["spec"]["ports"][0]["port"] = "eight-thousand"
    result = validate(tmp_path, docs)
    assert result.returncode == 1
    assert "'privilegd' was unexpected" in result.stdout
    assert "'eight-thousand' is not of type 'integer'" in result.stdout


def test_unknown_kind_fails_without_its_crd(tmp_path: Path) -> None:
    monitor = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor", "metadata": {}}
    result = validate(tmp_path, [monitor])
    assert result.returncode == 1
    assert "no schema for monitoring.coreos.com/v1 PodMonitor" in result.stdout
