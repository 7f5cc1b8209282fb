"""The clock's jobs: plain async functions over the database, each taking `now`.

- `sweep_deadlines`: reminders before, at and after every outstanding deadline
  (models.reminders decides when and to whom), then the ticket's next_action_at
  moves to its next reminder moment. Reads only `is_open AND next_action_at <= now`
  (one indexed range), in batches.
- `escalate_stalled`: the 一二三 ladder for tickets without progress.
- `daily_digest`: the digests due on the local day, to each office.
- `monthly_ranking`: last month's ranking (markdown and chart) to the top office.

Every message is an outbox row with a unique dedupe key, so running a job twice,
or on two instances at once, queues it once. Each job returns what it queued
(`Queued`); `run_by_name` prints that for `kpbot jobs run NAME --now ISO`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, select, type_coerce, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.types import NullType

from bot.message import Reply
from config.policy import Policy, load_policy
from config.settings import Settings
from models import deadlines, outbox, reminders
from models.outbox import Route
from models.tables import Notice, Office, Person, Project, Ticket, TicketEvent, Unit
from models.workflow import WITH_UNIT
from scheduler import texts

log = logging.getLogger(__name__)

Sessionmaker = async_sessionmaker[AsyncSession]

# Group robots: the outbox channel of each platform's office-group webhook.
GROUP_CHANNELS = {"wecom": "wecom_group", "dingtalk": "dingtalk_group"}
# Markdown bytes per message, by outbox channel (WeCom app messages: 2048;
# group robots: 4096; DingTalk markdown kept to the same 4096).
MARKDOWN_LIMITS = {"wecom": 2048, "wecom_group": 4096, "dingtalk": 4096, "dingtalk_group": 4096, "local": 4096}
DEFAULT_MARKDOWN_LIMIT = 2048

# A person holding several roles at once hears the first (one message per key).
ROLE_ORDER = ("unit_contact", "unit_leader", "office", "parent_office", "reporter")
_ROLE_RANK = {role: rank for rank, role in enumerate(ROLE_ORDER)}


def _role_order(reminder: reminders.Reminder) -> tuple[datetime, int]:
    return reminder.at, _ROLE_RANK[reminder.role]


class JobFailed(RuntimeError):
    """Part of a job failed (and was logged); `queued` is what the rest queued.
    The scheduler runs the job again: what was queued is not queued twice."""

    def __init__(self, message: str, queued: list[Queued]):
        super().__init__(message)
        self.queued = queued


class Queued(NamedTuple):
    """One notice a job added to the outbox."""

    key: str
    to: str  # who (a person's name, or an office group)
    channel: str
    title: str

    def line(self) -> str:
        return f"  {self.key}  -> {self.to} [{self.channel}]  {self.title}"


@lru_cache(maxsize=65536)
def stamp(moment: datetime) -> str:
    """A compact UTC time for dedupe keys: 20261123T1000Z."""
    return moment.astimezone(timezone.utc).strftime("%Y%m%dT%H%MZ")


def _is_postgres(session: AsyncSession) -> bool:
    return session.bind.dialect.name == "postgresql"


def reply_dict(reply: Reply) -> dict[str, Any]:
    """Reply.to_dict() without dataclasses.asdict's deep copy (a sweep makes thousands)."""
    return {"text": reply.text, "title": reply.title,
            "buttons": [{"key": b.key, "label": b.label} for b in reply.buttons],
            "markdown": reply.markdown, "file_path": reply.file_path}


def _first_line(reply: Reply) -> str:
    return reply.title or (reply.text.splitlines() or [""])[0][:60]


# -- the organisation, cached for one job run ------------------------------------------------


