"""Deadline arithmetic of the 13710 policy (models/deadlines.py)."""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import replace
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from config.policy import Policy, default_policy
from models import deadlines as dl
from models.deadlines import (
    NATURAL,
    WORKING,
    Deadlines,
    ack_due,
    add_months,
    compute_deadlines,
    confirm_due,
    dispatch_due,
    escalation_audience,
    extend,
    feedback_due,
    ladder_level,
    last_overdue_reminder,
    light,
    overdue_days,
    reminder_times,
    resolve_due,
)

SH = ZoneInfo("Asia/Shanghai")
UTC = timezone.utc
POLICY = default_policy()
WORKING_POLICY = replace(POLICY, clock=replace(POLICY.clock, day_mode="working"))


def local(year, month, day, hour=0, minute=0, second=0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=SH)


def eod(year, month, day) -> datetime:
    """18:00 Asia/Shanghai, the default end of day."""
    return local(year, month, day, 18)


# -- results are aware and in UTC ---------------------------------------------------


def test_results_are_utc_and_local_day_arithmetic_is_shanghai():
    due = dispatch_due(local(2026, 3, 10, 9), POLICY)
    assert due.tzinfo is UTC
    assert due == datetime(2026, 3, 11, 10, 0, tzinfo=UTC) == eod(2026, 3, 11)


@pytest.mark.parametrize(
    "call",
    [
        lambda t: dispatch_due(t, POLICY),
        lambda t: ack_due(t, POLICY),
        lambda t: feedback_due(t, POLICY),
        lambda t: resolve_due(t, "general", POLICY),
        lambda t: confirm_due(t, POLICY),
        lambda t: extend(t, 1, POLICY),
        lambda t: compute_deadlines(t, "major", POLICY),
        lambda t: light(t, local(2026, 3, 10), POLICY),
        lambda t: light(local(2026, 3, 10), t, POLICY),
        lambda t: overdue_days(t, local(2026, 3, 10)),
        lambda t: reminder_times(t, POLICY),
        lambda t: escalation_audience(local(2026, 3, 10), t, POLICY),
        lambda t: ladder_level(t, local(2026, 3, 10), POLICY),
    ],
)
def test_naive_datetimes_are_refused(call):
    with pytest.raises(ValueError, match="timezone-aware"):
        call(datetime(2026, 3, 10, 9, 0))


def test_any_aware_zone_is_accepted():
    plus8 = timezone(timedelta(hours=8))
    assert feedback_due(datetime(2026, 3, 10, 9, tzinfo=plus8), POLICY) == eod(2026, 3, 13)


# -- the evening cut-off of the same-day acknowledgement ----------------------------


@pytest.mark.parametrize(
    ("dispatched", "due"),
    [
        (local(2026, 3, 10, 0, 30), eod(2026, 3, 10)),  # early morning: same day
        (local(2026, 3, 10, 9), eod(2026, 3, 10)),
        (local(2026, 3, 10, 17, 29, 59), eod(2026, 3, 10)),  # just before the cut-off
        (local(2026, 3, 10, 17, 30), eod(2026, 3, 10)),  # at the cut-off: still same day
        (local(2026, 3, 10, 17, 30, 1), local(2026, 3, 11, 12)),  # just after: next day noon
        (local(2026, 3, 10, 23, 59), local(2026, 3, 11, 12)),
    ],
)
def test_ack_due_same_day_until_the_cutoff(dispatched, due):
    assert ack_due(dispatched, POLICY) == due


def test_ack_cutoff_is_local_time_not_utc():
    # 09:29 / 09:31 UTC are 17:29 / 17:31 in Shanghai.
    assert ack_due(datetime(2026, 3, 10, 9, 29, tzinfo=UTC), POLICY) == eod(2026, 3, 10)
    assert ack_due(datetime(2026, 3, 10, 9, 31, tzinfo=UTC), POLICY) == local(2026, 3, 11, 12)


