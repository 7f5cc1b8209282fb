"""Synthetic tickets and events for the benchmarks, bulk-inserted fast.

    await generate(engine, 1_000_000, open_fraction=0.1, due_now=10_000)

makes its own organisation (a city office with four counties, their units
and 13710 contacts, liaisons and projects: created once per database, reused
after), then `n_tickets` tickets with a consistent event trail:

- closed tickets (1 - open_fraction), entered over the `span_days` before
  `now` and taken through dispatch, 签收 (some late), 反馈, 办结 (some late),
  sometimes 不满意 and a second 办结, and 销号;
- open tickets, spread over the open statuses, each with the deadline of its
  current stage set and `next_action_at` equal to it: exactly `due_now` of
  them are due at `now` (next_action_at <= now, most a little late, a few
  stalled for months and escalated), the rest due within their term after
  `now`; some are flagged (挂牌督办).

Rows go in through the driver's executemany in batches (no ORM, no
per-value type processing: times are pre-formatted per dialect and cached per
minute), so a million tickets with their events load in about a minute on
SQLite. Times are whole minutes; the deadlines follow the default policy's
shape (18:00 local end of day, Asia/Shanghai, natural days), simplified.
"""

from __future__ import annotations

import json
import random
import time as wallclock
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from config.vocabulary import UNIT_TYPES
from models.db import make_sessionmaker
from models.tables import Office, Person, Project, Ticket, TicketEvent, Unit
from models.workflow import earliest_due

DEFAULT_NOW = datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc)  # Monday 09:00 in Shanghai
OFFSET = 8 * 60  # Asia/Shanghai, minutes east of UTC (no DST)
DAY = 1440
EOD = 18 * 60  # 18:00 local
TERMS = {"obstruction": 3, "general": 7, "major": 30}
TIER_WEIGHTS = (("general", 70), ("obstruction", 15), ("major", 15))
COUNTIES = (("bench_a", "甲区", "BA"), ("bench_b", "乙县", "BB"), ("bench_c", "丙县", "BD"), ("bench_d", "丁县", "BE"))
CITY_TYPES = ("approval", "natural_resources", "ecology", "housing", "urban_management", "transport", "water",
              "energy", "industry", "development", "finance", "commerce", "public_security", "power")
COUNTY_TYPES = ("county_government", "natural_resources", "housing", "public_security")
TEXTS = (
    "项目用地指标不足，土地组卷报批进展缓慢，影响开工",
    "施工现场有村民堵门阻工，需协调属地处理",
    "电力接入方案迟迟未批复，临时用电不能保障",
    "环评批复尚未取得，项目无法办理施工许可",
    "配套道路未完成征迁，材料运输受阻",
    "供水供气管网接入需市政部门协调",
    "项目融资贷款审批缓慢，资金到位困难",
)

TICKET_COLUMNS = (
    "id", "number", "office_id", "project_id", "reporter_id", "unit_id", "proposed_unit_id", "text", "status",
    "is_open", "tier", "unit_type", "triage", "needs_office", "created_at", "dispatched_at", "acknowledged_at",
    "first_feedback_at", "last_progress_at", "resolved_at", "closed_at", "dispatch_due_at", "ack_due_at",
    "feedback_due_at", "resolve_due_at", "confirm_due_at", "next_action_at", "earliest_due_at", "escalation_level",
    "reopen_count",
    "resolution", "satisfied_first_time", "flagged", "flag", "plan", "pending_extension", "extensions",
    "secondary_unit_types",
)
EVENT_COLUMNS = ("ticket_id", "at", "actor_id", "kind", "from_status", "to_status", "unit_id", "note", "data")


@dataclass(frozen=True)
class Generated:
    now: datetime
    city_office_id: int
    office_ids: tuple[int, ...]
    unit_ids: tuple[int, ...]
    first_ticket_id: int
    last_ticket_id: int
    tickets: int
    open_tickets: int
    due_now: int
    events: int
    seconds: float


