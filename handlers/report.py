"""The liaison: report a problem (with project choice and attachments), 补充,
我的问题, 查询, 取消."""

from __future__ import annotations

from sqlalchemy import select

from bot.message import Button, HandlerResult, MessageKind, Reply
from handlers import common, texts
from handlers.common import requires
from handlers.context import Context
from handlers.triage import Triage
from handlers.unit import todo
from handlers.units import unit_resolver
from models import repo
from models.repo import UnitRow
from models.tables import Project, Ticket, TicketAttachment
from models.tickets import create_ticket, make_move
from models.workflow import SYSTEM, Move, Status

MEDIA_KINDS = (MessageKind.IMAGE, MessageKind.VOICE, MessageKind.FILE, MessageKind.LOCATION)


# -- a new report --------------------------------------------------------------------


@requires("liaison")
async def new_report(ctx: Context) -> HandlerResult:
    text = ctx.text
    projects = await repo.projects_of_liaison(ctx.session, ctx.person.id)
    if not projects:
        return ctx.answer(Reply(texts.NO_PROJECT))
    pending = list(ctx.conversation.data.get("attachments", [])) if common.state_of(ctx) == common.COLLECT else []
    if len(projects) > 1:
        await common.set_conversation(ctx, common.CHOOSE_PROJECT, {"text": text, "attachments": pending},
                                      common.CHOICE_WINDOW)
        return ctx.answer(choose_project_card(projects))
    return await file_report(ctx, projects[0], text, pending)


def choose_project_card(projects: list[Project], prefix: str = "") -> Reply:
    lines = texts.numbered([p.name for p in projects])
    body = texts.CHOOSE_PROJECT.format(count=len(projects), lines=lines)
    return Reply(prefix + body, title=texts.CHOOSE_PROJECT_TITLE,
                 buttons=tuple(Button(f"选择项目 {p.key}", p.name) for p in projects))


@requires("liaison")
async def choose_project(ctx: Context) -> HandlerResult:
    """The answer to "which project?": a button (选择项目 key), a number or a name."""
    if common.state_of(ctx) != common.CHOOSE_PROJECT:
        return ctx.answer(Reply(texts.CHOOSE_PROJECT_NONE))
    projects = await repo.projects_of_liaison(ctx.session, ctx.person.id)
    command, args = common.parse_command(ctx.text)
    answer = args if command == "选择项目" else ctx.text
    project = _match_project(projects, answer.strip())
    if project is None:
        prefix = texts.PROJECT_CHOICE_BAD + "\n" if command == "选择项目" else texts.CHOOSE_PROJECT_AGAIN + "\n"
        return ctx.answer(choose_project_card(projects, prefix))
    data = dict(ctx.conversation.data)
    await common.clear_conversation(ctx)
    return await file_report(ctx, project, data["text"], list(data.get("attachments", [])))


def _match_project(projects: list[Project], answer: str) -> Project | None:
    answer = answer.strip().rstrip("。.")
    if answer.isdigit() and 1 <= int(answer) <= len(projects):
        return projects[int(answer) - 1]
    exact = [p for p in projects if answer in (p.key, p.name)]
    if exact:
        return exact[0]
    partial = [p for p in projects if answer and answer in p.name]
    return partial[0] if len(partial) == 1 else None


def triage_record(tri: Triage) -> dict:
    """What the ticket keeps of triage's answer (JSON): the learning data and the
    office's candidates."""
    return {
        "unit_type": tri.unit_type,
        "candidates": [[t, float(s)] for t, s in tri.candidates],
        "matched": {t: list(ws) for t, ws in tri.matched.items()},
        "words": list(tri.matched_words()),
        "confidence": float(tri.confidence),
        "tier": tri.tier,
        "tier_words": list(tri.tier_words),
        "needs_office": bool(tri.needs_office),
        "reason": tri.reason,
        "secondary": list(tri.secondary),
    }


