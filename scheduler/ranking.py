"""The monthly ranking (月排名 / 月通报) of handling units and counties.

What is counted (all from TicketEvents, evaluated as of the month's end, so a
month's ranking does not change when it is computed again later):

Units. The cohort is every (ticket, unit) pair whose FIRST dispatch or
reassignment to that unit falls in the month (a ticket reassigned from A to
B in the month counts for both).
- tickets: the size of the cohort.
- on-time acknowledgement: the unit's first response after that dispatch
  (签收, or a 反馈 / 书面方案 / 退回, which also answer it) came by the ack
  deadline of that dispatch. The `late` flag the acknowledge event recorded
  decides; other responses are compared with `deadlines.ack_due(dispatch)`.
  Measured when the unit responded, or when the deadline passed while the
  unit still held the ticket without answering (that one also counts as
  `unanswered`). A ticket taken away before its deadline is not measured.
- on-time resolution: the unit's first 办结 was on time (the resolve event's
  `late` flag). Measured when the unit resolved it, or when the unit held it
  open at month end past its resolution deadline (replayed from the events:
  dispatch term, written plan, granted extensions, reopening).
- satisfaction at first ask: the first verdict on the unit's work was 满意
  (confirm) rather than 不满意 (reopen).
- reopenings: 不满意 reopenings of the unit's work before month end.
- overdue: the first 办结 was late, or the unit held the ticket open at month
  end past its deadline.
- average days to close: dispatch to 销号, over the cohort closed by month end.

Counties (offices). The cohort is every ticket entered in the ledger
(created) in the month for that office; the same measures at ticket level
(the first dispatch's acknowledgement, the first 办结, the first verdict, all
reopenings, days from entry to 销号), plus on-time dispatch: the first
交办 by `deadlines.dispatch_due(entry)`.

Order (`rank`, a pure function): higher on-time resolution rate, then higher
on-time acknowledgement rate, then fewer overdue, then higher satisfaction at
first ask, then fewer reopenings, then fewer average days to close; equal on
all of these share a rank (1, 2, 2, 4). A rate with nothing measured yet
(say every ticket still within its term) counts as 100%: nothing has gone
wrong so far. Then by name, for a stable list.

Laggards (`classify`): 不作为 when a share of the unit's tickets (by default
a fifth, `LaggardRule.inaction_unanswered_share`) passed the ack deadline
without any answer, or when none of its measured acknowledgements or
resolutions was on time; 慢作为 (if not 不作为) when an on-time rate is below
`LaggardRule.slow_below` (80%), or it left any ticket unanswered, or it has
overdue tickets.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from config.policy import Policy, default_policy
from models import deadlines
from models.tables import Office, Ticket, TicketEvent, Unit
from models.workflow import WITH_UNIT, Move, Status
from scheduler.ledger_export import CITY_LEVEL

log = logging.getLogger(__name__)

DAY = timedelta(days=1)

VERDICT_LABELS = {"inaction": "不作为", "slow": "慢作为"}

# Events that answer a dispatch (for the acknowledgement measure).
RESPONSE_KINDS = frozenset({Move.ACKNOWLEDGE, Move.FEEDBACK, Move.SUBMIT_PLAN, Move.RETURN})
RELEVANT_KINDS = (
    Move.DISPATCH, Move.REASSIGN, Move.ACKNOWLEDGE, Move.FEEDBACK, Move.SUBMIT_PLAN, Move.RETURN,
    Move.RESOLVE, Move.CONFIRM, Move.REOPEN, Move.GRANT_EXTENSION,
)


# -- results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    """The month's figures of one unit (kind "unit") or county office (kind "office")."""

    kind: str
    key: int
    name: str
    group: str = ""  # a unit's office (short name)
    tickets: int = 0
    dispatch_measured: int = 0  # offices only
    dispatch_on_time: int = 0
    ack_measured: int = 0
    ack_on_time: int = 0
    unanswered: int = 0
    resolve_measured: int = 0
    resolve_on_time: int = 0
    verdicts: int = 0
    satisfied_first: int = 0
    reopenings: int = 0
    overdue: int = 0
    closed: int = 0
    close_days_total: float = 0.0

    @property
    def dispatch_rate(self) -> float | None:
        return _rate(self.dispatch_on_time, self.dispatch_measured)

    @property
    def ack_rate(self) -> float | None:
        return _rate(self.ack_on_time, self.ack_measured)

    @property
    def resolve_rate(self) -> float | None:
        return _rate(self.resolve_on_time, self.resolve_measured)

    @property
    def satisfaction_rate(self) -> float | None:
        return _rate(self.satisfied_first, self.verdicts)

    @property
    def avg_close_days(self) -> float | None:
        return round(self.close_days_total / self.closed, 1) if self.closed else None


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True)
class LaggardRule:
    slow_below: float = 0.8  # an on-time rate under this is 慢作为
    # 不作为 when at least this share of the tickets went unanswered past the
    # ack deadline (a big unit with one late straggler is 慢作为, not 不作为)
    inaction_unanswered_share: float = 0.2


