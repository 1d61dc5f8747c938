"""Where a rank's numbers go: Prometheus gauges behind `/metrics`, rank 0's `/progress`, the
history the training report draws, and MLflow.

One `publish` feeds all of them, so a metric logged anywhere in the loop shows up the same way
on every channel; the HTTP server's life (start, linger, stop) is here too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path

from trainforge_api.context import JobContext
from trainforge_runtime.config import ENV_METRICS_PORT, ENV_RUN_DIR, env_int
from trainforge_runtime.metrics import MetricsServer, WorkerMetrics
from trainforge_runtime.podserver import publish_worker_port
from trainforge_runtime.progress import ProgressTracker
from trainforge_runtime.steps import StepTiming
from trainforge_runtime.tracking import MlflowTracker, start_tracker

log = logging.getLogger("trainforge")

REPORTED_KEYS = frozenset(
    {"loss", "val_loss", "accuracy", "val_accuracy", "lr", "grad_norm", "samples_per_second"}
)


class Telemetry:
    """This rank's metric channels; progress, history and MLflow exist on rank 0 only."""

    def __init__(self, job: JobContext, rank: int) -> None:
        self.job = job
        self.rank = rank
        self.metrics = WorkerMetrics(job.job.name, job.job.namespace, rank)
        self.progress = ProgressTracker() if rank == 0 else None
        self.history: dict[str, list[tuple[int, float]]] = {}
        self.tracker: MlflowTracker | None = None
        self._server: MetricsServer | None = None

    @property
    def port(self) -> int | None:
        """The port `/metrics` listens on, None while it is not served."""
        return self._server.port if self._server else None

    def serve(self, local_rank: int) -> None:
        """Start `/metrics` on `$TRAINFORGE_METRICS_PORT + local_rank` (the launcher sets it to
        the port after its own) and tell the launcher, which merges every local rank's series
        into the pod's one `/metrics`; a busy port only turns metrics off."""
        base = env_int(ENV_METRICS_PORT, self.job.metrics.port)
        port = base + local_rank if base else 0
        try:
            self._server = MetricsServer(self.metrics, port, self.progress).start()
        except OSError as exc:
            log.warning("metrics server could not bind port %d (%s); metrics are off", port, exc)
            return
        run_dir = os.environ.get(ENV_RUN_DIR)
        if run_dir:
            with contextlib.suppress(OSError):
                publish_worker_port(Path(run_dir), self.rank, self._server.port)

    def start_tracking(self) -> None:
        self.tracker = start_tracker(self.job, self.rank)

    def publish(self, step: int, metrics: Mapping[str, float | None]) -> dict[str, float]:
        """Gauges with agreed names, every key on /progress, history and MLflow; returns the
        metrics as floats, without the ones given as None."""
        clean = {k: float(v) for k, v in metrics.items() if v is not None}
        self.metrics.log(clean)
        if self.progress is None:
            return clean
        for key in REPORTED_KEYS.intersection(clean):
            self.history.setdefault(key, []).append((step, clean[key]))
        if self.tracker is not None:
            self.tracker.log_metrics(clean, step)
        epoch = clean.get("epoch")
        progress = {k: v for k, v in clean.items() if k != "epoch"}
        self.progress.update(step, progress, epoch=None if epoch is None else int(epoch))
        return clean

    def publish_step(self, step: int, timing: StepTiming, metrics: dict[str, float]) -> None:
        """A finished step: its time split, the step gauge, its metrics and the throughput."""
        self.metrics.observe_step(timing.data_wait, timing.compute)
        self.metrics.set("train_step", step)
        self.publish(step, metrics)
        if self.progress is not None and "samples_per_second" in metrics:
            self.progress.samples_per_second = round(metrics["samples_per_second"], 2)

    def set_total_steps(self, total: int) -> None:
        self.metrics.set("total_steps", total)
        if self.progress is not None:
            self.progress.total_steps = total

    def set_phase(self, phase: str) -> None:
        if self.progress is not None:
            self.progress.set_phase(phase)

    def finish_tracking(self, artifacts_dir: Path) -> None:
        """Hand the artifacts to MLflow and close the run as finished."""
        if self.tracker is not None:
            self.tracker.log_artifacts(artifacts_dir)
            self.tracker.end("FINISHED")

    def stop_serving(self) -> None:
        """Stop `/metrics`, first serving the final values for `metrics.lingerSeconds`."""
        if self._server is None:
            return
        linger = self.job.metrics.linger_seconds
        if linger:  # let Prometheus scrape the final values before the pod goes away
            log.info("serving final metrics for %ds (metrics.lingerSeconds)", linger)
            time.sleep(linger)
        self._server.stop()
        self._server = None
