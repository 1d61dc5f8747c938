"""Per-worker Prometheus metrics and the HTTP server for `/metrics` and rank 0's `/progress`.

Each local rank listens on `metrics.port + local_rank` so several ranks in one pod never collide
(`TRAINFORGE_METRICS_PORT` overrides the base port; local mode uses it to give each node its range).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from trainforge_launcher.podserver import GAUGE_KEYS as _LAUNCHER_GAUGE_KEYS
from trainforge_runtime.progress import ProgressTracker

log = logging.getLogger(__name__)

BASE_LABELS = ("job", "namespace", "rank")
STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
CKPT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

# log_metrics() keyword -> gauge name (without the trainforge_ prefix): one table with the
# standalone launcher, which must stay standard-library only, so it holds it.
GAUGE_KEYS: dict[str, str] = _LAUNCHER_GAUGE_KEYS
GAUGES = (
    "train_step",
    "train_epoch",
    "train_loss",
    "val_loss",
    "train_accuracy",
    "val_accuracy",
    "learning_rate",
    "grad_norm",
    "samples_per_second",
    "tokens_per_second",
    "gpu_utilization_ratio",
    "gpu_memory_used_bytes",
    "total_steps",
)


class WorkerMetrics:
    """All worker series, pre-bound to this worker's job/namespace/rank labels."""

    def __init__(self, job: str, namespace: str, rank: int) -> None:
        self.registry = CollectorRegistry()
        labels = {"job": job, "namespace": namespace, "rank": str(rank)}
        # parents only: a labelled child (a series) appears when first set, so dashboards never
        # read a 0 loss before the first step
        self._gauge_families: dict[str, Gauge] = {
            name: Gauge(
                f"trainforge_{name}", _HELP.get(name, name), BASE_LABELS, registry=self.registry
            )
            for name in GAUGES
        }
        self.gauges: dict[str, Any] = {}
        step_hist = Histogram(
            "trainforge_step_seconds",
            "Training step time split into data wait and compute",
            (*BASE_LABELS, "phase"),
            buckets=STEP_BUCKETS,
            registry=self.registry,
        )
        self.step_seconds = {p: step_hist.labels(**labels, phase=p) for p in PHASES}
        self.checkpoint_seconds = Histogram(
            "trainforge_checkpoint_seconds",
            "Time to write one checkpoint",
            BASE_LABELS,
            buckets=CKPT_BUCKETS,
            registry=self.registry,
        ).labels(**labels)
        self.findings_counter = Counter(
            "trainforge_health_findings",
            "Health rule findings",
            (*BASE_LABELS, "rule"),
            registry=self.registry,
        )
        self._labels = labels

    def set(self, name: str, value: float) -> None:
        """Set a gauge, creating this worker's series on first use."""
        child = self.gauges.get(name)
        if child is None:
            child = self._gauge_families[name].labels(**self._labels)
            self.gauges[name] = child
        child.set(value)

    def init_findings(self, rules: list[str]) -> None:
        """Export every configured rule's findings counter at 0, so `increase()` sees the first."""
        for rule in rules:
            self.findings_counter.labels(**self._labels, rule=rule)

    def log(self, metrics: dict[str, float]) -> None:
        """Set the gauges that have an agreed name; other keys only reach /progress."""
        for key, value in metrics.items():
            gauge = GAUGE_KEYS.get(key)
            if gauge is not None:
                self.set(gauge, float(value))

    def observe_step(self, data_wait: float, compute: float) -> None:
        self.step_seconds["data_wait"].observe(data_wait)
        self.step_seconds["compute"].observe(compute)
        self.step_seconds["total"].observe(data_wait + compute)

    def count_finding(self, rule: str) -> None:
        self.findings_counter.labels(**self._labels, rule=rule).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


PHASES = ("data_wait", "compute", "total")
_HELP = {
    "train_step": "Last completed optimizer step",
    "total_steps": "Planned number of optimizer steps",
    "gpu_utilization_ratio": "GPU utilization of this rank's device, 0..1",
    "gpu_memory_used_bytes": "GPU memory allocated by this rank",
}


class MetricsServer:
    """A tiny threaded HTTP server: /metrics always, /progress when a tracker is given."""

    def __init__(
        self, metrics: WorkerMetrics, port: int, progress: ProgressTracker | None = None
    ) -> None:
        handler = _make_handler(metrics, progress)
        self.httpd = ThreadingHTTPServer(("0.0.0.0", port), handler)  # noqa: S104 - scraped from outside
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _make_handler(
    metrics: WorkerMetrics, progress: ProgressTracker | None
) -> type[BaseHTTPRequestHandler]:
    snapshot = progress.snapshot if progress is not None else None
    return http_handler(metrics.exposition, snapshot, "(rank 0)", "metrics http")


def http_handler(
    exposition: Callable[[], bytes],
    progress: Callable[[], object] | None,
    progress_where: str,
    log_name: str,
) -> type[BaseHTTPRequestHandler]:
    """GET /metrics, /progress (when `progress` is given) and /healthz: the endpoint of a rank
    (this module) and of a pod (podserver.py)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, exposition())
            elif path == "/progress" and progress is not None:
                self._send(200, "application/json", json.dumps(progress()).encode())
            elif path == "/healthz":
                self._send(200, "text/plain", b"ok")
            else:
                where = f" {progress_where}" if progress_where else ""
                message = f"not found: try /metrics or /progress{where}"
                self._send(404, "text/plain", message.encode())

        def _send(self, code: int, ctype: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(log_name + ": " + format, *args)

    return Handler
