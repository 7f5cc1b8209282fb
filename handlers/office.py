"""The office (重点办): 交办 / 转办 / 挂牌 / 摘牌 / 延期审批 / 催办 / 查询 / 台账."""

from __future__ import annotations

from datetime import date

from sqlalchemy import and_, func, or_, select

from bot.message import HandlerResult, Reply
from handlers import common, texts
from handlers.common import OFFICE_ROLES, requires
from handlers.context import Context
from models import repo
from models.tables import Office, Project, Ticket, TicketAttachment, Unit
from models.tickets import record_correction
from models.workflow import WITH_UNIT, Move, Status


async def find_one_unit(ctx: Context, text: str, example: str) -> Unit | Reply:
    if not text:
        return Reply(texts.UNIT_MISSING.format(example=example))
    units = await repo.find_unit(ctx.session, text)
    if len(units) == 1:
        return units[0]
    if not units:
        return Reply(texts.UNIT_NOT_FOUND.format(text=text, example=example))
    return Reply(texts.UNIT_AMBIGUOUS.format(text=text, names=texts.join(u.name for u in units[:8])))


async def _send_to_unit(ctx: Context, ticket: Ticket, unit: Unit, note: str | None = None) -> None:
    """The new unit's card and the reporter's notice after 交办 / 转办."""
    view = await common.load_view(ctx, ticket)
    count = await ctx.session.scalar(select(func.count()).select_from(TicketAttachment)
                                     .where(TicketAttachment.ticket_id == ticket.id))
    await common.notify_unit(ctx, unit.id, common.unit_card(ctx, view, count or 0, note=note), ticket.number)
    title = texts.TO_REPORTER_REASSIGNED_TITLE if note else texts.TO_REPORTER_DISPATCHED_TITLE
    await common.notify_reporter(ctx, ticket, Reply(
        texts.TO_REPORTER_DISPATCHED.format(unit=unit.name, summary=view.summary, contact=view.contact_text,
                                            resolve=common.when(ctx, ticket.resolve_due_at)),
        title=title.format(number=ticket.number)))


@requires(*OFFICE_ROLES)
async def dispatch(ctx: Context) -> HandlerResult:
    picked = await common.pick_ticket(ctx, Move.DISPATCH, pool=None)
    if isinstance(picked, Reply):
        return ctx.answer(picked)
    ticket = picked.ticket
    refused = common.precheck(ctx, ticket, Move.DISPATCH)
    if refused:
        return ctx.answer(refused)
    unit = await find_one_unit(ctx, picked.rest, common.example(Move.DISPATCH, ticket.number))
    if isinstance(unit, Reply):
        return ctx.answer(unit)
    event = await common.move(ctx, ticket, Move.DISPATCH, unit_id=unit.id)
    if isinstance(event, Reply):
        return ctx.answer(event)
    ticket.needs_office = False
    await record_correction(ctx.session, ticket, unit, ctx.now)
    await _send_to_unit(ctx, ticket, unit)
    contact = await common.unit_contact(ctx, unit)
    return ctx.answer(Reply(texts.DISPATCHED_DONE.format(
        number=ticket.number, unit=unit.name, contact=contact.name if contact else texts.NO_CONTACT,
        ack=common.when(ctx, ticket.ack_due_at))))


@requires(*OFFICE_ROLES)
async def reassign(ctx: Context) -> HandlerResult:
    picked = await common.pick_ticket(ctx, Move.REASSIGN, pool=None)
    if isinstance(picked, Reply):
        return ctx.answer(picked)
    ticket = picked.ticket
    refused = common.precheck(ctx, ticket, Move.REASSIGN)
    if refused:
        return ctx.answer(refused)
    unit_text, _, note = picked.rest.partition(" ")
    unit = await find_one_unit(ctx, unit_text.strip(), common.example(Move.REASSIGN, ticket.number))
    if isinstance(unit, Reply):
        return ctx.answer(unit)
    note = note.strip()
    if not note:
        return ctx.answer(Reply(texts.NOTE_REQUIRED["reassign"].format(number=ticket.number)))
    old_unit_id = ticket.unit_id if ticket.status in WITH_UNIT else None
    event = await common.move(ctx, ticket, Move.REASSIGN, unit_id=unit.id, note=note)
    if isinstance(event, Reply):
        return ctx.answer(event)
    ticket.needs_office = False
    await record_correction(ctx.session, ticket, unit, ctx.now)
    office = await ctx.session.get(Office, ticket.office_id)
    if old_unit_id is not None and old_unit_id != unit.id:
        await common.notify_unit(ctx, old_unit_id, Reply(texts.REASSIGNED_TO_OLD_UNIT.format(
            number=ticket.number, office=office.short_name, unit=unit.name, note=note)), ticket.number)
    await _send_to_unit(ctx, ticket, unit, note=note)
    contact = await common.unit_contact(ctx, unit)
    return ctx.answer(Reply(texts.REASSIGNED_DONE.format(
        number=ticket.number, unit=unit.name, contact=contact.name if contact else texts.NO_CONTACT,
        ack=common.when(ctx, ticket.ack_due_at))))