@dataclass(frozen=True)
class RankedEntry:
    rank: int
    stats: Stats
    verdict: str | None = None  # "inaction" (不作为) | "slow" (慢作为) | None
    reasons: tuple[str, ...] = ()

    @property
    def verdict_label(self) -> str:
        return VERDICT_LABELS.get(self.verdict or "", "")


@dataclass(frozen=True)
class Ranking:
    month: date  # the first day of the month
    start: datetime  # UTC, local midnight of the 1st
    end: datetime  # UTC, local midnight of the next month's 1st: the as-of time
    units: tuple[RankedEntry, ...]
    offices: tuple[RankedEntry, ...]

    @property
    def title(self) -> str:
        return f"{self.month.year}年{self.month.month}月重点项目问题办理月排名"


# -- the pure part: ordering and judging -------------------------------------------------


def _merit(s: Stats) -> tuple:
    def rate(value: float | None) -> float:
        return 1.0 if value is None else value

    avg = s.avg_close_days
    return (
        -rate(s.resolve_rate),
        -rate(s.ack_rate),
        s.overdue,
        -rate(s.satisfaction_rate),
        s.reopenings,
        math.inf if avg is None else avg,
    )


def classify(s: Stats, rule: LaggardRule = LaggardRule()) -> tuple[str | None, tuple[str, ...]]:
    """不作为 / 慢作为 and why (see the module docstring)."""
    inaction: list[str] = []
    unanswered = f"{s.unanswered}件逾期未签收"
    if s.unanswered and s.unanswered >= rule.inaction_unanswered_share * s.tickets:
        inaction.append(unanswered)
    if s.ack_measured and not s.ack_on_time and s.ack_measured > s.unanswered:
        inaction.append("按期签收率为0")
    if s.resolve_measured and not s.resolve_on_time:
        inaction.append("按期办结率为0")
    if inaction:
        return "inaction", tuple(inaction)
    slow: list[str] = []
    for label, value in (("按期交办率", s.dispatch_rate), ("按期签收率", s.ack_rate), ("按期办结率", s.resolve_rate)):
        if value is not None and value < rule.slow_below:
            slow.append(f"{label}{percent(value)}")
    if s.unanswered:
        slow.append(unanswered)
    if s.overdue:
        slow.append(f"超期{s.overdue}件")
    return ("slow", tuple(slow)) if slow else (None, ())


def rank(stats: Iterable[Stats], rule: LaggardRule = LaggardRule()) -> tuple[RankedEntry, ...]:
    """Order the figures (entries with no tickets are left out) and judge each."""
    ordered = sorted((s for s in stats if s.tickets > 0), key=lambda s: (_merit(s), s.name, s.key))
    entries: list[RankedEntry] = []
    previous = None
    for position, s in enumerate(ordered, start=1):
        merit = _merit(s)
        place = entries[-1].rank if previous == merit else position
        previous = merit
        verdict, reasons = classify(s, rule)
        entries.append(RankedEntry(place, s, verdict, reasons))
    return tuple(entries)


