"""A plain script that reports through trainforge_sdk only (stdlib SDK, no trainforge_runtime),
holds twice so the test can read /progress before and after the first report, and stops early
at step 4 of 10."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch.distributed as dist

import trainforge_sdk as tf

dist.init_process_group("gloo")
rank = dist.get_rank()
run_dir = Path(os.environ["TRAINFORGE_RUN_DIR"])


def hold(name: str) -> None:
    (run_dir / f"{name}-{rank}").write_text("")
    while not (run_dir / f"go-{name}").exists():
        time.sleep(0.1)


hold("before")
for step in range(1, 5):
    tf.report(step=step, total_steps=10, metrics={"loss": 1.0 / step, "lr": 0.1}, epoch=0)
tf.report_checkpoint(tf.checkpoint_dir() / "step-4.pt")
hold("after")
tf.finish(metrics={"val_accuracy": 0.75})
dist.destroy_process_group()
