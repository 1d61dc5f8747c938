"""A schedule's runs: their deterministic names, the TrainingJob built for one, and what is read
back from one (pure).

A run is named `<schedule>-<unix minute of its scheduled time>`, so the same scheduled time
always gives the same name: an operator that restarts, or a pass whose status write was lost,
creates nothing twice (the create answers AlreadyExists). What the schedule needs to remember
about a run (when it was due, why, and on which data) is on the run itself, in annotations, so
the state is rebuilt from the children.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from trainforge_api.base import API_VERSION
from trainforge_api.trainingjob import KIND as JOB_KIND
from trainforge_api.trainingjob import TERMINAL_PHASES
from trainforge_api.trainingschedule import KIND, TrainingScheduleSpec, Trigger
from trainforge_operator.names import LABEL_MANAGED, MANAGED_BY
from trainforge_operator.status import iso, parse_time

Obj = dict[str, Any]
LABEL_SCHEDULE = "trainforge.io/schedule"
SCHEDULED_TIME = "trainforge.io/scheduled-time"
TRIGGER = "trainforge.io/trigger"
DATA_FINGERPRINT = "trainforge.io/data-fingerprint"
WARM_START_ENV = "TRAINFORGE_WARM_START_URI"
# The champion's score, drawn beside the run's own and its baseline in the run's report.
CHAMPION_ENV = "TRAINFORGE_CHAMPION_METRICS"


def run_name(schedule: str, scheduled: dt.datetime) -> str:
    return f"{schedule}-{int(scheduled.timestamp()) // 60}"


def artifacts_uri(spec: TrainingScheduleSpec, namespace: str, run: str) -> str | None:
    """Where the runtime uploads a run's artifacts: <artifacts.uri>/<namespace>/<run>."""
    base = spec.job_template.artifacts.uri
    return None if base is None else f"{base.rstrip('/')}/{namespace}/{run}"


def pointer_uri(spec: TrainingScheduleSpec, namespace: str, schedule: str) -> str | None:
    """The champion pointer, next to the runs' artifacts: <artifacts.uri>/<ns>/<schedule>/."""
    base = spec.job_template.artifacts.uri
    return None if base is None else f"{base.rstrip('/')}/{namespace}/{schedule}/champion.json"


@dataclass(frozen=True)
class Run:
    """One child TrainingJob as observed."""

    name: str
    scheduled: dt.datetime
    trigger: Trigger = "schedule"
    fingerprint: str | None = None
    phase: str | None = None
    results: dict[str, Any] = field(default_factory=dict)
    findings: list[Obj] = field(default_factory=list)
    artifacts_uri: str | None = None

    @property
    def finished(self) -> bool:
        return self.phase in TERMINAL_PHASES


def read_run(obj: Obj) -> Run | None:
    """The run a child TrainingJob stands for; None when it lacks the schedule's annotations."""
    meta = obj.get("metadata") or {}
    notes = meta.get("annotations") or {}
    scheduled = parse_time(notes.get(SCHEDULED_TIME))
    if scheduled is None:
        return None
    status = obj.get("status") or {}
    trigger: Trigger = "newData" if notes.get(TRIGGER) == "newData" else "schedule"
    return Run(
        name=str(meta.get("name", "")),
        scheduled=scheduled,
        trigger=trigger,
        fingerprint=notes.get(DATA_FINGERPRINT) or None,
        phase=status.get("phase"),
        results=dict(status.get("results") or {}),
        findings=[f for f in status.get("findings") or [] if isinstance(f, dict)],
        artifacts_uri=(status.get("artifacts") or {}).get("uri"),
    )


def build_run(
    schedule: Obj,
    spec: TrainingScheduleSpec,
    scheduled: dt.datetime,
    trigger: Trigger,
    fingerprint: str | None,
    warm_start_uri: str | None,
    champion_metrics: dict[str, float] | None = None,
) -> Obj:
    """The TrainingJob of one run, owned by the schedule (deleted with it)."""
    meta = schedule["metadata"]
    name = run_name(meta["name"], scheduled)
    job_spec = spec.job_template.model_dump(by_alias=True, exclude_none=True, mode="json")
    extra = {}
    if warm_start_uri is not None:
        extra[WARM_START_ENV] = warm_start_uri
    if champion_metrics:
        extra[CHAMPION_ENV] = json.dumps(champion_metrics, sort_keys=True)
    if extra:
        job_spec["env"] = [
            *(e for e in job_spec.get("env", []) if e.get("name") not in extra),
            *({"name": k, "value": v} for k, v in extra.items()),
        ]
    annotations = {SCHEDULED_TIME: iso(scheduled), TRIGGER: trigger}
    if fingerprint is not None:
        annotations[DATA_FINGERPRINT] = fingerprint
    return {
        "apiVersion": API_VERSION,
        "kind": JOB_KIND,
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": {LABEL_SCHEDULE: meta["name"], LABEL_MANAGED: MANAGED_BY},
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "name": meta["name"],
                    "uid": meta.get("uid", ""),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": job_spec,
    }
