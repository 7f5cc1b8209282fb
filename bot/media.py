"""Download the photos and voice notes people sent, after the message was
handled: the platform keeps media only a few days (WeCom: 3), the ledger keeps
it for good. Runs beside the dispatcher; a failed download is retried with
backoff, then marked failed (the ticket keeps the media id)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.tables import TicketAttachment
from scheduler.polling import PollingLoop

log = logging.getLogger(__name__)

Download = Callable[[str, Path], Awaitable[Path]]  # (media id, folder) -> the saved file
MAX_ATTEMPTS = 5


async def fetch_pending(
    sessionmaker: async_sessionmaker[AsyncSession],
    downloaders: Mapping[str, Download],
    media_dir: Path,
    now: datetime,
    batch: int = 10,
) -> int:
    """Download what is due; returns how many downloads were tried."""
    async with sessionmaker() as session:
        stmt = (
            select(TicketAttachment.id, TicketAttachment.channel, TicketAttachment.media_id,
                   TicketAttachment.ticket_id, TicketAttachment.fetch_attempts)
            .where(TicketAttachment.fetch_status == "pending", TicketAttachment.fetch_after <= now,
                   TicketAttachment.channel.in_(list(downloaders)))
            .order_by(TicketAttachment.id)
            .limit(batch)
        )
        due = (await session.execute(stmt)).all()
    for attachment_id, channel, media_id, ticket_id, attempts in due:
        folder = media_dir / str(ticket_id)
        try:
            path = await downloaders[channel](media_id, folder)
        except Exception as exc:  # noqa: BLE001 - recorded and retried, never fatal
            await _record_failure(sessionmaker, attachment_id, attempts + 1, now, exc)
            continue
        async with sessionmaker() as session, session.begin():
            row = await session.get(TicketAttachment, attachment_id)
            row.path, row.fetch_status, row.fetch_attempts, row.fetch_error = str(path), "done", attempts + 1, None
    return len(due)


async def _record_failure(sessionmaker, attachment_id: int, attempts: int, now: datetime, exc: Exception) -> None:
    retryable = getattr(exc, "retryable", True)
    give_up = not retryable or attempts >= MAX_ATTEMPTS
    log.warning("media %s download failed (attempt %s%s): %s", attachment_id, attempts,
                ", giving up" if give_up else "", exc)
    async with sessionmaker() as session, session.begin():
        row = await session.get(TicketAttachment, attachment_id)
        row.fetch_attempts = attempts
        row.fetch_error = f"{type(exc).__name__}: {exc}"[:2000]
        row.fetch_status = "failed" if give_up else "pending"
        row.fetch_after = now + timedelta(seconds=30 * 2 ** (attempts - 1))


class MediaWorker:
    def __init__(self, sessionmaker, downloaders: Mapping[str, Download], media_dir: Path,
                 now: Callable[[], datetime], poll_seconds: float = 2.0):
        self._args = (sessionmaker, downloaders, media_dir)
        self._now = now
        self._loop = PollingLoop(self.run_once, name="media", poll_seconds=poll_seconds)
        self.start, self.stop = self._loop.start, self._loop.stop

    async def run_once(self) -> int:
        return await fetch_pending(*self._args, self._now())
