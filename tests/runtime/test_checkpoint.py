"""CheckpointManager in one process: atomic manifest, retention, fallback, extras, schedule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from trainforge_runtime.checkpoint import CheckpointError, CheckpointManager


def make_state(seed: int = 0) -> dict[str, object]:
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 2)
    optim = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.ones(3, 4)).sum().backward()
    optim.step()
    return {"model": model, "optimizer": optim, "epoch": 3, "rng": torch.get_rng_state()}


def steps_on_disk(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


def test_roundtrip_restores_in_place_and_extras(tmp_path: Path) -> None:
    mgr = CheckpointManager(str(tmp_path), every_steps=5)
    src = make_state(0)
    assert mgr.maybe_save(5, src)
    dst = make_state(1)
    dst["epoch"] = 0
    step, state = CheckpointManager(f"file://{tmp_path}").load_latest(into=dst)
    assert step == 5
    assert state["epoch"] == 3
    assert dst["epoch"] == 3  # extras restored into the caller's dict as well
    assert torch.equal(state["rng"], src["rng"])  # type: ignore[arg-type]
    for a, b in zip(src["model"].parameters(), dst["model"].parameters(), strict=True):  # type: ignore[union-attr]
        assert torch.equal(a, b)
    assert dst["optimizer"].state_dict()["state"][0]["step"] == 1  # type: ignore[union-attr]


def test_manifest_lists_files_with_sha256(tmp_path: Path) -> None:
    CheckpointManager(str(tmp_path), every_steps=1, layout="data").maybe_save(1, make_state())
    manifest = json.loads((tmp_path / "step-00000001" / "manifest.json").read_text())
    assert manifest["step"] == 1
    assert manifest["worldSize"] == 1
    assert manifest["layout"] == "data"
    names = {f["path"] for f in manifest["files"]}
    assert names == {"state.pt", "extra-rank0.pt"}
    assert all(len(f["sha256"]) == 64 and f["size"] > 0 for f in manifest["files"])


def test_schedule_and_retention(tmp_path: Path) -> None:
    mgr = CheckpointManager(str(tmp_path), every_steps=2, keep=2)
    state = make_state()
    saved = [step for step in range(1, 10) if mgr.maybe_save(step, state)]
    assert saved == [2, 4, 6, 8]
    assert steps_on_disk(tmp_path) == ["step-00000006", "step-00000008"]
    assert mgr.latest_step() == 8
    assert mgr.maybe_save(9, state, force=True)
    assert not mgr.maybe_save(9, state, force=True)  # same step twice is a no-op


def test_incomplete_checkpoint_is_ignored(tmp_path: Path) -> None:
    mgr = CheckpointManager(str(tmp_path), every_steps=1)
    mgr.maybe_save(1, make_state())
    partial = tmp_path / "step-00000002"
    partial.mkdir()
    (partial / "state.pt").write_bytes(b"half a file")  # crashed before the manifest
    assert mgr.latest_step() == 1
    loaded = CheckpointManager(str(tmp_path)).load_latest(into=make_state(1))
    assert loaded is not None
    assert loaded[0] == 1


def test_corrupt_checkpoint_falls_back_to_previous(tmp_path: Path) -> None:
    mgr = CheckpointManager(str(tmp_path), every_steps=1, keep=3)
    for step in (1, 2):
        mgr.maybe_save(step, {**make_state(), "epoch": step})
    (tmp_path / "step-00000002" / "state.pt").write_bytes(b"bit rot")
    step, state = CheckpointManager(str(tmp_path)).load_latest(into=make_state(1))  # type: ignore[misc]
    assert (step, state["epoch"]) == (1, 1)


def test_load_without_template_returns_raw_state(tmp_path: Path) -> None:
    CheckpointManager(str(tmp_path), every_steps=1).maybe_save(1, make_state())
    step, state = CheckpointManager(str(tmp_path)).load_latest()  # type: ignore[misc]
    assert step == 1
    assert set(state) == {"model", "optimizer", "epoch", "rng"}
    assert set(state["model"]) == {"weight", "bias"}


def test_empty_location_and_sharded_without_template(tmp_path: Path) -> None:
    assert CheckpointManager(str(tmp_path / "none")).load_latest(into=make_state()) is None
    with pytest.raises(CheckpointError, match="load in place"):
        CheckpointManager(str(tmp_path), sharded=True).load_latest()


def test_every_seconds(tmp_path: Path) -> None:
    mgr = CheckpointManager(str(tmp_path), every_seconds=3600)
    assert not mgr.maybe_save(1, make_state())
    mgr.every_seconds = 0.0001
    assert mgr.maybe_save(2, make_state())
