"""End to end on kind: examples/digits-sweep.yaml as a user applies it, shortened. TPE proposes,
median pruning stops poor trials from their reported val_accuracy, 2 trials at a time, 6 in all,
each a real 1-pod TrainingJob training on CPU and uploading its artifacts to MinIO. The
helm-installed operator then uploads the sweep's HTML report next to them, with its own
credentials."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from tf_kind import KindCluster, load_example

BUCKET = "trainforge"
NAME = "digits-sweep-e2e"
TRIALS = 6
PARALLEL = 2
MINIO = {
    "uri": f"s3://{BUCKET}/artifacts",
    "s3Endpoint": "http://minio.trainforge-system.svc:9000",
    "credentialsSecret": {"name": "minio-creds"},
}


def digits_sweep() -> dict[str, Any]:
    """The shipped example with no early goal (all 6 trials run), short trials, and artifacts in
    MinIO."""
    sweep = load_example("digits-sweep.yaml")
    sweep["metadata"]["name"] = NAME
    spec = sweep["spec"]
    spec["objective"].pop("goal", None)
    spec.pop("completion", None)
    spec.update(maxTrials=TRIALS, parallelTrials=PARALLEL)
    assert spec["algorithm"]["type"] == "tpe"
    assert spec["earlyStopping"]["type"] == "median"
    spec["trialTemplate"]["hyperparameters"]["epochs"] = 5
    spec["trialTemplate"]["artifacts"] = MINIO
    return sweep


def sweep_status(cluster: KindCluster) -> dict[str, Any]:
    return dict(cluster.kubectl_json("get", "trainingsweep", NAME).get("status") or {})


def sweep_events(cluster: KindCluster) -> list[str]:
    uid = cluster.kubectl_json("get", "trainingsweep", NAME)["metadata"]["uid"]
    items = cluster.kubectl_json("get", "events", "--field-selector", f"involvedObject.uid={uid}")
    return [e.get("reason", "") for e in items["items"]]


@pytest.mark.heavy  # three waves of real trials (~15-30 min here): make test-heavy
@pytest.mark.timeout(3000)  # pyproject's 900 s is per ordinary test
def test_digits_sweep_finds_a_good_model_and_uploads_its_report(kind_cluster: KindCluster) -> None:
    c = kind_cluster
    c.kubectl("delete", "trainingsweep", NAME, "--ignore-not-found", "--wait=true", check=True)
    c.kubectl("delete", "trainingjob", "-l", f"trainforge.io/sweep-name={NAME}", "--wait=true")
    c.clear_s3_prefix(f"s3://{BUCKET}/artifacts/default/{NAME}")
    started = time.monotonic()
    c.apply(digits_sweep()).check_returncode()

    most_active, status = 0, {}
    deadline = started + 2400  # 3 waves of trials; a busy 2-core machine needs ~8 min per wave
    while time.monotonic() < deadline:
        status = sweep_status(c)
        counts = status.get("trials") or {}
        most_active = max(most_active, counts.get("running", 0) + counts.get("pending", 0))
        if status.get("phase") in ("Completed", "Failed"):
            break
        time.sleep(3)
    took = time.monotonic() - started
    counts = status.get("trials") or {}
    print(
        f"\n[e2e] sweep of {TRIALS} digits trials, {PARALLEL} in parallel: {status.get('phase')} "
        f"in {took:.0f}s; succeeded {counts.get('succeeded')}, pruned {counts.get('pruned')}, "
        f"failed {counts.get('failed')}; best {json.dumps(status.get('bestTrial'))}"
    )
    assert status.get("phase") == "Completed", json.dumps(status)[:3000]
    complete = next(x for x in status["conditions"] if x["type"] == "Complete")
    assert complete["reason"] == "MaxTrialsReached", complete
    assert counts["total"] == TRIALS
    assert counts["done"] == f"{TRIALS}/{TRIALS}"
    assert counts["failed"] == 0, counts
    assert most_active <= PARALLEL, most_active

    jobs = c.kubectl_json("get", "trainingjobs", "-l", f"trainforge.io/sweep-name={NAME}")["items"]
    assert sorted(j["metadata"]["name"] for j in jobs) == [f"{NAME}-{k}" for k in range(TRIALS)]
    best = status["bestTrial"]
    assert best["value"] >= 0.9, best
    trial = c.job_status(best["name"])
    assert trial["phase"] == "Succeeded"
    assert trial["results"]["test_accuracy"] == best["value"]
    assert best["artifactsUri"].rstrip("/") == f"s3://{BUCKET}/artifacts/default/{best['name']}"
    for job in jobs:  # typed values, straight from the search space
        hp = job["spec"]["hyperparameters"]
        assert isinstance(hp["lr"], float), hp
        assert isinstance(hp["hidden"], int), hp
        assert hp["batch_size"] in (32, 64, 128), hp

    report = status["report"]
    uri = f"s3://{BUCKET}/artifacts/default/{NAME}/report.html"
    assert report["uri"] == uri, report
    assert report["final"] is True, report
    assert (report["finishedTrials"], report["bestTrial"]) == (TRIALS, best["name"]), report
    page = c.s3().get_object(Bucket=BUCKET, Key=f"artifacts/default/{NAME}/report.html")
    html = page["Body"].read().decode()
    assert html.startswith("<!doctype html>"), html[:200]
    for title in (
        "Optimisation history",
        "Parallel coordinates",
        "Parameter importance",
        "Intermediate values",
        "Trials",
    ):
        assert f"<h2>{title}" in html, title
    assert "not drawn yet" not in html
    assert "plotly" in html.lower()
    assert html.count("<tr>") == 1 + TRIALS
    print(f"[e2e] report {uri}: {len(html) / 1e6:.1f} MB")

    reasons = sweep_events(c)
    for reason in ("TrialCreated", "NewBest", "ReportUploaded", "Completed"):
        assert reason in reasons, reasons
    assert "ReportUploadFailed" not in reasons, reasons
