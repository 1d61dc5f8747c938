"""Rank 0's end-of-job outputs: the model bundle with `metadata.json`, the HTML training report,
and the upload of the artifacts directory.

They run once, after training, on rank 0 alone, and only write files: nothing here takes part
in a collective, so none of it can hang the gang.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainforge_api import exitcodes
from trainforge_api.context import JobContext
from trainforge_api.termination import json_safe
from trainforge_api.trainingjob import ArtifactSummary
from trainforge_runtime import profiling
from trainforge_runtime.artifacts import (
    ArtifactUploadError,
    build_model_bundle,
    upload_artifacts,
    write_metadata,
)
from trainforge_runtime.export import ModelExport
from trainforge_runtime.report import render_report

log = logging.getLogger("trainforge")


@dataclass(frozen=True)
class ModelCard:
    """What a trainer tells `finish()` about its model besides the weights."""

    config: dict[str, Any] | None = None
    labels: list[str] | None = None
    tokenizer: dict[str, Any] | str | os.PathLike[str] | None = None
    dataset_fingerprint: str | None = None


@dataclass(frozen=True)
class RunFacts:
    """Who trained, where and for how long: the same on the bundle and on the report."""

    job: JobContext
    rank: int
    world_size: int
    attempt: int
    duration_seconds: float


def split_metrics(final: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Final metrics grouped by prefix: `test_*`, `val_*`, `baseline_*` (the trainer's own
    baseline on the same split, kept whole: `baseline.test_accuracy`), the rest is train."""
    out: dict[str, dict[str, float]] = {"train": {}, "val": {}, "test": {}}
    for key, value in final.items():
        split, _, name = key.partition("_")
        if split == "baseline" and name:
            out.setdefault("baseline", {})[name] = value
        elif split in ("val", "test") and name:
            out[split][name] = value
        else:
            out["train"][key.removeprefix("train_")] = value
    return out


def write_bundle(
    artifacts_dir: Path,
    run: RunFacts,
    export: ModelExport | None,
    card: ModelCard,
    final_metrics: Mapping[str, float],
    hyperparameters: Mapping[str, Any],
) -> None:
    """`model/` (weights, config, labels/tokenizer) and `metadata.json` in `artifacts_dir`."""
    extra: dict[str, Any] = {"job": run.job.job.name, "attempt": run.attempt}
    if export is not None:
        build_model_bundle(
            export.state,
            artifacts_dir / "model",
            {**(card.config or {}), "stateDict": export.kind},
            labels=card.labels,
            tokenizer=card.tokenizer,
        )
        extra["modelStateDict"] = export.kind
        extra["modelDir"] = "model"
    write_metadata(
        artifacts_dir,
        hyperparameters=hyperparameters,
        metrics=json_safe(split_metrics(final_metrics)),
        dataset_fingerprint=card.dataset_fingerprint,
        image=run.job.image,
        layout=run.job.parallelism.layout,
        world_size=run.world_size,
        duration_seconds=run.duration_seconds,
        extra=extra,
    )


def write_report(
    artifacts_dir: Path,
    run: RunFacts,
    history: Mapping[str, list[tuple[int, float]]],
    findings: list[dict[str, Any]],
    final_metrics: Mapping[str, float],
    confusion_matrix: Any = None,
    class_names: list[str] | None = None,
) -> None:
    """The HTML report is a convenience: failing to draw it never fails the job."""
    profile = profiling.summary_path(artifacts_dir / "profile", run.rank)
    job = run.job
    try:
        render_report(
            artifacts_dir / "report.html",
            history,
            confusion_matrix=confusion_matrix,
            profile_summary=json.loads(profile.read_text()) if profile.exists() else None,
            findings=findings,
            metadata={
                "job": f"{job.job.namespace}/{job.job.name}",
                "layout": job.parallelism.layout,
                "world size": run.world_size,
                "attempt": run.attempt,
                **{f"final {k}": round(v, 5) for k, v in final_metrics.items()},
            },
            class_names=class_names,
            scores=final_metrics,
            champion=champion_metrics(),
        )
    except Exception as exc:
        log.warning("training report not written: %s", exc)


CHAMPION_ENV = "TRAINFORGE_CHAMPION_METRICS"  # set by a TrainingSchedule on its runs


def champion_metrics() -> dict[str, float] | None:
    """The current champion's scores ({metric: value}) a TrainingSchedule passed to this run."""
    try:
        raw = json.loads(os.environ.get(CHAMPION_ENV) or "null")
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    return {str(k): float(v) for k, v in raw.items() if isinstance(v, int | float)}


def upload(artifacts_dir: Path, job: JobContext) -> ArtifactSummary | None:
    """Upload to `artifacts.uri` (None without one); a failed upload exits 66."""
    uri = job.artifacts.uri
    if not uri:
        return None
    try:
        result = upload_artifacts(
            artifacts_dir,
            uri,
            endpoint=job.artifacts.s3_endpoint,
            retries=job.artifacts.upload_retries,
        )
    except ArtifactUploadError as exc:
        raise exitcodes.RuntimeExit(exitcodes.UPLOAD_FAILED, str(exc)) from exc
    return ArtifactSummary(uri=result.uri, files=result.files, bytes=result.bytes)
