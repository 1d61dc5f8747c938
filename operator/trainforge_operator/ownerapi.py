"""The API calls of a controller whose objects own TrainingJobs: a TrainingSweep (its trials) and
a TrainingSchedule (its runs). Get the object, list its TrainingJobs by label, create one
(AlreadyExists is success: child names are deterministic), annotate one, write the status.

Built on `KubeApi._send`, so the same statuses are answers (404 absent, 409 exists or stale) and
failures are counted in trainforge_api_errors_total the same way.
"""

from __future__ import annotations

from collections.abc import Callable

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
from trainforge_operator.rest import PATCH, ApiException, custom_path


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
        self.plural = plural
        self.label = label
        self.why_rejected = why_rejected

    async def get(self, namespace: str, name: str) -> Obj | None:
        """The owner object, or None when it does not exist."""
        path = custom_path(GROUP, VERSION, self.plural, namespace, name)
        return await self.kube._send("get", self.plural, "GET", path, expected=ABSENT)

    async def list_children(self, namespace: str, owner: str) -> list[Obj]:
        """The owner's TrainingJobs by label (ownership by uid is the caller's check)."""
        path = custom_path(GROUP, VERSION, JOBS, namespace)
        query = {"labelSelector": f"{self.label}={owner}"}
        listing = await self.kube._send("list", JOBS, "GET", path, query=query)
        items = (listing or {}).get("items") or []
        return [i for i in items if isinstance(i, dict)]

    async def create_child(self, body: Obj) -> bool:
        """Create a TrainingJob; AlreadyExists is success (False): child names are deterministic."""
        meta = body["metadata"]
        path = custom_path(GROUP, VERSION, JOBS, meta["namespace"])
        try:
            created = await self.kube._send(
                "create", JOBS, "POST", path, body=body, expected=EXISTS, read=False
            )
        except ApiException as err:
            if err.status in REJECTED:
                raise ChildRejectedError(
                    f"TrainingJob {meta['name']}: {self.why_rejected(err)}"
                ) from err
            raise
        return created is not None

    async def annotate_child(self, namespace: str, name: str, annotations: dict[str, str]) -> None:
        patch = {"metadata": {"annotations": annotations}}
        path = custom_path(GROUP, VERSION, JOBS, namespace, name)
        await self.kube._send(
            "patch",
            JOBS,
            "PATCH",
            path,
            body=patch,
            content_type=PATCH,
            expected=ABSENT,
            read=False,
        )

    async def replace_status(self, body: Obj, status: Obj) -> Obj | None:
        """PUT the owner's status at the observed resourceVersion; None on 404/409."""
        return await self.kube.replace_custom_status(self.plural, body, status)
