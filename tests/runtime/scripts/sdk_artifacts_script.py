"""A plain 2-rank script that reports through trainforge_sdk and writes its model file to
artifacts_dir() from rank 0, as a user's own script would."""

from __future__ import annotations

import torch.distributed as dist

import trainforge_sdk as tf

dist.init_process_group("gloo")
if dist.get_rank() == 0:
    (tf.artifacts_dir() / "model.txt").write_text("weights")
    tf.report(step=3, total_steps=3, metrics={"accuracy": 0.9})
    tf.finish()
dist.barrier()
dist.destroy_process_group()
