"""Run a real local-mode TrainingJob while a real Prometheus scrapes its workers.

Used by tests/chart/test_dashboards_live.py and hack/render_dashboards.py: both need Prometheus
data from an actual run. The main job is examples/digits-ddp.yaml, shortened, with checkpoints
every few steps and one deliberately sensitive health rule (action: warn) so every Training panel
has something real to show. Language-model panels (tokens/s) come from a short run of
examples/gpt-fsdp.yaml, since a classifier has no tokens.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from promfixture import Prometheus, free_ports

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "digits-ddp.yaml"
LM_EXAMPLE = REPO / "examples" / "gpt-fsdp.yaml"
OPERATOR_TARGET_ENV = "TRAINFORGE_OPERATOR_METRICS"  # host:port of a running operator's /metrics


@dataclass
class LiveRun:
    """What a finished run left behind: Prometheus (still running) and the run's window."""

    prometheus: Prometheus
    start: float
    end: float
    namespace: str
    job: str
    exit_code: int
    log: str


def short_manifest(epochs: int) -> dict[str, Any]:
    """examples/digits-ddp.yaml, cut to `epochs`, checkpointing often, with a warn-only rule."""
    manifest = yaml.safe_load(EXAMPLE.read_text())
    # The live operator runs a TrainingJob of the same name and namespace (operator_live.SCENARIO),
    # so operator series selected by the Training dashboard's job variable exist too.
    manifest["metadata"]["namespace"] = "ml-demo"
    spec = manifest["spec"]
    spec["hyperparameters"]["epochs"] = epochs
    spec["hyperparameters"]["patience"] = epochs + 1
    spec["checkpoint"]["everySteps"] = 10
    spec["health"]["rules"].append(
        # Fires once the loss moved less than 100 over 5 steps: a real finding, action warn.
        {"rule": "loss_not_decreasing", "action": "warn", "params": {"window": 5, "min_delta": 100}}
    )
    return manifest


def language_model_manifest(steps: int = 30) -> dict[str, Any]:
    """examples/gpt-fsdp.yaml (FSDP over 2 nodes, gloo on CPU), cut to `steps`."""
    manifest = yaml.safe_load(LM_EXAMPLE.read_text())
    manifest["metadata"]["namespace"] = "ml-demo"
    manifest["spec"]["hyperparameters"].update(steps=steps, eval_every=10)
    return manifest


def _trainforge_cmd() -> list[str]:
    return [sys.executable, "-m", "trainforge_runtime.cli"]


@contextlib.contextmanager
def live_training_run(
    workdir: Path,
    epochs: int = 8,
    timeout_s: float = 900,
    extra_jobs: Mapping[str, Sequence[str]] | None = None,
    min_window_s: float = 0.0,
    manifest: dict[str, Any] | None = None,
) -> Iterator[LiveRun]:
    """Start Prometheus, run the job to completion, yield; Prometheus stops on exit.

    The job is the shortened digits example unless `manifest` names another. `min_window_s`
    keeps scraping at least that long after the start, so activity of the extra jobs (the live
    operator's scenario) lands in the window even when training is quick."""
    manifest = manifest or short_manifest(epochs)
    spec = manifest["spec"]
    nodes, procs = spec["parallelism"]["nodes"], spec["parallelism"]["procsPerNode"]
    base = free_ports(nodes * (procs + 1))  # per node: its launcher, then one per local rank
    job_file = workdir / "job.yaml"
    workdir.mkdir(parents=True, exist_ok=True)
    job_file.write_text(yaml.safe_dump(manifest))
    # as in a cluster, one target per pod: its launcher's /metrics serves every local rank
    scrape = {"trainforge-workers": [f"127.0.0.1:{base + n * (procs + 1)}" for n in range(nodes)]}
    scrape.update(extra_jobs or {})
    with Prometheus(workdir / "prometheus", scrape) as prom:
        start = time.time()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        cmd = [*_trainforge_cmd(), "run", str(job_file), "--local", "--metrics-port", str(base)]
        cmd += ["--output", str(workdir / "output")]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_s, env=env, cwd=workdir
        )
        time.sleep(max(0.0, start + min_window_s - time.time()))
        # Two more scrapes so the last values land before the window closes.
        time.sleep(2.5)
        end = time.time()
        found = prom.query_range("group by (namespace, job) (trainforge_train_step)", start, end)
        labels = found[0]["metric"] if found else {"namespace": "?", "job": "?"}
        yield LiveRun(
            prom,
            start,
            end,
            labels.get("namespace", "?"),
            labels.get("job", "?"),
            proc.returncode,
            proc.stdout + proc.stderr,
        )


def operator_target() -> str | None:
    """host:port of a running operator's metrics endpoint, when the environment names one."""
    return os.environ.get(OPERATOR_TARGET_ENV) or None
