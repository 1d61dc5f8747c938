"""The runtime's end-of-job bundle, strict summaries, health/profiler hooks and metric series.

In-process tests build a real single-rank RuntimeContext (gloo, world size 1) and finish it.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families
from torch import nn

from trainforge_api.context import JobContext
from trainforge_api.termination import encode
from trainforge_runtime.artifacts import verify_upload
from trainforge_runtime.bundle import split_metrics
from trainforge_runtime.export import merge_pipeline_stages
from trainforge_runtime.metrics import WorkerMetrics
from trainforge_runtime.session import RuntimeContext


@pytest.fixture(autouse=True)
def _restore_sigterm() -> Iterator[None]:
    """RuntimeContext installs a SIGTERM handler; give pytest its own back."""
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


def make_ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **spec: Any) -> RuntimeContext:
    monkeypatch.setenv("TRAINFORGE_RUN_DIR", str(tmp_path / "run"))
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    job = JobContext.model_validate(
        {
            "job": {"name": "bundle", "namespace": "test"},
            "image": "trainforge/worker:test",
            "hyperparameters": {"lr": 0.1, "seed": 3},
            "metrics": {"enabled": False},
            "parallelism": {"backend": "gloo"},
            **spec,
        }
    )
    return RuntimeContext(job, start_metrics=False)


def series(metrics: WorkerMetrics) -> dict[tuple[str, str], float]:
    """(sample name, rule label or '') -> value, from the real exposition text."""
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            out[(sample.name, sample.labels.get("rule", ""))] = sample.value
    return out


def test_finish_writes_bundle_metadata_and_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "dest"
    ctx = make_ctx(tmp_path, monkeypatch, artifacts={"uri": f"file://{dest}"})
    model = ctx.parallelize(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)))
    inner = getattr(model, "module", model)  # DDP wraps even a single rank
    expected = {k: v.clone() for k, v in inner.state_dict().items()}
    summary = ctx.finish(
        {"loss": 0.5, "val_loss": 0.6, "test_accuracy": 0.9},
        model=model,
        model_config={"hidden": 3},
        labels=["a", "b"],
        dataset_fingerprint="abc123",
    )
    from safetensors.torch import load_file

    weights = load_file(str(dest / "model" / "model.safetensors"))
    assert weights.keys() == expected.keys()
    assert all(torch.equal(weights[k], expected[k]) for k in expected)
    assert json.loads((dest / "model" / "labels.json").read_text()) == ["a", "b"]
    assert json.loads((dest / "model" / "config.json").read_text())["hidden"] == 3
    meta = json.loads((dest / "metadata.json").read_text())
    assert meta["metrics"] == {
        "train": {"loss": 0.5},
        "val": {"loss": 0.6},
        "test": {"accuracy": 0.9},
    }
    assert meta["datasetFingerprint"] == "abc123"
    assert meta["image"] == "trainforge/worker:test"
    assert meta["hyperparameters"]["lr"] == 0.1
    assert meta["worldSize"] == 1
    assert meta["durationSeconds"] >= 0
    manifest = verify_upload(f"file://{dest}")  # sizes and sha256 match what was uploaded
    listed = {e["path"] for e in manifest["files"]}
    assert {"model/model.safetensors", "model/config.json", "metadata.json"} <= listed
    assert summary["artifacts"]["files"] == len(listed)


def test_nan_metrics_make_strict_json_summary_and_encode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = make_ctx(tmp_path, monkeypatch)
    ctx.finish(loss=math.nan, val_loss=math.inf, accuracy=0.5)
    text = (tmp_path / "run" / "summary-rank0.json").read_text()
    strict = json.loads(text, parse_constant=pytest.fail)  # NaN/Infinity literals would fail
    assert strict["metrics"] == {"loss": None, "val_loss": None, "accuracy": 0.5}
    message = encode({"metrics": {"loss": -math.inf}, "exitReason": "X"}, 1)
    assert json.loads(message, parse_constant=pytest.fail)["metrics"] == {"loss": None}


def test_val_loss_logged_outside_step_end_feeds_the_overfitting_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = [{"rule": "overfitting", "params": {"patience": 1}}]
    ctx = make_ctx(tmp_path, monkeypatch, health=rules)
    try:
        for step, (loss, val) in enumerate([(1.0, 1.0), (0.5, 2.0)], start=1):
            ctx.step_end(step, loss=loss)
            ctx.log_metrics(step, val_loss=val)  # as trainers do after an evaluation
        assert [f["rule"] for f in ctx.findings] == ["overfitting"]
        assert series(ctx.metrics)[("trainforge_health_findings_total", "overfitting")] == 1.0
    finally:
        ctx.close()


class RecordingProfiler:
    """Stands in for TraceProfiler: records which phases were entered."""

    def __init__(self) -> None:
        self.phases: list[str] = []

    def step(self) -> None:
        return None

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.phases.append(name)
        yield


def test_timed_marks_data_wait_in_the_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = make_ctx(tmp_path, monkeypatch)
    try:
        recorder = RecordingProfiler()
        ctx.profiler = recorder
        assert list(ctx.timed([1, 2])) == [1, 2]
        assert recorder.phases == ["data_wait"] * 3  # two items and the final StopIteration
    finally:
        ctx.close()


def test_gauges_absent_until_set_and_findings_exported_at_zero() -> None:
    metrics = WorkerMetrics("j", "ns", 0)
    metrics.init_findings(["nan_loss", "overfitting"])
    before = series(metrics)
    assert ("trainforge_train_loss", "") not in before
    assert before[("trainforge_health_findings_total", "nan_loss")] == 0.0
    assert before[("trainforge_health_findings_total", "overfitting")] == 0.0
    metrics.log({"loss": 1.25, "unknown": 3.0})
    after = series(metrics)
    assert after[("trainforge_train_loss", "")] == 1.25
    assert ("trainforge_val_loss", "") not in after


def test_merge_pipeline_stages_renumbers_blocks() -> None:
    t = torch.zeros(1)
    stage0 = {"tok_emb.weight": t, "blocks.0.w": t, "blocks.1.w": t}
    stage1 = {"blocks.0.w": t + 1, "head.weight": t}
    merged = merge_pipeline_stages([stage0, stage1])
    assert merged.kind == "pipeline-merged"
    assert set(merged.state) == {
        "tok_emb.weight",
        "blocks.0.w",
        "blocks.1.w",
        "blocks.2.w",
        "head.weight",
    }
    assert float(merged.state["blocks.2.w"]) == 1.0
    clash = merge_pipeline_stages([{"x": t}, {"x": t}])
    assert clash.kind == "pipeline-per-stage"
    assert set(clash.state) == {"stage0.x", "stage1.x"}


def test_split_metrics_groups_by_prefix() -> None:
    got = split_metrics({"loss": 1.0, "train_accuracy": 0.8, "val_loss": 2.0, "test_f1_macro": 0.7})
    assert got == {
        "train": {"loss": 1.0, "accuracy": 0.8},
        "val": {"loss": 2.0},
        "test": {"f1_macro": 0.7},
    }


def test_split_metrics_keeps_baselines_apart() -> None:
    got = split_metrics({"test_accuracy": 0.9, "baseline_test_accuracy": 0.1})
    assert got == {
        "train": {},
        "val": {},
        "test": {"accuracy": 0.9},
        "baseline": {"test_accuracy": 0.1},
    }
