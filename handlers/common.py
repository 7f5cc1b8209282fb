"""What every actor's handlers share: reading a command, checking a role, finding
the ticket meant, making a move or saying clearly why not, the conversation
state, who to notify, and how a ticket is shown. Also the handlers for everyone:
帮助, unknown people, unknown commands.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache, wraps

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from bot.message import Button, HandlerResult, MessageKind, Reply
from config.vocabulary import UNIT_TYPES
from handlers import texts
from handlers.context import Context
from handlers.units import unit_resolver
from models import deadlines, repo, workflow
from models.tables import Conversation, Office, Person, Project, Ticket, TicketAttachment, TicketEvent, Unit
from models.tickets import make_move
from models.workflow import RULES, Move, Party, Status, WorkflowError

Handler = Callable[[Context], Awaitable[HandlerResult]]

# -- commands ------------------------------------------------------------------------

# Canonical command words, and the other ways people write them.
COMMANDS = (
    "帮助", "取消", "选择项目", "我的问题", "查询", "补充", "满意", "不满意",
    "签收", "反馈", "办结", "退回", "延期", "方案", "待办",
    "交办", "转办", "挂牌", "摘牌", "批准延期", "驳回延期", "催办", "台账",
)
SYNONYMS = {
    "help": "帮助", "?": "帮助", "？": "帮助", "菜单": "帮助", "使用说明": "帮助",
    "申请延期": "延期", "挂牌督办": "挂牌", "书面方案": "方案", "我的待办": "待办",
    "同意延期": "批准延期", "不同意延期": "驳回延期",
}
_WORDS = sorted([*COMMANDS, *SYNONYMS], key=len, reverse=True)
# What may follow a command word directly: a separator, or the ticket number.
_AFTER_WORD = re.compile(r"[\s:：,，、!！。.A-Za-z0-9]")
_LEADING = " \t\u3000:：,，、!！。."
_NUMBER_AT_START = re.compile(r"([A-Za-z]{2,6})-?(\d{4})-?(\d{1,6})(?![\dA-Za-z])")

UNIT_ROLES = ("unit_contact", "unit_leader")
LIAISON_ROLES = ("liaison",)
OFFICE_ROLES = ("office",)



@lru_cache(maxsize=256)  # the router asks once per route of the table for the same text
def parse_command(text: str) -> tuple[str | None, str]:
    """(canonical command word, the rest) or (None, text) when it is no command."""
    text = (text or "").strip()
    for word in _WORDS:
        if text == word or (text.startswith(word) and _AFTER_WORD.match(text, len(word))):
            return SYNONYMS.get(word, word), text[len(word):].strip(_LEADING)
    return None, text


def command_of(ctx: Context) -> str | None:
    if ctx.message.kind not in (MessageKind.TEXT, MessageKind.ACTION):
        return None
    return parse_command(ctx.text)[0]


def args_of(ctx: Context) -> str:
    return parse_command(ctx.text)[1]


def is_plain_text(ctx: Context) -> bool:
    return ctx.message.kind == MessageKind.TEXT and bool(ctx.text) and command_of(ctx) is None


def with_text(ctx: Context, text: str) -> Context:
    """The same context as if `text` had been typed (a reason completing a command)."""
    message = dataclasses.replace(ctx.message, kind=MessageKind.TEXT, text=text, action=None)
    return dataclasses.replace(ctx, message=message)


def role_names(roles: Iterable[str]) -> str:
    return texts.join(texts.ROLE.get(r, r) for r in sorted(roles)) or texts.NO_ROLES


def requires(*roles: str) -> Callable[[Handler], Handler]:
    """The role gate: anyone else gets a clear refusal and nothing happens."""

    def wrap(handler: Handler) -> Handler:
        @wraps(handler)
        async def gated(ctx: Context) -> HandlerResult:
            if not ctx.has_role(*roles):
                return ctx.answer(Reply(role_refusal(ctx, roles)))
            return await handler(ctx)

        gated.roles = roles  # type: ignore[attr-defined]
        return gated

    return wrap


def role_refusal(ctx: Context, roles: Sequence[str]) -> str:
    if not ctx.roles:
        return texts.NO_ROLE
    who = texts.ROLE_GROUP.get(tuple(roles), texts.join(texts.ROLE[r] for r in roles))
    hint = texts.ROLE_REFUSED_HINT_LIAISON if ctx.has_role("liaison") else texts.ROLE_REFUSED_HINT
    return texts.ROLE_REFUSED.format(command=command_of(ctx) or ctx.command, who=who,
                                     roles=role_names(ctx.roles), hint=hint)


# -- dates typed by people --------------------------------------------------------------

_DATE_AT_END = re.compile(
    r"(?:(?P<y>\d{4})\s*[-/.年]\s*)?(?P<m>\d{1,2})\s*[-/.月]\s*(?P<d>\d{1,2})\s*[日号]?\s*(?:之前|以前|前)?\s*$"
)


def split_date(text: str, today: date) -> tuple[str, date | None, bool]:
    """(text before the date, the date, whether a date was written at the end).
    A date without a year is the next such day from today on."""
    match = _DATE_AT_END.search(text.strip())
    if not match:
        return text.strip(), None, False
    head = text.strip()[: match.start()].strip()
    month, day_ = int(match["m"]), int(match["d"])
    try:
        if match["y"]:
            return head, date(int(match["y"]), month, day_), True
        found = date(today.year, month, day_)
        if found < today:
            found = date(today.year + 1, month, day_)
        return head, found, True
    except ValueError:
        return head, None, True


def local_today(ctx: Context) -> date:
    return deadlines.to_local(ctx.now, ctx.policy).date()


# -- finding the ticket meant ------------------------------------------------------------


def split_number(args: str) -> tuple[str | None, str]:
    """A ticket number as the first word of `args`, normalised, and the rest."""
    args = args.strip()
    match = _NUMBER_AT_START.match(args)  # also "YD-2026-0001已办好": glued to the text
    if match:
        prefix, year, seq = match.groups()
        return repo.format_ticket_number(prefix.upper(), int(year), int(seq)), args[match.end():].strip(_LEADING)
    return None, args


@dataclass(frozen=True)
class Picked:
    ticket: Ticket
    rest: str


def example(move: Move | str, number: str = texts.EXAMPLE_NUMBER) -> str:
    return texts.EXAMPLE[str(move)].format(number=number)


async def pick_ticket(ctx: Context, move: Move, *, pool: str | None, args: str | None = None) -> Picked | Reply:
    """The ticket a command is about: the number given, or the only ticket of the
    sender's pool ("unit": their unit's, "reporter": their own) that fits `move`.

    A new ticket command ends a wait for a reason ("请回复理由"): the next plain
    message must not quietly complete a command the sender moved away from."""
    if state_of(ctx) == AWAIT_REASON:
        await clear_conversation(ctx)
    args = args_of(ctx) if args is None else args
    number, rest = split_number(args)
    if number:
        ticket = await repo.ticket_by_number(ctx.session, number, for_update=True)
        if ticket is None:
            return Reply(texts.NOT_FOUND.format(number=number))
        return Picked(ticket, rest)
    action = texts.ACTION[str(move)]
    if pool == "unit" and not (ctx.has_role(*UNIT_ROLES) and ctx.person.unit_id):
        pool = None
    if pool == "reporter" and not ctx.has_role(*LIAISON_ROLES):
        pool = None
    if pool is None or ctx.person is None:
        return Reply(texts.NUMBER_REQUIRED.format(example=example(move)))
    fitting = [t for t in await pool_tickets(ctx, pool) if Status(t.status) in RULES[move].from_statuses]
    if len(fitting) == 1:
        await ctx.session.refresh(fitting[0], with_for_update=True)  # as ticket_by_number(for_update=True)
        return Picked(fitting[0], rest)
    if not fitting:
        return Reply(texts.NOTHING_FITTING.format(action=action, hint=texts.NOTHING_FITTING_HINT))
    numbers = texts.join(t.number for t in fitting[:10])
    return Reply(texts.WHICH_ONE.format(count=len(fitting), action=action, numbers=numbers,
                                        example=example(move, fitting[0].number)))


async def pool_tickets(ctx: Context, pool: str) -> list[Ticket]:
    if pool == "unit":
        return await repo.open_tickets(ctx.session, unit_id=ctx.person.unit_id, limit=200)
    if pool == "reporter":
        return await repo.open_tickets(ctx.session, reporter_id=ctx.person.id, limit=200)
    return []


# -- making a move ---------------------------------------------------------------------


async def move(ctx: Context, ticket: Ticket, what: Move, **arguments) -> TicketEvent | Reply:
    """Make the move, or return the refusal; on refusal nothing has changed."""
    try:
        return await make_move(ctx.session, ticket, what, ctx.actor, ctx.now, ctx.policy, **arguments)
    except WorkflowError as error:
        return Reply(refusal(error, ticket, what, ctx))


def precheck(ctx: Context, ticket: Ticket, what: Move) -> Reply | None:
    """Would the move be allowed (party and state)? For asking a reason first."""
    try:
        workflow.check(ticket, what, ctx.actor)
    except WorkflowError as error:
        return Reply(refusal(error, ticket, what, ctx))
    return None


def refusal(error: WorkflowError, ticket: Ticket, what: Move, ctx: Context) -> str:
    number, action = ticket.number, texts.ACTION.get(str(what), str(what))
    code = error.code
    if code == "forbidden":
        parties = texts.OR.join(texts.PARTY[str(p)] for p in sorted(RULES[what].parties))
        return texts.FORBIDDEN.format(number=number, action=action,
                                      who=texts.FORBIDDEN_WHO.format(action=action, parties=parties))
    if code == "wrong_state":
        status = ticket.status
        hint = texts.WRONG_STATE_HINTS.get((str(what), status)) or texts.WRONG_STATE_BY_MOVE.get(str(what), "")
        return texts.WRONG_STATE.format(number=number, status=f"“{texts.STATUS[status]}”", action=action,
                                        hint=hint.format(number=number))
    if code == "unit_required":
        return texts.UNIT_REQUIRED.format(number=number)
    if code == "same_unit":
        return texts.SAME_UNIT.format(number=number)
    if code == "not_major":
        return texts.NOT_MAJOR.format(number=number, tier=texts.TIER.get(ticket.tier, ticket.tier))
    if code == "bad_date":
        return texts.BAD_DATE
    if code == "note_required":
        return texts.NOTE_REQUIRED.get(str(what), texts.NOTE_REQUIRED["supplement"]).format(number=number)
    if code == "extension_pending":
        return texts.EXTENSION_PENDING.format(number=number)
    if code == "bad_days":
        return texts.BAD_DAYS.format(number=number, max_days=ctx.policy.extension.max_days)
    if code == "no_pending_extension":
        return texts.NO_PENDING_EXTENSION.format(number=number)
    if code == "flag_incomplete":
        missing = error.context.get("missing") or []
        if "unit" in missing:
            return texts.FLAG_NEEDS_UNIT.format(number=number)
        return texts.FLAG_INCOMPLETE.format(missing=texts.join(texts.FLAG_FIELD.get(m, m) for m in missing))
    if code == "not_flagged":
        return texts.NOT_FLAGGED.format(number=number)
    return texts.REFUSED_UNKNOWN.format(number=number, action=action, code=code)


# -- conversation state --------------------------------------------------------------

CHOOSE_PROJECT = "choose_project"  # data: text, attachments
AFTER_REPORT = "after_report"  # data: ticket (number)
COLLECT = "collect"  # data: attachments (sent before any report)
AWAIT_REASON = "await_reason"  # data: command, ticket (number)

CHOICE_WINDOW = timedelta(minutes=30)
ATTACH_WINDOW = timedelta(minutes=10)
REASON_WINDOW = timedelta(minutes=10)


def state_of(ctx: Context) -> str | None:
    return ctx.conversation.state if ctx.conversation is not None else None


def in_state(state: str) -> Callable[[Context], bool]:
    return lambda ctx: state_of(ctx) == state


async def set_conversation(ctx: Context, state: str, data: dict, window: timedelta) -> None:
    expires = ctx.now + window
    if ctx.conversation is not None:
        ctx.conversation.state, ctx.conversation.data, ctx.conversation.expires_at = state, dict(data), expires
        return
    await ctx.session.flush()  # an expired row the pipeline deleted must be gone first
    row = Conversation(person_id=ctx.person.id, state=state, data=dict(data), expires_at=expires)
    ctx.session.add(row)
    ctx.conversation = row


async def clear_conversation(ctx: Context) -> None:
    if ctx.conversation is not None:
        await ctx.session.delete(ctx.conversation)
        ctx.conversation = None


async def give_reason(handlers: dict[str, Handler], ctx: Context) -> HandlerResult:
    """The reply after "please give the reason": finish the command it was for."""
    data = dict(ctx.conversation.data)
    await clear_conversation(ctx)
    handler = handlers[data["command"]]
    return await handler(with_text(ctx, f"{data['command']} {data['ticket']} {ctx.text}"))


async def ask_reason(ctx: Context, command: str, ticket: Ticket) -> HandlerResult:
    await set_conversation(ctx, AWAIT_REASON, {"command": command, "ticket": ticket.number}, REASON_WINDOW)
    return ctx.answer(Reply(texts.ASK_REASON[command],
                            title=texts.ASK_REASON_TITLE.format(command=command, number=ticket.number)))


# -- who hears about a ticket ----------------------------------------------------------


async def person_key(ctx: Context, person_id: int | None) -> str | None:
    if person_id is None:
        return None
    person = await ctx.session.get(Person, person_id)
    return person.key if person is not None and person.active else None


async def unit_contact(ctx: Context, unit: Unit | None) -> Person | None:
    if unit is None:
        return None
    for person_id in (unit.contact_id, unit.leader_id):
        if person_id is not None:
            person = await ctx.session.get(Person, person_id)
            if person is not None and person.active:
                return person
    return None


async def notify_unit(ctx: Context, unit_id: int | None, reply: Reply, number: str,
                      with_leader: bool = False) -> None:
    """The unit's 13710 contact (the leader when there is none; the office when neither)."""
    unit = await ctx.session.get(Unit, unit_id) if unit_id else None
    contact = await unit_contact(ctx, unit)
    if contact is not None:
        ctx.notify(contact.key, reply, ticket_number=number)
    elif unit is not None:
        for person in await repo.office_staff(ctx.session, unit.office_id):
            ctx.notify(person.key, reply, ticket_number=number)
    if with_leader and unit is not None and unit.leader_id and (contact is None or contact.id != unit.leader_id):
        key = await person_key(ctx, unit.leader_id)
        if key:
            ctx.notify(key, reply, ticket_number=number)


