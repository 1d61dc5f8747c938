"""What one reconcile pass saw (`Observed`) and what it decided (`Plan`, `Event`): plain data.

These types are the seam between the pure decision (`decision.py`, `policies/`) and the side that
talks to the API server (`controller.py`, `kube.py`): the controller fills an `Observed`,
`decide()` returns a `Plan`, the controller carries it out. They depend on nothing else in the
operator, so the API adapter can speak them without importing the decision.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

from trainforge_api.trainingjob import Recovery, TrainingJobStatus

Obj = dict[str, Any]
EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True)
class Observed:
    """Everything reconcile needs, read from the API just before deciding."""

    body: Obj
    pods: list[Obj]
    has_service: bool
    has_configmap: bool
    now: dt.datetime
    progress: Obj | None = None
    rejected: str | None = None  # the API server refused a child built from this spec
    # the API server refused to create a child for another reason (403, 429, 5xx): its message
    create_failed: str | None = None
    configmap_data: dict[str, str] | None = None  # the context ConfigMap's data, when read
    # Worker pods deleted while the operator watched, as last seen (why a pod vanished).
    departed: list[Obj] = field(default_factory=list)
    queue: QueueView | None = None  # Kueue's view of the job, when Kueue admits it


@dataclass(frozen=True)
class QueueView:
    """What Kueue says about one job (read only when Kueue admits it: config.kueue and the
    queue-name label). See kueue.py and policies/queue.py."""

    workload: Obj | None  # the job's Workload; None before it is created
    local_queue: Obj | None = None  # the LocalQueue named by the label (None: missing/unread)
    flavors: dict[str, Obj] = field(default_factory=dict)  # ResourceFlavors of the admission
    priority: int | None = None  # the WorkloadPriorityClass's value, when the job names one
    priority_missing: bool = False  # the job names a WorkloadPriorityClass that does not exist


@dataclass(frozen=True)
class Event:
    """A core/v1 Event on the TrainingJob, sent only after the status write succeeded."""

    type: EventType
    reason: str
    message: str


@dataclass
class Plan:
    """What the controller does, in order: create, update, delete, write status, send events."""

    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete_pods: list[str] = field(default_factory=list)
    delete_uids: dict[str, str] = field(default_factory=dict)  # pod name -> the UID observed
    delete_job: bool = False
    status: TrainingJobStatus = field(default_factory=TrainingJobStatus)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    # For the operator's metrics: set once, on the pass that made the transition.
    failed_reason: str | None = None
    restarted: bool = False
    time_to_running: float | None = None
    restart_kind: str | None = None  # gang, in-place, elastic-shrink, elastic-grow
    recovery: Recovery | None = None  # a restart whose training advanced again this pass
    # Kueue (policies/queue.py): the Workload to create, and the Workload status to write (the
    # whole Workload, at its observed resourceVersion) once the job's own status is stored.
    workload_create: Obj | None = None
    workload_status: Obj | None = None
    queued_seconds: float | None = None  # set on the pass that saw the job admitted
