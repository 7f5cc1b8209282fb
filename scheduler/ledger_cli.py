"""What the `kpbot ledger`, `kpbot report` and `kpbot digest` commands print or write."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from config.policy import CADENCES, Policy, load_policy
from config.settings import Settings
from models import repo
from models.tables import Office, Person, Project, Ticket, Unit
from scheduler.digest import build_digest, render_digest_markdown
from scheduler.ledger_export import ledger_rows, parse_statuses, write_ledger_xlsx
from scheduler.ranking import monthly_ranking, render_ranking_chart, render_ranking_markdown, write_ranking_xlsx

DUE_COLUMNS = ("dispatch_due_at", "ack_due_at", "feedback_due_at", "resolve_due_at", "confirm_due_at")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def office_ids_for(session: AsyncSession, office_key: str | None) -> list[int] | None:
    """The office and those below it; None (no filter) when no office is named."""
    if not office_key:
        return None
    office = await repo.office_by_key(session, office_key)
    if office is None:
        raise SystemExit(f"kpbot: unknown office {office_key!r}")
    return sorted(repo.descendants(office.id, await repo.all_offices(session)))


async def ledger_list(session: AsyncSession, *, status: str | None, office: str | None, now: datetime) -> list[dict]:
    contact = aliased(Person)
    stmt = (
        select(Ticket, Project.name, Office.county, Office.short_name, Unit.name, contact.name)
        .join(Office, Office.id == Ticket.office_id)
        .outerjoin(Project, Project.id == Ticket.project_id)
        .outerjoin(Unit, Unit.id == Ticket.unit_id)
        .outerjoin(contact, contact.id == Unit.contact_id)
        .order_by(Ticket.id)
    )
    statuses = _statuses(status)
    if statuses is not None:
        stmt = stmt.where(Ticket.status.in_(sorted(statuses)))
    ids = await office_ids_for(session, office)
    if ids is not None:
        stmt = stmt.where(Ticket.office_id.in_(ids))
    rows = []
    for ticket, project, county, office_name, unit, contact_name in (await session.execute(stmt)).all():
        rows.append({
            "number": ticket.number, "project": project, "county": county or office_name, "text": ticket.text,
            "unit": unit, "contact": contact_name, "status": ticket.status, "tier": ticket.tier,
            "flagged": ticket.flagged, "created_at": _iso(ticket.created_at),
            "dispatched_at": _iso(ticket.dispatched_at),
            **{column: _iso(getattr(ticket, column)) for column in DUE_COLUMNS},
            "closed_at": _iso(ticket.closed_at),
        })
    return rows


def _statuses(status: str | None) -> frozenset[str] | None:
    try:
        return parse_statuses(status)
    except ValueError as exc:
        raise SystemExit(f"kpbot: {exc}") from None


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        raise SystemExit(f"kpbot: {value!r} is not a date (YYYY-MM-DD)") from None


async def ledger_export(session: AsyncSession, out: Path, *, office: str | None, status: str | None,
                        date_from: str | None, date_to: str | None, now: datetime,
                        policy: Policy | None = None) -> int:
    _statuses(status)  # an unknown status is an error here, not a traceback
    rows = await ledger_rows(session, office_ids=await office_ids_for(session, office), status=status,
                             date_from=_date(date_from), date_to=_date(date_to), now=now, policy=policy)
    tz = (policy.clock.tz if policy else None)
    await asyncio.to_thread(write_ledger_xlsx, rows, out, *((tz,) if tz else ()))
    return len(rows)


async def monthly_report(session: AsyncSession, month: str, out: Path, settings: Settings) -> list[Path]:
    try:
        first = date.fromisoformat(f"{month}-01")
    except ValueError:
        raise SystemExit(f"kpbot: --month must be YYYY-MM, not {month!r}") from None
    policy = load_policy(settings.config_file("policy.toml"))
    ranking = await monthly_ranking(session, first, policy.clock.tz, policy=policy)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"ranking-{first:%Y-%m}"
    xlsx = await asyncio.to_thread(write_ranking_xlsx, ranking, out / f"{stem}.xlsx")
    png = await asyncio.to_thread(render_ranking_chart, ranking, out / f"{stem}.png")
    markdown = out / f"{stem}.md"
    markdown.write_text(render_ranking_markdown(ranking, policy.clock.tz), encoding="utf-8")
    return [Path(xlsx), Path(png), markdown]


async def digest_text(session: AsyncSession, office: str | None, cadence: str, now: datetime,
                      settings: Settings) -> list[str]:
    if cadence not in CADENCES:
        raise SystemExit(f"kpbot: unknown cadence {cadence!r}; expected one of {', '.join(CADENCES)}")
    policy = load_policy(settings.config_file("policy.toml"))
    offices = await repo.all_offices(session)
    target = next((o for o in offices if o.key == office), None) if office else \
        next((o for o in offices if o.parent_id is None), None)
    if target is None:
        raise SystemExit(f"kpbot: unknown office {office!r}")
    digest = await build_digest(session, target.id, now, policy, cadence)
    return render_digest_markdown(digest)
