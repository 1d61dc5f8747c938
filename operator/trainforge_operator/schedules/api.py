"""The Kubernetes calls of the schedule controller, on the operator's `KubeApi` (one client, one
place that decides which API errors are answers)."""

from __future__ import annotations

from typing import Any

from kubernetes.client.exceptions import ApiException

from trainforge_api.base import GROUP, VERSION
from trainforge_api.trainingjob import PLURAL as JOBS
from trainforge_api.trainingschedule import PLURAL as SCHEDULES
from trainforge_operator.kube import (
    ABSENT,
    EXISTS,
    REJECTED,
    STALE,
    ChildRejectedError,
    KubeApi,
    _server_message,
)
from trainforge_operator.schedules.runs import LABEL_SCHEDULE

Obj = dict[str, Any]


class ScheduleApi:
    def __init__(self, kube: KubeApi) -> None:
        self.kube = kube
        self.custom = kube.custom

    def get_schedule(self, namespace: str, name: str) -> Obj | None:
        return self.kube._send(
            "get",
            SCHEDULES,
            lambda: self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, SCHEDULES, name, _preload_content=False
            ),
            expected=ABSENT,
        )

    def list_runs(self, namespace: str, schedule: str) -> list[Obj]:
        """The schedule's TrainingJobs (by label; ownership is checked by the caller)."""
        listing = self.kube._send(
            "list",
            JOBS,
            lambda: self.custom.list_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                JOBS,
                label_selector=f"{LABEL_SCHEDULE}={schedule}",
                _preload_content=False,
            ),
        )
        return [o for o in (listing or {}).get("items") or [] if isinstance(o, dict)]

    def create_run(self, obj: Obj) -> bool:
        """Create a run; AlreadyExists is success (False): run names are deterministic."""
        meta = obj["metadata"]
        try:
            created = self.kube._send(
                "create",
                JOBS,
                lambda: self.custom.create_namespaced_custom_object(
                    GROUP, VERSION, meta["namespace"], JOBS, obj, _preload_content=False
                ),
                expected=EXISTS,
                read=False,
            )
        except ApiException as err:
            if err.status in REJECTED:
                raise ChildRejectedError(
                    f"TrainingJob {meta['name']}: {_server_message(err)}"
                ) from err
            raise
        return created is not None

    def replace_status(self, body: Obj, status: Obj) -> Obj | None:
        """PUT the status at the observed resourceVersion: the stored object, None on 404/409."""
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
            SCHEDULES + "/status",
            lambda: self.custom.replace_namespaced_custom_object_status(
                GROUP,
                VERSION,
                meta["namespace"],
                SCHEDULES,
                meta["name"],
                obj,
                _preload_content=False,
            ),
            expected=STALE,
        )
