"""Time limits: the whole run (`activeDeadlineSeconds`), getting the gang running
(`maxPendingSeconds`), and a running gang that stopped advancing (`progressTimeoutSeconds`).

Each one either looks again exactly when the limit would pass, or acts: a deadline or a pending
timeout fails the job; a stall restarts the gang (`onStall: restart`) or fails it (`fail`).
"""

from __future__ import annotations

from typing import Any

from trainforge_api.progress import UNREPORTED_PHASE
from trainforge_api.trainingjob import TrainingJobSpec
from trainforge_operator import pods
from trainforge_operator.names import CONTAINER, worker_name
from trainforge_operator.policies import failure
from trainforge_operator.policies.state import Pass
from trainforge_operator.status import condition_true, parse_time

Obj = dict[str, Any]
# Look again just after a limit, so the pass that acts sees it exceeded.
PAST_LIMIT_S = 0.5


def deadline_exceeded(p: Pass, spec: TrainingJobSpec) -> bool:
    """Fail a job running longer than activeDeadlineSeconds since it (re)started."""
    deadline = spec.run_policy.active_deadline_seconds
    started = parse_time(p.status.start_time)
    if deadline is None or started is None:
        return False
    elapsed = (p.now - started).total_seconds()
    if elapsed <= deadline:
        p.requeue(deadline - elapsed)
        return False
    failure.fail(
        p,
        "DeadlineExceeded",
        f"the job ran {int(elapsed)}s, longer than runPolicy.activeDeadlineSeconds={deadline}",
        spec.run_policy.clean_pod_policy,
    )
    return True


def check_pending(p: Pass, spec: TrainingJobSpec, current: list[Obj]) -> None:
    """Fail a gang not running within maxPendingSeconds of its creation, saying what held it."""
    limit = spec.run_policy.max_pending_seconds
    first = pods.first_created(current)
    if limit is None or first is None:
        return
    waited = (p.now - first).total_seconds()
    if waited <= limit:
        p.requeue(limit - waited + PAST_LIMIT_S)
        return
    nodes = spec.parallelism.nodes
    ready = sum(1 for pod in current if pods.phase(pod) in ("Running", "Succeeded"))
    detail = pods.why_waiting(current) or f"only {ready}/{nodes} workers were running"
    failure.fail(
        p,
        "PendingTimeout",
        f"the gang was not running within runPolicy.maxPendingSeconds={limit}: {detail}",
        spec.run_policy.clean_pod_policy,
    )
    # A job that never ran leaves no pods behind, whatever cleanPodPolicy says.
    p.delete(p.live)


def check_stall(p: Pass, spec: TrainingJobSpec) -> None:
    """A running gang whose step has not advanced for progressTimeoutSeconds is stalled."""
    timeout = spec.run_policy.progress_timeout_seconds
    if timeout is None:
        return
    progress = p.status.progress
    marks = [
        parse_time(p.status.running_time),
        parse_time(progress.last_advance_time if progress else None),
    ]
    since = max((m for m in marks if m is not None), default=None)
    if since is None:
        return
    idle = (p.now - since).total_seconds()
    if idle <= timeout:
        if condition_true(p.status.conditions, "Stalled"):
            p.condition("Stalled", False, "Progressing", "the step advances again")
        p.requeue(timeout - idle + PAST_LIMIT_S)
        return
    if progress is not None and progress.phase == UNREPORTED_PHASE:
        _warn_unreported(p, timeout)
        return
    step = progress.step if progress else None
    at = f"step {step}" if step is not None else "no step reported"
    message = (
        f"no training progress for {int(idle)}s ({at}; runPolicy.progressTimeoutSeconds={timeout})"
    )
    p.condition("Stalled", True, "ProgressTimeout", message)
    p.event("Warning", "Stalled", message)
    _on_stall(p, spec, message)


def _warn_unreported(p: Pass, timeout: int) -> None:
    """The pod says nothing reports progress: a stall cannot be told from silence, so warn once
    (condition ProgressReported=False) instead of restarting a job that may be training fine."""
    if any(c.type == "ProgressReported" and c.status == "False" for c in p.status.conditions):
        return
    message = (
        f"runPolicy.progressTimeoutSeconds={timeout} is set but the command reports no progress, "
        "so stall detection is off: call trainforge_sdk.report(step=..., total_steps=...) each "
        "step, or add the Hugging Face / Lightning callback (docs/byo-code.md)"
    )
    p.condition("ProgressReported", False, "NoProgressSource", message)
    p.event("Warning", "NoProgressSource", message)


def _on_stall(p: Pass, spec: TrainingJobSpec, message: str) -> None:
    """Blame rank 0's worker container (it reports progress), then fail or restart per onStall."""
    stall = failure.PodFailure(
        pod=worker_name(p.job.name, 0),
        container=CONTAINER,
        exit_code=None,
        signal=None,
        reason="Stalled",
        message=message,
        finished_at="",
        disrupted=False,
    )
    if spec.run_policy.on_stall == "fail":
        failure.fail(p, "Stalled", message, spec.run_policy.clean_pod_policy, stall)
    else:
        failure.restart(p, spec, stall, "Stalled")