@dataclass
class Org:
    """Offices, units, office staff and (on demand) people, for one job run."""

    offices: dict[int, Office]
    units: dict[int, Unit]
    staff: dict[int, list[Person]]  # office id -> its active office staff
    people: dict[int, Person] = field(default_factory=dict)
    projects: dict[int, Project] = field(default_factory=dict)
    _routes: dict[tuple[int, tuple[str, ...]], Route | None] = field(default_factory=dict)
    _names: dict[tuple[str, int | None], dict[str, str | None]] = field(default_factory=dict)

    @classmethod
    async def load(cls, session: AsyncSession) -> Org:
        offices = {o.id: o for o in (await session.scalars(select(Office))).all()}
        units = {u.id: u for u in (await session.scalars(select(Unit))).all()}
        staff_rows = (await session.scalars(
            select(Person).where(Person.office_id.is_not(None), Person.active.is_(True)).order_by(Person.id)
        )).all()
        staff: dict[int, list[Person]] = {}
        people: dict[int, Person] = {}
        for person in staff_rows:
            people[person.id] = person
            if "office" in person.roles:
                staff.setdefault(person.office_id, []).append(person)
        return cls(offices, units, staff, people)

    async def need_people(self, session: AsyncSession, ids: Iterable[int | None]) -> None:
        missing = {i for i in ids if i is not None and i not in self.people}
        if missing:
            rows = (await session.scalars(select(Person).where(Person.id.in_(missing)))).all()
            self.people.update({p.id: p for p in rows})

    async def need_projects(self, session: AsyncSession, ids: Iterable[int | None]) -> None:
        missing = {i for i in ids if i is not None and i not in self.projects}
        if missing:
            rows = (await session.scalars(select(Project).where(Project.id.in_(missing)))).all()
            self.projects.update({p.id: p for p in rows})

    def person(self, person_id: int | None) -> Person | None:
        person = self.people.get(person_id) if person_id is not None else None
        return person if person is not None and person.active else None

    def unit_names(self, unit_id: int | None) -> dict[str, str | None]:
        """The unit's and its contact's names (as texts.Brief fields), cached."""
        names = self._names.get(("unit", unit_id))
        if names is None:
            unit = self.units.get(unit_id) if unit_id is not None else None
            contact = self.person(unit.contact_id) if unit and unit.contact_id else None
            names = self._names[("unit", unit_id)] = {
                "unit": unit.name if unit else None, "contact": contact.name if contact else None}
        return names

    def office_names(self, office_id: int) -> dict[str, str | None]:
        """The office's, the office above's and the top office's short names, cached."""
        names = self._names.get(("office", office_id))
        if names is None:
            office = self.offices.get(office_id)
            parent = self.offices.get(office.parent_id) if office and office.parent_id else None
            top = self.top_office(office_id)
            names = self._names[("office", office_id)] = {
                "office": office.short_name if office else None,
                "parent_office": parent.short_name if parent else None,
                "city_office": top.short_name if top else None}
        return names

    def top_office(self, office_id: int) -> Office | None:
        office = self.offices.get(office_id)
        seen = set()
        while office is not None and office.parent_id is not None and office.id not in seen:
            seen.add(office.id)
            office = self.offices.get(office.parent_id)
        return office

    def root_offices(self) -> list[Office]:
        return sorted((o for o in self.offices.values() if o.parent_id is None), key=lambda o: o.id)

    def route(self, person: Person, enabled_channels: Sequence[str]) -> Route | None:
        cache_key = (person.id, tuple(enabled_channels))
        if cache_key in self._routes:
            return self._routes[cache_key]
        route = self._routes[cache_key] = outbox.route_for(person, enabled_channels)
        if route is None:
            log.warning("person %s has no identity on any enabled channel %s: not told",
                        person.key, list(enabled_channels))
        return route


def group_routes(office: Office, enabled_channels: Sequence[str]) -> list[tuple[Route, dict[str, Any]]]:
    """The office's group robots usable now: (route, extra payload)."""
    routes = []
    if office.wecom_webhook and GROUP_CHANNELS["wecom"] in enabled_channels:
        routes.append((Route(GROUP_CHANNELS["wecom"], office.wecom_webhook), {}))
    if office.dingtalk_webhook and GROUP_CHANNELS["dingtalk"] in enabled_channels:
        routes.append((Route(GROUP_CHANNELS["dingtalk"], office.dingtalk_webhook),
                       {"secret": office.dingtalk_webhook_secret or ""}))
    return routes


_NOTICE_COLUMNS = ("dedupe_key", "kind", "person_id", "office_id", "ticket_id", "channel", "address", "payload")