@dataclass(frozen=True)
class _Org:
    city: int
    offices: tuple[int, ...]  # city first
    units_by_office: dict[int, tuple[tuple[int, str, int | None], ...]]  # (unit id, type, contact id)
    city_units: tuple[tuple[int, str, int | None], ...]
    projects_by_office: dict[int, tuple[int, ...]]
    liaisons: tuple[int, ...]
    prefixes: dict[int, str]


async def _ensure_org(engine: AsyncEngine) -> _Org:
    """The bench organisation, created on first use (keys start with "bench_")."""
    async with make_sessionmaker(engine)() as session:
        city = await session.scalar(select(Office).where(Office.key == "bench_city"))
        if city is None:
            city = Office(key="bench_city", name="基准市重点工程项目总指挥部办公室", short_name="基准市重点办",
                          level="city", ticket_prefix="BQ")
            session.add(city)
            await session.flush()
            counties = [Office(key=key, name=f"{name}重点工程项目指挥部办公室", short_name=f"{name}重点办",
                               level="county", parent_id=city.id, county=name, ticket_prefix=prefix)
                        for key, name, prefix in COUNTIES]
            session.add_all(counties)
            await session.flush()
            units = [Unit(key=f"bench_city_{t}", name=f"基准市{UNIT_TYPES[t]}局", unit_type=t, office_id=city.id)
                     for t in CITY_TYPES]
            for county in counties:
                units += [Unit(key=f"{county.key}_{t}", name=f"{county.county}{UNIT_TYPES[t]}", unit_type=t,
                               office_id=county.id)
                          for t in COUNTY_TYPES]
            session.add_all(units)
            await session.flush()
            for unit in units:
                contact = Person(key=f"{unit.key}_contact", name=f"{unit.name}13710联系人", unit_id=unit.id,
                                 phone=f"0357-{unit.id:07d}")
                session.add(contact)
                await session.flush()
                unit.contact_id = contact.id
            liaisons = [Person(key=f"bench_liaison_{i}", name=f"基准联络员{i}", company=f"基准建设公司{i}")
                        for i in range(40)]
            session.add_all(liaisons)
            await session.flush()
            for office in [city, *counties]:
                session.add_all([Project(key=f"{office.key}_p{i}", name=f"{office.short_name}重点项目{i}",
                                         office_id=office.id, level="city" if office is city else "county")
                                 for i in range(50)])
            await session.commit()
        offices = (await session.scalars(
            select(Office).where(Office.key.like("bench_%")).order_by(Office.id))).all()
        office_ids = tuple(o.id for o in offices)
        units = (await session.execute(
            select(Unit.id, Unit.unit_type, Unit.contact_id, Unit.office_id).where(Unit.office_id.in_(office_ids))
            .order_by(Unit.id))).all()
        projects = (await session.execute(
            select(Project.id, Project.office_id).where(Project.office_id.in_(office_ids)).order_by(Project.id))).all()
        liaisons = (await session.scalars(
            select(Person.id).where(Person.key.like("bench_liaison_%")).order_by(Person.id))).all()
    units_by_office: dict[int, list] = {o: [] for o in office_ids}
    for unit_id, unit_type, contact_id, office_id in units:
        units_by_office[office_id].append((unit_id, unit_type, contact_id))
    projects_by_office: dict[int, list] = {o: [] for o in office_ids}
    for project_id, office_id in projects:
        projects_by_office[office_id].append(project_id)
    city_id = next(o.id for o in offices if o.key == "bench_city")
    return _Org(
        city=city_id,
        offices=(city_id, *[o for o in office_ids if o != city_id]),
        units_by_office={k: tuple(v) for k, v in units_by_office.items()},
        city_units=tuple(units_by_office[city_id]),
        projects_by_office={k: tuple(v) for k, v in projects_by_office.items()},
        liaisons=tuple(liaisons),
        prefixes={o.id: o.ticket_prefix for o in offices},
    )