async def notify_office(ctx: Context, office_id: int, reply: Reply, number: str) -> None:
    for person in await repo.office_staff(ctx.session, office_id):
        if ctx.person is None or person.id != ctx.person.id:
            ctx.notify(person.key, reply, ticket_number=number)


async def notify_reporter(ctx: Context, ticket: Ticket, reply: Reply) -> None:
    if ctx.person is not None and ticket.reporter_id == ctx.person.id:
        return
    key = await person_key(ctx, ticket.reporter_id)
    if key:
        ctx.notify(key, reply, ticket_number=ticket.number)


# -- how a ticket is shown -------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """A ticket with the rows around it, for showing."""

    ticket: Ticket
    project: Project | None
    office: Office
    unit: Unit | None
    contact: Person | None
    reporter: Person | None

    @property
    def number(self) -> str:
        return self.ticket.number

    @property
    def heading(self) -> str:
        return texts.heading(self.ticket.number, self.ticket.flagged)

    @property
    def badge(self) -> str:
        return texts.FLAG_BADGE if self.ticket.flagged else ""

    @property
    def project_name(self) -> str:
        return self.project.name if self.project else "—"

    @property
    def unit_name(self) -> str:
        return self.unit.name if self.unit else "—"

    @property
    def contact_text(self) -> str:
        if self.contact is None:
            return texts.NO_CONTACT
        return texts.person_line(self.contact.name, self.contact.phone)

    @property
    def reporter_text(self) -> str:
        if self.reporter is None:
            return "—"
        name = self.reporter.name
        if self.reporter.company and self.reporter.company not in name:
            name = f"{self.reporter.company} {name}"
        return texts.person_line(name, self.reporter.phone)

    @property
    def summary(self) -> str:
        return texts.short(self.ticket.text)


