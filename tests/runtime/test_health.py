"""Each health rule fires once on a deliberately bad series and stays silent on a good one."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import pytest

from trainforge_api.trainingjob import HealthRule
from trainforge_runtime.health import Finding, HealthMonitor, HealthStop, resolve_params

Series = Iterable[Mapping[str, float]]


def run(rule: str, series: Series, **params: float) -> list[Finding]:
    monitor = HealthMonitor([HealthRule(rule=rule, params=params)])  # type: ignore[arg-type]
    for step, metrics in enumerate(series):
        monitor.observe(step, metrics)
    return monitor.findings


def falling_loss(n: int) -> list[dict[str, float]]:
    return [{"loss": 2.0 * 0.97**i, "grad_norm": 1.0 + 0.1 * (i % 3)} for i in range(n)]


def test_nan_loss() -> None:
    bad = falling_loss(10) + [{"loss": math.nan}] * 5
    found = run("nan_loss", bad)
    assert [(f.rule, f.step) for f in found] == [("nan_loss", 10)]  # once per episode
    assert run("nan_loss", falling_loss(50)) == []


def test_nan_loss_fires_again_after_recovering() -> None:
    series = [{"loss": 1.0}, {"loss": math.inf}, {"loss": 0.9}, {"val_loss": math.nan}]
    assert [f.step for f in run("nan_loss", series)] == [1, 3]


def test_exploding_gradients_absolute_and_relative() -> None:
    spike = [{"grad_norm": 1.0 + 0.01 * i} for i in range(20)] + [{"grad_norm": 50.0}]
    found = run("exploding_gradients", spike)
    assert len(found) == 1
    assert found[0].step == 20
    assert "median" in found[0].message
    assert len(run("exploding_gradients", [{"grad_norm": 5000.0}])) == 1
    assert run("exploding_gradients", falling_loss(100)) == []


def test_vanishing_gradients_needs_patience() -> None:
    tiny = [{"grad_norm": 1e-9}] * 4
    assert run("vanishing_gradients", tiny) == []  # default patience 5
    found = run("vanishing_gradients", [{"grad_norm": 1e-9}] * 20)
    assert [f.step for f in found] == [4]
    assert run("vanishing_gradients", falling_loss(100)) == []


def test_loss_not_decreasing_window() -> None:
    flat = [{"loss": 1.0 + 0.001 * (i % 2)} for i in range(40)]
    found = run("loss_not_decreasing", flat, window=10)
    assert [f.step for f in found] == [10]
    assert run("loss_not_decreasing", falling_loss(200), window=10) == []


def test_overfitting_val_rises_while_train_falls() -> None:
    series: list[dict[str, float]] = []
    for epoch in range(10):
        train = 1.0 * 0.8**epoch
        val = 0.5 + 0.05 * (epoch - 3) ** 2  # best at epoch 3, then rising
        series += [{"loss": train}] * 3 + [{"loss": train, "val_loss": val}]
    found = run("overfitting", series)
    assert len(found) == 1
    assert found[0].rule == "overfitting"
    assert found[0].step == 4 * 6 + 3  # third worse evaluation (epoch 6)
    healthy = [{"loss": 0.8**e, "val_loss": 0.9**e} for e in range(20)]
    assert run("overfitting", healthy) == []


def test_overfitting_silent_when_both_rise() -> None:
    both = [{"loss": 1 + 0.1 * e, "val_loss": 1 + 0.1 * e} for e in range(10)]
    assert run("overfitting", both) == []


def test_low_gpu_utilization() -> None:
    idle = [{"gpu_utilization": 0.1}] * 40
    found = run("low_gpu_utilization", idle, window=5, warmup_steps=2)
    assert [f.step for f in found] == [6]
    busy = [{"gpu_utilization": 95.0}] * 40  # percent accepted too
    assert run("low_gpu_utilization", busy, window=5, warmup_steps=2) == []


def test_dataloader_bound() -> None:
    starved = [{"data_wait_seconds": 0.3, "compute_seconds": 0.1}] * 30
    found = run("dataloader_bound", starved, window=5, warmup_steps=0)
    assert [f.step for f in found] == [4]
    fed = [{"data_wait_seconds": 0.01, "compute_seconds": 0.2}] * 30
    assert run("dataloader_bound", fed, window=5, warmup_steps=0) == []


def test_steps_without_the_metric_do_not_rearm() -> None:
    series = [{"loss": math.nan}, {"grad_norm": 1.0}, {"loss": math.nan}]
    assert len(run("nan_loss", series)) == 1


def test_stop_action_raises_after_recording() -> None:
    monitor = HealthMonitor([HealthRule(rule="nan_loss", action="stop")])
    monitor.observe(0, {"loss": 1.0})
    with pytest.raises(HealthStop) as stop:
        monitor.observe(1, {"loss": math.nan})
    assert stop.value.finding.rule == "nan_loss"
    assert stop.value.exit_code == 65
    assert monitor.to_list() == [stop.value.finding.to_dict()]


def test_findings_counter_in_prometheus_registry() -> None:
    prometheus_client = pytest.importorskip("prometheus_client")
    registry = prometheus_client.CollectorRegistry()
    labels = {"job": "j", "namespace": "ns", "rank": "0"}
    monitor = HealthMonitor([HealthRule(rule="nan_loss")], registry=registry, labels=labels)
    for step in range(3):
        monitor.observe(step, {"loss": math.nan})
    value = registry.get_sample_value(
        "trainforge_health_findings_total", {**labels, "rule": "nan_loss"}
    )
    assert value == 1.0


def test_unknown_params_rejected_with_allowed_names() -> None:
    with pytest.raises(ValueError, match="allowed: min_delta, window"):
        resolve_params(HealthRule(rule="loss_not_decreasing", params={"windw": 3}))
