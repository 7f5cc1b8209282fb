"""Queries over the organisation and the tickets. Nothing here commits: the
caller's unit of work does."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from models.tables import (
    Identity,
    Office,
    Person,
    Project,
    Ticket,
    TicketCounter,
    TicketEvent,
    Unit,
    project_liaisons,
)
from models.workflow import Actor

# -- generic -------------------------------------------------------------------


async def insert_ignore(session: AsyncSession, model, values: dict[str, Any], conflict: Iterable[str]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True when a row was inserted."""
    dialect = session.bind.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(model).values(**values).on_conflict_do_nothing(index_elements=list(conflict))
    result = await session.execute(stmt)
    return bool(result.rowcount)


# -- organisation ----------------------------------------------------------------


@cache
def select_people() -> Select:
    """People with their roles and identities in the same query (one statement,
    where the relationships' own selectin loading takes three). Built once."""
    return select(Person).options(joinedload(Person.role_rows), joinedload(Person.identities))


async def _people(session: AsyncSession, stmt) -> list[Person]:
    people = list((await session.scalars(stmt)).unique().all())
    hold(session, people)
    return people


async def person_by_identity(session: AsyncSession, channel: str, external_id: str) -> Person | None:
    stmt = (
        select_people()
        .join(Identity, Identity.person_id == Person.id)
        .where(Identity.channel == channel, Identity.external_id == external_id, Person.active.is_(True))
    )
    return next(iter(await _people(session, stmt)), None)


# One message is one unit of work, and its steps ask for the same rows again
# (the unit found by triage is shown in the reply, its contact is told, the new
# ticket is named in the notices): rows already in the session are used as they
# are instead of being selected again.


def hold(session: AsyncSession, objects: Iterable[Any]) -> None:
    """Keep rows of this unit of work alive until it ends: the session's identity
    map holds unchanged rows only weakly, and a later step may ask for them."""
    session.info.setdefault("held", []).extend(o for o in objects if o is not None)


def _loaded(session: AsyncSession, model, ids: set[int]) -> dict[int, Any]:
    identity_map = session.sync_session.identity_map
    found = {}
    for i in ids:
        obj = identity_map.get(session.identity_key(model, i))
        if obj is not None:
            found[i] = obj
    return found


def _loaded_where(session: AsyncSession, model, predicate) -> Any | None:
    return next((o for o in session.sync_session.identity_map.values()
                 if isinstance(o, model) and predicate(o)), None)


async def person_by_key(session: AsyncSession, key: str) -> Person | None:
    loaded = _loaded_where(session, Person, lambda p: p.key == key)
    if loaded is not None:
        return loaded
    return next(iter(await _people(session, select_people().where(Person.key == key))), None)


async def people_by_ids(session: AsyncSession, ids: Iterable[int]) -> dict[int, Person]:
    return await by_ids(session, Person, ids, select_people())


async def all_offices(session: AsyncSession) -> list[Office]:
    """Every office; read once per unit of work (several steps of one message ask)."""
    cached = session.info.get("all_offices")
    if cached is None:
        cached = session.info["all_offices"] = list((await session.scalars(select(Office).order_by(Office.id))).all())
    return cached


async def office_by_id(session: AsyncSession, office_id: int) -> Office | None:
    return next((o for o in await all_offices(session) if o.id == office_id), None)


async def office_by_key(session: AsyncSession, key: str) -> Office | None:
    return await session.scalar(select(Office).where(Office.key == key))


def descendants(office_id: int, offices: Iterable[Office]) -> frozenset[int]:
    """The office and every office below it (a city office oversees its counties)."""
    children: dict[int | None, list[int]] = {}
    for office in offices:
        children.setdefault(office.parent_id, []).append(office.id)
    found, todo = set(), [office_id]
    while todo:
        current = todo.pop()
        if current not in found:
            found.add(current)
            todo.extend(children.get(current, ()))
    return frozenset(found)


async def actor_for(session: AsyncSession, person: Person) -> Actor:
    scope: frozenset[int] = frozenset()
    if "office" in person.roles and person.office_id is not None:
        scope = descendants(person.office_id, await all_offices(session))
    return Actor(person_id=person.id, roles=person.roles, unit_id=person.unit_id, office_scope=scope)


async def office_staff(session: AsyncSession, office_id: int) -> list[Person]:
    stmt = select_people().where(Person.office_id == office_id, Person.active.is_(True)).order_by(Person.id)
    return [p for p in await _people(session, stmt) if "office" in p.roles]