async def load_view(ctx: Context, ticket: Ticket) -> View:
    return (await load_views(ctx, [ticket]))[0]


async def load_views(ctx: Context, tickets: Sequence[Ticket]) -> list[View]:
    session = ctx.session
    units = await repo.units_by_ids(session, [t.unit_id for t in tickets])
    projects = await repo.projects_by_ids(session, [t.project_id for t in tickets])
    offices = {o.id: o for o in await repo.all_offices(session)}
    people = await repo.people_by_ids(session, [t.reporter_id for t in tickets]
                                      + [u.contact_id for u in units.values()]
                                      + [u.leader_id for u in units.values()])
    views = []
    for t in tickets:
        unit = units.get(t.unit_id) if t.unit_id else None
        contact = None
        if unit is not None:
            contact = next((people[i] for i in (unit.contact_id, unit.leader_id)
                            if i in people and people[i].active), None)
        views.append(View(t, projects.get(t.project_id), offices[t.office_id], unit, contact,
                          people.get(t.reporter_id)))
    return views


def tz(ctx: Context):
    return ctx.policy.clock.tz


def when(ctx: Context, moment: datetime | None) -> str:
    return texts.when(moment, tz(ctx))


def next_due(ticket: Ticket) -> tuple[str, datetime] | None:
    dues = workflow.outstanding_deadlines(ticket)
    return min(dues, key=lambda d: d[1]) if dues else None


