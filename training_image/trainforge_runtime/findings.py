"""The job's health rules wired into a running rank: fed at every step end and with validation
metrics, findings kept for /progress, the report and the summary, and exit 65 on a stop rule.

health.py is the rules themselves (pure logic); this is what the runtime does with their output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainforge_api import exitcodes
from trainforge_api.context import JobContext
from trainforge_runtime.health import HealthMonitor, HealthStop
from trainforge_runtime.metrics import WorkerMetrics
from trainforge_runtime.progress import ProgressTracker


class HealthWatch:
    """This rank's findings; a job without health rules pays nothing per step."""

    def __init__(
        self,
        job: JobContext,
        rank: int,
        metrics: WorkerMetrics,
        progress: ProgressTracker | None,
    ) -> None:
        self.findings: list[dict[str, Any]] = []
        self._progress = progress
        self._monitor: HealthMonitor | None = None
        if job.health:
            labels = {"job": job.job.name, "namespace": job.job.namespace, "rank": str(rank)}
            counter = metrics.findings_counter
            self._monitor = HealthMonitor(job.health, counter=counter, labels=labels)
        metrics.init_findings([r.rule for r in job.health])

    @property
    def active(self) -> bool:
        """Whether any rule is configured (callers skip building their inputs otherwise)."""
        return self._monitor is not None

    def observe(self, step: int, metrics: Mapping[str, float]) -> None:
        """Run the rules on this step's metrics; a stop rule ends the process with exit 65."""
        if self._monitor is None:
            return
        try:
            new = self._monitor.observe(step, metrics)
        except HealthStop as stop:
            self._record(stop.finding.to_dict())
            raise exitcodes.RuntimeExit(exitcodes.HEALTH_STOP, str(stop)) from None
        for finding in new:
            self._record(finding.to_dict())

    def _record(self, finding: dict[str, Any]) -> None:
        self.findings.append(finding)
        if self._progress is not None:
            self._progress.add_finding(finding)
