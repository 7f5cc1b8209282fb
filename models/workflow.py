"""Ticket states, allowed moves and who may make them.

`apply(ticket, move, actor, now, ...)` checks the move, changes the ticket and
returns the TicketEvent to store. A wrong move raises `WorkflowError` with a
code the handlers turn into a Chinese answer; the ticket is left unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from config.policy import Policy
from models import deadlines
from models.tables import Ticket, TicketEvent


class Status(StrEnum):
    REPORTED = "reported"
    DISPATCHED = "dispatched"
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"
    RETURNED = "returned"


OPEN_STATUSES = frozenset(Status) - {Status.CLOSED}
WITH_UNIT = frozenset({Status.DISPATCHED, Status.ACKNOWLEDGED, Status.IN_PROGRESS})


class Move(StrEnum):
    CREATE = "create"
    DISPATCH = "dispatch"
    REASSIGN = "reassign"
    ACKNOWLEDGE = "acknowledge"
    FEEDBACK = "feedback"
    SUBMIT_PLAN = "submit_plan"
    RESOLVE = "resolve"
    CONFIRM = "confirm"
    REOPEN = "reopen"
    RETURN = "return"
    REQUEST_EXTENSION = "request_extension"
    GRANT_EXTENSION = "grant_extension"
    REFUSE_EXTENSION = "refuse_extension"
    FLAG = "flag"
    UNFLAG = "unflag"
    SUPPLEMENT = "supplement"
    URGE = "urge"


class Party(StrEnum):
    """Who may make a move, relative to the ticket."""

    OFFICE = "office"  # office staff overseeing the ticket's office
    UNIT = "unit"  # the 13710 contact (or leader) of the ticket's current unit
    REPORTER = "reporter"  # the liaison who reported it
    LIAISON = "liaison"  # any liaison (creating a report)


@dataclass(frozen=True)
class Rule:
    parties: frozenset[Party]
    from_statuses: frozenset[Status]
    to_status: Status | None  # None: the status does not change


def _rule(parties, from_statuses, to_status=None) -> Rule:
    return Rule(frozenset(parties), frozenset(from_statuses), to_status)


RULES: dict[Move, Rule] = {
    Move.DISPATCH: _rule({Party.OFFICE}, {Status.REPORTED, Status.RETURNED}, Status.DISPATCHED),
    Move.REASSIGN: _rule({Party.OFFICE}, WITH_UNIT | {Status.RETURNED, Status.REPORTED}, Status.DISPATCHED),
    Move.ACKNOWLEDGE: _rule({Party.UNIT}, {Status.DISPATCHED}, Status.ACKNOWLEDGED),
    Move.FEEDBACK: _rule({Party.UNIT}, WITH_UNIT, Status.IN_PROGRESS),
    Move.SUBMIT_PLAN: _rule({Party.UNIT}, WITH_UNIT, Status.IN_PROGRESS),
    Move.RESOLVE: _rule({Party.UNIT}, {Status.ACKNOWLEDGED, Status.IN_PROGRESS}, Status.RESOLVED),
    Move.CONFIRM: _rule({Party.REPORTER, Party.OFFICE}, {Status.RESOLVED}, Status.CLOSED),
    Move.REOPEN: _rule({Party.REPORTER, Party.OFFICE}, {Status.RESOLVED}, Status.IN_PROGRESS),
    Move.RETURN: _rule({Party.UNIT}, WITH_UNIT, Status.RETURNED),
    Move.REQUEST_EXTENSION: _rule({Party.UNIT}, WITH_UNIT),
    Move.GRANT_EXTENSION: _rule({Party.OFFICE}, WITH_UNIT),
    Move.REFUSE_EXTENSION: _rule({Party.OFFICE}, WITH_UNIT),
    Move.FLAG: _rule({Party.OFFICE}, OPEN_STATUSES),
    Move.UNFLAG: _rule({Party.OFFICE}, OPEN_STATUSES),
    Move.SUPPLEMENT: _rule({Party.REPORTER, Party.OFFICE}, OPEN_STATUSES),
    Move.URGE: _rule({Party.OFFICE}, WITH_UNIT),
}


class WorkflowError(Exception):
    """A move that is not allowed. `code` is stable; handlers translate it."""

    def __init__(self, code: str, detail: str = "", **context: Any):
        self.code = code
        self.detail = detail
        self.context = context
        super().__init__(f"{code}: {detail}" if detail else code)


@dataclass(frozen=True)
class Actor:
    """The person making a move, with what they are responsible for."""

    person_id: int | None  # None: the system (the clock)
    roles: frozenset[str] = frozenset()
    unit_id: int | None = None
    office_scope: frozenset[int] = field(default_factory=frozenset)  # offices they oversee

    @property
    def is_system(self) -> bool:
        return self.person_id is None


SYSTEM = Actor(person_id=None)


def parties_of(actor: Actor, ticket: Ticket) -> frozenset[Party]:
    parties: set[Party] = set()
    if actor.is_system or ("office" in actor.roles and ticket.office_id in actor.office_scope):
        parties.add(Party.OFFICE)
    if actor.unit_id is not None and actor.unit_id == ticket.unit_id and (
        actor.roles & {"unit_contact", "unit_leader"}
    ):
        parties.add(Party.UNIT)
    if actor.person_id is not None and actor.person_id == ticket.reporter_id:
        parties.add(Party.REPORTER)
    return frozenset(parties)


def check(ticket: Ticket, move: Move, actor: Actor) -> Rule:
    rule = RULES[move]
    if not (parties_of(actor, ticket) & rule.parties):
        raise WorkflowError("forbidden", f"{move} needs one of {sorted(rule.parties)}", move=move)
    if Status(ticket.status) not in rule.from_statuses:
        raise WorkflowError("wrong_state", f"{move} not allowed in {ticket.status}", move=move, status=ticket.status)
    return rule


# -- creating -----------------------------------------------------------------


def open_ticket(
    ticket: Ticket, *, reporter_id: int | None, now: datetime, policy: Policy
) -> TicketEvent:
    """Fill in a new ticket's status and first deadline; returns its creation event."""
    ticket.status = Status.REPORTED
    ticket.is_open = True
    ticket.created_at = now
    ticket.reporter_id = reporter_id
    ticket.dispatch_due_at = deadlines.dispatch_due(now, policy)
    refresh_next_action(ticket, policy, now)
    return _event(ticket, Move.CREATE, reporter_id, now, None, Status.REPORTED, ticket.text)


