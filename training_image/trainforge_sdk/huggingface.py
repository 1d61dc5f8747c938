"""`transformers.Trainer(..., callbacks=[TrainforgeCallback()])`: the Trainer's progress, logged
metrics and checkpoints reach trainforge (status.progress, /metrics, status.results).

Imports transformers, so it is only loaded by scripts that use it; the SDK core stays
standard-library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from trainforge_sdk import finish, report, report_checkpoint


def numbers(logs: Mapping[str, Any] | None) -> dict[str, float]:
    """The numeric entries of a log dict (the Trainer also logs strings and lists)."""
    out: dict[str, float] = {}
    for key, value in (logs or {}).items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = float(value)
    return out


class TrainforgeCallback(TrainerCallback):  # type: ignore[misc, unused-ignore]
    """Report each logging step, each saved checkpoint and the final metrics (rank 0 only)."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            report(step=state.global_step, total_steps=state.max_steps or None)

    def on_log(
        self,
        args: Any,
        state: Any,
        control: Any,
        logs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero:
            return
        metrics = numbers(logs)
        self._last.update(metrics)
        epoch = int(state.epoch) if state.epoch is not None else None
        report(state.global_step, state.max_steps or None, metrics, epoch=epoch)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            report_checkpoint(path, step=state.global_step)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            report(state.global_step, state.max_steps or None)
            finish(metrics=self._last)
