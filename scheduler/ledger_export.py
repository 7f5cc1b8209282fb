"""The ledger (台账) as rows and as an Excel workbook.

`ledger_rows(session, ...)` reads the tickets with everything a ledger line
shows in one query (joins plus two correlated sub-selects for the latest
progress note, no N+1); `write_ledger_xlsx(rows, path, tz)` writes the
workbook offices use. Times in a row are aware UTC; the workbook shows them as
naive local times (Excel has no time zones) formatted yyyy-mm-dd hh:mm.

The Chinese labels of statuses, tiers and the 一二三 levels live here and are
shared by the digest and the ranking.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from copy import copy
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from config.policy import Policy, default_policy
from config.vocabulary import TIERS, UNIT_TYPES
from models.deadlines import overdue_days
from models.tables import Office, Person, Project, Ticket, TicketEvent, Unit
from models.workflow import OPEN_STATUSES, WITH_UNIT, Move, Status

SHANGHAI = ZoneInfo("Asia/Shanghai")

STATUS_LABELS: dict[str, str] = {
    Status.REPORTED: "待交办",
    Status.DISPATCHED: "已交办",
    Status.ACKNOWLEDGED: "已签收",
    Status.IN_PROGRESS: "办理中",
    Status.RESOLVED: "已办结",
    Status.CLOSED: "已销号",
    Status.RETURNED: "已退回",
}

# 一二三: what each level of the ladder means.
ESCALATION_LABELS: dict[int, str] = {
    1: "满1个月无进展，属地专题报告",
    2: "满2个月无进展，市级专项督办",
    3: "满3个月无进展，上报市委、市政府",
}

# Shown when a ticket has no project (an office-entered item).
NO_PROJECT = "（未关联项目）"
# 所属县区 of a project that belongs to a city-level office.
CITY_LEVEL = "市本级"

LEDGER_TITLE = "重点项目问题台账"

# Events whose note is the unit's latest word on the ticket (办理进展).
PROGRESS_KINDS = (Move.FEEDBACK, Move.SUBMIT_PLAN, Move.RESOLVE, Move.RETURN)


@dataclass(frozen=True)
class LedgerRow:
    ticket_id: int
    number: str  # 编号
    project: str  # 项目名称
    county: str  # 所属县区
    text: str  # 问题描述
    category: str  # 问题类别
    tier: str  # 处理时限类型
    unit: str  # 责任单位
    contact: str  # 13710联系人
    dispatched_at: datetime | None  # 交办时间 (aware UTC)
    acknowledged_at: datetime | None  # 签收时间
    resolve_due_at: datetime | None  # 办理时限
    progress: str  # 办理进展
    resolved_at: datetime | None  # 办结时间
    closed: bool  # 是否销号
    flagged: bool  # 是否挂牌
    overdue_days: int  # 超期天数
    remarks: str  # 备注
    status: str  # the Status value, for callers that filter or colour
    office_id: int
    created_at: datetime


# -- reading ---------------------------------------------------------------------------


def parse_statuses(status: str | Iterable[str] | None) -> frozenset[str] | None:
    """A status filter from what a user or the CLI gave: a Status value
    ("in_progress"), its Chinese label ("办理中"), "open" (every open status),
    or a collection of those. None means every status. Unknown names raise
    ValueError naming the accepted ones."""
    if status is None:
        return None
    names = [status] if isinstance(status, str) else list(status)
    by_label = {label: value for value, label in STATUS_LABELS.items()}
    found: set[str] = set()
    for name in names:
        name = name.strip()
        if name in ("open", "在办", "未销号"):
            found |= {str(s) for s in OPEN_STATUSES}
        elif name in {str(s) for s in Status}:
            found.add(name)
        elif name in by_label:
            found.add(str(by_label[name]))
        else:
            accepted = ", ".join([*(str(s) for s in Status), "open", *STATUS_LABELS.values()])
            raise ValueError(f"unknown status {name!r}; expected one of {accepted}")
    return frozenset(found)


def _day_start(value: date | datetime, tz: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()}: pass timezone-aware times or dates")
        return value
    return datetime.combine(value, time(0), tzinfo=tz)


def _ledger_query(
    office_ids: Iterable[int] | None,
    date_from: date | datetime | None,
    date_to: date | datetime | None,
    statuses: frozenset[str] | None,
    tz: ZoneInfo,
) -> Select:
    project_office = aliased(Office, name="project_office")
    ticket_office = aliased(Office, name="ticket_office")
    contact = aliased(Person, name="contact")
    latest = (
        select(TicketEvent)
        .where(TicketEvent.ticket_id == Ticket.id, TicketEvent.kind.in_([str(k) for k in PROGRESS_KINDS]))
        .order_by(TicketEvent.at.desc(), TicketEvent.id.desc())
        .limit(1)
    )
    latest_note = latest.with_only_columns(TicketEvent.note).scalar_subquery()
    latest_at = latest.with_only_columns(TicketEvent.at).scalar_subquery()
    stmt = (
        select(
            Ticket,
            Project.name.label("project_name"),
            project_office.county.label("project_county"),
            project_office.level.label("project_office_level"),
            ticket_office.county.label("ticket_county"),
            ticket_office.short_name.label("ticket_office_name"),
            Unit.name.label("unit_name"),
            Unit.unit_type.label("unit_type"),
            contact.name.label("contact_name"),
            contact.phone.label("contact_phone"),
            latest_note.label("progress_note"),
            latest_at.label("progress_at"),
        )
        .join(ticket_office, ticket_office.id == Ticket.office_id)
        .outerjoin(Project, Project.id == Ticket.project_id)
        .outerjoin(project_office, project_office.id == Project.office_id)
        .outerjoin(Unit, Unit.id == Ticket.unit_id)
        .outerjoin(contact, contact.id == Unit.contact_id)
        .order_by(Ticket.created_at, Ticket.id)
    )
    if office_ids is not None:
        stmt = stmt.where(Ticket.office_id.in_(sorted(set(office_ids))))
    if date_from is not None:
        stmt = stmt.where(Ticket.created_at >= _day_start(date_from, tz))
    if date_to is not None:
        if isinstance(date_to, datetime):
            stmt = stmt.where(Ticket.created_at <= _day_start(date_to, tz))
        else:  # a date is inclusive: up to the start of the next local day
            stmt = stmt.where(Ticket.created_at < _day_start(date.fromordinal(date_to.toordinal() + 1), tz))
    if statuses is not None:
        stmt = stmt.where(Ticket.status.in_(sorted(statuses)))
    return stmt


async def ledger_rows(
    session: AsyncSession,
    *,
    office_ids: Iterable[int] | None = None,
    date_from: date | datetime | None = None,
    date_to: date | datetime | None = None,
    status: str | Iterable[str] | None = None,
    now: datetime,
    policy: Policy | None = None,
) -> list[LedgerRow]:
    """The ledger lines, oldest entry first.

    office_ids: the tickets of these offices only (pass the office and the
    offices below it, e.g. `repo.descendants`); date_from / date_to: the
    ledger entry (creation) time, local dates inclusive or aware datetimes;
    status: see `parse_statuses`; now: for 超期天数 of open tickets.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    policy = policy or default_policy()
    tz = policy.clock.tz
    stmt = _ledger_query(office_ids, date_from, date_to, parse_statuses(status), tz)
    result = await session.execute(stmt)
    return [_row(r, now, policy) for r in result.all()]


