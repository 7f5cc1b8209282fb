"""models.reminders (pure): when the clock speaks about a ticket, and to whom;
and the Chinese texts it says (scheduler.texts)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from config.policy import EscalationPolicy, ReminderPolicy, default_policy
from models import deadlines, reminders, workflow
from models.reminders import Reminder, due_reminders, next_action_at
from models.tables import Ticket
from models.workflow import SYSTEM, Actor, Move, Status
from scheduler import texts

POLICY = default_policy()
SH = ZoneInfo("Asia/Shanghai")
UNIT, REPORTER = 10, 100
CONTACT = Actor(person_id=3, roles=frozenset({"unit_contact"}), unit_id=UNIT)
LIAISON = Actor(person_id=REPORTER, roles=frozenset({"liaison"}))


def local(*args) -> datetime:
    return datetime(*args, tzinfo=SH).astimezone(timezone.utc)


def new_ticket(at: datetime, tier: str = "general") -> Ticket:
    ticket = Ticket(id=1, number="YD-2026-0001", office_id=1, text="项目用地指标还没批下来，影响开工", tier=tier,
                    triage={}, extensions=[], secondary_unit_types=[], reopen_count=0, escalation_level=0,
                    flagged=False)
    workflow.open_ticket(ticket, reporter_id=REPORTER, now=at, policy=POLICY)
    return ticket


def dispatched(at: datetime, tier: str = "general") -> Ticket:
    ticket = new_ticket(at - timedelta(hours=1), tier)
    workflow.apply(ticket, Move.DISPATCH, SYSTEM, at, POLICY, unit_id=UNIT)
    return ticket


def timeline(ticket: Ticket, start: datetime, until: datetime, policy=POLICY) -> list[tuple[datetime, list[tuple]]]:
    """Walk the clock as a sweep on time would: each reminder moment and what it says."""
    out = []
    now = start
    while (moment := next_action_at(ticket, policy, now)) is not None and moment <= until:
        said = [(r.stage, r.phase, r.role) for r in due_reminders(ticket, policy, moment, moment)]
        out.append((moment.astimezone(SH).replace(tzinfo=None), said))
        now = moment
    return out


def at(*args) -> datetime:
    return datetime(*args)


# -- the ack deadline (事不过夜) and its escalation -----------------------------------------------


def test_unacknowledged_ticket_climbs_from_contact_to_leader_to_office():
    ticket = dispatched(local(2026, 11, 23, 10, 0))  # ack due Mon 18:00
    assert ticket.ack_due_at == local(2026, 11, 23, 18, 0)
    steps = timeline(ticket, local(2026, 11, 23, 10, 0), local(2026, 11, 27, 9, 0))
    assert steps == [
        (at(2026, 11, 23, 16, 0), [("ack", "before", "unit_contact")]),  # 2 hours before
        (at(2026, 11, 23, 18, 0), [("ack", "due", "unit_contact")]),
        (at(2026, 11, 24, 9, 0), [("ack", "overdue", "unit_contact")]),  # daily while overdue
        (at(2026, 11, 24, 18, 0), [("ack", "overdue", "unit_leader")]),  # 24 h late: the leader, at once
        (at(2026, 11, 25, 9, 0), [("ack", "overdue", "unit_contact"), ("ack", "overdue", "unit_leader")]),
        (at(2026, 11, 26, 9, 0), [("ack", "overdue", "unit_contact"), ("ack", "overdue", "unit_leader")]),
        # the feedback deadline's morning and 2-hours-before reminders are not said:
        # the contact is already being told about the more urgent ack
        (at(2026, 11, 26, 16, 0), []),
        (at(2026, 11, 26, 18, 0), [("ack", "overdue", "office")]),  # 72 h late: the office, once
        (at(2026, 11, 27, 9, 0), [("ack", "overdue", "unit_contact"), ("ack", "overdue", "unit_leader")]),
    ]


def test_morning_reminder_before_a_midday_deadline():
    ticket = dispatched(local(2026, 11, 23, 17, 45))  # after the cut-off: due Tue 12:00
    assert ticket.ack_due_at == local(2026, 11, 24, 12, 0)
    steps = timeline(ticket, local(2026, 11, 23, 17, 45), local(2026, 11, 24, 12, 0))
    assert [s[0] for s in steps] == [at(2026, 11, 24, 9, 0), at(2026, 11, 24, 10, 0), at(2026, 11, 24, 12, 0)]
    assert [s[1][0][1] for s in steps] == ["before", "before", "due"]


def test_after_acknowledging_the_feedback_and_resolve_deadlines_speak():
    ticket = dispatched(local(2026, 11, 23, 10, 0))
    workflow.apply(ticket, Move.ACKNOWLEDGE, CONTACT, local(2026, 11, 23, 11, 0), POLICY)
    # feedback due Thu 26th 18:00, resolve due Mon 30th 18:00
    assert next_action_at(ticket, POLICY, local(2026, 11, 23, 11, 0)) == local(2026, 11, 26, 9, 0)
    steps = timeline(ticket, local(2026, 11, 23, 11, 0), local(2026, 11, 26, 18, 0))
    assert steps == [
        (at(2026, 11, 26, 9, 0), [("feedback", "before", "unit_contact")]),
        (at(2026, 11, 26, 16, 0), [("feedback", "before", "unit_contact")]),
        (at(2026, 11, 26, 18, 0), [("feedback", "due", "unit_contact")]),
    ]
    workflow.apply(ticket, Move.FEEDBACK, CONTACT, local(2026, 11, 26, 18, 30), POLICY, note="已现场踏勘")
    assert next_action_at(ticket, POLICY, local(2026, 11, 26, 18, 30)) == local(2026, 11, 30, 9, 0)
    said = due_reminders(ticket, POLICY, local(2026, 11, 30, 9, 0), local(2026, 11, 30, 9, 0))
    assert said == [Reminder(local(2026, 11, 30, 9, 0), "resolve", local(2026, 11, 30, 18, 0), "unit_contact")]
    assert said[0].phase == "before"


def test_a_sweep_that_was_away_brings_in_the_office_it_missed():
    ticket = dispatched(local(2026, 11, 23, 10, 0))
    # away from Wednesday 10:00 to Friday 10:00, over the office's moment (Thursday 18:00)
    said = due_reminders(ticket, POLICY, local(2026, 11, 25, 10, 0), local(2026, 11, 27, 10, 0))
    assert {(r.at, r.stage, r.role) for r in said} == {
        (local(2026, 11, 26, 18, 0), "ack", "office"),
        (local(2026, 11, 27, 9, 0), "ack", "unit_contact"),
        (local(2026, 11, 27, 9, 0), "ack", "unit_leader"),
    }


def test_a_sweep_that_was_away_says_only_the_latest_slot_with_everyone_due_by_then():
    ticket = dispatched(local(2026, 11, 23, 10, 0))
    # the clock last looked at 16:00 Monday and comes back Thursday 10:00
    said = due_reminders(ticket, POLICY, local(2026, 11, 23, 16, 0), local(2026, 11, 26, 10, 0))
    assert {(r.at, r.stage, r.role) for r in said} == {
        (local(2026, 11, 26, 9, 0), "ack", "unit_contact"),
        (local(2026, 11, 26, 9, 0), "ack", "unit_leader"),
    }
    assert next_action_at(ticket, POLICY, local(2026, 11, 26, 10, 0)) == local(2026, 11, 26, 16, 0)


def test_nothing_is_due_before_the_first_slot():
    ticket = dispatched(local(2026, 11, 23, 10, 0))
    assert due_reminders(ticket, POLICY, local(2026, 11, 23, 10, 0), local(2026, 11, 23, 15, 59)) == []


# -- the office's and the reporter's deadlines ------------------------------------------------------


def test_dispatch_deadline_reminds_the_office_then_the_office_above():
    ticket = new_ticket(local(2026, 11, 23, 9, 30))  # dispatch due Tue 24th 18:00
    steps = timeline(ticket, local(2026, 11, 23, 9, 30), local(2026, 11, 28, 9, 0))
    assert steps[:3] == [
        (at(2026, 11, 24, 9, 0), [("dispatch", "before", "office")]),
        (at(2026, 11, 24, 16, 0), [("dispatch", "before", "office")]),
        (at(2026, 11, 24, 18, 0), [("dispatch", "due", "office")]),
    ]
    assert (at(2026, 11, 27, 18, 0), [("dispatch", "overdue", "parent_office")]) in steps
    assert steps[-1] == (at(2026, 11, 28, 9, 0), [("dispatch", "overdue", "office")])  # the city: once


def test_confirmation_asks_the_reporter_then_the_office():
    ticket = dispatched(local(2026, 11, 23, 10, 0))
    workflow.apply(ticket, Move.ACKNOWLEDGE, CONTACT, local(2026, 11, 23, 11, 0), POLICY)
    workflow.apply(ticket, Move.RESOLVE, CONTACT, local(2026, 11, 24, 15, 0), POLICY, note="规划许可证已核发")
    assert ticket.confirm_due_at == local(2026, 11, 27, 18, 0)
    steps = timeline(ticket, local(2026, 11, 24, 15, 0), local(2026, 11, 28, 9, 0))
    assert steps == [
        (at(2026, 11, 27, 9, 0), [("confirm", "before", "reporter")]),
        (at(2026, 11, 27, 16, 0), [("confirm", "before", "reporter")]),
        (at(2026, 11, 27, 18, 0), [("confirm", "due", "office")]),
        (at(2026, 11, 28, 9, 0), [("confirm", "overdue", "office")]),
    ]


def test_closed_ticket_has_no_clock():
    ticket = dispatched(local(2026, 11, 23, 10, 0))
    workflow.apply(ticket, Move.ACKNOWLEDGE, CONTACT, local(2026, 11, 23, 11, 0), POLICY)
    workflow.apply(ticket, Move.RESOLVE, CONTACT, local(2026, 11, 24, 15, 0), POLICY, note="已办结")
    workflow.apply(ticket, Move.CONFIRM, LIAISON, local(2026, 11, 24, 16, 0), POLICY)
    assert ticket.status == Status.CLOSED
    assert next_action_at(ticket, POLICY, local(2026, 11, 24, 16, 0)) is None
    assert due_reminders(ticket, POLICY, local(2026, 11, 24, 16, 0), local(2027, 1, 1, 9, 0)) == []


# -- policy variations ------------------------------------------------------------------------------------


def test_without_daily_repeats_the_clock_stops_after_the_last_escalation():
    policy = dataclasses.replace(POLICY, reminders=ReminderPolicy(overdue_repeat="off"))
    ticket = dispatched(local(2026, 11, 23, 10, 0))
    steps = timeline(ticket, local(2026, 11, 23, 10, 0), local(2027, 1, 1), policy)
    # feedback and resolve have their own slots, but the unacknowledged ack
    # keeps the contact concerned; what is left are the escalations
    assert [(s[0], s[1]) for s in steps if s[1]] == [
        (at(2026, 11, 23, 16, 0), [("ack", "before", "unit_contact")]),
        (at(2026, 11, 23, 18, 0), [("ack", "due", "unit_contact")]),
        (at(2026, 11, 24, 18, 0), [("ack", "overdue", "unit_leader")]),
        (at(2026, 11, 26, 18, 0), [("ack", "overdue", "office")]),
    ]
    last = local(2026, 11, 30, 18, 0) + timedelta(hours=72)  # the resolve deadline's office escalation
    assert next_action_at(ticket, policy, last) is None


def test_configured_offsets_and_no_morning_or_at_due_reminder():
    policy = dataclasses.replace(
        POLICY, reminders=ReminderPolicy(due_day_morning=None, hours_before=(1, 4), at_due=False),
        escalation=EscalationPolicy(leader_after_hours=0, office_after_hours=48),
    )
    ticket = dispatched(local(2026, 11, 23, 10, 0))
    steps = timeline(ticket, local(2026, 11, 23, 10, 0), local(2026, 11, 24, 9, 0), policy)
    assert steps == [
        (at(2026, 11, 23, 14, 0), [("ack", "before", "unit_contact")]),
        (at(2026, 11, 23, 17, 0), [("ack", "before", "unit_contact")]),
        (at(2026, 11, 23, 18, 0), [("ack", "due", "unit_leader")]),  # leader at once; no at-due to the contact
        (at(2026, 11, 24, 9, 0), [("ack", "overdue", "unit_contact"), ("ack", "overdue", "unit_leader")]),
    ]


def test_naive_now_is_refused():
    ticket = dispatched(local(2026, 11, 23, 10, 0))
    with pytest.raises(ValueError):
        next_action_at(ticket, POLICY, datetime(2026, 11, 23, 10, 0))
    with pytest.raises(ValueError):
        due_reminders(ticket, POLICY, None, datetime(2026, 11, 23, 10, 0))


def test_audience_rejects_unknown_stage():
    with pytest.raises(ValueError):
        reminders.audience("lunch", local(2026, 11, 23, 18, 0), local(2026, 11, 23, 18, 0), POLICY)


def test_workflow_sets_next_action_at_to_the_first_reminder():
    ticket = dispatched(local(2026, 11, 23, 10, 0))
    assert ticket.next_action_at == local(2026, 11, 23, 16, 0)  # 2 h before the ack deadline
    workflow.apply(ticket, Move.ACKNOWLEDGE, CONTACT, local(2026, 11, 23, 11, 0), POLICY)
    assert ticket.next_action_at == local(2026, 11, 26, 9, 0)


# -- texts ------------------------------------------------------------------------------------------


BRIEF = texts.Brief(number="YD-2026-0001", problem="项目用地指标还没批下来，影响开工", project="示范现代物流园项目",
                    unit="尧都区自然资源局", contact="尧都区自然资源局13710联系人", office="尧都区重点办",
                    parent_office="市重点办", city_office="市重点办")
CASES = [(stage, phase, role)
         for stage, roles in {"ack": ("unit_contact", "unit_leader", "office"),
                              "feedback": ("unit_contact", "unit_leader", "office"),
                              "resolve": ("unit_contact", "unit_leader", "office"),
                              "dispatch": ("office", "parent_office"),
                              "confirm": ("reporter", "office")}.items()
         for role in roles for phase in ("before", "due", "overdue")]


@pytest.mark.parametrize("stage,phase,role", CASES)
def test_every_reminder_names_the_ticket_the_deadline_and_what_to_do(stage, phase, role):
    due = local(2026, 11, 22, 18, 0)
    reply = texts.reminder(stage, phase, role, BRIEF, due, 2 if phase == "overdue" else 0, SH)
    assert "YD-2026-0001" in reply.title
    assert "项目用地指标还没批下来" in reply.text
    assert "2026年11月22日 18:00" in reply.text
    assert "回复" in reply.text or "督促" in reply.text
    if phase == "overdue" and role not in ("reporter",):
        assert "超期" in reply.text
    for button in reply.buttons:
        assert button.key.endswith("YD-2026-0001")


def test_contact_ack_reminder_reads_well():
    reply = texts.reminder("ack", "before", "unit_contact", BRIEF, local(2026, 11, 22, 18, 0), 0, SH)
    assert reply.title == "【签收提醒】YD-2026-0001"
    assert reply.text.startswith("您单位有一件交办问题待签收，请于2026年11月22日 18:00前签收。")
    assert "回复“签收 YD-2026-0001”" in reply.text
    assert [b.key for b in reply.buttons] == ["签收 YD-2026-0001", "退回 YD-2026-0001"]


@pytest.mark.parametrize("level,role", [(1, "county_office"), (1, "unit"), (2, "city_office"), (2, "county_office"),
                                        (2, "unit"), (2, "project_leader"), (3, "city_office"),
                                        (3, "project_leader")])
def test_ladder_notices(level, role):
    reply = texts.ladder_notice(level, role, BRIEF, level, local(2026, 8, 1, 10, 0), SH)
    assert "YD-2026-0001" in reply.title + reply.text
    assert f"满{level}个月" in reply.text and "2026年8月1日" in reply.text
    expected = {1: "专题报告", 2: "专项督办", 3: "市委、市政府"}[level]
    assert expected in reply.text


# -- the fast timeline agrees with models.deadlines ---------------------------------------------------


@pytest.mark.parametrize("reminder_policy", [
    ReminderPolicy(),
    ReminderPolicy(due_day_morning=None, hours_before=(1, 4, 30), at_due=False, overdue_time=datetime(1, 1, 1, 8, 15).time()),
    ReminderPolicy(overdue_repeat="off"),
])
def test_timeline_matches_deadlines_reminder_times_and_overdue_slots(reminder_policy):
    policy = dataclasses.replace(POLICY, reminders=reminder_policy)
    for due in (local(2026, 11, 23, 18, 0), local(2026, 11, 24, 12, 0), local(2026, 11, 24, 8, 30),
                local(2026, 12, 31, 23, 59), local(2026, 11, 23, 0, 0)):
        line = reminders.Timeline("resolve", due, policy)
        assert line.regular == deadlines.reminder_times(due, policy)
        for hours in range(0, 24 * 5, 7):
            moment = due + timedelta(hours=hours, minutes=13)
            assert line.last_daily(moment) == deadlines.last_overdue_reminder(due, moment, policy)
            following = line.next_daily(moment)
            if following is not None:
                assert following > moment
                assert deadlines.last_overdue_reminder(due, following, policy) == following
                assert deadlines.last_overdue_reminder(due, following - timedelta(minutes=1), policy) in (
                    None, line.last_daily(moment))


# -- a sweep's own Rules (with caches shared by its tickets) plans as a fresh one does -----------------


@pytest.mark.parametrize("reminder_policy", [
    ReminderPolicy(),
    ReminderPolicy(due_day_morning=None, hours_before=(1, 4, 30), at_due=False, overdue_time=datetime(1, 1, 1, 8, 15).time()),
    ReminderPolicy(overdue_repeat="off"),
])
def test_a_sweeps_rules_plan_every_ticket_as_a_fresh_rules_would(reminder_policy):
    policy = dataclasses.replace(POLICY, reminders=reminder_policy)
    shared = reminders.Rules(policy)
    start = local(2026, 11, 20, 10, 0)
    tickets = []
    for hours in range(0, 24 * 6, 5):
        moment = start + timedelta(hours=hours, minutes=hours % 60)
        reported, ticket, acknowledged, resolved = (new_ticket(moment), dispatched(moment), dispatched(moment),
                                                    dispatched(moment))
        workflow.apply(acknowledged, Move.ACKNOWLEDGE, CONTACT, moment + timedelta(hours=3), POLICY)
        workflow.apply(resolved, Move.ACKNOWLEDGE, CONTACT, moment + timedelta(hours=1), POLICY)
        workflow.apply(resolved, Move.RESOLVE, CONTACT, moment + timedelta(hours=2), POLICY, note="已办结")
        tickets += [reported, ticket, acknowledged, resolved]
    for now in (local(2026, 11, 23, 9, 0), local(2026, 11, 24, 18, 0), local(2026, 11, 28, 9, 0)):
        for since in (None, now - timedelta(hours=1), now - timedelta(days=3)):
            for ticket in tickets:
                assert reminders.plan(ticket, shared, since, now) == reminders.plan(
                    ticket, reminders.Rules(policy), since, now)


def test_when_writes_the_clock_time_with_two_digits():
    assert texts.when(local(2026, 1, 2, 9, 5), SH) == "2026年1月2日 09:05"
    assert texts.when(local(2026, 11, 22, 18, 0), SH) == "2026年11月22日 18:00"
