"""A background loop around one `run_once()`: run while there is work, then
sleep until woken or until the next poll. Used by the inbound dispatcher, the
outbox worker and the media downloader."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class PollingLoop:
    def __init__(self, run_once: Callable[[], Awaitable[object]], *, name: str, poll_seconds: float,
                 tasks: int = 1):
        self._run_once = run_once
        self._name = name
        self._poll_seconds = poll_seconds
        self._count = tasks
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    def wake(self) -> None:
        """There is new work: look now instead of at the next poll."""
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            # Cleared before the work, not after: a wake() that arrives while
            # run_once() is busy must make the loop look again at once.
            self._wake.clear()
            try:
                while await self._run_once():
                    pass
            except Exception:  # noqa: BLE001 - e.g. the database is briefly away: try again later
                log.exception("%s loop error; retrying", self._name)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll_seconds)
            except TimeoutError:
                pass

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(), name=f"{self._name}-{i}") for i in range(self._count)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
