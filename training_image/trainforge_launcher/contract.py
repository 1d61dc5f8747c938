"""The parts of trainforge's worker contract the standalone launcher needs, without pydantic.

Twins of `trainforge_api.exitcodes`, `trainforge_api.termination` and the hyperparameter
channels; tests/unit/test_standalone_launcher.py proves they agree with the originals, so the
operator reads a standalone pod exactly like a runtime pod. The hyperparameter text rules live
here once and the runtime imports them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

SUCCESS = 0
USER_ERROR = 1
INVALID_CONTEXT = 64
HEALTH_STOP = 65
UPLOAD_FAILED = 66
TRANSIENT = 75
COMMAND_NOT_EXECUTABLE = 126
COMMAND_NOT_FOUND = 127
SIGTERM_EXIT = 143
REASONS: dict[int, str] = {
    SUCCESS: "Succeeded",
    USER_ERROR: "UserError",
    INVALID_CONTEXT: "InvalidContext",
    HEALTH_STOP: "HealthStop",
    UPLOAD_FAILED: "UploadFailed",
    67: "DataStagingFailed",
    TRANSIENT: "Transient",
    COMMAND_NOT_EXECUTABLE: "CommandNotExecutable",
    COMMAND_NOT_FOUND: "CommandNotFound",
    SIGTERM_EXIT: "Terminated",
}
# Codes that say "retrying cannot help", chosen first when several local ranks failed.
PERMANENT_FIRST = (
    INVALID_CONTEXT,
    COMMAND_NOT_FOUND,
    COMMAND_NOT_EXECUTABLE,
    HEALTH_STOP,
    UPLOAD_FAILED,
)
PEER_FAILURE = "PeerFailure"
# What gloo and NCCL print when the other end of a collective has gone away: the rank is fallout
# of a peer's failure, so the operator looks past it (and the gang is retried).
PEER_FAILURE_MARKERS = (
    "connection closed by peer",
    "connection reset by peer",
    "remote worker crashing",
    "gloo/transport",
    "nccl communicator was aborted",
    "broken pipe",
)
MAX_TERMINATION_BYTES = 4096
MAX_MESSAGE_CHARS = 500
HP_PREFIX = "TRAINFORGE_HP_"
HP_FILE_ENV = "TRAINFORGE_HP_FILE"
HP_FILE_NAME = "hyperparameters.json"


class LaunchError(Exception):
    """Ends the launcher before any rank ran, with an exit code and a message that says what
    to fix."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def reason_for(code: int) -> str:
    """Name an exit code; signals become `Signal<N>`."""
    if code in REASONS:
        return REASONS[code]
    if code > 128:
        return f"Signal{code - 128}"
    if code < 0:
        return f"Signal{-code}"
    return "UserError"


def normalize(code: int) -> int:
    """Python's negative 'killed by signal N' codes as the shell's 128+N."""
    return 128 - code if code < 0 else code


def is_peer_failure_text(text: str) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in PEER_FAILURE_MARKERS)


def json_safe(obj: Any) -> Any:
    """NaN/inf as None, recursively: strict JSON readers reject them."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def strict_dumps(obj: Any, **kwargs: Any) -> str:
    return json.dumps(json_safe(obj), allow_nan=False, default=str, **kwargs)


def encode_termination(summary: Mapping[str, Any], code: int) -> str:
    """The pod's termination message, as `trainforge_api.termination.encode` writes it: compact
    strict JSON within 4 KiB, dropping the message, then metrics, until it fits."""
    reason = summary.get("exitReason") or reason_for(code)
    if code != 0 and reason == "Succeeded":
        reason = reason_for(code)
    msg: dict[str, Any] = {
        "exitReason": reason,
        "exitCode": code,
        "step": summary.get("step"),
        "totalSteps": summary.get("totalSteps"),
        "resumedFromStep": summary.get("resumedFromStep"),
        "metrics": summary.get("metrics") or {},
        "artifacts": summary.get("artifacts"),
        "findings": list(summary.get("findings") or [])[-10:],
    }
    if summary.get("message"):
        msg["message"] = str(summary["message"])[:MAX_MESSAGE_CHARS]
    text = ""
    for drop in (None, "findings", "message", "metrics", "artifacts"):
        if drop:
            msg.pop(drop, None)
        text = strict_dumps(msg, separators=(",", ":"))
        if len(text.encode()) <= MAX_TERMINATION_BYTES:
            return text
    return text[:MAX_TERMINATION_BYTES]


def hp_env_name(name: str) -> str:
    """`learning_rate` and `learning-rate` both become TRAINFORGE_HP_LEARNING_RATE."""
    return HP_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def hp_text(value: Any) -> str:
    """One value as env or argument text: booleans as true/false, lists and maps as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def hp_env(hps: Mapping[str, Any]) -> dict[str, str]:
    return {hp_env_name(k): hp_text(v) for k, v in hps.items()}


def hp_args(hps: Mapping[str, Any]) -> list[str]:
    """`--name=value` per hyperparameter, in the spec's order; `=` keeps a value starting with
    `-` from reading as a flag."""
    return [f"--{k}={hp_text(v)}" for k, v in hps.items()]


def hp_channels(
    hps: Mapping[str, Any], channels: list[str], file_path: str | None
) -> tuple[dict[str, str], list[str]]:
    """The env every rank gets and the arguments appended, per spec.hyperparametersAs; the file
    (at `file_path`, written by the caller) is announced only when asked for."""
    env: dict[str, str] = {}
    if "file" in channels and file_path:
        env[HP_FILE_ENV] = file_path
    if "env" in channels:
        env.update(hp_env(hps))
    return env, hp_args(hps) if "args" in channels else []
