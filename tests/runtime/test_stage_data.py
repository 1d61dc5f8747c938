# ruff: noqa: F811 - pytest fixtures imported from minio_fixture are redefined as arguments
"""The dataset initializer (`python -m trainforge_runtime.stage_data`) against real storage: a
MinIO prefix and object, a local directory, an HTTP server. It runs as the init container does,
as its own process reading the job context; failures exit with a classified code and a
termination message that names the URI and never the credentials."""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import s3fs
import yaml
from minio_fixture import PASSWORD, USER, MinioServer, minio, minio_factory  # noqa: F401

from trainforge_api import exitcodes
from trainforge_api.context import ENV_CONTEXT_FILE, ENV_DATA_DIR, JobContext, JobRef
from trainforge_api.trainingjob import Data
from trainforge_runtime import cli
from trainforge_runtime.config import ENV_TERMINATION_LOG

REPO = Path(__file__).resolve().parents[2]


def dataset(root: Path) -> dict[str, bytes]:
    """A small dataset with a nested file and one file larger than a copy chunk."""
    files = {
        "train/part-0.bin": os.urandom(5 << 20),
        "train/part-1.bin": b"x" * 1000,
        "labels.json": b'{"classes": 10}',
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def run_stager(
    tmp_path: Path, data: Data, env: dict[str, str] | None = None
) -> tuple[int, str, Any]:
    """Run the initializer as its own process; (exit code, its output, termination JSON)."""
    ctx = JobContext(job=JobRef(name="stage"), command=["python", "train.py"], data=data)
    (tmp_path / "context.json").write_text(ctx.to_json())
    term = tmp_path / "termination-log"
    full_env = {
        **os.environ,
        **(env or {}),
        ENV_CONTEXT_FILE: str(tmp_path / "context.json"),
        ENV_DATA_DIR: str(tmp_path / "staged"),
        ENV_TERMINATION_LOG: str(term),
        "PYTHONPATH": os.pathsep.join(str(REPO / d) for d in ("api", "training_image")),
    }
    done = subprocess.run(
        [sys.executable, "-m", "trainforge_runtime.stage_data"],
        env=full_env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr, json.loads(term.read_text())


def staged_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def s3(server: MinioServer) -> s3fs.S3FileSystem:
    return s3fs.S3FileSystem(
        key=USER, secret=PASSWORD, client_kwargs={"endpoint_url": server.endpoint},
        skip_instance_cache=True,
    )  # fmt: skip


def test_stages_a_minio_prefix(minio: MinioServer, tmp_path: Path) -> None:
    files = dataset(tmp_path / "src")
    s3(minio).put(str(tmp_path / "src") + "/", "trainforge/datasets/digits/", recursive=True)
    data = Data(uri="s3://trainforge/datasets/digits", s3_endpoint=minio.endpoint)
    code, out, term = run_stager(tmp_path, data)
    assert code == 0, out
    assert staged_files(tmp_path / "staged") == files
    total = sum(len(b) for b in files.values())
    assert term["exitReason"] == "DataStaged"
    assert term["metrics"] == {"data_bytes": total, "data_files": 3}
    assert "s3://trainforge/datasets/digits" in term["message"]
    assert "staging:" in out
    assert "(100%), 3/3 files" in out
    assert PASSWORD not in out
    assert PASSWORD not in json.dumps(term)


def test_stages_a_single_object_under_its_name(minio: MinioServer, tmp_path: Path) -> None:
    s3(minio).pipe_file("trainforge/one/data.csv", b"a,b\n1,2\n")
    data = Data(uri="s3://trainforge/one/data.csv", options={"endpoint_url": minio.endpoint})
    code, out, _ = run_stager(tmp_path, data)
    assert code == 0, out
    assert staged_files(tmp_path / "staged") == {"data.csv": b"a,b\n1,2\n"}


def test_a_missing_uri_is_permanent_and_named(minio: MinioServer, tmp_path: Path) -> None:
    data = Data(uri="s3://trainforge/no/such/prefix", s3_endpoint=minio.endpoint)
    code, out, term = run_stager(tmp_path, data)
    assert code == exitcodes.DATA_STAGING_FAILED, out
    assert term["exitCode"] == exitcodes.DATA_STAGING_FAILED
    assert term["exitReason"] == "DataStagingFailed"
    assert term["message"].startswith("cannot stage s3://trainforge/no/such/prefix: ")
    assert "FileNotFoundError" in term["message"]


def test_wrong_credentials_are_permanent_and_never_printed(
    minio: MinioServer, tmp_path: Path
) -> None:
    s3(minio).pipe_file("trainforge/one/data.csv", b"x")
    wrong = {"AWS_ACCESS_KEY_ID": "nobody", "AWS_SECRET_ACCESS_KEY": "wrong-secret-value"}
    data = Data(uri="s3://trainforge/one/data.csv", s3_endpoint=minio.endpoint)
    code, out, term = run_stager(tmp_path, data, env=wrong)
    assert code == exitcodes.DATA_STAGING_FAILED, out
    assert "PermissionError" in term["message"]
    for secret in ("wrong-secret-value", PASSWORD):
        assert secret not in out
        assert secret not in json.dumps(term)


def test_an_unreachable_storage_is_retryable(minio: MinioServer, tmp_path: Path) -> None:
    minio.stop()
    data = Data(uri="s3://trainforge/one/data.csv", s3_endpoint=minio.endpoint)
    code, out, term = run_stager(tmp_path, data)
    assert code == exitcodes.TRANSIENT, out
    assert term["message"].startswith("cannot stage s3://trainforge/one/data.csv: ")


def test_stages_a_local_directory(tmp_path: Path) -> None:
    files = dataset(tmp_path / "src")
    code, out, term = run_stager(tmp_path, Data(uri=(tmp_path / "src").as_uri()))
    assert code == 0, out
    assert staged_files(tmp_path / "staged") == files
    assert term["metrics"]["data_files"] == 3


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()


def test_stages_an_http_file(http_root: tuple[str, Path], tmp_path: Path) -> None:
    url, root = http_root
    (root / "vocab.txt").write_bytes(b"a\nb\nc\n")
    code, out, _ = run_stager(tmp_path, Data(uri=f"{url}/vocab.txt"))
    assert code == 0, out
    assert staged_files(tmp_path / "staged") == {"vocab.txt": b"a\nb\nc\n"}


def test_an_http_404_is_permanent(http_root: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = http_root
    code, out, term = run_stager(tmp_path, Data(uri=f"{url}/missing.txt"))
    assert code == exitcodes.DATA_STAGING_FAILED, out
    assert f"cannot stage {url}/missing.txt" in term["message"]


def test_local_mode_stages_before_the_workers_start(tmp_path: Path) -> None:
    """`trainforge run --local`: the script finds the data at $TRAINFORGE_DATA_DIR."""
    files = dataset(tmp_path / "src")
    script = tmp_path / "check.py"
    script.write_text(
        "import os, pathlib, sys\n"
        "root = pathlib.Path(os.environ['TRAINFORGE_DATA_DIR'])\n"
        "sys.exit(0 if (root / 'labels.json').read_bytes() == b'{\"classes\": 10}' else 3)\n"
    )
    job = {
        "apiVersion": "trainforge.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "staged"},
        "spec": {
            "command": [sys.executable, str(script)],
            "parallelism": {"nodes": 2},
            "metrics": {"enabled": False},
            "data": {"uri": (tmp_path / "src").as_uri()},
        },
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    code = cli.main(["run", str(path), "--local", "--output", str(tmp_path / "out")])
    assert code == 0, [p.read_text() for p in (tmp_path / "out" / "staged").glob("node-*.log")]
    assert staged_files(tmp_path / "out" / "staged" / "data") == files


def test_local_mode_fails_clearly_when_staging_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = {
        "apiVersion": "trainforge.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "unstaged"},
        "spec": {"command": ["true"], "data": {"uri": (tmp_path / "nothing").as_uri()}},
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    code = cli.main(["run", str(path), "--local", "--output", str(tmp_path / "out")])
    assert code == exitcodes.DATA_STAGING_FAILED
    assert f"cannot stage {(tmp_path / 'nothing').as_uri()}" in capsys.readouterr().err
