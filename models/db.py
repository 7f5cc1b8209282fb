"""Engines and sessions. SQLite gets WAL, foreign keys and a busy timeout;
PostgreSQL goes through asyncpg."""

from __future__ import annotations

from functools import partial

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from models.sqlite_driver import sqlite_creator


def is_sqlite(url_or_engine) -> bool:
    url = url_or_engine.url if isinstance(url_or_engine, AsyncEngine) else make_url(url_or_engine)
    return url.get_backend_name() == "sqlite"


def normalise_url(url: str) -> str:
    """Accept plain `postgresql://` and `sqlite:///` URLs and pick the async drivers."""
    parsed = make_url(url)
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgresql", "postgres") and driver != "asyncpg":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif backend == "sqlite" and driver != "aiosqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, *, echo: bool = False, schema: str | None = None, inline: bool = True) -> AsyncEngine:
    """`schema` (PostgreSQL only) puts kpbot's tables in that schema via search_path.
    `inline` (SQLite only): statements run on the event loop (models.sqlite_driver)."""
    url = normalise_url(url)
    if is_sqlite(url):
        # One connection: SQLite lets one writer in at a time anyway, and waiting for
        # the pool is fair and asyncio-friendly, where SQLite's busy handler sleeps in
        # growing steps of up to 100 ms. Nothing may hold two sessions at once.
        # (An in-memory database lives in its one connection: SQLAlchemy's StaticPool.)
        pool = {} if is_memory_sqlite(url) else {"pool_size": 1, "max_overflow": 0, "pool_timeout": 60}
        engine = create_async_engine(url, echo=echo, async_creator=sqlite_creator(url, inline=inline), **pool)
        # Inline, the driver waits for the lock without blocking the loop, and the
        # WAL is checkpointed off the loop (bot.ingest), never by a commit here.
        pragmas = {"busy_timeout_ms": 0, "autocheckpoint": 0} if inline else {"busy_timeout_ms": 30_000}
        event.listen(engine.sync_engine, "connect", partial(_sqlite_pragmas, **pragmas))
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
        return engine
    connect_args = {"server_settings": {"search_path": schema}} if schema else {}
    return create_async_engine(
        url, echo=echo, pool_size=10, max_overflow=10, pool_pre_ping=True, connect_args=connect_args
    )


def is_memory_sqlite(url_or_engine) -> bool:
    url = make_url(url_or_engine.url if isinstance(url_or_engine, AsyncEngine) else url_or_engine)
    return is_sqlite(url) and url.database in (None, "", ":memory:")


def configure_sqlite(dbapi_connection, *, synchronous: str = "NORMAL", busy_timeout_ms: int = 30_000,
                     autocheckpoint: int | None = None) -> None:
    """WAL, foreign keys, a busy timeout; transactions started explicitly by the
    caller (BEGIN IMMEDIATE), never implicitly by the driver. `autocheckpoint`
    0: this connection's commits never checkpoint the WAL."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    if autocheckpoint is not None:
        cursor.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint)}")
    cursor.close()


def _sqlite_pragmas(dbapi_connection, _record, **pragmas) -> None:
    # SQLAlchemy starts the transactions: see _sqlite_begin_immediate.
    configure_sqlite(dbapi_connection, **pragmas)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def _sqlite_begin_immediate(connection) -> None:
    """Take the write lock at BEGIN. Deferred transactions that read and then
    write fail at once (SQLITE_BUSY_SNAPSHOT) when another task committed in
    between; immediate ones simply wait their turn (busy_timeout)."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")
