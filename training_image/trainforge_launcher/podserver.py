"""The standalone launcher's endpoint on `metrics.port`: the pod's `/metrics` (Prometheus text)
and `/progress` (JSON), written with the standard library only.

It serves the series and the document the runtime launcher's `trainforge_runtime.podserver`
serves for a script without a trainforge trainer: the pod's CPU and memory, each local rank's GPU
through NVML (when NVML is importable), restarts, the exit classification, and what rank 0
reported through trainforge_sdk (its progress file in the run directory). The series names and
the `/progress` keys are the contract the operator, the alerts and the dashboards read;
tests/unit/test_standalone_launcher.py compares them with the runtime's.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from trainforge_launcher.contract import reason_for
from trainforge_launcher.sysmetrics import Gpus, tree_usage
from trainforge_sdk import PROGRESS_FILE

log = logging.getLogger("trainforge.launch")

UNREPORTED_PHASE = "unreported"  # trainforge_api.progress.UNREPORTED_PHASE
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# SDK metric name -> gauge name; trainforge_runtime.metrics uses this table too
GAUGE_KEYS: dict[str, str] = {
    "loss": "train_loss",
    "train_loss": "train_loss",
    "val_loss": "val_loss",
    "accuracy": "train_accuracy",
    "train_accuracy": "train_accuracy",
    "val_accuracy": "val_accuracy",
    "lr": "learning_rate",
    "learning_rate": "learning_rate",
    "grad_norm": "grad_norm",
    "samples_per_second": "samples_per_second",
    "tokens_per_second": "tokens_per_second",
    "epoch": "train_epoch",
}
Series = tuple[str, str, dict[str, str], float]  # name, help, labels, value


def read_sdk(run_dir: Path) -> dict[str, Any] | None:
    """What rank 0 last reported through trainforge_sdk, if it reported."""
    try:
        data = json.loads((run_dir / PROGRESS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def sdk_summary(run_dir: Path) -> dict[str, Any]:
    """Step, total and the final (else last) metrics rank 0 reported: they become
    status.results; {} if the script never reported."""
    sdk = read_sdk(run_dir)
    if sdk is None:
        return {}
    metrics = sdk.get("finalMetrics") or sdk.get("metrics") or {}
    return {
        "step": sdk.get("step"),
        "totalSteps": sdk.get("totalSteps"),
        "metrics": {k: v for k, v in metrics.items() if v is not None},
    }


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def exposition(series: list[Series]) -> bytes:
    """Prometheus text format 0.0.4: one HELP/TYPE block per gauge name, its samples below."""
    blocks: dict[str, list[str]] = {}
    for name, doc, labels, value in series:
        lines = blocks.setdefault(name, [f"# HELP {name} {doc}", f"# TYPE {name} gauge"])
        body = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{body}}} {float(value)!r}")
    return "".join(line + "\n" for lines in blocks.values() for line in lines).encode()


class StepRate:
    """Steps per second over a sliding window of observed (time, step) points, for the ETA."""

    def __init__(self, window: int = 20) -> None:
        self._points: deque[tuple[float, int]] = deque(maxlen=window)

    def observe(self, step: int, now: float) -> None:
        if not self._points or self._points[-1][1] != step:
            self._points.append((now, step))

    def per_second(self) -> float | None:
        if len(self._points) < 2:
            return None
        (t0, s0), (t1, s1) = self._points[0], self._points[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 and s1 > s0 else None


class PodServer:
    """`/metrics`, `/progress` and `/healthz` for one pod (see the module docstring)."""

    def __init__(
        self, job: str, namespace: str, node_rank: int, ranks: range, run_dir: Path, attempt: int
    ) -> None:
        self.run_dir = run_dir
        self.ranks = ranks
        self._job = {"job": job, "namespace": namespace}
        self._pod = {**self._job, "node": str(node_rank)}
        self._attempt = attempt
        self._exit: int | None = None
        self._gpus = Gpus()
        self._rate = StepRate()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    def start(self, port: int) -> int:
        """Listen on `port` (0: any); returns the bound port."""
        self._httpd = ThreadingHTTPServer(("0.0.0.0", port), _handler(self))  # noqa: S104
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return int(self._httpd.server_address[1])

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def set_exit(self, code: int) -> None:
        self._exit = code

    def metrics(self) -> bytes:
        series: list[Series] = [
            (
                "trainforge_pod_restarts",
                "Gang restarts before this attempt",
                self._pod,
                self._attempt,
            ),
        ]
        usage = tree_usage()
        if usage is not None:
            series += [
                (
                    "trainforge_pod_cpu_seconds",
                    "CPU seconds of the launcher and its ranks",
                    self._pod,
                    usage.cpu_seconds,
                ),
                (
                    "trainforge_pod_memory_rss_bytes",
                    "Resident memory of the launcher and its ranks",
                    self._pod,
                    usage.rss_bytes,
                ),
                (
                    "trainforge_pod_processes",
                    "Live processes in the launcher's tree",
                    self._pod,
                    usage.processes,
                ),
            ]
        for local, rank in enumerate(self.ranks):
            sample = self._gpus.sample(local)
            if sample is not None:
                labels = {**self._job, "rank": str(rank)}
                series.append(
                    ("trainforge_gpu_utilization_ratio", "GPU utilization", labels, sample[0])
                )
                series.append(
                    ("trainforge_gpu_memory_used_bytes", "GPU memory used", labels, sample[1])
                )
        series += self._sdk_series()
        if self._exit is not None:
            series.append(
                ("trainforge_pod_exit_code", "The launcher's exit code", self._pod, self._exit)
            )
            series.append(
                (
                    "trainforge_pod_exit_reason",
                    "1 for the reason the launcher exited with",
                    {**self._pod, "reason": reason_for(self._exit)},
                    1,
                )
            )
        return exposition(series)

    def _sdk_series(self) -> list[Series]:
        """Rank 0's reported step and metrics as the gauges a trainforge trainer would set."""
        sdk = read_sdk(self.run_dir) if 0 in self.ranks else None
        if sdk is None:
            return []
        rank0 = {**self._job, "rank": "0"}
        out: list[Series] = []
        for key, name in (("step", "train_step"), ("totalSteps", "total_steps")):
            if isinstance(sdk.get(key), int):
                out.append((f"trainforge_{name}", name.replace("_", " "), rank0, sdk[key]))
        for key, value in (sdk.get("metrics") or {}).items():
            if key in GAUGE_KEYS and isinstance(value, (int, float)):
                name = GAUGE_KEYS[key]
                out.append((f"trainforge_{name}", name.replace("_", " "), rank0, value))
        return out

    def progress(self) -> dict[str, Any]:
        """The `/progress` document (trainforge_runtime.progress.ProgressTracker.snapshot)."""
        sdk = read_sdk(self.run_dir) if 0 in self.ranks else None
        now = time.time()
        if sdk is None:
            return _document(None, None, None, None, {}, UNREPORTED_PHASE, now)
        step = int(sdk["step"]) if isinstance(sdk.get("step"), int) else 0
        total = int(sdk["totalSteps"]) if isinstance(sdk.get("totalSteps"), int) else None
        with self._lock:
            self._rate.observe(step, time.monotonic())
            rate = self._rate.per_second()
        eta = None if rate is None or not total else round(max(total - step, 0) / rate, 1)
        phase = "done" if sdk.get("finished") else ("training" if step else "starting")
        doc = _document(
            step,
            total,
            sdk.get("epoch"),
            eta,
            sdk.get("metrics") or {},
            phase,
            sdk.get("updatedAt") or now,
        )
        doc["checkpoint"] = sdk.get("checkpoint")
        return doc


