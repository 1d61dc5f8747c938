"""On kind: examples/digits-schedule.yaml, shortened, retrains when a new object lands under its
MinIO data prefix. The first run trains digits on a worker pod, beats its majority-class baseline
and is promoted: the champion pointer appears in MinIO next to the artifacts. The schedule is then
crippled (learning rate 0), a second object is written, and the second run, deterministically
worse, is not promoted; the pointer still names the first run. Last, `warmStart: champion` with
the same frozen settings: the third run loads the champion's weights from MinIO and scores
exactly the champion's accuracy, a tie that is not promoted either.

The operator reads the data and writes the pointer with the `minio-root` Secret, mounted by the
chart (`operator.storageCredentialsSecret` in hack/kind/values-e2e.yaml)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tf_kind import KindCluster, load_example

BUCKET = "trainforge"
NAME = "digits-retrain"
DATA = f"data/{NAME}"
T = TypeVar("T")


def retrain_schedule() -> dict[str, Any]:
    """The shipped example on new data only, one small pod, a few epochs, no margin."""
    sched = load_example("digits-schedule.yaml")
    sched["metadata"]["name"] = NAME
    spec = sched["spec"]
    del spec["schedule"]
    spec["newData"] = {"by": "etag", "minIntervalSeconds": 10}
    spec["promotion"]["margin"] = 0.0
    template = spec["jobTemplate"]
    template["hyperparameters"].update(epochs=4, hidden=32)
    template["parallelism"]["nodes"] = 1
    template["runPolicy"] = {"maxRestarts": 0, "maxPendingSeconds": 600}
    template["data"]["uri"] = f"s3://{BUCKET}/{DATA}/"
    template["metrics"] = {"lingerSeconds": 0}  # nothing here reads Prometheus: 15 s less a run
    return sched


def poll(what: str, probe: Callable[[], T | None], timeout: float, every: float = 3) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"no {what} in {timeout:.0f}s (last: {last!r})")


def schedule_events(cluster: KindCluster, reason: str) -> list[str]:
    """This schedule's Events of `reason`, by uid: a deleted schedule of the same name from an
    earlier run leaves its Events behind for an hour."""
    uid = cluster.kubectl_json("get", "trainingschedule", NAME)["metadata"]["uid"]
    items = cluster.kubectl_json(
        "get", "events", "--field-selector", f"involvedObject.uid={uid},reason={reason}"
    )["items"]
    return [str(e.get("message", "")) for e in items]


def schedule_status(cluster: KindCluster) -> dict[str, Any]:
    return dict(cluster.kubectl_json("get", "trainingschedule", NAME).get("status") or {})


def read_pointer(cluster: KindCluster) -> dict[str, Any] | None:
    key = f"artifacts/default/{NAME}/champion.json"
    try:
        body = cluster.s3().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    except Exception as err:  # NoSuchKey until the first promotion
        if "NoSuchKey" in type(err).__name__ or "NoSuchKey" in str(err):
            return None
        raise
    return dict(json.loads(body))


def put_data(cluster: KindCluster, name: str, body: bytes) -> None:
    cluster.s3().put_object(Bucket=BUCKET, Key=f"{DATA}/{name}", Body=body)


def test_new_minio_data_retrains_promotes_and_refuses_a_worse_run(
    kind_cluster: KindCluster,
) -> None:
    c = kind_cluster
    c.kubectl("delete", "trainingschedule", NAME, "--ignore-not-found", "--wait=true", check=True)
    c.kubectl(
        "delete", "trainingjobs", "-l", f"trainforge.io/schedule={NAME}", "--wait=true", check=True
    )
    c.clear_s3_prefix(f"s3://{BUCKET}/{DATA}/")
    c.clear_s3_prefix(f"s3://{BUCKET}/artifacts/default/{NAME}")

    t0 = time.monotonic()
    put_data(c, "part-0.csv", b"digits drop 1\n")
    sched = retrain_schedule()
    c.apply(sched).check_returncode()
    created = poll("RunCreated Event", lambda: schedule_events(c, "RunCreated"), timeout=120)
    t_created = time.monotonic() - t0
    assert "(new data)" in created[0], created
    promoted = poll("ModelPromoted Event", lambda: schedule_events(c, "ModelPromoted"), 900)
    t_promoted = time.monotonic() - t0

    status = schedule_status(c)
    champion = status["champion"]
    run = champion["run"]
    assert run in promoted[0], promoted
    assert "beats the baseline" in promoted[0], promoted
    job = c.kubectl_json("get", "trainingjob", run)
    results = job["status"]["results"]
    assert results["test_accuracy"] > results["baseline_test_accuracy"], results
    assert results["test_accuracy"] >= 0.8, results
    fp1 = job["metadata"]["annotations"]["trainforge.io/data-fingerprint"]
    assert fp1.startswith("etag:")

    pointer = poll("champion pointer in MinIO", lambda: read_pointer(c), timeout=30)
    assert pointer["run"] == run
    assert pointer["metric"] == results["test_accuracy"] == champion["metric"]
    assert pointer["baseline"] == results["baseline_test_accuracy"]
    assert pointer["dataFingerprint"] == fp1 == champion["dataFingerprint"]
    assert pointer["artifactsUri"].rstrip("/") == f"s3://{BUCKET}/artifacts/default/{run}"
    assert pointer["artifactsUri"] == champion["artifactsUri"]
    # The pointer points at real artifacts: the run's manifest is where it says.
    prefix = pointer["artifactsUri"].removeprefix(f"s3://{BUCKET}/").rstrip("/")
    manifest = json.loads(
        c.s3().get_object(Bucket=BUCKET, Key=f"{prefix}/manifest.json")["Body"].read()
    )
    assert manifest["files"], manifest

    # The next run cannot learn (learning rate 0): deterministically worse than the champion.
    sched["spec"]["jobTemplate"]["hyperparameters"].update(lr=0.0, epochs=1)
    c.apply(sched).check_returncode()
    t1 = time.monotonic()
    put_data(c, "part-1.csv", b"digits drop 2\n")
    refused = poll("NotPromoted Event", lambda: schedule_events(c, "NotPromoted"), 900)
    t_refused = time.monotonic() - t1
    runs = {r["name"]: r for r in schedule_status(c)["runs"]}
    assert len(runs) == 2, runs
    (second,) = [r for r in runs.values() if r["name"] != run]
    assert second["result"] == "NotPromoted", second
    assert second["dataFingerprint"] not in (None, fp1), second
    assert second["metric"] < champion["metric"], second
    assert second["name"] in refused[0], refused
    assert second["reason"] in refused[0], refused
    assert (
        "does not beat the baseline" in second["reason"]
        or "is not better than the champion" in second["reason"]
    ), second
    assert read_pointer(c) == pointer  # the champion and its pointer did not move
    after = schedule_status(c)
    assert after["champion"]["run"] == run
    assert after["lastResult"] == "NotPromoted"

    # Warm start from the champion, still unable to learn: the third run scores exactly what the
    # champion scored (it starts from the champion's weights, read from MinIO), a tie that the
    # gate does not promote.
    sched["spec"]["warmStart"] = "champion"
    c.apply(sched).check_returncode()
    t2 = time.monotonic()
    put_data(c, "part-2.csv", b"digits drop 3\n")
    tied = poll(
        "a second NotPromoted",
        lambda: r if len(r := schedule_events(c, "NotPromoted")) >= 2 else None,
        900,
    )
    t_warm = time.monotonic() - t2
    (third,) = [r for r in schedule_status(c)["runs"] if r["name"] not in runs]
    warm_job = c.kubectl_json("get", "trainingjob", third["name"])
    env = {e["name"]: e.get("value") for e in warm_job["spec"].get("env", [])}
    assert env["TRAINFORGE_WARM_START_URI"] == champion["artifactsUri"], env
    warm_results = warm_job["status"]["results"]
    assert warm_results["warm_started"] == 1.0, warm_results
    assert warm_results["test_accuracy"] == champion["metric"], (warm_results, champion)
    assert third["result"] == "NotPromoted", third
    assert "is not better than the champion" in third["reason"], (third, tied)
    assert read_pointer(c) == pointer

    table = c.kubectl("get", "tsc", NAME, check=True).stdout
    assert "CHAMPION METRIC" in table, table
    assert f"{champion['metric']:.4g}"[:4] in table, table
    print(
        f"\n[schedule e2e] first run created {t_created:.0f}s after the data, promoted at "
        f"{t_promoted:.0f}s (test_accuracy {champion['metric']:.4f} vs baseline "
        f"{results['baseline_test_accuracy']:.4f}); worse run refused {t_refused:.0f}s after "
        f"the second object (test_accuracy {second['metric']:.4f}): {second['reason']}; "
        f"warm-started run judged {t_warm:.0f}s after the third object "
        f"(test_accuracy {warm_results['test_accuracy']:.4f})"
    )