@requires(*OFFICE_ROLES)
async def flag(ctx: Context) -> HandlerResult:
    picked = await common.pick_ticket(ctx, Move.FLAG, pool=None)
    if isinstance(picked, Reply):
        return ctx.answer(picked)
    ticket = picked.ticket
    refused = common.precheck(ctx, ticket, Move.FLAG)
    if refused:
        return ctx.answer(refused)
    head, due_day, dated = common.split_date(picked.rest, common.local_today(ctx))
    words = head.split()
    if not dated or len(words) < 3:
        return ctx.answer(Reply(texts.FLAG_USAGE.format(number=ticket.number)))
    if due_day is None or due_day < common.local_today(ctx):
        return ctx.answer(Reply(texts.BAD_DATE))
    unit = await ctx.session.get(Unit, ticket.unit_id) if ticket.status in WITH_UNIT | {Status.RESOLVED} else None
    five = {"method": " ".join(words[:-2]), "unit": unit.name if unit else "", "leader": words[-2],
            "person": words[-1], "due": due_day.isoformat()}
    event = await common.move(ctx, ticket, Move.FLAG, flag=five)
    if isinstance(event, Reply):
        return ctx.answer(event)
    detail = common.flag_text(ticket.flag)
    office = await ctx.session.get(Office, ticket.office_id)
    view = await common.load_view(ctx, ticket)
    await common.notify_unit(ctx, ticket.unit_id, Reply(
        texts.FLAG_TO_UNIT.format(office=office.short_name, number=ticket.number, detail=detail,
                                  summary=view.summary),
        title=texts.FLAG_TO_UNIT_TITLE.format(number=ticket.number)), ticket.number, with_leader=True)
    return ctx.answer(Reply(texts.FLAG_DONE.format(number=ticket.number, detail=detail)))


@requires(*OFFICE_ROLES)
async def unflag(ctx: Context) -> HandlerResult:
    picked = await common.pick_ticket(ctx, Move.UNFLAG, pool=None)
    if isinstance(picked, Reply):
        return ctx.answer(picked)
    ticket = picked.ticket
    event = await common.move(ctx, ticket, Move.UNFLAG, note=picked.rest or None)
    if isinstance(event, Reply):
        return ctx.answer(event)
    office = await ctx.session.get(Office, ticket.office_id)
    if ticket.status in WITH_UNIT | {Status.RESOLVED}:
        await common.notify_unit(ctx, ticket.unit_id, Reply(texts.UNFLAG_TO_UNIT.format(
            number=ticket.number, office=office.short_name)), ticket.number)
    return ctx.answer(Reply(texts.UNFLAG_DONE.format(number=ticket.number)))


@requires(*OFFICE_ROLES)
async def grant_extension(ctx: Context) -> HandlerResult:
    picked = await common.pick_ticket(ctx, Move.GRANT_EXTENSION, pool=None)
    if isinstance(picked, Reply):
        return ctx.answer(picked)
    ticket = picked.ticket
    event = await common.move(ctx, ticket, Move.GRANT_EXTENSION, note=picked.rest or None)
    if isinstance(event, Reply):
        return ctx.answer(event)
    office = await ctx.session.get(Office, ticket.office_id)
    due, days = common.when(ctx, ticket.resolve_due_at), event.data["days"]
    await common.notify_unit(ctx, ticket.unit_id, Reply(
        texts.GRANT_TO_UNIT.format(office=office.short_name, number=ticket.number, days=days, due=due),
        title=texts.GRANT_TO_UNIT_TITLE.format(number=ticket.number)), ticket.number)
    return ctx.answer(Reply(texts.GRANT_DONE.format(number=ticket.number, days=days, due=due)))