# -- moves -----------------------------------------------------------------------


def apply(
    ticket: Ticket,
    move: Move,
    actor: Actor,
    now: datetime,
    policy: Policy,
    *,
    note: str | None = None,
    unit_id: int | None = None,
    days: int | None = None,
    due: datetime | None = None,
    flag: dict[str, Any] | None = None,
) -> TicketEvent:
    rule = check(ticket, move, actor)
    before = Status(ticket.status)
    data: dict[str, Any] = {}
    effect = _EFFECTS.get(move)
    if effect is not None:
        data = effect(ticket, now, policy, note=note, unit_id=unit_id, days=days, due=due, flag=flag) or {}
    if rule.to_status is not None:
        ticket.status = rule.to_status
    ticket.is_open = ticket.status != Status.CLOSED
    refresh_next_action(ticket, policy, now)
    after = Status(ticket.status)
    return _event(ticket, move, actor.person_id, now, before, after, note, data)


def _dispatch(ticket: Ticket, now, policy, *, unit_id, **_):
    if unit_id is None:
        raise WorkflowError("unit_required", "dispatch needs a unit")
    previous = ticket.unit_id
    ticket.unit_id = unit_id
    ticket.dispatched_at = now
    ticket.acknowledged_at = None
    ticket.first_feedback_at = None
    ticket.pending_extension = None
    due = deadlines.compute_deadlines(now, ticket.tier, policy, plan_due=_plan_due(ticket))
    ticket.ack_due_at = due.ack_due_at
    ticket.feedback_due_at = due.feedback_due_at
    ticket.resolve_due_at = due.resolve_due_at
    return {"from_unit_id": previous, "to_unit_id": unit_id}


