"""Workers that can never start because of their image: fail the job and say why.

An `InvalidImageName` never resolves, so the job fails at once. `ErrImagePull` and
`ImagePullBackOff` can be transient (a registry hiccup, an image pushed a moment late), so the
job fails only once a worker has been in them for the operator's `imagePullBackOffSeconds`,
counted from the pod's creation. Either way the gang never ran, so no pod is left behind.
"""

from __future__ import annotations

from typing import Any

from trainforge_api.trainingjob import TrainingJobSpec
from trainforge_operator import pods
from trainforge_operator.policies import failure
from trainforge_operator.policies.state import Pass
from trainforge_operator.status import parse_time

Obj = dict[str, Any]
NEVER = frozenset({"InvalidImageName"})
BACK_OFF = frozenset({"ErrImagePull", "ImagePullBackOff"})
# Look again just after the limit, so the pass that acts sees it exceeded.
PAST_LIMIT_S = 0.5


def _waiting(pod: Obj) -> tuple[str, str, str] | None:
    """(container, reason, message) of the pod's first container stuck on its image."""
    status = pod.get("status") or {}
    for cs in [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason") or ""
        if reason in NEVER or reason in BACK_OFF:
            return cs.get("name", ""), reason, (waiting.get("message") or "")[:512]
    return None


def cannot_start(p: Pass, spec: TrainingJobSpec, current: list[Obj]) -> bool:
    """Fail the job when a worker's image can never be (or was not within the limit) pulled.
    True when this decided the pass."""
    limit = p.config.image_pull_back_off_seconds
    for pod in sorted(current, key=pods.name):
        stuck = _waiting(pod)
        if stuck is None:
            continue
        container, reason, message = stuck
        where = f"pod {pods.name(pod)} container {container}: {reason}"
        detail = f" ({message})" if message else ""
        if reason in NEVER:
            _fail(p, spec, reason, f"{where}{detail}; fix spec.image")
            return True
        created = parse_time(pod["metadata"].get("creationTimestamp"))
        waited = (p.now - created).total_seconds() if created else 0.0
        if waited > limit:
            _fail(
                p,
                spec,
                "ImagePullBackOff",
                f"{where}{detail} for {int(waited)}s (the operator's imagePullBackOffSeconds="
                f"{int(limit)}); check spec.image and podTemplate.imagePullSecrets",
            )
            return True
        p.requeue(limit - waited + PAST_LIMIT_S)
    return False


def _fail(p: Pass, spec: TrainingJobSpec, reason: str, message: str) -> None:
    failure.fail(p, reason, message, spec.run_policy.clean_pod_policy)
    p.delete(p.live)
