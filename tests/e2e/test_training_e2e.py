"""End to end on kind, driven with kubectl as a user would: the helm-installed operator runs
examples/digits-ddp.yaml with real DDP (gloo, CPU) across two pods, uploads artifacts to MinIO,
recovers from an injected worker crash through its checkpoint, and survives losing its own pod
mid-job. Prometheus scrapes workers and operator throughout."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import pytest
from tf_kind import OPERATOR_NAMESPACE, KindCluster, load_example

BUCKET = "trainforge"


def digits_job(name: str, epochs: int, scraped: bool = False, **spec: Any) -> dict[str, Any]:
    """examples/digits-ddp.yaml as shipped, renamed, shortened to `epochs`, with `spec` merged.
    Unless the test reads its series from Prometheus (`scraped`), the pods do not keep /metrics
    up after training (metrics.lingerSeconds 0: 15 s less per job)."""
    job = load_example("digits-ddp.yaml")
    job["metadata"]["name"] = name
    job["spec"]["hyperparameters"]["epochs"] = epochs
    job["spec"]["checkpoint"]["uri"] = f"s3://{BUCKET}/checkpoints/{name}/"
    if not scraped:
        job["spec"]["metrics"]["lingerSeconds"] = 0
    job["spec"].update(spec)
    return job


def accuracy_of(status: dict[str, Any]) -> float:
    results = status.get("results", {})
    values = [v for k, v in results.items() if "acc" in k and "test" in k and "baseline" not in k]
    assert values, f"no test accuracy in status.results: {results}"
    baseline = results.get("baseline_test_accuracy")
    assert baseline is None or float(values[0]) > float(baseline), f"not above baseline: {results}"
    return float(values[0])


def verify_artifacts(cluster: KindCluster, uri: str) -> dict[str, Any]:
    """Download manifest.json and every file it lists from MinIO; check sizes and sha256."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    s3 = cluster.s3()
    manifest = json.loads(
        s3.get_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/manifest.json")["Body"].read()
    )
    assert manifest["files"], f"empty manifest at {uri}"
    for entry in manifest["files"]:
        body = s3.get_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/{entry['path']}")["Body"]
        data = body.read()
        assert len(data) == entry["size"], entry["path"]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["path"]
    return dict(manifest)


def prom_scalar(cluster: KindCluster, expr: str) -> float:
    """The value of a one-series PromQL result; fails naming the query when it is empty."""
    result = cluster.prom_query(expr)
    assert result, f"Prometheus has no data for {expr}"
    return float(result[0]["value"][1])


def test_digits_ddp_trains_uploads_and_is_scraped(kind_cluster: KindCluster) -> None:
    name = "digits-e2e"
    kind_cluster.recreate_job(digits_job(name, epochs=5, scraped=True))
    running = kind_cluster.wait_job(
        name, lambda s: s.get("phase") == "Running", timeout=600, what="reach Running"
    )
    assert running["workers"]["running"] == 2, running
    status = kind_cluster.wait_job(name)
    assert status["phase"] == "Succeeded", json.dumps(status)[:3000]
    assert accuracy_of(status) >= 0.9, status["results"]
    assert status["restarts"] == 0
    assert status["progress"].get("resumedFromStep") is None  # a fresh run, not a resumed one

    uri = status["artifacts"]["uri"]
    assert uri.rstrip("/") == f"s3://{BUCKET}/artifacts/default/{name}", uri
    manifest = verify_artifacts(kind_cluster, uri)
    paths = {f["path"] for f in manifest["files"]}
    assert status["artifacts"]["files"] == len(paths)
    assert any(p.endswith(".safetensors") for p in paths), sorted(paths)
    assert "report.html" in {p.rsplit("/", 1)[-1] for p in paths}, sorted(paths)

    # The run's own series, labelled with the job, as scraped from both worker pods.
    loss = kind_cluster.prom_query(f'max_over_time(trainforge_train_loss{{job="{name}"}}[1h])')
    assert {s["metric"]["rank"] for s in loss} == {"0", "1"}, loss
    steps = f'sum(max_over_time(trainforge_step_seconds_count{{job="{name}"}}[1h]))'
    assert prom_scalar(kind_cluster, steps) > 0
    # The operator's series, from its metrics Service.
    assert prom_scalar(kind_cluster, "sum(trainforge_jobs_created_total)") >= 1
    assert prom_scalar(kind_cluster, "sum(trainforge_reconcile_duration_seconds_count)") > 0


