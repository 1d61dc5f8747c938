"""Per-sweep Prometheus metrics, rendered at scrape time from a small table (like `metrics.py`'s
job table), so a deleted sweep's series disappear instead of lingering.

- `trainforge_sweep_trials{namespace, sweep, state}`: trials by state;
- `trainforge_sweep_best_value{namespace, sweep, metric}`: the best objective value so far
  (Prometheus keeps its history: best value over time).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

TRIAL_STATES = ("pending", "running", "succeeded", "failed", "pruned", "stopped")


@dataclass(frozen=True)
class SweepState:
    trials: dict[str, int]
    metric: str
    best: float | None


SWEEP_STATE: dict[tuple[str, str], SweepState] = {}


class _SweepsCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        trials = GaugeMetricFamily(
            "trainforge_sweep_trials",
            "Trials of each TrainingSweep by state.",
            labels=["namespace", "sweep", "state"],
        )
        best = GaugeMetricFamily(
            "trainforge_sweep_best_value",
            "Best objective value of each TrainingSweep so far.",
            labels=["namespace", "sweep", "metric"],
        )
        for (namespace, sweep), state in sorted(SWEEP_STATE.items()):
            for name in TRIAL_STATES:
                trials.add_metric([namespace, sweep, name], state.trials.get(name, 0))
            if state.best is not None:
                best.add_metric([namespace, sweep, state.metric], state.best)
        yield trials
        yield best


_registered = False


def register_collector() -> None:
    global _registered
    if not _registered:
        REGISTRY.register(_SweepsCollector())
        _registered = True
