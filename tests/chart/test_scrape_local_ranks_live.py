"""Every local rank is scraped: with `procsPerNode: 2`, a real Prometheus scraping the pod's one
declared port (the launcher's `/metrics`) stores the series of both local ranks.

The run is the digits example on one node with two processes, in local mode, which serves the
same endpoints a pod does; Prometheus has exactly one target, as a pod has one metrics port.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from live_run import LiveRun, live_training_run, short_manifest

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def two_local_ranks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRun]:
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is not on PATH: apt-get install prometheus (Debian's package)")
    manifest = short_manifest(epochs=2)
    manifest["metadata"]["name"] = "digits-two-ranks"
    manifest["spec"]["parallelism"] = {"nodes": 1, "procsPerNode": 2, "backend": "gloo"}
    with live_training_run(tmp_path_factory.mktemp("ranks"), manifest=manifest) as run:
        assert run.exit_code == 0, run.log[-3000:]
        yield run


def test_one_target_serves_both_local_ranks(two_local_ranks: LiveRun) -> None:
    run = two_local_ranks
    targets = run.prometheus.query_range("count(up == 1)", run.start, run.end)
    assert max(float(v) for _, v in targets[0]["values"]) == 1  # one pod, one port
    for metric in ("trainforge_train_step", "trainforge_step_seconds_count"):
        series = run.prometheus.query_range(f"count by (rank) ({metric})", run.start, run.end)
        assert sorted(s["metric"]["rank"] for s in series) == ["0", "1"], (metric, series)
    pod = run.prometheus.query_range("trainforge_pod_processes", run.start, run.end)
    assert max(float(v) for s in pod for _, v in s["values"]) >= 3  # launcher + 2 ranks
