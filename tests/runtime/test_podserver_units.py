"""The pod endpoint's merge of several ranks' expositions (pure logic, no processes)."""

from __future__ import annotations

from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from trainforge_runtime.metrics import WorkerMetrics
from trainforge_runtime.podserver import _Families, merge_families


def exposition(rank: int, loss: float, gpu: float | None = None) -> str:
    metrics = WorkerMetrics("j", "ns", rank)
    metrics.log({"loss": loss})
    metrics.observe_step(0.01, 0.1)
    if gpu is not None:
        metrics.set("gpu_utilization_ratio", gpu)
    return generate_latest(metrics.registry).decode()


def test_two_ranks_merge_into_one_valid_exposition_and_the_worker_wins() -> None:
    ranks = [list(text_string_to_metric_families(exposition(r, 1.0 + r, 0.9))) for r in (0, 1)]
    launcher = list(text_string_to_metric_families(exposition(0, 99.0, 0.1)))
    text = generate_latest(_Families(merge_families([*ranks, launcher]))).decode()
    assert text.count("# TYPE trainforge_train_loss gauge") == 1  # one family, not three
    samples = {
        (s.name, s.labels.get("rank"), s.labels.get("phase")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("trainforge_train_loss", "0", None)] == 1.0  # not the launcher's 99
    assert samples[("trainforge_train_loss", "1", None)] == 2.0
    assert samples[("trainforge_gpu_utilization_ratio", "0", None)] == 0.9
    assert samples[("trainforge_step_seconds_count", "1", "total")] == 1.0
