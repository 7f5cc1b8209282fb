"""When the clock speaks about a ticket, and to whom: pure functions, no I/O.

Every outstanding deadline of a ticket (`workflow.outstanding_deadlines`) has
its own timeline of reminder moments ("slots"):

- before the due time: the morning of the due day and each `hours_before`
  (`reminders` policy), and the due time itself when `at_due`;
- while overdue: every local day after the due day at `overdue_time`
  (unless `overdue_repeat = "off"`);
- escalation moments: when the deadline has been overdue for
  `escalation.leader_after_hours` the unit leader is told, after
  `escalation.office_after_hours` the office, without waiting for the next
  daily slot.

Who is concerned (`audience`): for the unit's deadlines (签收 ack, 反馈
feedback, 办结 resolve) the unit contact, then also the unit leader and the
office; for the office's own dispatch deadline (交办) the office, then also the
office above it; for the reporter's confirmation (确认) the reporter before the
due time, the office from then on.

Who is told when: the first audience at every slot; the unit leader at its
escalation moment and then at every daily slot with the contact; an office
brought in by escalation (the office for a unit's deadline, the office above
for a dispatch deadline) once, at its escalation moment: from then on the
office's digest lists the ticket among the overdue ones, rather than one
message per overdue ticket every morning.

`next_action_at(ticket, policy, now)` is the first slot after `now` over all
stages: the value of `Ticket.next_action_at`, so that a sweep is one indexed
range. `due_reminders(ticket, policy, since, now)` is what a sweep at `now`
says: per stage the latest regular slot in [since, now] (older missed ones are
not repeated) and every escalation moment in it, one reminder per role, and
nothing about a later deadline to a role already concerned by a more urgent
one of the same ticket.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Literal, NamedTuple

from config.policy import Policy
from models import deadlines
from models import workflow

Role = Literal["unit_contact", "unit_leader", "office", "parent_office", "reporter"]
Phase = Literal["before", "due", "overdue"]

UNIT_STAGES = ("ack", "feedback", "resolve")
STAGES = ("dispatch", *UNIT_STAGES, "confirm")

# Who hears about a deadline before it falls due, and at the due time.
_BEFORE: dict[str, frozenset[str]] = {
    "dispatch": frozenset({"office"}),
    "ack": frozenset({"unit_contact"}),
    "feedback": frozenset({"unit_contact"}),
    "resolve": frozenset({"unit_contact"}),
    "confirm": frozenset({"reporter"}),
}
_AT_DUE: dict[str, frozenset[str]] = _BEFORE | {"confirm": frozenset({"office"})}


class Reminder(NamedTuple):
    """One reminder to one role about one deadline, at one slot."""

    at: datetime  # the slot (UTC)
    stage: str
    due: datetime  # the deadline (UTC)
    role: str

    @property
    def phase(self) -> Phase:
        if self.at < self.due:
            return "before"
        return "due" if self.at == self.due else "overdue"


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)


_CACHE_SIZE = 10_000  # entries per cache of Rules; emptied when full
_DAY = timedelta(days=1)


class Rules:
    """The policy's reminder rules, unpacked once, with the local times and
    daily slots computed over and over for tickets sharing due times. A sweep
    makes its own (its caches go with it); single calls with a Policy share
    one per policy."""

    __slots__ = ("policy", "tz", "before", "morning", "at_due", "daily", "overdue_time", "escalations",
                 "audiences", "once", "lead", "_local", "_slots", "_mornings")

    def __init__(self, policy: Policy):
        self.policy = policy
        self.tz = policy.clock.tz
        rules = policy.reminders
        self.before = tuple(timedelta(hours=hours) for hours in rules.hours_before)
        # how long before its due time a deadline's first slot can be (the morning is on the due day)
        self.lead = max((*self.before, timedelta(hours=24)))
        self.morning = rules.due_day_morning
        self.at_due = rules.at_due
        self.daily = rules.overdue_repeat != "off"
        self.overdue_time = rules.overdue_time
        escalation = policy.escalation
        leader, office = timedelta(hours=escalation.leader_after_hours), timedelta(hours=escalation.office_after_hours)
        # (delay after the due time, role newly told) per stage
        self.escalations: dict[str, tuple[tuple[timedelta, str], ...]] = {
            **{stage: ((leader, "unit_leader"), (office, "office")) for stage in UNIT_STAGES},
            "dispatch": ((office, "parent_office"),),
            "confirm": (),
        }
        # per stage: (delays in order, the audience once that many delays have passed)
        self.audiences: dict[str, tuple[tuple[timedelta, ...], tuple[frozenset[str], ...]]] = {}
        for stage, steps in self.escalations.items():
            ordered = sorted(steps)
            sets = [_AT_DUE[stage]]
            for _, role in ordered:
                sets.append(sets[-1] | {role})
            self.audiences[stage] = (tuple(delay for delay, _ in ordered), tuple(sets))
        # per stage: the roles brought in by escalation that hear once, at their moment (the leader goes on daily)
        self.once = {stage: frozenset(role for _, role in steps if role != "unit_leader")
                     for stage, steps in self.escalations.items()}
        self._local: dict[datetime, datetime] = {}
        self._slots: dict[date, datetime] = {}
        self._mornings: dict[date, datetime] = {}

    def local(self, moment: datetime) -> datetime:
        """`moment` in the policy's time zone."""
        local = self._local.get(moment)
        if local is None:
            local = _cache(self._local, moment, moment.astimezone(self.tz))
        return local

    def local_slot(self, day: date) -> datetime:
        """The daily overdue slot of a local day, in UTC."""
        slot = self._slots.get(day)
        if slot is None:
            slot = _cache(self._slots, day, self._at(day, self.overdue_time))
        return slot

    def morning_of(self, day: date) -> datetime:
        """The due-day morning reminder of a local day, in UTC (`morning` is set)."""
        morning = self._mornings.get(day)
        if morning is None:
            morning = _cache(self._mornings, day, self._at(day, self.morning))
        return morning

    def _at(self, day: date, clock: time) -> datetime:
        return datetime.combine(day, clock, tzinfo=self.tz).astimezone(timezone.utc)


