"""Due times from the 13710 policy: pure functions, no I/O.

Every datetime in and out is timezone-aware (a naive one raises ValueError);
results are in UTC. Day arithmetic happens on local days in the policy's time
zone (Asia/Shanghai): "within N days" of an event means by `end_of_day` on the
Nth counted day after the event's local day, where the calendar decides which
days count (every day, or Chinese working days with 调休).
"""

from __future__ import annotations

import calendar as month_calendar
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Literal
from zoneinfo import ZoneInfo

import chinese_calendar

from config.policy import Policy, Term

Light = Literal["normal", "near", "overdue"]
DEFAULT_TZ = ZoneInfo("Asia/Shanghai")


# -- calendars -------------------------------------------------------------------------


class Calendar:
    """Which local days count when a rule says "N days". This one: every day."""

    def counts(self, day: date) -> bool:
        return True

    def add_days(self, day: date, n: int) -> date:
        """The nth counted day after `day` (`day` itself is day 0)."""
        if n < 0:
            raise ValueError(f"cannot count {n} days")
        while n > 0:
            day += timedelta(days=1)
            if self.counts(day):
                n -= 1
        return day

    def on_or_after(self, day: date) -> date:
        """`day` if it counts, else the next day that does."""
        while not self.counts(day):
            day += timedelta(days=1)
        return day


class NaturalCalendar(Calendar):
    """Every calendar day counts."""

    def add_days(self, day: date, n: int) -> date:
        if n < 0:
            raise ValueError(f"cannot count {n} days")
        return day + timedelta(days=n)


class WorkingCalendar(Calendar):
    """Chinese working days: public holidays are skipped, make-up workdays (调休)
    count, from the chinese_calendar package. For a year the package does not
    know yet, Monday to Friday count."""

    def counts(self, day: date) -> bool:
        try:
            return chinese_calendar.is_workday(day)
        except NotImplementedError:  # year outside the package's data
            return day.weekday() < 5


NATURAL = NaturalCalendar()
WORKING = WorkingCalendar()


def calendar_for(policy: Policy) -> Calendar:
    return WORKING if policy.clock.day_mode == "working" else NATURAL


# -- local time helpers ----------------------------------------------------------------


def _require_aware(moment: datetime, name: str) -> None:
    if not isinstance(moment, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment.isoformat()}")


def to_local(moment: datetime, policy: Policy, name: str = "moment") -> datetime:
    _require_aware(moment, name)
    return moment.astimezone(policy.clock.tz)


def at_local(day: date, clock_time: time, policy: Policy) -> datetime:
    """The UTC instant of `clock_time` on local `day`."""
    return datetime.combine(day, clock_time, tzinfo=policy.clock.tz).astimezone(timezone.utc)


def end_of_local_day(day: date, policy: Policy) -> datetime:
    return at_local(day, policy.clock.end_of_day, policy)