def test_a_utc_evening_is_already_the_next_local_day():
    dispatched = datetime(2026, 3, 10, 17, 0, tzinfo=UTC)  # 2026-03-11 01:00 in Shanghai
    deadlines = compute_deadlines(dispatched, "general", POLICY)
    assert deadlines.ack_due_at == eod(2026, 3, 11) == datetime(2026, 3, 11, 10, tzinfo=UTC)
    assert deadlines.feedback_due_at == eod(2026, 3, 14)
    assert deadlines.resolve_due_at == eod(2026, 3, 18)
    assert dispatch_due(dispatched, POLICY) == eod(2026, 3, 12)


def test_a_utc_afternoon_can_be_after_the_local_cutoff():
    dispatched = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai, same date
    assert ack_due(dispatched, POLICY) == local(2026, 3, 11, 12)


def test_configured_cutoff_next_day_time_and_end_of_day():
    policy = replace(
        POLICY,
        clock=replace(POLICY.clock, end_of_day=time(23, 59)),
        ack=replace(POLICY.ack, cutoff=time(20, 0), next_day_by=time(9, 30)),
    )
    assert ack_due(local(2026, 3, 10, 19), policy) == local(2026, 3, 10, 23, 59)
    assert ack_due(local(2026, 3, 10, 20, 1), policy) == local(2026, 3, 11, 9, 30)
    assert feedback_due(local(2026, 3, 10, 19), policy) == local(2026, 3, 13, 23, 59)


# -- natural days across month and year ends -----------------------------------------


@pytest.mark.parametrize(
    ("dispatched", "tier", "due"),
    [
        (local(2026, 3, 10, 9), "obstruction", eod(2026, 3, 13)),
        (local(2026, 3, 10, 9), "general", eod(2026, 3, 17)),
        (local(2026, 3, 10, 9), "major", eod(2026, 4, 10)),
        (local(2026, 1, 28, 9), "general", eod(2026, 2, 4)),
        (local(2027, 1, 31, 9), "major", eod(2027, 2, 28)),  # clamped, common year
        (local(2028, 1, 31, 9), "major", eod(2028, 2, 29)),  # clamped, leap year
        (local(2028, 2, 25, 9), "general", eod(2028, 3, 3)),  # Feb 2028 has 29 days
        (local(2027, 2, 25, 9), "general", eod(2027, 3, 4)),  # Feb 2027 has 28
        (local(2028, 2, 29, 9), "major", eod(2028, 3, 29)),
        (local(2026, 3, 31, 9), "major", eod(2026, 4, 30)),
        (local(2026, 12, 31, 9), "obstruction", eod(2027, 1, 3)),
        (local(2026, 12, 31, 9), "general", eod(2027, 1, 7)),
        (local(2026, 12, 31, 9), "major", eod(2027, 1, 31)),
    ],
)
def test_resolve_due_by_tier(dispatched, tier, due):
    assert resolve_due(dispatched, tier, POLICY) == due


def test_year_end_for_every_deadline():
    new_year_eve = local(2026, 12, 31, 20)
    assert dispatch_due(new_year_eve, POLICY) == eod(2027, 1, 1)
    assert ack_due(new_year_eve, POLICY) == local(2027, 1, 1, 12)
    assert feedback_due(new_year_eve, POLICY) == eod(2027, 1, 3)
    assert confirm_due(new_year_eve, POLICY) == eod(2027, 1, 3)


def test_unknown_tier_is_refused():
    with pytest.raises(ValueError, match="unknown tier"):
        resolve_due(local(2026, 3, 10, 9), "urgent", POLICY)


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2027, 1, 31), 1, date(2027, 2, 28)),
        (date(2028, 1, 31), 1, date(2028, 2, 29)),
        (date(2026, 12, 31), 1, date(2027, 1, 31)),
        (date(2026, 11, 30), 3, date(2027, 2, 28)),
        (date(2026, 5, 15), 12, date(2027, 5, 15)),
        (date(2026, 8, 31), 1, date(2026, 9, 30)),
    ],
)
def test_add_months_clamps_to_month_end(day, months, expected):
    assert add_months(day, months) == expected


