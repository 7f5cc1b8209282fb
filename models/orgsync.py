"""Upsert a validated organisation (config.org.OrgSpec) into the database.

Idempotent: every row is matched by its key and only changed where the file
differs, so a second load of the same file changes nothing and says so. People
and projects that left the file are kept (their tickets refer to them) but a
person is marked inactive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from config.org import OrgSpec
from models.tables import Identity, Office, Person, PersonRole, Project, Unit


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deactivated: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deactivated)

    def summary(self) -> str:
        if not self.changed:
            return "organisation unchanged"
        return (
            f"organisation updated: {len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.deactivated)} deactivated"
        )


async def sync_org(session: AsyncSession, spec: OrgSpec) -> SyncReport:
    report = SyncReport()
    offices = await _by_key(session, Office)
    units = await _by_key(session, Unit)
    people = await _by_key(session, Person)
    projects = await _by_key(session, Project, selectinload(Project.liaisons))

    for office in spec.offices:  # parents come first in a valid file? not assumed: two passes
        _upsert(session, offices, Office, office.key, report, "office", {
            "name": office.name, "short_name": office.short_name, "level": office.level,
            "county": office.county, "ticket_prefix": office.ticket_prefix,
            "wecom_webhook": office.wecom_webhook, "dingtalk_webhook": office.dingtalk_webhook,
            "dingtalk_webhook_secret": office.dingtalk_webhook_secret,
        })
    await session.flush()
    for office in spec.offices:
        parent_id = offices[office.parent].id if office.parent else None
        _set(offices[office.key], {"parent_id": parent_id}, report, f"office:{office.key}")

    for unit in spec.units:
        _upsert(session, units, Unit, unit.key, report, "unit", {
            "name": unit.name, "unit_type": unit.unit_type, "office_id": offices[unit.office].id,
        })
    await session.flush()

    for person in spec.people:
        _upsert(session, people, Person, person.key, report, "person", {
            "name": person.name,
            "unit_id": units[person.unit].id if person.unit else None,
            "office_id": _person_office_id(person, offices, units, spec),
            "company": person.company, "phone": person.phone,
            "preferred_channel": person.preferred_channel, "active": True,
        }, initial={"role_rows": [], "identities": []})
    await session.flush()
    for person in spec.people:
        row = people[person.key]
        _sync_roles(row, person.roles, report)
        _sync_identities(row, dict(person.identities), report)
    listed = {p.key for p in spec.people}
    for key, row in people.items():
        if key not in listed and row.active:
            row.active = False
            report.deactivated.append(f"person:{key}")

    for unit in spec.units:
        _set(units[unit.key], {"contact_id": people[unit.contact].id, "leader_id": people[unit.leader].id},
             report, f"unit:{unit.key}")

    for project in spec.projects:
        _upsert(session, projects, Project, project.key, report, "project", {
            "name": project.name, "office_id": offices[project.office].id, "level": project.level,
            "company": project.company,
            "leader_id": people[project.leader].id if project.leader else None,
        }, initial={"liaisons": []})
    await session.flush()
    for project in spec.projects:
        row = projects[project.key]
        wanted = [people[k] for k in project.liaisons]
        if {p.id for p in row.liaisons} != {p.id for p in wanted}:
            row.liaisons = wanted
            _note_update(report, f"project:{project.key}")
    await session.flush()
    return report


def _person_office_id(person, offices, units, spec: OrgSpec) -> int | None:
    if person.office:
        return offices[person.office].id
    if person.unit:
        return offices[spec.unit(person.unit).office].id
    return None


async def _by_key(session: AsyncSession, model, *options) -> dict[str, Any]:
    rows = (await session.scalars(select(model).options(*options))).all()
    return {row.key: row for row in rows}


def _upsert(session, existing: dict, model, key: str, report: SyncReport, kind: str, values: dict,
            initial: dict | None = None) -> None:
    row = existing.get(key)
    if row is None:
        row = model(key=key, **values, **(initial or {}))
        session.add(row)
        existing[key] = row
        report.created.append(f"{kind}:{key}")
        return
    _set(row, values, report, f"{kind}:{key}")


def _set(row, values: dict, report: SyncReport, label: str) -> None:
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    if changed:
        _note_update(report, label)


def _note_update(report: SyncReport, label: str) -> None:
    if label not in report.updated and label not in report.created:
        report.updated.append(label)


def _sync_roles(row: Person, roles: tuple[str, ...], report: SyncReport) -> None:
    wanted = set(roles)
    if set(row.roles) == wanted:
        return
    row.role_rows = [r for r in row.role_rows if r.role in wanted] + [
        PersonRole(role=role) for role in sorted(wanted - set(row.roles))
    ]
    _note_update(report, f"person:{row.key}")


def _sync_identities(row: Person, wanted: dict[str, str], report: SyncReport) -> None:
    current = {i.channel: i for i in row.identities}
    if {c: i.external_id for c, i in current.items()} == wanted:
        return
    for channel, identity in current.items():
        if channel in wanted:
            identity.external_id = wanted[channel]
    row.identities = [i for c, i in current.items() if c in wanted] + [
        Identity(channel=c, external_id=e) for c, e in sorted(wanted.items()) if c not in current
    ]
    _note_update(report, f"person:{row.key}")
