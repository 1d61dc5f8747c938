"""Pure builders: the desired children of a TrainingJob, compared whole with reviewed goldens.

Each case builds the Service, the context ConfigMap and every worker Pod and compares them with
tests/unit/golden/<case>.yaml. After an intended change run
`.venv/bin/python -m pytest tests/unit --update-goldens` and review the diff. The few tests after
the goldens name rules that must hold whatever the goldens say.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from trainforge_api.context import parse_spec
from trainforge_operator import builders
from trainforge_operator.config import OperatorConfig

from .conftest import make_job, node_pools
from .golden import GOLDEN_DIR, assert_golden

Obj = dict[str, Any]
# 54 characters: the longest name for up to 10 nodes, so `<name>-worker-1` is exactly 63.
LONG_NAME = "gpt-pretraining-run-with-a-name-right-at-the-limit-054"


@dataclass(frozen=True)
class Case:
    spec: Obj
    name: str = "digits"
    labels: dict[str, str] = field(default_factory=dict)
    attempt: int = 0


CASES: dict[str, Case] = {
    "cpu-ddp-minimal": Case({"parallelism": {"nodes": 2}}),
    "gpu-pool-placement": Case(
        {
            "nodePool": "gpu",
            "parallelism": {"nodes": 2},
            "resources": {"gpus": 8, "cpu": "32", "memory": "256Gi", "sharedMemory": "64Gi"},
            "placement": {
                "nodeSelector": {"topology.kubernetes.io/zone": "zone-a"},
                "tolerations": [
                    {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
                ],
                "affinity": {
                    "podAntiAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [
                            {
                                "weight": 100,
                                "podAffinityTerm": {
                                    "topologyKey": "kubernetes.io/hostname",
                                    "labelSelector": {
                                        "matchLabels": {"trainforge.io/job-name": "digits"}
                                    },
                                },
                            }
                        ]
                    }
                },
                "priorityClassName": "training-high",
                "schedulerName": "volcano",
            },
        },
        # Only Kueue's queue label is copied from the job to its children.
        labels={"kueue.x-k8s.io/queue-name": "team-a", "team": "research"},
    ),
    "procs-per-node": Case(
        {
            "parallelism": {"layout": "fsdp", "nodes": 3, "procsPerNode": 4, "backend": "gloo"},
            "resources": {"cpu": "8", "memory": "16Gi"},
        }
    ),
    "artifacts-checkpoint-tracking": Case(
        {
            "image": "registry.local/team/gpt:1.2",
            "command": ["python", "-m", "trainforge_runtime.trainers.gpt"],
            "args": ["--vocab", "bpe"],
            "workingDir": "/workspace",
            "hyperparameters": {"lr": 0.0003, "batchSize": 32, "schedule": "cosine"},
            "env": [
                {"name": "FOO", "value": "bar"},
                {"name": "RANK", "value": "99"},
                {"name": "TRAINFORGE_ATTEMPT", "value": "7"},
                {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}},
            ],
            "parallelism": {"nodes": 2},
            "artifacts": {
                "uri": "s3://models/",
                "s3Endpoint": "http://minio.minio:9000",
                "credentialsSecret": {
                    "name": "s3-creds",
                    "accessKeyIdKey": "access-key",
                    "secretAccessKeyKey": "secret-key",
                },
            },
            "checkpoint": {"uri": "s3://checkpoints/gpt", "everySteps": 500, "keep": 3},
            "tracking": {
                "mlflow": {"trackingUri": "http://mlflow.mlflow:5000", "experiment": "gpt"}
            },
            "data": {"uri": "s3://data/corpus", "options": {"split": "train"}},
            "profiling": {"enabled": True, "ranks": [0, 1]},
            "health": {
                "rules": [
                    {"rule": "nan_loss", "action": "stop"},
                    {"rule": "loss_not_decreasing", "params": {"patience": 100}},
                ]
            },
            "metrics": {"port": 9500, "lingerSeconds": 30},
        }
    ),
    # The dataset initializer: an init container stages spec.data.uri into an emptyDir.
    "data-staging": Case(
        {
            "image": "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
            "command": ["python", "train.py"],
            "parallelism": {"nodes": 2},
            "data": {
                "uri": "s3://datasets/imagenet/train/",
                "options": {"anon": "false"},
                "s3Endpoint": "http://minio.minio:9000",
                "credentialsSecret": {"name": "dataset-creds"},
                "sizeLimit": "50Gi",
            },
        }
    ),
    # An image without trainforge: the standalone launcher is installed by an init container.
    "standalone-launcher": Case(
        {
            "image": "nvcr.io/nvidia/pytorch:25.01-py3",
            "command": ["python", "train.py"],
            "args": ["--epochs", "3"],
            "hyperparameters": {"lr": 0.001},
            "parallelism": {"nodes": 2, "procsPerNode": 2},
        }
    ),
    "pod-template-extras": Case(
        {
            "podTemplate": {
                "volumes": [
                    {"name": "data", "persistentVolumeClaim": {"claimName": "corpus"}},
                    {"name": "cache", "emptyDir": {}},
                ],
                "volumeMounts": [
                    {"name": "data", "mountPath": "/data", "readOnly": True},
                    {"name": "cache", "mountPath": "/cache"},
                ],
                "serviceAccountName": "trainer",
                "securityContext": {"runAsNonRoot": True, "runAsUser": 2000, "fsGroup": 2000},
                "imagePullSecrets": [{"name": "regcred"}],
                # trainforge.io/job-name must not be replaceable (selectors depend on it).
                "labels": {"team": "a", "trainforge.io/job-name": "spoofed"},
                "annotations": {"sidecar.istio.io/inject": "false"},
            }
        }
    ),
    "restart-attempt-3": Case({"parallelism": {"nodes": 2}}, attempt=3),
    "long-name": Case({"parallelism": {"nodes": 2}}, name=LONG_NAME),
}


@pytest.fixture
def golden_config() -> OperatorConfig:
    """Every field the builders read set explicitly, so TRAINFORGE_* env cannot change goldens."""
    return OperatorConfig(
        default_image="trainforge/worker:test",
        image_pull_policy="IfNotPresent",
        run_as_user=1000,
        default_node_pool="",
        node_pools=node_pools(),
    )


def build_all(case: Case, config: OperatorConfig) -> list[Obj]:
    """Service, ConfigMap and the gang of `case`, in that order."""
    body = make_job(case.spec, name=case.name, labels=case.labels)
    job, spec = builders.JobRef.from_body(body), parse_spec(body)
    return [
        builders.build_service(job),
        builders.build_configmap(job, spec, config),
        *builders.build_gang(job, spec, config, case.attempt),
    ]


def env_of(pod: Obj) -> dict[str, Any]:
    return {
        e["name"]: e.get("value", e.get("valueFrom")) for e in pod["spec"]["containers"][0]["env"]
    }


@pytest.mark.parametrize("name", sorted(CASES))
def test_children_match_golden(
    name: str, golden_config: OperatorConfig, update_goldens: bool
) -> None:
    assert_golden(name, build_all(CASES[name], golden_config), update_goldens)


def test_every_golden_file_has_a_case() -> None:
    """A golden left behind by a renamed or deleted case would never be compared again."""
    assert {p.stem for p in GOLDEN_DIR.glob("*.yaml")} == set(CASES)


# --- rules ----------------------------------------------------------------------------------------


def test_child_names_are_deterministic(golden_config: OperatorConfig) -> None:
    """Fixed names make creation idempotent across retries, restarts and gang attempts."""
    first = build_all(CASES["cpu-ddp-minimal"], golden_config)
    again = build_all(CASES["restart-attempt-3"], golden_config)
    names = ["digits", "digits-context", "digits-worker-0", "digits-worker-1"]
    assert [o["metadata"]["name"] for o in first] == names
    assert [o["metadata"]["name"] for o in again] == names
    long = build_all(CASES["long-name"], golden_config)
    assert [len(o["metadata"]["name"]) for o in long[2:]] == [63, 63]


def test_worker_pods_run_as_non_root_by_default(golden_config: OperatorConfig) -> None:
    """The restricted Pod Security Standard; podTemplate.securityContext only overrides the keys
    it sets, and the container-level hardening stays either way."""
    for name, case in CASES.items():
        for pod in build_all(case, golden_config)[2:]:
            container = pod["spec"]["containers"][0]["securityContext"]
            assert container["allowPrivilegeEscalation"] is False, name
            assert container["capabilities"] == {"drop": ["ALL"]}, name
            if "securityContext" in case.spec.get("podTemplate", {}):
                continue
            assert pod["spec"]["securityContext"] == {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "runAsGroup": 1000,
                "fsGroup": 1000,
                "seccompProfile": {"type": "RuntimeDefault"},
            }, name


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            {"fsGroup": 3000},
            {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "runAsGroup": 1000,
                "fsGroup": 3000,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
        ),
        (
            {"runAsUser": 2000},
            {
                "runAsNonRoot": True,
                "runAsUser": 2000,
                "runAsGroup": 2000,
                "fsGroup": 2000,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
        ),
        (
            {"runAsNonRoot": False, "runAsUser": 0, "seccompProfile": {"type": "Unconfined"}},
            {
                "runAsNonRoot": False,
                "runAsUser": 0,
                "runAsGroup": 0,
                "fsGroup": 0,
                "seccompProfile": {"type": "Unconfined"},
            },
        ),
    ],
    ids=["fs-group-only", "other-uid", "root-on-purpose"],
)
def test_pod_security_context_overrides_only_the_keys_it_sets(
    golden_config: OperatorConfig, given: dict[str, object], expected: dict[str, object]
) -> None:
    case = Case({"parallelism": {"nodes": 1}, "podTemplate": {"securityContext": given}})
    pod = build_all(case, golden_config)[2]
    assert pod["spec"]["securityContext"] == expected


def test_worker_pods_get_no_api_token_unless_they_name_an_account(
    golden_config: OperatorConfig,
) -> None:
    plain = build_all(CASES["cpu-ddp-minimal"], golden_config)[2]
    assert plain["spec"]["automountServiceAccountToken"] is False
    named = build_all(CASES["pod-template-extras"], golden_config)[2]
    assert named["spec"]["serviceAccountName"] == "trainer"
    assert "automountServiceAccountToken" not in named["spec"]


def test_secret_values_reach_pods_only_as_secret_key_refs(golden_config: OperatorConfig) -> None:
    objs = build_all(CASES["artifacts-checkpoint-tracking"], golden_config)
    for pod in objs[2:]:
        env = env_of(pod)
        assert env["AWS_ACCESS_KEY_ID"] == {
            "secretKeyRef": {"name": "s3-creds", "key": "access-key"}
        }
        assert env["AWS_SECRET_ACCESS_KEY"] == {
            "secretKeyRef": {"name": "s3-creds", "key": "secret-key"}
        }
    for name, case in CASES.items():
        for pod in build_all(case, golden_config)[2:]:
            literal = {e["name"] for e in pod["spec"]["containers"][0]["env"] if "value" in e}
            assert not literal & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}, name


def test_user_env_cannot_override_the_rendezvous_contract(golden_config: OperatorConfig) -> None:
    pods = build_all(CASES["artifacts-checkpoint-tracking"], golden_config)[2:]
    for index, pod in enumerate(pods):
        names = [e["name"] for e in pod["spec"]["containers"][0]["env"]]
        assert len(names) == len(set(names)), "duplicate env names"
        env = env_of(pod)
        assert env["RANK"] == str(index)
        assert env["TRAINFORGE_ATTEMPT"] == "0"
        assert env["FOO"] == "bar"


def test_template_labels_cannot_replace_the_job_labels(golden_config: OperatorConfig) -> None:
    pod = build_all(CASES["pod-template-extras"], golden_config)[2]
    assert pod["metadata"]["labels"]["trainforge.io/job-name"] == "digits"
    assert pod["metadata"]["labels"]["team"] == "a"


def test_gpu_resource_name_comes_from_the_pool(golden_config: OperatorConfig) -> None:
    case = Case({"resources": {"gpus": 1}, "nodePool": "amd"})
    resources = build_all(case, golden_config)[2]["spec"]["containers"][0]["resources"]
    assert resources["limits"]["amd.com/gpu"] == resources["requests"]["amd.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in resources["limits"]


def test_unknown_pool_is_an_error(golden_config: OperatorConfig) -> None:
    with pytest.raises(KeyError, match="not configured"):
        build_all(Case({"nodePool": "tpu"}), golden_config)


def _pod_command(spec: Obj, config: OperatorConfig) -> list[str]:
    pod = build_all(Case({"parallelism": {"nodes": 1}, **spec}), config)[2]
    return list(pod["spec"]["containers"][0]["command"])


def test_auto_launcher_is_the_runtime_only_for_images_that_have_it(
    golden_config: OperatorConfig,
) -> None:
    runtime = ["python", "-m", "trainforge_runtime.launch"]
    standalone = ["python3", "/var/trainforge/launcher"]
    own_image = {"image": golden_config.default_image, "command": ["python", "train.py"]}
    plain_image = {"image": "python:3.12-slim", "command": ["python", "train.py"]}
    trainer = {"image": "registry.local/gpt:1", "command": ["python", "-m", "trainforge_runtime.x"]}
    assert _pod_command({"command": ["python", "train.py"]}, golden_config) == runtime
    assert _pod_command(own_image, golden_config) == runtime
    assert _pod_command(trainer, golden_config) == runtime
    assert _pod_command(plain_image, golden_config) == standalone
    assert _pod_command({**plain_image, "launcher": "runtime"}, golden_config) == runtime
    assert _pod_command({**own_image, "launcher": "standalone"}, golden_config) == standalone


def test_the_standalone_launcher_is_installed_before_data_staging(
    golden_config: OperatorConfig,
) -> None:
    """The installer is first and the training container only reads its volume."""
    pod = build_all(CASES["data-staging"], golden_config)[2]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["trainforge-launcher", "stage-data"]
    mount = next(
        m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "trainforge-launcher"
    )
    assert mount == {
        "name": "trainforge-launcher",
        "mountPath": "/var/trainforge/launcher",
        "readOnly": True,
    }