async def by_ids(session: AsyncSession, model, ids: Iterable[int], query: Select | None = None) -> dict[int, Any]:
    """Rows of `model` by primary key: those this unit of work holds, the rest in
    one query (`query`, default `select(model)`)."""
    ids = {i for i in ids if i is not None}
    found = _loaded(session, model, ids)
    if missing := ids - found.keys():
        stmt = (select(model) if query is None else query).where(model.id.in_(missing))
        rows = (await session.scalars(stmt)).unique().all()
        hold(session, rows)
        found |= {row.id: row for row in rows}
    return found


async def units_by_ids(session: AsyncSession, ids: Iterable[int]) -> dict[int, Unit]:
    return await by_ids(session, Unit, ids)


async def projects_by_ids(session: AsyncSession, ids: Iterable[int]) -> dict[int, Project]:
    return await by_ids(session, Project, ids)


@dataclass(frozen=True)
class UnitRow:
    """A unit's identifying columns, read without building ORM objects."""

    id: int
    key: str
    name: str
    unit_type: str
    office_id: int


async def unit_rows(session: AsyncSession) -> list[UnitRow]:
    rows = await session.execute(select(Unit.id, Unit.key, Unit.name, Unit.unit_type, Unit.office_id)
                                 .order_by(Unit.id))
    return [UnitRow(*row) for row in rows]


async def all_units(session: AsyncSession) -> list[Unit]:
    units = list((await session.scalars(select(Unit).order_by(Unit.id))).all())
    hold(session, units)
    return units


async def find_unit(session: AsyncSession, text: str) -> list[Unit]:
    """Units whose key or name matches what an officer typed (exact first, then partial)."""
    text = text.strip()
    units = await all_units(session)
    exact = [u for u in units if text in (u.key, u.name)]
    return exact or [u for u in units if text and text in u.name]


async def projects_of_liaison(session: AsyncSession, person_id: int) -> list[Project]:
    stmt = (select(Project).join(project_liaisons, project_liaisons.c.project_id == Project.id)
            .where(project_liaisons.c.person_id == person_id).order_by(Project.id))
    projects = list((await session.scalars(stmt)).all())
    hold(session, projects)
    return projects


# -- tickets ---------------------------------------------------------------------

def format_ticket_number(prefix: str, year: int, seq: int) -> str:
    """`YD-2026-0007`: office prefix, year, sequence within that office and year."""
    return f"{prefix}-{year}-{seq:04d}"


async def allocate_ticket_number(session: AsyncSession, office: Office, year: int) -> str:
    # One upsert: the first ticket of an office's year creates its counter at 1;
    # the row lock it takes (PostgreSQL) or the write lock (SQLite) serialises
    # concurrent reports, so no two tickets get the same number.
    insert = postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(TicketCounter).values(office_id=office.id, year=year, last=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=["office_id", "year"], set_={"last": TicketCounter.last + 1}
    ).returning(TicketCounter.last)
    seq = (await session.execute(stmt)).scalar_one()
    return format_ticket_number(office.ticket_prefix, year, seq)


async def ticket_by_number(session: AsyncSession, number: str, *, for_update: bool = False) -> Ticket | None:
    if not for_update:
        loaded = _loaded_where(session, Ticket, lambda t: t.number == number)
        if loaded is not None:
            return loaded
    stmt = select(Ticket).where(Ticket.number == number)
    if for_update:
        stmt = stmt.with_for_update()
    ticket = await session.scalar(stmt)
    hold(session, [ticket])
    return ticket


async def ticket_events(session: AsyncSession, ticket_id: int) -> list[TicketEvent]:
    stmt = select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.at, TicketEvent.id)
    return list((await session.scalars(stmt)).all())


async def open_tickets(session: AsyncSession, *, reporter_id: int | None = None, unit_id: int | None = None,
                       office_ids: Iterable[int] | None = None, limit: int = 50) -> list[Ticket]:
    stmt = select(Ticket).where(Ticket.is_open.is_(True))
    if reporter_id is not None:
        stmt = stmt.where(Ticket.reporter_id == reporter_id)
    if unit_id is not None:
        stmt = stmt.where(Ticket.unit_id == unit_id)
    if office_ids is not None:
        stmt = stmt.where(Ticket.office_id.in_(list(office_ids)))
    stmt = stmt.order_by(Ticket.next_action_at.is_(None), Ticket.next_action_at, Ticket.id).limit(limit)
    return list((await session.scalars(stmt)).all())
