"""Schedule metrics: runs by result, seconds since the last successful retraining, the
champion's metric. Per-schedule facts are a table rendered at scrape time, so a deleted
schedule's series disappear."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

RUNS = Counter(
    "trainforge_schedule_runs_total",
    "Finished TrainingSchedule runs by verdict (Promoted, NotPromoted, Failed).",
    ["namespace", "schedule", "result"],
)


@dataclass
class ScheduleFacts:
    last_success: dt.datetime  # the creation time until a run succeeds
    champion_metric: float | None
    metric_name: str


SCHEDULES: dict[tuple[str, str], ScheduleFacts] = {}


class _SchedulesCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        since = GaugeMetricFamily(
            "trainforge_schedule_seconds_since_last_success",
            "Seconds since a run of the TrainingSchedule last succeeded (since its creation "
            "when none has).",
            labels=["namespace", "schedule"],
        )
        champion = GaugeMetricFamily(
            "trainforge_schedule_champion_metric",
            "The champion's objective metric on the test split.",
            labels=["namespace", "schedule", "metric"],
        )
        now = time.time()
        for (namespace, name), facts in list(SCHEDULES.items()):
            since.add_metric([namespace, name], max(now - facts.last_success.timestamp(), 0.0))
            if facts.champion_metric is not None:
                champion.add_metric([namespace, name, facts.metric_name], facts.champion_metric)
        yield since
        yield champion


_registered = False


def register_collector() -> None:
    global _registered
    if not _registered:
        REGISTRY.register(_SchedulesCollector())
        _registered = True
