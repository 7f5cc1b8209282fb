"""The digest (简报) an office receives: what happened in the period and what
stands now, for the office and the offices below it.

`build_digest(session, office_id, now, policy, cadence)` runs a handful of
set-based queries (counts plus the first `item_limit` tickets of each
section); `render_digest_markdown(digest, max_bytes=...)` turns it into
markdown chunks that each fit a platform's limit (WeCom markdown: 4096 bytes
of UTF-8), each one self-contained: the title with "(i/n)", and a section
that goes on in the next chunk repeats its heading with "（续）".

Periods (local days in the policy's time zone, ending at the start of the
local day of `now`):
- daily: the previous local day;
- weekly (一周一分析): the previous 7 days;
- ten_day (每旬调度): from the latest configured `digest.ten_day_days` day
  before today (on the 11th with days 1/11/21: the 1st to the 10th);
- monthly (月调度): from the same day of the previous month.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import and_, case, distinct, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from config.policy import CADENCES, Policy
from models.deadlines import add_months, overdue_days
from models.repo import descendants
from models.tables import Office, Project, Ticket, TicketEvent, Unit
from models.workflow import WITH_UNIT, Move, Status
from scheduler.ledger_export import ESCALATION_LABELS, NO_PROJECT

CADENCE_TITLES = {"daily": "每日简报", "weekly": "每周分析", "ten_day": "每旬调度", "monthly": "月度调度"}
STAGE_LABELS = {"dispatch": "交办", "ack": "签收", "feedback": "首次反馈", "resolve": "办结", "confirm": "确认"}
WECOM_MARKDOWN_BYTES = 4096

_WITH_UNIT = sorted(str(s) for s in WITH_UNIT)
_AT_OFFICE = [str(Status.REPORTED), str(Status.RETURNED)]


# -- results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TicketLine:
    ticket_id: int
    number: str
    project: str
    unit: str | None
    text: str
    status: str
    at: datetime | None = None  # when the event of the section happened
    due_at: datetime | None = None  # the deadline the line is about
    note: str | None = None  # stage, reason or other detail
    level: int | None = None  # 一二三 level of an escalation


@dataclass(frozen=True)
class Section:
    total: int
    items: tuple[TicketLine, ...] = ()


@dataclass(frozen=True)
class UnitOverdue:
    """Open tickets past a deadline at one unit (unit None: still with the office)."""

    unit_id: int | None
    name: str
    tickets: int
    dispatch: int = 0
    ack: int = 0
    feedback: int = 0
    resolve: int = 0
    confirm: int = 0
    max_days: int = 0


@dataclass(frozen=True)
class Digest:
    office_id: int
    office_name: str
    cadence: str
    now: datetime
    period_start: datetime  # UTC
    period_end: datetime  # UTC, exclusive
    first_day: date  # local, inclusive
    last_day: date  # local, inclusive
    tz: Any
    open_count: int
    new: Section
    dispatched: Section
    acknowledged_late: Section
    overdue: Section  # totals and the worst tickets
    overdue_by_unit: tuple[UnitOverdue, ...]
    due_soon: Section  # today and tomorrow
    resolved: Section
    closed: Section
    reopened: Section
    flagged: Section  # open flagged tickets now; `note` says "本期新挂牌" for new ones
    escalations: Section  # 一二三 steps taken in the period
    escalation_levels: dict[int, int] = field(default_factory=dict)  # open tickets per level now

    @property
    def title(self) -> str:
        return f"{self.office_name}{CADENCE_TITLES.get(self.cadence, self.cadence)}"

    @property
    def period_label(self) -> str:
        if self.first_day == self.last_day:
            return f"{self.first_day.year}年{self.first_day.month}月{self.first_day.day}日"
        return (f"{self.first_day.year}年{self.first_day.month}月{self.first_day.day}日至"
                f"{self.last_day.month}月{self.last_day.day}日")


# -- periods ---------------------------------------------------------------------------


def digest_period(now: datetime, policy: Policy, cadence: str) -> tuple[date, date]:
    """(first, last) local days covered by a digest sent at `now`, inclusive."""
    if cadence not in CADENCES:
        raise ValueError(f"unknown cadence {cadence!r}; expected one of {', '.join(CADENCES)}")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    today = now.astimezone(policy.clock.tz).date()
    if cadence == "daily":
        first = today - timedelta(days=1)
    elif cadence == "weekly":
        first = today - timedelta(days=7)
    elif cadence == "monthly":
        first = add_months(today, -1)
    else:
        first = _previous_ten_day_start(today, policy.digest.ten_day_days)
    return first, today - timedelta(days=1)


def _previous_ten_day_start(today: date, days: Sequence[int]) -> date:
    """The latest day before `today` whose day of month is one of `days`."""
    candidates = [today.replace(day=d) for d in days if d < today.day]
    if candidates:
        return max(candidates)
    previous_month = add_months(today.replace(day=1), -1)
    return previous_month.replace(day=max(days))


def _local_midnight(day: date, policy: Policy) -> datetime:
    return datetime.combine(day, time(0), tzinfo=policy.clock.tz).astimezone(timezone.utc)


# -- queries ---------------------------------------------------------------------------


def _line_columns():
    return (Ticket.id, Ticket.number, Project.name, Unit.name, Ticket.text, Ticket.status)


def _line(row: Sequence[Any], **extra: Any) -> TicketLine:
    ticket_id, number, project, unit, text, status = row[:6]
    return TicketLine(ticket_id, number, project or NO_PROJECT, unit, text, status, **extra)


class DigestQueries:
    """The digest's queries over one office's scope and period."""

    def __init__(self, session: AsyncSession, scope: Sequence[int], days: tuple[date, date], start: datetime,
                 end: datetime, now: datetime, limit: int, everything: bool = False):
        self.session = session
        self.scope = list(scope)
        self.everything = everything  # the scope is every office: no filter needed
        self.first_day, self.last_day = days  # the period, local days; [start, end) in UTC
        self.start, self.end, self.now = start, end, now
        self.limit = limit

    def in_scope(self) -> ColumnElement[bool]:
        # "+ 0" keeps the office out of index choice: the time range or the
        # open flag is what narrows these queries. SQLite, which has no
        # statistics unless ANALYZE ran, would otherwise walk the office index
        # over every ticket a city office ever had (60 ms instead of 3 ms at
        # 100k tickets); PostgreSQL plans from statistics either way.
        if self.everything:
            return true()
        return (Ticket.office_id + 0).in_(self.scope)

    async def count(self, stmt) -> int:
        return int(await self.session.scalar(stmt) or 0)

    async def new(self) -> Section:
        where = and_(self.in_scope(), Ticket.created_at >= self.start, Ticket.created_at < self.end)
        total = await self.count(select(func.count()).select_from(Ticket).where(where))
        rows = (await self.session.execute(
            select(*_line_columns(), Ticket.created_at, Ticket.tier)
            .outerjoin(Project, Project.id == Ticket.project_id)
            .outerjoin(Unit, Unit.id == Ticket.unit_id)
            .where(where).order_by(Ticket.created_at, Ticket.id).limit(self.limit)
        )).all()
        return Section(total, tuple(_line(r, at=r[6]) for r in rows))

    async def events(self, kinds: Sequence[str], extra: ColumnElement[bool] | None = None,
                     note: bool = False) -> Section:
        """Tickets with an event of these kinds in the period, in time order;
        a ticket with several such events is one line (the later event)."""
        where = and_(
            TicketEvent.kind.in_(list(kinds)), TicketEvent.at >= self.start, TicketEvent.at < self.end,
            self.in_scope(), extra if extra is not None else true(),
        )
        counting = select(func.count(distinct(TicketEvent.ticket_id))).select_from(TicketEvent)
        if extra is not None or not self.everything:  # the ticket is needed for the filter
            counting = counting.join(Ticket, Ticket.id == TicketEvent.ticket_id)
        total = await self.count(counting.where(where))
        rows = (await self.session.execute(
            select(*_line_columns(), TicketEvent.at, TicketEvent.note, TicketEvent.kind, TicketEvent.data)
            .select_from(TicketEvent)
            .join(Ticket, Ticket.id == TicketEvent.ticket_id)
            .outerjoin(Project, Project.id == Ticket.project_id)
            .outerjoin(Unit, Unit.id == TicketEvent.unit_id)
            .where(where).order_by(TicketEvent.at, TicketEvent.id).limit(self.limit * 2)
        )).all()
        lines: dict[int, TicketLine] = {}
        for r in rows:
            at, event_note, kind, data = r[6], r[7], r[8], r[9] or {}
            level = data.get("level") if isinstance(data, dict) else None
            text = event_note if note else (_kind_note(kind) or None)
            lines[r[0]] = _line(r, at=at, note=text, level=level if isinstance(level, int) else None)
        return Section(total, tuple(sorted(lines.values(), key=lambda x: (x.at, x.ticket_id))[: self.limit]))

    def _overdue_conditions(self) -> dict[str, ColumnElement[bool]]:
        now = self.now
        return {
            "dispatch": and_(Ticket.status.in_(_AT_OFFICE), Ticket.dispatch_due_at < now),
            "ack": and_(Ticket.status == str(Status.DISPATCHED), Ticket.ack_due_at < now),
            "feedback": and_(Ticket.status.in_(_WITH_UNIT), Ticket.first_feedback_at.is_(None),
                             Ticket.feedback_due_at < now),
            "resolve": and_(Ticket.status.in_(_WITH_UNIT), Ticket.resolve_due_at < now),
            "confirm": and_(Ticket.status == str(Status.RESOLVED), Ticket.confirm_due_at < now),
        }

    async def overdue(self) -> tuple[Section, tuple[UnitOverdue, ...]]:
        conditions = self._overdue_conditions()
        due_columns = {"dispatch": Ticket.dispatch_due_at, "ack": Ticket.ack_due_at,
                       "feedback": Ticket.feedback_due_at, "resolve": Ticket.resolve_due_at,
                       "confirm": Ticket.confirm_due_at}
        # Overdue in anything means the earliest deadline is past: that range of
        # its index narrows the scan to the overdue tickets; `anything` says which.
        anything = or_(*conditions.values())
        overdue_now = and_(Ticket.is_open.is_(True), Ticket.earliest_due_at < self.now, self.in_scope(), anything)
        # Tickets waiting at the office (to dispatch, or for the office to decide
        # on an unconfirmed 办结) are listed under the office, not the unit.
        at_office = or_(Ticket.status.in_(_AT_OFFICE), conditions["confirm"])
        holder = case((at_office, None), else_=Ticket.unit_id)
        stmt = (
            select(
                holder.label("holder"),
                func.count(),
                *(func.sum(case((cond, 1), else_=0)) for cond in conditions.values()),
                *(func.min(case((conditions[stage], due_columns[stage]), else_=None)) for stage in conditions),
            )
            .where(overdue_now)
            .group_by(holder)
        )
        rows = (await self.session.execute(stmt)).all()
        unit_ids = [r[0] for r in rows if r[0] is not None]
        names = {}
        if unit_ids:
            names = dict((await self.session.execute(select(Unit.id, Unit.name).where(Unit.id.in_(unit_ids)))).all())
        stages = list(conditions)
        by_unit = []
        for r in rows:
            counts = dict(zip(stages, (int(v or 0) for v in r[2:2 + len(stages)])))
            earliest = [d for d in r[2 + len(stages):] if d is not None]
            earliest = [d if d.tzinfo else d.replace(tzinfo=timezone.utc) for d in earliest]
            worst = overdue_days(min(earliest), self.now) if earliest else 0
            name = names.get(r[0], f"单位{r[0]}") if r[0] is not None else "本办（待交办、待确认）"
            by_unit.append(UnitOverdue(r[0], name, int(r[1]), max_days=worst, **counts))
        by_unit.sort(key=lambda u: (-u.tickets, -u.max_days, u.name))
        total = sum(u.tickets for u in by_unit)

        # The longest overdue tickets: by the deadline of the stage they are stuck at.
        stuck_due = case(
            (Ticket.status.in_(_AT_OFFICE), Ticket.dispatch_due_at),
            (Ticket.status == str(Status.DISPATCHED), Ticket.ack_due_at),
            (and_(Ticket.status.in_(_WITH_UNIT), Ticket.first_feedback_at.is_(None),
                  Ticket.feedback_due_at < self.now), Ticket.feedback_due_at),
            (Ticket.status.in_(_WITH_UNIT), Ticket.resolve_due_at),
            else_=Ticket.confirm_due_at,
        )
        # Chosen from the index alone (it holds what stuck_due reads); only the
        # chosen few tickets' rows are read for their lines.
        worst = (select(Ticket.id)
                 .where(overdue_now)
                 .order_by(stuck_due, Ticket.id)
                 .limit(self.limit))
        rows = (await self.session.execute(
            select(*_line_columns(), Ticket.first_feedback_at, *due_columns.values())
            .outerjoin(Project, Project.id == Ticket.project_id)
            .outerjoin(Unit, Unit.id == Ticket.unit_id)
            .where(Ticket.id.in_(worst.scalar_subquery()))
            .order_by(stuck_due, Ticket.id)
        )).all()
        worst_lines = []
        for r in rows:
            dues = dict(zip(due_columns, r[7:]))
            missed = [(dues[s], s) for s in _stages(r[5], r[6] is not None)
                      if dues.get(s) is not None and dues[s] < self.now]
            if missed:
                due, stage = min(missed)
                worst_lines.append(_line(r, due_at=due, note=f"{STAGE_LABELS[stage]}超期"))
        return Section(total, tuple(worst_lines[: self.limit])), tuple(by_unit)

    async def due_soon(self, until: datetime) -> Section:
        """Open tickets with a deadline still to meet between now and `until`."""
        now = self.now
        due_columns = {"dispatch": Ticket.dispatch_due_at, "ack": Ticket.ack_due_at,
                       "feedback": Ticket.feedback_due_at, "resolve": Ticket.resolve_due_at,
                       "confirm": Ticket.confirm_due_at}
        window = {
            "dispatch": Ticket.status.in_(_AT_OFFICE),
            "ack": Ticket.status == str(Status.DISPATCHED),
            "feedback": and_(Ticket.status.in_(_WITH_UNIT), Ticket.first_feedback_at.is_(None)),
            "resolve": Ticket.status.in_(_WITH_UNIT),
            "confirm": Ticket.status == str(Status.RESOLVED),
        }
        conditions = [and_(window[s], due_columns[s] > now, due_columns[s] < until) for s in window]
        rows = (await self.session.execute(
            select(*_line_columns(), Ticket.first_feedback_at, *due_columns.values())
            .outerjoin(Project, Project.id == Ticket.project_id)
            .outerjoin(Unit, Unit.id == Ticket.unit_id)
            .where(Ticket.is_open.is_(True), Ticket.earliest_due_at < until, self.in_scope(), or_(*conditions))
        )).all()
        lines = []
        for r in rows:
            dues = dict(zip(due_columns, r[7:]))
            status, fed = r[5], r[6] is not None
            stages = [s for s in _stages(status, fed) if dues[s] is not None and now < dues[s] < until]
            if stages:
                first = min(stages, key=lambda s: dues[s])
                lines.append(_line(r, due_at=dues[first], note="、".join(STAGE_LABELS[s] for s in stages)))
        lines.sort(key=lambda x: (x.due_at, x.ticket_id))
        return Section(len(lines), tuple(lines[: self.limit]))

    async def flagged(self) -> Section:
        where = and_(Ticket.is_open.is_(True), Ticket.flagged.is_(True), self.in_scope())
        total = await self.count(select(func.count()).select_from(Ticket).where(where))
        new_flag = (
            select(func.max(TicketEvent.at))
            .where(TicketEvent.ticket_id == Ticket.id, TicketEvent.kind == str(Move.FLAG))
            .scalar_subquery()
        )
        rows = (await self.session.execute(
            select(*_line_columns(), Ticket.flag, new_flag.label("flagged_at"), Ticket.resolve_due_at)
            .outerjoin(Project, Project.id == Ticket.project_id)
            .outerjoin(Unit, Unit.id == Ticket.unit_id)
            .where(where).order_by(Ticket.resolve_due_at, Ticket.id).limit(self.limit)
        )).all()
        lines = []
        for r in rows:
            flag, flagged_at = r[6] or {}, r[7]
            if flagged_at is not None and flagged_at.tzinfo is None:
                flagged_at = flagged_at.replace(tzinfo=timezone.utc)
            parts = [f"责任领导{flag['leader']}" if flag.get("leader") else "",
                     f"时限{flag['due']}" if flag.get("due") else ""]
            if flagged_at is not None and self.start <= flagged_at < self.end:
                parts.insert(0, "本期新挂牌")
            lines.append(_line(r, at=flagged_at, due_at=r[8], note="，".join(p for p in parts if p) or None))
        return Section(total, tuple(lines))

    async def open_count(self) -> int:
        return await self.count(
            select(func.count()).select_from(Ticket).where(Ticket.is_open.is_(True), self.in_scope()))

    async def escalation_levels(self) -> dict[int, int]:
        rows = (await self.session.execute(
            select(Ticket.escalation_level, func.count())
            .where(Ticket.is_open.is_(True), self.in_scope(), Ticket.escalation_level > 0)
            .group_by(Ticket.escalation_level)
        )).all()
        return {int(level): int(n) for level, n in rows}


def _kind_note(kind: str) -> str:
    return {str(Move.DISPATCH): "交办", str(Move.REASSIGN): "转办"}.get(kind, "")


def _stages(status: str, fed: bool) -> list[str]:
    if status in _AT_OFFICE:
        return ["dispatch"]
    if status == Status.RESOLVED:
        return ["confirm"]
    if status in _WITH_UNIT:
        stages = ["ack"] if status == Status.DISPATCHED else []
        if not fed:
            stages.append("feedback")
        return stages + ["resolve"]
    return []


async def digest_queries(session: AsyncSession, office_id: int, now: datetime, policy: Policy, cadence: str,
                         *, item_limit: int = 10) -> tuple[Office, DigestQueries]:
    """The office and the queries of its digest (its scope: it and the offices
    below it; its period: the cadence's, ending at the start of `now`'s day)."""
    first, last = digest_period(now, policy, cadence)
    start, end = _local_midnight(first, policy), _local_midnight(last + timedelta(days=1), policy)
    offices = list((await session.scalars(select(Office))).all())
    office = next((o for o in offices if o.id == office_id), None)
    if office is None:
        raise LookupError(f"no office with id {office_id}")
    scope = sorted(descendants(office_id, offices))
    return office, DigestQueries(session, scope, (first, last), start, end, now, item_limit,
                                 everything=len(scope) == len(offices))


async def build_digest(
    session: AsyncSession,
    office_id: int,
    now: datetime,
    policy: Policy,
    cadence: str,
    *,
    item_limit: int = 10,
) -> Digest:
    """The digest of `office_id` (and the offices below it) for the period that
    ends at the start of `now`'s local day. Each section has its total and
    at most `item_limit` tickets."""
    office, q = await digest_queries(session, office_id, now, policy, cadence, item_limit=item_limit)
    start, end, first, last = q.start, q.end, q.first_day, q.last_day

    today = now.astimezone(policy.clock.tz).date()
    until = _local_midnight(today + timedelta(days=2), policy)  # end of tomorrow
    ack_late = or_(
        and_(TicketEvent.kind == str(Move.ACKNOWLEDGE), TicketEvent.data["late"].as_boolean().is_(True)),
        and_(TicketEvent.kind.in_([str(Move.FEEDBACK), str(Move.SUBMIT_PLAN)]),
             TicketEvent.from_status == str(Status.DISPATCHED), Ticket.ack_due_at.is_not(None),
             TicketEvent.at > Ticket.ack_due_at),
    )
    overdue, by_unit = await q.overdue()
    return Digest(
        office_id=office.id,
        office_name=office.short_name,
        cadence=cadence,
        now=now,
        period_start=start,
        period_end=end,
        first_day=first,
        last_day=last,
        tz=policy.clock.tz,
        open_count=await q.open_count(),
        new=await q.new(),
        dispatched=await q.events([str(Move.DISPATCH), str(Move.REASSIGN)]),
        acknowledged_late=await q.events(
            [str(Move.ACKNOWLEDGE), str(Move.FEEDBACK), str(Move.SUBMIT_PLAN)], ack_late),
        overdue=overdue,
        overdue_by_unit=by_unit,
        due_soon=await q.due_soon(until),
        resolved=await q.events([str(Move.RESOLVE)]),
        closed=await q.events([str(Move.CONFIRM)]),
        reopened=await q.events([str(Move.REOPEN)], note=True),
        flagged=await q.flagged(),
        escalations=await q.events(["escalate"]),
        escalation_levels=await q.escalation_levels(),
    )


# -- markdown ---------------------------------------------------------------------------

NUMERALS = "一二三四五六七八九十"


def _short(text: str, limit: int = 36) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _hm(moment: datetime | None, tz) -> str:
    return f"{moment.astimezone(tz):%m-%d %H:%M}" if moment else ""


def _who(line: TicketLine) -> str:
    return f"{line.project}｜{line.unit}" if line.unit else line.project


def _more(section: Section) -> list[str]:
    hidden = section.total - len(section.items)
    return [f"- ……另有{hidden}件"] if hidden > 0 else []


def _sections(d: Digest) -> list[tuple[str, list[str]]]:
    tz = d.tz
    today = d.now.astimezone(tz).date()
    out: list[tuple[str, list[str]]] = []

    def simple(title: str, section: Section, describe) -> None:
        lines = [describe(x) for x in section.items] + _more(section)
        out.append((f"{title} {section.total}件" if section.total else f"{title}：无", lines))

    simple("新增问题", d.new, lambda x: f"- {x.number} {_who(x)}：{_short(x.text)}")
    simple("交办", d.dispatched, lambda x: f"- {x.number} {x.note or '交办'}至{x.unit or '—'}（{_hm(x.at, tz)}）")
    simple("签收超期", d.acknowledged_late, lambda x: f"- {x.number} {x.unit or '—'} 于{_hm(x.at, tz)}签收")

    unit_lines = []
    for u in d.overdue_by_unit:
        detail = "、".join(f"{STAGE_LABELS[s]}{getattr(u, s)}" for s in STAGE_LABELS if getattr(u, s))
        unit_lines.append(f"- **{u.name}**：{u.tickets}件（{detail}），最长超期{u.max_days}天")
    if d.overdue.items:
        unit_lines.append("> 超期最久：")
        for x in d.overdue.items:
            days = overdue_days(x.due_at, d.now) if x.due_at else 0
            unit_lines.append(f"- {x.number} {_who(x)}：{x.note}{days}天")
    out.append((f"超期未办（按单位） {d.overdue.total}件" if d.overdue.total else "超期未办：无", unit_lines))

    def due_line(x: TicketLine) -> str:
        day = "今天" if x.due_at.astimezone(tz).date() == today else "明天"
        return f"- {day}{x.due_at.astimezone(tz):%H:%M} {x.number} {_who(x)}：{x.note}到期"

    simple("今明两天到期", d.due_soon, due_line)
    simple("办结", d.resolved, lambda x: f"- {x.number} {_who(x)}（{_hm(x.at, tz)}）")
    simple("销号", d.closed, lambda x: f"- {x.number} {_who(x)}（{_hm(x.at, tz)}）")
    simple("不满意重新办理", d.reopened,
           lambda x: f"- {x.number} {_who(x)}" + (f"：{_short(x.note, 30)}" if x.note else ""))
    simple("挂牌督办（在办）", d.flagged,
           lambda x: f"- {x.number} {_who(x)}" + (f"：{x.note}" if x.note else ""))

    esc_lines = [
        f"- {x.number} {_who(x)}：{ESCALATION_LABELS.get(x.level or 0, '升级督办')}"
        for x in d.escalations.items
    ] + _more(d.escalations)
    standing = "，".join(f"{NUMERALS[level - 1]}级{d.escalation_levels.get(level, 0)}件" for level in (1, 2, 3))
    esc_lines.append(f"> 目前在办：{standing}")
    title = f"一二三督办 本期{d.escalations.total}件" if d.escalations.total else "一二三督办：本期无新增"
    out.append((title, esc_lines))
    return [(f"### {NUMERALS[i]}、{title}", lines) for i, (title, lines) in enumerate(out)]


def render_digest_markdown(digest: Digest, max_bytes: int = WECOM_MARKDOWN_BYTES) -> list[str]:
    """The digest as markdown chunks of at most `max_bytes` UTF-8 bytes each."""
    tz = digest.tz
    summary = (f"> 统计时段：{digest.period_label}｜截至{_hm(digest.now, tz)}在办{digest.open_count}件，"
               f"其中超期{digest.overdue.total}件")
    title = f"## {digest.title}（{digest.period_label}）"
    return split_markdown(title, [("", [summary])] + _sections(digest), max_bytes)


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _clip(line: str, budget: int) -> str:
    """`line` cut to `budget` bytes at a character boundary, marked with …."""
    if _size(line) <= budget:
        return line
    data = line.encode("utf-8")[: max(budget - 3, 0)]
    return data.decode("utf-8", errors="ignore") + "…"


def split_markdown(title: str, sections: Sequence[tuple[str, Sequence[str]]], max_bytes: int) -> list[str]:
    """Pack (heading, lines) sections into chunks of at most `max_bytes`.

    Every chunk starts with `title` (plus " (i/n)" when there is more than
    one); a section split across chunks repeats its heading with "（续）";
    a single line too long for a chunk is clipped."""
    reserve = _size(" (999/999)")
    head_budget = _size(title) + reserve
    if max_bytes < head_budget + 64:
        raise ValueError(f"max_bytes {max_bytes} is too small for the title ({head_budget} bytes)")
    chunks: list[list[str]] = []
    current: list[str] = []
    used = head_budget

    def start_chunk() -> None:
        nonlocal current, used
        if current:
            chunks.append(current)
        current, used = [], head_budget

    def add(line: str) -> bool:
        """Append if it fits; True when it did."""
        nonlocal used
        cost = _size(line) + 1  # the newline before it
        if used + cost > max_bytes:
            return False
        current.append(line)
        used += cost
        return True

    for heading, lines in sections:
        block = ([heading] if heading else []) + list(lines)
        # Keep a heading together with its first line: start a new chunk if
        # both do not fit in what is left of this one.
        opening = sum(_size(x) + 1 for x in block[:2])
        if current and used + opening > max_bytes:
            start_chunk()
        for index, line in enumerate(block):
            if add(line):
                continue
            # A line too long for any chunk right after its heading is clipped
            # in place (the heading is not left alone); anything else moves on
            # to a new chunk, under the heading again, clipped if need be.
            if not (heading and index == 1 and current and current[-1] == heading):
                start_chunk()
                if heading and index > 0:
                    add(f"{heading}（续）")
            if not add(line):
                add(_clip(line, max_bytes - used - 1))
    if current:
        chunks.append(current)
    total = len(chunks)
    return [
        "\n".join([f"{title} ({i}/{total})" if total > 1 else title, *body])
        for i, body in enumerate(chunks, start=1)
    ]
