# ruff: noqa: F811 - pytest fixtures imported from minio_fixture are redefined as arguments
"""Checkpoints while the object store (a real MinIO) goes down: a short outage is ridden out and
training goes on; a long one fails the save clearly, as a retryable exit, leaving no manifest."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from minio_fixture import MinioServer, minio, minio_factory  # noqa: F401

from trainforge_api import exitcodes
from trainforge_runtime import checkpoint
from trainforge_runtime.artifacts import open_fs
from trainforge_runtime.checkpoint import CheckpointManager, CheckpointStorageError
from trainforge_runtime.exits import failure_code

URI = "s3://trainforge/jobs/faults/ckpt"


def state() -> dict[str, Any]:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 3)
    return {"model": model, "optimizer": torch.optim.SGD(model.parameters(), lr=0.1)}


def outage_after_first_put(
    monkeypatch: pytest.MonkeyPatch, server: MinioServer, back_after: float | None
) -> None:
    """MinIO stops right after the save's first file; it comes back `back_after` s later."""
    real = checkpoint.put_file
    calls = {"n": 0}

    def put_then_outage(fs: Any, local: Path, remote: str) -> None:
        real(fs, local, remote)
        calls["n"] += 1
        if calls["n"] == 1:
            server.stop()
            if back_after is not None:
                threading.Timer(back_after, server.start).start()

    monkeypatch.setattr(checkpoint, "put_file", put_then_outage)


def complete_steps(server: MinioServer) -> list[str]:
    fs, root = open_fs(URI, server.endpoint)
    return sorted(
        p.rsplit("/", 1)[-1]
        for p in fs.ls(root, detail=False)
        if fs.exists(f"{p}/{checkpoint.MANIFEST}")
    )


def test_a_short_outage_is_ridden_out_and_training_goes_on(
    minio: MinioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    outage_after_first_put(monkeypatch, minio, back_after=1.0)
    mgr = CheckpointManager(URI, every_steps=1, endpoint=minio.endpoint, backoff=0.5, retries=6)
    s = state()
    assert mgr.maybe_save(1, s)  # the outage hits this save; it retries through it
    assert mgr.maybe_save(2, s)  # and training goes on
    assert complete_steps(minio) == ["step-00000001", "step-00000002"]


def test_a_long_outage_fails_the_save_clearly_and_retryably(
    minio: MinioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    mgr = CheckpointManager(URI, every_steps=1, endpoint=minio.endpoint, backoff=0.1, retries=2)
    s = state()
    assert mgr.maybe_save(1, s)
    outage_after_first_put(monkeypatch, minio, back_after=None)
    with pytest.raises(CheckpointStorageError) as err:
        mgr.maybe_save(2, s)
    message = str(err.value)
    assert "failed after 3 attempts" in message
    assert "restarts from the newest complete checkpoint" in message
    assert failure_code(err.value) == exitcodes.TRANSIENT  # the operator restarts the gang
    minio.start()
    assert complete_steps(minio) == ["step-00000001"]  # step 2 left no manifest: it never counts
    assert CheckpointManager(URI, endpoint=minio.endpoint).latest_step() == 1
