# ruff: noqa: F811 - pytest fixtures imported from minio_fixture are redefined as arguments
"""Artifact upload against a real MinIO: checksums verified on download; an outage during the
upload is retried, and when it lasts, fails clearly with nothing marked complete, and the
worker's upload step exits 66 (what the operator reports as ArtifactUploadFailed)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import s3fs
from minio_fixture import PASSWORD, USER, MinioServer, minio, minio_factory  # noqa: F401
from runtime_helpers import make_context

from trainforge_api import exitcodes
from trainforge_api.context import JobContext
from trainforge_runtime import artifacts, bundle
from trainforge_runtime.artifacts import ArtifactUploadError, upload_artifacts


def make_files(root: Path, n: int = 4) -> Path:
    root.mkdir(parents=True)
    for i in range(n):
        (root / f"part-{i}.bin").write_bytes(bytes([i]) * (1000 + 100_000 * i))
    (root / "sub").mkdir()
    (root / "sub" / "config.json").write_text('{"a": 1}')
    return root


def s3(server: MinioServer) -> s3fs.S3FileSystem:
    return s3fs.S3FileSystem(
        key=USER, secret=PASSWORD, client_kwargs={"endpoint_url": server.endpoint},
        skip_instance_cache=True,
    )  # fmt: skip


def test_upload_to_minio_verified_by_download(minio: MinioServer, tmp_path: Path) -> None:
    src = make_files(tmp_path / "src")
    result = upload_artifacts(src, "s3://trainforge/models/job-1", endpoint=minio.endpoint)
    assert result.files == 5
    fs = s3(minio)
    manifest = json.loads(fs.cat_file("trainforge/models/job-1/manifest.json"))
    assert manifest == result.manifest
    for entry in manifest["files"]:
        data = fs.cat_file(f"trainforge/models/job-1/{entry['path']}")
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert data == (src / entry["path"]).read_bytes()


def test_endpoint_from_env(
    minio: MinioServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINFORGE_S3_ENDPOINT", minio.endpoint)
    result = upload_artifacts(make_files(tmp_path / "src", 1), "s3://trainforge/env")
    assert artifacts.verify_upload("s3://trainforge/env") == result.manifest


def _stop_after_first_upload(
    monkeypatch: pytest.MonkeyPatch, server: MinioServer, then: Callable[[], Any] = lambda: None
) -> None:
    real = artifacts.put_file
    calls = {"n": 0}

    def put_then_outage(fs: Any, local: Path, remote: str) -> None:
        real(fs, local, remote)
        calls["n"] += 1
        if calls["n"] == 1:
            server.stop()
            then()

    monkeypatch.setattr(artifacts, "put_file", put_then_outage)


def test_outage_during_upload_fails_clearly(
    minio: MinioServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stop_after_first_upload(monkeypatch, minio)
    with pytest.raises(ArtifactUploadError) as err:
        upload_artifacts(
            make_files(tmp_path / "src"), "s3://trainforge/models/broken",
            endpoint=minio.endpoint, retries=2, backoff=0.1,
        )  # fmt: skip
    message = str(err.value)
    assert "failed after 3 attempts" in message
    assert minio.endpoint in message
    assert "no manifest.json was written" in message
    minio.start()  # same data dir and port: what did the failed upload leave?
    fs = s3(minio)
    assert fs.ls("trainforge/models/broken/", detail=False)  # some files made it ...
    assert not fs.exists("trainforge/models/broken/manifest.json")  # ... but it is not complete


def test_short_outage_is_retried_and_succeeds(
    minio: MinioServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    restart = lambda: threading.Timer(1.0, minio.start).start()  # noqa: E731
    _stop_after_first_upload(monkeypatch, minio, then=restart)
    result = upload_artifacts(
        make_files(tmp_path / "src"), "s3://trainforge/models/flaky",
        endpoint=minio.endpoint, retries=6, backoff=0.5,
    )  # fmt: skip
    assert result.files == 5
    assert artifacts.verify_upload("s3://trainforge/models/flaky", endpoint=minio.endpoint)


def test_the_upload_step_exits_66_and_publishes_nothing(
    minio: MinioServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's own upload step (bundle.upload) with MinIO gone mid-upload: exit 66, which
    the operator turns into reason ArtifactUploadFailed with status.artifacts left empty
    (tests/unit/policies/test_failure.py); no manifest.json is visible in the bucket."""
    _stop_after_first_upload(monkeypatch, minio)
    job = JobContext.model_validate(
        {
            **make_context(),
            "artifacts": {
                "uri": "s3://trainforge/models/half",
                "s3Endpoint": minio.endpoint,
                "uploadRetries": 1,
            },
        }
    )
    with pytest.raises(exitcodes.RuntimeExit) as ended:
        bundle.upload(make_files(tmp_path / "src"), job)
    assert ended.value.code == exitcodes.UPLOAD_FAILED == 66
    assert "no manifest.json was written" in ended.value.message
    minio.start()
    assert not s3(minio).exists("trainforge/models/half/manifest.json")
