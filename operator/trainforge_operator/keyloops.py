"""One asyncio task per object key, woken by watch events and by the pass's own requeue.

Every controller runs one reconcile loop per object so that one task is the only writer of that
object's status. The TrainingSweep and TrainingSchedule controllers run the very same loop around a
different pass (`KeyLoops`) and the same wiring around it (`KeyedController`); the TrainingJob
controller keeps its own loop (admission slots, a
body cache, counting unforeseen errors) and shares only `cancel` and `stop_all`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

log = logging.getLogger(__name__)
Key = tuple[str, str]
MAX_ERROR_BACKOFF = 60.0  # a pass that keeps failing is retried at most this far apart
MAX_WAIT = 3600.0  # an idle loop still wakes at least this often


class HasTask(Protocol):
    task: asyncio.Task[None] | None


L = TypeVar("L", bound=HasTask)
T = TypeVar("T")


def cancel(loops: MutableMapping[Key, L], key: Key) -> None:
    """Drop the key's loop and cancel its task, unless the task is the caller (it then ends by
    itself: it finds its key gone)."""
    loop = loops.pop(key, None)
    if loop is not None and loop.task is not None and loop.task is not asyncio.current_task():
        loop.task.cancel()


async def stop_all(loops: MutableMapping[Key, L], *also: Awaitable[object]) -> None:
    """Cancel every loop and wait for them (and for `also`, e.g. the Event poster to drain)."""
    tasks = [lp.task for lp in loops.values() if lp.task is not None]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, *also, return_exceptions=True)
    loops.clear()


@dataclass
class KeyLoop:
    wake: asyncio.Event
    task: asyncio.Task[None] | None = None

    def running(self) -> bool:
        return self.task is not None and not self.task.done()


class KeyLoops:
    """The loops of one kind of object around `reconcile(key)`, which returns the seconds until
    the next wanted pass (None: only on events, or at the latest after `idle` seconds).

    A failing pass is retried after 1, 2, 4 ... `MAX_ERROR_BACKOFF` seconds. `speed` > 1 runs
    the loop's waits faster than real time (tests with a fast clock): requeues are in the
    clock's seconds and the sleeps are divided by it. A wait is never shorter than `min_wait`.
    Failures are logged on `logger` (the controller's own, so its log lines keep their name).
    """

    def __init__(
        self,
        kind: str,
        reconcile: Callable[[Key], Awaitable[float | None]],
        *,
        idle: float,
        speed: float = 1.0,
        min_wait: float = 0.0,
        logger: logging.Logger = log,
    ) -> None:
        self.kind = kind
        self.log = logger
        self.reconcile = reconcile
        self.idle = idle
        self.speed = speed
        self.min_wait = min_wait
        self.loops: dict[Key, KeyLoop] = {}

    def __contains__(self, key: Key) -> bool:
        return key in self.loops

    def notify(self, key: Key) -> None:
        """Make sure the key's loop runs and wake it now."""
        loop = self.loops.get(key)
        if loop is None:
            loop = self.loops[key] = KeyLoop(wake=asyncio.Event())
        if not loop.running():
            loop.task = asyncio.create_task(self._run(key, loop), name=f"{self.kind} {key}")
        loop.wake.set()

    def forget(self, key: Key) -> None:
        cancel(self.loops, key)

    async def stop(self, *also: Awaitable[object]) -> None:
        await stop_all(self.loops, *also)

    async def _run(self, key: Key, loop: KeyLoop) -> None:
        backoff = 1.0
        while True:
            loop.wake.clear()
            try:
                requeue = await self.reconcile(key)
                backoff = 1.0
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception(
                    "reconcile of %s %s/%s failed; retrying in %.0fs", self.kind, *key, backoff
                )
                requeue, backoff = backoff * self.speed, min(backoff * 2, MAX_ERROR_BACKOFF)
            if key not in self.loops:
                return
            wait = self.idle if requeue is None else requeue / self.speed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    loop.wake.wait(), timeout=max(min(wait, MAX_WAIT), self.min_wait)
                )
            if key not in self.loops:
                return


class Stoppable(Protocol):
    def stop(self) -> Awaitable[object]: ...


class KeyedController:
    """What a controller built on `KeyLoops` shares: API calls (`_call`, coroutines on the event
    loop), blocking work such as object storage in its own small thread pool (`_blocking`), and
    the watch events that reach the loops through notify/forget/stop. Subclasses set `loops`,
    `executor` and `events`, and drop their per-object metrics in `_forgotten`."""

    loops: KeyLoops
    executor: ThreadPoolExecutor
    events: Stoppable

    async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        return await fn(*args)

    async def _blocking(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, functools.partial(fn, *args)
        )

    def notify(self, namespace: str, name: str) -> None:
        self.loops.notify((namespace, name))

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        self.loops.forget(key)
        self._forgotten(key)

    def _forgotten(self, key: Key) -> None:
        """The object is gone: drop what is kept about it (its metrics)."""

    async def stop(self) -> None:
        await self.loops.stop(self.events.stop())
        self.executor.shutdown(wait=False, cancel_futures=True)
