"""The inbound worker: claim stored messages and process each in one unit of work.

Per-sender order holds within an instance (busy senders are skipped) and across
instances (models.inbound.claim_next). A message whose processing raises is
retried a few times, then marked failed and the sender is told.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.message import IncomingMessage
from models import inbound
from scheduler.polling import PollingLoop

log = logging.getLogger(__name__)

Process = Callable[[AsyncSession, IncomingMessage, datetime], Awaitable[object]]
OnFailure = Callable[[AsyncSession, IncomingMessage, datetime], Awaitable[object]]


class Dispatcher:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        process: Process,
        on_failure: OnFailure,
        now: Callable[[], datetime],
        *,
        poll_seconds: float = 0.5,
        workers: int = 1,
        after_commit: Callable[[], None] | None = None,
    ):
        self._sessionmaker = sessionmaker
        self._process = process
        self._on_failure = on_failure
        self._now = now
        self._after_commit = after_commit or (lambda: None)
        self._busy: set[tuple[str, str]] = set()
        self._loop = PollingLoop(self.run_once, name="dispatcher", poll_seconds=poll_seconds, tasks=workers)

    def wake(self) -> None:
        """A message was stored: look now instead of at the next poll."""
        self._loop.wake()

    async def run_once(self) -> bool:
        """Process one message if there is one; True when one was handled."""
        claimed: tuple[str, str] | None = None
        row_id: int | None = None
        message: IncomingMessage | None = None
        try:
            async with self._sessionmaker() as session, session.begin():
                row = await inbound.claim_next(session, tuple(self._busy))
                if row is None:
                    return False
                claimed, row_id = (row.channel, row.sender_id), row.id
                self._busy.add(claimed)
                message = IncomingMessage.from_dict(row.payload)
                now = self._now()
                await self._process(session, message, now)
                await inbound.mark_done(session, row, now)
            self._after_commit()
            return True
        except Exception as exc:  # noqa: BLE001 - one bad message must not stop the worker
            if row_id is None:
                raise
            log.exception("processing inbound message %s failed", row_id)
            await self._record_failure(row_id, message, exc)
            return True
        finally:
            if claimed is not None:
                self._busy.discard(claimed)

    async def _record_failure(self, row_id: int, message: IncomingMessage | None, exc: Exception) -> None:
        async with self._sessionmaker() as session, session.begin():
            now = self._now()
            failed = await inbound.record_failure(session, row_id, now, f"{type(exc).__name__}: {exc}")
            if failed and message is not None:
                await self._on_failure(session, message, now)
        self._after_commit()

    async def drain(self, limit: int = 10_000) -> int:
        """Process until nothing is left (tests, `kpbot` one-shot commands)."""
        done = 0
        while done < limit and await self.run_once():
            done += 1
        return done

    async def start(self) -> None:
        await self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