def light_of(ctx: Context, due: datetime | None) -> str:
    if due is None:
        return ""
    kind = deadlines.light(due, ctx.now, ctx.policy)
    return texts.light(kind, deadlines.overdue_days(due, ctx.now, ctx.policy) if kind == "overdue" else 0)


def urgency(ticket: Ticket) -> tuple:
    due = next_due(ticket)
    return (due is None, due[1] if due else None, ticket.id)


def list_line(ctx: Context, view: View) -> str:
    t = view.ticket
    due = next_due(t)
    unit = view.unit.name if view.unit and t.status != Status.REPORTED else texts.STATUS["reported"]
    if t.status == Status.RETURNED:
        unit = texts.STATUS["returned"]
    return texts.LIST_LINE.format(
        heading=view.heading, status=texts.STATUS[t.status], light=light_of(ctx, due[1]) if due else "",
        summary=view.summary, unit=unit,
        due=texts.LIST_DUE.format(stage=texts.STAGE[due[0]], when=when(ctx, due[1])) if due else "",
    )


def ticket_list(ctx: Context, views: Sequence[View], title: str, limit: int = 20) -> Reply:
    lines = [f"{i}. {list_line(ctx, v)}" for i, v in enumerate(views[:limit], start=1)]
    if len(views) > limit:
        lines.append(texts.LIST_MORE.format(count=len(views) - limit))
    lines.append(texts.LIST_FOOTER)
    return Reply("\n".join(lines), title=title)