def _row(r: Any, now: datetime, policy: Policy) -> LedgerRow:
    t: Ticket = r.Ticket
    status = t.status
    if status in WITH_UNIT and t.resolve_due_at is not None:
        late_days = overdue_days(t.resolve_due_at, now, policy)
    elif status in (Status.RESOLVED, Status.CLOSED) and t.resolve_due_at and t.resolved_at:
        late_days = overdue_days(t.resolve_due_at, t.resolved_at, policy)
    else:
        late_days = 0
    county = r.project_county or r.ticket_county
    if county is None:
        county = CITY_LEVEL if (r.project_office_level or "city") == "city" else (r.ticket_office_name or "")
    return LedgerRow(
        ticket_id=t.id,
        number=t.number,
        project=r.project_name or NO_PROJECT,
        county=county,
        text=t.text,
        category=_category(t, r.unit_type),
        tier=TIERS.get(t.tier, t.tier),
        unit=r.unit_name or ("（待交办）" if status in (Status.REPORTED,) else ""),
        contact=_contact(r.contact_name, r.contact_phone),
        dispatched_at=t.dispatched_at,
        acknowledged_at=t.acknowledged_at,
        resolve_due_at=t.resolve_due_at if status != Status.REPORTED else None,
        progress=_progress(status, r.progress_note, r.progress_at, policy.clock.tz),
        resolved_at=t.resolved_at,
        closed=status == Status.CLOSED,
        flagged=bool(t.flagged),
        overdue_days=late_days,
        remarks=remarks(t, now, policy),
        status=status,
        office_id=t.office_id,
        created_at=t.created_at,
    )