# -- plan dates of major problems -----------------------------------------------------


def test_written_plan_date_replaces_the_month():
    dispatched = local(2026, 3, 10, 9)
    assert resolve_due(dispatched, "major", POLICY, plan_due=date(2026, 6, 30)) == eod(2026, 6, 30)
    exact = datetime(2026, 6, 30, 2, 0, tzinfo=UTC)
    assert resolve_due(dispatched, "major", POLICY, plan_due=exact) == exact
    deadlines = compute_deadlines(dispatched, "major", POLICY, plan_due=date(2026, 6, 30))
    assert deadlines == Deadlines(eod(2026, 3, 10), eod(2026, 3, 13), eod(2026, 6, 30))


def test_plan_date_is_not_moved_in_working_mode():
    # 2026-10-03 is a National Day holiday: a plan's explicit date stays.
    assert resolve_due(local(2026, 9, 1, 9), "major", WORKING_POLICY, plan_due=date(2026, 10, 3)) == eod(2026, 10, 3)


@pytest.mark.parametrize(
    ("tier", "plan_due", "message"),
    [
        ("general", date(2026, 6, 30), "major problem only"),
        ("obstruction", date(2026, 6, 30), "major problem only"),
        ("major", date(2026, 3, 9), "not after dispatch"),
        ("major", datetime(2026, 6, 30, 9), "timezone-aware"),
    ],
)
def test_bad_plan_dates_are_refused(tier, plan_due, message):
    with pytest.raises(ValueError, match=message):
        resolve_due(local(2026, 3, 10, 9), tier, POLICY, plan_due=plan_due)


# -- extensions -------------------------------------------------------------------------


def test_extension_keeps_the_local_time_of_day():
    assert extend(eod(2026, 1, 31), 3, POLICY) == eod(2026, 2, 3)
    assert extend(local(2026, 12, 30, 12), 7, POLICY) == local(2027, 1, 6, 12)
    assert extend(eod(2028, 2, 27), 2, POLICY) == eod(2028, 2, 29)


def test_extension_counts_working_days_in_working_mode():
    assert extend(eod(2026, 9, 30), 2, WORKING_POLICY) == eod(2026, 10, 9)


@pytest.mark.parametrize("days", [0, -1, True, 1.5])
def test_extension_needs_a_positive_whole_number(days):
    with pytest.raises(ValueError, match="at least 1"):
        extend(eod(2026, 3, 10), days, POLICY)


# -- working days: the 2026 National Day holiday and its make-up workdays -------------


@pytest.mark.parametrize(
    ("day", "counts"),
    [
        (date(2026, 9, 19), False),  # Saturday
        (date(2026, 9, 20), True),  # Sunday, make-up workday (调休)
        (date(2026, 9, 25), False),  # Mid-Autumn Festival
        (date(2026, 9, 30), True),
        *((date(2026, 10, d), False) for d in range(1, 8)),  # National Day holiday
        (date(2026, 10, 8), True),
        (date(2026, 10, 10), True),  # Saturday, make-up workday
        (date(2026, 10, 11), False),  # Sunday
    ],
)
def test_working_calendar_knows_2026_holidays(day, counts):
    assert WORKING.counts(day) is counts
    assert NATURAL.counts(day) is True


def test_working_calendar_falls_back_to_weekdays_outside_known_years():
    assert WORKING.add_days(date(2100, 3, 5), 1) == date(2100, 3, 8)  # Friday -> Monday


def test_calendar_refuses_negative_counts():
    for calendar in (NATURAL, WORKING):
        with pytest.raises(ValueError):
            calendar.add_days(date(2026, 3, 10), -1)


def test_working_mode_skips_national_day():
    dispatched = local(2026, 9, 30, 9)  # Wednesday before the holiday
    assert dispatch_due(dispatched, WORKING_POLICY) == eod(2026, 10, 8)
    assert dispatch_due(dispatched, POLICY) == eod(2026, 10, 1)
    # 7 working days: Oct 8, 9, 10 (Sat, make-up), 12, 13, 14, 15
    assert resolve_due(dispatched, "general", WORKING_POLICY) == eod(2026, 10, 15)
    assert resolve_due(dispatched, "general", POLICY) == eod(2026, 10, 7)


