"""aiosqlite connections that run each statement whole, on the event loop or in
one trip to the database thread.

aiosqlite runs each sqlite3 call on its own thread and hands the result back to
the event loop: creating a cursor, executing, fetching and closing are four
round trips per statement, and a round trip between cores costs 0.1-0.35 ms on
a small virtual machine: more than the statement. SQLAlchemy's aiosqlite
dialect always executes, then fetches everything, then closes; here the three
are one call, and the rows are served from memory.

`inline=True` makes that call on the event loop itself, with no thread at all
(the default for kpbot's engine): SQLite answers kpbot's statements in
microseconds, and the long jobs (digest, ranking, ledger) spend their time in
Python on the loop anyway. The one wait that could be long, another connection
holding the write lock, is not left to SQLite's busy handler (which would sleep
on the loop): with busy_timeout 0, a statement outside a transaction that finds
the database busy (BEGIN IMMEDIATE, in practice) is retried after an asyncio
sleep, until `lock_timeout`.

Everything else (connecting, the thread's lifetime) is aiosqlite's. Rows are
fetched eagerly, as SQLAlchemy's dialect does for every ordinary cursor; a
server-side (streaming) cursor also gets them all at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import make_url

_Outcome = tuple[list[Any], Any, int, int | None]

FIRST_RETRY_SECONDS = 0.0005
MAX_RETRY_SECONDS = 0.005


def _run(connection: sqlite3.Connection, sql: str, parameters: Any, many: bool) -> _Outcome:
    """Execute, fetch everything, close."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return rows, cursor.description, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or (
        "database is locked" in str(exc))


class SqliteCursor:
    """The part of aiosqlite's Cursor that SQLAlchemy uses, one call per execute."""

    def __init__(self, connection: SqliteConnection):
        self._connection = connection
        self._rows: deque[Any] = deque()
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1

    async def __aenter__(self) -> SqliteCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> SqliteCursor:
        return await self._run(sql, () if parameters is None else parameters, many=False)

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> SqliteCursor:
        return await self._run(sql, list(parameters), many=True)

    async def _run(self, sql: str, parameters: Any, *, many: bool) -> SqliteCursor:
        outcome = await self._connection.run(_run, sql, parameters, many)
        rows, self.description, self.rowcount, self.lastrowid = outcome
        self._rows = deque(rows)
        return self

    async def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = min(len(self._rows), self.arraysize if size is None else size)
        return [self._rows.popleft() for _ in range(count)]

    async def fetchall(self) -> list[Any]:
        rows = list(self._rows)
        self._rows.clear()
        return rows

    async def close(self) -> None:
        self._rows.clear()


class SqliteConnection(aiosqlite.Connection):
    inline = False
    lock_timeout = 30.0

    def cursor(self) -> SqliteCursor:  # type: ignore[override]  # SQLAlchemy awaits __aenter__
        return SqliteCursor(self)

    async def _execute(self, fn, *args, **kwargs):
        if self.inline:
            return fn(*args, **kwargs)
        return await super()._execute(fn, *args, **kwargs)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(sqlite3 connection, *args), in one call; retried while the database
        is locked by another connection if no transaction of ours is open."""
        if not self.inline:
            return await self._execute(fn, self._conn, *args)
        delay, deadline = FIRST_RETRY_SECONDS, time.monotonic() + self.lock_timeout
        while True:
            in_transaction = self._conn.in_transaction
            try:
                return fn(self._conn, *args)
            except sqlite3.OperationalError as exc:
                if in_transaction or not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(MAX_RETRY_SECONDS, delay * 2)


def sqlite_connector(url: Any, **connect_args: Any) -> Callable[[], sqlite3.Connection]:
    """sqlite3.connect with the URL's own arguments, as SQLAlchemy's aiosqlite
    dialect derives them (path, `uri=true` ...), plus `connect_args`."""
    cargs, cparams = SQLiteDialect_aiosqlite().create_connect_args(make_url(url))
    return partial(sqlite3.connect, *cargs, **(cparams | connect_args))


def sqlite_creator(url: str, *, inline: bool, lock_timeout: float = 30.0) -> Callable[[], Any]:
    """An `async_creator` for create_async_engine."""
    # Inline, the connection is made on aiosqlite's thread and used on the loop's.
    extra = {"timeout": 0, "check_same_thread": False} if inline else {"timeout": lock_timeout}
    connector = sqlite_connector(url, **extra)

    async def create() -> SqliteConnection:
        connection = SqliteConnection(connector, iter_chunk_size=64)
        connection.inline = inline
        connection.lock_timeout = lock_timeout
        connection._thread.daemon = True  # as SQLAlchemy's dialect does: never block exit
        return await connection

    return create
