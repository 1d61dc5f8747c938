"""decide(): the phase machine. Which state wins when several apply, and whole runs of passes
where each pass sees the status the one before it wrote."""

from __future__ import annotations

import datetime as dt

import pytest

from trainforge_operator.config import OperatorConfig
from trainforge_operator.decision import decide
from trainforge_operator.plan import Observed
from trainforge_operator.status import status_dict

from .conftest import T0, make_job, make_pod
from .policies.table import Seen, Want, apply, at, outcome, row, worker

TWO = {"parallelism": {"nodes": 2}}
CRASHED = make_pod(0, "Failed", exit_code=137)

# In the order decide() tries them: terminal, invalid, suspended, deadline, restarting, failed,
# progressing. Each row has what would trigger a later state too; the earlier one must win.
PRECEDENCE = [
    row("terminal wins: a finished job is never restarted",
        Seen({}, {"phase": "Failed"}, [CRASHED]),
        Want(phase="Failed", events=[], created=[], restarted=False)),
    row("invalid wins over suspend",
        Seen({"nodePool": "tpu", "runPolicy": {"suspend": True}}, {"phase": "Running"}),
        Want(phase="Failed", failed="InvalidSpec")),
    row("suspend wins over the deadline",
        Seen({"runPolicy": {"suspend": True, "activeDeadlineSeconds": 10}},
             {"phase": "Running", "startTime": at(0)}, [make_pod(0)], at=60),
        Want(phase="Suspended")),
    row("the deadline wins over a failure",
        Seen({"runPolicy": {"activeDeadlineSeconds": 10}},
             {"phase": "Running", "startTime": at(0)}, [CRASHED], at=60),
        Want(phase="Failed", failed="DeadlineExceeded", restarted=False)),
    row("restarting wins over the old gang's failure",
        Seen({}, {"phase": "Restarting", "restarts": 1}, [CRASHED]),
        Want(phase="Restarting", restarted=False, deleted=[worker(0)], requeue=1)),
    row("a failure wins over success",
        Seen(TWO, {"phase": "Running"}, [make_pod(0, "Succeeded", exit_code=0), CRASHED]),
        Want(phase="Restarting", restarted=True)),
]  # fmt: skip


@pytest.mark.parametrize(("seen", "want"), PRECEDENCE)
def test_the_first_state_that_applies_decides(
    seen: Seen, want: Want, config: OperatorConfig
) -> None:
    assert outcome(seen.decide(config), want) == want.fields()


# --- runs of passes -----------------------------------------------------------------------------


def passes(config: OperatorConfig, job: dict[str, object], steps: list[Seen]) -> list[Want]:
    """Run `steps` in turn on `job`, each seeing the status the previous pass wrote (only the
    steps' pods, time and children count), and return what each pass decided as a `Want`."""
    seen: list[Want] = []
    for step in steps:
        now = T0 + dt.timedelta(seconds=step.at)
        plan = decide(Observed(job, step.pods, step.children, step.children, now), config)
        seen.append(Want(phase=plan.status.phase, events=[e.reason for e in plan.events],
                         created=[o["metadata"]["name"] for o in plan.create],
                         deleted=sorted(plan.delete_pods)))  # fmt: skip
        job = apply(job, plan)  # type: ignore[arg-type]
    return seen


def test_a_new_job_is_created_once_and_then_left_alone(config: OperatorConfig) -> None:
    pending = [make_pod(0, "Pending"), make_pod(1, "Pending")]
    running = [make_pod(0), make_pod(1)]
    assert passes(config, make_job(TWO), [
        Seen(children=False), Seen(pods=pending, at=1), Seen(pods=running, at=5),
        Seen(pods=running, at=10),
    ]) == [
        Want("Pending", events=["Created"], deleted=[],
             created=["digits", "digits-context", worker(0), worker(1)]),
        Want("Starting", events=[], created=[], deleted=[]),
        Want("Running", events=["Running"], created=[], deleted=[]),
        Want("Running", events=[], created=[], deleted=[]),
    ]  # fmt: skip


def test_a_crash_the_backoff_and_the_next_attempt(config: OperatorConfig) -> None:
    policy = {"restartBackoffSeconds": 10, "recovery": "RecreateGang"}
    job = make_job({**TWO, "runPolicy": policy}, status={"phase": "Running"})
    next_gang = [make_pod(0, attempt=1), make_pod(1, attempt=1)]
    assert passes(config, job, [
        Seen(pods=[make_pod(0), make_pod(1, "Failed", exit_code=137)]),
        Seen(pods=[make_pod(0)], at=2),  # still terminating
        Seen(pods=[], at=5),  # gone, backoff not over
        Seen(pods=[], at=11),
        Seen(pods=next_gang, at=15),
    ]) == [
        Want("Restarting", events=["Restarting"], created=[], deleted=[worker(0), worker(1)]),
        Want("Restarting", events=[], created=[], deleted=[worker(0)]),
        Want("Restarting", events=[], created=[], deleted=[]),
        Want("Pending", events=["GangRecreated"], created=[worker(0), worker(1)], deleted=[]),
        # no progress before the crash: recovered as soon as every worker runs again
        Want("Running", events=["Running", "Recovered"], created=[], deleted=[]),
    ]  # fmt: skip


def test_suspend_then_resume(config: OperatorConfig) -> None:
    job = make_job({"runPolicy": {"suspend": True}}, status={"phase": "Running"})
    suspended = passes(config, job, [Seen(pods=[make_pod(0)]), Seen(pods=[], at=10)])
    assert suspended == [
        Want("Suspended", events=["Suspended"], created=[], deleted=[worker(0)]),
        Want("Suspended", events=[], created=[], deleted=[]),
    ]
    plan = decide(Observed(job, [], True, True, T0), config)
    resumed = apply(make_job({"runPolicy": {"suspend": False}}), plan)
    assert passes(config, resumed, [Seen(at=30)]) == [
        Want("Pending", events=["Resumed", "Created"], created=[worker(0)], deleted=[])
    ]


def test_the_steady_state_writes_nothing(config: OperatorConfig) -> None:
    job = make_job({}, status={"phase": "Starting"})
    first = decide(Observed(job, [make_pod(0)], True, True, T0), config)
    job = apply(job, first)
    again = decide(Observed(job, [make_pod(0)], True, True, T0.replace(second=9)), config)
    assert status_dict(again.status) == job["status"]
    assert (again.events, again.create, again.update, again.delete_pods) == ([], [], [], [])


def test_status_keys_written_by_other_tools_are_ignored(config: OperatorConfig) -> None:
    job = make_job({}, status={"phase": "Running", "restarts": 2, "someoneElse": {"x": 1}})
    plan = decide(Observed(job, [make_pod(0)], True, True, T0), config)
    assert (plan.status.phase, plan.status.restarts, plan.events) == ("Running", 2, [])
    assert "someoneElse" not in status_dict(plan.status)


def test_pods_are_deleted_by_the_uids_observed(config: OperatorConfig) -> None:
    """A stale pod is deleted by the UID this pass saw, so the delete cannot reach a newer pod
    that took its name (the chaos suite's chaos-013/1/0)."""
    old = make_pod(0, attempt=0)
    old["metadata"]["uid"] = "pod-uid-0"
    plan = Seen(TWO, {"phase": "Pending", "attempt": 1}, [old]).decide(config)
    assert plan.delete_pods == [worker(0)]
    assert plan.delete_uids == {worker(0): "pod-uid-0"}
