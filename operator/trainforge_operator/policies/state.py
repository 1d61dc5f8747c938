"""The working state one reconcile pass threads through the policies.

`decide()` builds one `Pass` from what was observed; each policy reads the stored status and the
pods from it and writes the new status and the plan through it. One mutable object, because
several policies act in one pass (the running report, then the stall check that may restart the
gang) and each must see what the previous one wrote.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from trainforge_api.trainingjob import Phase, TrainingJobSpec, TrainingJobStatus
from trainforge_operator import pods
from trainforge_operator.builders import JobRef
from trainforge_operator.config import OperatorConfig
from trainforge_operator.plan import Event, EventType, Observed, Plan
from trainforge_operator.status import count_workers, parse_status, set_condition

Obj = dict[str, Any]

# How soon to look again while a gang is being created and scheduled.
PENDING_REQUEUE = 2.0


@dataclass
class Pass:
    """One reconcile pass: what was observed, the stored status, and the plan being built."""

    obs: Observed
    config: OperatorConfig
    spec: TrainingJobSpec | None  # None when the spec does not parse
    job: JobRef
    old: TrainingJobStatus  # the status as stored before this pass
    plan: Plan  # plan.status is the status this pass writes
    live: list[Obj]  # the pods not already being deleted

    @classmethod
    def begin(cls, obs: Observed, config: OperatorConfig, spec: TrainingJobSpec | None) -> Pass:
        old = parse_status(obs.body.get("status"))
        live = [p for p in obs.pods if not pods.terminating(p)]
        # A second parse is the deep copy: pydantic's model_copy(deep=True) goes through
        # copy.deepcopy and took a third of a steady pass (bench: pass_cost in benchmarks.md).
        status = parse_status(obs.body.get("status"))
        status.observed_generation = obs.body.get("metadata", {}).get("generation")
        status.workers = count_workers(live)
        job = JobRef.from_body(obs.body)
        return cls(obs, config, spec, job, old, Plan(status=status), live)

    @property
    def status(self) -> TrainingJobStatus:
        return self.plan.status

    @property
    def now(self) -> dt.datetime:
        return self.obs.now

    def condition(self, type_: str, value: bool, reason: str, message: str = "") -> None:
        self.status.conditions = set_condition(
            self.status.conditions,
            type_,
            value,
            reason,
            message,
            self.now,
            self.status.observed_generation,
        )

    def event(self, type_: EventType, reason: str, message: str) -> None:
        self.plan.events.append(Event(type_, reason, message))

    def set_phase(self, phase: Phase, message: str) -> None:
        self.status.phase = phase
        self.status.message = message

    def delete(self, doomed: list[Obj]) -> None:
        """Delete these pods (once each; those already terminating are left alone), each by
        the UID observed, so the delete never reaches a newer pod of the same name."""
        for pod in doomed:
            name = pods.name(pod)
            if not pods.terminating(pod) and name not in self.plan.delete_pods:
                self.plan.delete_pods.append(name)
                uid = (pod.get("metadata") or {}).get("uid")
                if uid:
                    self.plan.delete_uids[name] = str(uid)

    def requeue(self, seconds: float) -> None:
        """Look again in `seconds` (at least 0.5), unless another policy wants it sooner."""
        seconds = max(seconds, 0.5)
        if self.plan.requeue_after is None or seconds < self.plan.requeue_after:
            self.plan.requeue_after = seconds
