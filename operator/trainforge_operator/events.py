"""Posting each pass's Events off the pass.

Events are sent after the status write, so they never announce what the status does not show.
Awaiting them in the pass held up pod creation for the next jobs in a burst, so each pass's
Events are posted by a task of their own: a few posts at a time across all jobs, and in order per
job (a job's Events wait for those of its earlier passes).

With a `turn` (the TrainingJob controller's: a pass slot at the lowest priority,
`admission.EVENTS`), each post waits for it. A post is one more write for the API server, and in
a burst the new jobs' pods should go first: Events wait while jobs wait for a pass, and go out as
soon as the burst's creates are done, each with the time its pass decided it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from trainforge_operator.plan import Event

Obj = dict[str, Any]
Key = tuple[str, str]
PostEvent = Callable[[Obj, Event, dt.datetime], Awaitable[None]]
Turn = Callable[[], AbstractAsyncContextManager[None]]


class EventPoster:
    def __init__(
        self,
        post: PostEvent,
        clock: Callable[[], dt.datetime],
        at_once: int,
        turn: Turn | None = None,
    ) -> None:
        self._post = post  # logs failures, never raises
        self._clock = clock
        self._slots = asyncio.Semaphore(at_once)
        self._turn: Turn = turn or contextlib.nullcontext
        self._latest: dict[Key, asyncio.Task[None]] = {}  # each job's last posting task

    def send(self, key: Key, body: Obj, events: list[Event]) -> None:
        """Post `events` about the job `body` after those of its earlier passes."""
        earlier = self._latest.get(key)
        task = asyncio.create_task(self._post_after(earlier, body, events), name=f"events {key}")
        self._latest[key] = task
        task.add_done_callback(lambda done: self._done(key, done))

    async def _post_after(
        self, earlier: asyncio.Task[None] | None, body: Obj, events: list[Event]
    ) -> None:
        now = self._clock()
        if earlier is not None and not earlier.done():
            with contextlib.suppress(Exception):
                await earlier
        for event in events:
            async with self._slots, self._turn():
                await self._post(body, event, now)

    def _done(self, key: Key, task: asyncio.Task[None]) -> None:
        if self._latest.get(key) is task:
            del self._latest[key]

    async def stop(self) -> None:
        """Cancel what is still being posted."""
        tasks = list(self._latest.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