def percent(value: float | None) -> str:
    if value is None:
        return "—"
    text = f"{value * 100:.1f}".rstrip("0").rstrip(".")
    return f"{text}%"


# -- replaying one ticket's events -------------------------------------------------------


@dataclass
class _Event:
    at: datetime
    kind: str
    unit_id: int | None
    late: bool | None = None  # data["late"] of an acknowledge or resolve event
    due: str | None = None  # data["plan_due_at"] of a plan, data["new_due_at"] of an extension


@dataclass
class _Assignment:
    unit_id: int
    dispatched_at: datetime
    responded_at: datetime | None = None
    response_late: bool | None = None  # as recorded by the acknowledge event
    left_at: datetime | None = None  # taken away before answering
    resolved_at: datetime | None = None
    resolve_late: bool | None = None
    verdict: bool | None = None
    reopens: int = 0
    closed_at: datetime | None = None
    open_overdue: bool = False  # held open past its deadline at the as-of time


@dataclass
class _Outcome:
    """Everything the figures need from one ticket, as of a moment."""

    assignments: list[_Assignment] = field(default_factory=list)
    first_dispatch_at: datetime | None = None
    first_resolve_late: bool | None = None
    first_verdict: bool | None = None
    reopens: int = 0
    closed_at: datetime | None = None
    open_overdue: bool = False


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def replay(tier: str, events: Sequence[_Event], as_of: datetime, policy: Policy) -> _Outcome:
    """Fold a ticket's events (sorted, all before `as_of`) into its outcome."""
    out = _Outcome()
    by_unit: dict[int, _Assignment] = {}
    unit: int | None = None
    status: str | None = None
    due_start: datetime | None = None  # resolution term counted from here ...
    due_fixed: datetime | None = None  # ... unless a fixed time replaced it
    plan_due: datetime | None = None

    def resolve_due() -> datetime | None:
        if due_fixed is not None:
            return due_fixed
        return deadlines.resolve_due(due_start, tier, policy) if due_start else None

    for e in events:
        kind = e.kind
        current = by_unit.get(e.unit_id) if e.unit_id is not None else None
        if kind in (Move.DISPATCH, Move.REASSIGN):
            if unit is not None and unit != e.unit_id and unit in by_unit:
                held = by_unit[unit]
                if held.responded_at is None and held.left_at is None:
                    held.left_at = e.at
            if e.unit_id is not None and e.unit_id not in by_unit:
                by_unit[e.unit_id] = _Assignment(e.unit_id, e.at)
                out.assignments.append(by_unit[e.unit_id])
            if out.first_dispatch_at is None:
                out.first_dispatch_at = e.at
            unit, status = e.unit_id, Status.DISPATCHED
            due_start, due_fixed = e.at, plan_due
        elif kind in RESPONSE_KINDS:
            if current is not None and current.responded_at is None:
                current.responded_at = e.at
                if kind == Move.ACKNOWLEDGE and e.late is not None:
                    current.response_late = e.late
            if kind == Move.RETURN:
                status = Status.RETURNED
                if current is not None and current.left_at is None:
                    current.left_at = e.at
            else:
                status = Status.ACKNOWLEDGED if kind == Move.ACKNOWLEDGE else Status.IN_PROGRESS
            if kind == Move.SUBMIT_PLAN:
                plan_due = _parse_time(e.due) or plan_due
                due_fixed = plan_due
        elif kind == Move.RESOLVE:
            if e.late is not None:
                late = e.late
            else:
                due = resolve_due()
                late = bool(due and e.at > due)
            if current is not None and current.resolved_at is None:
                current.resolved_at, current.resolve_late = e.at, late
            if out.first_resolve_late is None:
                out.first_resolve_late = late
            status = Status.RESOLVED
        elif kind == Move.CONFIRM:
            if current is not None:
                current.closed_at = current.closed_at or e.at
                if current.verdict is None:
                    current.verdict = True
            if out.first_verdict is None:
                out.first_verdict = True
            out.closed_at = out.closed_at or e.at
            status = Status.CLOSED
        elif kind == Move.REOPEN:
            if current is not None:
                current.reopens += 1
                if current.verdict is None:
                    current.verdict = False
            if out.first_verdict is None:
                out.first_verdict = False
            out.reopens += 1
            status = Status.IN_PROGRESS
            due_start, due_fixed = e.at, None
        elif kind == Move.GRANT_EXTENSION:
            due_fixed = _parse_time(e.due) or due_fixed

    if status in WITH_UNIT and unit in by_unit:
        due = resolve_due()
        if due is not None and due < as_of:
            by_unit[unit].open_overdue = True
            out.open_overdue = True
    return out


