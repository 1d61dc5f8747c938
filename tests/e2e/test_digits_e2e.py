"""End to end on kind: the operator installed by helm trains digits with real DDP (gloo, CPU),
stores artifacts in MinIO, and Prometheus scrapes the workers and the operator."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from tf_kind import REPO_ROOT, KindCluster

JOB = "digits-e2e"


def digits_job(epochs: int) -> dict[str, Any]:
    """examples/digits-ddp.yaml, renamed and shortened so the test stays CPU-frugal."""
    job = yaml.safe_load(Path(REPO_ROOT / "examples" / "digits-ddp.yaml").read_text())
    job["metadata"]["name"] = JOB
    job["spec"]["hyperparameters"]["epochs"] = epochs
    job["spec"]["checkpoint"]["uri"] = f"s3://trainforge/checkpoints/{JOB}/"
    return job


def wait_phase(cluster: KindCluster, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = cluster.kubectl_json("get", "trainingjob", JOB).get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            return status
        time.sleep(5)
    raise AssertionError(f"{JOB} did not finish in {timeout}s: {json.dumps(status)[:2000]}")


def prom_query(cluster: KindCluster, expr: str) -> list[Any]:
    url = f"{cluster.prometheus_url}/api/v1/query?query={urllib.parse.quote(expr)}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        return list(json.load(resp)["data"]["result"])


def test_gpu_pool_nodes(kind_cluster: KindCluster) -> None:
    nodes = kind_cluster.kubectl_json("get", "nodes", "-l", "trainforge.io/pool=gpu")["items"]
    assert len(nodes) == 2
    for node in nodes:
        assert node["status"]["capacity"]["nvidia.com/gpu"] == "8"
        assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"} in node[
            "spec"
        ]["taints"]


def test_operator_is_running(kind_cluster: KindCluster) -> None:
    pods = kind_cluster.kubectl_json("get", "pods", "-n", "trainforge-system")["items"]
    operator = [p for p in pods if p["metadata"]["name"].startswith("trainforge")]
    assert any(p["status"]["phase"] == "Running" for p in operator), [
        p["metadata"]["name"] for p in pods
    ]


def test_digits_ddp_trains_and_uploads(kind_cluster: KindCluster) -> None:
    import botocore.session

    kind_cluster.kubectl("delete", "trainingjob", JOB, "--ignore-not-found", "--wait=true")
    kind_cluster.kubectl("apply", "-f", "-", input=json.dumps(digits_job(epochs=3)), check=True)
    status = wait_phase(kind_cluster, timeout=900)
    assert status["phase"] == "Succeeded", json.dumps(status)[:2000]
    accuracy = [v for k, v in status.get("results", {}).items() if "acc" in k and "test" in k]
    assert accuracy, f"no test accuracy in results: {status.get('results')}"
    assert float(accuracy[0]) > 0.8, status.get("results")
    uri = status["artifacts"]["uri"]
    assert uri.startswith("s3://trainforge/")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    s3 = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=kind_cluster.minio_endpoint,
        region_name="us-east-1",
        aws_access_key_id=kind_cluster.minio_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=kind_cluster.minio_env["AWS_SECRET_ACCESS_KEY"],
    )
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    assert keys, f"no artifacts under {uri}"
    assert prom_query(kind_cluster, "trainforge_jobs_created_total"), "operator not scraped"