def _check_columns(table, columns: Sequence[str]) -> None:
    """Fail loudly if the table gained a required column the generator does not fill."""
    missing = [c.name for c in table.columns
               if not c.nullable and c.server_default is None and c.name not in columns
               and not (c.primary_key and c.autoincrement)]
    if missing:
        raise RuntimeError(f"bench.datagen does not fill required column(s) {missing} of {table.name}")


class _Times:
    """Whole-minute instants (minutes since the epoch) as driver values, cached."""

    def __init__(self, sqlite: bool):
        self.sqlite = sqlite
        self.cache: dict[int, Any] = {}

    def __call__(self, minute: int | None):
        if minute is None:
            return None
        value = self.cache.get(minute)
        if value is None:
            moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=minute)
            value = moment.strftime("%Y-%m-%d %H:%M:%S.000000") if self.sqlite else moment
            self.cache[minute] = value
        return value


def _eod(minute: int, days: int) -> int:
    """18:00 local on the `days`-th local day after the local day of `minute`."""
    local_day = (minute + OFFSET) // DAY
    return (local_day + days) * DAY + EOD - OFFSET


def _ack_due(minute: int) -> int:
    local = (minute + OFFSET) % DAY
    if local <= 17 * 60 + 30:
        return _eod(minute, 0)
    return ((minute + OFFSET) // DAY + 1) * DAY + 12 * 60 - OFFSET


def _placeholders(paramstyle: str, n: int) -> str:
    if paramstyle == "qmark":
        return ", ".join("?" * n)
    if paramstyle in ("numeric_dollar",):
        return ", ".join(f"${i}" for i in range(1, n + 1))
    if paramstyle == "format":
        return ", ".join(["%s"] * n)
    raise RuntimeError(f"unsupported DBAPI paramstyle {paramstyle}")


async def _secondary_indexes(engine: AsyncEngine) -> list[tuple[str, str]]:
    """(name, CREATE statement) of the plain indexes on tickets and ticket_events,
    as the database has them (primary keys and unique constraints excluded)."""
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = await conn.execute(text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                "AND tbl_name IN ('tickets', 'ticket_events') AND sql NOT LIKE 'CREATE UNIQUE%'"))
        else:
            rows = await conn.execute(text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                "AND tablename IN ('tickets', 'ticket_events') AND indexdef NOT LIKE 'CREATE UNIQUE%'"))
        return [(name, sql) for name, sql in rows.all()]


