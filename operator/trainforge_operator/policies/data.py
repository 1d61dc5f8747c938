"""Data staging: how far each pod's dataset initializer got, as the `DataStaged` condition.

With `spec.data.uri` every worker pod starts with the `stage-data` init container
(builders.add_data_staging). While it runs the condition is False (reason Staging) and the phase
message says how many pods have their data; once every pod of the attempt staged it, the
condition is True with rank 0's own account (bytes, files, seconds) from its termination
message. A stager that fails fails its pod, which the failure policy reports like any worker
failure (exit 67 DataStagingFailed is permanent, 75 retryable), naming the URI and the error.
"""

from __future__ import annotations

from typing import Any

from trainforge_api import termination
from trainforge_api.context import DATA_DIR
from trainforge_api.trainingjob import TrainingJobSpec
from trainforge_operator import pods
from trainforge_operator.builders import STAGE_DATA_CONTAINER
from trainforge_operator.policies.state import Pass
from trainforge_operator.status import condition_true

Obj = dict[str, Any]
CONDITION = "DataStaged"


def report(p: Pass, spec: TrainingJobSpec, current: list[Obj]) -> None:
    """Set DataStaged from the current attempt's init containers (a job without data: nothing)."""
    if not spec.data.uri or not current:
        return
    nodes = spec.parallelism.nodes
    staged = [pod for pod in current if _staged(pod)]
    if len(staged) == nodes:
        _all_staged(p, spec, current)
        return
    message = f"staging {spec.data.uri} into {DATA_DIR}: {len(staged)}/{nodes} pods done"
    p.condition(CONDITION, False, "Staging", message)
    if p.status.phase in ("Pending", "Starting") and not pods.why_waiting(current):
        p.status.message = f"attempt {p.status.attempt}: {message}"


def _staged(pod: Obj) -> bool:
    state, detail = pods.init_state(pod, STAGE_DATA_CONTAINER)
    return state == "terminated" and detail.get("exitCode") == 0


def _all_staged(p: Pass, spec: TrainingJobSpec, current: list[Obj]) -> None:
    """True, with what rank 0's stager said it copied; an Event the first time."""
    rank0 = pods.rank0(current)
    detail = pods.init_state(rank0, STAGE_DATA_CONTAINER)[1] if rank0 is not None else {}
    summary = termination.decode(detail.get("message"))
    message = str(summary.get("message") or f"staged {spec.data.uri} into {DATA_DIR}")
    if not condition_true(p.status.conditions, CONDITION):
        p.event("Normal", CONDITION, message)
    p.condition(CONDITION, True, "Staged", message)
