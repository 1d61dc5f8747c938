"""Every trainforge_* metric name, read from the code that exports it: the one list for all tiers.

The operator's series are those its metrics module registers in prometheus_client's default
registry (plus the per-job collector, registered the way `metrics.serve` does); the worker's are
those of a `WorkerMetrics` registry. Names are as PromQL selects them: counters with `_total`,
histograms by their base name (`histogram_series` expands them to `_bucket`, `_sum`, `_count`).
"""

from __future__ import annotations

from prometheus_client import REGISTRY
from prometheus_client.registry import CollectorRegistry

from trainforge_operator import metrics as operator_metrics
from trainforge_operator import sweepmetrics as sweep_metrics
from trainforge_operator.schedules import metrics as schedule_metrics
from trainforge_runtime.metrics import WorkerMetrics


def _read(registry: CollectorRegistry) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(gauges, counters, histograms) named trainforge_* in `registry`."""
    kinds: dict[str, set[str]] = {"gauge": set(), "counter": set(), "histogram": set()}
    for family in registry.collect():
        if family.name.startswith("trainforge_"):
            suffix = "_total" if family.type == "counter" else ""
            kinds[family.type].add(family.name + suffix)
    return frozenset(kinds["gauge"]), frozenset(kinds["counter"]), frozenset(kinds["histogram"])


def histogram_series(histograms: frozenset[str] | set[str]) -> frozenset[str]:
    return frozenset(f"{h}_{suffix}" for h in histograms for suffix in ("bucket", "sum", "count"))


operator_metrics.register_collector()
sweep_metrics.register_collector()
schedule_metrics.register_collector()
_op_gauges, _op_counters, OPERATOR_HISTOGRAMS = _read(REGISTRY)
OPERATOR_METRICS = _op_gauges | _op_counters  # gauges and counters

WORKER_GAUGES, _worker_counters, WORKER_HISTOGRAMS = _read(WorkerMetrics("job", "ns", 0).registry)
WORKER_METRICS = WORKER_GAUGES | _worker_counters  # gauges and counters
