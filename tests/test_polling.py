"""The background loop behind the dispatcher, the outbox and the media worker."""

from __future__ import annotations

import asyncio

from scheduler.polling import PollingLoop


async def run_until(loop: PollingLoop, done: asyncio.Event) -> None:
    await loop.start()
    try:
        await asyncio.wait_for(done.wait(), timeout=2)
    finally:
        await loop.stop()


async def test_a_wake_during_a_pass_is_not_lost():
    """Work stored while a pass is running must be picked up at once, not at
    the next poll (here 60 s away)."""
    passes = 0
    second_pass = asyncio.Event()

    async def run_once() -> bool:
        nonlocal passes
        passes += 1
        if passes == 1:
            loop.wake()  # new work arrives while this pass is busy
            await asyncio.sleep(0.01)
        else:
            second_pass.set()
        return False

    loop = PollingLoop(run_once, name="test", poll_seconds=60)
    await run_until(loop, second_pass)


async def test_a_failing_pass_is_retried_at_the_next_poll():
    calls = 0
    recovered = asyncio.Event()

    async def run_once() -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database briefly away")
        recovered.set()
        return False

    await run_until(PollingLoop(run_once, name="test", poll_seconds=0.01), recovered)
