"""Failure classification, root cause and restart backoff (pure functions).

Exit-code classes follow docs/architecture.md: preemption/eviction always retry; then the job's
`runPolicy.permanentExitCodes` / `retryableExitCodes` overrides; then the defaults: 75 (transient
runtime failure) and 128+N (killed by a signal) retry, every other non-zero code is permanent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from trainforge_api import termination
from trainforge_api.exitcodes import TRANSIENT
from trainforge_api.trainingjob import RunPolicy

Obj = dict[str, Any]
FailureClass = Literal["retryable", "permanent"]

DISRUPTION_REASONS = frozenset({"Evicted", "Preempting", "Preempted", "NodeLost", "Shutdown"})


@dataclass(frozen=True)
class PodFailure:
    """Why one worker pod failed, from its status."""

    pod: str
    container: str
    exit_code: int | None
    signal: int | None
    reason: str
    message: str
    finished_at: str
    disrupted: bool
    # The runtime said this rank failed only because a peer went away (exitReason PeerFailure):
    # fallout, not a cause, unless nothing else failed.
    peer_fallout: bool = False

    def describe(self) -> str:
        """Human sentence naming the pod, container and exit code or signal."""
        where = f"pod {self.pod}" + (f" container {self.container}" if self.container else "")
        if self.signal is not None:
            what = f"was killed by signal {self.signal}"
            if self.exit_code is not None:
                what += f" (exit code {self.exit_code})"
        elif self.exit_code is not None:
            what = f"exited with code {self.exit_code}"
        else:
            what = "failed"
        why = f": {self.reason}" if self.reason else ""
        detail = f" ({self.message})" if self.message and self.disrupted else ""
        return f"{where} {what}{why}{detail}"


def _disrupted(pod: Obj) -> bool:
    status = pod.get("status") or {}
    if status.get("reason") in DISRUPTION_REASONS:
        return True
    return any(
        c.get("type") == "DisruptionTarget" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def terminated_state(pod: Obj, container: str | None = None) -> Obj | None:
    """The terminated state of the (first or named) container, if it terminated."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if container is not None and cs.get("name") != container:
            continue
        term = (cs.get("state") or {}).get("terminated")
        if term:
            return dict(term, name=cs.get("name", ""))
    return None


def pod_failure(pod: Obj) -> PodFailure | None:
    """A PodFailure when the pod failed (phase Failed or a container exited non-zero)."""
    status = pod.get("status") or {}
    name = pod["metadata"]["name"]
    term = None
    for cs in status.get("containerStatuses") or []:
        t = (cs.get("state") or {}).get("terminated")
        if t and t.get("exitCode", 0) != 0:
            term = dict(t, name=cs.get("name", ""))
            break
    if term is None and status.get("phase") != "Failed":
        return None
    disrupted = _disrupted(pod)
    if term is None:
        return PodFailure(
            pod=name,
            container="",
            exit_code=None,
            signal=None,
            reason=status.get("reason") or "PodFailed",
            message=(status.get("message") or "")[:512],
            finished_at="",
            disrupted=disrupted,
        )
    code = term.get("exitCode")
    signal = term.get("signal")
    if signal is None and isinstance(code, int) and code > 128:
        signal = code - 128
    text = term.get("message") or status.get("message") or ""
    reported = termination.decode(text)
    return PodFailure(
        pod=name,
        container=term.get("name", ""),
        exit_code=code,
        signal=signal,
        reason=term.get("reason") or status.get("reason") or "Error",
        message=termination.describe(text, reported),
        finished_at=term.get("finishedAt") or "",
        disrupted=disrupted,
        peer_fallout=termination.is_peer_fallout(reported),
    )


def classify(failure: PodFailure, policy: RunPolicy) -> FailureClass:
    """Retryable or permanent, per the table in docs/architecture.md."""
    if failure.disrupted:
        return "retryable"
    code = failure.exit_code
    if code is not None:
        if code in policy.permanent_exit_codes:
            return "permanent"
        if code in policy.retryable_exit_codes:
            return "retryable"
        if code == TRANSIENT or code >= 128:
            return "retryable"
        return "permanent"
    if failure.signal is not None:
        return "retryable"
    # Failed without a container exit (e.g. node lost before start): retry.
    return "retryable"


def root_cause(failures: list[PodFailure]) -> PodFailure:
    """The failed container that terminated first (ties: lowest pod name), looking past ranks
    that only fell over because a peer went away."""
    return min(failures, key=lambda f: (f.peer_fallout, f.finished_at or "9999", f.pod))


def backoff_seconds(restarts: int, policy: RunPolicy) -> float:
    """Exponential backoff before restart number `restarts + 1`, capped."""
    base = float(policy.restart_backoff_seconds)
    delay = base * (2 ** min(restarts, 20))
    return float(min(delay, float(policy.max_restart_backoff_seconds)))


def termination_summary(pod: Obj) -> Obj | None:
    """Rank 0's JSON termination message (final metrics, artifacts, findings), if parseable."""
    term = terminated_state(pod)
    if not term or not term.get("message"):
        return None
    return termination.decode(term["message"]) or None
