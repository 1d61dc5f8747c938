"""Failure-policy rules: the matcher table, the defaults, and what each action does."""

from __future__ import annotations

from typing import Any

import pytest

from trainforge_api.trainingjob import FailureRule, RunPolicy
from trainforge_operator.config import OperatorConfig
from trainforge_operator.policies import failure_rules
from trainforge_operator.policies.failure_rules import Facts, Verdict, decide, disruption

from ..conftest import make_pod
from .table import Seen, Want, at, outcome, row, worker

DISRUPTED = frozenset({"DisruptionTarget"})


def rules(*specs: dict[str, Any], **policy: Any) -> RunPolicy:
    return RunPolicy.model_validate({**policy, "failurePolicy": {"rules": list(specs)}})


# --- matching one rule --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "facts", "matches"),
    [
        ({"onExitCodes": {"operator": "In", "values": [3, 4]}}, Facts(3), True),
        ({"onExitCodes": {"operator": "In", "values": [3, 4]}}, Facts(5), False),
        ({"onExitCodes": {"operator": "NotIn", "values": [3]}}, Facts(5), True),
        ({"onExitCodes": {"operator": "NotIn", "values": [3]}}, Facts(3), False),
        ({"onExitCodes": {"operator": "NotIn", "values": [3]}}, Facts(None), False),
        ({"onPodConditions": ["DisruptionTarget"]}, Facts(None, DISRUPTED), True),
        ({"onPodConditions": ["DisruptionTarget"]}, Facts(1), False),
        ({"onReasons": ["OOMKilled"]}, Facts(137, reasons=frozenset({"OOMKilled"})), True),
        ({"onReasons": ["NodeLost", "Evicted"]}, Facts(None, reasons=frozenset({"NodeLost"})),
         True),
        ({"onReasons": ["Evicted"]}, Facts(None, reasons=frozenset({"Error"})), False),
        ({"onExitCodes": {"operator": "In", "values": [137]}, "onReasons": ["OOMKilled"]},
         Facts(137, reasons=frozenset({"Error"})), False),
        ({"onExitCodes": {"operator": "In", "values": [137]}, "onReasons": ["OOMKilled"]},
         Facts(137, reasons=frozenset({"OOMKilled"})), True),
    ],
    ids=[
        "In: listed", "In: not listed", "NotIn: not listed", "NotIn: listed",
        "an exit-code matcher never matches a failure without exit code",
        "a True condition type", "no such condition", "a container reason",
        "any of the reasons", "another reason", "all matchers must match (one does not)",
        "all matchers must match (both do)",
    ],
)  # fmt: skip
def test_matches(rule: dict[str, Any], facts: Facts, matches: bool) -> None:
    assert failure_rules.matches(FailureRule.model_validate({"action": "Fail", **rule}), facts) is (
        matches
    )


# --- the whole list: the spec's rules, then the defaults ----------------------------------------

SIGNALLED = Facts(137, reasons=frozenset({"Error"}))
EVICTED = Facts(1, DISRUPTED, frozenset({"Evicted", "EvictionByEvictionAPI"}))
NODE_LOST = Facts(None, DISRUPTED, frozenset({"NodeLost", "DeletionByPodGC"}))
VANISHED = Facts(None, reasons=frozenset({"PodDeleted"}))


