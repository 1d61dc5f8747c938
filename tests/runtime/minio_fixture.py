"""A real MinIO server for tests: built from source by hack/build-minio.sh (cached), started on
a free loopback port with a temp data dir, stopped at teardown.

Use in a test module:  `from minio_fixture import minio, minio_factory  # noqa: F401`
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "build-minio.sh"
USER = "trainforge"
PASSWORD = "trainforge-secret"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def minio_binary() -> str:
    """Path of the MinIO server binary: $TRAINFORGE_MINIO_BIN, else build/reuse the cached one."""
    explicit = os.environ.get("TRAINFORGE_MINIO_BIN")
    if explicit:
        return explicit
    if shutil.which("go") is None:
        pytest.fail("MinIO needs Go to build (hack/build-minio.sh); set TRAINFORGE_MINIO_BIN")
    done = subprocess.run(
        [str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=3600, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"hack/build-minio.sh failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


@dataclass
class MinioServer:
    binary: str
    data_dir: Path
    port: int = field(default_factory=_free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """AWS env that s3fs/boto3 read for credentials."""
        return {
            "AWS_ACCESS_KEY_ID": USER,
            "AWS_SECRET_ACCESS_KEY": PASSWORD,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def start(self, timeout: float = 60.0) -> None:
        env = {**os.environ, "MINIO_ROOT_USER": USER, "MINIO_ROOT_PASSWORD": PASSWORD}
        env["MINIO_BROWSER"] = "off"
        log = (self.data_dir.parent / f"minio-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(
            [self.binary, "server", str(self.data_dir), "--quiet", "--address",
             f"127.0.0.1:{self.port}", "--console-address", f"127.0.0.1:{_free_port()}"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"minio exited with {self.proc.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/minio/health/ready", timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"minio not ready on {self.endpoint} after {timeout}s; see {log.name}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def make_bucket(self, name: str) -> None:
        import s3fs

        fs = s3fs.S3FileSystem(
            key=USER, secret=PASSWORD, client_kwargs={"endpoint_url": self.endpoint},
            skip_instance_cache=True,
        )  # fmt: skip
        fs.mkdir(name)


@pytest.fixture
def minio_factory(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[], MinioServer]]:
    """Start fresh MinIO servers (credentials exported to env); all stopped at teardown."""
    binary = minio_binary()
    servers: list[MinioServer] = []

    def start() -> MinioServer:
        root = tmp_path_factory.mktemp("minio")
        server = MinioServer(binary, root / "data")
        server.data_dir.mkdir()
        server.start()
        servers.append(server)
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def minio(minio_factory: Callable[[], MinioServer]) -> MinioServer:
    """One running MinIO with a `trainforge` bucket."""
    server = minio_factory()
    server.make_bucket("trainforge")
    return server
