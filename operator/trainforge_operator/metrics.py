"""Operator Prometheus metrics (names agreed with the chart's dashboards and alerts).

Per-job facts live in a small in-memory table (`JOB_STATE`) rendered at scrape time by a custom
collector, so a deleted job's series disappear instead of lingering as stale gauges.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import get_args

from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from trainforge_api.trainingjob import Phase, Recovery

PHASES: tuple[Phase, ...] = get_args(Phase)  # every phase, zero when no job is in it

JOBS_CREATED = Counter("trainforge_jobs_created_total", "TrainingJobs whose gang was created.")
JOBS_SUCCEEDED = Counter("trainforge_jobs_succeeded_total", "TrainingJobs that succeeded.")
JOBS_FAILED = Counter("trainforge_jobs_failed_total", "TrainingJobs that failed.", ["reason"])
JOB_RESTARTS = Counter(
    "trainforge_job_restarts_total", "Gang restarts per TrainingJob.", ["namespace", "job"]
)
RECONCILE_SECONDS = Histogram(
    "trainforge_reconcile_duration_seconds",
    "Duration of one reconcile of one TrainingJob.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TIME_TO_RUNNING = Histogram(
    "trainforge_time_to_running_seconds",
    "From gang creation until all workers run.",
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
)
# Recovery (docs/failure-policy.md). `kind` of a restart: gang (the whole gang recreated),
# in-place (only the failed pod recreated, survivors re-rendezvous), elastic-shrink and
# elastic-grow (an elastic gang's world changed size).
RESTART_KINDS = ("gang", "in-place", "elastic-shrink", "elastic-grow")
RESTARTS_BY_KIND = Counter(
    "trainforge_restarts_total",
    "Restarts after a failure, by kind: gang, in-place, elastic-shrink, elastic-grow.",
    ["kind"],
)
TIME_TO_RECOVER = Histogram(
    "trainforge_time_to_recover_seconds",
    "From a failure seen until training steps advance again (or all workers run, without "
    "progress).",
    ["kind"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600),
)
LOST_STEPS = Counter(
    "trainforge_lost_steps_total",
    "Training steps redone after restarts: step at failure minus the step resumed from.",
    ["kind"],
)
JOB_QUEUED_SECONDS = Histogram(
    "trainforge_job_queued_seconds",
    "Time a Kueue-managed TrainingJob waited in its queue before each admission.",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600),
)
API_ERRORS = Counter(
    "trainforge_api_errors_total", "Failed Kubernetes API calls.", ["verb", "resource"]
)


@dataclass
class JobState:
    phase: str
    node_pool: str
    pending_gpus: int


JOB_STATE: dict[tuple[str, str], JobState] = {}


class _JobsCollector(Collector):
    """trainforge_jobs{phase} and trainforge_pending_gpus{node_pool} from JOB_STATE."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily("trainforge_jobs", "TrainingJobs by phase.", labels=["phase"])
        by_phase: dict[str, int] = dict.fromkeys(PHASES, 0)
        pending = GaugeMetricFamily(
            "trainforge_pending_gpus",
            "GPUs requested by gangs that are not running yet.",
            labels=["node_pool"],
        )
        by_pool: dict[str, int] = {}
        for state in list(JOB_STATE.values()):
            by_phase[state.phase] = by_phase.get(state.phase, 0) + 1
            by_pool[state.node_pool] = by_pool.get(state.node_pool, 0) + state.pending_gpus
        for phase, n in by_phase.items():
            jobs.add_metric([phase], n)
        for pool, n in by_pool.items():
            pending.add_metric([pool], n)
        yield jobs
        yield pending


def record_recovery(restart_kind: str | None, recovery: Recovery | None) -> None:
    """A pass restarted something, or saw training advance again after a restart."""
    if restart_kind is not None:
        RESTARTS_BY_KIND.labels(kind=restart_kind).inc()
    if recovery is not None and recovery.seconds is not None:
        TIME_TO_RECOVER.labels(kind=recovery.kind).observe(recovery.seconds)
        if recovery.lost_steps is not None:
            LOST_STEPS.labels(kind=recovery.kind).inc(recovery.lost_steps)


_registered = False


def register_collector() -> None:
    global _registered
    if not _registered:
        REGISTRY.register(_JobsCollector())
        _registered = True


def serve(port: int) -> None:
    """Start /metrics on `port` (a daemon thread)."""
    register_collector()
    start_http_server(port)