def _document(
    step: int | None,
    total: int | None,
    epoch: int | None,
    eta: float | None,
    metrics: dict[str, Any],
    phase: str,
    updated: float,
) -> dict[str, Any]:
    percent = None if not total or step is None else round(min(100.0, 100.0 * step / total), 2)
    clean = {
        k: (v if isinstance(v, (int, float)) and math.isfinite(v) else None)
        for k, v in metrics.items()
    }
    return {
        "step": step,
        "totalSteps": total,
        "epoch": epoch or 0,
        "percent": percent,
        "etaSeconds": eta,
        "samplesPerSecond": None,
        "metrics": clean,
        "resumedFromStep": None,
        "phase": phase,
        "findings": [],
        "updatedAt": datetime.fromtimestamp(float(updated), timezone.utc).isoformat(),
    }


def _handler(server: PodServer) -> type[BaseHTTPRequestHandler]:
    routes: dict[str, tuple[str, Callable[[], bytes]]] = {
        "/metrics": (CONTENT_TYPE, server.metrics),
        "/progress": ("application/json", lambda: json.dumps(server.progress()).encode()),
        "/healthz": ("text/plain", lambda: b"ok"),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            route = routes.get(self.path.split("?", 1)[0])
            if route is None:
                ctype, body = "text/plain", b"not found: try /metrics or /progress"
            else:
                ctype, body = route[0], route[1]()
            self.send_response(200 if route else 404)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("pod http: " + format, *args)

    return Handler
