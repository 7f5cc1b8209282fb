"""aiosqlite connections that cross to the database thread once per statement.

aiosqlite runs each sqlite3 call on its own thread and hands the result back to
the event loop: creating a cursor, executing, fetching and closing are four
round trips per statement, and on a busy two-core machine each round trip costs
more than the statement itself. SQLAlchemy's aiosqlite dialect always executes,
then fetches everything, then closes; `OneHopConnection` does the three in one
call on the database thread and serves the rows from memory.

Everything else (commit, rollback, close, the thread itself) is aiosqlite's.
Rows are fetched eagerly, as SQLAlchemy's dialect does for every ordinary cursor;
a server-side (streaming) cursor also gets them all at once.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import make_url

_Outcome = tuple[list[Any], Any, int, int | None]


def _run(connection: sqlite3.Connection, sql: str, parameters: Any, many: bool) -> _Outcome:
    """On the database thread: execute, fetch everything, close."""
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


class OneHopCursor:
    """The part of aiosqlite's Cursor that SQLAlchemy uses, one thread hop per execute."""

    def __init__(self, connection: OneHopConnection):
        self._connection = connection
        self._rows: deque[Any] = deque()
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1

    async def __aenter__(self) -> OneHopCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> OneHopCursor:
        return await self._hop(sql, () if parameters is None else parameters, many=False)

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> OneHopCursor:
        return await self._hop(sql, list(parameters), many=True)

    async def _hop(self, sql: str, parameters: Any, *, many: bool) -> OneHopCursor:
        outcome = await self._connection.run_on_thread(_run, sql, parameters, many)
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


class OneHopConnection(aiosqlite.Connection):
    def cursor(self) -> OneHopCursor:  # type: ignore[override]  # SQLAlchemy awaits __aenter__
        return OneHopCursor(self)

    async def run_on_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call fn(sqlite3 connection, *args) on the connection's thread."""
        return await self._execute(fn, self._conn, *args)


def sqlite_connector(url: Any, **connect_args: Any) -> Callable[[], sqlite3.Connection]:
    """sqlite3.connect with the URL's own arguments, as SQLAlchemy's aiosqlite
    dialect derives them (path, `uri=true` ...), plus `connect_args`."""
    cargs, cparams = SQLiteDialect_aiosqlite().create_connect_args(make_url(url))
    return partial(sqlite3.connect, *cargs, **(cparams | connect_args))


def one_hop_creator(url: str, connect_args: dict[str, Any]) -> Callable[[], Any]:
    """An `async_creator` for create_async_engine."""
    connector = sqlite_connector(url, **connect_args)

    async def create() -> OneHopConnection:
        connection = OneHopConnection(connector, iter_chunk_size=64)
        connection._thread.daemon = True  # as SQLAlchemy's dialect does: never block exit
        return await connection

    return create
