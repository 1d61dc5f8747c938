"""trainforge_sdk: tell trainforge how a training script is doing, from any script or image.

Standard library only (Python 3.10+), one file: it works in an image that has torch but no
trainforge, and the launcher copies it there. Calls are cheap and safe everywhere: outside a
trainforge job, or on any rank but 0, they do nothing but remember the values.

    from trainforge_sdk import report, finish
    for step in range(1, total + 1):
        loss = train_step()
        report(step=step, total_steps=total, metrics={"loss": loss})
    finish(metrics={"val_accuracy": acc})

Rank 0's reports go to a small JSON file in `$TRAINFORGE_RUN_DIR` that the pod's launcher serves
on `/progress` and `/metrics` (so `status.progress` and Prometheus see them) and turns into the
pod's termination message when the script exits (so `status.results` holds the final metrics).
"""

from __future__ import annotations

import atexit
import json
import math
import os
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "artifacts_dir",
    "checkpoint_dir",
    "finish",
    "hyperparameters",
    "is_rank_zero",
    "report",
    "report_checkpoint",
]

# The env contract (docs/byo-code.md); the launcher sets these for every rank.
ENV_RUN_DIR = "TRAINFORGE_RUN_DIR"
ENV_HP_FILE = "TRAINFORGE_HP_FILE"
ENV_HP_PREFIX = "TRAINFORGE_HP_"
ENV_CHECKPOINT_DIR = "TRAINFORGE_CHECKPOINT_DIR"
PROGRESS_FILE = "sdk-progress.json"  # the launcher reads it (trainforge_runtime.podserver)
MIN_WRITE_INTERVAL_S = 0.5  # a report per step is fine; the file is rewritten at most this often

_lock = threading.Lock()
_state: dict[str, Any] = {
    "step": 0,
    "totalSteps": None,
    "epoch": None,
    "metrics": {},
    "finalMetrics": None,
    "finished": False,
    "checkpoint": None,
    "updatedAt": None,
}
_last_write = 0.0


def is_rank_zero() -> bool:
    """Global rank 0 (RANK unset counts as 0: a single process)."""
    return os.environ.get("RANK", "0") in ("0", "")


def report(
    step: int,
    total_steps: int | None = None,
    metrics: Mapping[str, float] | None = None,
    epoch: int | None = None,
) -> None:
    """Record that optimizer step `step` finished, with its metrics (merged into the last known
    values; names like loss, val_loss, accuracy, lr also become Prometheus gauges)."""
    with _lock:
        _state["step"] = int(step)
        if total_steps is not None:
            _state["totalSteps"] = int(total_steps)
        if epoch is not None:
            _state["epoch"] = int(epoch)
        _state["metrics"].update(_numbers(metrics or {}))
    _flush(force=False)
    _flush_at_exit()


def report_checkpoint(path: str | os.PathLike[str], step: int | None = None) -> None:
    """Record that a checkpoint was written (shown on /progress and in the final summary)."""
    with _lock:
        at = _state["step"] if step is None else int(step)
        _state["checkpoint"] = {"path": str(path), "step": at}
    _flush(force=True)


def finish(metrics: Mapping[str, float] | None = None) -> None:
    """The run is over: `metrics` become the job's `status.results`. A run that stops before
    `total_steps` (early stopping) is reported as stopped early at its last step, not as 40%."""
    with _lock:
        _state["finalMetrics"] = {**_state["metrics"], **_numbers(metrics or {})}
        _state["finished"] = True
    _flush(force=True)


def hyperparameters() -> dict[str, Any]:
    """The job's hyperparameters, typed: the JSON file when there is one, else the
    TRAINFORGE_HP_<NAME> env values (strings, names lower-cased)."""
    path = os.environ.get(ENV_HP_FILE)
    if path and Path(path).is_file():
        return dict(json.loads(Path(path).read_text()))
    skip = {ENV_HP_FILE}
    return {
        k[len(ENV_HP_PREFIX) :].lower(): v
        for k, v in os.environ.items()
        if k.startswith(ENV_HP_PREFIX) and k not in skip
    }


def artifacts_dir() -> Path:
    """Where to put files that outlive the pod (model, plots): `$TRAINFORGE_RUN_DIR/artifacts`,
    or ./artifacts outside a job."""
    base = os.environ.get(ENV_RUN_DIR)
    path = Path(base) / "artifacts" if base else Path("artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def checkpoint_dir() -> Path:
    """Where to write checkpoints: `$TRAINFORGE_CHECKPOINT_DIR` (a mounted volume), else
    `$TRAINFORGE_RUN_DIR/checkpoints`, else ./checkpoints."""
    explicit = os.environ.get(ENV_CHECKPOINT_DIR)
    base = os.environ.get(ENV_RUN_DIR)
    if explicit:
        path = Path(explicit)
    else:
        path = Path(base) / "checkpoints" if base else Path("checkpoints")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _numbers(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    """Floats, with NaN/inf as None (strict JSON) and anything that is not a number dropped
    (a tensor works: float() calls its .item())."""
    out: dict[str, float | None] = {}
    for key, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        out[str(key)] = number if math.isfinite(number) else None
    return out


_exit_hook = False


def _flush_at_exit() -> None:
    """Once anything was reported, the last values reach the file even if the script ends
    between two throttled writes without calling finish()."""
    global _exit_hook
    if not _exit_hook:
        _exit_hook = True
        atexit.register(_flush, True)


def _flush(force: bool) -> None:
    """Rank 0 rewrites the progress file atomically (rename), at most every 0.5 s unless forced."""
    global _last_write
    run_dir = os.environ.get(ENV_RUN_DIR)
    if not run_dir or not is_rank_zero():
        return
    now = time.monotonic()
    if not force and now - _last_write < MIN_WRITE_INTERVAL_S:
        return
    with _lock:
        _state["updatedAt"] = time.time()
        text = json.dumps(_state, allow_nan=False)
        _last_write = now
    path = Path(run_dir) / PROGRESS_FILE
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".sdk-progress-")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
