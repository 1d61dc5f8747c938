"""The shared metric names (tests/metric_names.py) come from the code and are documented."""

from __future__ import annotations

import re
from pathlib import Path

from metric_names import (
    OPERATOR_HISTOGRAMS,
    OPERATOR_METRICS,
    WORKER_GAUGES,
    WORKER_HISTOGRAMS,
    WORKER_METRICS,
)

API_REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "api-reference.md"


def test_both_sides_are_read_and_disjoint() -> None:
    assert {"trainforge_jobs", "trainforge_jobs_failed_total"} <= OPERATOR_METRICS
    assert {
        "trainforge_reconcile_duration_seconds",
        "trainforge_time_to_running_seconds",
        "trainforge_time_to_recover_seconds",
        "trainforge_job_queued_seconds",
    } == OPERATOR_HISTOGRAMS
    assert {"trainforge_train_loss", "trainforge_health_findings_total"} <= WORKER_METRICS
    assert "trainforge_train_loss" in WORKER_GAUGES
    assert "trainforge_health_findings_total" not in WORKER_GAUGES
    assert {"trainforge_step_seconds", "trainforge_checkpoint_seconds"} == WORKER_HISTOGRAMS
    # A name on both sides would make a dashboard query's scrape source ambiguous.
    assert not (OPERATOR_METRICS | OPERATOR_HISTOGRAMS) & (WORKER_METRICS | WORKER_HISTOGRAMS)


def test_operator_metrics_are_documented() -> None:
    doc = API_REFERENCE.read_text()
    section = doc.split("## Operator metrics", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`(trainforge_\w+)", section))
    assert documented == OPERATOR_METRICS | OPERATOR_HISTOGRAMS
