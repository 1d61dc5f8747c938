"""Children the API server refused to create for a reason outside the object: say so, retry, and
fail the job past a limit.

A 400/422 means the object built from the spec is wrong, and the job is InvalidSpec at once
(`failure.invalid`). Other refusals name something outside the object, which someone can fix while
the job waits, as the Job controller's FailedCreate does: a 403 for a ServiceAccount or a
PriorityClass that does not exist, an exhausted quota or an admission policy; a 429 or 5xx from
an overloaded API server. The job then shows the server's own message in the condition
`CreateFailed` and a Warning Event `FailedCreate`, and the operator retries with backoff. When
it still fails after `runPolicy.maxPendingSeconds` (else the operator's `createFailureSeconds`),
counted from the first refusal, the job fails with reason `CreateFailed`. Its status is never
left empty while it waits.
"""

from __future__ import annotations

import datetime as dt

from trainforge_api.trainingjob import TERMINAL_PHASES
from trainforge_operator.policies import failure
from trainforge_operator.policies.state import Pass
from trainforge_operator.status import condition_true, parse_time

CONDITION = "CreateFailed"
# Retry soon after the first refusal, then back off (the wait doubles), at most this often.
FIRST_RETRY_S = 2.0
MAX_RETRY_S = 30.0
PAST_LIMIT_S = 0.5
MESSAGE_LIMIT = 512  # the server's message, as quoted in the status and the Event


def refused(p: Pass, error: str) -> None:
    """The plan's creates were refused with `error`: none is tried again in this pass; the
    status says why, and the job fails once the refusals have lasted past the limit."""
    if p.status.phase in TERMINAL_PHASES or not (p.plan.create or p.plan.update):
        return
    p.plan.create.clear()
    p.plan.update.clear()
    _not_created_yet(p)
    error = error[:MESSAGE_LIMIT]
    limit, source = _limit(p)
    p.condition(CONDITION, True, "FailedCreate", error)
    since = _since(p)
    waited = (p.now - since).total_seconds() if since is not None else 0.0
    if waited > limit:
        message = (
            f"the API server refused to create this job's children for {int(waited)}s "
            f"({source}={int(limit)}): {error}; {_hint(error)}"
        )
        failure.fail(p, "CreateFailed", message, "All")
        p.delete(p.live)
        return
    p.status.message = f"cannot create the children yet, retrying: {error}"
    old = next((c for c in p.old.conditions if c.type == CONDITION), None)
    if old is None or old.status != "True" or old.message != error:
        p.event("Warning", "FailedCreate", f"{error}; {_hint(error)}; retrying for {int(limit)}s")
    # This replaces the gang's quick requeue: the retry backs off (the wait doubles).
    p.plan.requeue_after = max(
        min(max(waited, FIRST_RETRY_S), MAX_RETRY_S, limit - waited + PAST_LIMIT_S), 0.5
    )


def created(p: Pass) -> None:
    """A pass whose creates were not refused: the refusals, if any, are over."""
    if p.status.phase not in TERMINAL_PHASES and condition_true(p.status.conditions, CONDITION):
        p.condition(CONDITION, False, "Created", "the API server accepted the children")


def _not_created_yet(p: Pass) -> None:
    """The gang's Created condition and Event, set by the plan just refused, are not true."""
    if condition_true(p.old.conditions, "Created"):
        return
    p.status.conditions = [c for c in p.status.conditions if c.type != "Created"]
    p.plan.events = [e for e in p.plan.events if e.reason != "Created"]


def _limit(p: Pass) -> tuple[float, str]:
    pending = p.spec.run_policy.max_pending_seconds if p.spec is not None else None
    if pending is not None:
        return float(pending), "runPolicy.maxPendingSeconds"
    return p.config.create_failure_seconds, "the operator's createFailureSeconds"


def _since(p: Pass) -> dt.datetime | None:
    condition = next((c for c in p.status.conditions if c.type == CONDITION), None)
    return parse_time(condition.last_transition_time) if condition is not None else None


def _hint(error: str) -> str:
    """What to do about the refusal, for the refusals a user can fix."""
    text = error.lower()
    if "service account" in text or "serviceaccount" in text:
        return "create that ServiceAccount or fix spec.podTemplate.serviceAccountName"
    if "priorityclass" in text:
        return "create that PriorityClass or fix spec.placement.priorityClassName"
    if "quota" in text:
        return "free quota in the namespace or lower spec.resources"
    if "runtimeclass" in text:
        return "create that RuntimeClass or fix the pod template"
    return "fix what the API server names (the spec, or the namespace's policies and quotas)"
