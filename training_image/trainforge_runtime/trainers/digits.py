"""Digit classifier on scikit-learn's bundled `load_digits` (no download), layouts data or fsdp.
The data, split and scores come from `digits_data` (numpy; the same numbers, without importing
scikit-learn).

Stratified train/val/test split, early stopping on val loss (the best weights are restored), and a
final test accuracy, macro F1 and confusion matrix written to the artifacts directory.
Hyperparameters: epochs, batch_size (global), lr, hidden, patience, seed, weight_decay.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

import trainforge_runtime
from trainforge_api.exitcodes import InvalidContextError
from trainforge_runtime.artifacts import dataset_fingerprint
from trainforge_runtime.baseline import majority_class
from trainforge_runtime.session import RuntimeContext
from trainforge_runtime.trainers.digits_data import (
    confusion_matrix,
    f1_macro,
    load_digits,
    stratified_split,
)


@dataclass
class Split:
    x: torch.Tensor
    y: torch.Tensor


def load_splits(seed: int) -> tuple[Split, Split, Split]:
    """70/15/15 stratified split, features standardised with train statistics only."""
    x, y = load_digits()
    train, rest = stratified_split(y, test_size=0.3, seed=seed)
    x_train, x_rest, y_train, y_rest = x[train], x[rest], y[train], y[rest]
    val, test = stratified_split(y_rest, test_size=0.5, seed=seed)
    x_val, x_test, y_val, y_test = x_rest[val], x_rest[test], y_rest[val], y_rest[test]
    mean, std = x_train.mean(0), x_train.std(0)
    std[std < 1e-3] = 1.0  # pixels constant in train (always 0) must not blow up elsewhere

    def make(a: np.ndarray, b: np.ndarray) -> Split:
        return Split(torch.tensor((a - mean) / std, dtype=torch.float32), torch.tensor(b))

    return make(x_train, y_train), make(x_val, y_val), make(x_test, y_test)


def build_model(hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def epoch_batches(n: int, batch: int, seed: int) -> list[torch.Tensor]:
    """Global batches of indices; every rank computes the same permutation."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return [perm[i : i + batch] for i in range(0, n - batch + 1, batch)]


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, device: torch.device) -> tuple[float, np.ndarray]:
    logits = model(split.x.to(device))
    loss = float(F.cross_entropy(logits, split.y.to(device)))
    return loss, logits.argmax(1).cpu().numpy()


@dataclass
class Result:
    """What `finish()` needs: final metrics, confusion matrix, the model and its data."""

    final: dict[str, float]
    confusion: list[list[int]]
    model: nn.Module
    config: dict[str, Any]
    fingerprint: str


LABELS = [str(i) for i in range(10)]


def train(ctx: RuntimeContext) -> Result:
    """Train with early stopping (best val weights restored), then evaluate on test."""
    hp = ctx.hyperparameters
    if ctx.job.parallelism.layout not in ("data", "fsdp"):
        raise InvalidContextError("the digits trainer supports layouts data and fsdp only")
    seed, batch = int(hp.get("seed", 0)), int(hp.get("batch_size", 64))
    epochs, patience = int(hp.get("epochs", 30)), int(hp.get("patience", 5))
    if batch % ctx.dp_size:
        raise InvalidContextError(f"batch_size {batch} is not divisible by world {ctx.dp_size}")
    train_set, val_set, test_set = load_splits(seed)
    config = {"in_features": 64, "hidden": int(hp.get("hidden", 64)), "num_classes": 10}
    model = ctx.parallelize(ctx.warm_start(build_model(config["hidden"])))
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=float(hp.get("lr", 0.01)),
        weight_decay=float(hp.get("weight_decay", 0)),
    )
    steps_per_epoch = len(train_set.x) // batch
    ctx.set_total_steps(epochs * steps_per_epoch)
    per = batch // ctx.dp_size
    step = ctx.resume({"model": model, "optimizer": opt})
    best, best_state, bad = math.inf, None, 0
    for epoch in range(step // steps_per_epoch, epochs):
        todo = epoch_batches(len(train_set.x), batch, seed + epoch)[step % steps_per_epoch :]
        for idx in ctx.timed(todo):
            mine = idx[ctx.dp_rank * per : (ctx.dp_rank + 1) * per]
            x, y = train_set.x[mine].to(ctx.device), train_set.y[mine].to(ctx.device)
            opt.zero_grad(set_to_none=True)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            step += 1
            acc = float((logits.argmax(1) == y).float().mean())
            ctx.step_end(
                step,
                samples=per,
                loss=float(loss),
                accuracy=acc,
                epoch=epoch,
                grad_norm=ctx.grad_norm(model),
                lr=opt.param_groups[0]["lr"],
            )
        ctx.set_phase("evaluating")
        val_loss, val_pred = evaluate(model, val_set, ctx.device)
        val_acc = float((val_pred == val_set.y.numpy()).mean())
        ctx.log_metrics(step, val_loss=val_loss, val_accuracy=val_acc, epoch=epoch)
        ctx.set_phase("training")
        if val_loss < best - 1e-4:
            best, bad = val_loss, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    final, cm = test_report(model, test_set, ctx, best)
    final.update(majority_class(train_set.y.numpy(), test_set.y.numpy()))
    splits = (train_set, val_set, test_set)
    fingerprint = dataset_fingerprint(*(t for s in splits for t in (s.x, s.y)))
    return Result(final, cm, model, config, fingerprint)


def test_report(
    model: nn.Module, test: Split, ctx: RuntimeContext, val_loss: float
) -> tuple[dict[str, float], list[list[int]]]:
    """Accuracy, macro F1 and confusion matrix on the held-out test split."""
    ctx.set_phase("evaluating")
    test_loss, pred = evaluate(model, test, ctx.device)
    truth = test.y.numpy()
    final = {
        "test_accuracy": float((pred == truth).mean()),
        "test_f1_macro": f1_macro(truth, pred),
        "test_loss": test_loss,
        "val_loss": val_loss,
    }
    cm = confusion_matrix(truth, pred).tolist()
    if ctx.is_main:
        (ctx.artifacts_dir / "confusion_matrix.json").write_text(json.dumps(cm))
        (ctx.artifacts_dir / "metrics.json").write_text(json.dumps(final, indent=2))
    return final, cm


def main() -> None:
    ctx = trainforge_runtime.init()
    result = train(ctx)
    ctx.finish(
        result.final,
        model=result.model,  # collective: every rank takes part in gathering the weights
        model_config=result.config,
        labels=LABELS,
        dataset_fingerprint=result.fingerprint,
        confusion_matrix=result.confusion,
        class_names=LABELS,
    )


if __name__ == "__main__":
    trainforge_runtime.run(main)
