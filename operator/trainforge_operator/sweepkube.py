"""The API calls of the sweep controller: the sweep, its trials (TrainingJobs) and its status.

Built on `KubeApi._send`, so the same statuses are answers (404 absent, 409 exists or stale) and
failures are counted in trainforge_api_errors_total the same way.
"""

from __future__ import annotations

from typing import Any

from kubernetes.client.exceptions import ApiException

from trainforge_api.base import GROUP, VERSION
from trainforge_api.trainingjob import PLURAL as JOB_PLURAL
from trainforge_api.trainingsweep import PLURAL as SWEEP_PLURAL
from trainforge_operator.kube import ABSENT, EXISTS, REJECTED, STALE, ChildRejectedError, KubeApi
from trainforge_sweep.trials import LABEL_SWEEP

Obj = dict[str, Any]


class SweepApi:
    def __init__(self, kube: KubeApi) -> None:
        self.kube = kube
        self.custom = kube.custom

    def get_sweep(self, namespace: str, name: str) -> Obj | None:
        return self.kube._send(
            "get",
            SWEEP_PLURAL,
            lambda: self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, SWEEP_PLURAL, name, _preload_content=False
            ),
            expected=ABSENT,
        )

    def list_trials(self, namespace: str, sweep: str) -> list[Obj]:
        """The sweep's TrainingJobs (by the sweep-name label)."""
        listing = self.kube._send(
            "list",
            JOB_PLURAL,
            lambda: self.custom.list_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                JOB_PLURAL,
                label_selector=f"{LABEL_SWEEP}={sweep}",
                _preload_content=False,
            ),
        )
        items = (listing or {}).get("items") or []
        return [i for i in items if isinstance(i, dict)]

    def create_trial(self, body: Obj) -> bool:
        """Create a trial; AlreadyExists is success (False): trial names are deterministic."""
        meta = body["metadata"]
        try:
            created = self.kube._send(
                "create",
                JOB_PLURAL,
                lambda: self.custom.create_namespaced_custom_object(
                    GROUP, VERSION, meta["namespace"], JOB_PLURAL, body, _preload_content=False
                ),
                expected=EXISTS,
                read=False,
            )
        except ApiException as err:
            if err.status in REJECTED:
                raise ChildRejectedError(f"TrainingJob {meta['name']}: {err.body}") from err
            raise
        return created is not None

    def annotate_trial(self, namespace: str, name: str, annotations: dict[str, str]) -> None:
        patch: Any = {"metadata": {"annotations": annotations}}
        self.kube._send(
            "patch",
            JOB_PLURAL,
            lambda: self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, JOB_PLURAL, name, patch, _preload_content=False
            ),
            expected=ABSENT,
            read=False,
        )

    def replace_status(self, body: Obj, status: Obj) -> Obj | None:
        """PUT the sweep's status at the observed resourceVersion; None on 404/409."""
        meta = body["metadata"]
        obj = {
            "apiVersion": body["apiVersion"],
            "kind": body["kind"],
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "resourceVersion": meta["resourceVersion"],
            },
            "spec": body.get("spec", {}),
            "status": status,
        }
        return self.kube._send(
            "update",
            SWEEP_PLURAL + "/status",
            lambda: self.custom.replace_namespaced_custom_object_status(
                GROUP,
                VERSION,
                meta["namespace"],
                SWEEP_PLURAL,
                meta["name"],
                obj,
                _preload_content=False,
            ),
            expected=STALE,
        )