def _category(t: Ticket, unit_type: str | None) -> str:
    types = [t.unit_type or unit_type, *(t.secondary_unit_types or [])]
    labels = []
    for key in types:
        if key and UNIT_TYPES.get(key, key) not in labels:
            labels.append(UNIT_TYPES.get(key, key))
    return "、".join(labels) or "待分类"


def _contact(name: str | None, phone: str | None) -> str:
    if not name:
        return ""
    return f"{name}（{phone}）" if phone else name


def _progress(status: str, note: str | None, at: datetime | None, tz: ZoneInfo) -> str:
    label = STATUS_LABELS.get(status, status)
    if not note:
        return label
    when = f"（{at.astimezone(tz):%m-%d}）" if at else ""
    return f"{label}：{note.strip()}{when}"


def remarks(t: Ticket, now: datetime, policy: Policy) -> str:
    """备注: flag, 一二三, extensions, written plan, reopenings, dispatch delay."""
    tz = policy.clock.tz
    parts: list[str] = []
    if t.flagged and t.flag:
        details = [f"{name}：{t.flag[key]}" for key, name in
                   (("leader", "责任领导"), ("person", "责任人"), ("due", "时限")) if t.flag.get(key)]
        parts.append("挂牌督办" + (f"（{'，'.join(details)}）" if details else ""))
    elif t.flag:
        parts.append("已摘牌")
    if t.escalation_level:
        parts.append(f"一二三督办：{ESCALATION_LABELS.get(t.escalation_level, str(t.escalation_level))}")
    granted = [e for e in (t.extensions or []) if e.get("granted")]
    refused = [e for e in (t.extensions or []) if not e.get("granted")]
    if granted:
        days = sum(int(e.get("days") or 0) for e in granted)
        last = _local_day(granted[-1].get("new_due_at"), tz)
        parts.append(f"已延期{len(granted)}次共{days}天" + (f"（至{last}）" if last else ""))
    if refused:
        parts.append(f"延期申请未批准{len(refused)}次")
    if t.pending_extension:
        parts.append(f"申请延期{t.pending_extension.get('days')}天待审批")
    if t.plan and t.plan.get("due_at"):
        parts.append(f"已报书面方案（时间节点{_local_day(t.plan['due_at'], tz)}）")
    if t.reopen_count:
        parts.append(f"不满意重新办理{t.reopen_count}次")
    if t.status in (Status.REPORTED, Status.RETURNED) and t.dispatch_due_at and now > t.dispatch_due_at:
        parts.append(f"交办超期{overdue_days(t.dispatch_due_at, now, policy)}天")
    return "；".join(parts)


def _local_day(iso: str | None, tz: ZoneInfo) -> str:
    if not iso:
        return ""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return f"{moment.astimezone(tz):%Y-%m-%d}"


# -- writing ---------------------------------------------------------------------------

DATE_FORMAT = "yyyy-mm-dd hh:mm"


@dataclass(frozen=True)
class Column:
    header: str
    width: float
    field: str  # LedgerRow attribute, or "seq"
    kind: str = "text"  # text | wrap | date | bool | int


