"""Deterministic fault injection for restart tests.

`TRAINFORGE_FAULT` holds one or more specs separated by `;`, each a comma list of `key=value`:
`rank=1,step=5,attempt=0,code=137`. When the global rank, the step and the gang-restart attempt
all match, that process exits with `code` right there. Keys: `rank` and `step` are required,
`attempt` defaults to 0 (so the restarted gang runs clean) and `code` to 137 (as if OOM-killed);
the attempt a process compares is the gang attempt plus its pod's in-place restarts, so processes
an agent restarted in place run clean too (a pod recreated in place starts counting again).
`pause=N` makes the process stall for N seconds at that step instead of exiting (a straggler or a
hang: the other ranks wait in their next collective), e.g. to keep a job mid-run while a test
restarts the operator.
Deterministic on purpose: a test knows exactly which pod fails, when, and how.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from functools import lru_cache

from trainforge_api.context import ENV_FAULT

log = logging.getLogger(__name__)

_KEYS = ("rank", "step", "attempt", "code", "pause")


@dataclass(frozen=True)
class FaultSpec:
    rank: int
    step: int
    attempt: int = 0
    code: int = 137
    pause: int = 0

    def matches(self, rank: int, step: int, attempt: int) -> bool:
        return (self.rank, self.step, self.attempt) == (rank, step, attempt)


def parse_faults(text: str) -> tuple[FaultSpec, ...]:
    """Parse a `TRAINFORGE_FAULT` value; raises ValueError naming the bad part."""
    specs: list[FaultSpec] = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        fields: dict[str, int] = {}
        for item in filter(None, (i.strip() for i in part.split(","))):
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in _KEYS:
                raise ValueError(
                    f"{ENV_FAULT}: bad item {item!r} in {part!r}; "
                    f"use key=value with keys {', '.join(_KEYS)}"
                )
            try:
                fields[key] = int(value)
            except ValueError:
                raise ValueError(f"{ENV_FAULT}: {key}={value!r} is not an integer") from None
        missing = [k for k in ("rank", "step") if k not in fields]
        if missing:
            raise ValueError(f"{ENV_FAULT}: {part!r} lacks {', '.join(missing)}")
        if fields.get("pause", 0) < 0:
            raise ValueError(f"{ENV_FAULT}: pause must be >= 0 seconds, got {fields['pause']}")
        if not 0 <= fields.get("code", 137) <= 255:
            raise ValueError(f"{ENV_FAULT}: code must be in 0..255, got {fields['code']}")
        specs.append(FaultSpec(**fields))
    return tuple(specs)


@lru_cache(maxsize=8)
def _cached(text: str) -> tuple[FaultSpec, ...]:
    return parse_faults(text)


def find_fault(rank: int, step: int, attempt: int, env: str | None = None) -> FaultSpec | None:
    """The first spec matching this rank/step/attempt, or None. `env` overrides the env var."""
    text = os.environ.get(ENV_FAULT, "") if env is None else env
    if not text.strip():
        return None
    return next((s for s in _cached(text) if s.matches(rank, step, attempt)), None)


def maybe_inject_fault(rank: int, step: int, attempt: int) -> None:
    """Stall or exit as the matching fault spec says; do nothing when none matches."""
    spec = find_fault(rank, step, attempt)
    if spec is None:
        return
    if spec.pause:
        log.warning(
            "fault injection (%s): rank=%d step=%d attempt=%d pausing %ds",
            ENV_FAULT,
            rank,
            step,
            attempt,
            spec.pause,
        )
        time.sleep(spec.pause)
        return
    log.error(
        "fault injection (%s): rank=%d step=%d attempt=%d exiting with code %d",
        ENV_FAULT,
        rank,
        step,
        attempt,
        spec.code,
    )
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    # os._exit skips atexit/finally on purpose: a real crash does not clean up either.
    os._exit(spec.code)
