"""Loading and validating config/policy.toml (config/policy.py)."""

from __future__ import annotations

import ast
import dataclasses
from datetime import date, time
from pathlib import Path

import pytest

from config import policy as policy_module
from config.policy import POLICY_FILE, Policy, ResolvePolicy, Term, default_policy, load_policy
from config.settings import ConfigError
from config.vocabulary import TIERS


def write_policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


# -- the packaged policy -------------------------------------------------------------------


def test_packaged_file_states_the_13710_policy():
    policy = default_policy()
    assert policy.clock.timezone == "Asia/Shanghai"
    assert policy.clock.day_mode == "natural"
    assert policy.clock.end_of_day == time(18, 0)
    assert policy.dispatch.days == 1
    assert (policy.ack.cutoff, policy.ack.next_day_by) == (time(17, 30), time(12, 0))
    assert policy.feedback.days == 3
    assert policy.resolve.obstruction == Term(days=3)
    assert policy.resolve.general == Term(days=7)
    assert policy.resolve.major == Term(months=1)
    assert policy.confirm.days == 3
    assert policy.light.near_hours == 24
    assert policy.reminders.due_day_morning == time(9, 0)
    assert policy.reminders.hours_before == (2,)
    assert policy.reminders.overdue_repeat == "daily"
    assert policy.escalation.leader_after_hours <= policy.escalation.office_after_hours
    assert policy.ladder.thresholds == (1, 2, 3)
    assert policy.digest.time == time(8, 30)
    assert policy.digest.ten_day_days == (1, 11, 21)
    assert (policy.ranking.day, policy.ranking.time) == (1, time(9, 0))


def test_packaged_file_equals_the_builtin_defaults():
    # Every key is optional, so the dataclass defaults must say what the file says.
    assert default_policy() == Policy()
    assert default_policy() is default_policy()


def test_resolve_has_one_term_per_tier():
    assert [f.name for f in dataclasses.fields(ResolvePolicy)] == list(TIERS)
    for tier in TIERS:
        assert default_policy().resolve.term(tier) == getattr(default_policy().resolve, tier)
    with pytest.raises(ValueError, match="unknown tier"):
        default_policy().resolve.term("urgent")


def test_policy_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        default_policy().clock.day_mode = "working"


# -- partial files and accepted spellings --------------------------------------------------


def test_missing_keys_take_the_defaults(tmp_path):
    policy = load_policy(write_policy(tmp_path, '[clock]\nday_mode = "working"\n'))
    assert policy.clock.day_mode == "working"
    assert dataclasses.replace(policy, clock=Policy().clock) == Policy()
    assert load_policy(write_policy(tmp_path, "")) == Policy()


def test_accepted_spellings(tmp_path):
    policy = load_policy(
        write_policy(
            tmp_path,
            """
[clock]
end_of_day = 23:59:00
[reminders]
due_day_morning = ""
hours_before = [4, 1]
[resolve.major]
days = 30
[digest]
cadences = []
ten_day_days = [21, 1, 11]
""",
        )
    )
    assert policy.clock.end_of_day == time(23, 59)
    assert policy.reminders.due_day_morning is None
    assert policy.reminders.hours_before == (1, 4)
    assert policy.resolve.major == Term(days=30)
    assert policy.digest.cadences == ()
    assert policy.digest.ten_day_days == (1, 11, 21)


def test_digest_cadences_on_a_day(tmp_path):
    policy = default_policy()
    assert policy.digest.cadences_on(date(2026, 6, 1)) == ("daily", "weekly", "monthly")  # Monday the 1st
    assert policy.digest.cadences_on(date(2026, 6, 8)) == ("daily", "weekly")
    assert policy.digest.cadences_on(date(2026, 6, 11)) == ("daily",)
    every = load_policy(
        write_policy(
            tmp_path,
            '[digest]\ncadences = ["daily", "weekly", "ten_day", "monthly"]\nweekly_on = "thursday"\n',
        )
    )
    assert every.digest.weekly_isoweekday == 4
    assert every.digest.cadences_on(date(2026, 6, 11)) == ("daily", "weekly", "ten_day")
    assert every.digest.cadences_on(date(2026, 6, 21)) == ("daily", "ten_day")


