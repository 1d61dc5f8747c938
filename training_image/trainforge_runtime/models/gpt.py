"""A tiny GPT-style causal LM that supports all four layouts.

Why the shape matters: q, k and v are separate linears so Colwise sharding splits whole heads, and
attention infers the local head count from the tensor it gets, so the same code runs with full or
tensor-parallel weights. `blocks` is a ModuleList so FSDP wraps per block and pipeline stages take
contiguous slices of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    block_size: int = 32
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 32

    @classmethod
    def from_hyperparameters(cls, vocab_size: int, hp: dict[str, Any]) -> GPTConfig:
        return cls(
            vocab_size=vocab_size,
            block_size=int(hp.get("seq_len", 32)),
            n_layer=int(hp.get("n_layer", 2)),
            n_head=int(hp.get("n_head", 2)),
            n_embd=int(hp.get("n_embd", 32)),
        )


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.head_dim = cfg.n_embd // cfg.n_head
        self.q = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.k = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.v = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape

        def heads(y: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = y.view(b, t, -1, self.head_dim).transpose(1, 2)
            return out

        out = F.scaled_dot_product_attention(
            heads(self.q(x)), heads(self.k(x)), heads(self.v(x)), is_causal=True
        )
        merged: torch.Tensor = self.proj(out.transpose(1, 2).reshape(b, t, -1))
        return merged


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.proj(F.gelu(self.fc(x)))
        return out


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        out: torch.Tensor = x + self.mlp(self.ln2(x))
        return out


class GPT(nn.Module):
    """Token ids (B, T) -> logits (B, T, vocab). Stage slices may drop the embedding or head."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb: nn.Embedding | None = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos_emb: nn.Embedding | None = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f: nn.LayerNorm | None = nn.LayerNorm(cfg.n_embd)
        self.head: nn.Linear | None = nn.Linear(cfg.n_embd, cfg.vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tok_emb is not None and self.pos_emb is not None:
            pos = torch.arange(x.size(1), device=x.device)
            x = self.tok_emb(x) + self.pos_emb(pos)
        for block in self.blocks:
            x = block(x)
        if self.ln_f is not None and self.head is not None:
            x = self.head(self.ln_f(x))
        return x

    def pipeline_stage(self, stage: int, num_stages: int) -> GPT:
        """This model cut to stage `stage`: contiguous blocks; embeddings first, head last."""
        n = len(self.blocks)
        if num_stages > n:
            raise ValueError(f"cannot cut {n} blocks into {num_stages} stages: raise n_layer")
        bounds = [round(i * n / num_stages) for i in range(num_stages + 1)]
        self.blocks = nn.ModuleList(self.blocks[bounds[stage] : bounds[stage + 1]])
        if stage > 0:
            self.tok_emb = self.pos_emb = None
        if stage < num_stages - 1:
            self.ln_f = self.head = None
        return self

    def tensor_parallel_plan(self) -> dict[str, Any]:
        """Megatron-style plan: q/k/v and fc column-parallel, the projections row-parallel."""
        from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel

        plan: dict[str, Any] = {}
        for i in range(len(self.blocks)):
            for name in ("attn.q", "attn.k", "attn.v", "mlp.fc"):
                plan[f"blocks.{i}.{name}"] = ColwiseParallel()
            for name in ("attn.proj", "mlp.proj"):
                plan[f"blocks.{i}.{name}"] = RowwiseParallel()
        return plan
