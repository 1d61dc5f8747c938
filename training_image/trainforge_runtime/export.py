"""Full, unsharded CPU weights of a parallelized model, for the model bundle.

Separate from the bundle writer because assembling them is collective (FSDP and tensor-parallel
shards are gathered, pipeline stages are sent to rank 0 and renumbered into one model), while
writing files is rank 0's business alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.distributed as dist
from torch import nn

from trainforge_runtime.layouts import PipelinedModule, Topology

_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(.*)$")


@dataclass
class ModelExport:
    """Weights for the bundle and how they were assembled (`full`, `pipeline-merged`, ...)."""

    state: dict[str, torch.Tensor]
    kind: str


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Unsharded CPU copy of the weights on every rank (collective for sharded layouts)."""
    from torch.distributed.tensor import DTensor

    inner = model.stage_module if isinstance(model, PipelinedModule) else model
    inner = getattr(inner, "module", inner)  # DDP
    out: dict[str, torch.Tensor] = {}
    for key, value in inner.state_dict().items():
        full = value.full_tensor() if isinstance(value, DTensor) else value
        out[key] = full.detach().cpu().contiguous()
    return out


def export_state_dict(model: nn.Module, topo: Topology) -> ModelExport:
    """Full, unsharded CPU weights for the bundle; complete on rank 0 only (collective)."""
    if isinstance(model, PipelinedModule):
        return gather_pipeline_stages(model, topo)
    if topo.layout in ("fsdp", "tensor") and dist.is_initialized():
        return ModelExport(_gathered_shards(model), "full")
    return ModelExport(full_state_dict(model), "full")


def _gathered_shards(model: nn.Module) -> dict[str, torch.Tensor]:
    """torch's own gather of FSDP/DTensor shards into full tensors, offloaded to the CPU."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    # full_state_dict=True: every value is a plain tensor (torch types it as any state value)
    return cast(dict[str, torch.Tensor], get_model_state_dict(model, options=options))


def gather_pipeline_stages(model: PipelinedModule, topo: Topology) -> ModelExport:
    """Stage state dicts of the first replica gathered to rank 0 and renumbered into one
    model; if the stage keys cannot be merged, each stage keeps a `stageN.` prefix."""
    is_main = topo.rank == 0
    mine = (topo.mp_rank, full_state_dict(model)) if topo.dp_rank == 0 else None
    gathered: list[Any] = [None] * topo.world_size if is_main else []
    dist.gather_object(mine, gathered if is_main else None, dst=0)
    if not is_main:
        return ModelExport({}, "pipeline")
    stages = sorted(x for x in gathered if x is not None)
    return merge_pipeline_stages([sd for _, sd in stages])


def merge_pipeline_stages(stages: list[dict[str, torch.Tensor]]) -> ModelExport:
    """One state dict from per-stage ones: `blocks.i` of stage k becomes `blocks.(offset_k + i)`.

    Falls back to `stage{k}.`-prefixed keys (kind `pipeline-per-stage`) on any key collision.
    """
    merged: dict[str, torch.Tensor] = {}
    offset = 0
    for state in stages:
        count = 0
        for key, value in state.items():
            match = _BLOCK_KEY.match(key)
            if match:
                index = int(match.group(1))
                count = max(count, index + 1)
                key = f"blocks.{offset + index}.{match.group(2)}"
            if key in merged:
                return ModelExport(
                    {f"stage{k}.{n}": v for k, sd in enumerate(stages) for n, v in sd.items()},
                    "pipeline-per-stage",
                )
            merged[key] = value
        offset += count
    return ModelExport(merged, "pipeline-merged")
