"""Spec validation and JobContext derivation (shared by the operator and local mode)."""

from __future__ import annotations

import json
import re

import pytest

from trainforge_api.context import (
    InvalidSpecError,
    JobContext,
    job_context_from_manifest,
    parse_spec,
)

from .conftest import make_job


def test_defaults_and_procs_per_node_from_gpus() -> None:
    ctx = job_context_from_manifest(
        make_job({"resources": {"gpus": 4}, "parallelism": {"nodes": 2}}), in_cluster=True
    )
    assert isinstance(ctx, JobContext)
    assert ctx.parallelism.procs_per_node == 4
    assert ctx.parallelism.world_size == 8
    assert ctx.rendezvous.master_addr == "digits-worker-0.digits.ml.svc"
    assert ctx.metrics.port == 9400
    assert ctx.job.uid == "uid-1"


def test_cpu_job_defaults_to_one_proc_and_local_rendezvous() -> None:
    ctx = job_context_from_manifest(make_job(), default_image="img:1")
    assert ctx.parallelism.procs_per_node == 1
    assert ctx.rendezvous.master_addr == "127.0.0.1"
    assert ctx.image == "img:1"


def test_context_carries_health_rules_and_secret_reference_only() -> None:
    spec = {
        "health": {"rules": [{"rule": "nan_loss", "action": "stop"}]},
        "artifacts": {"uri": "s3://b/m/", "credentialsSecret": {"name": "s3-creds"}},
        "hyperparameters": {"epochs": 3, "lr": 0.1},
    }
    ctx = job_context_from_manifest(make_job(spec))
    assert [r.rule for r in ctx.health] == ["nan_loss"]
    assert ctx.health[0].action == "stop"
    assert ctx.hyperparameters == {"epochs": 3, "lr": 0.1}
    dumped = json.loads(ctx.to_json())
    assert dumped["artifacts"]["credentialsSecret"]["name"] == "s3-creds"
    meta = make_job()["metadata"]
    assert ctx.artifacts.uri == f"s3://b/m/{meta.get('namespace', 'default')}/{meta['name']}/"
    assert "secretAccessKey" not in ctx.to_json().replace("secretAccessKeyKey", "")


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"parallelism": {"nodes": 0}}, "spec.parallelism.nodes"),
        ({"parallelism": {"layout": "mesh"}}, "spec.parallelism.layout"),
        ({"unknownField": 1}, "spec.unknownField"),
        (
            {"parallelism": {"layout": "tensor", "tensorParallel": 3, "nodes": 2}},
            "must divide the world size",
        ),
        (
            {"parallelism": {"layout": "data", "tensorParallel": 2}},
            "layout data (DDP) replicates the whole model, so it needs tensorParallel: 1",
        ),
        ({"parallelism": {"layout": "pipeline"}}, "layout pipeline needs pipelineStages >= 2"),
        (
            {"runPolicy": {"restartBackoffSeconds": 60, "maxRestartBackoffSeconds": 5}},
            "maxRestartBackoffSeconds",
        ),
    ],
)
def test_invalid_specs_say_what_to_fix(spec: dict[str, object], fragment: str) -> None:
    with pytest.raises(InvalidSpecError, match=re.escape(fragment)):
        parse_spec(make_job(spec))


def test_name_too_long_for_pod_names() -> None:
    job = make_job({"parallelism": {"nodes": 12}}, name="a" * 54)
    with pytest.raises(InvalidSpecError, match="at most 53"):
        parse_spec(job)
    parse_spec(make_job({"parallelism": {"nodes": 10}}, name="a" * 54))


def test_tensor_layout_valid_when_degree_divides_world() -> None:
    spec = parse_spec(
        make_job(
            {
                "parallelism": {"layout": "tensor", "tensorParallel": 2, "nodes": 2},
                "resources": {"gpus": 2},
            }
        )
    )
    assert spec.world_size == 4


def test_cluster_workers_keep_metrics_up_for_the_final_scrape() -> None:
    assert job_context_from_manifest(make_job()).metrics.linger_seconds == 15
    quick = job_context_from_manifest(make_job({"metrics": {"lingerSeconds": 0}}))
    assert quick.metrics.linger_seconds == 0
