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

from trainforge_api.trainingjob import TrainingJobStatus

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
