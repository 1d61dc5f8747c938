"""Events are posted off the pass, in order per job, a few at a time across jobs."""

from __future__ import annotations

import asyncio
import datetime as dt

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
