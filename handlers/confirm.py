"""The reporter (or the office in their stead) after 办结: 满意 closes, 不满意 reopens."""

from __future__ import annotations

from bot.message import HandlerResult, Reply
from handlers import common, texts
from handlers.common import requires
from handlers.context import Context
from models.workflow import Move, Party, parties_of


@requires("liaison", "office")
async def satisfied(ctx: Context) -> HandlerResult:
    picked = await common.pick_ticket(ctx, Move.CONFIRM, pool="reporter")
    if isinstance(picked, Reply):
        return ctx.answer(picked)
    ticket = picked.ticket
    by_reporter = Party.REPORTER in parties_of(ctx.actor, ticket)
    event = await common.move(ctx, ticket, Move.CONFIRM, note=picked.rest or None)
    if isinstance(event, Reply):
        return ctx.answer(event)
    if by_reporter:
        await common.notify_unit(ctx, ticket.unit_id, Reply(texts.CLOSED_TO_UNIT.format(number=ticket.number)),
                                 ticket.number)
    else:
        await common.notify_unit(ctx, ticket.unit_id, Reply(texts.CLOSED_TO_UNIT_BY_OFFICE.format(
            number=ticket.number)), ticket.number)
        await common.notify_reporter(ctx, ticket, Reply(texts.CLOSED_TO_REPORTER_BY_OFFICE.format(
            number=ticket.number)))
    return ctx.answer(Reply(texts.CLOSED_DONE.format(number=ticket.number)))


@requires("liaison", "office")
async def unsatisfied(ctx: Context) -> HandlerResult:
    picked = await common.pick_ticket(ctx, Move.REOPEN, pool="reporter")
    if isinstance(picked, Reply):
        return ctx.answer(picked)
    ticket, note = picked.ticket, picked.rest
    if not note:
        refused = common.precheck(ctx, ticket, Move.REOPEN)
        return ctx.answer(refused) if refused else await common.ask_reason(ctx, "不满意", ticket)
    by_reporter = Party.REPORTER in parties_of(ctx.actor, ticket)
    event = await common.move(ctx, ticket, Move.REOPEN, note=note)
    if isinstance(event, Reply):
        return ctx.answer(event)
    view = await common.load_view(ctx, ticket)
    due = common.when(ctx, ticket.resolve_due_at)
    who = texts.REOPENED_WHO_REPORTER if by_reporter else texts.REOPENED_WHO_OFFICE
    await common.notify_unit(ctx, ticket.unit_id, Reply(
        texts.REOPENED_TO_UNIT.format(who=who, note=note, due=due),
        title=texts.REOPENED_TO_UNIT_TITLE.format(badge=view.badge, number=ticket.number)), ticket.number)
    if not by_reporter:
        await common.notify_reporter(ctx, ticket, Reply(
            texts.REOPENED_TO_UNIT.format(who=who, note=note, due=due),
            title=texts.REOPENED_TO_UNIT_TITLE.format(badge=view.badge, number=ticket.number)))
    return ctx.answer(Reply(texts.REOPENED_DONE.format(number=ticket.number, unit=view.unit_name, due=due)))
