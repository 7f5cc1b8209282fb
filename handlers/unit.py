"""The handling unit's 13710 contact (and its leader): 签收 / 反馈 / 办结 / 退回 /
延期 / 方案 / 待办."""

from __future__ import annotations

import re

from bot.message import Button, HandlerResult, Reply
from handlers import common, texts
from handlers.common import UNIT_ROLES, requires
from handlers.context import Context
from models import deadlines, repo
from models.workflow import Move, Status


@requires(*UNIT_ROLES)
async def acknowledge(ctx: Context) -> HandlerResult:
    picked = await common.pick_ticket(ctx, Move.ACKNOWLEDGE, pool="unit")
    if isinstance(picked, Reply):
        return ctx.answer(picked)
    ticket = picked.ticket
    event = await common.move(ctx, ticket, Move.ACKNOWLEDGE)
    if isinstance(event, Reply):
        return ctx.answer(event)
    view = await common.load_view(ctx, ticket)
    await common.notify_reporter(ctx, ticket, Reply(texts.TO_REPORTER_ACK.format(number=ticket.number,
                                                                                  unit=view.unit_name)))
    text = texts.ACKNOWLEDGED.format(number=ticket.number, feedback=common.when(ctx, ticket.feedback_due_at),
                                     resolve=common.when(ctx, ticket.resolve_due_at))
    if event.data.get("late"):
        text += texts.ACKNOWLEDGED_LATE.format(due=common.when(ctx, ticket.ack_due_at))
    return ctx.answer(Reply(text))


@requires(*UNIT_ROLES)
async def feedback(ctx: Context) -> HandlerResult:
    picked = await common.pick_ticket(ctx, Move.FEEDBACK, pool="unit")
    if isinstance(picked, Reply):
        return ctx.answer(picked)
    ticket, note = picked.ticket, picked.rest
    event = await common.move(ctx, ticket, Move.FEEDBACK, note=note)
    if isinstance(event, Reply):
        return ctx.answer(event)
    view = await common.load_view(ctx, ticket)
    await common.notify_reporter(ctx, ticket, Reply(
        texts.TO_REPORTER_FEEDBACK.format(unit=view.unit_name, note=note),
        title=texts.TO_REPORTER_FEEDBACK_TITLE.format(number=ticket.number)))
    text = texts.FEEDBACK_DONE.format(number=ticket.number, resolve=common.when(ctx, ticket.resolve_due_at))
    if event.data.get("first") and ticket.feedback_due_at and ctx.now <= ticket.feedback_due_at:
        text += texts.FEEDBACK_FIRST
    return ctx.answer(Reply(text))


@requires(*UNIT_ROLES)
async def resolve(ctx: Context) -> HandlerResult:
    picked = await common.pick_ticket(ctx, Move.RESOLVE, pool="unit")
    if isinstance(picked, Reply):
        return ctx.answer(picked)
    ticket, note = picked.ticket, picked.rest
    event = await common.move(ctx, ticket, Move.RESOLVE, note=note)
    if isinstance(event, Reply):
        return ctx.answer(event)
    view = await common.load_view(ctx, ticket)
    due = common.when(ctx, ticket.confirm_due_at)
    card = Reply(
        texts.TO_REPORTER_RESOLVED.format(unit=view.unit_name, summary=view.summary, note=note, due=due),
        title=texts.TO_REPORTER_RESOLVED_TITLE.format(badge=view.badge, number=ticket.number),
        buttons=(Button(f"满意 {ticket.number}", texts.BUTTON_SATISFIED),
                 Button(f"不满意 {ticket.number}", texts.BUTTON_UNSATISFIED)),
    )
    await common.notify_reporter(ctx, ticket, card)
    return ctx.answer(Reply(texts.RESOLVED_DONE.format(number=ticket.number, due=due)))


@requires(*UNIT_ROLES)
async def return_ticket(ctx: Context) -> HandlerResult:
    picked = await common.pick_ticket(ctx, Move.RETURN, pool="unit")
    if isinstance(picked, Reply):
        return ctx.answer(picked)
    ticket, note = picked.ticket, picked.rest
    if not note:
        refused = common.precheck(ctx, ticket, Move.RETURN)
        return ctx.answer(refused) if refused else await common.ask_reason(ctx, "退回", ticket)
    unit_id = ticket.unit_id
    event = await common.move(ctx, ticket, Move.RETURN, note=note)
    if isinstance(event, Reply):
        return ctx.answer(event)
    view = await common.load_view(ctx, ticket)
    card = await common.office_card(ctx, view, exclude=[unit_id])
    body = texts.RETURNED_TO_OFFICE.format(unit=view.unit_name, number=ticket.number, note=note,
                                           project=view.project_name, text=ticket.text,
                                           due=common.when(ctx, ticket.dispatch_due_at))
    how = texts.NEEDS_OFFICE_HOW_BUTTONS if card.buttons else texts.NEEDS_OFFICE_HOW_TEXT
    notice = Reply(body + "\n" + how.format(number=ticket.number),
                   title=texts.RETURNED_TITLE.format(badge=view.badge, number=ticket.number), buttons=card.buttons)
    await common.notify_office(ctx, ticket.office_id, notice, ticket.number)
    return ctx.answer(Reply(texts.RETURNED_DONE.format(number=ticket.number)))