@pytest.mark.parametrize(
    ("facts", "policy", "verdict"),
    [
        (Facts(1), RunPolicy(), Verdict("Fail", "default:other-exit-code")),
        (Facts(75), RunPolicy(), Verdict("Restart", "default:transient-or-signal")),
        (SIGNALLED, RunPolicy(), Verdict("Restart", "default:transient-or-signal")),
        (Facts(None), RunPolicy(), Verdict("Restart", "default:no-exit-code")),
        (VANISHED, RunPolicy(), Verdict("Restart", "default:no-exit-code")),
        (EVICTED, RunPolicy(), Verdict("RestartIgnoringMax", "default:disruption-condition")),
        (NODE_LOST, RunPolicy(), Verdict("RestartIgnoringMax", "default:disruption-condition")),
        (Facts(None, reasons=frozenset({"Preempted"})), RunPolicy(),
         Verdict("RestartIgnoringMax", "default:disruption-reason")),
        (Facts(1), RunPolicy(retryable_exit_codes=[1]),
         Verdict("Restart", "default:retryableExitCodes")),
        (SIGNALLED, RunPolicy(permanent_exit_codes=[137]),
         Verdict("Fail", "default:permanentExitCodes")),
        (Facts(1, DISRUPTED), RunPolicy(permanent_exit_codes=[1]),
         Verdict("RestartIgnoringMax", "default:disruption-condition")),
        (Facts(3), rules({"action": "Restart", "onExitCodes": {"operator": "In", "values": [3]}}),
         Verdict("Restart", "rules[0]")),
        (Facts(42), rules({"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}},
                          {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [42]}}),
         Verdict("Ignore", "rules[1]")),
        (SIGNALLED, rules({"action": "Fail", "onExitCodes": {"operator": "In", "values": [137]}},
                          {"action": "Restart", "onReasons": ["Error"]}),
         Verdict("Fail", "rules[0]")),
        (EVICTED, rules({"action": "Restart", "onReasons": ["Evicted"]}),
         Verdict("Restart", "rules[0]")),
        (Facts(5), rules({"action": "Fail", "onReasons": ["OOMKilled"]}),
         Verdict("Fail", "default:other-exit-code")),
    ],
    ids=[
        "default: 1 fails", "default: 75 restarts, counted", "default: a signal restarts",
        "default: no exit code restarts", "default: a vanished pod restarts, counted",
        "default: eviction, not counted", "default: node loss, not counted",
        "default: a preemption reason, not counted",
        "retryableExitCodes become a default rule", "permanentExitCodes become a default rule",
        "a disruption comes before permanentExitCodes", "a spec rule comes before the defaults",
        "the first matching spec rule wins", "the first of two matching spec rules wins",
        "a spec rule can count an eviction", "no spec rule matches: the defaults decide",
    ],
)  # fmt: skip
def test_decide(facts: Facts, policy: RunPolicy, verdict: Verdict) -> None:
    assert decide(facts, policy) == verdict


def test_the_defaults_reproduce_classify_for_every_exit_code() -> None:
    """With no rules of its own, a job's failures get exactly the old classification."""
    from trainforge_operator.policies.failure import PodFailure, classify

    for policy in (RunPolicy(), RunPolicy(retryable_exit_codes=[1], permanent_exit_codes=[143])):
        for code in [None, *range(1, 256)]:
            for disrupted in (False, True):
                facts = Facts(code, DISRUPTED if disrupted else frozenset())
                old = PodFailure("p", "c", code, None, "Error", "", "", disrupted, facts=facts)
                retried = decide(facts, policy).action != "Fail"
                assert retried == (classify(old, policy) == "retryable"), (code, disrupted)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"conditions": [{"type": "DisruptionTarget", "status": "True",
                          "reason": "DeletionByPodGC", "message": "PodGC: node no longer exists"}]},
         ("NodeLost", "the node node-1 was lost (PodGC: node no longer exists)")),
        ({"conditions": [{"type": "DisruptionTarget", "status": "True",
                          "reason": "PreemptionByScheduler", "message": "preempted by p"}]},
         ("Preempted", "preempted by p")),
        ({"conditions": [{"type": "DisruptionTarget", "status": "True",
                          "reason": "EvictionByEvictionAPI", "message": "drain"}]},
         ("Evicted", "drain")),
        ({"conditions": [{"type": "DisruptionTarget", "status": "True",
                          "reason": "WorkloadPreemptedByKueue"}]}, ("Preempted", "")),
        ({"conditions": [{"type": "DisruptionTarget", "status": "False",
                          "reason": "DeletionByPodGC"}]}, None),
        ({"reason": "Evicted", "statusMessage": "low on memory"}, ("Evicted", "low on memory")),
        ({"reason": "NodeLost"}, ("NodeLost", "the node node-1 was lost")),
        ({"reason": "Shutdown"}, ("Shutdown", "")),
        ({"reason": "OOMKilled"}, None),
    ],
    ids=["pod GC of a deleted node", "scheduler preemption", "eviction API",
         "an unknown DisruptionTarget reason naming preemption", "condition not True",
         "kubelet eviction", "NodeLost", "node shutdown", "not a disruption"],
)  # fmt: skip
def test_disruption(status: dict[str, Any], expected: tuple[str, str] | None) -> None:
    said = status.pop("statusMessage", None)
    pod = make_pod(1, "Failed", **status)
    pod["spec"] = {"nodeName": "node-1"}
    if said is not None:
        pod["status"]["message"] = said
    found = disruption(pod)
    assert (None if found is None else (found.reason, found.message)) == expected


# --- what the pass does with each action --------------------------------------------------------

TWO = {
    "parallelism": {"nodes": 2},
    # These rows are about what each action does to a gang restart.
    "runPolicy": {"restartBackoffSeconds": 10, "maxRestarts": 1, "recovery": "RecreateGang"},
}
RUNNING = {"phase": "Running"}
USED_UP = {"phase": "Running", "restarts": 1, "restartsCountedTowardsMax": 1}