def understood(ticket: Ticket) -> str:
    """The problem as triage understood it: its category and the words it went by."""
    unit_type = (ticket.triage or {}).get("unit_type") or ticket.unit_type
    if not unit_type:
        return ""
    label = UNIT_TYPES.get(unit_type, unit_type)
    words = ((ticket.triage or {}).get("matched") or {}).get(unit_type) or []
    if words:
        return texts.REPORT_CATEGORY.format(label=label, words=texts.join(words[:5]))
    return texts.REPORT_CATEGORY_NO_WORDS.format(label=label)


def tier_line(ticket: Ticket) -> str:
    tier = texts.TIER.get(ticket.tier, ticket.tier)
    words = (ticket.triage or {}).get("tier_words") or []
    if words and ticket.tier != "general":
        return texts.REPORT_TIER_WORDS.format(tier=tier, words=texts.join(words[:3]))
    return texts.REPORT_TIER.format(tier=tier)


def unit_card(ctx: Context, view: View, attachments: int = 0, note: str | None = None) -> Reply:
    """What a unit's 13710 contact receives for a ticket dispatched to it."""
    t = view.ticket
    level = texts.PROJECT_LEVEL.get(view.project.level, "") if view.project else ""
    body = texts.NEW_TICKET.format(
        project=view.project_name, level=level, office=view.office.short_name, text=t.text,
        tier=texts.TIER.get(t.tier, t.tier), reporter=view.reporter_text,
        attachments=texts.NEW_TICKET_ATTACHMENTS.format(count=attachments, number=t.number) if attachments else "",
        ack=when(ctx, t.ack_due_at), feedback=when(ctx, t.feedback_due_at), resolve=when(ctx, t.resolve_due_at),
    )
    if t.secondary_unit_types:
        body += "\n" + texts.ALSO_CONCERNS.format(labels=texts.join(UNIT_TYPES.get(x, x) for x in t.secondary_unit_types))
    if note:
        body = texts.NEW_TICKET_REASSIGNED.format(office=view.office.short_name, note=note) + body
    return Reply(
        body, title=texts.NEW_TICKET_TITLE.format(badge=view.badge, number=t.number),
        buttons=(Button(f"签收 {t.number}", texts.BUTTON_ACK), Button(f"退回 {t.number}", texts.BUTTON_RETURN)),
    )