def _reassign(ticket: Ticket, now, policy, *, unit_id, **kw):
    if unit_id is not None and unit_id == ticket.unit_id and ticket.status != Status.RETURNED:
        raise WorkflowError("same_unit", "the ticket is already with that unit")
    return _dispatch(ticket, now, policy, unit_id=unit_id, **kw)


def _acknowledge(ticket: Ticket, now, policy, **_):
    ticket.acknowledged_at = now
    return {"late": bool(ticket.ack_due_at and now > ticket.ack_due_at)}


def _feedback(ticket: Ticket, now, policy, *, note, **_):
    _require_note(note)
    if ticket.acknowledged_at is None:
        ticket.acknowledged_at = now
    first = ticket.first_feedback_at is None
    if first:
        ticket.first_feedback_at = now
    ticket.last_progress_at = now
    ticket.escalation_level = 0
    return {"first": first}


def _submit_plan(ticket: Ticket, now, policy, *, note, due, **_):
    if ticket.tier != "major":
        raise WorkflowError("not_major", "a written plan is for major problems")
    _require_note(note)
    if due is None or due <= now:
        raise WorkflowError("bad_date", "the plan needs a future time node")
    data = _feedback(ticket, now, policy, note=note)
    ticket.plan = {"text": note, "due_at": due.isoformat(), "submitted_at": now.isoformat()}
    ticket.resolve_due_at = due
    return data | {"plan_due_at": due.isoformat()}


def _resolve(ticket: Ticket, now, policy, *, note, **_):
    _require_note(note)
    ticket.resolution = note
    ticket.resolved_at = now
    ticket.escalation_level = 0
    ticket.last_progress_at = now
    ticket.pending_extension = None
    ticket.confirm_due_at = deadlines.confirm_due(now, policy)
    return {"late": bool(ticket.resolve_due_at and now > ticket.resolve_due_at)}


def _confirm(ticket: Ticket, now, policy, **_):
    if ticket.satisfied_first_time is None:
        ticket.satisfied_first_time = True
    ticket.closed_at = now
    ticket.confirm_due_at = None
    return {}


def _reopen(ticket: Ticket, now, policy, *, note, **_):
    _require_note(note)
    ticket.satisfied_first_time = False if ticket.satisfied_first_time is None else ticket.satisfied_first_time
    ticket.reopen_count += 1
    ticket.escalation_level = 0
    ticket.resolved_at = None
    ticket.confirm_due_at = None
    ticket.last_progress_at = now
    # The unit gets the general resolution time again from the reopening.
    ticket.resolve_due_at = deadlines.resolve_due(now, ticket.tier, policy)
    return {"reopen_count": ticket.reopen_count}


def _return(ticket: Ticket, now, policy, *, note, **_):
    _require_note(note)
    ticket.pending_extension = None
    ticket.dispatch_due_at = deadlines.dispatch_due(now, policy)
    return {"from_unit_id": ticket.unit_id}


def _request_extension(ticket: Ticket, now, policy, *, note, days, **_):
    _require_note(note)
    if ticket.pending_extension:
        raise WorkflowError("extension_pending", "an extension request is already waiting")
    if not days or days < 1 or days > policy.extension.max_days:
        raise WorkflowError("bad_days", "days out of range", max_days=policy.extension.max_days)
    ticket.pending_extension = {"days": days, "reason": note, "requested_at": now.isoformat()}
    return {"days": days}


def _grant_extension(ticket: Ticket, now, policy, **_):
    request = _pending(ticket)
    old_due = ticket.resolve_due_at
    ticket.resolve_due_at = deadlines.extend(old_due or now, request["days"], policy)
    ticket.extensions = [
        *ticket.extensions,
        request | {"granted": True, "decided_at": now.isoformat(), "old_due_at": _iso(old_due),
                   "new_due_at": ticket.resolve_due_at.isoformat()},
    ]
    ticket.pending_extension = None
    return {"days": request["days"], "new_due_at": ticket.resolve_due_at.isoformat()}


def _refuse_extension(ticket: Ticket, now, policy, *, note, **_):
    request = _pending(ticket)
    ticket.extensions = [*ticket.extensions, request | {"granted": False, "decided_at": now.isoformat(), "note": note}]
    ticket.pending_extension = None
    return {"days": request["days"]}


