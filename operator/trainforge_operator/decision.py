"""The level-triggered reconcile decision, as one pure function: `decide(observed, config)`.

It looks at a TrainingJob and its actual children and returns a `Plan`: children to create or
update, pods to delete, whether to delete the job (TTL), the complete new status and the Events
to send after the status write. It never calls the API or reads the clock (`now` is observed),
so every policy is unit-tested as a table of observed states (tests/unit/policies/). `decide`
is the phase machine; each policy is a module of `policies/`. The controller carries the plan
out (`Controller.execute` in controller.py, through kube.py).
"""

from __future__ import annotations

from trainforge_api.context import InvalidSpecError
from trainforge_api.trainingjob import TERMINAL_PHASES, TrainingJobSpec
from trainforge_operator.config import OperatorConfig
from trainforge_operator.plan import Observed, Plan
from trainforge_operator.policies import (
    creation,
    data,
    failure,
    gang,
    images,
    queue,
    recovered,
    recovery,
    scale,
    stop,
    success,
    suspend,
    timeouts,
    ttl,
)
from trainforge_operator.policies.state import Pass
from trainforge_operator.specs import spec_of


def decide(observed: Observed, config: OperatorConfig) -> Plan:
    """The plan for one reconcile of one TrainingJob: the first state that applies decides;
    then, when this pass's creates were refused (`observed.create_failed`), what that means."""
    p = _phases(observed, config)
    if observed.create_failed is not None:
        creation.refused(p, observed.create_failed)
    else:
        creation.created(p)
    return p.plan


def _phases(observed: Observed, config: OperatorConfig) -> Pass:
    spec, problem = _read_spec(observed, config)
    p = Pass.begin(observed, config, spec)
    if p.old.phase in TERMINAL_PHASES:
        queue.finish(p)
        ttl.finished(p)
        return p
    if (reason := stop.requested(p)) is not None:
        stop.stop(p, reason)
        return p
    if spec is None or problem:
        failure.invalid(p, problem)
        return p
    if spec.run_policy.suspend:
        suspend.suspend(p)
        return p
    if queue.holds(p, spec):
        return p
    suspend.resume(p)
    gang.prepare(p, spec)
    if timeouts.deadline_exceeded(p, spec):
        return p
    gang.adopt(p)
    current, stale = gang.split_attempts(p)
    p.delete(stale)
    if p.status.phase == "Restarting":
        failure.recreate_gang(p, spec, current)
        return p
    kept = scale.resize(p, spec, current)
    if kept is None:
        return p
    current = kept
    recovery.track_membership(p, current)
    if recovery.elastic_done(spec, current):
        success.succeed(p, spec, current)
        return p
    if recovery.recover_in_place(p, spec, current):
        return p
    if failure.gang_failed(p, spec, current):
        return p
    if images.cannot_start(p, spec, current):
        return p
    gang.create_missing(p, spec, current, blocked=bool(stale))
    queue.place(p)
    if gang.all_succeeded(spec, current):
        success.succeed(p, spec, current)
    elif gang.all_running(spec, current) or recovery.trains(p, spec, current):
        gang.running(p, current)
        recovered.check(p)
        timeouts.check_stall(p, spec)
    elif recovery.rejoining(p, spec, current):
        pass
    else:
        gang.waiting(p, spec, current)
        timeouts.check_pending(p, spec, current)
    data.report(p, spec, current)
    return p


def unforeseen(observed: Observed, config: OperatorConfig, error: str) -> Plan:
    """Passes kept failing with an error the operator did not foresee: Failed, saying so, so
    the job is never retried silently with an empty status. A finished job stays as it is."""
    try:
        spec, _ = _read_spec(observed, config)
    except Exception:  # the error may well come from the spec itself
        spec = None
    p = Pass.begin(observed, config, spec)
    if p.old.phase in TERMINAL_PHASES:
        return p.plan
    failure.fail(
        p,
        "ReconcileError",
        f"the operator could not reconcile this job: {error}; fix the spec if this names one "
        "of its fields, else report it with the operator's log",
        "All",
    )
    return p.plan


def _read_spec(observed: Observed, config: OperatorConfig) -> tuple[TrainingJobSpec | None, str]:
    """The spec (None when it does not parse), and why the job cannot run ('' when it can): the
    API server rejected a child built from it, it breaks a rule, or its node pool is unknown."""
    try:
        spec = spec_of(observed.body)
    except InvalidSpecError as err:
        spec, problem = None, _unquoted(err)
    else:
        problem = ""
    if observed.rejected:
        return spec, f"the API server rejected {observed.rejected}"
    if spec is not None:
        try:
            config.pool(spec.node_pool)
        except KeyError as err:
            problem = _unquoted(err)
    return spec, problem


def _unquoted(err: Exception) -> str:
    return str(err).strip("\"'")
