"""Store incoming messages with group commit: callbacks arriving together are
written in one transaction, and each callback is answered only after the
commit that holds its message. One commit per burst instead of one per
message is what lets SQLite keep up with a busy platform."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.message import IncomingMessage
from models import inbound


@dataclass
class _Pending:
    message: IncomingMessage
    done: asyncio.Future


class BatchingStore:
    def __init__(self, engine: AsyncEngine, *, max_batch: int = 500, after_commit: Callable[[], None] = lambda: None):
        self._engine = engine
        self._max_batch = max_batch
        self._after_commit = after_commit
        self._queue: list[_Pending] = []
        self._writer: asyncio.Task | None = None

    async def store(self, message: IncomingMessage) -> bool:
        """Persist and commit; True when the message is new, False for a replay."""
        done = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(message, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        return await asyncio.shield(done)

    async def _write_all(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch:]
            try:
                new = await self._write(batch)
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

    async def _write(self, batch: list[_Pending]) -> set[tuple[str, str]]:
        rows, seen = [], set()
        for item in batch:
            m = item.message
            if (m.channel, m.message_id) in seen:
                continue
            seen.add((m.channel, m.message_id))
            rows.append({"channel": m.channel, "message_id": m.message_id, "sender_id": m.sender_id,
                         "payload": m.to_dict(), "received_at": m.received_at})
        async with self._engine.begin() as connection:  # Core: no ORM bookkeeping on the hot path
            return await inbound.store_many(connection, rows)