# -- tallying --------------------------------------------------------------------------


class _Tally:
    __slots__ = tuple(f.name for f in Stats.__dataclass_fields__.values() if f.name not in ("kind", "key", "name", "group"))

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def freeze(self, kind: str, key: int, name: str, group: str = "") -> Stats:
        return Stats(kind=kind, key=key, name=name, group=group, **{n: getattr(self, n) for n in self.__slots__})


def _ack_outcome(a: _Assignment, as_of: datetime, policy: Policy) -> tuple[bool, bool, bool]:
    """(measured, on time, unanswered) of one assignment's acknowledgement."""
    if a.responded_at is not None and a.response_late is not None:
        return True, not a.response_late, False
    due = deadlines.ack_due(a.dispatched_at, policy)
    if a.responded_at is not None:
        return True, a.responded_at <= due, False
    if due < (a.left_at or as_of):
        return True, False, True
    return False, False, False


def _count_assignment(t: _Tally, a: _Assignment, as_of: datetime, policy: Policy) -> None:
    t.tickets += 1
    _count_common(t, _ack_outcome(a, as_of, policy), bool(a.resolve_late) if a.resolved_at is not None else None,
                  a.open_overdue, a.verdict, a.reopens, a.closed_at, a.dispatched_at)


def _count_ticket(t: _Tally, created_at: datetime, out: _Outcome, as_of: datetime, policy: Policy) -> None:
    t.tickets += 1
    dispatch_due = deadlines.dispatch_due(created_at, policy)
    if out.first_dispatch_at is not None:
        t.dispatch_measured += 1
        t.dispatch_on_time += out.first_dispatch_at <= dispatch_due
    elif dispatch_due < as_of:
        t.dispatch_measured += 1
    ack = _ack_outcome(out.assignments[0], as_of, policy) if out.assignments else (0, 0, 0)
    _count_common(t, ack, out.first_resolve_late, out.open_overdue, out.first_verdict, out.reopens,
                  out.closed_at, created_at)


def _count_common(t: _Tally, ack: tuple, resolve_late: bool | None, open_overdue: bool, verdict: bool | None,
                  reopens: int, closed_at: datetime | None, since: datetime) -> None:
    """What units and counties count alike: acknowledgement, resolution, satisfaction, closing.
    `resolve_late` is None while not resolved."""
    measured, on_time, unanswered = ack
    t.ack_measured += measured
    t.ack_on_time += on_time
    t.unanswered += unanswered
    if resolve_late is not None:
        t.resolve_measured += 1
        t.resolve_on_time += not resolve_late
    elif open_overdue:
        t.resolve_measured += 1
    t.overdue += bool(resolve_late) or open_overdue
    if verdict is not None:
        t.verdicts += 1
        t.satisfied_first += verdict
    t.reopenings += reopens
    if closed_at is not None:
        t.closed += 1
        t.close_days_total += (closed_at - since) / DAY


# -- the database part -----------------------------------------------------------------


