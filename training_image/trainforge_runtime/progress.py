"""Rank 0's progress view: step, percent and an ETA from the recent step rate.

Pure logic (no torch, no HTTP) so it can be unit-tested; the metrics server serves `snapshot()`.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

from trainforge_api.progress import percent_done

PHASES = ("starting", "training", "evaluating", "uploading", "done")


class ProgressTracker:
    """Thread-safe progress state; the ETA uses a sliding window so warm-up does not skew it."""

    def __init__(self, total_steps: int | None = None, window: int = 20) -> None:
        self._lock = threading.Lock()
        self._times: deque[tuple[float, int]] = deque(maxlen=window)
        self.step = 0
        self.total_steps = total_steps
        self.epoch = 0
        self.samples_per_second: float | None = None
        self.metrics: dict[str, float] = {}
        self.resumed_from_step: int | None = None
        self.phase = "starting"
        self.findings: list[dict[str, Any]] = []
        self._updated = time.time()

    def update(
        self,
        step: int,
        metrics: dict[str, float] | None = None,
        *,
        epoch: int | None = None,
        samples_per_second: float | None = None,
        now: float | None = None,
    ) -> None:
        """Record that `step` finished; metrics merge into the last known values."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self.step = step
            self._times.append((now, step))
            if metrics:
                self.metrics.update({k: float(v) for k, v in metrics.items()})
            if epoch is not None:
                self.epoch = epoch
            if samples_per_second is not None:
                self.samples_per_second = samples_per_second
            if self.phase == "starting":
                self.phase = "training"
            self._updated = time.time()

    def set_phase(self, phase: str) -> None:
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; expected one of {PHASES}")
        with self._lock:
            self.phase = phase
            self._updated = time.time()

    def add_finding(self, finding: dict[str, Any]) -> None:
        with self._lock:
            self.findings.append(finding)

    def steps_per_second(self) -> float | None:
        """Rate over the sliding window; None until two distinct points exist."""
        with self._lock:
            if len(self._times) < 2:
                return None
            (t0, s0), (t1, s1) = self._times[0], self._times[-1]
        if t1 <= t0 or s1 <= s0:
            return None
        return (s1 - s0) / (t1 - t0)

    def eta_seconds(self) -> float | None:
        rate = self.steps_per_second()
        if rate is None or not self.total_steps:
            return None
        return max(self.total_steps - self.step, 0) / rate

    def percent(self) -> float | None:
        return percent_done(self.step, self.total_steps)

    def snapshot(self) -> dict[str, Any]:
        """The `/progress` JSON document agreed with the operator and the CLI.

        Non-finite metric values (a NaN loss) become null so the document stays valid JSON.
        """
        eta = self.eta_seconds()
        with self._lock:
            return {
                "step": self.step,
                "totalSteps": self.total_steps,
                "epoch": self.epoch,
                "percent": self.percent(),
                "etaSeconds": None if eta is None else round(eta, 1),
                "samplesPerSecond": self.samples_per_second,
                "metrics": {k: v if math.isfinite(v) else None for k, v in self.metrics.items()},
                "resumedFromStep": self.resumed_from_step,
                "phase": self.phase,
                "findings": list(self.findings),
                "updatedAt": datetime.fromtimestamp(self._updated, UTC).isoformat(),
            }
