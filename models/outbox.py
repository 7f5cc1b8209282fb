"""The outbox: notices are rows written in the same transaction as the change
that caused them, delivered after the commit, retried with backoff, marked sent
only when the platform said ok, and dead-lettered after too many attempts."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import Select, and_, bindparam, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from models.repo import insert_ignore
from models.tables import Notice, Person

SENDING_LEASE = timedelta(minutes=2)  # a claim older than this was lost in a crash


@dataclass(frozen=True)
class Route:
    channel: str
    address: str


def route_for(person: Person, enabled_channels: Sequence[str], via: str | None = None) -> Route | None:
    """Where a person hears from the bot: `via` (the channel they wrote on) when
    given and usable, else their preferred channel, else any enabled one."""
    identities = {i.channel: i.external_id for i in person.identities}
    order = [c for c in (via, person.preferred_channel, *enabled_channels) if c]
    for channel in order:
        if channel in enabled_channels and channel in identities:
            return Route(channel, identities[channel])
    return None


async def queue(
    session: AsyncSession,
    *,
    route: Route,
    payload: dict,
    now: datetime,
    kind: str = "person",
    person_id: int | None = None,
    office_id: int | None = None,
    ticket_id: int | None = None,
    dedupe_key: str | None = None,
) -> bool:
    """Add a notice; with a dedupe key, a second queueing is a no-op. True if added."""
    values = dict(
        dedupe_key=dedupe_key, kind=kind, person_id=person_id, office_id=office_id, ticket_id=ticket_id,
        channel=route.channel, address=route.address, payload=payload, created_at=now,
        status="pending", attempts=0, next_attempt_at=now,
    )
    if dedupe_key is None:
        session.add(Notice(**values))
        return True
    return await insert_ignore(session, Notice, values, ["dedupe_key"])


async def claim_due(session: AsyncSession, now: datetime, limit: int = 20) -> list[Notice]:
    """Claim notices ready to send: the oldest unsent one of each address only,
    so that one person's messages arrive in order."""
    stmt = _claimable(session.bind.dialect.name == "postgresql")
    params = {"now": now, "lease_expired": now - SENDING_LEASE, "limit": limit}
    rows = list((await session.scalars(stmt, params)).all())
    for row in rows:
        row.status = "sending"
        row.attempts += 1
        row.next_attempt_at = now
    return rows


@cache
def _claimable(skip_locked: bool) -> Select:
    # Built once, the moments and the limit bound per call: putting this
    # statement together costs more than running it.
    earlier = aliased(Notice)
    blocked = exists().where(
        and_(
            earlier.channel == Notice.channel,
            earlier.address == Notice.address,
            earlier.status.in_(("pending", "sending")),
            earlier.id < Notice.id,
        )
    )
    stmt = (
        select(Notice)
        .where(
            ((Notice.status == "pending") & (Notice.next_attempt_at <= bindparam("now")))
            | ((Notice.status == "sending") & (Notice.next_attempt_at <= bindparam("lease_expired"))),
            ~blocked,
        )
        .order_by(Notice.next_attempt_at, Notice.id)
        .limit(bindparam("limit"))
    )
    if skip_locked:
        stmt = stmt.with_for_update(skip_locked=True, of=Notice)
    return stmt


async def mark_sent(session: AsyncSession, notice_ids: Sequence[int], now: datetime) -> None:
    if notice_ids:
        await session.execute(
            update(Notice).where(Notice.id.in_(notice_ids)).values(status="sent", sent_at=now, last_error=None)
        )


def backoff(attempts: int, base: float = 2.0, cap: float = 600.0, rand: random.Random | None = None) -> timedelta:
    """Exponential backoff with jitter: 2 s, 4 s, 8 s ... up to 10 minutes."""
    delay = min(cap, base * (2 ** max(0, attempts - 1)))
    jitter = (rand or random).uniform(0.8, 1.2)
    return timedelta(seconds=delay * jitter)


async def mark_failed(
    session: AsyncSession, notice: Notice, now: datetime, error: str, *, retryable: bool, max_attempts: int
) -> bool:
    """Schedule a retry, or dead-letter the notice. True when it is now dead."""
    dead = not retryable or notice.attempts >= max_attempts
    values = {"last_error": error[:2000]}
    if dead:
        values |= {"status": "dead"}
    else:
        values |= {"status": "pending", "next_attempt_at": now + backoff(notice.attempts)}
    await session.execute(update(Notice).where(Notice.id == notice.id).values(**values))
    return dead