class _Rows:
    """Notice rows for one transaction, inserted at once (insert-or-ignore on
    the dedupe key); `flush` returns those that were new.

    PostgreSQL: INSERT ... ON CONFLICT DO NOTHING RETURNING, so that concurrent
    runners each learn exactly what they added. SQLite, where the transaction
    holds the only write lock from BEGIN IMMEDIATE: the rows go in through the
    driver's executemany (several times faster for a sweep's thousands of
    rows); when some were already there, the new ones are those with an id
    above the largest before (rowids only grow)."""

    def __init__(self, now: datetime):
        self.now = now
        # _NOTICE_COLUMNS; the payload a dict or its JSON (`_json`). All are pending since `now`.
        self.rows: list[tuple] = []
        self.queued: dict[str, Queued] = {}  # by key, in the order of the rows
        # one payload per reply, shared; the reply and extra are kept so that their ids stay theirs
        self._payloads: dict[tuple[int, int], tuple[dict[str, Any], Reply, Any]] = {}

    def add(self, key: str, route: Route, reply: Reply, to: str, kind: str = "person",
            person_id: int | None = None, office_id: int | None = None, ticket_id: int | None = None,
            extra: dict[str, Any] | None = None) -> None:
        if key in self.queued:
            return
        shared = (id(reply), id(extra))
        known = self._payloads.get(shared)
        if known is None:
            known = self._payloads[shared] = ({"reply": reply_dict(reply), **(extra or {})}, reply, extra)
        self.rows.append((key, kind, person_id, office_id, ticket_id, route.channel, route.address, known[0]))
        self.queued[key] = Queued(key, to, route.channel, _first_line(reply))

    def add_json(self, key: str, channel: str, address: str, payload: str, title: str, to: str,
                 person_id: int | None, office_id: int | None, ticket_id: int | None) -> None:
        """A person's notice whose payload is already JSON (as `_json` writes it)."""
        if key in self.queued:
            return
        self.rows.append((key, "person", person_id, office_id, ticket_id, channel, address, payload))
        self.queued[key] = Queued(key, to, channel, title)

    async def flush(self, session: AsyncSession, chunk: int = 5000) -> list[Queued]:
        if not self.rows:
            return []
        connection = await session.connection()
        if _is_postgres(session):
            new = await self._insert_returning(connection, chunk)
        else:
            new = await self._insert_sqlite(connection, chunk)
        if new is None:  # all of them
            queued = list(self.queued.values())
        else:
            queued = [q for key, q in self.queued.items() if key in new]
        self.rows, self.queued, self._payloads = [], {}, {}
        return queued

    async def _insert_returning(self, connection, chunk: int) -> set[str]:
        table = Notice.__table__
        new: set[str] = set()
        decoded: dict[int, dict[str, Any]] = {}  # JSON payloads shared between rows are decoded once
        pending = {"created_at": self.now, "status": "pending", "attempts": 0, "next_attempt_at": self.now}
        for start in range(0, len(self.rows), chunk):
            part = []
            for row in self.rows[start:start + chunk]:
                values = dict(zip(_NOTICE_COLUMNS, row), **pending)
                if isinstance(row[7], str):
                    if id(row[7]) not in decoded:
                        decoded[id(row[7])] = json.loads(row[7])
                    values["payload"] = decoded[id(row[7])]
                part.append(values)
            stmt = (postgresql.insert(table).on_conflict_do_nothing(index_elements=["dedupe_key"])
                    .returning(table.c.dedupe_key))
            new |= set((await connection.execute(stmt, part)).scalars().all())
        return new

    async def _insert_sqlite(self, connection, chunk: int) -> set[str] | None:
        """The rows through the driver; the keys that were new, None when all were."""
        before = await connection.scalar(select(func.max(Notice.id))) or 0
        encoded: dict[int, str] = {}  # payloads shared between rows are encoded once
        values = self.rows
        if not all(isinstance(row[7], str) for row in values):
            values = []
            for row in self.rows:
                if not isinstance(row[7], str):
                    if id(row[7]) not in encoded:
                        encoded[id(row[7])] = _json(row[7])
                    row = (*row[:7], encoded[id(row[7])])
                values.append(row)
        # What is the same for every row (created and next attempt `now`, pending, no attempt yet) is
        # written into the statement once: a sweep binds fewer values for thousands of rows.
        now = Notice.__table__.c.created_at.type._cached_bind_processor(connection.dialect)(self.now)
        if not isinstance(now, str) or "'" in now:
            raise TypeError(f"unexpected SQLite time {now!r}")
        sql = (f"INSERT INTO notices ({', '.join(_NOTICE_COLUMNS)}, created_at, status, attempts, "
               f"next_attempt_at) VALUES ({', '.join('?' * len(_NOTICE_COLUMNS))}, '{now}', 'pending', 0, "
               f"'{now}') ON CONFLICT (dedupe_key) DO NOTHING")
        inserted = 0
        for start in range(0, len(values), chunk):
            inserted += (await connection.exec_driver_sql(sql, values[start:start + chunk])).rowcount
        if inserted == len(values):
            return None
        return set((await connection.execute(select(Notice.dedupe_key).where(Notice.id > before))).scalars().all())


def _json(payload: dict[str, Any]) -> str:
    """The payload as stored: UTF-8 JSON, Chinese as it is (a third of the
    \\uXXXX form's bytes), read back by the column's JSON type as any other."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


async def _move_clock(session: AsyncSession, moves: list[tuple[int, datetime | None]]) -> None:
    """Set each swept ticket's next_action_at (one executemany)."""
    connection = await session.connection()
    if _is_postgres(session):
        await connection.execute(_MOVE_CLOCK, [{"ticket_id": i, "next": at} for i, at in moves])
        return
    stored = _Converted(_TIME_TYPE._cached_bind_processor(connection.dialect))
    await connection.exec_driver_sql("UPDATE tickets SET next_action_at = ? WHERE id = ?",
                                     [(stored[at], i) for i, at in moves])


class _Converted(dict):
    """value -> convert(value), each distinct value converted once (a sweep's
    thousands of tickets share a few thousand times). For a column type's
    conversions to and from the database."""

    def __init__(self, convert: Callable[[Any], Any]):
        super().__init__({None: None})
        self._convert = convert

    def __missing__(self, value):
        converted = self[value] = self._convert(value)
        return converted


# -- reminders -------------------------------------------------------------------------------


class DueTicket(NamedTuple):
    """What a sweep reads of a due ticket: what workflow.outstanding_deadlines,
    reminders.plan and the reminders' texts and addressees need."""

    id: int
    number: str
    status: str
    office_id: int
    unit_id: int | None
    reporter_id: int | None
    text: str
    project_name: str | None
    first_feedback_at: datetime | None
    dispatch_due_at: datetime | None
    ack_due_at: datetime | None
    feedback_due_at: datetime | None
    resolve_due_at: datetime | None
    confirm_due_at: datetime | None
    next_action_at: datetime


