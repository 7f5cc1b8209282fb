"""One stored message, one unit of work: find the sender, route, answer.

Runs inside the caller's transaction; the replies and the notices to others are
written to the outbox there, so they are sent only if the change is committed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.message import HandlerResult, IncomingMessage, Notice, Reply
from bot.router import Router
from handlers.context import Context, Services
from models import outbox, repo
from models.outbox import Route
from models.tables import Conversation, Person

log = logging.getLogger(__name__)


async def handle_message(
    session: AsyncSession,
    services: Services,
    router: Router[Context, HandlerResult],
    message: IncomingMessage,
    now: datetime,
    enabled_channels: Sequence[str],
) -> HandlerResult:
    context = await build_context(session, services, message, now)
    route = router.match(context)
    if route is None:  # the table ends with a catch-all; this is a programming error
        raise LookupError(f"no route for message {message.message_id}")
    log.info("message %s/%s -> %s", message.channel, message.message_id, route.name)
    result = await route.handler(context)
    await write_result(session, result, message, now, enabled_channels, sender=context.person)
    return result


async def build_context(session: AsyncSession, services: Services, message: IncomingMessage, now: datetime) -> Context:
    person = await repo.person_by_identity(session, message.channel, message.sender_id)
    context = Context(session=session, services=services, message=message, now=now, person=person)
    if person is not None:
        context.actor = await repo.actor_for(session, person)
        conversation = await session.get(Conversation, person.id)
        if conversation is not None and conversation.expires_at <= now:
            await session.delete(conversation)
            conversation = None
        context.conversation = conversation
    return context


def reply_payload(reply: Reply, message: IncomingMessage | None = None) -> dict:
    payload: dict = {"reply": reply.to_dict()}
    if message is not None and message.reply_webhook:
        payload["reply_webhook"] = message.reply_webhook
        expires = message.reply_webhook_expires_at
        payload["reply_webhook_expires_at"] = expires.isoformat() if expires else None
    return payload


async def write_result(
    session: AsyncSession,
    result: HandlerResult,
    message: IncomingMessage,
    now: datetime,
    enabled_channels: Sequence[str],
    sender: Person | None = None,
) -> None:
    for reply in result.replies:
        await outbox.queue(
            session, route=Route(message.channel, message.sender_id), payload=reply_payload(reply, message),
            now=now, person_id=sender.id if sender else None,
        )
    for notice in result.notices:
        await queue_notice(session, notice, now, enabled_channels)


async def queue_notice(session: AsyncSession, notice: Notice, now: datetime, enabled_channels: Sequence[str]) -> bool:
    person = await repo.person_by_key(session, notice.recipient)
    if person is None or not person.active:
        log.error("notice for unknown or inactive person %r dropped: %s", notice.recipient, notice.reply.text[:80])
        return False
    route = outbox.route_for(person, enabled_channels)
    if route is None:
        log.error("person %s has no identity on any enabled channel %s", person.key, list(enabled_channels))
        return False
    ticket = await repo.ticket_by_number(session, notice.ticket_number) if notice.ticket_number else None
    return await outbox.queue(
        session, route=route, payload=reply_payload(notice.reply), now=now, person_id=person.id,
        ticket_id=ticket.id if ticket else None, dedupe_key=notice.dedupe_key,
    )