LEDGER_COLUMNS: tuple[Column, ...] = (
    Column("序号", 6, "seq", "int"),
    Column("编号", 16, "number"),
    Column("项目名称", 24, "project", "wrap"),
    Column("所属县区", 10, "county"),
    Column("问题描述", 48, "text", "wrap"),
    Column("问题类别", 14, "category", "wrap"),
    Column("处理时限类型", 15, "tier"),
    Column("责任单位", 22, "unit", "wrap"),
    Column("13710联系人", 20, "contact", "wrap"),
    Column("交办时间", 17, "dispatched_at", "date"),
    Column("签收时间", 17, "acknowledged_at", "date"),
    Column("办理时限", 17, "resolve_due_at", "date"),
    Column("办理进展", 40, "progress", "wrap"),
    Column("办结时间", 17, "resolved_at", "date"),
    Column("是否销号", 9, "closed", "bool"),
    Column("是否挂牌", 9, "flagged", "bool"),
    Column("超期天数", 9, "overdue_days", "int"),
    Column("备注", 36, "remarks", "wrap"),
)
LEDGER_HEADERS: tuple[str, ...] = tuple(c.header for c in LEDGER_COLUMNS)


def excel_local(moment: datetime | None, tz: ZoneInfo) -> datetime | None:
    """An aware time as the naive local time Excel stores (to the minute)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()}")
    return moment.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0)


def write_ledger_xlsx(
    rows: Sequence[LedgerRow], path: str | Path, tz: ZoneInfo = SHANGHAI, *, title: str | None = None
) -> Path:
    """Write the ledger workbook: a title row, a frozen header with filters,
    column widths, wrapped long texts and real date cells. Returns the path."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
    from openpyxl.utils import get_column_letter

    path = Path(path)
    wb = Workbook()
    ws = wb.active
    ws.title = LEDGER_TITLE
    last_col = get_column_letter(len(LEDGER_COLUMNS))

    ws.append([title or LEDGER_TITLE])
    ws.merge_cells(f"A1:{last_col}1")
    ws["A1"].font = Font(bold=True, size=14)
    ws["A1"].alignment = Alignment(horizontal="center", vertical="center")
    ws.row_dimensions[1].height = 28

    thin = Side(style="thin", color="999999")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    ws.append(list(LEDGER_HEADERS))
    header_fill = PatternFill("solid", fgColor="D9E1F2")
    for cell in ws[2]:
        cell.font = Font(bold=True)
        cell.fill = header_fill
        cell.border = border
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    ws.row_dimensions[2].height = 30

    # Each kind of cell is styled once on a template cell and the data cells
    # get a copy of its style array (openpyxl's idiom for copying styles),
    # several times faster than setting font, border and alignment per cell.
    templates = {}
    specs = {
        "text": (Alignment(vertical="top"), "General", None),
        "wrap": (Alignment(wrap_text=True, vertical="top"), "General", None),
        "date": (Alignment(vertical="top"), DATE_FORMAT, None),
        "bool": (Alignment(horizontal="center", vertical="top"), "General", None),
        "int": (Alignment(horizontal="center", vertical="top"), "General", None),
        "late": (Alignment(horizontal="center", vertical="top"), "General", Font(color="C00000", bold=True)),
    }
    scratch = wb.create_sheet("scratch")
    for index, (kind, (alignment, number_format, font)) in enumerate(specs.items(), start=1):
        cell = scratch.cell(row=1, column=index)
        cell.border, cell.alignment, cell.number_format = border, alignment, number_format
        if font is not None:
            cell.font = font
        templates[kind] = cell._style
    wb.remove(scratch)

    kinds = [column.kind for column in LEDGER_COLUMNS]
    late_column = next(i for i, c in enumerate(LEDGER_COLUMNS) if c.field == "overdue_days")
    for seq, row in enumerate(rows, start=1):
        values = []
        for column in LEDGER_COLUMNS:
            value = seq if column.field == "seq" else getattr(row, column.field)
            if column.kind == "date":
                value = excel_local(value, tz)
            elif column.kind == "bool":
                value = "是" if value else "否"
            values.append(value)
        ws.append(values)
        for index, kind in enumerate(kinds):
            if index == late_column and row.overdue_days > 0:
                kind = "late"
            ws.cell(row=seq + 2, column=index + 1)._style = copy(templates[kind])

    for index, column in enumerate(LEDGER_COLUMNS, start=1):
        ws.column_dimensions[get_column_letter(index)].width = column.width
    ws.freeze_panes = "A3"
    ws.auto_filter.ref = f"A2:{last_col}{max(len(rows) + 2, 2)}"
    ws.print_title_rows = "2:2"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path
