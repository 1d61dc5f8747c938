"""Policy tables: one row per observed state and what the reconcile pass must decide about it.

A row is `row(id, Seen(...), Want(...))`. `Seen` is the observed state (spec, stored status, pods,
seconds after T0); `Want` names only what the row is about (phase, conditions, Events, pods
created and deleted, requeue, status fields). `outcome(plan, want)` cuts the plan down to the
fields `want` names, in the same shape, so each test is one `assert outcome(...) == want.fields()`
and a failure shows a readable diff of just those fields.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pytest

from trainforge_operator.config import OperatorConfig
from trainforge_operator.decision import decide
from trainforge_operator.plan import Observed, Plan
from trainforge_operator.status import status_dict

from ..conftest import T0, make_job

Obj = dict[str, Any]


def worker(i: int) -> str:
    return f"digits-worker-{i}"


def at(seconds: float) -> str:
    """The timestamp `seconds` after T0, as the status stores it."""
    return (T0 + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Seen:
    """An observed state: the job's spec and stored status, its pods, `at` seconds after T0."""

    spec: Obj = field(default_factory=dict)
    status: Obj = field(default_factory=dict)
    pods: list[Obj] = field(default_factory=list)
    at: float = 0
    progress: Obj | None = None  # rank 0's /progress, when polled
    children: bool = True  # the Service and the context ConfigMap exist
    configmap: dict[str, str] | None = None  # the context ConfigMap's data, when read
    rejected: str | None = None  # the API server refused a child
    create_failed: str | None = None  # the API server refused a create for another reason
    annotations: dict[str, str] = field(default_factory=dict)  # the job's annotations
    departed: list[Obj] = field(default_factory=list)  # pods the watch saw deleted

    def job(self) -> Obj:
        body = make_job(self.spec, status=self.status)
        if self.annotations:
            body["metadata"]["annotations"] = dict(self.annotations)
        return body

    def decide(self, config: OperatorConfig) -> Plan:
        observed = Observed(
            body=self.job(),
            pods=self.pods,
            has_service=self.children,
            has_configmap=self.children,
            now=T0 + dt.timedelta(seconds=self.at),
            progress=self.progress,
            rejected=self.rejected,
            create_failed=self.create_failed,
            configmap_data=self.configmap,
            departed=self.departed,
        )
        return decide(observed, config)


@dataclass(frozen=True)
class Want:
    """What the pass decides. Only the fields given are checked."""

    phase: str | None = None
    says: str | None = None  # a fragment of status.message
    conditions: dict[str, str] | None = None  # type -> "True"/"False", for the types named
    events: list[str] | None = None  # Event reasons, in order
    created: list[str] | None = None  # names of the objects to create, in order
    updated: list[str] | None = None  # names of the objects to update
    deleted: list[str] | None = None  # pods to delete, sorted
    requeue: float | None = None  # seconds until the next pass
    delete_job: bool | None = None
    failed: str | None = None  # the failure reason counted in the metrics
    restarted: bool | None = None
    restart_kind: str | None = None  # what trainforge_restarts_total{kind} counts
    time_to_running: float | None = None
    status: Obj | None = None  # fields of the status as stored (camelCase), recursively

    def fields(self) -> Obj:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def row(id: str, seen: Seen, want: Want) -> Any:
    """A table row, its id first so the table reads as a list of sentences."""
    return pytest.param(seen, want, id=id)


def _cut(got: Any, want: Any) -> Any:
    """`got` restricted to the keys `want` names, recursively."""
    if isinstance(got, dict) and isinstance(want, dict):
        return {k: _cut(got.get(k), v) for k, v in want.items()}
    return got


def outcome(plan: Plan, want: Want) -> Obj:
    """The parts of `plan` that `want` names, shaped like `want.fields()`."""
    message = plan.status.message
    full: Obj = {
        "phase": plan.status.phase,
        "says": want.says if want.says and want.says in message else message,
        "conditions": {c.type: c.status for c in plan.status.conditions},
        "events": [e.reason for e in plan.events],
        "created": [o["metadata"]["name"] for o in plan.create],
        "updated": [o["metadata"]["name"] for o in plan.update],
        "deleted": sorted(plan.delete_pods),
        "requeue": plan.requeue_after,
        "delete_job": plan.delete_job,
        "failed": plan.failed_reason,
        "restarted": plan.restarted,
        "restart_kind": plan.restart_kind,
        "time_to_running": plan.time_to_running,
        "status": status_dict(plan.status),
    }
    return {k: _cut(full[k], v) for k, v in want.fields().items()}


def apply(job: Obj, plan: Plan) -> Obj:
    """The job as the next pass sees it after the status write."""
    return dict(job, status=status_dict(plan.status))
