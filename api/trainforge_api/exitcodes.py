"""Exit codes shared by the launcher, the workers and the operator (docs/architecture.md).

The operator classifies failures by these numbers, so they are a contract, not a convenience.
"""

from __future__ import annotations

import signal

SUCCESS = 0
USER_ERROR = 1
INVALID_CONTEXT = 64
HEALTH_STOP = 65
UPLOAD_FAILED = 66
DATA_STAGING_FAILED = 67  # the dataset initializer could not stage spec.data.uri (permanent)
TRANSIENT = 75
# The shell's codes for a command that cannot be started: retrying the same image cannot help.
COMMAND_NOT_EXECUTABLE = 126
COMMAND_NOT_FOUND = 127
SIGTERM_EXIT = 128 + int(signal.SIGTERM)  # 143: stopped after a checkpoint, retryable

REASONS: dict[int, str] = {
    SUCCESS: "Succeeded",
    USER_ERROR: "UserError",
    INVALID_CONTEXT: "InvalidContext",
    HEALTH_STOP: "HealthStop",
    UPLOAD_FAILED: "UploadFailed",
    DATA_STAGING_FAILED: "DataStagingFailed",
    TRANSIENT: "Transient",
    COMMAND_NOT_EXECUTABLE: "CommandNotExecutable",
    COMMAND_NOT_FOUND: "CommandNotFound",
    SIGTERM_EXIT: "Terminated",
}
# exitReason of a rank that failed only because a peer died (exit code TRANSIENT). The operator
# looks past these to the peer that failed first, so a crash is never blamed on its victims.
PEER_FAILURE = "PeerFailure"
# What gloo and NCCL say when the other end of a collective has gone away. gloo raises a plain
# RuntimeError for these, not torch.distributed.DistBackendError.
_PEER_FAILURE_MARKERS = (
    "connection closed by peer",
    "connection reset by peer",
    "remote worker crashing",
    "gloo/transport",
    "nccl communicator was aborted",
    "broken pipe",
)


def is_peer_failure(exc: BaseException) -> bool:
    """A collective failed because another rank is gone (crashed, killed or preempted)."""
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(m in text for m in _PEER_FAILURE_MARKERS)


class RuntimeExit(Exception):  # noqa: N818 - a control-flow exit, not an error type
    """Raised inside the runtime to end the process with a specific exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InvalidContextError(RuntimeExit):
    """The job context or hyperparameters cannot work; retrying will not help (exit 64)."""

    def __init__(self, message: str) -> None:
        super().__init__(INVALID_CONTEXT, message)


def reason_for(code: int) -> str:
    """Name an exit code for the termination message; signals become `Signal<N>`."""
    if code in REASONS:
        return REASONS[code]
    if code > 128:
        return f"Signal{code - 128}"
    if code < 0:
        return f"Signal{-code}"
    return "UserError"


def normalize(code: int) -> int:
    """Map Python's negative 'killed by signal N' codes to the shell's 128+N convention."""
    return 128 + (-code) if code < 0 else code