def test_working_mode_feedback_across_the_holiday():
    # Sep 30, Oct 8, Oct 9
    assert feedback_due(local(2026, 9, 29, 9), WORKING_POLICY) == eod(2026, 10, 9)
    assert feedback_due(local(2026, 9, 29, 9), POLICY) == eod(2026, 10, 2)


def test_working_mode_counts_the_sunday_make_up_workday():
    # From Friday Sep 18: Sep 20 (Sunday, make-up), 21, 22.
    assert feedback_due(local(2026, 9, 18, 9), WORKING_POLICY) == eod(2026, 9, 22)
    assert resolve_due(local(2026, 9, 18, 9), "obstruction", WORKING_POLICY) == eod(2026, 9, 22)


@pytest.mark.parametrize(
    ("dispatched", "due"),
    [
        (local(2026, 9, 30, 18, 30), local(2026, 10, 8, 12)),  # after the cut-off, before the holiday
        (local(2026, 10, 3, 10), local(2026, 10, 8, 12)),  # dispatched on a holiday
        (local(2026, 9, 19, 10), local(2026, 9, 20, 12)),  # Saturday -> the make-up Sunday
        (local(2026, 10, 9, 19), local(2026, 10, 10, 12)),  # Friday evening -> the make-up Saturday
        (local(2026, 9, 24, 19), local(2026, 9, 28, 12)),  # before the Mid-Autumn Festival
        (local(2026, 10, 10, 10), eod(2026, 10, 10)),  # make-up Saturday is a normal working day
    ],
)
def test_working_mode_ack(dispatched, due):
    assert ack_due(dispatched, WORKING_POLICY) == due


def test_working_mode_month_deadline_moves_off_a_holiday():
    assert resolve_due(local(2026, 9, 3, 9), "major", WORKING_POLICY) == eod(2026, 10, 8)
    assert resolve_due(local(2026, 9, 3, 9), "major", POLICY) == eod(2026, 10, 3)


def test_confirm_window():
    assert confirm_due(local(2026, 3, 10, 16), POLICY) == eod(2026, 3, 13)
    # Oct 8, Oct 9, Oct 10 (the make-up Saturday)
    assert confirm_due(local(2026, 9, 30, 16), WORKING_POLICY) == eod(2026, 10, 10)


def test_deadlines_are_frozen():
    deadlines = compute_deadlines(local(2026, 3, 10, 9), "general", POLICY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        deadlines.ack_due_at = eod(2026, 3, 11)


# -- light and overdue days --------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (eod(2026, 3, 10) - timedelta(hours=25), "normal"),
        (eod(2026, 3, 10) - timedelta(hours=24), "near"),
        (eod(2026, 3, 10) - timedelta(minutes=1), "near"),
        (eod(2026, 3, 10), "near"),  # due "by" 18:00: not yet overdue at 18:00
        (eod(2026, 3, 10) + timedelta(seconds=1), "overdue"),
        (eod(2026, 3, 20), "overdue"),
    ],
)
def test_light(now, expected):
    assert light(eod(2026, 3, 10), now, POLICY) == expected


def test_light_window_is_configurable():
    policy = replace(POLICY, light=replace(POLICY.light, near_hours=2))
    assert light(eod(2026, 3, 10), eod(2026, 3, 10) - timedelta(hours=3), policy) == "normal"
    assert light(eod(2026, 3, 10), eod(2026, 3, 10) - timedelta(hours=2), policy) == "near"


@pytest.mark.parametrize(
    ("now", "days"),
    [
        (eod(2026, 3, 10) - timedelta(hours=1), 0),
        (eod(2026, 3, 10), 0),
        (local(2026, 3, 10, 19), 1),  # later the same day
        (local(2026, 3, 11, 17), 1),
        (local(2026, 3, 12, 9), 2),
        (local(2026, 4, 1, 9), 22),
    ],
)
def test_overdue_days(now, days):
    assert overdue_days(eod(2026, 3, 10), now) == days
    assert overdue_days(eod(2026, 3, 10), now, POLICY) == days


