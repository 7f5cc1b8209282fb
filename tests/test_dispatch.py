"""The inbound queue: each stored message processed exactly once, in order per
sender, by one or by several dispatchers (two engines = two bot instances)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from sqlalchemy import select

from bot.dispatch import Dispatcher
from bot.ingest import BatchingStore
from bot.message import IncomingMessage, MessageKind
from models.db import make_sessionmaker
from models.tables import InboundMessage

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc)


def message(sender: str, n: int) -> IncomingMessage:
    return IncomingMessage("wecom", f"{sender}-{n}", sender, MessageKind.TEXT, NOW, text=f"第{n}条")


async def store_all(engine, messages) -> list[bool]:
    store = BatchingStore(engine)
    try:
        return await asyncio.gather(*(store.store(m) for m in messages))
    finally:
        await store.close()


async def test_two_instances_process_each_message_once_and_in_order_per_sender(database):
    engines = [database.engine(), database.engine()]
    try:
        messages = [message(s, n) for n in range(12) for s in ("alice", "bob", "carol")]
        assert all(await store_all(engines[0], messages))
        assert not any(await store_all(engines[0], messages[:5])), "a replay is not new"
        seen: list[tuple[str, str]] = []

        async def process(session, incoming, now):
            seen.append((incoming.sender_id, incoming.message_id))
            await asyncio.sleep(0.002)  # let the other instance try to overtake

        async def never(*_):
            raise AssertionError("nothing fails here")

        dispatchers = [Dispatcher(make_sessionmaker(e), process, never, lambda: NOW) for e in engines]
        await asyncio.gather(*(d.drain() for d in dispatchers))
        assert sorted(seen) == sorted((m.sender_id, m.message_id) for m in messages)
        for sender in ("alice", "bob", "carol"):
            assert [mid for s, mid in seen if s == sender] == [f"{sender}-{n}" for n in range(12)]
        async with make_sessionmaker(engines[0])() as session:
            statuses = (await session.scalars(select(InboundMessage.status))).all()
        assert statuses and set(statuses) == {"done"}
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_message_that_keeps_failing_is_set_aside_and_the_sender_told(database):
    engine = database.engine()
    try:
        await store_all(engine, [message("alice", 1), message("alice", 2)])
        told: list[str] = []

        async def process(session, incoming, now):
            if incoming.message_id == "alice-1":
                raise RuntimeError("bug in a handler")

        async def on_failure(session, incoming, now):
            told.append(incoming.message_id)

        dispatcher = Dispatcher(make_sessionmaker(engine), process, on_failure, lambda: NOW)
        await dispatcher.drain()
        async with make_sessionmaker(engine)() as session:
            rows = {r.message_id: r for r in (await session.scalars(select(InboundMessage))).all()}
        assert rows["alice-1"].status == "failed" and rows["alice-1"].attempts == 3
        assert "RuntimeError: bug in a handler" in rows["alice-1"].error
        assert rows["alice-2"].status == "done", "one bad message does not block the sender for good"
        assert told == ["alice-1"]
    finally:
        await engine.dispose()
