"""The per-rank summary file: each worker writes one when it stops, and its launcher turns the
lowest local rank's into the pod's termination message (trainforge_api.termination has the format).

A file in the shared run directory is the hand-over because the worker may die in ways that leave
no other channel; this module is the one place that names it, for both sides.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainforge_api.termination import Obj, rank_summary, strict_dumps
from trainforge_api.trainingjob import ArtifactSummary
from trainforge_runtime.progress import ProgressTracker

_NAME = "summary-rank{rank}.json"


def summary_path(run_dir: Path, rank: int) -> Path:
    return run_dir / _NAME.format(rank=rank)


def summarize(
    exit_reason: str,
    step: int,
    final_metrics: Mapping[str, float],
    findings: list[dict[str, Any]],
    progress: ProgressTracker | None,
    artifacts: ArtifactSummary | None = None,
    message: str = "",
) -> Obj:
    """A rank's summary: its final metrics, else the last ones rank 0 reported on /progress."""
    return rank_summary(
        exit_reason,
        step=step,
        metrics=dict(final_metrics) or (dict(progress.metrics) if progress else {}),
        findings=findings,
        total_steps=progress.total_steps if progress else None,
        resumed_from_step=progress.resumed_from_step if progress else None,
        artifacts=artifacts,
        message=message,
    )


def write_summary(run_dir: Path, rank: int, summary: Obj) -> Obj:
    """Write `summary` (from `summarize`) as strict JSON, where the launcher looks; returns it."""
    summary_path(run_dir, rank).write_text(strict_dumps(summary))
    return summary


def read_first_summary(run_dir: Path, ranks: range) -> Obj:
    """The summary of the lowest of `ranks` that wrote one, or {} if none did."""
    for rank in ranks:
        try:
            return dict(json.loads(summary_path(run_dir, rank).read_text()))
        except (OSError, ValueError):
            continue
    return {}


def clear_summaries(run_dir: Path) -> None:
    """Remove a previous attempt's summaries so a crash is never reported with stale ones."""
    for stale in run_dir.glob(_NAME.format(rank="*")):
        stale.unlink()
