"""Character-level GPT on the text shipped in `trainforge_runtime/data/`, in any layout.

Every rank draws the same global batch from a seeded generator and keeps its data-parallel slice,
so data, fsdp and tensor layouts see identical data and follow the same loss trajectory.
Hyperparameters: steps, batch_size (global), seq_len, lr, n_layer, n_head, n_embd, seed,
microbatches (pipeline), eval_every, log_every.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

import trainforge_runtime
from trainforge_api.exitcodes import InvalidContextError
from trainforge_runtime.artifacts import dataset_fingerprint
from trainforge_runtime.baseline import unigram
from trainforge_runtime.models.gpt import GPT, GPTConfig
from trainforge_runtime.session import RuntimeContext


def load_corpus() -> str:
    """All bundled .txt files, in name order, as one string."""
    files = sorted(
        (
            f
            for f in resources.files("trainforge_runtime.data").iterdir()
            if f.name.endswith(".txt")
        ),
        key=lambda f: f.name,
    )
    return "\n".join(f.read_text(encoding="utf-8") for f in files)


class CharData:
    """Encodes the corpus and samples (input, target) windows reproducibly."""

    def __init__(self, text: str, seq_len: int, seed: int) -> None:
        self.vocab = sorted(set(text))
        index = {ch: i for i, ch in enumerate(self.vocab)}
        ids = torch.tensor([index[ch] for ch in text], dtype=torch.long)
        split = int(0.9 * len(ids))
        self.train, self.val = ids[:split], ids[split:]
        self.seq_len = seq_len
        self.gen = torch.Generator().manual_seed(seed)

    def batch(
        self, size: int, split: str = "train", gen: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        data = self.train if split == "train" else self.val
        starts = torch.randint(len(data) - self.seq_len - 1, (size,), generator=gen or self.gen)
        x = torch.stack([data[s : s + self.seq_len] for s in starts])
        y = torch.stack([data[s + 1 : s + 1 + self.seq_len] for s in starts])
        return x, y


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


def shard(t: torch.Tensor, ctx: RuntimeContext) -> torch.Tensor:
    """This rank's data-parallel slice of a global batch."""
    per = t.size(0) // ctx.dp_size
    return t[ctx.dp_rank * per : (ctx.dp_rank + 1) * per]


def check_hyperparameters(hp: dict[str, Any], ctx: RuntimeContext) -> None:
    batch = int(hp.get("batch_size", 8))
    micro = int(hp.get("microbatches", ctx.job.parallelism.pipeline_stages))
    if batch % ctx.dp_size:
        raise InvalidContextError(
            f"batch_size {batch} is not divisible by the {ctx.dp_size} data-parallel replicas"
        )
    if ctx.job.parallelism.layout == "pipeline" and (batch // ctx.dp_size) % micro:
        raise InvalidContextError(
            f"per-replica batch {batch // ctx.dp_size} is not divisible by microbatches {micro}"
        )
    tp = ctx.job.parallelism.tensor_parallel
    if int(hp.get("n_head", 2)) % tp:
        raise InvalidContextError(f"n_head must be divisible by tensorParallel={tp}")


def evaluate(model: nn.Module, data: CharData, ctx: RuntimeContext, batches: int = 4) -> float:
    """Mean val loss on fixed global batches, the same on every rank, in every layout.

    Collective: each data-parallel replica evaluates its slice (pipeline: forward-only schedule)."""
    gen = torch.Generator().manual_seed(1234)
    size = int(ctx.hyperparameters.get("batch_size", 8))
    losses = []
    for _ in range(batches):
        x, y = data.batch(size, "val", gen)
        x, y = shard(x, ctx).to(ctx.device), shard(y, ctx).to(ctx.device)
        losses.append(ctx.eval_loss(model, x, y, lm_loss))
    return sum(losses) / len(losses)


@dataclass
class Result:
    """What `finish()` needs besides the metrics: the model, its config and its tokenizer."""

    final: dict[str, float]
    model: nn.Module
    config: dict[str, Any]
    tokenizer: dict[str, Any]
    fingerprint: str


def train(ctx: RuntimeContext) -> Result:
    hp = ctx.hyperparameters
    check_hyperparameters(hp, ctx)
    steps, batch = int(hp.get("steps", 30)), int(hp.get("batch_size", 8))
    data = CharData(load_corpus(), int(hp.get("seq_len", 32)), int(hp.get("seed", 0)))
    config = GPTConfig.from_hyperparameters(len(data.vocab), hp)
    model = ctx.parallelize(ctx.warm_start(GPT(config)), lm_loss)
    opt = torch.optim.AdamW(model.parameters(), lr=float(hp.get("lr", 3e-3)), weight_decay=0.0)
    ctx.set_total_steps(steps)
    start = ctx.resume({"model": model, "optimizer": opt})
    log_every, eval_every = int(hp.get("log_every", 1)), int(hp.get("eval_every", 0))
    all_batches = (data.batch(batch) for _ in range(steps))  # drawn in order, so resume skips
    batches = (b for i, b in enumerate(all_batches) if i >= start)
    losses: list[float] = []
    for step, (x, y) in enumerate(ctx.timed(batches), start=start + 1):
        x, y = shard(x, ctx).to(ctx.device), shard(y, ctx).to(ctx.device)
        opt.zero_grad(set_to_none=True)
        loss = ctx.forward_backward(model, x, y, lm_loss)
        opt.step()
        metrics: dict[str, float] = {"lr": opt.param_groups[0]["lr"]}
        if step % log_every == 0 or step == steps:
            metrics["loss"] = ctx.mean_loss(loss)
            metrics["grad_norm"] = ctx.grad_norm(model)
            losses.append(metrics["loss"])
        if eval_every and step % eval_every == 0:
            ctx.set_phase("evaluating")
            metrics["val_loss"] = evaluate(model, data, ctx)
            ctx.set_phase("training")
        ctx.step_end(step, samples=x.size(0), tokens=x.numel(), **metrics)
    final = {"loss": losses[-1] if losses else math.nan, "val_loss": evaluate(model, data, ctx)}
    final.update(unigram(data.train.numpy(), data.val.numpy(), len(data.vocab)))
    if ctx.is_main:
        (ctx.artifacts_dir / "losses.json").write_text(json.dumps(losses))
    return Result(
        {k: v for k, v in final.items() if not math.isnan(v)},
        model,
        asdict(config),
        {"type": "char", "vocab": data.vocab},
        dataset_fingerprint(data.train, data.val),
    )


def main() -> None:
    ctx = trainforge_runtime.init()
    result = train(ctx)
    ctx.finish(
        result.final,
        model=result.model,  # collective: every rank takes part in gathering the weights
        model_config=result.config,
        tokenizer=result.tokenizer,
        dataset_fingerprint=result.fingerprint,
    )


if __name__ == "__main__":
    trainforge_runtime.run(main)
