"""The API calls of a controller whose objects own TrainingJobs: a TrainingSweep (its trials) and
a TrainingSchedule (its runs). Get the object, list its TrainingJobs by label, create one
(AlreadyExists is success: child names are deterministic), annotate one, write the status.

Built on `KubeApi._send`, so the same statuses are answers (404 absent, 409 exists or stale) and
failures are counted in trainforge_api_errors_total the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

from trainforge_api.base import GROUP, VERSION
from trainforge_api.trainingjob import PLURAL as JOBS
from trainforge_operator.kube import (
    ABSENT,
    EXISTS,
    REJECTED,
    ChildRejectedError,
    KubeApi,
    Obj,
    _server_message,
)


class OwnerApi:
    """`plural`: the owner's resource; `label`: the TrainingJob label naming the owner;
    `why_rejected`: what a refused create says after the TrainingJob's name."""

    def __init__(
        self,
        kube: KubeApi,
        plural: str,
        label: str,
        why_rejected: Callable[[ApiException], object] = _server_message,
    ) -> None:
        self.kube = kube
        self.custom = kube.custom
        self.plural = plural
        self.label = label
        self.why_rejected = why_rejected

    def get(self, namespace: str, name: str) -> Obj | None:
        """The owner object, or None when it does not exist."""
        return self.kube._send(
            "get",
            self.plural,
            lambda: self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, self.plural, name, _preload_content=False
            ),
            expected=ABSENT,
        )

    def list_children(self, namespace: str, owner: str) -> list[Obj]:
        """The owner's TrainingJobs by label (ownership by uid is the caller's check)."""
        listing = self.kube._send(
            "list",
            JOBS,
            lambda: self.custom.list_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                JOBS,
                label_selector=f"{self.label}={owner}",
                _preload_content=False,
            ),
        )
        items = (listing or {}).get("items") or []
        return [i for i in items if isinstance(i, dict)]

    def create_child(self, body: Obj) -> bool:
        """Create a TrainingJob; AlreadyExists is success (False): child names are deterministic."""
        meta = body["metadata"]
        try:
            created = self.kube._send(
                "create",
                JOBS,
                lambda: self.custom.create_namespaced_custom_object(
                    GROUP, VERSION, meta["namespace"], JOBS, body, _preload_content=False
                ),
                expected=EXISTS,
                read=False,
            )
        except ApiException as err:
            if err.status in REJECTED:
                raise ChildRejectedError(
                    f"TrainingJob {meta['name']}: {self.why_rejected(err)}"
                ) from err
            raise
        return created is not None

    def annotate_child(self, namespace: str, name: str, annotations: dict[str, str]) -> None:
        patch: Any = {"metadata": {"annotations": annotations}}
        self.kube._send(
            "patch",
            JOBS,
            lambda: self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, JOBS, name, patch, _preload_content=False
            ),
            expected=ABSENT,
            read=False,
        )

    def replace_status(self, body: Obj, status: Obj) -> Obj | None:
        """PUT the owner's status at the observed resourceVersion; None on 404/409."""
        return self.kube.replace_custom_status(self.plural, body, status)