def month_bounds(month: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """UTC instants of local midnight on the month's first day and the next month's."""
    first = month.replace(day=1)
    following = deadlines.add_months(first, 1)
    return (
        datetime.combine(first, time(0), tzinfo=tz).astimezone(timezone.utc),
        datetime.combine(following, time(0), tzinfo=tz).astimezone(timezone.utc),
    )


async def month_stats(
    session: AsyncSession,
    month: date,
    tz: ZoneInfo,
    *,
    policy: Policy | None = None,
    office_ids: Iterable[int] | None = None,
) -> tuple[list[Stats], list[Stats], datetime, datetime]:
    """(unit figures, office figures, start, end) of a month: four set-based queries."""
    policy = policy or default_policy()
    start, end = month_bounds(month, tz)
    offices_filter = sorted(set(office_ids)) if office_ids is not None else None

    dispatched = (
        select(TicketEvent.ticket_id)
        .where(TicketEvent.kind.in_([str(Move.DISPATCH), str(Move.REASSIGN)]),
               TicketEvent.at >= start, TicketEvent.at < end)
    )
    created = select(Ticket.id.label("ticket_id")).where(Ticket.created_at >= start, Ticket.created_at < end)
    if offices_filter is not None:
        dispatched = dispatched.join(Ticket, Ticket.id == TicketEvent.ticket_id).where(
            Ticket.office_id.in_(offices_filter))
        created = created.where(Ticket.office_id.in_(offices_filter))
    cohort = union(dispatched, created).subquery()
    cohort_ids = select(cohort.c.ticket_id)

    ticket_rows = (await session.execute(
        select(Ticket.id, Ticket.office_id, Ticket.tier, Ticket.created_at).where(Ticket.id.in_(cohort_ids))
    )).all()
    # Only the JSON values the replay needs, extracted by the database.
    late = TicketEvent.data["late"].as_boolean()
    due = func.coalesce(TicketEvent.data["plan_due_at"].as_string(), TicketEvent.data["new_due_at"].as_string())
    event_rows = (await session.execute(
        select(TicketEvent.ticket_id, TicketEvent.at, TicketEvent.kind, TicketEvent.unit_id, late, due)
        .where(TicketEvent.ticket_id.in_(cohort_ids), TicketEvent.at < end,
               TicketEvent.kind.in_([str(k) for k in RELEVANT_KINDS]))
        .order_by(TicketEvent.ticket_id, TicketEvent.at, TicketEvent.id)
    )).all()

    events: dict[int, list[_Event]] = defaultdict(list)
    for ticket_id, at, kind, unit_id, late_flag, due_text in event_rows:
        events[ticket_id].append(_Event(at, kind, unit_id, None if late_flag is None else bool(late_flag), due_text))

    unit_tallies: dict[int, _Tally] = defaultdict(_Tally)
    office_tallies: dict[int, _Tally] = defaultdict(_Tally)
    for ticket_id, office_id, tier, created_at in ticket_rows:
        out = replay(tier, events.get(ticket_id, ()), end, policy)
        for a in out.assignments:
            if start <= a.dispatched_at < end:
                _count_assignment(unit_tallies[a.unit_id], a, end, policy)
        if start <= created_at < end:
            _count_ticket(office_tallies[office_id], created_at, out, end, policy)

    offices = {o.id: o for o in (await session.scalars(select(Office))).all()}
    units = {}
    if unit_tallies:
        units = {u.id: u for u in (await session.scalars(select(Unit).where(Unit.id.in_(list(unit_tallies))))).all()}
    unit_stats = [
        tally.freeze("unit", unit_id, units[unit_id].name if unit_id in units else f"单位{unit_id}",
                     offices[units[unit_id].office_id].short_name if unit_id in units else "")
        for unit_id, tally in unit_tallies.items()
    ]
    office_stats = [
        tally.freeze("office", office_id, office_label(offices[office_id]), offices[office_id].short_name)
        for office_id, tally in office_tallies.items()
    ]
    return unit_stats, office_stats, start, end


def office_label(office: Office) -> str:
    return office.county or (CITY_LEVEL if office.level == "city" else office.short_name)


async def monthly_ranking(
    session: AsyncSession,
    month: date,
    tz: ZoneInfo,
    *,
    policy: Policy | None = None,
    office_ids: Iterable[int] | None = None,
    rule: LaggardRule = LaggardRule(),
) -> Ranking:
    """The ranking of the month containing `month` (any day of it)."""
    unit_stats, office_stats, start, end = await month_stats(
        session, month, tz, policy=policy, office_ids=office_ids)
    return Ranking(month.replace(day=1), start, end, rank(unit_stats, rule), rank(office_stats, rule))


# -- outputs ---------------------------------------------------------------------------


def _unit_line(e: RankedEntry) -> str:
    s = e.stats
    parts = [
        f"交办{s.tickets}件",
        f"按期签收{percent(s.ack_rate)}",
        f"按期办结{percent(s.resolve_rate)}",
        f"首次满意{percent(s.satisfaction_rate)}",
        f"重新办理{s.reopenings}次",
        f"超期{s.overdue}件",
        f"平均办结{s.avg_close_days}天" if s.avg_close_days is not None else "平均办结—",
    ]
    mark = f" 〔{e.verdict_label}〕" if e.verdict else ""
    group = f"（{s.group}）" if s.group else ""
    return f"{e.rank}. **{s.name}**{group}{mark}：" + "，".join(parts)


def _office_line(e: RankedEntry) -> str:
    s = e.stats
    parts = [
        f"录入{s.tickets}件",
        f"按期交办{percent(s.dispatch_rate)}",
        f"按期签收{percent(s.ack_rate)}",
        f"按期办结{percent(s.resolve_rate)}",
        f"首次满意{percent(s.satisfaction_rate)}",
        f"重新办理{s.reopenings}次",
        f"超期{s.overdue}件",
        f"平均办结{s.avg_close_days}天" if s.avg_close_days is not None else "平均办结—",
    ]
    mark = f" 〔{e.verdict_label}〕" if e.verdict else ""
    return f"{e.rank}. **{s.name}**{mark}：" + "，".join(parts)


def render_ranking_markdown(ranking: Ranking, tz: ZoneInfo | None = None) -> str:
    """The 月排名 / 月通报 text: both rankings, then the units named for 不作为
    and 慢作为 with their reasons."""
    tz = tz or ZoneInfo("Asia/Shanghai")
    as_of = ranking.end.astimezone(tz)
    unit_total = sum(e.stats.tickets for e in ranking.units)
    office_total = sum(e.stats.tickets for e in ranking.offices)
    lines = [
        f"## {ranking.title}（月通报）",
        f"> 统计口径：承办单位按本月首次交办的问题计（{unit_total}件次），县区按本月录入台账的问题计"
        f"（{office_total}件）；办理情况截至{as_of.month}月{as_of.day}日0时。",
        "",
        "### 一、承办单位排名",
    ]
    lines += [_unit_line(e) for e in ranking.units] or ["本月无交办问题。"]
    lines += ["", "### 二、县区排名"]
    lines += [_office_line(e) for e in ranking.offices] or ["本月无录入问题。"]
    lines += ["", "### 三、通报"]
    named = False
    for verdict in ("inaction", "slow"):
        for title, entries in (("承办单位", ranking.units), ("县区", ranking.offices)):
            flagged = [e for e in entries if e.verdict == verdict]
            if flagged:
                named = True
                who = "；".join(f"{e.stats.name}（{'，'.join(e.reasons)}）" for e in flagged)
                lines.append(f"**{VERDICT_LABELS[verdict]}**（{title}）：{who}")
    if not named:
        lines.append("本月未发现不作为、慢作为情形。")
    return "\n".join(lines)


UNIT_COLUMNS = ("排名", "单位", "所属", "交办件次", "按期签收率", "按期办结率", "首次满意率", "重新办理次数",
                "超期件数", "逾期未签收件数", "已销号件数", "平均办结天数", "评价", "说明")
OFFICE_COLUMNS = ("排名", "县区", "录入件数", "按期交办率", "按期签收率", "按期办结率", "首次满意率", "重新办理次数",
                  "超期件数", "逾期未签收件数", "已销号件数", "平均办结天数", "评价", "说明")


def _sheet_values(e: RankedEntry, office: bool) -> list[Any]:
    s = e.stats
    head: list[Any] = [e.rank, s.name] + ([] if office else [s.group]) + [s.tickets]
    rates = ([s.dispatch_rate] if office else []) + [s.ack_rate, s.resolve_rate, s.satisfaction_rate]
    return head + rates + [s.reopenings, s.overdue, s.unanswered, s.closed, s.avg_close_days,
                           e.verdict_label, "；".join(e.reasons)]


def write_ranking_xlsx(ranking: Ranking, path: str | Path) -> Path:
    """Two sheets, 承办单位排名 and 县区排名: a title row, a frozen header with
    filters, rates as percentages."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    path = Path(path)
    wb = Workbook()
    sheets = (("承办单位排名", UNIT_COLUMNS, ranking.units, False), ("县区排名", OFFICE_COLUMNS, ranking.offices, True))
    for index, (name, columns, entries, office) in enumerate(sheets):
        ws = wb.active if index == 0 else wb.create_sheet()
        ws.title = name
        last = get_column_letter(len(columns))
        ws.append([f"{ranking.title}（{name}）"])
        ws.merge_cells(f"A1:{last}1")
        ws["A1"].font = Font(bold=True, size=14)
        ws["A1"].alignment = Alignment(horizontal="center")
        ws.append(list(columns))
        for cell in ws[2]:
            cell.font = Font(bold=True)
            cell.fill = PatternFill("solid", fgColor="D9E1F2")
            cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        for e in entries:
            ws.append(_sheet_values(e, office))
            row = ws.max_row
            for col, header in enumerate(columns, start=1):
                cell = ws.cell(row=row, column=col)
                if header.endswith("率"):
                    cell.number_format = "0.0%"
                elif header == "平均办结天数":
                    cell.number_format = "0.0"
                if header == "评价" and e.verdict:
                    cell.font = Font(bold=True, color="C00000" if e.verdict == "inaction" else "C65911")
        for col, header in enumerate(columns, start=1):
            width = {"单位": 26, "县区": 12, "所属": 14, "说明": 40}.get(header, 11)
            ws.column_dimensions[get_column_letter(col)].width = width
        ws.freeze_panes = "A3"
        ws.auto_filter.ref = f"A2:{last}{max(ws.max_row, 2)}"
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


# -- the chart -------------------------------------------------------------------------

# Where a Chinese font is looked for, in order. The first is the project's
# dependency (pylopdf-fonts-zh-cn: Noto Sans SC, SIL OFL 1.1); the others are
# Debian packages (fonts-noto-cjk, fonts-wqy-microhei, fonts-wqy-zenhei).
SYSTEM_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
)


class FontMissing(RuntimeError):
    pass


def chinese_font_path() -> Path:
    """A font file that renders Simplified Chinese; FontMissing if there is none."""
    try:
        import pylopdf_fonts_zh_cn
    except ImportError:
        pass
    else:
        path = Path(pylopdf_fonts_zh_cn.sans_path())
        if path.is_file():
            return path
    for candidate in SYSTEM_FONTS:
        if Path(candidate).is_file():
            return Path(candidate)
    raise FontMissing("no Chinese font: install the pylopdf-fonts-zh-cn package (or Debian's fonts-noto-cjk)")


@lru_cache(maxsize=8)
def _cmap(path: str) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    font = TTFont(path, lazy=True, fontNumber=0) if path.lower().endswith((".ttc", ".otc")) else TTFont(path, lazy=True)
    try:
        return frozenset(font.getBestCmap())
    finally:
        font.close()


def missing_glyphs(text: str, font_path: str | Path) -> set[str]:
    """The characters of `text` (other than white space) that the font has no glyph for."""
    cmap = _cmap(str(font_path))
    return {ch for ch in text if not ch.isspace() and ord(ch) not in cmap}


def chart_texts(ranking: Ranking) -> list[str]:
    """Every string the chart draws (for checking the font covers them)."""
    texts = [ranking.title, "承办单位", "县区", "按期签收率", "按期办结率", "首次满意率", "本月无数据",
             "0%", "20%", "40%", "60%", "80%", "100%"]
    for entries, office in ((ranking.units, False), (ranking.offices, True)):
        for e in entries:
            texts.append(_chart_label(e))
            texts.append(_chart_note(e, office))
            texts += [percent(e.stats.ack_rate), percent(e.stats.resolve_rate), percent(e.stats.satisfaction_rate)]
    return texts


def _chart_label(e: RankedEntry) -> str:
    mark = f"〔{e.verdict_label}〕" if e.verdict else ""
    return f"{e.rank}. {e.stats.name}{mark}"


def _chart_note(e: RankedEntry, office: bool) -> str:
    s = e.stats
    return f"{'录入' if office else '交办'}{s.tickets}件 超期{s.overdue}件"


def render_ranking_chart(ranking: Ranking, path: str | Path, *, font_path: str | Path | None = None) -> Path:
    """A PNG of both rankings: per unit and per county, the on-time
    acknowledgement, on-time resolution and first-time satisfaction rates as
    horizontal bars in rank order, 不作为 / 慢作为 marked in the labels.

    Draws with the Agg canvas on a Figure of its own (no pyplot, no global
    backend), the Chinese font loaded by file path."""
    from matplotlib import font_manager, rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    path = Path(path)
    font_file = Path(font_path) if font_path else chinese_font_path()
    if str(font_file) not in {entry.fname for entry in font_manager.fontManager.ttflist}:
        font_manager.fontManager.addfont(str(font_file))
    family = font_manager.FontProperties(fname=str(font_file)).get_name()
    missing = set().union(*(missing_glyphs(t, font_file) for t in chart_texts(ranking)))
    if missing:
        log.warning("chart font %s lacks glyphs for %s", font_file.name, "".join(sorted(missing)))

    panels = [("承办单位", ranking.units, False), ("县区", ranking.offices, True)]
    rows = [max(len(entries), 1) for _, entries, _ in panels]
    series = (("按期签收率", "ack_rate", "#4472C4"), ("按期办结率", "resolve_rate", "#70AD47"),
              ("首次满意率", "satisfaction_rate", "#FFC000"))
    with rc_context({"font.family": [family], "font.sans-serif": [family], "axes.unicode_minus": False}):
        fig = Figure(figsize=(11, 1.2 + 0.55 * sum(rows) + 0.9 * len(panels)), dpi=110, layout="constrained")
        FigureCanvasAgg(fig)
        fig.suptitle(ranking.title, fontsize=15)
        axes = fig.subplots(len(panels), 1, gridspec_kw={"height_ratios": rows})
        for ax, (title, entries, office) in zip(axes, panels):
            ax.set_title(title, loc="left", fontsize=12)
            ax.set_xlim(0, 1.42)
            ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
            ax.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
            ax.grid(axis="x", color="#DDDDDD", linewidth=0.6)
            ax.set_axisbelow(True)
            for side in ("top", "right"):
                ax.spines[side].set_visible(False)
            if not entries:
                ax.text(0.5, 0.5, "本月无数据", ha="center", va="center", transform=ax.transAxes, fontsize=12)
                ax.set_yticks([])
                continue
            height = 0.8 / len(series)
            positions = list(range(len(entries)))
            for index, (label, attribute, colour) in enumerate(series):
                values = [getattr(e.stats, attribute) for e in entries]
                ys = [p - 0.4 + height * (index + 0.5) for p in positions]
                ax.barh(ys, [0 if v is None else v for v in values], height=height, color=colour, label=label)
                for y, v in zip(ys, values):
                    ax.text((v or 0) + 0.01, y, percent(v), va="center", fontsize=7, color="#555555")
            ax.set_yticks(positions)
            labels = ax.set_yticklabels([_chart_label(e) for e in entries])
            for tick, e in zip(labels, entries):
                if e.verdict == "inaction":
                    tick.set_color("#C00000")
                elif e.verdict == "slow":
                    tick.set_color("#C65911")
            for p, e in zip(positions, entries):
                ax.text(1.1, p, _chart_note(e, office), va="center", fontsize=9, color="#444444")
            ax.set_ylim(len(entries) - 0.5, -0.5)  # rank 1 at the top, no empty margin
            ax.legend(loc="lower right", fontsize=8, ncols=3, frameon=False,
                      bbox_to_anchor=(1.0, 1.0))
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    return path
