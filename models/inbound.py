"""The inbound queue: messages stored before the platform is answered, then
claimed one at a time by the dispatcher, in order per sender."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from functools import cache

from sqlalchemy import Select, and_, exists, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import aliased

from models.tables import InboundMessage

MAX_ATTEMPTS = 3
NEW_ROW = {"status": "pending", "attempts": 0}  # what every stored message starts as

Key = tuple[str, str]  # (channel, platform message id): the inbound queue's idempotency key


async def store_many(connection: AsyncConnection, rows: list[dict]) -> set[Key]:
    """Insert-or-ignore many messages in one statement; returns the (channel,
    message id) pairs that were new. Rows: channel, message_id, sender_id,
    payload, received_at."""
    if not rows:
        return set()
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    values = [row | NEW_ROW for row in rows]
    # One statement for the batch, compiled once and cached (SQLAlchemy's
    # "insertmanyvalues" turns the executemany into multi-row INSERT ... RETURNING).
    stmt = (
        insert(InboundMessage)
        .on_conflict_do_nothing(index_elements=["channel", "message_id"])
        .returning(InboundMessage.channel, InboundMessage.message_id)
    )
    result = await connection.execute(stmt, values)
    return {tuple(r) for r in result.all()}


async def claim_next(session: AsyncSession, busy_senders: Collection[tuple[str, str]] = ()) -> InboundMessage | None:
    """The oldest pending message whose sender has no earlier pending one.

    On PostgreSQL the row stays locked (SKIP LOCKED for other instances) until
    the caller's transaction ends; an earlier message of the same sender being
    processed elsewhere is still 'pending', so the NOT EXISTS keeps the order.
    """
    stmt = _claimable(session.bind.dialect.name == "postgresql")
    for channel, sender in busy_senders:
        stmt = stmt.where(~and_(InboundMessage.channel == channel, InboundMessage.sender_id == sender))
    return await session.scalar(stmt)


@cache
def _claimable(skip_locked: bool) -> Select:
    # Built once: putting a statement together costs more than running it here.
    earlier = aliased(InboundMessage)
    blocked = exists().where(
        and_(
            earlier.channel == InboundMessage.channel,
            earlier.sender_id == InboundMessage.sender_id,
            earlier.status == "pending",
            earlier.id < InboundMessage.id,
        )
    )
    stmt = select(InboundMessage).where(InboundMessage.status == "pending", ~blocked)
    stmt = stmt.order_by(InboundMessage.id).limit(1)
    if skip_locked:
        stmt = stmt.with_for_update(skip_locked=True, of=InboundMessage)
    return stmt


async def mark_done(session: AsyncSession, row: InboundMessage, now: datetime) -> None:
    row.status = "done"
    row.processed_at = now
    row.attempts += 1


async def record_failure(session: AsyncSession, row_id: int, now: datetime, error: str) -> bool:
    """Count a failed attempt; True when the message has now failed for good."""
    row = await session.get(InboundMessage, row_id, with_for_update=session.bind.dialect.name == "postgresql")
    if row is None:
        return False
    row.attempts += 1
    row.error = error[:2000]
    if row.attempts >= MAX_ATTEMPTS:
        row.status = "failed"
        row.processed_at = now
        return True
    return False