def test_overdue_days_count_local_midnights_not_utc_ones():
    due = eod(2026, 3, 10)  # 10:00 UTC
    now = datetime(2026, 3, 11, 16, 30, tzinfo=UTC)  # 2026-03-12 00:30 in Shanghai
    assert overdue_days(due, now) == 2


# -- reminders, escalation and the 一二三 ladder ---------------------------------------


def test_reminder_times_before_a_due_time():
    due = eod(2026, 3, 12)
    assert reminder_times(due, POLICY) == (local(2026, 3, 12, 9), local(2026, 3, 12, 16), due)
    assert reminder_times(due, POLICY, since=local(2026, 3, 12, 10)) == (local(2026, 3, 12, 16), due)
    assert all(t.tzinfo is UTC for t in reminder_times(due, POLICY))


def test_reminder_times_skip_a_morning_after_the_due_time():
    due = local(2026, 3, 12, 8)
    assert reminder_times(due, POLICY) == (local(2026, 3, 12, 6), due)


def test_reminder_times_merge_equal_moments():
    policy = replace(POLICY, reminders=replace(POLICY.reminders, hours_before=(3, 9)))
    due = eod(2026, 3, 12)  # 9 hours before is the 09:00 morning reminder
    assert reminder_times(due, policy) == (local(2026, 3, 12, 9), local(2026, 3, 12, 15), due)


@pytest.mark.parametrize(
    ("now", "slot"),
    [
        (local(2026, 3, 10, 20), None),  # overdue, but the due day itself
        (local(2026, 3, 11, 8, 59), None),
        (local(2026, 3, 11, 9), local(2026, 3, 11, 9)),
        (local(2026, 3, 13, 15), local(2026, 3, 13, 9)),
        (local(2026, 3, 14, 8), local(2026, 3, 13, 9)),
    ],
)
def test_last_overdue_reminder(now, slot):
    assert last_overdue_reminder(eod(2026, 3, 10), now, POLICY) == slot


def test_overdue_reminders_can_be_switched_off():
    policy = replace(POLICY, reminders=replace(POLICY.reminders, overdue_repeat="off"))
    assert last_overdue_reminder(eod(2026, 3, 10), local(2026, 3, 13, 15), policy) is None


@pytest.mark.parametrize(
    ("late", "audience"),
    [
        (timedelta(0), ()),
        (timedelta(hours=1), ("unit_contact",)),
        (timedelta(hours=24), ("unit_contact", "unit_leader")),
        (timedelta(hours=71), ("unit_contact", "unit_leader")),
        (timedelta(hours=72), ("unit_contact", "unit_leader", "office")),
    ],
)
def test_escalation_audience(late, audience):
    due = eod(2026, 3, 10)
    assert escalation_audience(due, due + late, POLICY) == audience


@pytest.mark.parametrize(
    ("now", "level"),
    [
        (local(2026, 2, 28, 9, 59), 0),
        (local(2026, 2, 28, 10), 1),  # Jan 31 + 1 month, clamped
        (local(2026, 3, 31, 9), 1),
        (local(2026, 3, 31, 10), 2),
        (local(2026, 4, 30, 10), 3),
        (local(2026, 12, 1), 3),
    ],
)
def test_ladder_level(now, level):
    assert ladder_level(local(2026, 1, 31, 10), now, POLICY) == level


# -- purity -------------------------------------------------------------------------------


def test_deadlines_module_imports_only_stdlib_config_and_the_calendar():
    tree = ast.parse(Path(dl.__file__).read_text(encoding="utf-8"))
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    allowed = {"__future__", "calendar", "dataclasses", "datetime", "typing", "zoneinfo", "chinese_calendar", "config"}
    assert imported <= allowed, imported - allowed


def test_default_policy_is_the_builtin_one():
    assert POLICY == Policy()