async def file_report(ctx: Context, project: Project, text: str, attachments: list[dict]) -> HandlerResult:
    """File the ticket at once; dispatch it when triage is sure, else to the office."""
    session = ctx.session
    office = await repo.office_by_id(session, project.office_id)
    tri = ctx.services.classifier.classify(text)
    resolve = await unit_resolver(session, office.id)
    unit: UnitRow | None = None if tri.needs_office else resolve(tri.unit_type)
    guess = unit or next((u for u in (resolve(t) for t, _ in tri.candidates) if u is not None), None)
    secondary = list(tri.secondary)
    ticket, _ = await create_ticket(
        session, office=office, text=text, now=ctx.now, policy=ctx.policy, reporter_id=ctx.person.id,
        project_id=project.id, tier=tri.tier, unit_type=tri.unit_type, triage=triage_record(tri),
        proposed_unit=guess, secondary_unit_types=secondary,
    )
    ticket.needs_office = unit is None
    for item in attachments:
        session.add(attachment_row(ticket.id, item, ctx.now))
    if unit is not None:
        await make_move(session, ticket, Move.DISPATCH, SYSTEM, ctx.now, ctx.policy, unit_id=unit.id)
    await common.set_conversation(ctx, common.AFTER_REPORT, {"ticket": ticket.number}, common.ATTACH_WINDOW)

    view = await common.load_view(ctx, ticket)
    lines = [texts.REPORT_PROJECT.format(project=project.name),
             texts.REPORT_UNDERSTOOD.format(summary=texts.short(text, 80))]
    if unit is not None:
        category = common.understood(ticket)
        if category:
            lines.append(category)
    lines.append(common.tier_line(ticket))
    if unit is not None:
        lines.append(texts.REPORT_DISPATCHED.format(unit=unit.name, contact=view.contact_text))
        lines.append(texts.REPORT_DEADLINES.format(ack=common.when(ctx, ticket.ack_due_at),
                                                   feedback=common.when(ctx, ticket.feedback_due_at),
                                                   resolve=common.when(ctx, ticket.resolve_due_at)))
        await common.notify_unit(ctx, unit.id, common.unit_card(ctx, view, len(attachments)), ticket.number)
    else:
        lines.append(texts.REPORT_TO_OFFICE.format(office=office.short_name,
                                                   due=common.when(ctx, ticket.dispatch_due_at)))
        await common.notify_office(ctx, office.id, await common.office_card(ctx, view), ticket.number)
    lines.append(texts.REPORT_ATTACH_HINT.format(number=ticket.number))
    return ctx.answer(Reply("\n".join(lines), title=texts.REPORT_TITLE.format(number=ticket.number)))


# -- attachments ------------------------------------------------------------------------


def attachment_items(ctx: Context) -> list[dict]:
    """The message's media as JSON-able dicts (stored in a conversation or a row)."""
    message = ctx.message
    if message.kind == MessageKind.LOCATION and message.location is not None:
        loc = message.location
        return [{"kind": "location", "channel": message.channel, "media_id": None, "path": None,
                 "data": {"latitude": loc.latitude, "longitude": loc.longitude, "label": loc.label}}]
    items = [{"kind": a.kind, "channel": message.channel, "media_id": a.media_id, "path": a.path,
              "data": {"mime": a.mime, "size": a.size, "message_id": message.message_id}}
             for a in message.attachments]
    if not items:  # a media message whose file the channel did not describe
        items = [{"kind": str(message.kind), "channel": message.channel, "media_id": None, "path": None,
                  "data": {"message_id": message.message_id}}]
    return items


def attachment_row(ticket_id: int, item: dict, now) -> TicketAttachment:
    to_fetch = bool(item.get("media_id")) and not item.get("path")
    return TicketAttachment(ticket_id=ticket_id, at=now, kind=item["kind"], channel=item["channel"],
                            media_id=item.get("media_id"), path=item.get("path"), data=item.get("data") or {},
                            fetch_status="pending" if to_fetch else None, fetch_after=now if to_fetch else None)


def kind_label(items: list[dict]) -> str:
    kinds = dict.fromkeys(texts.ATTACH_KIND.get(i["kind"], i["kind"]) for i in items)
    return texts.join(kinds)


async def attach(ctx: Context) -> HandlerResult:
    """A photo, voice note, file or location: to the report just made, or kept for the next one."""
    if not ctx.has_role("liaison"):
        return ctx.answer(Reply(texts.UNSUPPORTED_KIND))
    items = attachment_items(ctx)
    state = common.state_of(ctx)
    if state == common.AFTER_REPORT:
        number = ctx.conversation.data["ticket"]
        ticket = await repo.ticket_by_number(ctx.session, number)
        for item in items:
            ctx.session.add(attachment_row(ticket.id, item, ctx.now))
        await common.set_conversation(ctx, common.AFTER_REPORT, {"ticket": number}, common.ATTACH_WINDOW)
        label = kind_label(items)
        notice = Reply(texts.ATTACHED_NOTICE.format(number=number, kind=label))
        if ticket.status in (Status.REPORTED, Status.RETURNED) or ticket.unit_id is None:
            await common.notify_office(ctx, ticket.office_id, notice, number)
        else:
            await common.notify_unit(ctx, ticket.unit_id, notice, number)
        return ctx.answer(Reply(texts.ATTACHED.format(kind=label, number=number)))
    if state in (common.CHOOSE_PROJECT, common.COLLECT):
        data = dict(ctx.conversation.data)
        data["attachments"] = [*data.get("attachments", []), *items]
        window = common.CHOICE_WINDOW if state == common.CHOOSE_PROJECT else common.ATTACH_WINDOW
        await common.set_conversation(ctx, state, data, window)
        if state == common.CHOOSE_PROJECT:
            projects = await repo.projects_of_liaison(ctx.session, ctx.person.id)
            return ctx.answer(choose_project_card(projects, texts.CHOOSE_PROJECT_AGAIN + "\n"))
        return ctx.answer(Reply(texts.ATTACHED_PENDING.format(kind=kind_label(items))))
    await common.set_conversation(ctx, common.COLLECT, {"attachments": items}, common.ATTACH_WINDOW)
    return ctx.answer(Reply(texts.ATTACHED_PENDING.format(kind=kind_label(items))))