_DUE_TIMES = (Ticket.first_feedback_at, Ticket.dispatch_due_at, Ticket.ack_due_at, Ticket.feedback_due_at,
              Ticket.resolve_due_at, Ticket.confirm_due_at, Ticket.next_action_at)
# The times are read as stored (NullType), then converted by the column type (_Converted).
_SWEEP_COLUMNS = (Ticket.id, Ticket.number, Ticket.status, Ticket.office_id, Ticket.unit_id, Ticket.reporter_id,
                  Ticket.text, Project.name, *(type_coerce(column, NullType()) for column in _DUE_TIMES))
_TIME_TYPE = Ticket.__table__.c.next_action_at.type
RETRY_BROKEN_TICKET = timedelta(hours=1)
_MOVE_CLOCK = (update(Ticket.__table__)
               .where(Ticket.__table__.c.id == bindparam("ticket_id"))
               .values(next_action_at=bindparam("next")))


async def due_time_converter(session: AsyncSession) -> _Converted:
    """Stored due time -> datetime, each distinct value converted once."""
    connection = await session.connection()
    return _Converted(_TIME_TYPE._cached_result_processor(connection.dialect, None))


async def read_due(session: AsyncSession, now: datetime, limit: int, times: _Converted) -> list[DueTicket]:
    """The next `limit` open tickets whose next action is due at `now`, oldest
    first: one range of the (is_open, next_action_at) index. On PostgreSQL they
    are locked (SKIP LOCKED), so concurrent sweeps share the work."""
    stmt = (
        select(*_SWEEP_COLUMNS)
        .outerjoin(Project, Project.id == Ticket.project_id)
        .where(Ticket.is_open.is_(True), Ticket.next_action_at <= now)
        .order_by(Ticket.next_action_at, Ticket.id)
        .limit(limit)
    )
    if _is_postgres(session):
        stmt = stmt.with_for_update(skip_locked=True, of=Ticket)
    connection = await session.connection()
    return [DueTicket(*row[:8], *map(times.__getitem__, row[8:])) for row in await connection.execute(stmt)]


async def sweep_deadlines(
    sessionmaker: Sessionmaker,
    policy: Policy,
    now: datetime,
    enabled_channels: Sequence[str],
    *,
    batch: int = 10000,
) -> list[Queued]:
    """Send the reminders due at `now` and move each swept ticket's
    next_action_at to its next reminder moment. One transaction per batch;
    on PostgreSQL the batch's tickets are locked (SKIP LOCKED), so concurrent
    sweeps share the work instead of waiting for each other. A batch holds
    the write lock (on SQLite the app's one connection) for its transaction:
    about 1 s for 10,000 due tickets; smaller batches wait less each but
    take longer in all (a commit, and its WAL checkpoint, per batch)."""
    deadlines.to_local(now, policy, "now")
    rules = reminders.Rules(policy)  # this sweep's, with its caches
    queued: list[Queued] = []
    org: Org | None = None
    said: _Reminders | None = None
    times: _Converted | None = None
    while True:
        async with sessionmaker() as session, session.begin():
            if times is None:
                times = await due_time_converter(session)
            tickets = await read_due(session, now, batch, times)
            if not tickets:
                break
            if org is None:
                org = await Org.load(session)
                said = _Reminders(org, policy, enabled_channels)
            await org.need_people(session, _people_of(tickets, org))
            rows = _Rows(now)
            moves = []
            for ticket in tickets:
                try:
                    due, following = reminders.plan(ticket, rules, ticket.next_action_at, now)
                    if due:
                        said.queue(rows, ticket, due)
                except Exception:  # noqa: BLE001 - one broken ticket must not stop the sweep
                    log.exception("sweep: ticket %s failed; trying again in an hour", ticket.number)
                    following = now + RETRY_BROKEN_TICKET
                moves.append((ticket.id, following))
            queued += await rows.flush(session)
            await _move_clock(session, moves)
        if len(tickets) < batch:
            break
    return queued


def _people_of(tickets, org: Org) -> set[int]:
    """The tickets' reporters and their units' contacts and leaders."""
    ids = {ticket.reporter_id for ticket in tickets}
    for unit_id in {ticket.unit_id for ticket in tickets}:
        unit = org.units.get(unit_id)
        if unit is not None:
            ids.update((unit.contact_id, unit.leader_id))
    ids.discard(None)
    return ids


