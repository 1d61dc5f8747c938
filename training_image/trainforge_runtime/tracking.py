"""MLflow experiment tracking from rank 0, when `spec.tracking.mlflow` is set.

One MLflow run per TrainingJob, not per attempt: the run is tagged with the job's UID and a gang
restart reattaches to it, so a resumed job keeps one continuous metric history. Tracking is a side
channel: a tracking-server hiccup is logged and training goes on (it never fails a job).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from trainforge_api.context import JobContext

log = logging.getLogger(__name__)

TAG_JOB_UID = "trainforge.job_uid"
TAG_JOB = "trainforge.job"
TAG_NAMESPACE = "trainforge.namespace"
_MAX_PARAM_LEN = 6000


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested hyperparameters as MLflow params: dotted keys, string values."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, f"{name}."))
        else:
            flat[name] = str(value)[:_MAX_PARAM_LEN]
    return flat


class MlflowTracker:
    """Logs params, metrics and artifacts to an MLflow tracking server (rank 0 only)."""

    def __init__(
        self,
        tracking_uri: str,
        experiment: str = "trainforge",
        *,
        run_name: str | None = None,
        job_uid: str = "",
        tags: Mapping[str, str] | None = None,
        rank: int = 0,
    ) -> None:
        self.enabled = rank == 0
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_name = run_name
        self.job_uid = job_uid
        self.tags = dict(tags or {})
        self.run_id: str | None = None
        self._client: Any = None
        self._warned = False

    @classmethod
    def from_context(cls, ctx: JobContext, rank: int) -> MlflowTracker | None:
        """A tracker when the job asks for MLflow, else None."""
        cfg = ctx.tracking.mlflow
        if cfg is None:
            return None
        return cls(
            cfg.tracking_uri,
            cfg.experiment,
            run_name=ctx.job.name,
            job_uid=ctx.job.uid,
            tags={TAG_JOB: ctx.job.name, TAG_NAMESPACE: ctx.job.namespace},
            rank=rank,
        )

    def start(self, params: Mapping[str, Any] | None = None) -> str | None:
        """Create (or, after a restart, reattach to) the job's run; returns its id."""
        if not self.enabled:
            return None
        # fail in seconds, not minutes, when the server is down (mlflow's default retries 7x)
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        from mlflow.tracking import MlflowClient

        self._client = MlflowClient(tracking_uri=self.tracking_uri)
        exp = self._client.get_experiment_by_name(self.experiment)
        exp_id = exp.experiment_id if exp else self._client.create_experiment(self.experiment)
        self.run_id = self._existing_run(exp_id)
        if self.run_id is None:
            tags = {**self.tags, **({TAG_JOB_UID: self.job_uid} if self.job_uid else {})}
            run = self._client.create_run(exp_id, tags=tags, run_name=self.run_name)
            self.run_id = run.info.run_id
            if params:
                self.log_params(params)
        log.info(
            "mlflow run %s in experiment %s at %s", self.run_id, self.experiment, self.tracking_uri
        )
        return self.run_id

    def _existing_run(self, exp_id: str) -> str | None:
        if not self.job_uid:
            return None
        runs = self._client.search_runs(
            [exp_id], filter_string=f"tags.`{TAG_JOB_UID}` = '{self.job_uid}'", max_results=1
        )
        return runs[0].info.run_id if runs else None

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in flatten_params(params).items()]
        self._call("log params", lambda: self._client.log_batch(self.run_id, params=items))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None]
        self._call("log metrics", lambda: self._client.log_batch(self.run_id, metrics=items))

    def log_artifacts(
        self, local_dir: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        self._call(
            "log artifacts",
            lambda: self._client.log_artifacts(self.run_id, str(local_dir), artifact_path),
        )

    def end(self, status: str = "FINISHED") -> None:
        """Close the run: FINISHED, FAILED or KILLED."""
        self._call("end run", lambda: self._client.set_terminated(self.run_id, status=status))

    def _call(self, what: str, fn: Any) -> None:
        if not self.enabled or self.run_id is None:
            return
        try:
            fn()
        except Exception as err:  # a tracking outage must not kill training
            level = logging.DEBUG if self._warned else logging.WARNING
            log.log(level, "mlflow %s failed (training continues): %s", what, err)
            self._warned = True


def start_tracker(ctx: JobContext, rank: int) -> MlflowTracker | None:
    """Rank 0's started tracker when the job asks for MLflow; None elsewhere, or when the
    tracking server cannot be reached (tracking is a side channel, never fatal)."""
    tracker = MlflowTracker.from_context(ctx, rank) if rank == 0 else None
    if tracker is None:
        return None
    try:
        tracker.start(ctx.hyperparameters)
    except Exception as exc:
        log.warning("mlflow tracking disabled: %s", exc)
        return None
    return tracker
