"""`trainforge.io/stop-reason`: end a job on request, as Stopped with that reason (not a failure).

A TrainingSweep prunes a trial by setting the annotation to `Pruned`; anything allowed to annotate
the job may stop it the same way. Every pod is deleted (the training had no result to finish), the
last polled progress and metric history are kept, and the job is terminal from then on.
"""

from __future__ import annotations

import re

from trainforge_api.trainingjob import STOP_ANNOTATION
from trainforge_operator.policies import ttl
from trainforge_operator.policies.state import Pass
from trainforge_operator.status import iso

# A condition reason is CamelCase (metav1.Condition); anything else is reported as Stopped.
_REASON = re.compile(r"[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?")


def requested(p: Pass) -> str | None:
    """The stop reason from the job's annotation, or None when nobody asked to stop it."""
    raw = ((p.obs.body.get("metadata") or {}).get("annotations") or {}).get(STOP_ANNOTATION)
    if not raw:
        return None
    return raw if _REASON.fullmatch(raw) and len(raw) <= 64 else "Stopped"


def stop(p: Pass, reason: str) -> None:
    """Delete every pod and end the job as Stopped, naming the reason."""
    p.delete(p.obs.pods)
    message = f"stopped on request ({STOP_ANNOTATION}: {reason})"
    p.set_phase("Stopped", message)
    p.status.completion_time = iso(p.now)
    p.condition("Stopped", True, reason, message)
    p.condition("PodsReady", False, "Stopped", message)
    p.event("Normal", reason, message)
    ttl.schedule_deletion(p)