def _cache(cache: dict, key, value):
    if len(cache) >= _CACHE_SIZE:
        cache.clear()
    cache[key] = value
    return value


_RULES: dict[int, Rules] = {}


def _rules(policy: Policy | Rules) -> Rules:
    if isinstance(policy, Rules):
        return policy
    rules = _RULES.get(id(policy))
    if rules is None or rules.policy is not policy:
        if len(_RULES) > 16:
            _RULES.clear()
        rules = _RULES[id(policy)] = Rules(policy)
    return rules


def audience(stage: str, due: datetime, at: datetime, policy: Policy) -> frozenset[str]:
    """Everyone a reminder about `stage` addresses at moment `at`: before the
    due time the stage's first audience; from the due time on, also each role
    whose escalation delay has passed."""
    return _audience(stage, due, at, _rules(policy))


def _audience(stage: str, due: datetime, at: datetime, rules: Rules) -> frozenset[str]:
    if stage not in _BEFORE:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    if at < due:
        return _BEFORE[stage]
    late = at - due
    delays, sets = rules.audiences[stage]
    passed = 0
    while passed < len(delays) and late >= delays[passed]:
        passed += 1
    return sets[passed]


class Timeline:
    """The reminder moments of one deadline (a stage and its due time):
    `regular` are those up to the due time (deadlines.reminder_times), then
    the escalation moments and the daily overdue slots."""

    __slots__ = ("stage", "due", "rules", "regular", "escalations", "due_day", "once")

    def __init__(self, stage: str, due: datetime, policy: Policy | Rules):
        if stage not in _BEFORE:
            raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
        rules = policy if isinstance(policy, Rules) else _rules(policy)
        due = due.astimezone(timezone.utc)
        self.stage = stage
        self.due = due
        self.rules = rules
        self.due_day = rules.local(due).date()
        times = {due - delta for delta in rules.before}
        if rules.morning is not None:
            morning = rules.morning_of(self.due_day)
            if morning <= due:
                times.add(morning)
        if rules.at_due:
            times.add(due)
        self.regular = tuple(sorted(times))
        self.escalations = tuple([(due + delay, role) for delay, role in rules.escalations[stage]])
        # roles brought in by escalation that hear once, at their moment (the leader goes on daily)
        self.once = rules.once[stage]

    def _is_daily(self, at: datetime) -> bool:
        if not self.rules.daily or at <= self.due:
            return False
        local = self.rules.local(at)
        return local.date() > self.due_day and local.time() == self.rules.overdue_time

    def roles(self, at: datetime) -> frozenset[str]:
        """The roles a slot at `at` addresses: a regular slot (before, at due,
        daily overdue) speaks to the audience but for the once-only roles; an
        escalation moment to the role it brings in; slots at the same moment
        merge."""
        roles: frozenset[str] = frozenset()
        if at in self.regular or self._is_daily(at):
            roles = _audience(self.stage, self.due, at, self.rules) - self.once
        for moment, role in self.escalations:
            if moment == at:
                roles |= {role}
        return roles

    def last_daily(self, end: datetime) -> datetime | None:
        """The latest daily overdue slot at or before `end` (as deadlines.last_overdue_reminder)."""
        if not self.rules.daily:
            return None
        local = self.rules.local(end)
        day = local.date()
        if local.time() < self.rules.overdue_time:
            day -= timedelta(days=1)
        return self.rules.local_slot(day) if day > self.due_day else None

    def next_daily(self, after: datetime) -> datetime | None:
        """The first daily overdue slot strictly after `after`, or None when off."""
        if not self.rules.daily:
            return None
        day = self.rules.local(after).date()
        if day <= self.due_day:
            day = self.due_day + _DAY
        moment = self.rules.local_slot(day)
        while moment <= after:
            day += _DAY
            moment = self.rules.local_slot(day)
        return moment

    def due_slots(self, start: datetime, end: datetime) -> tuple[tuple[datetime, frozenset[str]], ...]:
        """(moment, roles) to speak at in [start, end]: the latest regular or
        daily slot (older ones are not repeated), and each escalation moment
        whose role that slot does not already address (a sweep that was away
        still brings the office in)."""
        latest = None
        for moment in self.regular:
            if start <= moment <= end:
                latest = moment  # regular is sorted
        daily = self.last_daily(end)
        if daily is not None and daily >= start and (latest is None or daily > latest):
            latest = daily
        slots: dict[datetime, frozenset[str]] = {}
        covered: frozenset[str] = frozenset()
        if latest is not None:
            covered = slots[latest] = self.roles(latest)
        for moment, role in self.escalations:
            if start <= moment <= end and role not in covered:
                slots[moment] = slots.get(moment, frozenset()) | {role}
        return tuple(sorted(slots.items()))

    def next(self, after: datetime) -> datetime | None:
        """The first slot strictly after `after`, or None."""
        found = self.next_daily(after)
        for moment in self.regular:  # sorted
            if moment > after:
                if found is None or moment < found:
                    found = moment
                break
        for moment, _ in self.escalations:
            if moment > after and (found is None or moment < found):
                found = moment
        return found


