"""Pure builders: the desired children of a TrainingJob."""

from __future__ import annotations

import json

import pytest
from trainforge_operator import builders
from trainforge_operator.config import OperatorConfig
from trainforge_operator.jobcontext import parse_spec

from .conftest import make_job


def _pod(config: OperatorConfig, spec: dict[str, object], index: int = 1, attempt: int = 2,
         labels: dict[str, str] | None = None) -> dict[str, object]:  # fmt: skip
    body = make_job(spec, labels=labels)
    return builders.build_worker_pod(
        builders.JobRef.from_body(body), parse_spec(body), config, index, attempt
    )


def _env(pod: dict) -> dict[str, object]:  # type: ignore[type-arg]
    return {
        e["name"]: e.get("value", e.get("valueFrom")) for e in pod["spec"]["containers"][0]["env"]
    }


def test_worker_env_follows_the_rendezvous_contract(config: OperatorConfig) -> None:
    pod = _pod(config, {"parallelism": {"nodes": 3}, "resources": {"gpus": 2}, "nodePool": "gpu"})
    env = _env(pod)
    assert env["MASTER_ADDR"] == "digits-worker-0.digits.ml.svc"
    assert env["PET_MASTER_ADDR"] == env["MASTER_ADDR"]
    assert env["MASTER_PORT"] == env["PET_MASTER_PORT"] == "29500"
    assert env["WORLD_SIZE"] == "6"
    assert env["NNODES"] == env["PET_NNODES"] == "3"
    assert env["RANK"] == env["NODE_RANK"] == env["PET_NODE_RANK"] == "1"
    assert env["NPROC_PER_NODE"] == env["PET_NPROC_PER_NODE"] == "2"
    assert env["TRAINFORGE_ATTEMPT"] == "2"
    assert env["TRAINFORGE_CONTEXT"] == "/etc/trainforge/context.json"
    assert env["TRAINFORGE_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_worker_pod_identity_placement_and_resources(config: OperatorConfig) -> None:
    pod = _pod(
        config,
        {"resources": {"gpus": 8, "cpu": "4", "memory": "16Gi"}, "nodePool": "gpu",
         "placement": {"nodeSelector": {"zone": "a"}, "priorityClassName": "high"}},
        labels={"kueue.x-k8s.io/queue-name": "team-a"},
    )  # fmt: skip
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["name"] == "digits-worker-1"
    assert meta["labels"]["trainforge.io/attempt"] == "2"
    assert meta["labels"]["trainforge.io/replica-index"] == "1"
    assert meta["labels"]["trainforge.io/job-uid"] == "uid-1"
    assert meta["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert meta["ownerReferences"][0]["controller"] is True
    assert meta["ownerReferences"][0]["uid"] == "uid-1"
    assert spec["hostname"] == "digits-worker-1"
    assert spec["subdomain"] == "digits"
    assert spec["restartPolicy"] == "Never"
    assert spec["nodeSelector"] == {"trainforge.io/pool": "gpu", "zone": "a"}
    assert spec["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert spec["priorityClassName"] == "high"
    limits = spec["containers"][0]["resources"]["limits"]
    assert limits == {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "8"}
    assert spec["securityContext"]["runAsNonRoot"] is True
    shm = next(v for v in spec["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"}
    mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    assert {"/dev/shm", "/etc/trainforge"} <= mounts
    assert spec["containers"][0]["image"] == "trainforge/worker:test"


def test_gpu_resource_name_comes_from_the_pool(config: OperatorConfig) -> None:
    pod = _pod(config, {"resources": {"gpus": 1}, "nodePool": "amd"})
    assert "amd.com/gpu" in pod["spec"]["containers"][0]["resources"]["requests"]


def test_secrets_only_as_secret_key_refs_and_user_env_cannot_override(
    config: OperatorConfig,
) -> None:
    pod = _pod(
        config,
        {"artifacts": {"uri": "s3://b/", "s3Endpoint": "http://minio:9000",
                       "credentialsSecret": {"name": "s3-creds"}},
         "env": [{"name": "FOO", "value": "bar"}, {"name": "RANK", "value": "99"}]},
    )  # fmt: skip
    env = _env(pod)
    assert env["AWS_SECRET_ACCESS_KEY"] == {
        "secretKeyRef": {"name": "s3-creds", "key": "AWS_SECRET_ACCESS_KEY"}
    }
    assert env["TRAINFORGE_S3_ENDPOINT"] == "http://minio:9000"
    assert env["FOO"] == "bar"
    assert env["RANK"] == "1"


def test_pod_template_overrides(config: OperatorConfig) -> None:
    pod = _pod(
        config,
        {"podTemplate": {"volumes": [{"name": "data", "emptyDir": {}}],
                         "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                         "serviceAccountName": "trainer", "labels": {"team": "a"},
                         "annotations": {"a": "b"}, "securityContext": {"runAsUser": 5}}},
    )  # fmt: skip
    assert pod["spec"]["serviceAccountName"] == "trainer"
    assert pod["spec"]["securityContext"] == {"runAsUser": 5}
    assert pod["metadata"]["labels"]["team"] == "a"
    assert pod["metadata"]["annotations"] == {"a": "b"}
    assert any(v["name"] == "data" for v in pod["spec"]["volumes"])


def test_unknown_pool_is_an_error(config: OperatorConfig) -> None:
    with pytest.raises(KeyError, match="not configured"):
        _pod(config, {"nodePool": "tpu"})


def test_service_and_configmap(config: OperatorConfig) -> None:
    body = make_job({"parallelism": {"nodes": 2}})
    job = builders.JobRef.from_body(body)
    svc = builders.build_service(job)
    assert svc["metadata"]["name"] == "digits"
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    cm = builders.build_configmap(job, parse_spec(body), config)
    assert cm["metadata"]["name"] == "digits-context"
    ctx = json.loads(cm["data"]["context.json"])
    assert ctx["parallelism"]["nodes"] == 2
    assert ctx["rendezvous"]["masterAddr"] == "digits-worker-0.digits.ml.svc"
    assert ctx["image"] == "trainforge/worker:test"


def test_gang_is_deterministic(config: OperatorConfig) -> None:
    body = make_job({"parallelism": {"nodes": 3}})
    job, spec = builders.JobRef.from_body(body), parse_spec(body)
    first = builders.build_gang(job, spec, config, 0)
    assert [p["metadata"]["name"] for p in first] == [f"digits-worker-{i}" for i in range(3)]
    assert first == builders.build_gang(job, spec, config, 0)
