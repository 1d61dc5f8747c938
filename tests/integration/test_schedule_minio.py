# ruff: noqa: F811  (pytest fixtures imported from the fixture modules are re-bound as arguments)
"""TrainingSchedule storage on s3:// against a real MinIO: the data fingerprint (ETag, mtime,
manifest) through fsspec + s3fs, the champion pointer written and read back, and the schedule
controller on the real control plane triggered by a new object in a MinIO prefix.

The operator reads storage with its own credentials (the AWS_* environment the MinIO fixture
exports, as the chart does from `operator.storageCredentialsSecret`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import s3fs
from operator_fixture import (  # noqa: F401  (fixtures)
    OperatorHandle,
    kube_client,
    operator_config_for,
    trainforge_crd,
    wait_for,
)
from runtime.minio_fixture import PASSWORD, USER, MinioServer, minio, minio_factory  # noqa: F401
from test_schedules import SPEED, FastClock, Schedules, finishing, schedule
from tf_controlplane import ControlPlane

from trainforge_operator.schedules.storage import DataError, fingerprint, write_pointer

BUCKET = "trainforge"


def s3(server: MinioServer) -> s3fs.S3FileSystem:
    return s3fs.S3FileSystem(
        key=USER,
        secret=PASSWORD,
        client_kwargs={"endpoint_url": server.endpoint},
        skip_instance_cache=True,
    )


@pytest.mark.parametrize("by", ["etag", "mtime"])
def test_fingerprint_of_a_minio_prefix_is_stable_and_sees_every_change(
    minio: MinioServer, by: Any
) -> None:
    fs = s3(minio)
    uri = f"s3://{BUCKET}/data/{by}/"
    fs.pipe_file(f"{BUCKET}/data/{by}/part-0.csv", b"1,2\n")
    first = fingerprint(uri, by, endpoint=minio.endpoint)
    assert first.startswith(f"{by}:")
    assert fingerprint(uri, by, endpoint=minio.endpoint) == first  # same data, same string
    fs.pipe_file(f"{BUCKET}/data/{by}/part-1.csv", b"3,4\n")
    added = fingerprint(uri, by, endpoint=minio.endpoint)
    assert added != first
    if by == "mtime":
        time.sleep(1.1)  # S3 modification times have one-second resolution
    fs.pipe_file(f"{BUCKET}/data/{by}/part-1.csv", b"5,6\n")  # rewritten in place
    assert fingerprint(uri, by, endpoint=minio.endpoint) not in (first, added)
    fs.rm_file(f"{BUCKET}/data/{by}/part-1.csv")
    assert fingerprint(uri, by, endpoint=minio.endpoint) != added


def test_manifest_fingerprint_follows_the_manifest_only(minio: MinioServer) -> None:
    fs = s3(minio)
    uri = f"s3://{BUCKET}/data/m"
    with pytest.raises(DataError, match=r"by: manifest, but s3://trainforge/data/m/manifest\.json"):
        fingerprint(uri, "manifest", endpoint=minio.endpoint)
    fs.pipe_file(f"{BUCKET}/data/m/manifest.json", b'{"drop": 1}')
    first = fingerprint(uri, "manifest", endpoint=minio.endpoint)
    fs.pipe_file(f"{BUCKET}/data/m/part-9.csv", b"half a drop")  # no new manifest yet
    assert fingerprint(uri, "manifest", endpoint=minio.endpoint) == first
    fs.pipe_file(f"{BUCKET}/data/m/manifest.json", b'{"drop": 2}')
    assert fingerprint(uri, "manifest", endpoint=minio.endpoint) != first


def test_missing_data_and_bucket_say_what_to_fix(minio: MinioServer) -> None:
    with pytest.raises(DataError, match=r"s3://trainforge/nothing/.*fix jobTemplate\.data\.uri"):
        fingerprint(f"s3://{BUCKET}/nothing/", "etag", endpoint=minio.endpoint)
    with pytest.raises(DataError, match=r"s3://no-such-bucket/d/.*bucket does not exist"):
        fingerprint("s3://no-such-bucket/d/", "etag", endpoint=minio.endpoint)


def test_champion_pointer_is_replaced_whole_in_minio(minio: MinioServer) -> None:
    fs = s3(minio)
    uri = f"s3://{BUCKET}/artifacts/ns/nightly/champion.json"
    write_pointer(uri, {"run": "nightly-1", "metric": 0.9}, minio.endpoint)
    assert json.loads(fs.cat_file(uri)) == {"run": "nightly-1", "metric": 0.9}
    write_pointer(uri, {"run": "nightly-2", "metric": 0.95}, minio.endpoint)
    assert json.loads(fs.cat_file(uri)) == {"run": "nightly-2", "metric": 0.95}
    # Only the pointer itself: no temporary objects are left beside it.
    prefix = f"{BUCKET}/artifacts/ns/nightly"
    assert fs.ls(f"{prefix}/") == [f"{prefix}/champion.json"]


@pytest.fixture
def minio_operator(
    minio: MinioServer, kube_client: Any, trainforge_crd: None, namespace: str
) -> Iterator[OperatorHandle]:
    """The operator on a fast schedule clock, started after MinIO's credentials are exported."""
    handle = OperatorHandle(
        config=operator_config_for(namespace),
        api_client=kube_client,
        schedule_clock=FastClock(SPEED),
        schedule_speed=SPEED,
    )
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


