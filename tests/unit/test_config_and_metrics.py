"""Operator configuration loading and the per-job metric table."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from trainforge_operator import metrics
from trainforge_operator.config import load_config
from trainforge_operator.progress import AnnotationProgressSource

from .conftest import make_pod


def test_config_file_then_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "defaultImage: registry.local/worker:1\n"
        "namespaces: [team-a]\n"
        "logLevel: INFO\n"
        "nodePools:\n"
        "  a100:\n"
        "    nodeSelector: {pool: a100}\n"
        "    gpuResourceName: nvidia.com/gpu\n"
    )
    monkeypatch.setenv("TRAINFORGE_CONFIG", str(path))
    monkeypatch.setenv("TRAINFORGE_LOG_LEVEL", "DEBUG")
    config = load_config()
    assert config.default_image == "registry.local/worker:1"
    assert config.namespaces == ["team-a"]
    assert config.log_level == "DEBUG"
    assert config.log_format == "json"
    assert config.metrics_port == 8080
    pool = config.pool("a100")
    assert pool is not None
    assert pool.node_selector == {"pool": "a100"}
    assert config.pool(None) is None


def test_config_without_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRAINFORGE_CONFIG", raising=False)
    config = load_config()
    assert config.namespaces == []
    assert config.peering is None


def test_jobs_gauge_and_pending_gpus() -> None:
    metrics.register_collector()
    metrics.JOB_STATE.clear()
    metrics.JOB_STATE[("a", "x")] = metrics.JobState("Running", "gpu", 0)
    metrics.JOB_STATE[("a", "y")] = metrics.JobState("Pending", "gpu", 16)
    text = generate_latest().decode()
    assert 'trainforge_jobs{phase="Running"} 1.0' in text
    assert 'trainforge_jobs{phase="Failed"} 0.0' in text
    assert 'trainforge_pending_gpus{node_pool="gpu"} 16.0' in text
    metrics.JOB_STATE.clear()


def test_progress_annotation_source() -> None:
    pod = make_pod(0)
    assert asyncio.run(AnnotationProgressSource().fetch(pod, 9400)) is None
    pod["metadata"]["annotations"] = {"trainforge.io/progress": json.dumps({"step": 7})}
    assert asyncio.run(AnnotationProgressSource().fetch(pod, 9400)) == {"step": 7}
    pod["metadata"]["annotations"] = {"trainforge.io/progress": "not json"}
    assert asyncio.run(AnnotationProgressSource().fetch(pod, 9400)) is None


def test_a_restart_and_its_recovery_reach_the_metrics() -> None:
    from prometheus_client import REGISTRY

    from trainforge_api.trainingjob import Recovery

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (
        value("trainforge_restarts_total", kind="gang"),
        value("trainforge_time_to_recover_seconds_count", kind="gang"),
        value("trainforge_lost_steps_total", kind="gang"),
    )
    metrics.record_recovery("gang", None)
    metrics.record_recovery(None, Recovery(kind="gang", seconds=12.5, lost_steps=7))
    metrics.record_recovery(None, Recovery(kind="gang", recovered_at=None))  # still open: nothing
    after = (
        value("trainforge_restarts_total", kind="gang"),
        value("trainforge_time_to_recover_seconds_count", kind="gang"),
        value("trainforge_lost_steps_total", kind="gang"),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 7]