# -- 取消 -------------------------------------------------------------------------------


async def cancel(ctx: Context) -> HandlerResult:
    state = common.state_of(ctx)
    data = dict(ctx.conversation.data) if ctx.conversation is not None else {}
    await common.clear_conversation(ctx)
    if state == common.CHOOSE_PROJECT:
        return ctx.answer(Reply(texts.CANCELLED_CHOICE))
    if state == common.AFTER_REPORT:
        return ctx.answer(Reply(texts.CANCELLED_AFTER_REPORT.format(number=data.get("ticket", ""))))
    if state == common.AWAIT_REASON:
        return ctx.answer(Reply(texts.CANCELLED_REASON.format(number=data.get("ticket", ""))))
    if state == common.COLLECT:
        return ctx.answer(Reply(texts.CANCELLED_COLLECT))
    return ctx.answer(Reply(texts.NOTHING_TO_CANCEL))


# -- 补充 ------------------------------------------------------------------------------


@requires("liaison", "office")
async def supplement(ctx: Context) -> HandlerResult:
    picked = await common.pick_ticket(ctx, Move.SUPPLEMENT, pool="reporter")
    if isinstance(picked, Reply):
        return ctx.answer(picked)
    ticket, note = picked.ticket, picked.rest
    collected = []
    if common.state_of(ctx) == common.COLLECT and ctx.has_role("liaison"):
        collected = list(ctx.conversation.data.get("attachments", []))
    event = await common.move(ctx, ticket, Move.SUPPLEMENT, note=note)
    if isinstance(event, Reply):
        return ctx.answer(event)
    for item in collected:
        ctx.session.add(attachment_row(ticket.id, item, ctx.now))
    if collected:
        await common.clear_conversation(ctx)
    body = texts.SUPPLEMENT_NOTICE.format(who=ctx.person.name, number=ticket.number, note=note)
    if collected:
        body += texts.SUPPLEMENT_ATTACHMENTS.format(count=len(collected))
    notice = Reply(body, title=texts.SUPPLEMENT_NOTICE_TITLE.format(number=ticket.number))
    if ticket.status in (Status.REPORTED, Status.RETURNED):
        await common.notify_office(ctx, ticket.office_id, notice, ticket.number)
    else:
        await common.notify_unit(ctx, ticket.unit_id, notice, ticket.number)
    if ctx.has_role("office"):
        await common.notify_reporter(ctx, ticket, notice)
    return ctx.answer(Reply(texts.SUPPLEMENTED.format(number=ticket.number)))


# -- 我的问题, 查询 -------------------------------------------------------------------


@requires("liaison")
async def my_tickets(ctx: Context) -> HandlerResult:
    tickets = sorted(await repo.open_tickets(ctx.session, reporter_id=ctx.person.id, limit=200), key=common.urgency)
    if not tickets:
        return ctx.answer(Reply(texts.MY_TICKETS_EMPTY))
    views = await common.load_views(ctx, tickets)
    return ctx.answer(common.ticket_list(ctx, views, texts.MY_TICKETS_TITLE.format(count=len(tickets))))


async def query(ctx: Context) -> HandlerResult:
    """查询 编号 for anyone who may see that ticket; without a number, their own list."""
    args = common.args_of(ctx)
    number, _ = common.split_number(args)
    if number is None:
        if not args:
            if ctx.has_role("liaison"):
                return await my_tickets(ctx)
            if ctx.has_role(*common.UNIT_ROLES):
                return await todo(ctx)
            if ctx.has_role("project_leader"):
                return await leader_tickets(ctx)
        return ctx.answer(Reply(texts.NUMBER_REQUIRED.format(example=common.example("query"))))
    ticket = await repo.ticket_by_number(ctx.session, number)
    if ticket is None:
        return ctx.answer(Reply(texts.NOT_FOUND.format(number=number)))
    if not await common.can_view(ctx, ticket):
        return ctx.answer(Reply(texts.NOT_YOURS.format(number=number)))
    return ctx.answer(await common.detail(ctx, ticket))


async def leader_tickets(ctx: Context) -> HandlerResult:
    """The open tickets of the projects a 包联领导 leads."""
    project_ids = [p.id for p in (await ctx.session.scalars(
        select(Project).where(Project.leader_id == ctx.person.id))).all()]
    tickets = []
    if project_ids:
        tickets = list((await ctx.session.scalars(
            select(Ticket).where(Ticket.is_open.is_(True), Ticket.project_id.in_(project_ids)))).all())
    tickets.sort(key=common.urgency)
    if not tickets:
        return ctx.answer(Reply(texts.QUERY_EMPTY.format(what=texts.QUERY_LED_PROJECTS)))
    views = await common.load_views(ctx, tickets)
    return ctx.answer(common.ticket_list(ctx, views, texts.QUERY_TITLE.format(what=texts.QUERY_LED_PROJECTS, count=len(tickets))))
