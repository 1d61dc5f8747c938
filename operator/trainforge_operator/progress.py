"""Where rank 0's training progress comes from (pluggable).

* `HttpProgressSource` GETs `http://<rank-0 pod IP>:<spec.metrics.port>/progress` (the runtime).
* `AnnotationProgressSource` reads the JSON in the pod annotation `trainforge.io/progress`. Kwok
  pods have no reachable IPs, so integration tests drive progress this way; anything that can
  annotate a pod (a sidecar, a test) may use it too.
* `AutoProgressSource` (the default) prefers the annotation and falls back to HTTP.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request
from typing import Any, Protocol

from trainforge_operator.names import PROGRESS_ANNOTATION

Obj = dict[str, Any]
log = logging.getLogger(__name__)


class ProgressSource(Protocol):
    # True when reading costs a request (HTTP): the controller then asks at most every
    # progressIntervalSeconds. An annotation is read from the pod in memory, and its change is
    # a pod event that wakes the job: read on every pass, never polled on a timer.
    polled: bool

    async def fetch(self, pod: Obj, port: int) -> Obj | None:
        """Rank 0's progress JSON, or None when it is not available right now."""
        ...


class AnnotationProgressSource:
    polled = False

    async def fetch(self, pod: Obj, port: int) -> Obj | None:
        raw = (pod["metadata"].get("annotations") or {}).get(PROGRESS_ANNOTATION)
        if not raw:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            log.warning("pod %s: annotation %s is not JSON", pod["metadata"]["name"], raw[:80])
            return None
        return data if isinstance(data, dict) else None


class HttpProgressSource:
    polled = True

    def __init__(self, timeout: float = 2.0) -> None:
        self.timeout = timeout

    def _get(self, url: str) -> Obj | None:
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:  # noqa: S310
                data = json.loads(resp.read(256 * 1024))
        except (urllib.error.URLError, OSError, ValueError) as err:
            log.debug("progress %s unavailable: %s", url, err)
            return None
        return data if isinstance(data, dict) else None

    async def fetch(self, pod: Obj, port: int) -> Obj | None:
        ip = (pod.get("status") or {}).get("podIP")
        if not ip:
            return None
        host = f"[{ip}]" if ":" in ip else ip
        return await asyncio.to_thread(self._get, f"http://{host}:{port}/progress")


class AutoProgressSource:
    polled = True  # its HTTP fallback

    def __init__(self) -> None:
        self.annotation = AnnotationProgressSource()
        self.http = HttpProgressSource()

    async def fetch(self, pod: Obj, port: int) -> Obj | None:
        data = await self.annotation.fetch(pod, port)
        if data is not None:
            return data
        return await self.http.fetch(pod, port)


def make_source(kind: str) -> ProgressSource:
    if kind == "http":
        return HttpProgressSource()
    if kind == "annotation":
        return AnnotationProgressSource()
    return AutoProgressSource()
