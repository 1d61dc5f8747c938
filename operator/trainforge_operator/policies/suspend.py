"""`runPolicy.suspend`: a suspended job has no pods; resuming recreates its gang from scratch.

Suspension frees the GPUs without losing the job (a queue such as Kueue suspends and resumes
jobs to share a pool). The start and running times are reset, so deadlines count from resume.
"""

from __future__ import annotations

from trainforge_operator.policies.state import Pass


def suspend(p: Pass) -> None:
    """Delete every pod and report Suspended."""
    p.delete(p.obs.pods)
    if p.old.phase != "Suspended":
        p.event("Normal", "Suspended", "job suspended: worker pods deleted")
    p.set_phase("Suspended", "suspended (spec.runPolicy.suspend is true)")
    p.condition("Suspended", True, "Suspended", "spec.runPolicy.suspend is true")
    p.condition("PodsReady", False, "Suspended", "the job is suspended")
    p.status.start_time = None
    p.status.running_time = None
    p.status.restart_after = None


def resume(p: Pass) -> None:
    """A job that was Suspended and no longer is goes back to Pending (no-op otherwise)."""
    if p.old.phase != "Suspended":
        return
    p.condition("Suspended", False, "Resumed", "the job was resumed")
    p.event("Normal", "Resumed", "job resumed: recreating the gang")
    p.set_phase("Pending", "resumed")
