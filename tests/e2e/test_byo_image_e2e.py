"""On kind: your own code in your own image.

* A plain DDP script (no trainforge import) in an image with Python and torch but no trainforge
  ($PLAIN_IMAGE, hack/images/torch-plain.Dockerfile) runs 2 nodes x 2 processes through the
  standalone launcher that the `trainforge-launcher` init container brings, and every rank sees
  world size 4. The script also proves, inside the pod, that trainforge is not importable, and
  reports through trainforge_sdk (brought by the launcher) so status.results holds its numbers.
* A torchrun command is rejected at `kubectl apply` with a message that says what to write.
"""

from __future__ import annotations

import json
from typing import Any

from tf_kind import KindCluster

PLAIN_IMAGE = "trainforge/torch-plain:0.1.0"
SCRIPT = """
import importlib.util, os
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

missing = [m for m in ("trainforge_runtime", "trainforge_api", "pydantic")
           if importlib.util.find_spec(m) is None]
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
print(f"rank {rank} of world {world}, local rank {os.environ['LOCAL_RANK']}, "
      f"lr {os.environ['TRAINFORGE_HP_LR']}, not importable: {','.join(missing)}", flush=True)
torch.manual_seed(rank)
model = DDP(torch.nn.Linear(1, 1))
opt = torch.optim.SGD(model.parameters(), lr=float(os.environ["TRAINFORGE_HP_LR"]))
for step in range(50):
    x = torch.rand(32, 1)
    loss = torch.nn.functional.mse_loss(model(x), 3 * x + 1)
    opt.zero_grad()
    loss.backward()
    opt.step()
import trainforge_sdk
trainforge_sdk.report(step=50, total_steps=50, metrics={"loss": loss.item()})
trainforge_sdk.finish(metrics={"world_size": world})
dist.destroy_process_group()
"""


def plain_job(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "trainforge.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "image": PLAIN_IMAGE,
            "command": ["python", "-c", SCRIPT],
            "hyperparameters": {"lr": 0.1},
            "parallelism": {"nodes": 2, "procsPerNode": 2, "backend": "gloo"},
            "resources": {"cpu": "500m", "memory": "2Gi"},  # two ranks, each importing torch
            "runPolicy": {"maxRestarts": 0, "maxPendingSeconds": 600},
            "metrics": {"lingerSeconds": 0},  # nothing here reads Prometheus: 15 s less a pod
            **spec,
        },
    }


def test_plain_ddp_in_a_torch_only_image_sees_world_4(kind_cluster: KindCluster) -> None:
    name = "byo-plain-e2e"
    kind_cluster.recreate_job(plain_job(name))
    status = kind_cluster.wait_job(name, timeout=600)
    assert status["phase"] == "Succeeded", json.dumps(status)[:3000]
    assert status["results"]["world_size"] == 4, status
    pods = kind_cluster.job_pods(name)
    assert len(pods) == 2
    seen = ""
    for pod in pods:
        (init,) = pod["status"]["initContainerStatuses"]
        assert init["name"] == "trainforge-launcher"
        assert init["state"]["terminated"]["exitCode"] == 0, init
        (worker,) = pod["spec"]["containers"]
        assert (worker["image"], worker["command"]) == (
            PLAIN_IMAGE,
            ["python3", "/var/trainforge/launcher"],
        )
        seen += kind_cluster.kubectl("logs", pod["metadata"]["name"], check=True).stdout
    for rank in range(4):
        line = (
            f"[node{rank // 2}/rank{rank}]: rank {rank} of world 4, local rank {rank % 2}, "
            "lr 0.1, not importable: trainforge_runtime,trainforge_api,pydantic"
        )
        assert line in seen, seen[-3000:]


def test_torchrun_is_rejected_at_apply_with_what_to_write(kind_cluster: KindCluster) -> None:
    for command in (
        ["torchrun", "--nnodes=2", "--nproc-per-node=2", "train.py"],
        ["python", "-m", "torch.distributed.run", "--nproc-per-node=2", "train.py"],
    ):
        job = plain_job("byo-torchrun-e2e", command=command)
        applied = kind_cluster.apply(job)
        assert applied.returncode != 0, applied.stdout
        assert "do not start torchrun" in applied.stderr, applied.stderr
        assert "write command: [python, train.py]" in applied.stderr, applied.stderr
        assert "set spec.parallelism.nodes and procsPerNode" in applied.stderr, applied.stderr
    gone = kind_cluster.kubectl("get", "tj", "byo-torchrun-e2e")
    assert gone.returncode != 0, "a rejected job was stored"