def spec_with(*specs: dict[str, Any]) -> dict[str, Any]:
    return {**TWO, "runPolicy": {**TWO["runPolicy"], "failurePolicy": {"rules": list(specs)}}}


def gc_marked(index: int) -> dict[str, Any]:
    """A worker as the pod GC leaves it when its node was deleted (then it deletes it)."""
    pod = make_pod(index, "Failed", conditions=[{
        "type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
        "message": "PodGC: node no longer exists"}])  # fmt: skip
    pod["spec"] = {"nodeName": "kwok-node-3"}
    return pod


def terminating(pod: dict[str, Any]) -> dict[str, Any]:
    pod["metadata"]["deletionTimestamp"] = at(0)
    return pod


EXIT_3 = {"action": "Fail", "onExitCodes": {"operator": "In", "values": [3]}}

ACTIONS = [
    row("Restart: counted, after the backoff",
        Seen(spec_with({**EXIT_3, "action": "Restart"}), RUNNING,
             [make_pod(0), make_pod(1, "Failed", exit_code=3)]),
        Want(phase="Restarting", requeue=10, events=["Restarting"], says="restart 1 of 1",
             status={"restarts": 1, "restartsCountedTowardsMax": 1,
                     "lastFailure": {"exitCode": 3, "action": "Restart", "rule": "rules[0]"}})),
    row("Restart with maxRestarts used up: Failed",
        Seen(spec_with({**EXIT_3, "action": "Restart"}), USED_UP,
             [make_pod(0), make_pod(1, "Failed", exit_code=3)]),
        Want(phase="Failed", failed="MaxRestartsExceeded", deleted=[worker(0)])),
    row("RestartIgnoringMax: restarts although maxRestarts is used up, not counted",
        Seen(spec_with({**EXIT_3, "action": "RestartIgnoringMax"}), USED_UP,
             [make_pod(0), make_pod(1, "Failed", exit_code=3)]),
        Want(phase="Restarting", requeue=20, says="not counted against maxRestarts",
             deleted=[worker(0), worker(1)],
             status={"restarts": 2, "restartsCountedTowardsMax": 1,
                     "lastFailure": {"action": "RestartIgnoringMax"}})),
    row("Ignore: the gang is recreated after the base backoff, counted nowhere",
        Seen(spec_with({**EXIT_3, "action": "Ignore"}), USED_UP,
             [make_pod(0), make_pod(1, "Failed", exit_code=3)]),
        Want(phase="Restarting", requeue=10, events=["FailureIgnored"], says="ignored",
             restarted=True,
             status={"restarts": 1, "restartsCountedTowardsMax": 1,
                     "lastFailure": {"action": "Ignore", "rule": "rules[0]"}})),
    row("Fail: a code the defaults would retry fails the job, naming the rule",
        Seen(spec_with({**EXIT_3, "onExitCodes": {"operator": "In", "values": [137]}}), RUNNING,
             [make_pod(0), make_pod(1, "Failed", exit_code=137)]),
        Want(phase="Failed", failed="WorkerFailed", says="failurePolicy.rules[0]",
             status={"restarts": 0, "lastFailure": {"action": "Fail"}})),
    row("default: an evicted worker restarts the gang uncounted, even with maxRestarts used up",
        Seen(TWO, USED_UP, [make_pod(0), make_pod(1, "Failed", reason="Evicted")]),
        Want(phase="Restarting",
             status={"restarts": 2, "restartsCountedTowardsMax": 1,
                     "lastFailure": {"reason": "Evicted", "action": "RestartIgnoringMax"}})),
    row("default: a worker the pod GC marked for a deleted node: NodeLost, uncounted",
        Seen(TWO, USED_UP, [make_pod(0), gc_marked(1)]),
        Want(phase="Restarting", conditions={"Restarting": "True"},
             status={"restartsCountedTowardsMax": 1,
                     "lastFailure": {"reason": "NodeLost", "action": "RestartIgnoringMax",
                                     "message": "the node kwok-node-3 was lost (PodGC: node no "
                                                "longer exists)"}})),
    row("default: a worker already deleted by the pod GC: the watch's last state says NodeLost",
        Seen(TWO, USED_UP, [make_pod(0)], departed=[gc_marked(1)]),
        Want(phase="Restarting",
             status={"restarts": 2, "restartsCountedTowardsMax": 1,
                     "lastFailure": {"pod": worker(1), "reason": "NodeLost",
                                     "action": "RestartIgnoringMax"}})),
    row("default: a worker being evicted (terminating, DisruptionTarget): uncounted",
        Seen(TWO, USED_UP, [make_pod(0), terminating(make_pod(1, conditions=[
            {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}]))]),
        Want(phase="Restarting",
             status={"lastFailure": {"reason": "Evicted", "action": "RestartIgnoringMax"}})),
    row("default: a worker deleted with nothing to say why is a counted restart (as before)",
        Seen(TWO, USED_UP, [make_pod(0)]),
        Want(phase="Failed", failed="MaxRestartsExceeded",
             status={"lastFailure": {"reason": "PodDeleted", "action": "Restart"}})),
    row("a departed pod of an older attempt explains nothing",
        Seen(TWO, {**RUNNING, "attempt": 1}, [make_pod(0, attempt=1)], departed=[gc_marked(1)]),
        Want(phase="Restarting", status={"lastFailure": {"reason": "PodDeleted"}})),
    row("a spec rule on a reason: node loss fails the job",
        Seen(spec_with({"action": "Fail", "onReasons": ["NodeLost"]}), RUNNING,
             [make_pod(0)], departed=[gc_marked(1)]),
        Want(phase="Failed", failed="WorkerLost", says="failurePolicy.rules[0]",
             status={"lastFailure": {"reason": "NodeLost", "action": "Fail"}})),
]  # fmt: skip


