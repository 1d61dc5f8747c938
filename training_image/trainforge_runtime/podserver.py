"""The launcher's endpoint on `metrics.port`: one `/metrics` for the whole pod and `/progress`
for rank 0, whatever the training code does.

* `/metrics` merges every local rank's own `/metrics` (trainforge trainers serve one on
  `metrics.port + 1 + local_rank` and publish it in `$TRAINFORGE_RUN_DIR/metrics-ports/<rank>`;
  by global rank, because local mode's nodes share one run directory) with the
  launcher's series: the pod's CPU and memory, each local rank's GPU through NVML, restarts, the
  exit classification, and what a script reported through trainforge_sdk. Prometheus scrapes the
  one declared port and sees every local rank.
* `/progress` is rank 0's trainer's own document when it serves one, else what the script
  reported through trainforge_sdk, else `phase: unreported` (the operator then warns instead of
  declaring a stall).
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from trainforge_api import exitcodes
from trainforge_api.progress import UNREPORTED_PHASE
from trainforge_api.termination import Obj, rank_summary
from trainforge_api.trainingjob import ArtifactSummary
from trainforge_launcher.sysmetrics import Gpus, tree_usage
from trainforge_runtime.metrics import BASE_LABELS, GAUGE_KEYS, http_handler
from trainforge_runtime.progress import ProgressTracker
from trainforge_sdk import PROGRESS_FILE

log = logging.getLogger("trainforge.launch")

PORTS_DIR = "metrics-ports"
_POD_LABELS = ("job", "namespace", "node")


def publish_worker_port(run_dir: Path, rank: int, port: int) -> None:
    """A worker tells its launcher where its `/metrics` listens (called by the worker)."""
    ports = run_dir / PORTS_DIR
    ports.mkdir(parents=True, exist_ok=True)
    (ports / str(rank)).write_text(str(port))


def worker_ports(run_dir: Path, ranks: range) -> dict[int, int]:
    """global rank -> port, for those of `ranks` (this pod's) that published one."""
    found: dict[int, int] = {}
    for rank in ranks:
        try:
            found[rank] = int((run_dir / PORTS_DIR / str(rank)).read_text())
        except (OSError, ValueError):
            continue
    return found


def clear_stale(run_dir: Path, ranks: range) -> None:
    """Forget a previous attempt's ports and SDK reports for this pod's ranks (a reused run
    directory: local mode's --resume), so nothing stale is served."""
    for rank in ranks:
        (run_dir / PORTS_DIR / str(rank)).unlink(missing_ok=True)
    if 0 in ranks:
        (run_dir / PROGRESS_FILE).unlink(missing_ok=True)


def fetch(port: int, path: str, timeout: float = 2.0) -> bytes | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            return bytes(resp.read())
    except (OSError, ValueError):
        return None


def read_sdk(run_dir: Path) -> Obj | None:
    """What rank 0 last reported through trainforge_sdk, if it is on this pod and reported."""
    try:
        return dict(json.loads((run_dir / PROGRESS_FILE).read_text()))
    except (OSError, ValueError):
        return None


def sdk_summary(
    run_dir: Path, code: int, artifacts: ArtifactSummary | None = None, message: str = ""
) -> Obj:
    """The termination summary of a script that reported through trainforge_sdk: its final
    metrics (else the last ones) become status.results, and the upload of its artifacts_dir()
    status.artifacts; {} if it reported nothing and uploaded nothing."""
    sdk = read_sdk(run_dir)
    if sdk is None and artifacts is None and not message:
        return {}
    sdk = sdk or {}
    metrics = sdk.get("finalMetrics") or sdk.get("metrics") or {}
    return rank_summary(
        exitcodes.reason_for(code),
        step=sdk.get("step"),
        metrics={k: v for k, v in metrics.items() if v is not None},
        total_steps=sdk.get("totalSteps"),
        artifacts=artifacts,
        message=message,
    )


def merge_families(sources: Iterable[Iterable[Metric]]) -> list[Metric]:
    """One family per name; a series (name + labels) seen in an earlier source wins, so a
    worker's own GPU gauge is not doubled by the launcher's."""
    families: dict[str, Metric] = {}
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for source in sources:
        for family in source:
            merged = families.get(family.name)
            if merged is None:
                merged = Metric(family.name, family.documentation, family.type, family.unit)
                families[family.name] = merged
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in seen:
                    seen.add(key)
                    merged.samples.append(sample)
    return list(families.values())


class _Families:
    """A registry-shaped wrapper so prometheus_client renders merged families."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


class PodServer:
    """The launcher's `/metrics` and `/progress` (see the module docstring)."""

    def __init__(
        self, job: str, namespace: str, node_rank: int, ranks: range, run_dir: Path, attempt: int
    ) -> None:
        self.run_dir = run_dir
        self.ranks = ranks
        self.registry = CollectorRegistry()
        self._gauges: dict[str, Gauge] = {}
        self._rank_labels = {"job": job, "namespace": namespace}
        self._pod = {"job": job, "namespace": namespace, "node": str(node_rank)}
        self._gpus = Gpus()
        self._tracker = ProgressTracker()
        self._sdk_step: int | None = None
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._pod_gauge("pod_restarts", "Gang restarts before this attempt").set(attempt)

    # --- serving -------------------------------------------------------------------------------
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

    # --- what it serves ------------------------------------------------------------------------
    def metrics(self) -> bytes:
        """Every local rank's series, then the launcher's own."""
        with self._lock:
            self._sample_system()
            self._sample_sdk()
        sources: list[Iterable[Metric]] = []
        for _, port in sorted(worker_ports(self.run_dir, self.ranks).items()):
            text = fetch(port, "/metrics")
            if text:
                try:
                    sources.append(list(text_string_to_metric_families(text.decode())))
                except ValueError as exc:
                    log.debug("unparsable metrics from port %d: %s", port, exc)
        sources.append(self.registry.collect())
        return generate_latest(_Families(merge_families(sources)))

    def progress(self) -> Obj:
        """Rank 0's trainer's own /progress, else the SDK's reports, else `unreported`."""
        if 0 in self.ranks:
            own = worker_ports(self.run_dir, self.ranks).get(0)
            body = fetch(own, "/progress") if own is not None else None
            if body:
                try:
                    return dict(json.loads(body))
                except ValueError:
                    pass
        sdk = read_sdk(self.run_dir)
        with self._lock:
            snapshot = self._tracker.snapshot()
            if sdk is None:
                snapshot.update(step=None, phase=UNREPORTED_PHASE)
                return snapshot
            self._feed(sdk)
            snapshot = self._tracker.snapshot()
        snapshot["checkpoint"] = sdk.get("checkpoint")
        return snapshot

    def set_exit(self, code: int) -> None:
        """The attempt's exit code and its class, served while the launcher lingers."""
        self._pod_gauge("pod_exit_code", "The launcher's exit code").set(code)
        info = self._family(
            "pod_exit_reason", "1 for the reason the launcher exited with", (*_POD_LABELS, "reason")
        )
        info.labels(**self._pod, reason=exitcodes.reason_for(code)).set(1)

    # --- helpers -------------------------------------------------------------------------------
    def _feed(self, sdk: Obj) -> None:
        step = sdk.get("step")
        if isinstance(step, int) and step != self._sdk_step:
            self._sdk_step = step
            metrics = {k: v for k, v in (sdk.get("metrics") or {}).items() if v is not None}
            self._tracker.update(step, metrics, epoch=sdk.get("epoch"))
        if isinstance(sdk.get("totalSteps"), int):
            self._tracker.total_steps = sdk["totalSteps"]
        if sdk.get("finished"):
            self._tracker.set_phase("done")

    def _sample_system(self) -> None:
        usage = tree_usage()
        if usage is not None:
            self._pod_gauge("pod_cpu_seconds", "CPU seconds of the launcher and its ranks").set(
                usage.cpu_seconds
            )
            self._pod_gauge(
                "pod_memory_rss_bytes", "Resident memory of the launcher and its ranks"
            ).set(usage.rss_bytes)
            self._pod_gauge("pod_processes", "Live processes in the launcher's tree").set(
                usage.processes
            )
        for local, rank in enumerate(self.ranks):
            sample = self._gpus.sample(local)
            if sample is not None:
                self._rank_gauge("gpu_utilization_ratio", rank, sample[0])
                self._rank_gauge("gpu_memory_used_bytes", rank, sample[1])

    def _sample_sdk(self) -> None:
        """Rank 0's reported step and metrics as the gauges a trainforge trainer would set."""
        sdk = read_sdk(self.run_dir) if 0 in self.ranks else None
        if sdk is None:
            return
        if isinstance(sdk.get("step"), int):
            self._rank_gauge("train_step", 0, sdk["step"])
        if isinstance(sdk.get("totalSteps"), int):
            self._rank_gauge("total_steps", 0, sdk["totalSteps"])
        for key, value in (sdk.get("metrics") or {}).items():
            if key in GAUGE_KEYS and isinstance(value, int | float):
                self._rank_gauge(GAUGE_KEYS[key], 0, float(value))

    def _family(self, name: str, doc: str, labels: tuple[str, ...]) -> Gauge:
        gauge = self._gauges.get(name)
        if gauge is None:
            gauge = Gauge(f"trainforge_{name}", doc, labels, registry=self.registry)
            self._gauges[name] = gauge
        return gauge

    def _pod_gauge(self, name: str, doc: str) -> Any:
        return self._family(name, doc, _POD_LABELS).labels(**self._pod)

    def _rank_gauge(self, name: str, rank: int, value: float) -> None:
        family = self._family(name, name.replace("_", " "), BASE_LABELS)
        family.labels(**self._rank_labels, rank=str(rank)).set(value)


def _handler(server: PodServer) -> type[BaseHTTPRequestHandler]:
    return http_handler(server.metrics, server.progress, "", "pod http")