@requires(*OFFICE_ROLES)
async def refuse_extension(ctx: Context) -> HandlerResult:
    picked = await common.pick_ticket(ctx, Move.REFUSE_EXTENSION, pool=None)
    if isinstance(picked, Reply):
        return ctx.answer(picked)
    ticket, note = picked.ticket, picked.rest
    if not note:
        refused = common.precheck(ctx, ticket, Move.REFUSE_EXTENSION)
        if refused is None and not ticket.pending_extension:
            refused = Reply(texts.NO_PENDING_EXTENSION.format(number=ticket.number))
        return ctx.answer(refused) if refused else await common.ask_reason(ctx, "驳回延期", ticket)
    event = await common.move(ctx, ticket, Move.REFUSE_EXTENSION, note=note)
    if isinstance(event, Reply):
        return ctx.answer(event)
    office = await ctx.session.get(Office, ticket.office_id)
    due = common.when(ctx, ticket.resolve_due_at)
    await common.notify_unit(ctx, ticket.unit_id, Reply(
        texts.REFUSE_TO_UNIT.format(office=office.short_name, number=ticket.number, note=note, due=due),
        title=texts.REFUSE_TO_UNIT_TITLE.format(number=ticket.number)), ticket.number)
    return ctx.answer(Reply(texts.REFUSE_DONE.format(number=ticket.number, due=due)))


@requires(*OFFICE_ROLES)
async def urge(ctx: Context) -> HandlerResult:
    picked = await common.pick_ticket(ctx, Move.URGE, pool=None)
    if isinstance(picked, Reply):
        return ctx.answer(picked)
    ticket = picked.ticket
    event = await common.move(ctx, ticket, Move.URGE, note=picked.rest or None)
    if isinstance(event, Reply):
        return ctx.answer(event)
    view = await common.load_view(ctx, ticket)
    due = common.next_due(ticket)
    due_line = ""
    if due is not None:
        due_line = texts.DETAIL_DUE.format(stage=texts.STAGE[due[0]], when=common.when(ctx, due[1]),
                                           light=common.light_of(ctx, due[1]))
    text = texts.URGE_TO_UNIT.format(office=view.office.short_name, number=ticket.number,
                                     status=texts.STATUS[ticket.status], summary=view.summary, due=due_line)
    if picked.rest:
        text += f"\n{picked.rest}"
    await common.notify_unit(ctx, ticket.unit_id, Reply(
        text, title=texts.URGE_TO_UNIT_TITLE.format(badge=view.badge, number=ticket.number)), ticket.number)
    return ctx.answer(Reply(texts.URGE_DONE.format(unit=view.unit_name, number=ticket.number)))


# -- 查询 -----------------------------------------------------------------------------


def _scope(ctx: Context) -> list[int]:
    return sorted(ctx.actor.office_scope)


async def _open_in_scope(ctx: Context, *conditions) -> list[Ticket]:
    stmt = select(Ticket).where(Ticket.is_open.is_(True), Ticket.office_id.in_(_scope(ctx)), *conditions)
    tickets = list((await ctx.session.scalars(stmt)).all())
    tickets.sort(key=common.urgency)
    return tickets


async def _list(ctx: Context, what: str, tickets: list[Ticket]) -> HandlerResult:
    if not tickets:
        return ctx.answer(Reply(texts.QUERY_EMPTY.format(what=what)))
    views = await common.load_views(ctx, tickets)
    return ctx.answer(common.ticket_list(ctx, views, texts.QUERY_TITLE.format(what=what, count=len(tickets))))


