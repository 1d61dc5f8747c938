"""This process's place in the gang: ranks from env, backend and device, the process group and the
device mesh, and leaving them cleanly.

Kept apart because it is the only part of the runtime that blocks on other ranks while starting
and stopping; everything else asks it whether collectives are on and where tensors live.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from trainforge_api import exitcodes
from trainforge_api.context import ResolvedParallelism
from trainforge_runtime.config import env_int, free_port
from trainforge_runtime.layouts import Topology, build_topology

PG_TIMEOUT = dt.timedelta(seconds=int(os.environ.get("TRAINFORGE_PG_TIMEOUT", "600")))


def resolve_backend(requested: str) -> str:
    """`auto` means NCCL when this process can see a GPU, gloo otherwise."""
    if requested == "auto":
        return "nccl" if torch.cuda.is_available() else "gloo"
    if requested == "nccl" and not torch.cuda.is_available():
        raise exitcodes.InvalidContextError(
            "backend nccl needs a GPU but none is visible: set resources.gpus or backend: gloo"
        )
    return requested


def pick_device(backend: str, local_rank: int) -> torch.device:
    """NCCL ranks own the GPU of their local rank; gloo ranks compute on the CPU."""
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


@dataclass(frozen=True)
class GangMember:
    """Rank, world size and device of this process, read from the env the launcher sets."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device

    @classmethod
    def from_env(cls, requested_backend: str) -> GangMember:
        """Who this process is; nothing here waits for other ranks."""
        backend = resolve_backend(requested_backend)
        local_rank = env_int("LOCAL_RANK", 0)
        return cls(
            rank=env_int("RANK", 0),
            world_size=env_int("WORLD_SIZE", 1),
            local_rank=local_rank,
            backend=backend,
            device=pick_device(backend, local_rank),
        )

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def collective(self) -> bool:
        """Whether collectives reach other ranks (a joined group of more than one)."""
        return dist.is_initialized() and self.world_size > 1

    def join(self, parallelism: ResolvedParallelism) -> Topology:
        """Join the process group (blocks until every rank arrives) and build the layout's mesh."""
        if not dist.is_initialized():
            os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
            if "MASTER_PORT" not in os.environ:
                os.environ["MASTER_PORT"] = str(free_port())
            dist.init_process_group(
                self.backend, rank=self.rank, world_size=self.world_size, timeout=PG_TIMEOUT
            )
        return build_topology(
            parallelism.layout,
            self.rank,
            self.world_size,
            parallelism.tensor_parallel,
            parallelism.pipeline_stages,
            self.device,
        )

    def any_rank(self, flag: bool) -> bool:
        """True on every rank when `flag` is true on at least one (collective)."""
        if not self.collective:
            return flag
        value = torch.tensor(1.0 if flag else 0.0, device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def leave(self) -> None:
        """Wait for every rank, then leave the process group (a no-op when not joined)."""
        if dist.is_initialized():
            try:
                dist.barrier()
            finally:
                dist.destroy_process_group()