def test_new_minio_object_triggers_a_run_and_only_a_better_one_is_promoted(
    control_plane: ControlPlane,
    namespace: str,
    kube_client: Any,
    minio: MinioServer,
    minio_operator: OperatorHandle,
) -> None:
    fs = s3(minio)
    fs.pipe_file(f"{BUCKET}/data/digits/part-0.csv", b"1,2\n")
    c = Schedules(kube_client, namespace)
    manifest = schedule(
        "fromminio",
        finishing(0.9, 0.1),
        newData={"by": "etag", "minIntervalSeconds": 30},
        jobTemplate={
            "data": {"uri": f"s3://{BUCKET}/data/digits/", "s3Endpoint": minio.endpoint},
            "artifacts": {"uri": f"s3://{BUCKET}/artifacts", "s3Endpoint": minio.endpoint},
        },
    )
    assert c.apply(control_plane, manifest).returncode == 0
    promoted = c.wait_event("fromminio", "ModelPromoted")
    first = c.runs("fromminio")[0]
    pointer_key = f"{BUCKET}/artifacts/{namespace}/fromminio/champion.json"
    pointer = json.loads(fs.cat_file(pointer_key))
    fp1 = first["metadata"]["annotations"]["trainforge.io/data-fingerprint"]
    assert fp1.startswith("etag:")
    assert pointer["run"] == first["metadata"]["name"]
    assert pointer["run"] in promoted[0][1]
    assert pointer["metric"] == 0.9
    assert pointer["baseline"] == 0.1
    assert pointer["dataFingerprint"] == fp1
    assert pointer["artifactsUri"] == f"s3://{BUCKET}/artifacts/{namespace}/{pointer['run']}"

    # The next run is made worse on purpose before the new data lands: it is not promoted.
    manifest["spec"]["jobTemplate"]["podTemplate"]["annotations"] = finishing(0.5, 0.1)
    assert c.apply(control_plane, manifest).returncode == 0
    fs.pipe_file(f"{BUCKET}/data/digits/part-1.csv", b"3,4\n")
    refused = c.wait_event("fromminio", "NotPromoted")
    assert "0.5 is not better than the champion" in refused[0][1], refused
    runs = c.runs("fromminio")
    assert len(runs) == 2
    fps = {r["metadata"]["annotations"]["trainforge.io/data-fingerprint"] for r in runs}
    assert len(fps) == 2
    assert json.loads(fs.cat_file(pointer_key)) == pointer  # the champion did not change
    assert c.sched_status("fromminio")["champion"]["run"] == pointer["run"]