@pytest.mark.parametrize(("seen", "want"), ACTIONS)
def test_actions(seen: Seen, want: Want, config: OperatorConfig) -> None:
    assert outcome(seen.decide(config), want) == want.fields()


# --- recovery: time to recover and lost steps ---------------------------------------------------

PROGRESS_AT_40 = {"step": 40, "totalSteps": 100}
OPEN = {"kind": "gang", "failedAt": at(0), "stepAtFailure": 40}
BACK = {"phase": "Running", "attempt": 1, "restarts": 1, "lastRecovery": OPEN,
        "progress": {"step": 40}}  # fmt: skip
ATTEMPT_1 = [make_pod(0, attempt=1), make_pod(1, attempt=1)]

RECOVERY = [
    row("a restart opens a recovery at rank 0's last step",
        Seen(TWO, {**RUNNING, "progress": PROGRESS_AT_40},
             [make_pod(0), make_pod(1, "Failed", exit_code=137)], at=5),
        Want(phase="Restarting", status={"lastRecovery": {
            "kind": "gang", "failedAt": at(5), "stepAtFailure": 40, "recoveredAt": None}})),
    row("running again, resumed from 30, no step done yet: still recovering",
        Seen(TWO, BACK, ATTEMPT_1, at=50, progress={"step": 30, "resumedFromStep": 30}),
        Want(status={"lastRecovery": {"recoveredAt": None}}, events=[])),
    row("running again without a fresh poll: still recovering",
        Seen(TWO, BACK, ATTEMPT_1, at=50),
        Want(status={"lastRecovery": {"recoveredAt": None}})),
    row("steps advance again: recovered, 10 steps redone",
        Seen(TWO, BACK, ATTEMPT_1, at=60, progress={"step": 31, "resumedFromStep": 30}),
        Want(events=["Recovered"], status={"lastRecovery": {
            "recoveredAt": at(60), "seconds": 60.0, "lostSteps": 10}})),
    row("no checkpoint to resume from: every step is redone",
        Seen(TWO, BACK, ATTEMPT_1, at=60, progress={"step": 2}),
        Want(status={"lastRecovery": {"lostSteps": 40}})),
    row("no progress before the failure: recovered when all workers run",
        Seen(TWO, {**BACK, "lastRecovery": {**OPEN, "stepAtFailure": None}, "progress": None},
             ATTEMPT_1, at=25),
        Want(events=["Recovered"], status={"lastRecovery": {
            "recoveredAt": at(25), "seconds": 25.0, "lostSteps": None}})),
]  # fmt: skip


@pytest.mark.parametrize(("seen", "want"), RECOVERY)
def test_recovery(seen: Seen, want: Want, config: OperatorConfig) -> None:
    assert outcome(seen.decide(config), want) == want.fields()


def test_a_recovery_reaches_the_metrics(config: OperatorConfig) -> None:
    plan = RECOVERY[3].values[0].decide(config)
    assert plan.recovery is not None
    assert (plan.recovery.seconds, plan.recovery.lost_steps) == (60.0, 10)
    restart = ACTIONS[0].values[0].decide(config)
    assert restart.restart_kind == "gang"
