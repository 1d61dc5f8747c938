"""Runtime overhead: the same DDP model and data, bare torch loop vs the trainforge runtime loop.

Both loops run in the same worker processes (gloo on CPU, or NCCL with `--device cuda`) in short
alternating blocks, so machine load hits both alike; the reported ratio is the median over blocks
of runtime/bare block-median step time. The runtime loop uses `ctx.timed`, `ctx.forward_backward`
and `ctx.step_end` with the metrics server on, logging the loss every `--log-every` steps. The cost
of the per-step bookkeeping alone (`step_end_seconds`) is measured too: it is far less noisy.
Target: runtime/bare step-time ratio <= 1.03. Writes bench/results/runtime-overhead.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import socket
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

TARGET_RATIO = 1.03
RESULTS = Path(__file__).parent / "results" / "runtime-overhead.json"


def make_model(width: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(256, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10)
    )


def make_batches(
    n: int, batch: int, device: torch.device
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [
        (
            torch.randn(batch, 256, generator=g).to(device),
            torch.randint(0, 10, (batch,), generator=g).to(device),
        )
        for _ in range(n)
    ]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class BareLoop:
    """Plain torch DDP: what a user writes without trainforge."""

    def __init__(self, args: argparse.Namespace, device: torch.device) -> None:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        self.model = DistributedDataParallel(make_model(args.width).to(device), device_ids=ids)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01)
        self.loss_fn = nn.CrossEntropyLoss()
        self.args, self.device, self.step = args, device, 0

    def run(self, batches: list[Any]) -> list[float]:
        times = []
        t0 = time.perf_counter()
        for x, y in batches:
            self.step += 1
            self.opt.zero_grad(set_to_none=True)
            loss = self.loss_fn(self.model(x), y)
            loss.backward()
            self.opt.step()
            if self.step % self.args.log_every == 0:
                float(loss.detach())
            sync(self.device)
            t1 = time.perf_counter()
            times.append(t1 - t0)
            t0 = t1
        return times


class RuntimeLoop:
    """The same loop through the trainforge runtime (metrics server, progress, step hooks)."""

    def __init__(self, args: argparse.Namespace, ctx: Any) -> None:
        self.model = ctx.parallelize(make_model(args.width))
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01)
        self.loss_fn = nn.CrossEntropyLoss()
        self.args, self.ctx, self.step = args, ctx, 0

    def run(self, batches: list[Any]) -> list[float]:
        ctx, times = self.ctx, []
        t0 = time.perf_counter()
        for x, y in ctx.timed(batches):
            self.step += 1
            self.opt.zero_grad(set_to_none=True)
            loss = ctx.forward_backward(self.model, x, y, self.loss_fn)
            self.opt.step()
            metrics = {"loss": float(loss)} if self.step % self.args.log_every == 0 else {}
            ctx.step_end(self.step, samples=x.size(0), **metrics)
            sync(ctx.device)
            t1 = time.perf_counter()
            times.append(t1 - t0)
            t0 = t1
        return times


def worker(rank: int, args: argparse.Namespace, port: int, queue: Any) -> None:
    from trainforge_api.context import JobContext
    from trainforge_runtime.session import RuntimeContext

    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(args.world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        TRAINFORGE_RUN_DIR=str(Path(args.tmp) / "run"),
    )
    torch.set_num_threads(args.threads)
    backend = "nccl" if args.device == "cuda" else "gloo"
    job = JobContext.model_validate(
        {
            "job": {"name": "bench", "namespace": "bench"},
            "command": ["python"],
            "parallelism": {"layout": "data", "procsPerNode": args.world, "backend": backend},
            "metrics": {"enabled": True, "port": 0},
            "hyperparameters": {"seed": 0},
        }
    )
    ctx = RuntimeContext(job)
    ctx.set_total_steps(args.blocks * args.block_steps)
    batches = make_batches(args.block_steps, args.batch, ctx.device)
    loops = {"bare": BareLoop(args, ctx.device), "runtime": RuntimeLoop(args, ctx)}
    for loop in loops.values():  # warm-up, not measured
        loop.run(batches[: args.warmup])
    blocks: dict[str, list[float]] = {"bare": [], "runtime": []}
    for i in range(args.blocks):
        # alternate which mode goes first so drifting machine load hits both alike
        order = ("bare", "runtime") if i % 2 == 0 else ("runtime", "bare")
        for name in order:
            dist.barrier()
            blocks[name].append(statistics.median(loops[name].run(batches)))
    hook_seconds = time_step_end(ctx, loops["runtime"].step, args.log_every)
    if rank == 0:
        queue.put({**blocks, "step_end_seconds": hook_seconds})
    ctx.close()


def time_step_end(ctx: Any, start: int, log_every: int, calls: int = 300) -> float:
    """Mean cost of the runtime's per-step bookkeeping alone (timed(), step_end())."""
    dist.barrier()
    t0 = time.perf_counter()
    for i, _ in enumerate(ctx.timed(range(calls)), start=start + 1):
        metrics = {"loss": 1.0} if i % log_every == 0 else {}
        ctx.step_end(i, samples=64, **metrics)
    return (time.perf_counter() - t0) / calls


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _quantiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return ordered[len(ordered) // 10], ordered[(9 * len(ordered)) // 10]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--world", type=int, default=2)
    p.add_argument("--blocks", type=int, default=30, help="alternating measured blocks per mode")
    p.add_argument("--block-steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import tempfile

    if args.device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no GPU visible")
        args.world = min(args.world, torch.cuda.device_count())
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = tmp
        mp.spawn(worker, args=(args, free_port(), queue), nprocs=args.world, join=True)
    blocks = queue.get()
    hook = blocks.pop("step_end_seconds")
    paired = [r / b for r, b in zip(blocks["runtime"], blocks["bare"], strict=True)]
    bare, runtime = statistics.median(blocks["bare"]), statistics.median(blocks["runtime"])
    ratio = statistics.median(paired)
    result = {
        "benchmark": "runtime-overhead",
        "device": args.device,
        "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None,
        "world_size": args.world,
        "blocks": args.blocks,
        "steps_per_block": args.block_steps,
        "model": f"MLP 256-{args.width}-{args.width}-10, batch {args.batch}/rank, DDP",
        "bare_step_seconds": round(bare, 6),
        "runtime_step_seconds": round(runtime, 6),
        "ratio": round(ratio, 4),
        "ratio_method": "median over blocks of runtime/bare block-median step time "
        "(blocks alternate, so machine load hits both modes alike)",
        "paired_ratio_p10_p90": [round(q, 4) for q in _quantiles(paired)],
        "step_end_seconds": round(hook, 7),
        "step_end_share_of_bare_step": round(hook / bare, 5),
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio <= TARGET_RATIO,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> None:
    result = run(parse_args(argv))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