def add_months(day: date, months: int) -> date:
    """Calendar months, clamped to the end of a shorter month (Jan 31 + 1 = Feb 28/29)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    last_day = month_calendar.monthrange(year, month)[1]
    return date(year, month, min(day.day, last_day))


def _within_days(start: datetime, days: int, policy: Policy, name: str) -> datetime:
    local_day = to_local(start, policy, name).date()
    return end_of_local_day(calendar_for(policy).add_days(local_day, days), policy)


# -- the 13710 deadlines ---------------------------------------------------------------


@dataclass(frozen=True)
class Deadlines:
    ack_due_at: datetime
    feedback_due_at: datetime
    resolve_due_at: datetime


def dispatch_due(entered_at: datetime, policy: Policy) -> datetime:
    """The office dispatches within `dispatch.days` of the ledger entry."""
    return _within_days(entered_at, policy.dispatch.days, policy, "entered_at")


def ack_due(dispatched_at: datetime, policy: Policy) -> datetime:
    """Same day by end_of_day (事不过夜); after the cut-off (or, in working mode,
    on a rest day) the next counted day at `ack.next_day_by`."""
    local = to_local(dispatched_at, policy, "dispatched_at")
    cal = calendar_for(policy)
    if cal.counts(local.date()) and local.time() <= policy.ack.cutoff:
        return end_of_local_day(local.date(), policy)
    return at_local(cal.add_days(local.date(), 1), policy.ack.next_day_by, policy)


def feedback_due(dispatched_at: datetime, policy: Policy) -> datetime:
    return _within_days(dispatched_at, policy.feedback.days, policy, "dispatched_at")


def resolve_due(
    dispatched_at: datetime, tier: str, policy: Policy, plan_due: date | datetime | None = None
) -> datetime:
    """By tier; for a major problem an accepted written plan's date (a local date,
    due at end_of_day, or an aware datetime) replaces the one-month term."""
    term = policy.resolve.term(tier)
    _require_aware(dispatched_at, "dispatched_at")
    if plan_due is not None:
        return _plan_due(dispatched_at, tier, plan_due, policy)
    return _term_due(dispatched_at, term, policy)


def _term_due(dispatched_at: datetime, term: Term, policy: Policy) -> datetime:
    if term.days:
        return _within_days(dispatched_at, term.days, policy, "dispatched_at")
    local_day = to_local(dispatched_at, policy).date()
    due_day = calendar_for(policy).on_or_after(add_months(local_day, term.months))
    return end_of_local_day(due_day, policy)


def _plan_due(dispatched_at: datetime, tier: str, plan_due: date | datetime, policy: Policy) -> datetime:
    if tier != "major":
        raise ValueError(f"a written plan sets the due date of a major problem only, not of tier {tier!r}")
    if isinstance(plan_due, datetime):
        _require_aware(plan_due, "plan_due")
        due = plan_due.astimezone(timezone.utc)
    else:
        due = end_of_local_day(plan_due, policy)
    if due <= dispatched_at:
        raise ValueError(f"plan_due {due.isoformat()} is not after dispatch {dispatched_at.isoformat()}")
    return due


def confirm_due(resolved_at: datetime, policy: Policy) -> datetime:
    """The reporter confirms within `confirm.days` of 办结; then the office is asked."""
    return _within_days(resolved_at, policy.confirm.days, policy, "resolved_at")


def extend(due: datetime, days: int, policy: Policy) -> datetime:
    """The same local time of day, `days` counted days later (申请延期)."""
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError(f"an extension is a whole number of days, at least 1, got {days!r}")
    local = to_local(due, policy, "due")
    new_day = calendar_for(policy).add_days(local.date(), days)
    return at_local(new_day, local.time(), policy)


def compute_deadlines(
    dispatched_at: datetime, tier: str, policy: Policy, plan_due: date | datetime | None = None
) -> Deadlines:
    return Deadlines(
        ack_due_at=ack_due(dispatched_at, policy),
        feedback_due_at=feedback_due(dispatched_at, policy),
        resolve_due_at=resolve_due(dispatched_at, tier, policy, plan_due),
    )


# -- where a deadline stands -----------------------------------------------------------


def light(due_at: datetime, now: datetime, policy: Policy) -> Light:
    """overdue (超期) after the due time; near (临期) within `light.near_hours` of it."""
    _require_aware(due_at, "due_at")
    _require_aware(now, "now")
    if now > due_at:
        return "overdue"
    if due_at - now <= timedelta(hours=policy.light.near_hours):
        return "near"
    return "normal"


def overdue_days(due_at: datetime, now: datetime, policy: Policy | None = None) -> int:
    """Local calendar days overdue (超期天数): 0 until the due time has passed,
    then at least 1; each local midnight after the due day adds one. Natural
    days in either day mode."""
    tz = policy.clock.tz if policy else DEFAULT_TZ
    _require_aware(due_at, "due_at")
    _require_aware(now, "now")
    if now <= due_at:
        return 0
    return max(1, (now.astimezone(tz).date() - due_at.astimezone(tz).date()).days)


# -- the clock of reminders and escalations (used by the scheduler) ---------------------


def reminder_times(due_at: datetime, policy: Policy, since: datetime | None = None) -> tuple[datetime, ...]:
    """Reminders up to and including the due time, sorted, in UTC: the morning of
    the due day, each `hours_before`, and the due time itself; only those after
    `since` (when the deadline was set) and before or at the due time."""
    rules = policy.reminders
    due_local = to_local(due_at, policy, "due_at")
    times = {due_at - timedelta(hours=hours) for hours in rules.hours_before}
    if rules.due_day_morning is not None:
        times.add(at_local(due_local.date(), rules.due_day_morning, policy))
    if rules.at_due:
        times.add(due_at)
    if since is not None:
        _require_aware(since, "since")
    return tuple(
        sorted(t.astimezone(timezone.utc) for t in times if t <= due_at and (since is None or t > since))
    )


def last_overdue_reminder(due_at: datetime, now: datetime, policy: Policy) -> datetime | None:
    """The latest daily overdue reminder slot at or before `now` (on a local day
    after the due day, at `reminders.overdue_time`), or None if there is none yet
    or overdue reminders are off. A sweep keys the reminder by this slot."""
    if policy.reminders.overdue_repeat == "off":
        return None
    due_day = to_local(due_at, policy, "due_at").date()
    local_now = to_local(now, policy, "now")
    slot_day = local_now.date()
    if local_now.time() < policy.reminders.overdue_time:
        slot_day -= timedelta(days=1)
    if slot_day <= due_day:
        return None
    return at_local(slot_day, policy.reminders.overdue_time, policy)


def escalation_audience(due_at: datetime, now: datetime, policy: Policy) -> tuple[str, ...]:
    """The roles to tell about an overdue deadline: the unit contact at once, then
    also the unit leader and the office after their delays; () when not overdue."""
    _require_aware(due_at, "due_at")
    _require_aware(now, "now")
    if now <= due_at:
        return ()
    late = now - due_at
    rules = policy.escalation
    audience = ["unit_contact"]
    if late >= timedelta(hours=rules.leader_after_hours):
        audience.append("unit_leader")
    if late >= timedelta(hours=rules.office_after_hours):
        audience.append("office")
    return tuple(audience)


def ladder_level(last_progress_at: datetime, now: datetime, policy: Policy) -> int:
    """一二三: 0 while progress is recent; 1, 2 or 3 once `now` has reached that
    many configured calendar months (same local time, clamped) without progress."""
    local = to_local(last_progress_at, policy, "last_progress_at")
    _require_aware(now, "now")
    level = 0
    for step, months in enumerate(policy.ladder.thresholds, start=1):
        reached_at = at_local(add_months(local.date(), months), local.time(), policy)
        if now >= reached_at:
            level = step
    return level
