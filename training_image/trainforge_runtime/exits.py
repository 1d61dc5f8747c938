"""`trainforge_runtime.run(main)`: how a trainer's main ended, as the exit code and summary the
operator classifies (trainforge_api.exitcodes).

Apart from the session because it must work when the session never started (a bad hyperparameter
before `init()`) and must not wait for anything once a peer is gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import torch.distributed as dist

from trainforge_api import exitcodes
from trainforge_runtime.checkpoint import CheckpointStorageError
from trainforge_runtime.session import current

log = logging.getLogger("trainforge")


def run(main: Callable[[], Any]) -> None:
    """Run a trainer's main and exit with the code the operator expects (see exitcodes)."""
    code = exitcodes.SUCCESS
    try:
        main()
    except exitcodes.RuntimeExit as exc:
        code = exc.code
        print(f"trainforge: {exc.message}", file=sys.stderr, flush=True)
        summarize_failure(exitcodes.reason_for(code), exc.message)
    except Exception as exc:
        code = failure_code(exc)
    sys.stdout.flush()
    sys.stderr.flush()
    if code != exitcodes.SUCCESS:
        os._exit(code)  # skip teardown that could hang on dead peers


def failure_code(exc: Exception) -> int:
    """Exit code and summary for an exception out of the trainer: a lost peer or a network
    failure is retryable (75); anything else is the user's error (1)."""
    if exitcodes.is_peer_failure(exc):
        print(f"trainforge: a peer rank failed: {exc}", file=sys.stderr, flush=True)
        summarize_failure(exitcodes.PEER_FAILURE, str(exc))
        return exitcodes.TRANSIENT
    if isinstance(exc, CheckpointStorageError):
        print(f"trainforge: {exc}", file=sys.stderr, flush=True)
        summarize_failure("CheckpointStorageUnreachable", str(exc))
        return exitcodes.TRANSIENT
    if isinstance(exc, dist.DistBackendError | dist.DistNetworkError | TimeoutError):
        print(f"trainforge: transient distributed failure: {exc}", file=sys.stderr, flush=True)
        summarize_failure(exitcodes.reason_for(exitcodes.TRANSIENT), str(exc))
        return exitcodes.TRANSIENT
    log.exception("training failed")
    summarize_failure(exitcodes.reason_for(exitcodes.USER_ERROR), f"{type(exc).__name__}: {exc}")
    return exitcodes.USER_ERROR


def summarize_failure(reason: str, message: str) -> None:
    """This rank's summary and the MLflow run's end, if the session had started."""
    ctx = current()
    if ctx is None:
        return
    with contextlib.suppress(OSError):
        ctx.write_summary(reason, message=message)
    if ctx.tracker is not None:
        terminated = reason == exitcodes.reason_for(exitcodes.SIGTERM_EXIT)
        ctx.tracker.end("KILLED" if terminated else "FAILED")
