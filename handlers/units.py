"""From a triaged unit type to a real unit of the organisation (属地 resolution)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.triage import UnitRef, resolve_unit
from models import repo
from models.repo import UnitRow
from models.tables import Project

Resolver = Callable[[str | None], UnitRow | None]


async def unit_resolver(session: AsyncSession, office_id: int | None) -> Resolver:
    """A function type -> unit (its id, key and name) for problems of a project in
    office `office_id` (None: the top, city, level)."""
    offices = await repo.all_offices(session)
    units = await repo.unit_rows(session)
    key_of = {o.id: o.key for o in offices}
    parents = {o.key: key_of.get(o.parent_id) for o in offices}
    top = next((o.key for o in offices if o.parent_id is None), None)
    office_key = key_of.get(office_id, top)
    refs = [UnitRef(key=u.key, name=u.name, unit_type=u.unit_type, office_key=key_of[u.office_id]) for u in units]
    by_key = {u.key: u for u in units}

    def resolve(unit_type: str | None) -> UnitRow | None:
        if unit_type is None or office_key is None:
            return None
        ref = resolve_unit(unit_type, office_key, refs, parents)
        return by_key[ref.key] if ref else None

    return resolve


async def resolve_for_project(session: AsyncSession, project: str | None) -> Resolver:
    """`project` is a project's name or key; None resolves at city level."""
    if not project:
        return await unit_resolver(session, None)
    row = await session.scalar(select(Project).where(or_(Project.key == project, Project.name == project)))
    if row is None:
        raise SystemExit(f"kpbot: unknown project {project!r}")
    return await unit_resolver(session, row.office_id)