async def generate(
    engine: AsyncEngine,
    n_tickets: int,
    open_fraction: float = 0.1,
    due_now: int | None = None,
    seed: int = 1,
    *,
    now: datetime = DEFAULT_NOW,
    span_days: int = 365,
    with_events: bool = True,
    batch: int = 20_000,
    defer_indexes: bool | None = None,
) -> Generated:
    """Insert `n_tickets` tickets (and their events) into a migrated database.

    due_now: how many open tickets have next_action_at <= now (default: a
    tenth of the open ones); it must not exceed the open tickets.
    defer_indexes: drop the plain indexes of the two tables during the load
    and build them again after it, exactly as they were (default: for loads
    of 100k tickets or more): several times faster than keeping them up to
    date row by row."""
    started = wallclock.perf_counter()
    rng = random.Random(seed)
    n_open = round(n_tickets * open_fraction)
    due_now = n_open // 10 if due_now is None else due_now
    if not 0 <= due_now <= n_open:
        raise ValueError(f"due_now={due_now} must be between 0 and the {n_open} open tickets")
    _check_columns(Ticket.__table__, TICKET_COLUMNS)
    _check_columns(TicketEvent.__table__, EVENT_COLUMNS)
    org = await _ensure_org(engine)

    sqlite = engine.dialect.name == "sqlite"
    paramstyle = engine.dialect.paramstyle
    ticket_sql = (f"INSERT INTO tickets ({', '.join(TICKET_COLUMNS)}) "
                  f"VALUES ({_placeholders(paramstyle, len(TICKET_COLUMNS))})")
    event_sql = (f"INSERT INTO ticket_events ({', '.join(EVENT_COLUMNS)}) "
                 f"VALUES ({_placeholders(paramstyle, len(EVENT_COLUMNS))})")
    async with engine.connect() as conn:
        first_id = int((await conn.scalar(select(func.coalesce(func.max(Ticket.id), 0)))) or 0) + 1
    deferred: list[tuple[str, str]] = []
    if defer_indexes if defer_indexes is not None else n_tickets >= 100_000:
        deferred = await _secondary_indexes(engine)
        async with engine.begin() as conn:
            for name, _ in deferred:
                await conn.exec_driver_sql(f'DROP INDEX "{name}"')

    now_min = int(now.timestamp() // 60)
    t = _Times(sqlite)
    empty_obj, empty_list = "{}", "[]"
    late_json = {True: json.dumps({"late": True}), False: json.dumps({"late": False})}
    first_json = json.dumps({"first": True})
    flag_json = json.dumps({"method": "召开专题协调会", "unit": "责任单位", "leader": "分管副市长", "person": "科长",
                            "due": "2026-12-31"}, ensure_ascii=False)
    dispatch_json: dict[int, str] = {}
    office_weights = [4] + [3] * (len(org.offices) - 1)
    offices_drawn = rng.choices(org.offices, weights=office_weights, k=n_tickets)
    tiers = [name for name, _ in TIER_WEIGHTS]
    tiers_drawn = rng.choices(tiers, weights=[w for _, w in TIER_WEIGHTS], k=n_tickets)
    # Which tickets are open, and which of those are due now: spread over the ids.
    open_ids = set(rng.sample(range(n_tickets), n_open))
    due_ids = set(rng.sample(sorted(open_ids), due_now))
    open_statuses = (("reported", 8), ("returned", 2), ("dispatched", 15), ("acknowledged", 15),
                     ("in_progress", 50), ("resolved", 10))

    tickets: list[tuple] = []
    events: list[tuple] = []
    total_events = 0

    async def flush() -> None:
        nonlocal total_events
        if not tickets:
            return
        async with engine.begin() as conn:
            await conn.exec_driver_sql(ticket_sql, tickets)
            if events:
                await conn.exec_driver_sql(event_sql, events)
        total_events += len(events)
        tickets.clear()
        events.clear()

    def event(ticket_id, minute, actor, kind, before, after, unit, note=None, data=empty_obj):
        events.append((ticket_id, t(minute), actor, kind, before, after, unit, note, data))

    try:
        span = span_days * DAY
        for index in range(n_tickets):
            ticket_id = first_id + index
            office = offices_drawn[index]
            tier = tiers_drawn[index]
            term = TERMS[tier]
            candidates = org.units_by_office[office]
            if office != org.city and rng.random() < 0.2:
                candidates = org.city_units
            unit, unit_type, contact = candidates[rng.randrange(len(candidates))]
            project = org.projects_by_office[office][rng.randrange(len(org.projects_by_office[office]))]
            reporter = org.liaisons[rng.randrange(len(org.liaisons))]
            text_ = TEXTS[rng.randrange(len(TEXTS))]
            is_open = index in open_ids
            escalation = 0
            flagged = False
            reopen_count = 0
            satisfied = None
            resolution = None
            dispatched = acked = fed = resolved = closed = resolved_again = reopen_at = None
            dispatch_due = ack_due = feedback_due = resolve_due = confirm_due = next_action = None
            ack_late = resolve_late = False
            status_unit: int | None = unit

            if not is_open:
                # The lifecycle's gaps first, so that it ends before `now`; the
                # closing times then spread evenly over the span.
                g_dispatch = rng.randrange(30, 30 * 60)
                g_ack = rng.randrange(10, 26 * 60)
                g_feed = rng.randrange(60, 3 * DAY)
                g_resolve = rng.randrange(DAY // 2, int(term * DAY * 1.25))
                g_confirm = rng.randrange(60, 3 * DAY)
                reopened = rng.random() < 0.08
                g_again = rng.randrange(DAY // 2, 5 * DAY) if reopened else 0
                g_close = rng.randrange(60, 2 * DAY) if reopened else 0
                length = g_dispatch + max(g_resolve, g_ack + g_feed + 30) + g_confirm + g_again + g_close
                created = now_min - 60 - length - rng.randrange(max(span - length, DAY))
                status = "closed"
                dispatch_due = _eod(created, 1)
                dispatched = created + g_dispatch
                ack_due = _ack_due(dispatched)
                acked = dispatched + g_ack
                ack_late = acked > ack_due
                feedback_due = _eod(dispatched, 3)
                fed = acked + g_feed
                resolve_due = _eod(dispatched, term)
                resolved = max(dispatched + g_resolve, fed + 30)
                resolve_late = resolved > resolve_due
                closed = resolved + g_confirm
                if reopened:
                    reopen_at = closed
                    resolved_again = reopen_at + g_again
                    closed = resolved_again + g_close
                    reopen_count = 1
                    satisfied = False
                else:
                    satisfied = True
                confirm_due = _eod(resolved_again or resolved, 3)
                resolution = "已办结"
            else:
                status = rng.choices([s for s, _ in open_statuses], weights=[w for _, w in open_statuses])[0]
                stage_days = {"reported": 1, "returned": 1, "dispatched": 1, "acknowledged": 3, "in_progress": term,
                              "resolved": 3}[status]
                if index in due_ids:
                    stalled = status == "in_progress" and rng.random() < 0.05
                    due = now_min - (rng.randrange(31 * DAY, 120 * DAY) if stalled else rng.randrange(1, 5 * DAY))
                    if stalled:
                        escalation = min((now_min - due) // (30 * DAY), 3)  # 一二三: months without progress
                else:
                    due = now_min + rng.randrange(30, stage_days * DAY)
                next_action = due
                if status in ("reported", "returned"):
                    dispatch_due = due
                    created = min(due - DAY - rng.randrange(0, 6 * 60), now_min - 300)
                    if status == "returned":
                        dispatched = created + rng.randrange(10, 120)
                        acked = dispatched + rng.randrange(10, 60)
                        status_unit = unit
                else:
                    if status == "dispatched":
                        dispatched = due - rng.randrange(60, 8 * 60)
                        ack_due = due
                    elif status == "acknowledged":
                        dispatched = due - 3 * DAY
                        feedback_due = due
                    elif status == "in_progress":
                        dispatched = due - term * DAY
                        resolve_due = due
                    else:  # resolved
                        resolved = due - 3 * DAY
                        confirm_due = due
                        dispatched = resolved - rng.randrange(DAY // 2, term * DAY)
                        resolution = "已办结"
                    dispatched = min(dispatched, now_min - 2 * DAY // 3 if status != "dispatched" else now_min - 5)
                    created = dispatched - rng.randrange(30, 20 * 60)
                    dispatch_due = _eod(created, 1)
                    ack_due = ack_due or _ack_due(dispatched)
                    feedback_due = feedback_due or _eod(dispatched, 3)
                    resolve_due = resolve_due or _eod(dispatched, term)
                    if status != "dispatched":
                        acked = min(dispatched + rng.randrange(10, 20 * 60), now_min - 1)
                        ack_late = acked > ack_due
                    if status in ("in_progress", "resolved"):
                        fed = min(acked + rng.randrange(60, 2 * DAY), now_min - 1)
                    if status == "resolved":
                        resolved = min(max(resolved, (fed or acked) + 1), now_min - 1)
                        resolve_late = resolved > resolve_due
                flagged = rng.random() < 0.03

            # -- events, in order ------------------------------------------------------------
            if with_events:
                event(ticket_id, created, reporter, "create", None, "reported", None, text_)
                if dispatched is not None:
                    data = dispatch_json.get(unit)
                    if data is None:
                        data = dispatch_json[unit] = json.dumps({"from_unit_id": None, "to_unit_id": unit})
                    event(ticket_id, dispatched, None, "dispatch", "reported", "dispatched", unit, None, data)
                if acked is not None:
                    event(ticket_id, acked, contact, "acknowledge", "dispatched", "acknowledged", unit, None,
                          late_json[ack_late])
                if status == "returned":
                    event(ticket_id, acked + 30, contact, "return", "acknowledged", "returned", unit, "非本单位职责",
                          json.dumps({"from_unit_id": unit}))
                if fed is not None:
                    event(ticket_id, fed, contact, "feedback", "acknowledged", "in_progress", unit, "正在办理", first_json)
                if flagged:
                    event(ticket_id, (fed or acked or dispatched or created) + 1, None, "flag", status, status, unit,
                          None, json.dumps({"flag": json.loads(flag_json)}, ensure_ascii=False))
                if resolved is not None:
                    event(ticket_id, resolved, contact, "resolve", "in_progress", "resolved", unit, "已办结",
                          late_json[resolve_late])
                if status == "closed":
                    if reopen_count:
                        event(ticket_id, reopen_at, reporter, "reopen", "resolved", "in_progress", unit, "仍未解决",
                              json.dumps({"reopen_count": 1}))
                        event(ticket_id, resolved_again, contact, "resolve", "in_progress", "resolved", unit, "已办结",
                              late_json[False])
                    event(ticket_id, closed, reporter, "confirm", "resolved", "closed", unit)
                if escalation:
                    event(ticket_id, now_min - rng.randrange(1, 3 * DAY), None, "escalate", status, status, unit, None,
                          json.dumps({"level": escalation}))

            final_resolved = resolved_again if (status == "closed" and reopen_count) else resolved
            tickets.append((
                ticket_id, f"{org.prefixes[office]}-{ticket_id:08d}", office, project, reporter,
                status_unit if dispatched is not None else None, None, text_, status, is_open, tier, unit_type,
                empty_obj, False, t(created), t(dispatched), t(acked), t(fed), t(final_resolved or fed), t(final_resolved), t(closed),
                t(dispatch_due), t(ack_due), t(feedback_due), t(resolve_due), t(confirm_due), t(next_action),
                t(earliest_due(SimpleNamespace(status=status, first_feedback_at=fed, dispatch_due_at=dispatch_due,
                                               ack_due_at=ack_due, feedback_due_at=feedback_due,
                                               resolve_due_at=resolve_due, confirm_due_at=confirm_due))),
                escalation, reopen_count, resolution, satisfied, flagged, flag_json if flagged else None, None, None,
                empty_list, empty_list,
            ))
            if len(tickets) >= batch:
                await flush()
        await flush()
    finally:  # the indexes come back even if the load failed
        if deferred:
            async with engine.begin() as conn:
                for _, create in deferred:
                    await conn.exec_driver_sql(create)

    if not sqlite:  # explicit ids: move the sequence past them
        async with engine.begin() as conn:
            await conn.execute(text(
                "SELECT setval(pg_get_serial_sequence('tickets', 'id'), (SELECT max(id) FROM tickets))"))
    return Generated(
        now=now,
        city_office_id=org.city,
        office_ids=org.offices,
        unit_ids=tuple(u for units in org.units_by_office.values() for u, _, _ in units),
        first_ticket_id=first_id,
        last_ticket_id=first_id + n_tickets - 1,
        tickets=n_tickets,
        open_tickets=n_open,
        due_now=due_now,
        events=total_events,
        seconds=wallclock.perf_counter() - started,
    )
