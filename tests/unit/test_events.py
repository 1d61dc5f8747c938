"""Events are posted off the pass, in order per job, a few at a time across jobs."""

from __future__ import annotations

import asyncio
import datetime as dt

from trainforge_operator.admission import EVENTS, KNOWN_JOB, NEW_JOB, PriorityGate
from trainforge_operator.events import EventPoster
from trainforge_operator.plan import Event

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_a_jobs_events_keep_their_order_and_few_post_at_once() -> None:
    async def scenario() -> tuple[list[str], int]:
        posted: list[str] = []
        active = peak = 0

        async def post(body: dict[str, object], event: Event, now: dt.datetime) -> None:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.01 if event.reason == "first" else 0)
            posted.append(f"{body['name']}:{event.reason}")
            active -= 1

        poster = EventPoster(post, lambda: T0, at_once=2)
        for job in ("a", "b", "c"):
            poster.send(("ns", job), {"name": job}, [Event("Normal", "first", "")])
            poster.send(("ns", job), {"name": job}, [Event("Normal", "second", "")])
        await asyncio.sleep(0.1)
        await poster.stop()
        return posted, peak

    posted, peak = asyncio.run(scenario())
    for job in ("a", "b", "c"):
        assert posted.index(f"{job}:first") < posted.index(f"{job}:second")
    assert len(posted) == 6
    assert peak == 2


def test_events_wait_for_the_passes_queued_before_them_and_keep_their_time() -> None:
    """With the controller's turn (a pass slot at the lowest priority), a post waits while jobs
    wait for a pass, and goes out with the time its pass decided it."""

    async def scenario() -> tuple[list[str], list[dt.datetime]]:
        gate = PriorityGate(limit=1)
        order: list[str] = []
        stamps: list[dt.datetime] = []

        async def post(body: dict[str, object], event: Event, now: dt.datetime) -> None:
            order.append(f"event {event.reason}")
            stamps.append(now)

        async def a_pass(name: str, priority: int) -> None:
            async with gate.slot(priority):
                order.append(name)

        clock = iter([T0, T0 + dt.timedelta(seconds=5)])
        poster = EventPoster(post, lambda: next(clock), 2, turn=lambda: gate.slot(EVENTS))
        await gate.acquire(NEW_JOB)  # a pass runs
        poster.send(("ns", "a"), {"name": "a"}, [Event("Normal", "Created", "")])
        await asyncio.sleep(0)
        passes = [
            asyncio.create_task(a_pass("known pass", KNOWN_JOB)),
            asyncio.create_task(a_pass("new pass", NEW_JOB)),
        ]
        await asyncio.sleep(0)
        gate.release()
        await asyncio.gather(*passes)
        await asyncio.sleep(0.01)
        await poster.stop()
        return order, stamps

    order, stamps = asyncio.run(scenario())
    assert order == ["new pass", "known pass", "event Created"]
    assert stamps == [T0]
