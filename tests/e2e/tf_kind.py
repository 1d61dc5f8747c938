"""Handles for the kind e2e tier (created or reused by hack/e2e-up.sh).

The tests talk to the cluster the way a user does: kubectl for the API, the MinIO and Prometheus
NodePorts for artifacts and metrics. Nothing here imports the operator.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
OPERATOR_NAMESPACE = "trainforge-system"
OPERATOR_SELECTOR = "app.kubernetes.io/component=operator"
TERMINAL = ("Succeeded", "Failed")


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
        proc = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json", check=True).stdout)

    # --- TrainingJobs -------------------------------------------------------------------------

    def apply(self, manifest: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return self.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def recreate_job(self, manifest: dict[str, Any]) -> None:
        """Delete any earlier run of the same name and its checkpoints, then apply: a job that
        finds checkpoints at its checkpoint.uri resumes from them, by design."""
        name = manifest["metadata"]["name"]
        self.kubectl("delete", "trainingjob", name, "--ignore-not-found", "--wait=true", check=True)
        checkpoints = (manifest["spec"].get("checkpoint") or {}).get("uri") or ""
        if checkpoints.startswith("s3://"):
            self.clear_s3_prefix(checkpoints)
        self.apply(manifest).check_returncode()

    def job_status(self, name: str) -> dict[str, Any]:
        return dict(self.kubectl_json("get", "trainingjob", name).get("status") or {})

    def wait_job(
        self,
        name: str,
        until: Callable[[dict[str, Any]], bool] = lambda s: s.get("phase") in TERMINAL,
        timeout: float = 900,
        what: str = "finish",
    ) -> dict[str, Any]:
        """Poll the job's status until `until(status)` holds; fail with the last status."""
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.job_status(name)
            if until(status):
                return status
            if status.get("phase") in TERMINAL:
                break  # it can no longer reach the wanted state
            time.sleep(3)
        last = json.dumps(status)[:3000]
        raise AssertionError(f"{name} did not {what} in {timeout:.0f}s; last status: {last}")

    def job_pods(self, name: str) -> list[dict[str, Any]]:
        items = self.kubectl_json("get", "pods", "-l", f"trainforge.io/job-name={name}")["items"]
        return list(items)

    def events_for(self, name: str) -> list[str]:
        """Event reasons about the current TrainingJob `name` (not earlier ones of that name),
        one entry per occurrence (aggregated repeats expanded)."""
        uid = self.kubectl_json("get", "trainingjob", name)["metadata"]["uid"]
        items = self.kubectl_json("get", "events", "--field-selector", f"involvedObject.uid={uid}")[
            "items"
        ]
        return [e.get("reason", "") for e in items for _ in range(e.get("count") or 1)]

    def operator_pods(self) -> list[dict[str, Any]]:
        return list(
            self.kubectl_json("get", "pods", "-n", OPERATOR_NAMESPACE, "-l", OPERATOR_SELECTOR)[
                "items"
            ]
        )

    # --- MinIO and Prometheus -----------------------------------------------------------------

    def s3(self) -> Any:
        import botocore.session

        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.minio_endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.minio_env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.minio_env["AWS_SECRET_ACCESS_KEY"],
        )

    def clear_s3_prefix(self, uri: str) -> None:
        """Delete everything under an s3:// prefix (a rerun must not resume an old checkpoint)."""
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        s3 = self.s3()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})

    def prom_query(self, expr: str) -> list[Any]:
        url = f"{self.prometheus_url}/api/v1/query?query={urllib.parse.quote(expr)}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            return list(json.load(resp)["data"]["result"])

    # --- diagnostics --------------------------------------------------------------------------

    def dump_diagnostics(self, dest: Path) -> list[Path]:
        """Write operator logs, events, TrainingJobs and worker logs under `dest`."""
        dest.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []

        def save(filename: str, *args: str) -> None:
            proc = self.kubectl(*args, timeout=60)
            path = dest / filename
            path.write_text(proc.stdout + (f"\n[stderr]\n{proc.stderr}" if proc.stderr else ""))
            written.append(path)

        save("operator.log", "logs", "-n", OPERATOR_NAMESPACE, "-l", OPERATOR_SELECTOR,
             "--tail=2000", "--all-containers", "--prefix")  # fmt: skip
        save("operator-previous.log", "logs", "-n", OPERATOR_NAMESPACE, "-l", OPERATOR_SELECTOR,
             "--tail=2000", "--previous", "--prefix")  # fmt: skip
        save("events.txt", "get", "events", "-A", "--sort-by=.lastTimestamp")
        save("trainingjobs.yaml", "get", "trainingjobs", "-A", "-o", "yaml")
        save("pods.txt", "get", "pods", "-A", "-o", "wide")
        with contextlib.suppress(AssertionError, json.JSONDecodeError):
            for pod in self.kubectl_json("get", "pods", "-l", "trainforge.io/job-name")["items"]:
                name = pod["metadata"]["name"]
                save(f"pod-{name}.log", "logs", name, "--tail=500", "--all-containers")
        return written


def load_example(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((REPO_ROOT / "examples" / name).read_text()))


def _read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k: v for k, v in pairs}


def bring_up(config: pytest.Config) -> KindCluster:
    capman = config.pluginmanager.getplugin("capturemanager")
    cmd = [str(REPO_ROOT / "hack" / "e2e-up.sh")]
    with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
        # stderr: an xdist worker's stdout is not shown.
        what = "first run builds the node image and images"
        print(f"\n[e2e] hack/e2e-up.sh ({what})", file=sys.stderr)
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
