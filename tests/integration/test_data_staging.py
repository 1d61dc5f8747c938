# ruff: noqa: F811  (pytest fixtures imported from operator_fixture are re-bound as arguments)
"""Data staging against a real API server: the worker pods with the `stage-data` init container,
its emptyDir and the secretKeyRef credentials are accepted as built, and the job reports
DataStaged once every pod's initializer finished (kwok completes init containers at once; the
initializer itself runs in tests/runtime/test_stage_data.py and on kind)."""

from __future__ import annotations

import json
from typing import Any

from operator_fixture import (  # noqa: F401  (fixtures)
    Cluster,
    OperatorHandle,
    kube_client,
    tf_operator,
    trainforge_crd,
)
from tf_controlplane import ControlPlane

URI = "s3://datasets/digits/"


def test_pods_stage_data_before_training(
    control_plane: ControlPlane, namespace: str, kube_client: Any, tf_operator: OperatorHandle
) -> None:
    c = Cluster(kube_client, namespace)
    manifest = {
        "apiVersion": "trainforge.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "staged"},
        "spec": {
            "command": ["python", "train.py"],
            "parallelism": {"nodes": 2},
            "data": {
                "uri": URI,
                "s3Endpoint": "http://minio.minio:9000",
                "credentialsSecret": {"name": "dataset-creds"},
                "sizeLimit": "1Gi",
            },
        },
    }
    done = control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))
    assert done.returncode == 0, done.stderr
    status = c.wait_phase("staged", "Running")
    staged = next(x for x in status["conditions"] if x["type"] == "DataStaged")
    assert staged["status"] == "True"
    assert staged["reason"] == "Staged"
    assert URI in staged["message"]
    assert "DataStaged" in c.event_reasons("staged", "DataStaged")
    for pod in c.pods("staged"):
        (init,) = pod.spec.init_containers
        assert init.name == "stage-data"
        assert init.command == ["python", "-m", "trainforge_runtime.stage_data"]
        secret_refs = {e.name: e.value_from.secret_key_ref.name for e in init.env if e.value_from}
        assert secret_refs == {
            "AWS_ACCESS_KEY_ID": "dataset-creds",
            "AWS_SECRET_ACCESS_KEY": "dataset-creds",
        }
        worker_env = {e.name: e.value for e in pod.spec.containers[0].env}
        assert worker_env["TRAINFORGE_DATA_DIR"] == "/var/trainforge/data"
        assert "AWS_SECRET_ACCESS_KEY" not in worker_env  # the data credentials stay in the init
        volume = next(v for v in pod.spec.volumes if v.name == "trainforge-data")
        assert volume.empty_dir.size_limit == "1Gi"
