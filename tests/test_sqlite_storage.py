"""SQLite specifics: the driver (inline or one trip per statement) and the inbound writer's
own durable connection. Real files in a temp dir; PostgreSQL needs neither."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import datetime, timedelta, timezone

import aiosqlite
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError

from bot.ingest import BatchingStore, EngineWriter, SqliteThreadWriter, inbox_writer
from bot.message import IncomingMessage, MessageKind
from models import schema
from models.db import make_engine, make_sessionmaker
from models.inbound_sqlite import PreparedInsert, SqliteInboxWriter
from models.sqlite_driver import sqlite_connector
from models.tables import InboundMessage

NOW = datetime(2026, 11, 23, 1, 0, 0, 123456, tzinfo=timezone.utc)


@pytest.fixture
async def engine(tmp_path):
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'kpbot.db'}")
    await schema.upgrade(engine)
    yield engine
    await engine.dispose()


def row(n: int, sender: str = "lisi", **extra) -> dict:
    return {"channel": "wecom", "message_id": f"m{n}", "sender_id": sender,
            "payload": {"text": f"第{n}条：临时用电", "n": n}, "received_at": NOW + timedelta(seconds=n)} | extra


class CountingHops:
    """Counts calls onto aiosqlite's database thread."""

    def __init__(self, monkeypatch):
        self.calls = 0
        original = aiosqlite.Connection._execute

        async def counted(connection, fn, *args, **kwargs):
            self.calls += 1
            return await original(connection, fn, *args, **kwargs)

        monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)


async def test_threaded_a_statement_is_one_trip_to_the_database_thread(tmp_path, monkeypatch):
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", inline=False)
    try:
        async with engine.connect() as connection:  # connected before counting
            await connection.execute(text("SELECT 1"))
            hops = CountingHops(monkeypatch)
            rows = (await connection.execute(text("SELECT 1 UNION SELECT 2"))).all()
            assert hops.calls == 1
            await connection.execute(text("SELECT 3"))
            assert hops.calls == 2
    finally:
        await engine.dispose()
    assert rows == [(1,), (2,)]


async def test_inline_statements_never_leave_the_event_loop(engine, monkeypatch):
    async with engine.begin() as connection:
        hops = CountingHops(monkeypatch)
        where = await connection.run_sync(lambda c: c.connection.dbapi_connection.driver_connection._conn.execute(
            "SELECT 1").fetchone())
        await connection.execute(text("SELECT count(*) FROM units"))
        await connection.execute(InboundMessage.__table__.insert().values(**row(1)))
    assert where == (1,)
    assert hops.calls == 0


async def test_inline_waits_for_the_write_lock_without_blocking_the_loop(engine, tmp_path):
    """Another connection holds the write lock for 0.3 s: the loop keeps running
    meanwhile, and the transaction starts as soon as the lock is free."""
    other = sqlite3.connect(tmp_path / "kpbot.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    def release():
        time.sleep(0.3)
        other.execute("COMMIT")

    ticking = asyncio.create_task(ticker())
    releasing = asyncio.get_running_loop().run_in_executor(None, release)
    started = time.monotonic()
    try:
        async with engine.begin() as connection:
            waited = time.monotonic() - started
            await connection.execute(InboundMessage.__table__.insert().values(**row(1)))
    finally:
        await releasing
        ticking.cancel()
        other.close()
    assert waited >= 0.25
    assert ticks >= 15, "the event loop ran while the driver waited"


async def test_results_rowcount_and_lastrowid_are_the_drivers(engine):
    async with engine.begin() as connection:
        await connection.run_sync(
            lambda c: c.execute(InboundMessage.__table__.insert(), [row(n) for n in range(300)]))
        result = await connection.execute(
            update(InboundMessage).where(InboundMessage.id <= 120).values(status="done"))
        assert result.rowcount == 120
        inserted = await connection.execute(InboundMessage.__table__.insert().values(**row(999)))
        assert inserted.inserted_primary_key[0] == 301
        assert await connection.scalar(select(func.count()).where(InboundMessage.status == "done")) == 120

    async with make_sessionmaker(engine)() as session:
        first = await session.scalar(select(InboundMessage).order_by(InboundMessage.id))
        assert first.payload == {"text": "第0条：临时用电", "n": 0}
        assert first.received_at == NOW  # aware UTC, microseconds kept
        streamed = [m.id async for m in await session.stream_scalars(select(InboundMessage).order_by(InboundMessage.id))]
        assert streamed == list(range(1, 302))


async def test_errors_are_the_usual_sqlalchemy_errors(engine):
    async with engine.connect() as connection:
        await connection.execute(InboundMessage.__table__.insert().values(**row(1)))
        with pytest.raises(IntegrityError):
            await connection.execute(
                text("INSERT INTO inbound_messages (channel, message_id, sender_id, payload, received_at, status,"
                     " attempts) VALUES ('wecom', 'm1', 'x', '{}', '2026-01-01', 'pending', 0)"))
        await connection.rollback()
        assert await connection.scalar(select(func.count()).select_from(InboundMessage)) == 0


def test_the_prepared_insert_is_sqlalchemys_own():
    prepared = PreparedInsert()
    assert prepared.sql.startswith("INSERT INTO inbound_messages (")
    assert "ON CONFLICT (channel, message_id) DO NOTHING RETURNING id" in prepared.sql
    values = prepared.parameters(row(1) | {"status": "pending", "attempts": 0})
    named = dict(zip(prepared.order, values))
    assert named["received_at"] == "2026-11-23 01:00:01.123456"  # UTC, as UTCDateTime stores it
    assert named["payload"] == '{"text": "\\u7b2c1\\u6761\\uff1a\\u4e34\\u65f6\\u7528\\u7535", "n": 1}'


async def test_the_writer_commits_rows_the_orm_reads_back(engine):
    writer = SqliteThreadWriter(SqliteInboxWriter(sqlite_connector(engine.url, timeout=30)))
    try:
        assert await writer.write([row(1), row(2)]) == {("wecom", "m1"), ("wecom", "m2")}
        assert await writer.write([row(2), row(3)]) == {("wecom", "m3")}, "a replay is not new"
    finally:
        await writer.close()
    async with make_sessionmaker(engine)() as session:
        stored = (await session.scalars(select(InboundMessage).order_by(InboundMessage.id))).all()
    assert [(m.message_id, m.status, m.attempts) for m in stored] == [("m1", "pending", 0), ("m2", "pending", 0),
                                                                     ("m3", "pending", 0)]
    assert stored[1].payload == row(2)["payload"]
    assert stored[2].received_at == NOW + timedelta(seconds=3)


async def test_a_failing_batch_leaves_nothing_behind(engine):
    writer = SqliteInboxWriter(sqlite_connector(engine.url, timeout=30))
    try:
        with pytest.raises(ValueError, match="naive datetime"):
            writer.insert_new([row(1), row(2, received_at=datetime(2026, 11, 23))])
        assert writer.insert_new([row(1)]) == {("wecom", "m1")}, "the connection is usable again"
    finally:
        writer.close()
    async with engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(InboundMessage)) == 1


