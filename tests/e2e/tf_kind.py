"""Handles for the kind e2e tier (created or reused by hack/e2e-up.sh)."""

from __future__ import annotations

import contextlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class KindCluster:
    """Handles for the running cluster; endpoints are reachable from the host."""

    kubeconfig: str
    kubectl_bin: str
    minio_endpoint: str
    prometheus_url: str
    minio_env: dict[str, str]

    def kubectl(
        self, *args: str, check: bool = False, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        cmd = [self.kubectl_bin, "--kubeconfig", self.kubeconfig, *args]
        return subprocess.run(
            cmd, capture_output=True, text=True, check=check, input=input, timeout=timeout
        )

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json", check=True).stdout)


def _read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k: v for k, v in pairs}


def bring_up(config: pytest.Config) -> KindCluster:
    capman = config.pluginmanager.getplugin("capturemanager")
    cmd = [str(REPO_ROOT / "hack" / "e2e-up.sh")]
    with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
        print("\n[e2e] hack/e2e-up.sh (first run builds the node image and images)", flush=True)
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"hack/e2e-up.sh failed (exit {proc.returncode}); run it by hand to see why, fix, "
            "and re-run. `hack/demo.sh down` starts from a clean cluster."
        )
    kubeconfig = proc.stdout.strip().rsplit("=", 1)[-1]
    e2e_dir = Path(kubeconfig).parent
    endpoints = _read_env(e2e_dir / "endpoints.env")
    versions = subprocess.run(
        ["bash", "-c", f'source "{REPO_ROOT}/hack/lib.sh"; echo "$CACHE_DIR/k8s-$K8S_VERSION"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return KindCluster(
        kubeconfig=kubeconfig,
        kubectl_bin=f"{versions}/bin/kubectl",
        minio_endpoint=endpoints["MINIO_ENDPOINT"],
        prometheus_url=endpoints["PROMETHEUS_URL"],
        minio_env=_read_env(e2e_dir / "minio.env"),
    )