# -- every error names the file, the key and the problem ---------------------------------


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ('[clock]\nend_of_day = "25:00"', "clock.end_of_day", "HH:MM"),
        ('[clock]\nend_of_day = "18:60"', "clock.end_of_day", "HH:MM"),
        ('[clock]\nend_of_day = "6:00"', "clock.end_of_day", "HH:MM"),
        ("[clock]\nend_of_day = 1800", "clock.end_of_day", "HH:MM"),
        ('[clock]\nday_mode = "lunar"', "clock.day_mode", "unknown value 'lunar'"),
        ('[clock]\ntimezone = "Mars/Olympus"', "clock.timezone", "unknown time zone"),
        ("[clock]\ntimezone = 8", "clock.timezone", "IANA time zone"),
        ('clock = "Asia/Shanghai"', "clock", "must be a table"),
        ("[dispatch]\ndays = -1", "dispatch.days", "at least 1"),
        ("[dispatch]\ndays = 0", "dispatch.days", "at least 1"),
        ('[feedback]\ndays = "3"', "feedback.days", "whole number"),
        ("[feedback]\ndays = 2.5", "feedback.days", "whole number"),
        ("[confirm]\ndays = true", "confirm.days", "whole number"),
        ("[ack]\ncutoff = \"18:30\"", "ack.cutoff", "not be later than clock.end_of_day"),
        ('[ack]\nnext_day_by = "noon"', "ack.next_day_by", "HH:MM"),
        ('[ack]\ncut_off = "17:30"', "ack.cut_off", "unknown key"),
        ("[resolve.general]\ndays = 0", "resolve.general.days", "at least 1"),
        ("[resolve.major]\ndays = 30\nmonths = 1", "resolve.major", "exactly one of days or months"),
        ("[resolve.major]\n", "resolve.major", "exactly one of days or months"),
        ("[resolve.major]\nweeks = 4", "resolve.major.weeks", "unknown key"),
        ("[resolve.urgent]\ndays = 1", "resolve.urgent", "unknown key"),
        ("[resolve]\ngeneral = 7", "resolve.general", "must be a table"),
        ("[light]\nnear_hours = -2", "light.near_hours", "at least 0"),
        ("[reminders]\nhours_before = [2, -1]", "reminders.hours_before", "at least 1"),
        ("[reminders]\nhours_before = 2", "reminders.hours_before", "must be a list"),
        ("[reminders]\nhours_before = [2, 2]", "reminders.hours_before", "repeated"),
        ('[reminders]\nat_due = "yes"', "reminders.at_due", "true or false"),
        ('[reminders]\noverdue_repeat = "hourly"', "reminders.overdue_repeat", "unknown value 'hourly'"),
        ('[reminders]\ndue_day_morning = "9am"', "reminders.due_day_morning", "HH:MM"),
        (
            "[escalation]\nleader_after_hours = 48\noffice_after_hours = 24",
            "escalation.office_after_hours",
            "not be less",
        ),
        ("[escalation]\nleader_after_hours = -1", "escalation.leader_after_hours", "at least 0"),
        ("[ladder]\nspecial_supervision_months = 1", "ladder.special_supervision_months", "more months"),
        ("[ladder]\nleadership_report_months = 2", "ladder.leadership_report_months", "more months"),
        ('[digest]\ncadences = ["daily", "fortnightly"]', "digest.cadences", "unknown value 'fortnightly'"),
        ('[digest]\ncadences = ["daily", "daily"]', "digest.cadences", "repeated"),
        ('[digest]\ncadences = "daily"', "digest.cadences", "must be a list"),
        ('[digest]\nweekly_on = "funday"', "digest.weekly_on", "unknown value 'funday'"),
        ("[digest]\nten_day_days = [1, 11, 31]", "digest.ten_day_days", "at most 28"),
        ("[digest]\nten_day_days = []", "digest.ten_day_days", "must not be empty"),
        ("[digest]\nmonthly_day = 0", "digest.monthly_day", "at least 1"),
        ('[digest]\ntime = "24:00"', "digest.time", "HH:MM"),
        ("[ranking]\nday = 29", "ranking.day", "at most 28"),
        ('[ranking]\ntime = "9:00"', "ranking.time", "HH:MM"),
        ("[ranking]\ntime = 2026-01-01T09:00:00+08:00", "ranking.time", "HH:MM"),
        ("surprise = 1", "surprise", "unknown key"),
        ("[clock\n", "-", "not valid TOML"),
    ],
)
def test_validation_error_names_file_key_and_problem(tmp_path, text, key, problem):
    path = write_policy(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    error = caught.value
    assert (error.file, error.key) == (str(path), key)
    assert problem in error.problem
    assert str(path) in str(error) and key in str(error)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found") as caught:
        load_policy(tmp_path / "absent.toml")
    assert caught.value.file == str(tmp_path / "absent.toml")


def test_policy_file_is_packaged_beside_the_module():
    assert POLICY_FILE == Path(policy_module.__file__).resolve().parent / "policy.toml"
    assert POLICY_FILE.is_file()


def test_config_imports_no_project_package_but_config():
    tree = ast.parse(Path(policy_module.__file__).read_text(encoding="utf-8"))
    project = {"bot", "handlers", "models", "scheduler", "config"}
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert imported & project <= {"config"}
