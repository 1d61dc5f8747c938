"""A plain DDP script run by the standalone launcher: it records what it saw (rank, world, the
all-reduced sum, hyperparameters, which trainforge packages it could import) and reports
progress through trainforge_sdk, which the launcher put on its PYTHONPATH."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.distributed as dist

import trainforge_sdk


def importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
t = torch.tensor([float(rank + 1)])
dist.all_reduce(t)
seen = {
    "rank": rank,
    "world": world,
    "localRank": int(os.environ["LOCAL_RANK"]),
    "localWorldSize": int(os.environ["LOCAL_WORLD_SIZE"]),
    "groupRank": int(os.environ["GROUP_RANK"]),
    "sum": t.item(),
    "hpEnv": os.environ.get("TRAINFORGE_HP_LR"),
    "hpFile": json.loads(Path(os.environ["TRAINFORGE_HP_FILE"]).read_text()),
    "importable": {
        name: importable(name)
        for name in ("trainforge_runtime", "trainforge_api", "pydantic", "prometheus_client")
    },
}
out = Path(os.environ["TRAINFORGE_RUN_DIR"]) / f"standalone-{rank}.json"
out.write_text(json.dumps(seen))
trainforge_sdk.report(step=5, total_steps=5, metrics={"loss": 0.25})
trainforge_sdk.finish(metrics={"val_accuracy": 0.75})
dist.destroy_process_group()
print(f"hello from rank {rank} of {world}", flush=True)
