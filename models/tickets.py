"""Creating tickets and making moves: the workflow plus its audit trail, in the
caller's unit of work."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from config.policy import Policy
from models import workflow
from models.repo import UnitRow, allocate_ticket_number, hold
from models.tables import Office, Ticket, TicketEvent, TriageCorrection, Unit
from models.workflow import Actor, Move


async def create_ticket(
    session: AsyncSession,
    *,
    office: Office,
    text: str,
    now: datetime,
    policy: Policy,
    reporter_id: int | None,
    project_id: int | None,
    tier: str,
    unit_type: str | None,
    triage: dict[str, Any],
    proposed_unit: Unit | UnitRow | None,
    secondary_unit_types: list[str] | None = None,
) -> tuple[Ticket, TicketEvent]:
    local_year = now.astimezone(policy.clock.tz).year
    ticket = Ticket(
        number=await allocate_ticket_number(session, office, local_year),
        office_id=office.id,
        project_id=project_id,
        text=text,
        tier=tier,
        unit_type=unit_type,
        triage=triage,
        needs_office=proposed_unit is None,
        proposed_unit_id=proposed_unit.id if proposed_unit else None,
        secondary_unit_types=list(secondary_unit_types or []),
        extensions=[],
    )
    event = workflow.open_ticket(ticket, reporter_id=reporter_id, now=now, policy=policy)
    session.add(ticket)
    await session.flush()
    hold(session, [ticket])
    event.ticket_id = ticket.id
    session.add(event)
    return ticket, event


async def make_move(
    session: AsyncSession,
    ticket: Ticket,
    move: Move,
    actor: Actor,
    now: datetime,
    policy: Policy,
    **arguments: Any,
) -> TicketEvent:
    """Check and apply a move and store its event."""
    event = workflow.apply(ticket, move, actor, now, policy, **arguments)
    session.add(event)
    await session.flush()
    return event


async def record_correction(session: AsyncSession, ticket: Ticket, new_unit: Unit, now: datetime) -> None:
    """The office sent the ticket to another type than triage proposed: keep it for learning."""
    proposed = ticket.triage.get("unit_type") if ticket.triage else ticket.unit_type
    if new_unit.unit_type != proposed:
        session.add(TriageCorrection(ticket_id=ticket.id, at=now, text=ticket.text,
                                     proposed_type=proposed, correct_type=new_unit.unit_type))
