"""A plain torchrun-style script: no trainforge imports, only the torch.distributed env contract."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
t = torch.tensor([float(rank + 1)])
dist.all_reduce(t)
out = Path(os.environ["TRAINFORGE_RUN_DIR"]) / f"plain-{rank}.txt"
out.write_text(f"{rank} {world} {os.environ['LOCAL_RANK']} {t.item()}")
dist.destroy_process_group()
print(f"hello from rank {rank} of {world}", flush=True)
