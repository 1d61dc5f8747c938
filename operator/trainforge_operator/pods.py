"""Reading observed worker pods (pure): their labels, phase, scheduling and container states.

Pods arrive as the API's plain camelCase dicts, where any field may be missing while the kubelet
and the scheduler catch up; these readers say what a policy needs to know and never raise on a
half-filled pod.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from trainforge_operator.names import LABEL_ATTEMPT, LABEL_INDEX
from trainforge_operator.status import parse_time

Obj = dict[str, Any]


def _label_int(pod: Obj, key: str) -> int | None:
    value = (pod["metadata"].get("labels") or {}).get(key)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def index(pod: Obj) -> int | None:
    """The pod's node rank."""
    return _label_int(pod, LABEL_INDEX)


def attempt(pod: Obj) -> int | None:
    """The gang attempt the pod belongs to."""
    return _label_int(pod, LABEL_ATTEMPT)


def rank0(pods: list[Obj]) -> Obj | None:
    return next((p for p in pods if index(p) == 0), None)


def name(pod: Obj) -> str:
    return str(pod["metadata"]["name"])


def terminating(pod: Obj) -> bool:
    """Deletion was requested: the pod is on its way out."""
    return bool(pod["metadata"].get("deletionTimestamp"))


def phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def scheduled(pod: Obj) -> bool:
    if (pod.get("spec") or {}).get("nodeName"):
        return True
    return any(
        c.get("type") == "PodScheduled" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def first_created(pods: list[Obj]) -> dt.datetime | None:
    """When the earliest of `pods` was created (the gang's creation)."""
    created = [parse_time(p["metadata"].get("creationTimestamp")) for p in pods]
    return min((c for c in created if c is not None), default=None)


def terminated_state(pod: Obj, container: str | None = None) -> Obj | None:
    """The terminated state of the (first or named) container, if it terminated."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if container is not None and cs.get("name") != container:
            continue
        term = (cs.get("state") or {}).get("terminated")
        if term:
            return dict(term, name=cs.get("name", ""))
    return None


def init_state(pod: Obj, container: str) -> tuple[str, Obj]:
    """The named init container's state ('waiting', 'running', 'terminated' or '') and details."""
    for cs in (pod.get("status") or {}).get("initContainerStatuses") or []:
        if cs.get("name") == container:
            for key in ("terminated", "running", "waiting"):
                if (cs.get("state") or {}).get(key) is not None:
                    return key, dict(cs["state"][key] or {})
    return "", {}


def scheduling_message(pods: list[Obj]) -> str:
    """The scheduler's reason from the first unschedulable pod (names the short resource)."""
    for pod in sorted(pods, key=name):
        for c in (pod.get("status") or {}).get("conditions") or []:
            if c.get("type") == "PodScheduled" and c.get("status") == "False":
                msg = c.get("message") or c.get("reason") or "unschedulable"
                return f"pod {name(pod)} is unschedulable: {msg}"
    return ""


def container_waiting_message(pods: list[Obj]) -> str:
    """Why a scheduled container does not start (image pull, missing secret or config map)."""
    for pod in sorted(pods, key=name):
        status = pod.get("status") or {}
        for cs in [
            *(status.get("initContainerStatuses") or []),
            *(status.get("containerStatuses") or []),
        ]:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason and reason != "ContainerCreating":
                detail = f" ({waiting['message']})" if waiting.get("message") else ""
                return (
                    f"pod {name(pod)} container {cs.get('name', '')} is waiting: {reason}{detail}"
                )
    return ""


def why_waiting(pods: list[Obj]) -> str:
    """What keeps the gang from running, as the scheduler or the kubelet says it ('' if unsaid)."""
    return scheduling_message(pods) or container_waiting_message(pods)