async def test_the_writer_connection_syncs_every_commit(engine):
    writer = SqliteInboxWriter(sqlite_connector(engine.url, timeout=30))
    try:
        writer.insert_new([row(1)])
        (synchronous,) = writer._connection.execute("PRAGMA synchronous").fetchone()
        (journal,) = writer._connection.execute("PRAGMA journal_mode").fetchone()
    finally:
        writer.close()
    assert (synchronous, journal) == (2, "wal")  # FULL


async def test_the_writer_waits_its_turn_behind_a_long_transaction(engine):
    """Two connections, one writer at a time: a callback commits after the
    dispatcher's transaction ends, and loses nothing."""
    store = BatchingStore(engine)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            session.add(InboundMessage(**row(1), status="pending", attempts=0))
            await session.flush()
            waiting = asyncio.ensure_future(store.store(IncomingMessage(
                "wecom", "m2", "lisi", MessageKind.TEXT, NOW, text="第二条")))
            await asyncio.sleep(0.2)
            assert not waiting.done(), "the write lock is held"
        assert await asyncio.wait_for(waiting, 10) is True
    finally:
        await store.close()
    async with engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(InboundMessage)) == 2


async def test_writers_by_database(engine):
    assert isinstance(inbox_writer(engine), SqliteThreadWriter)
    memory = make_engine("sqlite+aiosqlite://")
    try:
        assert isinstance(inbox_writer(memory), EngineWriter), "an in-memory database has no second connection"
    finally:
        await memory.dispose()


def test_sqlite_connector_keeps_the_urls_arguments(tmp_path):
    path = tmp_path / "x.db"
    sqlite3.connect(path).close()
    connection = sqlite_connector(f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true")()
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            connection.execute("CREATE TABLE t (x)")
    finally:
        connection.close()


async def test_the_loops_connection_never_checkpoints_the_writer_does(engine, tmp_path):
    async with engine.connect() as connection:
        autocheckpoint = await connection.scalar(text("PRAGMA wal_autocheckpoint"))
    assert autocheckpoint == 0, "a checkpoint (file copy and fsync) would run on the event loop"
    database = tmp_path / "kpbot.db"
    async with engine.begin() as connection:
        await connection.run_sync(
            lambda c: c.execute(InboundMessage.__table__.insert(), [row(n) for n in range(2000)]))
    before = database.stat().st_size
    store = BatchingStore(engine)
    try:
        assert await store.checkpoint() is False, "a PollingLoop waits for the next poll"
    finally:
        await store.close()
    assert database.stat().st_size > before + 100_000, "the rows moved from the WAL into the database"


async def test_a_caller_that_gives_up_does_not_stop_its_batch(engine):
    """The platform hangs up while its message is being committed: the message
    is stored anyway, and the others waiting on the same batch get their answer."""
    store = BatchingStore(engine)
    try:
        messages = [IncomingMessage("wecom", f"m{n}", "lisi", MessageKind.TEXT, NOW, text=f"第{n}条")
                    for n in range(3)]
        waiting = [asyncio.ensure_future(store.store(m)) for m in messages]
        await asyncio.sleep(0)
        waiting[1].cancel()
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert results[0] is True and results[2] is True
        assert isinstance(results[1], asyncio.CancelledError)
        assert await store.store(messages[1]) is False, "it was stored: now a replay"
    finally:
        await store.close()
