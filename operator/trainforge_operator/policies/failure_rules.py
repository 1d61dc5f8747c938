"""Failure-policy rules: which action a failure gets (docs/failure-policy.md).

`runPolicy.failurePolicy.rules` are tried first to last, then the default rules; the first rule
whose matchers all match decides. A matcher looks at what the operator read from the failed (or
vanished) pod: the failed container's exit code, the pod's True condition types, and its
reasons. The defaults are today's classification as rules (disruptions, then
permanentExitCodes, retryableExitCodes, 75 and 128-255, any other exit code, no exit code),
with one change the issue asked for: a disruption (eviction, preemption, node loss, node
shutdown) restarts the gang without counting against `maxRestarts`.

Pure functions on plain data, so the table is unit-tested without pods (test_failure_rules.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from trainforge_api.exitcodes import TRANSIENT
from trainforge_api.trainingjob import (
    DISRUPTION_REASONS,
    ExitCodeMatch,
    FailureAction,
    FailureRule,
    RunPolicy,
)

Obj = dict[str, Any]

DISRUPTION_TARGET = "DisruptionTarget"
# A pod that disappeared while its gang ran, with nothing to say why (deleted by a person, or
# deleted while the operator was not watching).
POD_DELETED = "PodDeleted"
# Exit codes of a signal (128+N) and the runtime's transient failure: retried by default.
SIGNAL_CODES = tuple(range(128, 256))
RETRIED_BY_DEFAULT = (TRANSIENT, *SIGNAL_CODES)

# Pod `status.reason`s that mean the pod was disrupted, and their normal form.
_STATUS_REASONS = {
    "Evicted": "Evicted",
    "Preempting": "Preempted",
    "Preempted": "Preempted",
    "NodeLost": "NodeLost",
    "Shutdown": "Shutdown",
}
# The reasons Kubernetes gives its DisruptionTarget condition, and their normal form.
_CONDITION_REASONS = {
    "PreemptionByScheduler": "Preempted",
    "PreemptionByKubeScheduler": "Preempted",
    "EvictionByEvictionAPI": "Evicted",
    "TerminationByKubelet": "Evicted",
    "DeletionByPodGC": "NodeLost",
    "DeletionByTaintManager": "NodeLost",
}


@dataclass(frozen=True)
class Facts:
    """What the rules can match on, read from one failed or vanished pod."""

    exit_code: int | None = None
    conditions: frozenset[str] = frozenset()
    reasons: frozenset[str] = frozenset()


@dataclass(frozen=True)
class NamedRule:
    name: str  # rules[i] for the spec's rules, default:<what> for the defaults
    rule: FailureRule


@dataclass(frozen=True)
class Verdict:
    action: FailureAction
    rule: str

    @property
    def counted(self) -> bool:
        """Counted against runPolicy.maxRestarts."""
        return self.action == "Restart"


# A stall restart (onStall: restart) is an ordinary counted restart.
STALL = Verdict("Restart", "onStall")


@dataclass(frozen=True)
class Disruption:
    """Why Kubernetes took the pod away: a normal reason and the words it said so in."""

    reason: str
    message: str


def disruption(pod: Obj) -> Disruption | None:
    """The disruption that ended this pod (eviction, preemption, node loss), if any."""
    status = pod.get("status") or {}
    node = (pod.get("spec") or {}).get("nodeName") or ""
    for cond in status.get("conditions") or []:
        if cond.get("type") == DISRUPTION_TARGET and cond.get("status") == "True":
            raw = str(cond.get("reason") or "")
            reason = _CONDITION_REASONS.get(raw, _guess(raw))
            return Disruption(reason, _disruption_message(reason, node, cond.get("message")))
    normal = _STATUS_REASONS.get(str(status.get("reason") or ""))
    if normal is not None:
        return Disruption(normal, _disruption_message(normal, node, status.get("message")))
    return None


def _guess(raw: str) -> str:
    """A DisruptionTarget reason Kubernetes did not define (Kueue, a descheduler)."""
    return "Preempted" if "preempt" in raw.lower() else "Evicted"


def _disruption_message(reason: str, node: str, said: object) -> str:
    text = str(said or "")[:400]
    if reason == "NodeLost":
        where = f"the node {node} was lost" if node else "the pod's node was lost"
        return f"{where} ({text})" if text else where
    return text


def facts(pod: Obj | None, exit_code: int | None, extra_reasons: tuple[str, ...] = ()) -> Facts:
    """The facts of a failure: the exit code, the pod's True conditions and every reason the
    pod, its containers and its disruption give (a rule's onReasons matches any of them)."""
    if pod is None:
        return Facts(exit_code, frozenset(), frozenset(r for r in extra_reasons if r))
    status = pod.get("status") or {}
    conditions = frozenset(
        str(c.get("type")) for c in status.get("conditions") or [] if c.get("status") == "True"
    )
    reasons = {str(status.get("reason") or ""), *extra_reasons}
    for cs in [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]:
        term = (cs.get("state") or {}).get("terminated") or {}
        reasons.add(str(term.get("reason") or ""))
    for cond in status.get("conditions") or []:
        if cond.get("type") == DISRUPTION_TARGET and cond.get("status") == "True":
            reasons.add(str(cond.get("reason") or ""))
    found = disruption(pod)
    if found is not None:
        reasons.add(found.reason)
    return Facts(exit_code, conditions, frozenset(r for r in reasons if r))


# --- the rules ----------------------------------------------------------------------------------


def _codes(operator: Literal["In", "NotIn"], values: list[int]) -> ExitCodeMatch:
    # model_construct: the defaults may name codes a user's rule may not (0, or above 255).
    return ExitCodeMatch.model_construct(operator=operator, values=values)


def default_rules(policy: RunPolicy) -> list[NamedRule]:
    """Today's classification as rules, in order (the table in docs/failure-policy.md)."""
    rules = [
        NamedRule(
            "default:disruption-condition",
            FailureRule(action="RestartIgnoringMax", on_pod_conditions=[DISRUPTION_TARGET]),
        ),
        NamedRule(
            "default:disruption-reason",
            FailureRule(action="RestartIgnoringMax", on_reasons=list(DISRUPTION_REASONS)),
        ),
    ]
    if policy.permanent_exit_codes:
        rules.append(
            NamedRule(
                "default:permanentExitCodes",
                FailureRule.model_construct(
                    action="Fail", on_exit_codes=_codes("In", policy.permanent_exit_codes)
                ),
            )
        )
    if policy.retryable_exit_codes:
        rules.append(
            NamedRule(
                "default:retryableExitCodes",
                FailureRule.model_construct(
                    action="Restart", on_exit_codes=_codes("In", policy.retryable_exit_codes)
                ),
            )
        )
    rules += [
        NamedRule(
            "default:transient-or-signal",
            FailureRule.model_construct(
                action="Restart", on_exit_codes=_codes("In", list(RETRIED_BY_DEFAULT))
            ),
        ),
        NamedRule(
            "default:other-exit-code",
            FailureRule.model_construct(action="Fail", on_exit_codes=_codes("NotIn", [0])),
        ),
        # No exit code: the pod failed before a container exited, or vanished.
        NamedRule("default:no-exit-code", FailureRule.model_construct(action="Restart")),
    ]
    return rules


def rules_of(policy: RunPolicy) -> list[NamedRule]:
    """The spec's rules, then the defaults."""
    own = [NamedRule(f"rules[{i}]", r) for i, r in enumerate(policy.failure_policy.rules)]
    return own + default_rules(policy)


def matches(rule: FailureRule, found: Facts) -> bool:
    """Every matcher the rule sets matches (a rule without matchers matches everything)."""
    codes = rule.on_exit_codes
    if codes is not None:
        if found.exit_code is None:
            return False
        inside = found.exit_code in codes.values
        if inside != (codes.operator == "In"):
            return False
    if rule.on_pod_conditions is not None and not found.conditions & set(rule.on_pod_conditions):
        return False
    return rule.on_reasons is None or bool(found.reasons & set(rule.on_reasons))


def decide(found: Facts, policy: RunPolicy) -> Verdict:
    """The action of the first rule that matches."""
    for named in rules_of(policy):
        if matches(named.rule, found):
            return Verdict(named.rule.action, named.name)
    return Verdict("Restart", "default:no-exit-code")  # unreachable: the last default matches all