def _recipients(role: str, ticket, org: Org) -> list[Person]:
    unit = org.units.get(ticket.unit_id)
    if role == "unit_contact":
        people = [org.person(unit.contact_id)] if unit else []
    elif role == "unit_leader":
        people = [org.person(unit.leader_id)] if unit else []
    elif role == "office":
        people = list(org.staff.get(ticket.office_id, ()))
    elif role == "parent_office":
        office = org.offices.get(ticket.office_id)
        people = list(org.staff.get(office.parent_id, ())) if office and office.parent_id else []
    elif role == "reporter":
        people = [org.person(ticket.reporter_id)]
    else:
        raise ValueError(f"unknown role {role!r}")
    return [p for p in people if p is not None]


def brief_of(ticket, org: Org, project_name: str | None) -> texts.Brief:
    return texts.Brief(number=ticket.number, problem=ticket.text, project=project_name,
                       **org.unit_names(ticket.unit_id), **org.office_names(ticket.office_id))


# Placeholders for what differs between the reminders of one template: a
# private-use character and a letter, made %-format fields once the template
# is JSON. Names holding that character are not templated (checked).
_HOLE = "\ue000"
_FIELDS = {_HOLE + letter: f"%({letter})s" for letter in "ndla"}  # number, due, days late, about
_NUMBER, _DUE, _DAYS, _ABOUT = _FIELDS
# The ticket column that tells who hears a role.
_WHO = {"unit_contact": "unit_id", "unit_leader": "unit_id", "office": "office_id", "parent_office": "office_id",
        "reporter": "reporter_id"}


def _escape(text: str) -> str:
    """`text` as inside a JSON string written by `_json`."""
    return json.encoder.encode_basestring(text)[1:-1]


class _Reminders:
    """The reminders of one sweep, as notice rows.

    Who hears a role, and on which route, is worked out once per role and
    unit, office or reporter. The texts: texts.render_reminder runs once per
    template (stage, phase, role, unit and office), with placeholders for the
    ticket's number, the deadline, the days late and the ticket's about lines;
    a reminder's payload is the template's JSON with these filled in, escaped
    as `_json` would."""

    def __init__(self, org: Org, policy: Policy, enabled_channels: Sequence[str]):
        self.org = org
        self.policy = policy
        self.tz = policy.clock.tz
        self.channels = tuple(enabled_channels)
        self._people: dict[tuple[str, int | None], tuple[tuple[str, str, int, Route], ...]] = {}  # by (role, _WHO)
        # (payload JSON as a %-format, title with the number placeholder), or None: render whole
        self._templates: dict[tuple[str, str, str, int | None, int], tuple[str, str] | None] = {}
        self._due_texts: dict[datetime, str] = {}
        self._days: dict[tuple[datetime, datetime], int] = {}

    def queue(self, rows: _Rows, ticket: DueTicket, due: list[reminders.Reminder]) -> None:
        """Add the rows of a ticket's due reminders (a person holding several
        roles at once hears the first: one message per key)."""
        number = ticket.number
        fill = {"n": _escape(number), "a": _escape(texts.about(ticket.project_name, ticket.text))}
        for reminder in sorted(due, key=_role_order) if len(due) > 1 else due:
            at, stage, deadline, role = reminder
            phase = reminder.phase
            days_late = self._days_late(deadline, at) if phase == "overdue" else 0
            template = self._template(stage, phase, role, ticket)
            if template is None:
                brief = brief_of(ticket, self.org, ticket.project_name)
                reply = texts.reminder(stage, phase, role, brief, deadline, days_late, self.tz)
                payload, title = _json({"reply": reply_dict(reply)}), _first_line(reply)
            else:
                fill["d"], fill["l"] = self._due_text(deadline), days_late
                payload, title = template[0] % fill, template[1].replace(_NUMBER, number)
            prefix = f"remind:{number}:{stage}:{stamp(deadline)}:{stamp(at)}:"
            for key, name, person_id, route in self._addressees(role, ticket):
                rows.add_json(prefix + key, route.channel, route.address, payload, title, name, person_id,
                              ticket.office_id, ticket.id)

    def _addressees(self, role: str, ticket: DueTicket) -> tuple[tuple[str, str, int, Route], ...]:
        """(key, name, id, route) of each person who hears `role` about the ticket."""
        who = (role, getattr(ticket, _WHO[role]))
        found = self._people.get(who)
        if found is None:
            routed = ((person, self.org.route(person, self.channels)) for person in _recipients(role, ticket, self.org))
            found = self._people[who] = tuple((person.key, person.name, person.id, route)
                                              for person, route in routed if route is not None)
        return found

    def _template(self, stage: str, phase: str, role: str, ticket: DueTicket) -> tuple[str, str] | None:
        key = (stage, phase, role, ticket.unit_id, ticket.office_id)
        if key not in self._templates:
            names = {**self.org.unit_names(ticket.unit_id), **self.org.office_names(ticket.office_id)}
            template = None
            if not any(_HOLE in name for name in names.values() if name):
                brief = texts.Brief(number=_NUMBER, problem="", **names)
                reply = texts.render_reminder(stage, phase, role, brief, _DUE, _DAYS, _ABOUT)
                if reply.title:
                    payload = _json({"reply": reply_dict(reply)}).replace("%", "%%")
                    for hole, field in _FIELDS.items():
                        payload = payload.replace(hole, field)
                    template = (payload, reply.title)
            self._templates[key] = template
        return self._templates[key]

    def _days_late(self, deadline: datetime, at: datetime) -> int:
        days = self._days.get((deadline, at))
        if days is None:
            days = self._days[(deadline, at)] = deadlines.overdue_days(deadline, at, self.policy)
        return days

    def _due_text(self, deadline: datetime) -> str:
        text = self._due_texts.get(deadline)
        if text is None:
            text = self._due_texts[deadline] = _escape(texts.when(deadline, self.tz))
        return text


