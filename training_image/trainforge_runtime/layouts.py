"""The four parallel layouts behind `ctx.parallelize(model)`.

* `data`: DistributedDataParallel.
* `fsdp`: FSDP2 `fully_shard`, one unit per block (if the model has `blocks`) plus the root.
* `tensor`: DTensor tensor parallel over a `tp` mesh dimension with the model's
  `tensor_parallel_plan()` (Colwise/Rowwise styles); when world > tensorParallel the `dp` mesh
  dimension is sharded with `fully_shard` on top (2-D FSDP + TP).
* `pipeline`: torch.distributed.pipelining. The model must implement
  `pipeline_stage(stage, num_stages) -> nn.Module`, returning the part that stage runs (first stage
  takes the inputs, last stage returns the logits). Stages run a GPipe schedule over
  `microbatches` (hyperparameter, default = pipelineStages); data-parallel replicas of a stage
  average gradients with an all-reduce. `ctx.forward_backward` trains through the schedule and
  `ctx.eval_loss` evaluates through it forward only, so trainers write one loop for all layouts.

Ranks are laid out with the model-parallel dimension innermost: rank = dp_rank * mp + mp_rank,
so tensor-parallel peers share a node when procsPerNode >= tensorParallel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
import torch.distributed as dist
from torch import nn

from trainforge_api.exitcodes import InvalidContextError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@runtime_checkable
class TensorParallelModel(Protocol):
    def tensor_parallel_plan(self) -> dict[str, Any]: ...


@runtime_checkable
class PipelineModel(Protocol):
    def pipeline_stage(self, stage: int, num_stages: int) -> nn.Module: ...


@dataclass
class Topology:
    """Where this rank sits: data-parallel index and its model-parallel (tp or pp) index."""

    layout: str
    rank: int
    world_size: int
    mp_size: int  # tensorParallel or pipelineStages (1 for data/fsdp)
    device: torch.device
    mesh: Any = None  # DeviceMesh ("dp", "tp"|"pp") or ("dp",)

    @property
    def dp_size(self) -> int:
        return self.world_size // self.mp_size

    @property
    def dp_rank(self) -> int:
        return self.rank // self.mp_size

    @property
    def mp_rank(self) -> int:
        return self.rank % self.mp_size

    @property
    def is_last_stage(self) -> bool:
        return self.layout != "pipeline" or self.mp_rank == self.mp_size - 1

    @property
    def is_first_stage(self) -> bool:
        return self.layout != "pipeline" or self.mp_rank == 0


def build_topology(
    layout: str, rank: int, world_size: int, tp: int, pp: int, device: torch.device
) -> Topology:
    """Create the device mesh for the layout (needs an initialised process group)."""
    from torch.distributed.device_mesh import init_device_mesh

    shape, names = mesh_shape(layout, world_size, tp, pp)
    topo = Topology(layout, rank, world_size, shape[-1] if len(shape) == 2 else 1, device)
    if dist.is_initialized():
        topo.mesh = init_device_mesh(device.type, shape, mesh_dim_names=names)
    return topo


def mesh_shape(
    layout: str, world_size: int, tp: int, pp: int
) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """The device mesh this runtime builds for a layout: ("dp",) for data and fsdp, ("dp", "tp")
    or ("dp", "pp") for tensor and pipeline. A degree the layout would not use, or one that does
    not divide the world, cannot become a mesh (the job's rules reject such specs at apply)."""
    own = {"tensor": tp, "pipeline": pp}.get(layout, 1)
    unused = {"tensorParallel": tp, "pipelineStages": pp}
    unused.pop({"tensor": "tensorParallel", "pipeline": "pipelineStages"}.get(layout, ""), None)
    ignored = [f"{k}={v}" for k, v in unused.items() if v != 1]
    if ignored:
        raise InvalidContextError(f"layout {layout} cannot use {', '.join(ignored)}")
    if layout in ("tensor", "pipeline") and own < 2:
        raise InvalidContextError(f"layout {layout} needs a model-parallel degree >= 2")
    if world_size % own:
        raise InvalidContextError(f"world size {world_size} is not a multiple of {own}")
    if layout == "tensor":
        return (world_size // own, own), ("dp", "tp")
    if layout == "pipeline":
        return (world_size // own, own), ("dp", "pp")
    return (world_size,), ("dp",)


def parallelize(
    model: nn.Module,
    topo: Topology,
    hyperparameters: dict[str, Any],
    loss_fn: LossFn | None = None,
) -> nn.Module:
    """Wrap or shard `model` for the topology's layout; returns what the trainer should call."""
    model = model.to(topo.device)
    if not dist.is_initialized():
        return model
    if topo.layout == "data":
        return _ddp(model, topo)
    if topo.layout == "fsdp":
        return _fsdp(model, topo.mesh["dp"])
    if topo.layout == "tensor":
        return _tensor(model, topo)
    if topo.layout == "pipeline":
        return _pipeline(model, topo, hyperparameters, loss_fn or _token_cross_entropy)
    raise InvalidContextError(f"unknown layout {topo.layout!r}")


def _ddp(model: nn.Module, topo: Topology) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    ids = [topo.device.index] if topo.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _fsdp(model: nn.Module, mesh: Any) -> nn.Module:
    from torch.distributed.fsdp import fully_shard

    for block in getattr(model, "blocks", []) or []:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def _tensor(model: nn.Module, topo: Topology) -> nn.Module:
    from torch.distributed.tensor.parallel import parallelize_module

    if not isinstance(model, TensorParallelModel):
        raise InvalidContextError(
            f"layout 'tensor' needs a model with tensor_parallel_plan(); "
            f"{type(model).__name__} has none: add one or use layout data/fsdp"
        )
    parallelize_module(model, topo.mesh["tp"], model.tensor_parallel_plan())
    if topo.dp_size > 1:
        _fsdp(model, topo.mesh["dp"])
    return model


class PipelinedModule(nn.Module):
    """One pipeline stage plus its schedule; `train_step` replaces forward+backward."""

    def __init__(self, stage_module: nn.Module, schedule: Any, topo: Topology) -> None:
        super().__init__()
        self.stage_module = stage_module
        self.schedule = schedule
        self.topo = topo

    def forward(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - guard
        raise RuntimeError("a pipelined model runs through ctx.forward_backward(), not forward()")

    def train_step(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor | None:
        """Run the schedule; the last stage returns the mean microbatch loss, others None."""
        loss = self._run_schedule(self.schedule.step, inputs, targets)
        if self.topo.dp_size > 1:
            _allreduce_grads(self.stage_module, self.topo.mesh["dp"].get_group())
        return loss

    def eval_step(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor | None:
        """Forward only, through the same schedule; the last stage returns the mean loss."""
        return self._run_schedule(self.schedule.eval, inputs, targets)

    def _run_schedule(
        self, run: Callable[..., Any], inputs: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor | None:
        """One pass of `run` (schedule.step or .eval) with what this stage feeds it: inputs on
        the first stage, targets on the last; the mean microbatch loss on the last stage."""
        losses: list[torch.Tensor] = []
        if self.topo.is_first_stage:
            run(inputs)
        elif self.topo.is_last_stage:
            run(target=targets, losses=losses)
        else:
            run()
        return torch.stack([loss.detach() for loss in losses]).mean() if losses else None


def _pipeline(model: nn.Module, topo: Topology, hp: dict[str, Any], loss_fn: LossFn) -> nn.Module:
    from torch.distributed.pipelining import PipelineStage, ScheduleGPipe

    if not isinstance(model, PipelineModel):
        raise InvalidContextError(
            f"layout 'pipeline' needs a model with pipeline_stage(stage, num_stages); "
            f"{type(model).__name__} has none: add one or use layout data/fsdp"
        )
    stage_module = model.pipeline_stage(topo.mp_rank, topo.mp_size).to(topo.device)
    stage = PipelineStage(
        stage_module, topo.mp_rank, topo.mp_size, topo.device, group=topo.mesh["pp"].get_group()
    )
    microbatches = int(hp.get("microbatches", topo.mp_size))
    schedule = ScheduleGPipe(stage, n_microbatches=microbatches, loss_fn=loss_fn)
    return PipelinedModule(stage_module, schedule, topo)


def _token_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


def _allreduce_grads(module: nn.Module, group: Any) -> None:
    """Average gradients over data-parallel replicas of one pipeline stage."""
    size = dist.get_world_size(group)
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, group=group)
            p.grad.div_(size)