async def candidate_units(ctx: Context, ticket: Ticket, exclude: Iterable[int] = ()) -> list[repo.UnitRow]:
    """The units the office might dispatch to: triage's candidates resolved in the
    ticket's 属地, best first."""
    resolve = await unit_resolver(ctx.session, ticket.office_id)
    excluded = set(exclude)
    found: list[repo.UnitRow] = []
    types = [c[0] for c in (ticket.triage or {}).get("candidates") or []]
    if ticket.unit_type and ticket.unit_type not in types:
        types.insert(0, ticket.unit_type)
    for unit_type in [*types, *(ticket.secondary_unit_types or [])]:
        unit = resolve(unit_type)
        if unit is not None and unit.id not in excluded and unit not in found:
            found.append(unit)
    return found[:4]


def dispatch_buttons(number: str, units: Sequence[Unit | repo.UnitRow]) -> tuple[Button, ...]:
    return tuple(Button(f"交办 {number} {u.key}", u.name) for u in units)


async def office_card(ctx: Context, view: View, exclude: Iterable[int] = ()) -> Reply:
    """What the office receives for a ticket that needs a person to dispatch it."""
    t = view.ticket
    units = await candidate_units(ctx, t, exclude)
    tri = t.triage or {}
    types = [c[0] for c in tri.get("candidates") or []]
    if not types and not t.unit_type:
        why = texts.NEEDS_OFFICE_WHY_NONE
    elif len(types) > 1 or t.secondary_unit_types:
        labels = [UNIT_TYPES.get(x, x) for x in dict.fromkeys([*types[:3], *(t.secondary_unit_types or [])])]
        why = texts.NEEDS_OFFICE_WHY_SEVERAL.format(labels=texts.join(labels))
    else:
        label = UNIT_TYPES.get(t.unit_type or types[0], t.unit_type or types[0])
        why = texts.NEEDS_OFFICE_WHY_UNSURE.format(label=label)
    level = texts.PROJECT_LEVEL.get(view.project.level, "") if view.project else ""
    how = (texts.NEEDS_OFFICE_HOW_BUTTONS if units else texts.NEEDS_OFFICE_HOW_TEXT).format(number=t.number)
    body = texts.NEEDS_OFFICE.format(project=view.project_name, level=level, text=t.text,
                                     reporter=view.reporter_text, tier=texts.TIER.get(t.tier, t.tier),
                                     why=why, due=when(ctx, t.dispatch_due_at), how=how)
    return Reply(body, title=texts.NEEDS_OFFICE_TITLE.format(badge=view.badge, number=t.number),
                 buttons=dispatch_buttons(t.number, units))


async def can_view(ctx: Context, ticket: Ticket) -> bool:
    actor, person = ctx.actor, ctx.person
    if actor is None or person is None:
        return False
    if workflow.parties_of(actor, ticket) & {Party.OFFICE, Party.UNIT, Party.REPORTER}:
        return True
    if ticket.project_id is not None:
        project = await ctx.session.get(Project, ticket.project_id, options=[selectinload(Project.liaisons)])
        if project is not None and (project.leader_id == person.id or any(p.id == person.id for p in project.liaisons)):
            return True
    if actor.unit_id is not None and ctx.has_role(*UNIT_ROLES):
        events = await repo.ticket_events(ctx.session, ticket.id)
        return any(e.unit_id == actor.unit_id for e in events)
    return False