# -- 一二三 -----------------------------------------------------------------------------------

LADDER_TOP = 3


async def escalate_stalled(
    sessionmaker: Sessionmaker,
    policy: Policy,
    now: datetime,
    enabled_channels: Sequence[str],
    *,
    batch: int = 500,
) -> list[Queued]:
    """The 一二三 ladder: a ticket with the unit and no progress (feedback,
    plan, 办结 or reopening: `last_progress_at`, else its dispatch) for 1, 2, 3
    months climbs to that level, each level exactly once: the level is raised
    with a compare-and-set UPDATE, and only the runner that raised it writes
    the escalate event (system actor) and queues the notices."""
    deadlines.to_local(now, policy, "now")
    months = policy.ladder.thresholds
    baseline = func.coalesce(Ticket.last_progress_at, Ticket.dispatched_at)
    # A calendar month has at least 28 days: nothing younger can have reached level 1.
    horizon = now - timedelta(days=28 * months[0])
    queued: list[Queued] = []
    org: Org | None = None
    last_id = 0
    while True:
        async with sessionmaker() as session, session.begin():
            stmt = (
                select(Ticket)
                .where(Ticket.is_open.is_(True), Ticket.status.in_([str(s) for s in WITH_UNIT]),
                       Ticket.escalation_level < LADDER_TOP, baseline <= horizon, Ticket.id > last_id)
                .order_by(Ticket.id)
                .limit(batch)
            )
            if _is_postgres(session):
                stmt = stmt.with_for_update(skip_locked=True)
            tickets = list((await session.scalars(stmt)).all())
            if not tickets:
                break
            last_id = tickets[-1].id
            if org is None:
                org = await Org.load(session)
            await org.need_projects(session, [t.project_id for t in tickets])
            await org.need_people(session, {p.leader_id for p in org.projects.values()} | _people_of(tickets, org))
            rows = _Rows(now)
            for ticket in tickets:
                since = ticket.last_progress_at or ticket.dispatched_at
                target = deadlines.ladder_level(since, now, policy)
                level = ticket.escalation_level
                while level < target:
                    raised = await session.execute(
                        update(Ticket)
                        .where(Ticket.id == ticket.id, Ticket.escalation_level == level)
                        .values(escalation_level=level + 1)
                        .execution_options(synchronize_session=False)
                    )
                    if raised.rowcount != 1:
                        break  # another runner got there first
                    level += 1
                    _ladder_step(session, rows, org, ticket, level, since, now, policy, enabled_channels)
            queued += await rows.flush(session)
        if len(tickets) < batch:
            break
    return queued


def _ladder_step(session: AsyncSession, rows: _Rows, org: Org, ticket: Ticket, level: int, since: datetime,
                 now: datetime, policy: Policy, enabled_channels: Sequence[str]) -> None:
    months = policy.ladder.thresholds[level - 1]
    session.add(TicketEvent(
        ticket_id=ticket.id, at=now, actor_id=None, kind="escalate", from_status=ticket.status,
        to_status=ticket.status, unit_id=ticket.unit_id, note=texts.ladder_note(level, months),
        data={"level": level, "months": months, "since": since.isoformat()},
    ))
    project = org.projects.get(ticket.project_id) if ticket.project_id else None
    brief = brief_of(ticket, org, project.name if project else None)
    top = org.top_office(ticket.office_id)
    unit = org.units.get(ticket.unit_id)
    county_staff = org.staff.get(ticket.office_id, [])
    city_staff = org.staff.get(top.id, []) if top else []
    unit_people = [org.person(unit.contact_id), org.person(unit.leader_id)] if unit else []
    audience: list[tuple[str, list[Person | None]]]
    if level == 1:
        audience = [("county_office", county_staff), ("unit", unit_people)]
    else:
        audience = [("city_office", city_staff), ("county_office", county_staff), ("unit", unit_people),
                    ("project_leader", [org.person(project.leader_id)] if project and project.leader_id else [])]
    told: set[int] = set()
    for role, people in audience:
        reply = texts.ladder_notice(level, role, brief, months, since, policy.clock.tz)
        for person in people:
            if person is None or person.id in told:
                continue
            told.add(person.id)
            route = org.route(person, enabled_channels)
            if route is None:
                continue
            rows.add(key=f"ladder:{ticket.number}:{level}:{stamp(since)}:{person.key}", route=route, reply=reply,
                     to=person.name, person_id=person.id, office_id=ticket.office_id, ticket_id=ticket.id)


