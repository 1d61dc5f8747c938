"""Pure logic: ETA from the recent step rate, termination message limits, root-cause exit codes."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from trainforge_api import exitcodes
from trainforge_api.termination import MAX_BYTES, encode
from trainforge_runtime.launch import pick_exit_code
from trainforge_runtime.progress import ProgressTracker


def test_eta_uses_recent_step_rate() -> None:
    p = ProgressTracker(total_steps=100, window=5)
    for step in range(1, 11):
        p.update(step, {"loss": 1.0 / step}, now=float(step) * 0.5)  # 2 steps/s
    assert p.steps_per_second() == pytest.approx(2.0)
    assert p.eta_seconds() == pytest.approx(45.0)
    snap = p.snapshot()
    assert snap["percent"] == 10.0
    assert snap["etaSeconds"] == 45.0
    assert snap["phase"] == "training"
    assert snap["metrics"]["loss"] == pytest.approx(0.1)


def test_nan_metric_becomes_null_in_valid_json() -> None:
    p = ProgressTracker(total_steps=10)
    p.update(1, {"loss": float("nan"), "lr": 0.1})
    doc = json.loads(json.dumps(p.snapshot(), allow_nan=False))
    assert doc["metrics"] == {"loss": None, "lr": 0.1}


def test_eta_unknown_without_rate_or_total() -> None:
    p = ProgressTracker()
    p.update(1, now=0.0)
    assert p.eta_seconds() is None
    assert p.snapshot()["percent"] is None
    with pytest.raises(ValueError, match="unknown phase"):
        p.set_phase("sleeping")


def test_termination_message_fits_4k() -> None:
    summary = {
        "exitReason": "Succeeded",
        "step": 3,
        "metrics": {f"m{i}": float(i) for i in range(400)},
        "findings": [{"rule": "nan_loss", "message": "x" * 300}] * 20,
    }
    text = encode(summary, 0)
    assert len(text.encode()) <= MAX_BYTES
    assert json.loads(text)["exitReason"] == "Succeeded"


def test_termination_reason_follows_exit_code() -> None:
    assert json.loads(encode({}, 143))["exitReason"] == "Terminated"
    assert json.loads(encode({}, 137))["exitReason"] == "Signal9"


def test_root_cause_prefers_permanent_codes() -> None:
    def f(code: int) -> SimpleNamespace:
        return SimpleNamespace(exitcode=code)

    assert pick_exit_code({0: f(75), 1: f(65)}) == exitcodes.HEALTH_STOP
    assert pick_exit_code({0: f(-15), 1: f(1)}) == 1
    assert pick_exit_code({0: f(-9)}) == 137
