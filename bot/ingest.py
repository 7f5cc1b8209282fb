"""Store incoming messages with group commit: callbacks arriving together are
written in one transaction, and each callback is answered only after the
commit that holds its message. One commit per burst instead of one per
message is what lets SQLite keep up with a busy platform.

Two writers do the insert-and-commit. On PostgreSQL it is an ordinary async
transaction. On SQLite the whole batch (BEGIN, the INSERTs, COMMIT) runs as
one call on a thread of its own with its own connection (models.inbound_sqlite):
through the async driver each statement is a round trip to the database thread
and back, and at one callback at a time those round trips, not SQLite, were the
cost of a callback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.message import IncomingMessage
from models import inbound
from models.db import is_memory_sqlite, is_sqlite
from models.inbound import Key
from models.inbound_sqlite import SqliteInboxWriter
from models.sqlite_driver import sqlite_connector


class InboxWriter(Protocol):
    async def write(self, rows: list[dict]) -> set[Key]:
        """Insert-or-ignore and commit; the keys that were new."""

    async def checkpoint(self) -> None:
        """Move committed WAL pages into the database file (SQLite), off the loop."""

    async def close(self) -> None: ...


class EngineWriter:
    """One async transaction per batch (PostgreSQL; in-memory SQLite)."""

    def __init__(self, engine: AsyncEngine):
        self._engine = engine

    async def write(self, rows: list[dict]) -> set[Key]:
        async with self._engine.begin() as connection:  # Core: no ORM bookkeeping on the hot path
            return await inbound.store_many(connection, rows)

    async def checkpoint(self) -> None:
        pass

    async def close(self) -> None:
        pass


class SqliteThreadWriter:
    """One call on a dedicated thread per batch, on a connection of its own."""

    def __init__(self, writer: SqliteInboxWriter):
        self._writer = writer
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kpbot-inbox")

    async def write(self, rows: list[dict]) -> set[Key]:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._writer.insert_new, rows)

    async def checkpoint(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._writer.checkpoint)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._writer.close)
        self._thread.shutdown(wait=True)


def inbox_writer(engine: AsyncEngine) -> InboxWriter:
    if is_sqlite(engine) and not is_memory_sqlite(engine):
        return SqliteThreadWriter(SqliteInboxWriter(sqlite_connector(engine.url, timeout=30)))
    return EngineWriter(engine)


@dataclass
class _Pending:
    message: IncomingMessage
    done: asyncio.Future


class BatchingStore:
    def __init__(self, engine: AsyncEngine, *, max_batch: int = 500,
                 after_commit: Callable[[], None] = lambda: None):
        self._writer = inbox_writer(engine)
        self._max_batch = max_batch
        self._after_commit = after_commit
        self._queue: list[_Pending] = []
        self._task: asyncio.Task | None = None

    async def store(self, message: IncomingMessage) -> bool:
        """Persist and commit; True when the message is new, False for a replay."""
        done = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(message, done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._write_all())
        # A cancelled caller (the platform hung up) cancels only its own future:
        # the batch it joined is written all the same.
        return await done

    async def checkpoint(self) -> bool:
        """For a PollingLoop: checkpoint, then wait for the next poll."""
        await self._writer.checkpoint()
        return False

    async def close(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await self._writer.close()

    async def _write_all(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch:]
            try:
                new = await self._writer.write(_rows(batch))
            except Exception as exc:  # noqa: BLE001 - every waiting callback gets the error
                for item in batch:
                    if not item.done.done():
                        item.done.set_exception(exc)
                continue
            self._after_commit()
            for item in batch:
                if not item.done.done():
                    key = (item.message.channel, item.message.message_id)
                    item.done.set_result(key in new)
                    new.discard(key)  # the same message twice in one batch: the second is a replay


def _rows(batch: list[_Pending]) -> list[dict]:
    rows, seen = [], set()
    for item in batch:
        m = item.message
        if (m.channel, m.message_id) in seen:
            continue
        seen.add((m.channel, m.message_id))
        rows.append({"channel": m.channel, "message_id": m.message_id, "sender_id": m.sender_id,
                     "payload": m.to_dict(), "received_at": m.received_at})
    return rows
