"""MlflowTracker against a real `mlflow server` started by the test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient

from trainforge_api.context import JobContext
from trainforge_runtime.tracking import TAG_JOB_UID, MlflowTracker, flatten_params

STARTUP_SECONDS = 300  # the server imports a lot; a busy 2-core CI machine needs minutes


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("mlflow")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
         "--artifacts-destination", str(root / "artifacts"), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        # no server-side job runner: a second process importing all of mlflow that no test uses
        env=dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"),
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited: {(root / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"mlflow server not healthy in {STARTUP_SECONDS}s: see {root}/server.log"
                    )
                time.sleep(0.5)
        yield uri
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """The server forks uvicorn workers: signal the whole process group it leads."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def context(uri: str, uid: str) -> JobContext:
    return JobContext.model_validate(
        {
            "job": {"name": "digits-ddp", "namespace": "ml", "uid": uid},
            "hyperparameters": {"lr": 0.05, "optim": {"name": "sgd", "momentum": 0.9}},
            "tracking": {"mlflow": {"trackingUri": uri, "experiment": "trainforge-test"}},
        }
    )


def test_logs_params_metrics_artifacts(mlflow_server: str, tmp_path: Path) -> None:
    ctx = context(mlflow_server, "uid-1")
    tracker = MlflowTracker.from_context(ctx, rank=0)
    assert tracker is not None
    run_id = tracker.start(ctx.hyperparameters)
    for step in range(5):
        tracker.log_metrics({"loss": 1.0 / (step + 1), "val_accuracy": 0.5 + 0.1 * step}, step)
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "report.html").write_text("<html></html>")
    tracker.log_artifacts(tmp_path / "bundle")
    tracker.end()

    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "digits-ddp"
    assert run.data.params == {"lr": "0.05", "optim.name": "sgd", "optim.momentum": "0.9"}
    assert run.data.tags[TAG_JOB_UID] == "uid-1"
    history = client.get_metric_history(run_id, "loss")
    assert sorted((m.step, m.value) for m in history) == [(s, 1.0 / (s + 1)) for s in range(5)]
    assert [a.path for a in client.list_artifacts(run_id)] == ["report.html"]


def test_restart_reattaches_to_the_same_run(mlflow_server: str) -> None:
    ctx = context(mlflow_server, "uid-2")
    first = MlflowTracker.from_context(ctx, rank=0)
    second = MlflowTracker.from_context(ctx, rank=0)
    assert first is not None
    assert second is not None
    run_id = first.start({"lr": 1})
    first.log_metrics({"loss": 2.0}, 1)
    assert second.start({"lr": 1}) == run_id  # attempt 1 continues the attempt-0 run
    second.log_metrics({"loss": 1.0}, 2)
    steps = sorted(m.step for m in MlflowClient(mlflow_server).get_metric_history(run_id, "loss"))
    assert steps == [1, 2]


def test_only_rank_zero_and_only_when_configured(mlflow_server: str) -> None:
    other = MlflowTracker.from_context(context(mlflow_server, "uid-3"), rank=1)
    assert other is not None
    assert other.start({"lr": 1}) is None
    other.log_metrics({"loss": 1.0}, 0)  # no-op, no error
    plain = JobContext.model_validate({"job": {"name": "x"}})
    assert MlflowTracker.from_context(plain, rank=0) is None


def test_flatten_params() -> None:
    assert flatten_params({"a": {"b": 1, "c": {"d": "x"}}, "e": [1, 2]}) == {
        "a.b": "1", "a.c.d": "x", "e": "[1, 2]",
    }  # fmt: skip