# -- digests -----------------------------------------------------------------------------------


async def _already(session: AsyncSession, prefix: str) -> bool:
    """Whether any notice with this dedupe-key prefix exists (the job ran)."""
    found = await session.scalar(select(Notice.id).where(Notice.dedupe_key.like(prefix + "%")).limit(1))
    return found is not None


def _limit(channel: str) -> int:
    return MARKDOWN_LIMITS.get(channel, DEFAULT_MARKDOWN_LIMIT)


async def daily_digest(
    sessionmaker: Sessionmaker,
    policy: Policy,
    now: datetime,
    enabled_channels: Sequence[str],
) -> list[Queued]:
    """The digests due on `now`'s local day (`digest.cadences` and their days),
    one per office and cadence, covering the office and those below it: to the
    office's group robot(s) when it has one, else to each of its staff."""
    from scheduler.digest import build_digest, render_digest_markdown

    today = deadlines.to_local(now, policy, "now").date()
    cadences = policy.digest.cadences_on(today)
    queued: list[Queued] = []
    if not cadences:
        return queued
    async with sessionmaker() as session:
        org = await Org.load(session)
    failed: list[str] = []
    for office in sorted(org.offices.values(), key=lambda o: o.id):
        for cadence in cadences:
            prefix = f"digest:{office.key}:{cadence}:{today.isoformat()}:"
            try:
                async with sessionmaker() as session, session.begin():
                    if await _already(session, prefix):
                        continue
                    digest = await build_digest(session, office.id, now, policy, cadence)
                    rows = _Rows(now)
                    rendered: dict[int, list[str]] = {}
                    for target in _office_targets(org, office, enabled_channels, include_staff=False):
                        limit = _limit(target.route.channel)
                        if limit not in rendered:
                            rendered[limit] = render_digest_markdown(digest, max_bytes=limit)
                        for i, chunk in enumerate(rendered[limit], start=1):
                            rows.add(key=f"{prefix}{i}:{target.suffix}", route=target.route,
                                     reply=Reply(chunk, markdown=True), to=target.name, kind=target.kind,
                                     person_id=target.person_id, office_id=office.id, extra=target.extra)
                    queued += await rows.flush(session)
            except Exception:  # noqa: BLE001 - one office's digest must not stop the others
                log.exception("digest %s for office %s failed", cadence, office.key)
                failed.append(f"{office.key}/{cadence}")
    if failed:
        raise JobFailed(f"digests failed: {', '.join(failed)}", queued)
    return queued


@dataclass(frozen=True)
class _Target:
    route: Route
    name: str
    suffix: str  # the recipient's part of the dedupe key
    kind: str
    person_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _office_targets(org: Org, office: Office, enabled_channels: Sequence[str], *,
                    include_staff: bool) -> list[_Target]:
    """The office's group robots; its staff too when `include_staff` or when it has no group."""
    targets = [
        _Target(route, f"{office.short_name}群", route.channel, "group", None, extra)
        for route, extra in group_routes(office, enabled_channels)
    ]
    if include_staff or not targets:
        for person in org.staff.get(office.id, []):
            route = org.route(person, enabled_channels)
            if route is not None:
                targets.append(_Target(route, person.name, person.key, "person", person.id))
    return targets


# -- the monthly ranking --------------------------------------------------------------------------


def previous_month(now: datetime, policy: Policy) -> date:
    """The first day of the local month before `now`'s."""
    first = deadlines.to_local(now, policy, "now").date().replace(day=1)
    return (first - timedelta(days=1)).replace(day=1)


def split_lines(text: str, max_bytes: int) -> list[str]:
    """Cut a markdown text at line ends into pieces of at most `max_bytes`
    UTF-8 bytes (an over-long single line is cut at a character boundary)."""
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for line in text.splitlines():
        data = line.encode("utf-8")
        while len(data) > max_bytes:
            head = data[:max_bytes].decode("utf-8", errors="ignore")
            if current:
                pieces.append("\n".join(current))
                current, size = [], 0
            pieces.append(head)
            data = data[len(head.encode("utf-8")):]
        line = data.decode("utf-8")
        extra = len(data) + (1 if current else 0)
        if current and size + extra > max_bytes:
            pieces.append("\n".join(current))
            current, size, extra = [], 0, len(data)
        current.append(line)
        size += extra
    if current:
        pieces.append("\n".join(current))
    return [p for p in pieces if p.strip()]


