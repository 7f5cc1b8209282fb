"""The outbox's Sender protocol on top of a channel client: read the stored
payload back into a Reply, then let the subclass send it."""

from __future__ import annotations

from typing import Any

from bot.message import Reply, SendResult


class ReplySender:
    async def deliver(self, address: str, payload: dict[str, Any]) -> SendResult:
        try:
            reply = Reply.from_dict(payload["reply"])
        except (KeyError, TypeError, ValueError) as exc:
            return SendResult.failure(f"unreadable outbox payload: {exc!r}", retryable=False)
        return await self.send_reply(address, reply, payload)

    async def send_reply(self, address: str, reply: Reply, payload: dict[str, Any]) -> SendResult:
        raise NotImplementedError