@requires(*OFFICE_ROLES)
async def query(ctx: Context) -> HandlerResult:
    """By number (detail), or the open tickets of a county, a project or a unit."""
    args = common.args_of(ctx)
    number, _ = common.split_number(args)
    if number:
        ticket = await repo.ticket_by_number(ctx.session, number)
        if ticket is None:
            return ctx.answer(Reply(texts.NOT_FOUND.format(number=number)))
        if not await common.can_view(ctx, ticket):
            return ctx.answer(Reply(texts.NOT_YOURS.format(number=number)))
        return ctx.answer(await common.detail(ctx, ticket))
    if not args:
        return await _list(ctx, texts.QUERY_SCOPE_ALL, await _open_in_scope(ctx))
    scope = set(_scope(ctx))
    offices = await repo.all_offices(ctx.session)
    office = next((o for o in offices if args in (o.key, o.name, o.short_name, o.county)), None)
    if office is not None:
        if office.id not in scope:
            mine = next((o for o in offices if o.id == ctx.person.office_id), None)
            return ctx.answer(Reply(texts.QUERY_OUT_OF_SCOPE.format(text=args, office=mine.short_name if mine else "")))
        ids = repo.descendants(office.id, offices)
        return await _list(ctx, office.county or office.short_name, await _open_in_scope(ctx, Ticket.office_id.in_(ids)))
    projects = (await ctx.session.scalars(select(Project).where(Project.office_id.in_(scope)))).all()
    matching = [p for p in projects if args == p.key or args == p.name] or [p for p in projects if args in p.name]
    if len(matching) == 1:
        project = matching[0]
        return await _list(ctx, project.name, await _open_in_scope(ctx, Ticket.project_id == project.id))
    units = await repo.find_unit(ctx.session, args)
    if len(units) == 1:
        unit = units[0]
        tickets = await _open_in_scope(ctx, Ticket.unit_id == unit.id, Ticket.status.in_(
            [str(s) for s in WITH_UNIT | {Status.RESOLVED}]))
        return await _list(ctx, unit.name, tickets)
    if len(matching) > 1:
        return ctx.answer(Reply(texts.UNIT_AMBIGUOUS.format(text=args, names=texts.join(p.name for p in matching[:8]))))
    if len(units) > 1:
        return ctx.answer(Reply(texts.UNIT_AMBIGUOUS.format(text=args, names=texts.join(u.name for u in units[:8]))))
    return ctx.answer(Reply(texts.QUERY_NOTHING.format(text=args)))


# -- 台账 -----------------------------------------------------------------------------


def overdue_condition(now):
    """Open tickets past a deadline they still have to meet (the same stages as
    models.workflow.outstanding_deadlines)."""
    with_unit = [str(s) for s in WITH_UNIT]
    return or_(
        and_(Ticket.status.in_([Status.REPORTED.value, Status.RETURNED.value]), Ticket.dispatch_due_at < now),
        and_(Ticket.status == Status.DISPATCHED.value, Ticket.ack_due_at < now),
        and_(Ticket.status.in_(with_unit), Ticket.first_feedback_at.is_(None), Ticket.feedback_due_at < now),
        and_(Ticket.status.in_(with_unit), Ticket.resolve_due_at < now),
        and_(Ticket.status == Status.RESOLVED.value, Ticket.confirm_due_at < now),
    )


@requires(*OFFICE_ROLES)
async def ledger(ctx: Context) -> HandlerResult:
    scope = _scope(ctx)
    in_scope = Ticket.office_id.in_(scope)
    session = ctx.session
    by_status = dict((await session.execute(
        select(Ticket.status, func.count()).where(in_scope).group_by(Ticket.status))).all())
    open_ = Ticket.is_open.is_(True)
    overdue = await session.scalar(select(func.count()).where(in_scope, open_, overdue_condition(ctx.now)))
    flagged = await session.scalar(select(func.count()).where(in_scope, open_, Ticket.flagged.is_(True)))
    pending = [t for t in (await session.scalars(select(Ticket.pending_extension).where(in_scope, open_))).all() if t]
    office = await session.get(Office, ctx.person.office_id)
    summary = texts.LEDGER_SUMMARY.format(
        open=sum(n for s, n in by_status.items() if s != Status.CLOSED),
        reported=by_status.get("reported", 0), dispatched=by_status.get("dispatched", 0),
        working=by_status.get("acknowledged", 0) + by_status.get("in_progress", 0),
        resolved=by_status.get("resolved", 0), returned=by_status.get("returned", 0),
        overdue=overdue or 0, flagged=flagged or 0, extensions=len(pending), closed=by_status.get("closed", 0),
    )
    title = texts.LEDGER_TITLE.format(scope=office.short_name if office else texts.QUERY_SCOPE_ALL)
    exporter = ctx.services.ledger_exporter
    if exporter is not None and ctx.services.export_dir is not None:
        name = texts.LEDGER_FILE_NAME.format(office=office.key if office else "all", stamp=date_stamp(ctx))
        path = await exporter(session, office_ids=scope, now=ctx.now, path=ctx.services.export_dir / name)
        return ctx.answer(Reply(summary, title=title),
                          Reply(texts.LEDGER_EXPORT_FILE.format(name=path.name), file_path=str(path)))
    return ctx.answer(Reply(summary + "\n" + texts.LEDGER_EXPORT_HOW, title=title))


def date_stamp(ctx: Context) -> str:
    local: date = common.local_today(ctx)
    return local.strftime("%Y%m%d")
