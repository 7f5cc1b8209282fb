"""The 13710 policy (config/policy.toml) as frozen dataclasses.

`load_policy(path)` reads and validates a policy file; `default_policy()` reads
the packaged one. Every dataclass default equals the packaged file, and every
key of the file is optional. Any problem raises `ConfigError(file, key,
problem)` naming the dotted key. The arithmetic that uses the policy lives in
`models.deadlines`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from config.settings import ConfigError, read_toml
from config.vocabulary import TIERS

POLICY_FILE = Path(__file__).resolve().parent / "policy.toml"

DAY_MODES = ("natural", "working")
CADENCES = ("daily", "weekly", "ten_day", "monthly")
OVERDUE_REPEATS = ("daily", "off")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


# -- the policy ----------------------------------------------------------------


@dataclass(frozen=True)
class ClockPolicy:
    timezone: str = "Asia/Shanghai"
    day_mode: str = "natural"  # one of DAY_MODES
    end_of_day: dt.time = dt.time(18, 0)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class DispatchPolicy:
    days: int = 1


@dataclass(frozen=True)
class AckPolicy:
    cutoff: dt.time = dt.time(17, 30)
    next_day_by: dt.time = dt.time(12, 0)


@dataclass(frozen=True)
class FeedbackPolicy:
    days: int = 3


@dataclass(frozen=True)
class Term:
    """A resolution term: exactly one of `days` or `months` is positive."""

    days: int = 0
    months: int = 0


@dataclass(frozen=True)
class ResolvePolicy:
    obstruction: Term = Term(days=3)
    general: Term = Term(days=7)
    major: Term = Term(months=1)

    def term(self, tier: str) -> Term:
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}; expected one of {', '.join(TIERS)}")
        return getattr(self, tier)


@dataclass(frozen=True)
class ExtensionPolicy:
    max_days: int = 30  # the longest extension one request may ask for


@dataclass(frozen=True)
class ConfirmPolicy:
    days: int = 3


@dataclass(frozen=True)
class LightPolicy:
    near_hours: int = 24


@dataclass(frozen=True)
class ReminderPolicy:
    due_day_morning: dt.time | None = dt.time(9, 0)  # None: no morning reminder
    hours_before: tuple[int, ...] = (2,)
    at_due: bool = True
    overdue_repeat: str = "daily"  # one of OVERDUE_REPEATS
    overdue_time: dt.time = dt.time(9, 0)


@dataclass(frozen=True)
class EscalationPolicy:
    leader_after_hours: int = 24
    office_after_hours: int = 72


@dataclass(frozen=True)
class LadderPolicy:
    special_report_months: int = 1
    special_supervision_months: int = 2
    leadership_report_months: int = 3

    @property
    def thresholds(self) -> tuple[int, int, int]:
        return (self.special_report_months, self.special_supervision_months, self.leadership_report_months)


@dataclass(frozen=True)
class DigestPolicy:
    time: dt.time = dt.time(8, 30)
    cadences: tuple[str, ...] = ("daily", "weekly", "monthly")
    weekly_on: str = "monday"  # one of WEEKDAYS
    ten_day_days: tuple[int, ...] = (1, 11, 21)
    monthly_day: int = 1

    @property
    def weekly_isoweekday(self) -> int:
        return WEEKDAYS.index(self.weekly_on) + 1

    def cadences_on(self, day: dt.date) -> tuple[str, ...]:
        """The configured digests that go out on this local day."""
        falls_on = {
            "daily": True,
            "weekly": day.isoweekday() == self.weekly_isoweekday,
            "ten_day": day.day in self.ten_day_days,
            "monthly": day.day == self.monthly_day,
        }
        return tuple(cadence for cadence in self.cadences if falls_on[cadence])


@dataclass(frozen=True)
class RankingPolicy:
    day: int = 1
    time: dt.time = dt.time(9, 0)


@dataclass(frozen=True)
class Policy:
    clock: ClockPolicy = ClockPolicy()
    dispatch: DispatchPolicy = DispatchPolicy()
    ack: AckPolicy = AckPolicy()
    feedback: FeedbackPolicy = FeedbackPolicy()
    resolve: ResolvePolicy = ResolvePolicy()
    extension: ExtensionPolicy = ExtensionPolicy()
    confirm: ConfirmPolicy = ConfirmPolicy()
    light: LightPolicy = LightPolicy()
    reminders: ReminderPolicy = ReminderPolicy()
    escalation: EscalationPolicy = EscalationPolicy()
    ladder: LadderPolicy = LadderPolicy()
    digest: DigestPolicy = DigestPolicy()
    ranking: RankingPolicy = RankingPolicy()


# -- loading -------------------------------------------------------------------


def load_policy(path: str | Path) -> Policy:
    path = Path(path)
    data = read_toml(path)
    policy = _Reader(path, data, "").build(Policy, _POLICY_SECTIONS)
    _check_across_sections(path, policy)
    return policy


@lru_cache(maxsize=1)
def default_policy() -> Policy:
    return load_policy(POLICY_FILE)


class _Reader:
    """Reads one TOML table, naming `file` and the dotted key in every error."""

    def __init__(self, file: Path, table: Any, prefix: str):
        self.file = file
        self.prefix = prefix
        if not isinstance(table, dict):
            self.fail("", "must be a table")
        self.table = table

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix and name else (self.prefix or name)

    def fail(self, name: str, problem: str) -> NoReturn:
        raise ConfigError(self.file, self.key(name) or "-", problem)

    def sub(self, name: str) -> _Reader:
        return _Reader(self.file, self.table.get(name, {}), self.key(name))

    def build(self, cls: type, parsers: dict[str, Callable[[_Reader, str], Any]]):
        """Make `cls` from the table: each key present goes through its parser;
        a missing key keeps the dataclass default; an unknown key is an error."""
        for name in self.table:
            if name not in parsers:
                self.fail(name, f"unknown key; expected one of {', '.join(parsers)}")
        values = {name: parse(self, name) for name, parse in parsers.items() if name in self.table}
        return cls(**values)


# -- value parsers: each takes (reader, key) and returns the checked value ------------


def _int(minimum: int, maximum: int | None = None):
    def parse(reader: _Reader, name: str) -> int:
        return _check_int(reader, name, reader.table[name], minimum, maximum)

    return parse


def _check_int(reader: _Reader, name: str, value: Any, minimum: int, maximum: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        reader.fail(name, f"must be a whole number, got {value!r}")
    if value < minimum:
        reader.fail(name, f"must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        reader.fail(name, f"must be at most {maximum}, got {value}")
    return value


def _int_list(minimum: int, maximum: int | None = None, non_empty: bool = False):
    def parse(reader: _Reader, name: str) -> tuple[int, ...]:
        value = reader.table[name]
        if not isinstance(value, list):
            reader.fail(name, f"must be a list of whole numbers, got {value!r}")
        if non_empty and not value:
            reader.fail(name, "must not be empty")
        numbers = [_check_int(reader, name, item, minimum, maximum) for item in value]
        if len(set(numbers)) != len(numbers):
            reader.fail(name, f"has a repeated value: {value!r}")
        return tuple(sorted(numbers))

    return parse


_TIME_PATTERN = re.compile(r"^(\d{2}):(\d{2})$")


def _time(reader: _Reader, name: str) -> dt.time:
    value = reader.table[name]
    if isinstance(value, dt.time) and value.tzinfo is None:
        return value
    if isinstance(value, str):
        match = _TIME_PATTERN.match(value)
        if match and int(match[1]) < 24 and int(match[2]) < 60:
            return dt.time(int(match[1]), int(match[2]))
    reader.fail(name, f'must be a local time "HH:MM" between 00:00 and 23:59, got {value!r}')


def _optional_time(reader: _Reader, name: str) -> dt.time | None:
    return None if reader.table[name] == "" else _time(reader, name)


def _bool(reader: _Reader, name: str) -> bool:
    value = reader.table[name]
    if not isinstance(value, bool):
        reader.fail(name, f"must be true or false, got {value!r}")
    return value


def _choice(choices: tuple[str, ...]):
    def parse(reader: _Reader, name: str) -> str:
        value = reader.table[name]
        if value not in choices:
            reader.fail(name, f"unknown value {value!r}; expected one of {', '.join(choices)}")
        return value

    return parse


def _choice_list(choices: tuple[str, ...]):
    def parse(reader: _Reader, name: str) -> tuple[str, ...]:
        value = reader.table[name]
        if not isinstance(value, list):
            reader.fail(name, f"must be a list, got {value!r}")
        for item in value:
            if item not in choices:
                reader.fail(name, f"unknown value {item!r}; expected any of {', '.join(choices)}")
        if len(set(value)) != len(value):
            reader.fail(name, f"has a repeated value: {value!r}")
        return tuple(value)

    return parse


def _timezone(reader: _Reader, name: str) -> str:
    value = reader.table[name]
    if not isinstance(value, str) or not value:
        reader.fail(name, f"must be an IANA time zone name, got {value!r}")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        reader.fail(name, f"unknown time zone {value!r}")
    return value


def _term(reader: _Reader, name: str) -> Term:
    term = reader.sub(name).build(Term, {"days": _int(1), "months": _int(1)})
    if (term.days > 0) == (term.months > 0):
        reader.fail(name, "must set exactly one of days or months")
    return term


def _section(cls: type, parsers: dict[str, Callable[[_Reader, str], Any]]):
    def parse(reader: _Reader, name: str):
        return reader.sub(name).build(cls, parsers)

    return parse


_POLICY_SECTIONS: dict[str, Callable[[_Reader, str], Any]] = {
    "clock": _section(
        ClockPolicy, {"timezone": _timezone, "day_mode": _choice(DAY_MODES), "end_of_day": _time}
    ),
    "dispatch": _section(DispatchPolicy, {"days": _int(1)}),
    "ack": _section(AckPolicy, {"cutoff": _time, "next_day_by": _time}),
    "feedback": _section(FeedbackPolicy, {"days": _int(1)}),
    "resolve": _section(ResolvePolicy, {tier: _term for tier in TIERS}),
    "extension": _section(ExtensionPolicy, {"max_days": _int(1, 365)}),
    "confirm": _section(ConfirmPolicy, {"days": _int(1)}),
    "light": _section(LightPolicy, {"near_hours": _int(0)}),
    "reminders": _section(
        ReminderPolicy,
        {
            "due_day_morning": _optional_time,
            "hours_before": _int_list(1),
            "at_due": _bool,
            "overdue_repeat": _choice(OVERDUE_REPEATS),
            "overdue_time": _time,
        },
    ),
    "escalation": _section(EscalationPolicy, {"leader_after_hours": _int(0), "office_after_hours": _int(0)}),
    "ladder": _section(
        LadderPolicy,
        {
            "special_report_months": _int(1),
            "special_supervision_months": _int(1),
            "leadership_report_months": _int(1),
        },
    ),
    "digest": _section(
        DigestPolicy,
        {
            "time": _time,
            "cadences": _choice_list(CADENCES),
            "weekly_on": _choice(WEEKDAYS),
            "ten_day_days": _int_list(1, 28, non_empty=True),
            "monthly_day": _int(1, 28),
        },
    ),
    "ranking": _section(RankingPolicy, {"day": _int(1, 28), "time": _time}),
}


def _check_across_sections(file: Path, policy: Policy) -> None:
    """Rules that relate keys to each other."""
    if policy.ack.cutoff > policy.clock.end_of_day:
        raise ConfigError(
            file, "ack.cutoff", f"must not be later than clock.end_of_day ({policy.clock.end_of_day:%H:%M})"
        )
    if policy.escalation.office_after_hours < policy.escalation.leader_after_hours:
        raise ConfigError(
            file, "escalation.office_after_hours", "must not be less than escalation.leader_after_hours"
        )
    months = policy.ladder.thresholds
    names = [field.name for field in fields(LadderPolicy)]
    for previous, current, name in zip(months, months[1:], names[1:]):
        if current <= previous:
            raise ConfigError(file, f"ladder.{name}", f"must be more months than the step before ({previous})")
