"""Your own script's artifacts_dir() reaches spec.artifacts.uri in a real MinIO, uploaded by
node 0's launcher, and the upload reaches the termination summary (status.artifacts)."""

# ruff: noqa: F811 - pytest fixtures imported from minio_fixture are redefined as arguments
from __future__ import annotations

import json
from pathlib import Path

import fsspec
from minio_fixture import MinioServer, minio, minio_factory  # noqa: F401
from runtime_helpers import SCRIPTS, make_context, run_launcher


def _context(uri: str, endpoint: str) -> dict[str, object]:
    ctx = make_context("own", command=["python", str(SCRIPTS / "sdk_artifacts_script.py")])
    ctx["artifacts"] = {"uri": uri, "s3Endpoint": endpoint, "uploadRetries": 1}
    return ctx


def test_own_script_artifacts_are_uploaded(minio: MinioServer, tmp_path: Path) -> None:
    uri = "s3://trainforge/own/run-1"
    result = run_launcher(_context(uri, minio.endpoint), tmp_path, **minio.env())
    assert result.code == 0
    assert result.termination is not None
    assert result.termination["artifacts"]["uri"] == uri
    assert result.termination["artifacts"]["files"] == 1
    assert result.termination["metrics"] == {"accuracy": 0.9}
    fs = fsspec.filesystem("s3", client_kwargs={"endpoint_url": minio.endpoint}, **_keys(minio))
    assert fs.cat_file("trainforge/own/run-1/model.txt") == b"weights"
    manifest = json.loads(fs.cat_file("trainforge/own/run-1/manifest.json"))
    assert [f["path"] for f in manifest["files"]] == ["model.txt"]


def test_storage_down_fails_with_upload_failed(minio: MinioServer, tmp_path: Path) -> None:
    minio.stop()
    ctx = _context("s3://trainforge/own/run-2", minio.endpoint)
    result = run_launcher(ctx, tmp_path, **minio.env())
    assert result.code == 66
    assert result.termination is not None
    assert result.termination["exitReason"] == "UploadFailed"  # the job: ArtifactUploadFailed
    assert minio.endpoint in result.termination["message"]
    assert result.termination.get("artifacts") is None


def _keys(server: MinioServer) -> dict[str, str]:
    env = server.env()
    return {"key": env["AWS_ACCESS_KEY_ID"], "secret": env["AWS_SECRET_ACCESS_KEY"]}
