"""Deliver the outbox: claim due notices, send each through its channel, and
mark it sent only when the platform said ok. Failures back off; after too many
attempts a notice is dead-lettered and the office is alerted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.message import SendResult
from models import outbox
from models.tables import Notice, Office, Person
from scheduler.polling import PollingLoop

log = logging.getLogger(__name__)


class Sender(Protocol):
    async def deliver(self, address: str, payload: dict) -> SendResult: ...


async def deliver_due(
    sessionmaker: async_sessionmaker[AsyncSession],
    senders: Mapping[str, Sender],
    now: datetime,
    *,
    max_attempts: int = 8,
    batch: int = 20,
    enabled_channels: tuple[str, ...] = (),
) -> int:
    """One pass: send what is due. Returns how many notices were attempted."""
    async with sessionmaker() as session, session.begin():
        claimed = [(n.id, n.channel, n.address, n.payload, n.attempts, n.kind)
                   for n in await outbox.claim_due(session, now, batch)]
    if not claimed:
        return 0
    results = await asyncio.gather(*(_send(senders, c[1], c[2], c[3]) for c in claimed))
    async with sessionmaker() as session, session.begin():
        await outbox.mark_sent(session, [c[0] for c, result in zip(claimed, results) if result.ok], now)
        for (notice_id, channel, _address, _payload, attempts, kind), result in zip(claimed, results):
            if result.ok:
                continue
            notice = await session.get(Notice, notice_id)
            dead = await outbox.mark_failed(session, notice, now, result.error,
                                            retryable=result.retryable, max_attempts=max_attempts)
            log.warning("notice %s via %s failed (attempt %s): %s%s", notice_id, channel, attempts,
                        result.error, " -> dead" if dead else "")
            if dead and kind != "alert":
                await _alert_office(session, notice, now, enabled_channels)
    return len(claimed)


async def _send(senders: Mapping[str, Sender], channel: str, address: str, payload: dict) -> SendResult:
    sender = senders.get(channel)
    if sender is None:
        return SendResult.failure(f"channel {channel!r} is not enabled", retryable=False)
    try:
        return await sender.deliver(address, payload)
    except Exception as exc:  # noqa: BLE001 - a sender bug must not lose the notice
        log.exception("sender %s raised", channel)
        return SendResult.failure(f"{type(exc).__name__}: {exc}")


async def _alert_office(session: AsyncSession, dead: Notice, now: datetime, enabled: tuple[str, ...]) -> None:
    """Tell the top office's staff that a message could not be delivered."""
    top = await session.scalar(select(Office).where(Office.parent_id.is_(None)).order_by(Office.id))
    if top is None:
        return
    staff = (await session.scalars(select(Person).where(Person.office_id == top.id, Person.active.is_(True)))).all()
    recipient = await session.get(Person, dead.person_id) if dead.person_id else None
    who = recipient.name if recipient else dead.address
    text = f"【消息未送达】发给{who}的一条消息发送失败，已停止重试。原因：{dead.last_error or '未知'}。请核实其账号或电话联系。"
    for person in staff:
        if "office" not in person.roles:
            continue
        route = outbox.route_for(person, enabled)
        if route is None or (route.channel, route.address) == (dead.channel, dead.address):
            continue
        await outbox.queue(session, route=route, payload={"reply": {"text": text}}, now=now, kind="alert",
                           person_id=person.id, dedupe_key=f"dead:{dead.id}:{person.id}")


class OutboxWorker:
    """Runs deliver_due in a loop; `wake()` after a commit that queued notices."""

    def __init__(self, sessionmaker, senders: Mapping[str, Sender], now: Callable[[], datetime], *,
                 poll_seconds: float = 0.5, max_attempts: int = 8, enabled_channels: tuple[str, ...] = ()):
        self._sessionmaker = sessionmaker
        self._senders = senders
        self._now = now
        self._max_attempts = max_attempts
        self.enabled_channels = enabled_channels  # where office alerts may go
        self._loop = PollingLoop(self.run_once, name="outbox", poll_seconds=poll_seconds)
        self.wake, self.start, self.stop = self._loop.wake, self._loop.start, self._loop.stop

    async def run_once(self) -> int:
        return await deliver_due(self._sessionmaker, self._senders, self._now(),
                                 max_attempts=self._max_attempts, enabled_channels=self.enabled_channels)
