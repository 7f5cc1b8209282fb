"""A per-key sliding-window rate limiter for the platforms' group robots
(WeCom and DingTalk both allow 20 messages a minute per robot).

`acquire(key)` takes a slot in the key's window, waiting (with the injected
`sleep`) when the next free slot is at most `max_wait` seconds away; when it is
further, it takes nothing and says how long the wait would be, so the caller
can fail the send as retryable ("retry after N s") and let the outbox retry.

Slots are reserved under a lock at the moment they become free, and the caller
sleeps outside the lock: concurrent callers never overbook a window, are served
in the order they asked, and one caller's wait does not hold up another key. A
caller cancelled while it waits keeps its reserved slot unused: the window can
come out emptier than allowed, never fuller.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

Monotonic = Callable[[], float]
Sleep = Callable[[float], Awaitable[Any]]


class SlidingWindowLimiter:
    """At most `limit` acquisitions per `window` seconds for each key."""

    def __init__(
        self,
        limit: int = 20,
        window: float = 60.0,
        *,
        max_wait: float = 10.0,
        monotonic: Monotonic = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ):
        if limit < 1 or window <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        if max_wait < 0:
            raise ValueError("max_wait must be >= 0")
        self.limit = limit
        self.window = window
        self.max_wait = max_wait
        self._monotonic = monotonic
        self._sleep = sleep
        self._slots: dict[str, deque[float]] = {}  # per key: reserved moments, ascending
        self._lock = asyncio.Lock()

    async def acquire(self, key: str, max_wait: float | None = None) -> float | None:
        """Take a slot for `key`: None once it is taken (after waiting up to
        `max_wait` seconds, the limiter's own when None); otherwise the seconds
        until a slot would be free, and no slot is taken."""
        limit_wait = self.max_wait if max_wait is None else max_wait
        async with self._lock:
            now = self._monotonic()
            slots = self._slots.setdefault(key, deque())
            while slots and slots[0] <= now - self.window:
                slots.popleft()
            at = now if len(slots) < self.limit else slots[len(slots) - self.limit] + self.window
            delay = at - now
            if delay > limit_wait:
                return delay
            slots.append(at)
        if delay > 0:
            await self._sleep(delay)
        return None

    def in_window(self, key: str) -> int:
        """Slots of `key` taken or reserved in the current window."""
        now = self._monotonic()
        return sum(1 for at in self._slots.get(key, ()) if at > now - self.window)
