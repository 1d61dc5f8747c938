"""Render the chart with the real helm binary (built by hack/build-helm.sh) for the chart tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "trainforge"
MONITORING_API = "monitoring.coreos.com/v1"


def helm_binary() -> str:
    """$HELM, else the cached build (hack/build-helm.sh builds it once and prints its path)."""
    env = os.environ.get("HELM")
    if env:
        return env
    out = subprocess.run(
        [str(REPO / "hack" / "build-helm.sh")], check=True, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1]


def render(
    helm: str,
    *,
    values: Sequence[Path] = (),
    sets: Iterable[str] = (),
    api_versions: Iterable[str] = (),
    chart: Path = CHART,
    include_crds: bool = False,
) -> list[dict[str, Any]]:
    """`helm template` → the list of rendered objects (empty documents dropped)."""
    cmd = [helm, "template", "trainforge", str(chart), "--namespace", "trainforge-system"]
    for v in values:
        cmd += ["-f", str(v)]
    for s in sets:
        cmd += ["--set", s]
    for api in api_versions:
        cmd += ["--api-versions", api]
    if include_crds:
        cmd.append("--include-crds")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def of_kind(docs: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def one(docs: Iterable[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(docs, kind)
    assert len(found) == 1, f"expected exactly one {kind}, got {len(found)}"
    return found[0]


def copy_chart(dst: Path) -> Path:
    """A scratch copy of the chart, for tests that change its files."""
    target = dst / "trainforge"
    shutil.copytree(CHART, target)
    return target
