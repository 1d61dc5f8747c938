"""On kind: a job whose spec.data.uri is a MinIO prefix has the data in $TRAINFORGE_DATA_DIR
before its first rank starts. The `stage-data` init container (the operator's worker image)
copies it with the demo's minio-creds Secret; the training script (no trainforge import) checks
every byte against the digests it was given and fails otherwise. The plain example, which needs
no add-ons, runs as shipped with a world of 4."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from tf_kind import KindCluster, load_example

BUCKET = "trainforge"
ENDPOINT = "http://minio.trainforge-system.svc:9000"

CHECK = """
import hashlib, json, os, pathlib, sys
root = pathlib.Path(os.environ["TRAINFORGE_DATA_DIR"])
want = json.loads(os.environ["WANT"])
got = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
       for p in root.rglob("*") if p.is_file()}
print("staged files:", sorted(got), flush=True)
sys.exit(0 if got == want else 3)
"""


def upload_dataset(cluster: KindCluster, prefix: str) -> dict[str, str]:
    """A small dataset (one file larger than a copy chunk) in MinIO; name -> sha256."""
    files = {
        "train/part-0.bin": os.urandom(6 << 20),
        "train/part-1.bin": b"y" * 4096,
        "labels.json": b'{"classes": 10}',
    }
    cluster.clear_s3_prefix(f"s3://{BUCKET}/{prefix}")
    s3 = cluster.s3()
    for rel, data in files.items():
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{rel}", Body=data)
    return {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}


def staged_job(name: str, uri: str, want: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "trainforge.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "command": ["python", "-c", CHECK],
            "env": [{"name": "WANT", "value": json.dumps(want)}],
            "parallelism": {"nodes": 2},
            "resources": {"cpu": "500m", "memory": "1Gi"},
            "metrics": {"enabled": False},
            "runPolicy": {"maxRestarts": 0, "maxPendingSeconds": 600},
            "data": {
                "uri": uri,
                "s3Endpoint": ENDPOINT,
                "credentialsSecret": {"name": "minio-creds"},
            },
        },
    }


def test_data_is_staged_before_training(kind_cluster: KindCluster) -> None:
    name = "staged-e2e"
    want = upload_dataset(kind_cluster, f"datasets/{name}")
    uri = f"s3://{BUCKET}/datasets/{name}/"
    kind_cluster.recreate_job(staged_job(name, uri, want))
    status = kind_cluster.wait_job(name, timeout=600)
    assert status["phase"] == "Succeeded", json.dumps(status)[:3000]
    staged = next(c for c in status["conditions"] if c["type"] == "DataStaged")
    assert staged["status"] == "True", staged
    assert f"(3 files) from {uri}" in staged["message"], staged
    assert "DataStaged" in kind_cluster.events_for(name)
    pods = kind_cluster.job_pods(name)
    assert len(pods) == 2
    for pod in pods:
        (init,) = pod["status"]["initContainerStatuses"]
        (worker,) = pod["status"]["containerStatuses"]
        init_done = init["state"]["terminated"]
        assert init_done["exitCode"] == 0, init
        # RFC 3339 UTC timestamps compare as strings: the worker started after staging ended.
        assert worker["state"]["terminated"]["startedAt"] >= init_done["finishedAt"], pod["status"]


def test_a_missing_dataset_fails_naming_the_uri(kind_cluster: KindCluster) -> None:
    name = "unstaged-e2e"
    uri = f"s3://{BUCKET}/datasets/no-such-dataset/"
    kind_cluster.recreate_job(staged_job(name, uri, {}))
    status = kind_cluster.wait_job(name, timeout=600)
    assert status["phase"] == "Failed", json.dumps(status)[:3000]
    failure = status["lastFailure"]
    assert failure["container"] == "stage-data", failure
    assert failure["exitCode"] == 67, failure
    assert f"cannot stage {uri}" in failure["message"], failure


def test_the_plain_example_runs_as_shipped(kind_cluster: KindCluster) -> None:
    job = load_example("plain-ddp.yaml")
    kind_cluster.recreate_job(job)
    name = job["metadata"]["name"]
    status = kind_cluster.wait_job(name, timeout=600)
    assert status["phase"] == "Succeeded", json.dumps(status)[:3000]
    logs = kind_cluster.kubectl("logs", f"{name}-worker-0", check=True).stdout
    assert "rank 0 of world 4" in logs, logs[-2000:]
