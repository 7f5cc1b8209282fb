"""The inbound insert on a plain sqlite3 connection, for a thread of its own.

Every acknowledged callback waits for this commit, so it is kept to one call on
the writer thread: BEGIN IMMEDIATE, one prepared INSERT ... ON CONFLICT DO
NOTHING per message, COMMIT. The statement and the column conversions (JSON,
UTC datetimes) are SQLAlchemy's own, compiled once, so rows written here read
back through the ORM like any other.

The connection commits with `synchronous=FULL`: the platform is told "received"
right after, and will not send the message again, so the row must survive a
power cut, not only a crash of the process. Its thread is also where the WAL is
checkpointed (the app's own connection runs on the event loop and never does).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from sqlalchemy.dialects import sqlite

from models.db import configure_sqlite
from models.inbound import NEW_ROW, Key
from models.tables import InboundMessage

COLUMNS = ("channel", "message_id", "sender_id", "payload", "received_at", "status", "attempts")


class PreparedInsert:
    """SQL text, placeholder order and bind conversions of the inbound insert."""

    def __init__(self) -> None:
        dialect = sqlite.dialect()
        table = InboundMessage.__table__
        stmt = (
            sqlite.insert(table)
            .on_conflict_do_nothing(index_elements=["channel", "message_id"])
            .returning(table.c.id)
        )
        compiled = stmt.compile(dialect=dialect, column_keys=list(COLUMNS))
        self.sql = str(compiled)
        self.order = tuple(compiled.positiontup)
        processors = {name: table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in COLUMNS}
        self._convert = [(name, processors[name]) for name in self.order]

    def parameters(self, row: dict[str, Any]) -> tuple:
        return tuple(convert(row[name]) if convert else row[name] for name, convert in self._convert)


class SqliteInboxWriter:
    """Owns one sqlite3 connection; call every method from the same thread."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]):
        self._connect = connect
        self._connection: sqlite3.Connection | None = None
        self._insert = PreparedInsert()

    def insert_new(self, rows: list[dict]) -> set[Key]:
        """Insert-or-ignore and commit; the (channel, message id) pairs that were new."""
        connection = self._connection or self._open()
        new: set[Key] = set()
        cursor = connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            for row in rows:
                cursor.execute(self._insert.sql, self._insert.parameters(row | NEW_ROW))
                if cursor.fetchone() is not None:
                    new.add((row["channel"], row["message_id"]))
            cursor.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                cursor.execute("ROLLBACK")
            raise
        finally:
            cursor.close()
        return new

    def checkpoint(self) -> tuple[int, int, int]:
        """Copy committed WAL pages into the database (PASSIVE: never waits for, nor
        blocks, anyone). (busy, pages in the WAL, pages checkpointed)."""
        connection = self._connection or self._open()
        return tuple(connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _open(self) -> sqlite3.Connection:
        connection = self._connect()
        configure_sqlite(connection, synchronous="FULL")
        self._connection = connection
        return connection