def test_injected_crash_restarts_the_gang_from_its_checkpoint(kind_cluster: KindCluster) -> None:
    name = "digits-fault"
    # 19 steps per epoch; checkpoints every 10 steps; rank 1 is OOM-killed (137) at step 25 of
    # the first attempt only, so the restarted gang must resume from step 20.
    job = digits_job(
        name,
        epochs=3,
        env=[{"name": "TRAINFORGE_FAULT", "value": "rank=1,step=25,attempt=0,code=137"}],
    )
    job["spec"]["checkpoint"]["everySteps"] = 10
    # The gang path (recovery InPlace, the default, is tests/e2e/test_recovery_e2e.py).
    job["spec"]["runPolicy"] = {
        "maxRestarts": 2,
        "restartBackoffSeconds": 1,
        "recovery": "RecreateGang",
    }
    kind_cluster.recreate_job(job)
    status = kind_cluster.wait_job(name)
    assert status["phase"] == "Succeeded", json.dumps(status)[:3000]
    assert (status["restarts"], status["attempt"]) == (1, 1), status
    failure = status["lastFailure"]
    assert (failure["pod"], failure["exitCode"]) == (f"{name}-worker-1", 137), failure
    assert status["progress"]["resumedFromStep"] == 20, status["progress"]
    assert accuracy_of(status) >= 0.8, status["results"]
    assert "Restarting" in kind_cluster.events_for(name)
    verify_artifacts(kind_cluster, status["artifacts"]["uri"])


@pytest.mark.operator_restart
def test_operator_pod_deleted_mid_job_loses_nothing(kind_cluster: KindCluster) -> None:
    name = "digits-outage"
    # Rank 0 stalls 60 s at step 10 (rank 1 waits in its all-reduce), so the job is certainly
    # mid-run while the operator is away.
    job = digits_job(
        name, epochs=3, env=[{"name": "TRAINFORGE_FAULT", "value": "rank=0,step=10,pause=60"}]
    )
    kind_cluster.recreate_job(job)
    kind_cluster.wait_job(
        name,
        lambda s: (s.get("progress") or {}).get("step", 0) >= 10,
        timeout=600,
        what="reach step 10",
    )
    workers_before = {p["metadata"]["uid"] for p in kind_cluster.job_pods(name)}
    assert len(workers_before) == 2
    old = {p["metadata"]["name"] for p in kind_cluster.operator_pods()}
    kind_cluster.kubectl(
        "delete", "pod", "-n", OPERATOR_NAMESPACE, *sorted(old), "--wait=false", check=True
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        pods = kind_cluster.operator_pods()
        ready = [
            p
            for p in pods
            if p["metadata"]["name"] not in old
            and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p["status"].get("conditions", [])
            )
        ]
        if ready:
            break
        time.sleep(2)
    else:
        raise AssertionError("no replacement operator pod became Ready in 180s")

    # The job was not disturbed: same worker pods, no restart, and it finishes normally.
    assert {p["metadata"]["uid"] for p in kind_cluster.job_pods(name)} == workers_before
    status = kind_cluster.wait_job(name)
    assert status["phase"] == "Succeeded", json.dumps(status)[:3000]
    assert (status["restarts"], status["attempt"]) == (0, 0), status
    assert accuracy_of(status) >= 0.8, status["results"]
    verify_artifacts(kind_cluster, status["artifacts"]["uri"])
    reasons = kind_cluster.events_for(name)
    assert "Succeeded" in reasons, reasons
    assert reasons.count("Running") == 1, reasons  # the new operator did not replay transitions