async def monthly_ranking(
    sessionmaker: Sessionmaker,
    policy: Policy,
    now: datetime,
    enabled_channels: Sequence[str],
    reports_dir: Path,
) -> list[Queued]:
    """Last month's ranking (月排名 / 月通报) to the top office: the markdown and
    the chart PNG (written under `reports_dir`) to its group robot(s) and its
    staff. Once per month: keys `ranking:<YYYY-MM>:...`."""
    from scheduler import ranking as ranking_report

    tz = policy.clock.tz
    month = previous_month(now, policy)
    label = f"{month.year}-{month.month:02d}"
    prefix = f"ranking:{label}:"
    async with sessionmaker() as session:
        if await _already(session, prefix):
            return []
        org = await Org.load(session)
        ranking = await ranking_report.monthly_ranking(session, month, tz, policy=policy)
    markdown = ranking_report.render_ranking_markdown(ranking, tz)
    chart: Path | None = reports_dir / f"ranking-{label}.png"
    try:
        reports_dir.mkdir(parents=True, exist_ok=True)
        chart = await asyncio.to_thread(ranking_report.render_ranking_chart, ranking, chart)
    except Exception:  # noqa: BLE001 - the text still goes out without the chart
        log.exception("ranking chart for %s could not be drawn; sending the text only", label)
        chart = None
    queued: list[Queued] = []
    async with sessionmaker() as session, session.begin():
        rows = _Rows(now)
        for office in org.root_offices():
            for target in _office_targets(org, office, enabled_channels, include_staff=True):
                chunks = split_lines(markdown, _limit(target.route.channel))
                for i, chunk in enumerate(chunks, start=1):
                    last = i == len(chunks)
                    extra = dict(target.extra)
                    reply = Reply(chunk, markdown=True)
                    if last and chart is not None:
                        if target.kind == "group":
                            extra["image_path"] = str(chart)
                        else:
                            reply = Reply(chunk, markdown=True, file_path=str(chart))
                    rows.add(key=f"{prefix}{office.key}:{target.suffix}:{i}", route=target.route, reply=reply,
                             to=target.name, kind=target.kind, person_id=target.person_id, office_id=office.id,
                             extra=extra)
        queued += await rows.flush(session)
    return queued


# -- for the scheduler and the command line ----------------------------------------------------------


@dataclass(frozen=True)
class JobEnv:
    """What every job needs besides `now`."""

    sessionmaker: Sessionmaker
    policy: Policy
    enabled_channels: tuple[str, ...]
    reports_dir: Path


JobFn = Callable[[JobEnv, datetime], Awaitable[list[Queued]]]

JOBS: dict[str, tuple[JobFn, str]] = {
    "sweep_deadlines": (
        lambda env, now: sweep_deadlines(env.sessionmaker, env.policy, now, env.enabled_channels),
        "every minute: reminders before, at and after each deadline; overdue ones also to the unit "
        "leader and then the office",
    ),
    "escalate_stalled": (
        lambda env, now: escalate_stalled(env.sessionmaker, env.policy, now, env.enabled_channels),
        "every hour: the 一二三 ladder for tickets without progress for 1 / 2 / 3 months",
    ),
    "daily_digest": (
        lambda env, now: daily_digest(env.sessionmaker, env.policy, now, env.enabled_channels),
        "at [digest].time: the digests due that local day (daily / weekly / ten-day / monthly) to every office",
    ),
    "monthly_ranking": (
        lambda env, now: monthly_ranking(env.sessionmaker, env.policy, now, env.enabled_channels, env.reports_dir),
        "on [ranking].day at [ranking].time: last month's ranking and chart to the top office",
    ),
}


def describe() -> list[tuple[str, str]]:
    return [(name, description) for name, (_, description) in JOBS.items()]


def enabled_channels_of(settings: Settings) -> tuple[str, ...]:
    """The outbox channels a process with these settings can deliver on."""
    channels: list[str] = []
    if settings.simulator_enabled:
        channels.append("local")
    if settings.wecom_enabled:
        channels += ["wecom", GROUP_CHANNELS["wecom"]]
    if settings.dingtalk_enabled:
        channels += ["dingtalk", GROUP_CHANNELS["dingtalk"]]
    return tuple(channels)


def env_from_settings(sessionmaker: Sessionmaker, settings: Settings, policy: Policy | None = None,
                      enabled_channels: Sequence[str] | None = None) -> JobEnv:
    return JobEnv(
        sessionmaker=sessionmaker,
        policy=policy or load_policy(settings.config_file("policy.toml")),
        enabled_channels=tuple(enabled_channels) if enabled_channels is not None else enabled_channels_of(settings),
        reports_dir=settings.data_dir / "reports",
    )


async def run_job(name: str, env: JobEnv, now: datetime) -> list[Queued]:
    if name not in JOBS:
        raise KeyError(name)
    return await JOBS[name][0](env, now)


async def run_by_name(name: str, sessionmaker: Sessionmaker, settings: Settings, now: datetime) -> str:
    """Run one job once at `now`; the report of what it queued."""
    if name not in JOBS:
        raise SystemExit(f"kpbot: unknown job {name!r}; jobs: {', '.join(JOBS)}")
    env = env_from_settings(sessionmaker, settings)
    queued = await run_job(name, env, now)
    local = now.astimezone(env.policy.clock.tz)
    header = f"{name} at {local.isoformat()} ({env.policy.clock.timezone}): queued {len(queued)} notice(s)"
    return "\n".join([header, *(q.line() for q in queued)])
