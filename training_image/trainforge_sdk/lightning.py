"""`pl.Trainer(callbacks=[TrainforgeCallback()])`: a LightningModule's progress, logged metrics
(`self.log(...)`) and checkpoints reach trainforge (status.progress, /metrics, status.results).

Imports pytorch_lightning (or lightning.pytorch), so only scripts that use it load it; the SDK
core stays standard-library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

try:
    from lightning.pytorch import Callback
except ImportError:  # the older package name
    from pytorch_lightning import Callback  # type: ignore[no-redef, unused-ignore]

from trainforge_sdk import finish, report, report_checkpoint


def numbers(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Lightning's callback_metrics (0-d tensors or numbers) as floats."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError, RuntimeError):  # a non-scalar tensor
            continue
    return out


def _total(trainer: Any) -> int | None:
    try:
        total = trainer.estimated_stepping_batches
    except Exception:  # no dataloader length (iterable datasets)
        return None
    return int(total) if total not in (None, float("inf")) else None


class TrainforgeCallback(Callback):  # type: ignore[misc, unused-ignore]
    """Report each optimizer step, each checkpoint and the final metrics (global rank 0 only)."""

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.is_global_zero:
            metrics = numbers(trainer.callback_metrics)
            report(trainer.global_step, _total(trainer), metrics, epoch=trainer.current_epoch)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.is_global_zero and not trainer.sanity_checking:
            report(trainer.global_step, _total(trainer), numbers(trainer.callback_metrics))

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: Any) -> None:
        if trainer.is_global_zero:
            saver = getattr(trainer, "checkpoint_callback", None)
            where = getattr(saver, "dirpath", None) or trainer.default_root_dir
            report_checkpoint(where, step=trainer.global_step)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.is_global_zero:
            report(trainer.global_step, _total(trainer), numbers(trainer.callback_metrics))
            finish(metrics=numbers(trainer.callback_metrics))
