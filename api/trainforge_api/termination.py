"""Both ends of the termination message: what a worker's launcher writes when it exits, and how
the operator reads it back from the pod's `containerStatuses[].state.terminated.message`.

Kubernetes keeps at most 4 KiB of it, and keeps it after the container is gone, so the final
step, metrics, artifact summary and findings reach the job's status even when the pods are
cleaned up. The message is strict JSON (no NaN), trimmed by dropping the least important keys.
"""

from __future__ import annotations

import json
import math
from typing import Any

from trainforge_api import exitcodes
from trainforge_api.trainingjob import ArtifactSummary

MAX_BYTES = 4096
MAX_MESSAGE_CHARS = 500  # a rank's own error text; the rest of the message must fit beside it
Obj = dict[str, Any]


def json_safe(obj: Any) -> Any:
    """`obj` with NaN/±Inf floats as None: strict JSON readers reject a `NaN` literal."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def strict_dumps(obj: Any, **kwargs: Any) -> str:
    """json.dumps that never emits NaN/Infinity (they become null)."""
    return json.dumps(json_safe(obj), allow_nan=False, default=str, **kwargs)


def rank_summary(
    exit_reason: str,
    *,
    step: int | None = None,
    metrics: Obj | None = None,
    findings: list[Obj] | None = None,
    total_steps: int | None = None,
    resumed_from_step: int | None = None,
    artifacts: ArtifactSummary | None = None,
    message: str = "",
) -> Obj:
    """What one rank (or a launcher that started none) leaves behind when it stops: the keys
    `encode` reads, so the runtime never spells them itself. Unknown or empty parts are left out.
    """
    summary: Obj = {
        "exitReason": exit_reason,
        "step": step,
        "metrics": metrics or {},
        "findings": findings or [],
    }
    optional = {
        "totalSteps": total_steps,
        "resumedFromStep": resumed_from_step,
        "artifacts": None if artifacts is None else artifacts.model_dump(by_alias=True),
        "message": message[:MAX_MESSAGE_CHARS] or None,
    }
    summary.update({k: v for k, v in optional.items() if v is not None})
    return summary


def encode(summary: Obj, code: int) -> str:
    """The worker's side: compact strict JSON within 4 KiB; findings, then the message, metrics
    and artifacts are dropped until it fits."""
    msg: Obj = {
        "exitReason": summary.get("exitReason") or exitcodes.reason_for(code),
        "exitCode": code,
        "step": summary.get("step"),
        "totalSteps": summary.get("totalSteps"),
        "resumedFromStep": summary.get("resumedFromStep"),
        "metrics": summary.get("metrics", {}),
        "artifacts": summary.get("artifacts"),
        "findings": summary.get("findings", [])[-10:],
    }
    if code != 0 and summary.get("exitReason") == "Succeeded":
        msg["exitReason"] = exitcodes.reason_for(code)
    if summary.get("exitReason") == exitcodes.PEER_FAILURE and code != exitcodes.TRANSIENT:
        msg["exitReason"] = exitcodes.reason_for(code)  # another local rank was the culprit
    if summary.get("message"):
        msg["message"] = summary["message"]
    text = ""
    for drop in (None, "findings", "message", "metrics", "artifacts"):
        if drop:
            msg.pop(drop, None)
        text = strict_dumps(msg, separators=(",", ":"))
        if len(text.encode()) <= MAX_BYTES:
            return text
    return text[:MAX_BYTES]


def decode(text: Any) -> Obj:
    """The operator's side: the JSON object of a termination message, or {} for anything else
    (a plain-text message from a container that does not run the launcher, or a cut one)."""
    try:
        data = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def describe(text: str, data: Obj) -> str:
    """One line for status: `exitReason: message` (the error itself, e.g. the exception a user's
    code raised) for the launcher's JSON `data`, else the plain text, at most 512 characters."""
    if not data.get("exitReason"):
        return text[:512]
    detail = str(data.get("message") or "").strip()
    return (f"{data['exitReason']}: {detail}" if detail else str(data["exitReason"]))[:512]


def is_peer_fallout(data: Obj) -> bool:
    """The rank failed only because a peer went away: look past it for the root cause."""
    return data.get("exitReason") == exitcodes.PEER_FAILURE
