"""The controller's admission gate: a bounded number of passes, new jobs first."""

from __future__ import annotations

import asyncio

from trainforge_operator.admission import PriorityGate


def test_waiters_are_admitted_by_priority_then_arrival() -> None:
    async def scenario() -> list[str]:
        gate = PriorityGate(limit=1)
        order: list[str] = []
        await gate.acquire(1)  # the slot is taken

        async def waiter(name: str, priority: int) -> None:
            async with gate.slot(priority):
                order.append(name)

        tasks = []
        for name, priority in [("old-a", 1), ("new-a", 0), ("old-b", 1), ("new-b", 0)]:
            tasks.append(asyncio.create_task(waiter(name, priority)))
            await asyncio.sleep(0)  # queue them in this arrival order
        gate.release()
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(scenario()) == ["new-a", "new-b", "old-a", "old-b"]


def test_at_most_limit_holders_and_cancelled_waiters_do_not_leak_slots() -> None:
    async def scenario() -> tuple[int, int]:
        gate = PriorityGate(limit=2)
        active = peak = 0

        async def work() -> None:
            nonlocal active, peak
            async with gate.slot(0):
                active += 1
                peak = max(peak, active)
                await asyncio.sleep(0.01)
                active -= 1

        doomed = asyncio.create_task(work())
        await asyncio.gather(*(work() for _ in range(3)), asyncio.sleep(0))
        doomed.cancel()
        await asyncio.gather(doomed, return_exceptions=True)
        await asyncio.gather(*(work() for _ in range(4)))
        return peak, gate.free

    peak, free = asyncio.run(scenario())
    assert peak == 2
    assert free == 2
