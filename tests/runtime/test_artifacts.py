"""Artifact bundle, metadata and upload to a PVC-style path (plain filesystem)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trainforge_runtime.artifacts import (
    ArtifactUploadError,
    build_model_bundle,
    dataset_fingerprint,
    open_fs,
    upload_artifacts,
    verify_upload,
    write_metadata,
)


class Tied(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        self.head = torch.nn.Linear(4, 10, bias=False)
        self.head.weight = self.embed.weight  # tied, like GPT


def bundle(tmp_path: Path) -> Path:
    out = tmp_path / "bundle"
    model = Tied()
    build_model_bundle(model, out, {"vocab": 10, "dim": 4}, labels=[str(i) for i in range(10)])
    write_metadata(
        out, hyperparameters={"lr": 0.1}, metrics={"test": {"accuracy": 0.97}},
        dataset_fingerprint=dataset_fingerprint(torch.arange(10)), image="trainforge/worker:0.1.0",
        layout="data", world_size=2, duration_seconds=12.5,
    )  # fmt: skip
    return out


def test_bundle_contents(tmp_path: Path) -> None:
    out = bundle(tmp_path)
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "labels.json", "metadata.json", "model.safetensors",
    ]  # fmt: skip
    weights = load_file(out / "model.safetensors")
    assert set(weights) == {"embed.weight", "head.weight"}
    assert torch.equal(weights["embed.weight"], weights["head.weight"])
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"].endswith("Tied")
    assert config["vocab"] == 10
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["metrics"]["test"]["accuracy"] == 0.97
    assert meta["worldSize"] == 2
    assert meta["torchVersion"] == torch.__version__
    assert len(meta["datasetFingerprint"]) == 64


def test_upload_to_plain_path_with_manifest(tmp_path: Path) -> None:
    src = bundle(tmp_path)
    dest = tmp_path / "pvc" / "models" / "run-1"
    result = upload_artifacts(src, str(dest))
    assert result.files == 4
    assert result.bytes == sum(p.stat().st_size for p in src.iterdir())
    assert verify_upload(str(dest)) == result.manifest
    assert json.loads((dest / "manifest.json").read_text())["totalBytes"] == result.bytes


def test_reupload_replaces_manifest_and_detects_tampering(tmp_path: Path) -> None:
    src = bundle(tmp_path)
    dest = f"file://{tmp_path}/out"
    upload_artifacts(src, dest)
    (tmp_path / "out" / "labels.json").write_text("[]")
    with pytest.raises(ArtifactUploadError, match=r"labels\.json"):
        verify_upload(dest)
    upload_artifacts(src, dest)
    verify_upload(dest)


def test_unwritable_destination_fails_clearly_without_manifest(tmp_path: Path) -> None:
    src = bundle(tmp_path)
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where a directory should be")
    with pytest.raises(ArtifactUploadError, match=r"failed after 2 attempts.*no manifest\.json"):
        upload_artifacts(src, str(blocker / "models"), retries=1, backoff=0.01)
    assert not (blocker.parent / "models").exists()


def test_missing_source_dir(tmp_path: Path) -> None:
    with pytest.raises(ArtifactUploadError, match="does not exist"):
        upload_artifacts(tmp_path / "nope", str(tmp_path / "dest"))


@pytest.mark.parametrize(
    ("uri", "protocol", "path"),
    [
        ("s3://models/run-1", "s3", "models/run-1"),
        ("gs://models/run-1/", "gs", "models/run-1"),
        ("file:///tmp/tf-artifacts/run-1", "file", "/tmp/tf-artifacts/run-1"),
        ("/mnt/pvc/run-1", "file", "/mnt/pvc/run-1"),  # a PVC mounted into the pod
    ],
)
def test_every_supported_target_resolves_through_fsspec(uri: str, protocol: str, path: str) -> None:
    """s3, gs, file and PVC paths all get an fsspec filesystem (no network: nothing is listed)."""
    fs, inner = open_fs(uri, endpoint="http://127.0.0.1:9")
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    assert protocol in protocols
    assert inner == path
