# ruff: noqa: F811 - pytest fixtures imported from minio_fixture are redefined as arguments
"""Checkpoints on S3 (a real MinIO), endpoint taken from TRAINFORGE_S3_ENDPOINT."""

from __future__ import annotations

import json

import pytest
import torch
from minio_fixture import MinioServer, minio, minio_factory  # noqa: F401

from trainforge_runtime.artifacts import open_fs
from trainforge_runtime.checkpoint import CheckpointManager


def test_checkpoints_on_s3_pruned_and_resumed(
    minio: MinioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINFORGE_S3_ENDPOINT", minio.endpoint)
    uri = "s3://trainforge/jobs/digits/ckpt"
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 3)
    optim = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    mgr = CheckpointManager(uri, every_steps=2, keep=2)
    for step in range(1, 7):
        model(torch.randn(4, 3)).sum().backward()
        optim.step()
        mgr.maybe_save(step, {"model": model, "optimizer": optim, "step": step})

    fs, root = open_fs(uri)
    dirs = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(root, detail=False))
    assert dirs == ["step-00000004", "step-00000006"]
    manifest = json.loads(fs.cat_file(f"{root}/step-00000006/manifest.json"))
    assert manifest["step"] == 6

    torch.manual_seed(1)
    fresh = torch.nn.Linear(3, 3)
    fresh_optim = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)
    loaded = CheckpointManager(uri).load_latest(into={"model": fresh, "optimizer": fresh_optim})
    assert loaded is not None
    assert loaded[0] == 6
    assert loaded[1]["step"] == 6
    assert torch.equal(fresh.weight, model.weight)
    momentum = fresh_optim.state_dict()["state"][0]["momentum_buffer"]
    assert torch.equal(momentum, optim.state_dict()["state"][0]["momentum_buffer"])