def _flag(ticket: Ticket, now, policy, *, flag, **_):
    missing = [k for k in FLAG_FIELDS if not (flag or {}).get(k)]
    if missing:
        raise WorkflowError("flag_incomplete", "the five must be in place", missing=missing)
    ticket.flagged = True
    ticket.flag = dict(flag) | {"flagged_at": now.isoformat()}
    return {"flag": ticket.flag}


def _unflag(ticket: Ticket, now, policy, **_):
    if not ticket.flagged:
        raise WorkflowError("not_flagged", "the ticket is not flagged")
    ticket.flagged = False
    return {"flag": ticket.flag}


def _supplement(ticket: Ticket, now, policy, *, note, **_):
    _require_note(note)
    return {}


_EFFECTS = {
    Move.DISPATCH: _dispatch,
    Move.REASSIGN: _reassign,
    Move.ACKNOWLEDGE: _acknowledge,
    Move.FEEDBACK: _feedback,
    Move.SUBMIT_PLAN: _submit_plan,
    Move.RESOLVE: _resolve,
    Move.CONFIRM: _confirm,
    Move.REOPEN: _reopen,
    Move.RETURN: _return,
    Move.REQUEST_EXTENSION: _request_extension,
    Move.GRANT_EXTENSION: _grant_extension,
    Move.REFUSE_EXTENSION: _refuse_extension,
    Move.FLAG: _flag,
    Move.UNFLAG: _unflag,
    Move.SUPPLEMENT: _supplement,
}

# 五到位: method, responsible unit, responsible leader, responsible person, deadline.
FLAG_FIELDS = ("method", "unit", "leader", "person", "due")


def _require_note(note: str | None) -> None:
    if not note or not note.strip():
        raise WorkflowError("note_required", "this move needs a text")


def _pending(ticket: Ticket) -> dict[str, Any]:
    if not ticket.pending_extension:
        raise WorkflowError("no_pending_extension", "no extension request is waiting")
    return dict(ticket.pending_extension)


def _plan_due(ticket: Ticket) -> datetime | None:
    if ticket.plan and ticket.plan.get("due_at"):
        return datetime.fromisoformat(ticket.plan["due_at"])
    return None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# -- deadlines still to meet -------------------------------------------------------


def outstanding_deadlines(ticket: Ticket) -> list[tuple[str, datetime]]:
    """The deadlines this ticket still has to meet, as (stage, due time)."""
    status = Status(ticket.status)
    stages: list[tuple[str, datetime | None]] = []
    if status in (Status.REPORTED, Status.RETURNED):
        stages.append(("dispatch", ticket.dispatch_due_at))
    if status == Status.DISPATCHED:
        stages.append(("ack", ticket.ack_due_at))
    if status in WITH_UNIT and ticket.first_feedback_at is None:
        stages.append(("feedback", ticket.feedback_due_at))
    if status in WITH_UNIT:
        stages.append(("resolve", ticket.resolve_due_at))
    if status == Status.RESOLVED:
        stages.append(("confirm", ticket.confirm_due_at))
    return [(stage, due) for stage, due in stages if due is not None]


def refresh_next_action(ticket: Ticket, policy: Policy, now: datetime) -> None:
    """The first moment after `now` the clock has something to say about this
    ticket, and the earliest deadline it still has to meet."""
    from models import reminders  # reminders reads outstanding_deadlines from here

    ticket.earliest_due_at = earliest_due(ticket)
    ticket.next_action_at = None if ticket.status == Status.CLOSED else reminders.next_action_at(ticket, policy, now)


def earliest_due(ticket) -> datetime | None:
    return min((due for _, due in outstanding_deadlines(ticket)), default=None)


def _event(ticket, move, actor_id, now, before, after, note, data=None) -> TicketEvent:
    return TicketEvent(
        ticket_id=ticket.id,
        at=now,
        actor_id=actor_id,
        kind=str(move),
        from_status=str(before) if before else None,
        to_status=str(after) if after else None,
        unit_id=ticket.unit_id,
        note=note,
        data=data or {},
    )
