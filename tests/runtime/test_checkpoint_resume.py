"""Resuming from a checkpoint gives bit-identical weights to an uninterrupted run.

Two processes on gloo/CPU run every layout (data, fsdp, tensor, pipeline) in turn, once per
module (starting two torch processes costs more than the training, so the four tests share
them). For each layout a worker runs, in order: an uninterrupted baseline of STEPS steps; a run
that checkpoints every EVERY steps and "crashes" after CRASH_AT; a fresh model, optimizer and
manager that resume from the newest checkpoint and finish. Data depend only on (step, rank)
(tensor parallel: on the step), so any state the checkpoint failed to restore shows up as a
weight difference.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from trainforge_runtime.checkpoint import CheckpointManager

STEPS, EVERY, CRASH_AT, WORLD = 10, 3, 7, 2
LAYOUTS = ("data", "fsdp", "tensor", "pipeline")


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _build(layout: str, rank: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    # pipeline: like real stages, each rank holds different weights under the same names
    torch.manual_seed(rank if layout == "pipeline" else 0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    if layout == "pipeline":
        pass
    elif layout == "data":
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model)
    elif layout == "tensor":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.tensor.parallel import (
            ColwiseParallel,
            RowwiseParallel,
            parallelize_module,
        )

        mesh = init_device_mesh("cpu", (WORLD,))
        model = parallelize_module(model, mesh, {"0": ColwiseParallel(), "2": RowwiseParallel()})
    else:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh("cpu", (WORLD,))
        for layer in model:
            if isinstance(layer, torch.nn.Linear):
                fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
    return model, torch.optim.Adam(model.parameters(), lr=0.01)


def _train(
    layout: str, rank: int, uri: str | None, start_from_ckpt: bool, stop: int
) -> torch.nn.Module:
    model, optim = _build(layout, rank)
    state: dict[str, object] = {"model": model, "optimizer": optim, "step": 0}
    mgr = None
    first = 1
    if uri:
        mgr = CheckpointManager(
            uri, every_steps=EVERY, keep=2, rank=rank, world_size=WORLD,
            sharded=layout != "data", layout=layout,
        )  # fmt: skip
        if start_from_ckpt:
            loaded = mgr.load_latest(into=state)
            assert loaded is not None
            first = int(loaded[1]["step"]) + 1  # type: ignore[call-overload]
            assert first - 1 == loaded[0]
    for step in range(first, stop + 1):
        # tensor parallel: both ranks are one replica and must see the same batch
        gen = torch.Generator().manual_seed(1000 * step + (0 if layout == "tensor" else rank))
        x, y = torch.randn(16, 8, generator=gen), torch.randn(16, 4, generator=gen)
        loss = torch.nn.functional.mse_loss(model(x), y)
        optim.zero_grad()
        loss.backward()
        optim.step()
        state["step"] = step
        if mgr:
            mgr.maybe_save(step, state)
    return model


def _full_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    opts = StateDictOptions(full_state_dict=True)  # on every rank (cpu_offload: rank 0 only)
    return {
        k: v.detach().cpu().clone() for k, v in get_model_state_dict(model, options=opts).items()
    }


def _resume_round(layout: str, rank: int, out: Path) -> None:
    """Baseline, crash, resume for one layout; weights and the post-crash listing go to `out`."""
    out.mkdir(parents=True, exist_ok=True)
    uri = f"file://{out}/ckpt"
    baseline = _full_weights(_train(layout, rank, None, False, STEPS))
    _train(layout, rank, uri, False, CRASH_AT)  # "crashes" after step 7: newest ckpt is 6
    after_crash = sorted(os.listdir(out / "ckpt"))
    resumed = _full_weights(_train(layout, rank, uri, True, STEPS))
    torch.save({"baseline": baseline, "resumed": resumed}, out / f"weights-rank{rank}.pt")
    if rank == 0:
        (out / "dirs.json").write_text(json.dumps(after_crash))
    dist.barrier()  # both ranks are done with this layout's files before the next one starts


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        torch.set_num_threads(1)
        for layout in LAYOUTS:
            _resume_round(layout, rank, Path(out, layout))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def rounds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One pair of worker processes runs every layout's round; a folder per layout."""
    out = tmp_path_factory.mktemp("resume")
    mp.spawn(_worker, args=(_port(), str(out)), nprocs=WORLD, join=True)
    return out


def _run(layout: str, rounds: Path) -> list[dict[str, dict[str, torch.Tensor]]]:
    folder = rounds / layout
    assert json.loads((folder / "dirs.json").read_text()) == ["step-00000003", "step-00000006"]
    assert sorted(os.listdir(folder / "ckpt")) == ["step-00000006", "step-00000009"]
    manifest = json.loads((folder / "ckpt/step-00000009/manifest.json").read_text())
    assert manifest["worldSize"] == WORLD
    assert manifest["step"] == 9
    return [torch.load(folder / f"weights-rank{r}.pt", weights_only=True) for r in range(WORLD)]


def _assert_same(per_rank: list[dict[str, dict[str, torch.Tensor]]]) -> None:
    for rank, weights in enumerate(per_rank):
        base, resumed = weights["baseline"], weights["resumed"]
        assert base.keys() == resumed.keys()
        assert base
        for key in base:
            assert torch.equal(base[key], resumed[key]), f"rank {rank}: {key} differs after resume"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_resume_ddp_matches_uninterrupted_run(rounds: Path) -> None:
    weights = _run("data", rounds)
    folder = rounds / "data"
    _assert_same(weights)
    manifest = json.loads((folder / "ckpt/step-00000009/manifest.json").read_text())
    assert {f["path"] for f in manifest["files"]} == {
        "state.pt",
        "extra-rank0.pt",
        "extra-rank1.pt",
    }


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_resume_fsdp_matches_uninterrupted_run(rounds: Path) -> None:
    weights = _run("fsdp", rounds)
    folder = rounds / "fsdp"
    _assert_same(weights)
    manifest = json.loads((folder / "ckpt/step-00000009/manifest.json").read_text())
    paths = {f["path"] for f in manifest["files"]}
    assert {".metadata", "__0_0.distcp", "__1_0.distcp"} <= paths
    assert manifest["format"] == "dcp"
    assert manifest["layout"] == "fsdp"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_resume_tensor_parallel_matches_uninterrupted_run(rounds: Path) -> None:
    per_rank = _run("tensor", rounds)
    folder = rounds / "tensor"
    _assert_same(per_rank)
    assert per_rank[0]["resumed"]["0.weight"].shape == (16, 8)  # gathered from two shards
    manifest = json.loads((folder / "ckpt/step-00000009/manifest.json").read_text())
    assert manifest["format"] == "dcp"
    assert manifest["layout"] == "tensor"
    assert {".metadata", "__0_0.distcp", "__1_0.distcp"} <= {f["path"] for f in manifest["files"]}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_resume_pipeline_keeps_each_stage_state(rounds: Path) -> None:
    per_rank = _run("pipeline", rounds)
    folder = rounds / "pipeline"
    _assert_same(per_rank)
    first, second = (w["resumed"]["0.weight"] for w in per_rank)
    assert not torch.equal(first, second)  # two different "stages", both restored
    manifest = json.loads((folder / "ckpt/step-00000009/manifest.json").read_text())
    assert manifest["format"] == "per-rank"
    assert {"state-rank0.pt", "state-rank1.pt"} <= {f["path"] for f in manifest["files"]}