_DAYS = re.compile(r"^(\d+)\s*(?:天|日)?(?:\s+|$)(.*)$", re.S)


@requires(*UNIT_ROLES)
async def request_extension(ctx: Context) -> HandlerResult:
    picked = await common.pick_ticket(ctx, Move.REQUEST_EXTENSION, pool="unit")
    if isinstance(picked, Reply):
        return ctx.answer(picked)
    ticket = picked.ticket
    match = _DAYS.match(picked.rest)
    if not match:
        refused = common.precheck(ctx, ticket, Move.REQUEST_EXTENSION)
        return ctx.answer(refused or Reply(texts.BAD_DAYS.format(number=ticket.number,
                                                                 max_days=ctx.policy.extension.max_days)))
    days, note = int(match.group(1)), match.group(2).strip()
    event = await common.move(ctx, ticket, Move.REQUEST_EXTENSION, note=note, days=days)
    if isinstance(event, Reply):
        return ctx.answer(event)
    view = await common.load_view(ctx, ticket)
    new_due = deadlines.extend(ticket.resolve_due_at or ctx.now, days, ctx.policy)
    notice = Reply(
        texts.EXTENSION_TO_OFFICE.format(unit=view.unit_name, number=ticket.number, days=days, note=note,
                                         due=common.when(ctx, ticket.resolve_due_at),
                                         new_due=common.when(ctx, new_due), project=view.project_name,
                                         summary=view.summary),
        title=texts.EXTENSION_TITLE.format(badge=view.badge, number=ticket.number),
        buttons=(Button(f"批准延期 {ticket.number}", texts.BUTTON_GRANT),
                 Button(f"驳回延期 {ticket.number}", texts.BUTTON_REFUSE)),
    )
    await common.notify_office(ctx, ticket.office_id, notice, ticket.number)
    return ctx.answer(Reply(texts.EXTENSION_REQUESTED.format(number=ticket.number, days=days,
                                                             due=common.when(ctx, ticket.resolve_due_at))))


@requires(*UNIT_ROLES)
async def submit_plan(ctx: Context) -> HandlerResult:
    picked = await common.pick_ticket(ctx, Move.SUBMIT_PLAN, pool="unit")
    if isinstance(picked, Reply):
        return ctx.answer(picked)
    ticket = picked.ticket
    refused = common.precheck(ctx, ticket, Move.SUBMIT_PLAN)
    if refused:
        return ctx.answer(refused)
    note, due_day, dated = common.split_date(picked.rest, common.local_today(ctx))
    if not dated:
        return ctx.answer(Reply(texts.DATE_MISSING.format(example=common.example(Move.SUBMIT_PLAN, ticket.number))))
    if due_day is None:
        return ctx.answer(Reply(texts.BAD_DATE))
    due = deadlines.end_of_local_day(due_day, ctx.policy)
    event = await common.move(ctx, ticket, Move.SUBMIT_PLAN, note=note, due=due)
    if isinstance(event, Reply):
        return ctx.answer(event)
    view = await common.load_view(ctx, ticket)
    when = common.when(ctx, due)
    notice = Reply(texts.TO_REPORTER_PLAN.format(unit=view.unit_name, note=note, due=when),
                   title=texts.TO_REPORTER_FEEDBACK_TITLE.format(number=ticket.number))
    await common.notify_reporter(ctx, ticket, notice)
    await common.notify_office(ctx, ticket.office_id, notice, ticket.number)
    return ctx.answer(Reply(texts.PLAN_DONE.format(number=ticket.number, due=when)))


@requires(*UNIT_ROLES)
async def todo(ctx: Context) -> HandlerResult:
    if ctx.person.unit_id is None:
        return ctx.answer(Reply(texts.TODO_EMPTY))
    tickets = [t for t in await repo.open_tickets(ctx.session, unit_id=ctx.person.unit_id, limit=200)
               if t.status != Status.RETURNED]
    if not tickets:
        return ctx.answer(Reply(texts.TODO_EMPTY))
    tickets.sort(key=common.urgency)
    views = await common.load_views(ctx, tickets)
    return ctx.answer(common.ticket_list(ctx, views, texts.TODO_TITLE.format(count=len(tickets))))