async def detail(ctx: Context, ticket: Ticket) -> Reply:
    """One ticket with its deadlines and timeline (查询 编号)."""
    view = await load_view(ctx, ticket)
    t = ticket
    lines = []
    if view.project is not None:
        lines.append(texts.DETAIL_PROJECT.format(project=view.project.name, office=view.office.short_name))
    lines.append(texts.DETAIL_PROBLEM.format(text=t.text))
    lines.append(texts.DETAIL_REPORTER.format(reporter=view.reporter_text))
    lines.append(texts.DETAIL_TIER.format(tier=texts.TIER.get(t.tier, t.tier)))
    if view.unit is not None and t.status != Status.REPORTED:
        lines.append(texts.DETAIL_UNIT.format(unit=view.unit.name, contact=view.contact_text))
    else:
        lines.append(texts.DETAIL_UNIT_NONE)
    for stage, due in workflow.outstanding_deadlines(t):
        lines.append(texts.DETAIL_DUE.format(stage=texts.STAGE[stage], when=when(ctx, due), light=light_of(ctx, due)))
    if t.flagged and t.flag:
        lines.append(texts.DETAIL_FLAG.format(five=flag_text(t.flag)))
    if t.plan:
        lines.append(texts.DETAIL_PLAN.format(text=t.plan.get("text", ""),
                                              due=when(ctx, datetime.fromisoformat(t.plan["due_at"]))))
    if t.pending_extension:
        lines.append(texts.DETAIL_EXTENSION.format(days=t.pending_extension.get("days"),
                                                   reason=t.pending_extension.get("reason", "")))
    if t.resolution and t.status in (Status.RESOLVED, Status.CLOSED):
        lines.append(texts.DETAIL_RESOLUTION.format(text=t.resolution))
    attachments = (await ctx.session.scalars(
        select(TicketAttachment).where(TicketAttachment.ticket_id == t.id).order_by(TicketAttachment.id))).all()
    if attachments:
        counts: dict[str, int] = {}
        for a in attachments:
            counts[a.kind] = counts.get(a.kind, 0) + 1
        lines.append(texts.DETAIL_ATTACHMENTS.format(
            items=texts.join(texts.ATTACH_COUNT.format(kind=texts.ATTACH_KIND.get(k, k), count=n)
                             for k, n in counts.items())))
    lines.append(texts.DETAIL_TIMELINE)
    events = await repo.ticket_events(ctx.session, t.id)
    actors = await repo.people_by_ids(ctx.session, [e.actor_id for e in events])
    units = await repo.units_by_ids(ctx.session, [e.unit_id for e in events])
    for e in events:
        who = actors[e.actor_id].name if e.actor_id in actors else texts.SYSTEM_ACTOR
        what = texts.EVENT.get(e.kind, e.kind)
        if e.kind in ("dispatch", "reassign") and e.unit_id in units:
            what = texts.TIMELINE_TO_UNIT.format(what=what, unit=units[e.unit_id].name)
        note = f"：{texts.short(e.note, 80)}" if e.note and e.kind != "create" else ""
        lines.append(texts.TIMELINE_LINE.format(when=when(ctx, e.at), who=who, what=what, note=note))
    title = texts.DETAIL_TITLE.format(heading=view.heading, status=texts.STATUS[t.status])
    return Reply("\n".join(lines), title=title)


def flag_text(flag: dict) -> str:
    due = flag.get("due", "")
    try:
        due = texts.date_text(date.fromisoformat(due))
    except (TypeError, ValueError):
        pass
    return texts.FLAG_FIVE.format(method=flag.get("method", ""), unit=flag.get("unit", ""),
                                    leader=flag.get("leader", ""), person=flag.get("person", ""), due=due)


# -- handlers for everyone -------------------------------------------------------------


async def unknown_person(ctx: Context) -> HandlerResult:
    return ctx.answer(Reply(texts.UNKNOWN_PERSON))


async def show_help(ctx: Context) -> HandlerResult:
    parts = [texts.HELP_HEADER.format(name=ctx.person.name, roles=role_names(ctx.roles))]
    if ctx.has_role("liaison"):
        parts.append(texts.HELP_LIAISON)
    if ctx.has_role(*UNIT_ROLES):
        parts.append(texts.HELP_UNIT)
        if ctx.has_role("unit_leader"):
            parts.append(texts.HELP_UNIT_LEADER_NOTE)
    if ctx.has_role("office"):
        parts.append(texts.HELP_OFFICE)
    if ctx.has_role("project_leader"):
        parts.append(texts.HELP_PROJECT_LEADER)
    if len(parts) == 1:
        parts.append(texts.NO_ROLE)
    parts.append(texts.HELP_FOOTER)
    return ctx.answer(Reply("\n\n".join(parts), title=texts.HELP_TITLE))


async def unknown_command(ctx: Context) -> HandlerResult:
    if ctx.message.kind not in (MessageKind.TEXT, MessageKind.ACTION) or not ctx.text:
        return ctx.answer(Reply(texts.UNSUPPORTED_KIND))
    hint = ""
    if ctx.has_role(*UNIT_ROLES):
        hint = texts.UNKNOWN_COMMAND_HINT_UNIT
    elif ctx.has_role("office"):
        hint = texts.UNKNOWN_COMMAND_HINT_OFFICE
    return ctx.answer(Reply(texts.UNKNOWN_COMMAND.format(text=texts.short(ctx.text, 20), hint=hint)))