def timelines(ticket, policy: Policy) -> list[Timeline]:
    """The timelines of the ticket's outstanding deadlines, most urgent first."""
    rules = _rules(policy)
    found = [Timeline(stage, due, rules) for stage, due in workflow.outstanding_deadlines(ticket)]
    found.sort(key=lambda t: (t.due, STAGES.index(t.stage)))
    return found


def next_action_at(ticket, policy: Policy, now: datetime) -> datetime | None:
    """The first reminder moment after `now` over every outstanding deadline of
    the ticket; None when the clock has nothing more to say (closed, or no
    deadline left with a future slot)."""
    return plan(ticket, policy, None, now, with_reminders=False)[1]


def due_reminders(ticket, policy: Policy, since: datetime | None, now: datetime) -> list[Reminder]:
    """What a sweep at `now` sends for a ticket whose clock was last due at
    `since` (its stored next_action_at): per stage the latest slot in
    [since, now], one Reminder per role. A role already concerned by a more
    urgent deadline of the same ticket (earlier due time, and the role is in
    that deadline's audience at that moment) hears nothing about the later
    one: a unit that has not acknowledged is reminded to acknowledge, not
    also to feed back and to resolve. Sorted by (moment, role)."""
    return plan(ticket, policy, since, now)[0]


def plan(ticket, policy: Policy | Rules, since: datetime | None, now: datetime, *,
         with_reminders: bool = True) -> tuple[list[Reminder], datetime | None]:
    """(due_reminders, next_action_at) at once, as a sweep needs both (it
    passes its own Rules)."""
    rules = _rules(policy)
    if not isinstance(now, datetime) or now.utcoffset() is None:
        deadlines.to_local(now, rules.policy, "now")  # raises on a naive time
    start = since if since is not None else now
    found: list[Reminder] = []
    following: datetime | None = None
    lines: list[Timeline] = []
    outstanding = workflow.outstanding_deadlines(ticket)
    if len(outstanding) > 1:
        outstanding.sort(key=_urgency)
    for stage, due in outstanding:
        if due.tzinfo is not timezone.utc:
            due = _utc(due)
        if following is not None:
            earliest = due - rules.lead  # no slot of this deadline (nor of any later one) comes before
            if earliest > now and earliest >= following:
                break
        line = Timeline(stage, due, rules)
        upcoming = line.next(now)
        if upcoming is not None and (following is None or upcoming < following):
            following = upcoming
        if with_reminders:
            for moment, roles in line.due_slots(start, now):
                for role in roles:
                    if lines and any(role in _audience(e.stage, e.due, moment, rules) for e in lines):
                        continue  # concerned by a more urgent deadline
                    found.append(Reminder(moment, line.stage, line.due, role))
        lines.append(line)
    if len(found) > 1:
        found.sort(key=lambda r: (r.at, r.role, _STAGE_RANK[r.stage]))
    return found, following


_STAGE_RANK = {stage: rank for rank, stage in enumerate(STAGES)}


def _urgency(deadline: tuple[str, datetime]) -> tuple[datetime, int]:
    stage, due = deadline
    return _utc(due), _STAGE_RANK[stage]
