"""Recovery after a gang restart: when training advanced again, and how many steps it redid.

`started` notes the failure (time, rank 0's step) in status.lastRecovery when the gang restarts;
`check` runs on every Running pass and closes it when rank 0's freshly polled step has advanced
past the step the new attempt resumed from (or, for a job that reported no progress before the
failure, when every worker runs again). The pass then carries the recovery time and the lost
steps (step at failure minus the step resumed from) to the operator's metrics.
"""

from __future__ import annotations

from trainforge_api.trainingjob import Recovery
from trainforge_operator.policies.state import Pass
from trainforge_operator.status import iso, parse_time


def started(p: Pass, kind: str = "gang") -> Recovery:
    """A recovery that starts now, from the step rank 0 last reported."""
    step = p.status.progress.step if p.status.progress is not None else None
    return Recovery(kind=kind, failed_at=iso(p.now), step_at_failure=step)


def check(p: Pass) -> None:
    """Close the open recovery once training advances again (call while Running)."""
    rec = p.status.last_recovery
    if rec is None or rec.recovered_at is not None:
        return
    failed_at = parse_time(rec.failed_at)
    if failed_at is None:
        return
    lost: int | None = None
    if rec.step_at_failure is not None:
        progress = p.status.progress
        if p.obs.progress is None or progress is None or progress.step is None:
            return  # no fresh poll of this attempt yet
        resumed = progress.resumed_from_step or 0
        if progress.step <= resumed:
            return  # resumed, but no step done yet
        lost = max(rec.step_at_failure - resumed, 0)
    seconds = max((p.now - failed_at).total_seconds(), 0.0)
    p.status.last_recovery = rec.model_copy(
        update={"recovered_at": iso(p.now), "seconds": round(seconds, 3), "lost_steps": lost}
    )
    p.plan.recovery = p.status.last_recovery
    redone = f", {lost} steps redone" if lost is not None else ""
    p.event(
        "Normal", "Recovered", f"training advances again {seconds:.1f}s after the failure{redone}"
    )
