"""keyloops.ToLoop: calls from watch threads run on the event loop, in order, one wake-up per
batch."""

from __future__ import annotations

import asyncio
import threading

from trainforge_operator.keyloops import ToLoop


def test_calls_from_a_thread_run_on_the_loop_in_order_with_one_wake_up_per_batch() -> None:
    async def main() -> tuple[list[int], int, set[int]]:
        loop = asyncio.get_running_loop()
        to_loop = ToLoop(loop)
        wakes = 0
        real = loop.call_soon_threadsafe

        def counting(*args: object) -> asyncio.Handle:
            nonlocal wakes
            wakes += 1
            return real(*args)  # type: ignore[arg-type]

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        seen: list[int] = []
        threads: set[int] = set()

        def record(i: int) -> None:
            seen.append(i)
            threads.add(threading.get_ident())

        def burst() -> None:
            for i in range(100):
                to_loop.call(record, i)

        worker = threading.Thread(target=burst)
        worker.start()
        worker.join()  # the loop is blocked here: all 100 calls queue behind one wake-up
        await asyncio.sleep(0.05)
        return seen, wakes, threads

    seen, wakes, threads = asyncio.run(main())
    assert seen == list(range(100))
    assert wakes == 1
    assert threads == {threading.get_ident()}  # the loop's thread (asyncio.run runs here)


def test_a_failing_call_does_not_drop_the_rest() -> None:
    async def main() -> list[str]:
        to_loop = ToLoop(asyncio.get_running_loop())
        seen: list[str] = []

        def fail() -> None:
            raise RuntimeError("boom")

        to_loop.call(fail)
        to_loop.call(seen.append, "after")
        await asyncio.sleep(0.05)
        return seen

    assert asyncio.run(main()) == ["after"]
