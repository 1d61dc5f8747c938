"""A real, throw-away Prometheus (Debian's `prometheus` package) for dashboard tests and renders.

It scrapes static targets every second with `honor_labels: true` (worker series carry their own
`job` = TrainingJob name, exactly as the chart's PodMonitor keeps them), and answers PromQL over
the HTTP API.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SCRAPE_INTERVAL_S = 1


def free_ports(count: int) -> int:
    """The first of `count` consecutive free TCP ports on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base + count >= 65535:
            continue
        if all(_is_free(base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no {count} consecutive free ports found")


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class PrometheusError(RuntimeError):
    """Prometheus did not start or rejected a query."""


@dataclass
class Prometheus:
    """A running Prometheus; use `start()` and `stop()` (or the context manager)."""

    workdir: Path
    scrape_jobs: Mapping[str, Sequence[str]]
    binary: str = field(default_factory=lambda: shutil.which("prometheus") or "prometheus")
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        return {
            "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {
                    "job_name": name,
                    "honor_labels": True,
                    "static_configs": [{"targets": list(targets)}],
                }
                for name, targets in self.scrape_jobs.items()
            ],
        }

    def start(self, timeout_s: float = 30) -> Prometheus:
        if shutil.which(self.binary) is None:
            raise PrometheusError(
                "prometheus not found: apt-get install prometheus (Debian's package)"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "prometheus.yml"
        cfg.write_text(yaml.safe_dump(self.config()))
        self.port = free_ports(1)
        log = (self.workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={cfg}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1d",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PrometheusError(f"prometheus exited; see {self.workdir / 'prometheus.log'}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        raise PrometheusError(f"prometheus not ready in {timeout_s}s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Prometheus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _get(self, path: str, params: Mapping[str, str]) -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
        if body.get("status") != "success":
            raise PrometheusError(f"{params.get('query')!r}: {body.get('error', body)}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return list(self._get("/api/v1/query", params)["result"])

    def query_range(
        self, expr: str, start: float, end: float, step_s: float = 1.0
    ) -> list[dict[str, Any]]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": str(step_s)}
        return list(self._get("/api/v1/query_range", params)["result"])

    def wait_for(self, expr: str, timeout_s: float = 60) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            result = self.query(expr)
            if result:
                return result
            time.sleep(1)
        raise PrometheusError(f"no data for {expr!r} within {timeout_s}s")


def has_finite_value(series: Sequence[Mapping[str, Any]]) -> bool:
    """True when some sample of a range or instant result is a real number (not NaN/Inf)."""
    for s in series:
        samples = s.get("values") or ([s["value"]] if "value" in s else [])
        for _, value in samples:
            if value not in ("NaN", "+Inf", "-Inf"):
                return True
    return False
