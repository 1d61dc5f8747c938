"""Training-loop calls that mean the same in every layout: one forward and backward, an evaluation
loss, the global loss and the gradient norm.

They live beside layouts.py rather than in it because they are what a trainer calls each step on
the model `parallelize` returned, and they must agree across ranks however the model was split.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from trainforge_runtime.layouts import LossFn, PipelinedModule, Topology


def forward_backward(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn
) -> torch.Tensor | None:
    """Forward and backward in any layout; this rank's loss (None off the last stage)."""
    if isinstance(model, PipelinedModule):
        return model.train_step(inputs, targets)
    loss = loss_fn(model(inputs), targets)
    loss.backward()  # type: ignore[no-untyped-call]
    return loss.detach()


@torch.no_grad()
def eval_loss(
    topo: Topology, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn
) -> float:
    """Forward-only loss of this rank's slice of a batch, averaged like `mean_loss` (collective)."""
    if isinstance(model, PipelinedModule):
        return mean_loss(topo, model.eval_step(inputs, targets))
    return mean_loss(topo, loss_fn(model(inputs), targets))


def mean_loss(topo: Topology, loss: torch.Tensor | None) -> float:
    """The global-batch loss on every rank (averaged over replicas; pipeline: last stages)."""
    value = torch.zeros((), device=topo.device) if loss is None else loss.detach().float()
    if not dist.is_initialized() or topo.world_size == 1:
        return float(value)
    dist.all_reduce(value)
    holders = topo.dp_size if topo.layout == "pipeline" else topo.world_size
    return float(value) / holders


def grad_norm(topo: Topology, model: nn.Module) -> float:
    """Global L2 norm of the gradients, correct for sharded (DTensor) and staged params."""
    from torch.distributed.tensor import DTensor

    total = torch.zeros((), device=topo.device)
    for p in model.parameters():
        if p.grad is None:
            continue
        g = p.grad.full_tensor() if isinstance(p.grad, DTensor) else p.grad
        total += g.detach().float().pow(2).sum()
    if topo.layout == "pipeline" and dist.is_initialized():
        dist.all_reduce(total, group=topo.mesh["pp"].get_group())
    return float(total.sqrt())
