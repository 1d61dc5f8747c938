"""Admission of reconcile passes: at most `apiConcurrency` at once, new jobs first.

Why: a burst of submissions would otherwise be worked through one API call per job per round,
every job advancing a little and none getting its gang; and status-only passes over jobs that are
already running would take the API request slots the new jobs need. With this gate each
admitted pass runs to its end, and a job that has never been reconciled (no pods yet) goes
before passes over jobs that have their pods (the control-plane bench: time from apply to all
pods created). Events take a slot too, after everything else (`events.py` says why).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator

NEW_JOB = 0  # nothing was created for it yet
KNOWN_JOB = 1  # its gang exists; this pass only checks on it
EVENTS = 2  # one Event post (events.EventPoster)


class PriorityGate:
    """At most `limit` holders; waiters are admitted lowest priority first, then in order."""

    def __init__(self, limit: int) -> None:
        self.free = limit
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    async def acquire(self, priority: int) -> None:
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # admitted and cancelled in the same tick: pass the slot on
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
                return
        self.free += 1

    @contextlib.asynccontextmanager
    async def slot(self, priority: int) -> AsyncIterator[None]:
        await self.acquire(priority)
        try:
            yield
        finally:
            self.release()
