"""Every move from every status by every party: allowed exactly where the rules say."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest

from config.policy import default_policy
from models.tables import Ticket
from models.workflow import (
    RULES,
    SYSTEM,
    Actor,
    Move,
    Party,
    Status,
    WorkflowError,
    apply,
    open_ticket,
    outstanding_deadlines,
)

POLICY = default_policy()
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)  # 10:00 in Shanghai
OFFICE_ID, OTHER_OFFICE_ID, UNIT_ID, OTHER_UNIT_ID, REPORTER_ID = 1, 2, 10, 11, 100

ACTORS = {
    "office": Actor(person_id=1, roles=frozenset({"office"}), office_scope=frozenset({OFFICE_ID})),
    "other_office": Actor(person_id=2, roles=frozenset({"office"}), office_scope=frozenset({OTHER_OFFICE_ID})),
    "unit_contact": Actor(person_id=3, roles=frozenset({"unit_contact"}), unit_id=UNIT_ID),
    "unit_leader": Actor(person_id=4, roles=frozenset({"unit_leader"}), unit_id=UNIT_ID),
    "other_unit": Actor(person_id=5, roles=frozenset({"unit_contact"}), unit_id=OTHER_UNIT_ID),
    "reporter": Actor(person_id=REPORTER_ID, roles=frozenset({"liaison"})),
    "other_liaison": Actor(person_id=101, roles=frozenset({"liaison"})),
    "project_leader": Actor(person_id=102, roles=frozenset({"project_leader"})),
}
PARTIES = {
    "office": {Party.OFFICE},
    "other_office": set(),
    "unit_contact": {Party.UNIT},
    "unit_leader": {Party.UNIT},
    "other_unit": set(),
    "reporter": {Party.REPORTER},
    "other_liaison": set(),
    "project_leader": set(),
}


def make_ticket(status: Status, tier: str = "major") -> Ticket:
    ticket = Ticket(id=1, number="SF-2026-0001", office_id=OFFICE_ID, text="用地指标迟迟批不下来", tier=tier,
                    triage={}, extensions=[], secondary_unit_types=[], reopen_count=0, escalation_level=0,
                    flagged=False)
    open_ticket(ticket, reporter_id=REPORTER_ID, now=NOW - timedelta(days=1), policy=POLICY)
    ticket.status = status
    ticket.unit_id = UNIT_ID if status != Status.REPORTED else None
    ticket.resolve_due_at = NOW + timedelta(days=5)
    return ticket


def arguments_for(move: Move, ticket: Ticket) -> dict:
    """Arguments that make the move valid apart from who and when."""
    if move in (Move.DISPATCH, Move.REASSIGN):
        return {"unit_id": OTHER_UNIT_ID}
    if move == Move.SUBMIT_PLAN:
        return {"note": "分三步推进", "due": NOW + timedelta(days=20)}
    if move == Move.REQUEST_EXTENSION:
        return {"note": "需要省厅批复", "days": 5}
    if move in (Move.GRANT_EXTENSION, Move.REFUSE_EXTENSION):
        ticket.pending_extension = {"days": 5, "reason": "x", "requested_at": NOW.isoformat()}
        return {"note": "理由不充分"}
    if move == Move.FLAG:
        return {"flag": {"method": "专班推进", "unit": "市规划和自然资源局", "leader": "分管副市长",
                         "person": "科长", "due": "2026-12-31"}}
    if move == Move.UNFLAG:
        ticket.flagged = True
        return {}
    return {"note": "已处理"}


MOVES = [m for m in Move if m != Move.CREATE]


@pytest.mark.parametrize("move,status,who", list(itertools.product(MOVES, Status, ACTORS)))
def test_every_move_status_and_party(move, status, who):
    ticket = make_ticket(status)
    args = arguments_for(move, ticket)
    rule = RULES[move]
    expected = bool(PARTIES[who] & rule.parties) and status in rule.from_statuses
    before = {c: getattr(ticket, c) for c in ("status", "unit_id", "flagged", "resolve_due_at", "closed_at")}
    if expected:
        event = apply(ticket, move, ACTORS[who], NOW, POLICY, **args)
        assert event.kind == move
        assert event.from_status == status
        assert event.to_status == (rule.to_status or status)
        assert ticket.status == (rule.to_status or status)
        assert event.actor_id == ACTORS[who].person_id
        assert event.at == NOW
        assert ticket.earliest_due_at == min((due for _, due in outstanding_deadlines(ticket)), default=None)
    else:
        with pytest.raises(WorkflowError) as error:
            apply(ticket, move, ACTORS[who], NOW, POLICY, **args)
        assert error.value.code in ("forbidden", "wrong_state")
        assert {c: getattr(ticket, c) for c in before} == before, "a refused move changed the ticket"


def test_the_whole_life_and_deadlines():
    ticket = make_ticket(Status.REPORTED, tier="general")
    office, unit, reporter = ACTORS["office"], ACTORS["unit_contact"], ACTORS["reporter"]
    apply(ticket, Move.DISPATCH, office, NOW, POLICY, unit_id=UNIT_ID)
    assert ticket.ack_due_at and ticket.feedback_due_at and ticket.resolve_due_at
    assert [s for s, _ in outstanding_deadlines(ticket)] == ["ack", "feedback", "resolve"]
    apply(ticket, Move.ACKNOWLEDGE, unit, NOW + timedelta(hours=1), POLICY)
    apply(ticket, Move.FEEDBACK, unit, NOW + timedelta(days=1), POLICY, note="已协调")
    assert [s for s, _ in outstanding_deadlines(ticket)] == ["resolve"]
    apply(ticket, Move.RESOLVE, unit, NOW + timedelta(days=2), POLICY, note="已解决")
    apply(ticket, Move.REOPEN, reporter, NOW + timedelta(days=2, hours=1), POLICY, note="还没通电")
    assert ticket.status == Status.IN_PROGRESS and ticket.reopen_count == 1 and ticket.satisfied_first_time is False
    apply(ticket, Move.RESOLVE, unit, NOW + timedelta(days=3), POLICY, note="已通电")
    apply(ticket, Move.CONFIRM, reporter, NOW + timedelta(days=3, hours=2), POLICY)
    assert ticket.status == Status.CLOSED and not ticket.is_open and ticket.next_action_at is None
    assert ticket.satisfied_first_time is False


def test_system_actor_may_dispatch():
    ticket = make_ticket(Status.REPORTED)
    apply(ticket, Move.DISPATCH, SYSTEM, NOW, POLICY, unit_id=UNIT_ID)
    assert ticket.status == Status.DISPATCHED and ticket.unit_id == UNIT_ID


@pytest.mark.parametrize(
    "move,status,args,code",
    [
        (Move.DISPATCH, Status.REPORTED, {}, "unit_required"),
        (Move.REASSIGN, Status.DISPATCHED, {"unit_id": UNIT_ID}, "same_unit"),
        (Move.FEEDBACK, Status.ACKNOWLEDGED, {"note": "  "}, "note_required"),
        (Move.RESOLVE, Status.IN_PROGRESS, {}, "note_required"),
        (Move.REQUEST_EXTENSION, Status.IN_PROGRESS, {"note": "x", "days": 0}, "bad_days"),
        (Move.REQUEST_EXTENSION, Status.IN_PROGRESS, {"note": "x", "days": 999}, "bad_days"),
        (Move.GRANT_EXTENSION, Status.IN_PROGRESS, {}, "no_pending_extension"),
        (Move.FLAG, Status.IN_PROGRESS, {"flag": {"method": "x"}}, "flag_incomplete"),
        (Move.UNFLAG, Status.IN_PROGRESS, {}, "not_flagged"),
        (Move.SUBMIT_PLAN, Status.IN_PROGRESS, {"note": "x", "due": NOW - timedelta(days=1)}, "bad_date"),
    ],
)
def test_argument_errors_leave_ticket_alone(move, status, args, code):
    ticket = make_ticket(status)
    who = ACTORS["office"] if Party.OFFICE in RULES[move].parties else ACTORS["unit_contact"]
    before = (ticket.status, ticket.unit_id, ticket.pending_extension, ticket.flagged)
    with pytest.raises(WorkflowError) as error:
        apply(ticket, move, who, NOW, POLICY, **args)
    assert error.value.code == code
    assert (ticket.status, ticket.unit_id, ticket.pending_extension, ticket.flagged) == before


def test_plan_only_for_major_problems():
    ticket = make_ticket(Status.IN_PROGRESS, tier="general")
    with pytest.raises(WorkflowError) as error:
        apply(ticket, Move.SUBMIT_PLAN, ACTORS["unit_contact"], NOW, POLICY, note="x", due=NOW + timedelta(days=9))
    assert error.value.code == "not_major"


def test_extension_granted_moves_the_deadline_and_keeps_history():
    ticket = make_ticket(Status.IN_PROGRESS)
    old_due = ticket.resolve_due_at
    apply(ticket, Move.REQUEST_EXTENSION, ACTORS["unit_contact"], NOW, POLICY, note="等省里批复", days=10)
    with pytest.raises(WorkflowError) as error:
        apply(ticket, Move.REQUEST_EXTENSION, ACTORS["unit_contact"], NOW, POLICY, note="再要", days=3)
    assert error.value.code == "extension_pending"
    apply(ticket, Move.GRANT_EXTENSION, ACTORS["office"], NOW, POLICY)
    assert ticket.resolve_due_at == old_due + timedelta(days=10)
    assert ticket.extensions[0]["granted"] is True and ticket.pending_extension is None
    apply(ticket, Move.REQUEST_EXTENSION, ACTORS["unit_contact"], NOW, POLICY, note="还要", days=3)
    apply(ticket, Move.REFUSE_EXTENSION, ACTORS["office"], NOW, POLICY, note="不批")
    assert ticket.resolve_due_at == old_due + timedelta(days=10)
    assert [e["granted"] for e in ticket.extensions] == [True, False]


def test_county_office_does_not_reach_city_tickets_but_city_reaches_county():
    ticket = make_ticket(Status.REPORTED)
    county = Actor(person_id=7, roles=frozenset({"office"}), office_scope=frozenset({OTHER_OFFICE_ID}))
    city = Actor(person_id=8, roles=frozenset({"office"}), office_scope=frozenset({OFFICE_ID, OTHER_OFFICE_ID}))
    with pytest.raises(WorkflowError):
        apply(ticket, Move.DISPATCH, county, NOW, POLICY, unit_id=UNIT_ID)
    apply(ticket, Move.DISPATCH, city, NOW, POLICY, unit_id=UNIT_ID)
