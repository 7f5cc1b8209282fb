"""The organisation: offices (属地 hierarchy), handling units, people and projects.

`load_org(path)` reads a TOML file laid out as `[[offices]]`, `[[units]]`,
`[[people]]` and `[[projects]]` and returns a validated, immutable `OrgSpec`.
Validation looks at the whole file and reports every problem it finds. A file
with problems yields no `OrgSpec` at all: an `OrgConfigError` (a `ConfigError`)
names the file, the entry and field, and the problem, for example

    config/org.toml: people[12] (key="city_zr_contact").unit: unknown unit "city_zr" ...

With several problems the key is "(several)" and the message lists one
"entry: problem" line each; `OrgConfigError.problems` holds them all.
Follow-up complaints are avoided: while a section has an entry without a
usable key, references into it are not called unknown, and "X leads no unit"
style checks run only when every reference they depend on could be read.
Entry indexes are 0-based positions within their section.

Rules beyond types and required fields (all checked):
- keys are lowercase ASCII `[a-z0-9_]`, unique per kind; office, unit and
  project names and office ticket prefixes (2-6 uppercase letters) are unique;
- a city office has no parent or a city parent; a county office has a county
  name and a city-level parent; the hierarchy has no cycle;
- a unit's type is a key of UNIT_TYPES; county governments belong to county
  offices; an office has at most one unit of each type (so that routing a
  problem to a type and a 属地 office finds exactly one unit);
- a unit's contact is a person with the `unit_contact` role whose `unit` is
  that unit, and every `unit_contact` is the contact of his own unit (one
  contact per unit); a unit's leader has the `unit_leader` role, every
  `unit_leader` leads some unit, and a leader whose `unit` is set leads it;
- roles come from ROLES; an `office` person names his office; a person's
  `office`, when his unit is set too, is the unit's office;
- identities are `channel = "platform user id"` with channels from CHANNELS;
  an id is used by one person per channel; everybody has at least one
  identity, and the preferred channel (default: the first of CHANNELS the
  person has) is one of his identities;
- a project's level is a key of PROJECT_LEVELS; it has at least one liaison,
  each with the `liaison` role; every `liaison` is on some project; the
  project's 包联领导 has the `project_leader` role and every
  `project_leader` leads some project.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

from config.settings import ConfigError, read_toml
from config.vocabulary import CHANNELS, PROJECT_LEVELS, ROLES, UNIT_TYPES

DEFAULT_ORG_FILE = Path(__file__).resolve().parent / "org.toml"

OFFICE_LEVELS: tuple[str, ...] = ("city", "county")

KEY_RE = re.compile(r"[a-z0-9_]{1,64}")
TICKET_PREFIX_RE = re.compile(r"[A-Z]{2,6}")
PHONE_RE = re.compile(r"\+?[0-9][0-9 ()-]{3,23}")
WEBHOOK_RE = re.compile(r"https?://\S+")


# --------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class OfficeSpec:
    key: str
    name: str
    short_name: str  # defaults to name
    level: str  # "city" | "county"
    parent: str | None
    county: str | None  # county/district name of a county office, e.g. "尧都区"
    ticket_prefix: str  # 2-6 uppercase ASCII letters, unique, used in ticket numbers
    wecom_webhook: str | None = None
    dingtalk_webhook: str | None = None
    dingtalk_webhook_secret: str | None = None


@dataclass(frozen=True)
class UnitSpec:
    key: str
    name: str
    unit_type: str  # a key of UNIT_TYPES
    office: str  # key of the office (and so the level) the unit belongs to
    contact: str  # person key of its one 13710 contact
    leader: str  # person key


@dataclass(frozen=True)
class PersonSpec:
    key: str
    name: str
    roles: tuple[str, ...]
    unit: str | None
    office: str | None
    company: str | None  # the project enterprise of a liaison
    phone: str | None
    preferred_channel: str  # one of CHANNELS, always one of `identities`
    identities: Mapping[str, str] = field(hash=False)  # channel -> platform user id (read-only)

    def has_role(self, role: str) -> bool:
        return role in self.roles


@dataclass(frozen=True)
class ProjectSpec:
    key: str
    name: str
    office: str  # the 属地 office: county office, or the city office for city-wide projects
    level: str  # key of PROJECT_LEVELS
    company: str
    liaisons: tuple[str, ...]
    leader: str | None  # 包联领导 person key


@dataclass(frozen=True)
class OrgSpec:
    offices: tuple[OfficeSpec, ...]
    units: tuple[UnitSpec, ...]
    people: tuple[PersonSpec, ...]
    projects: tuple[ProjectSpec, ...]

    # Look-ups. Each raises KeyError for an unknown key.
    def office(self, key: str) -> OfficeSpec:
        return self._offices[key]

    def unit(self, key: str) -> UnitSpec:
        return self._units[key]

    def person(self, key: str) -> PersonSpec:
        return self._people[key]

    def project(self, key: str) -> ProjectSpec:
        return self._projects[key]

    def person_by_identity(self, channel: str, user_id: str) -> PersonSpec | None:
        return self._identities.get((channel, user_id))

    def people_with_role(self, role: str) -> tuple[PersonSpec, ...]:
        return tuple(p for p in self.people if role in p.roles)

    def projects_of(self, person_key: str) -> tuple[ProjectSpec, ...]:
        """Projects on which the person is a liaison, in file order."""
        return tuple(p for p in self.projects if person_key in p.liaisons)

    def projects_led_by(self, person_key: str) -> tuple[ProjectSpec, ...]:
        return tuple(p for p in self.projects if p.leader == person_key)

    def units_of_office(self, office_key: str) -> tuple[UnitSpec, ...]:
        return tuple(u for u in self.units if u.office == office_key)

    def unit_of_type(self, office_key: str, unit_type: str) -> UnitSpec | None:
        """The unit of that type belonging to that office (at most one exists)."""
        for u in self.units:
            if u.office == office_key and u.unit_type == unit_type:
                return u
        return None

    def children(self, office_key: str) -> tuple[OfficeSpec, ...]:
        return tuple(o for o in self.offices if o.parent == office_key)

    def office_chain(self, office_key: str) -> tuple[OfficeSpec, ...]:
        """The office and its ancestors, nearest first."""
        chain = []
        key: str | None = office_key
        while key is not None:
            office = self._offices[key]
            chain.append(office)
            key = office.parent
        return tuple(chain)

    @cached_property
    def _offices(self) -> dict[str, OfficeSpec]:
        return {o.key: o for o in self.offices}

    @cached_property
    def _units(self) -> dict[str, UnitSpec]:
        return {u.key: u for u in self.units}

    @cached_property
    def _people(self) -> dict[str, PersonSpec]:
        return {p.key: p for p in self.people}

    @cached_property
    def _projects(self) -> dict[str, ProjectSpec]:
        return {p.key: p for p in self.projects}

    @cached_property
    def _identities(self) -> dict[tuple[str, str], PersonSpec]:
        return {(ch, uid): p for p in self.people for ch, uid in p.identities.items()}


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class OrgProblem:
    entry: str  # e.g. 'people[12] (key="city_zr_contact").unit'
    problem: str

    def __str__(self) -> str:
        return f"{self.entry}: {self.problem}"


class OrgConfigError(ConfigError):
    """One or more problems in an organisation file; nothing was loaded.

    With one problem, `key` is its entry and `problem` its text. With several,
    `key` is "(several)" and `problem` lists each as an "entry: problem" line.
    """

    def __init__(self, file: str | Path, problems: Iterable[OrgProblem]):
        self.problems: tuple[OrgProblem, ...] = tuple(problems)
        if not self.problems:
            raise ValueError("OrgConfigError needs at least one problem")
        if len(self.problems) == 1:
            only = self.problems[0]
            super().__init__(file, only.entry, only.problem)
        else:
            lines = "\n".join(f"  {p}" for p in self.problems)
            super().__init__(file, "(several)", f"{len(self.problems)} problems:\n{lines}")


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------

_SECTIONS = ("offices", "units", "people", "projects")
_MISSING = object()


def load_org(path: Path) -> OrgSpec:
    """Read and validate an organisation TOML file (see the module docstring)."""
    path = Path(path)
    return parse_org(read_toml(path), str(path))


def parse_org(data: dict, source: str) -> OrgSpec:
    """Validate already-parsed TOML data; `source` names the file in errors."""
    return _Parser(source).parse(data)


class _Entry:
    """One `[[section]]` table being read: its label and its problems."""

    def __init__(self, parser: _Parser, section: str, index: int, table: dict):
        self.parser = parser
        self.table = table
        self.bad: set[str] = set()  # top-level fields that already have a problem
        key = table.get("key")
        if isinstance(key, str) and key.strip():
            self.label = f'{section}[{index}] (key="{key.strip()}")'
        else:
            self.label = f"{section}[{index}]"

    def where(self, fld: str | None = None) -> str:
        return self.label if fld is None else f"{self.label}.{fld}"

    def problem(self, fld: str | None, text: str) -> None:
        if fld is not None:
            self.bad.add(re.split(r"[.\[]", fld, maxsplit=1)[0])
        self.parser.problem(self.where(fld), text)

    def unset(self, fld: str) -> bool:
        """True when no problem was reported on the field: a reader's None then means
        the field was absent (or an empty optional string), not that it was wrong."""
        return fld not in self.bad

    # -- typed field readers; each returns None after recording a problem ---
    def string(self, fld: str, *, required: bool) -> str | None:
        value = self.table.get(fld, _MISSING)
        if value is _MISSING:
            if required:
                self.problem(fld, "missing required field")
            return None
        if not isinstance(value, str):
            self.problem(fld, f"must be a string, not {_type_name(value)}")
            return None
        value = value.strip()
        if not value:
            if required:
                self.problem(fld, "must not be empty")
            return None  # an empty optional string means "not set"
        return value

    def key(self, fld: str, *, required: bool) -> str | None:
        value = self.string(fld, required=required)
        if value is not None and not KEY_RE.fullmatch(value):
            self.problem(fld, f'"{value}" is not a valid key (use 1-64 lowercase ASCII letters, digits and "_")')
            return None
        return value

    def choice(self, fld: str, allowed: Iterable[str], what: str, *, required: bool) -> str | None:
        value = self.string(fld, required=required)
        allowed = tuple(allowed)
        if value is not None and value not in allowed:
            self.problem(fld, f'unknown {what} "{value}" (expected one of: {", ".join(allowed)})')
            return None
        return value

    def pattern(self, fld: str, regex: re.Pattern, expected: str, *, required: bool) -> str | None:
        value = self.string(fld, required=required)
        if value is not None and not regex.fullmatch(value):
            self.problem(fld, f'"{value}" is not {expected}')
            return None
        return value

    def string_list(self, fld: str, *, required: bool, item_key: bool) -> list[str] | None:
        """A list of strings (of keys, with `item_key`), without duplicates."""
        value = self.table.get(fld, _MISSING)
        if value is _MISSING:
            if required:
                self.problem(fld, "missing required field")
            return None
        if not isinstance(value, list):
            self.problem(fld, f"must be a list of strings, not {_type_name(value)}")
            return None
        items: list[str] = []
        ok = True
        for i, item in enumerate(value):
            where = f"{fld}[{i}]"
            if not isinstance(item, str):
                self.problem(where, f"must be a string, not {_type_name(item)}")
                ok = False
                continue
            item = item.strip()
            if item_key and not KEY_RE.fullmatch(item):
                self.problem(where, f'"{item}" is not a valid key (use 1-64 lowercase ASCII letters, digits and "_")')
                ok = False
                continue
            if item in items:
                self.problem(where, f'"{item}" is listed twice')
                ok = False
                continue
            items.append(item)
        if not ok:
            return None
        if required and not items:
            self.problem(fld, "must not be empty")
            return None
        return items

    def reject_unknown_fields(self, known: Iterable[str]) -> None:
        known = tuple(known)
        for name in self.table:
            if name not in known:
                self.problem(name, f"unknown field (known fields: {', '.join(known)})")


class _Parser:
    def __init__(self, source: str):
        self.source = source
        self.problems: list[OrgProblem] = []
        # Every record read, duplicates and key-less ones included (for reverse relations).
        self.records: dict[str, list[dict]] = {s: [] for s in _SECTIONS}
        # A section with an unreadable entry or key: references into it cannot be judged
        # (the reference may well be the key the author meant), so none is called unknown.
        self.lost: dict[str, bool] = {s: False for s in _SECTIONS}

    def problem(self, entry: str, text: str) -> None:
        self.problems.append(OrgProblem(entry, text))

    # ----------------------------------------------------------------------
    def parse(self, data: Any) -> OrgSpec:
        if not isinstance(data, dict):
            self.problem("-", f"the organisation must be a TOML table, not {_type_name(data)}")
            raise OrgConfigError(self.source, self.problems)
        for name in data:
            if name not in _SECTIONS:
                self.problem(name, f"unknown section (expected: {', '.join('[[' + s + ']]' for s in _SECTIONS)})")

        entries = {section: self._entries(data, section) for section in _SECTIONS}
        if "offices" in data and isinstance(data["offices"], list) and not data["offices"]:
            self.problem("offices", "at least one office is required")
        elif "offices" not in data:
            self.problem("offices", "missing: at least one [[offices]] entry is required")

        offices = self._index("offices", entries["offices"], self._read_office)
        units = self._index("units", entries["units"], self._read_unit)
        people = self._index("people", entries["people"], self._read_person)
        projects = self._index("projects", entries["projects"], self._read_project)

        self._check_offices(offices)
        self._check_units(units, offices, people)
        self._check_people(people, units, offices, projects)
        self._check_projects(projects, offices, people)

        if self.problems:
            raise OrgConfigError(self.source, self.problems)
        return OrgSpec(
            offices=tuple(_build(OfficeSpec, r) for _, r in offices.values()),
            units=tuple(_build(UnitSpec, r) for _, r in units.values()),
            people=tuple(_person(r) for _, r in people.values()),
            projects=tuple(_build(ProjectSpec, r) for _, r in projects.values()),
        )

    def _entries(self, data: dict, section: str) -> list[_Entry]:
        value = data.get(section, [])
        if not isinstance(value, list):
            self.problem(section, f"must be an array of tables ([[{section}]]), not {_type_name(value)}")
            self.lost[section] = True
            return []
        out = []
        for i, table in enumerate(value):
            if not isinstance(table, dict):
                self.problem(f"{section}[{i}]", f"must be a table, not {_type_name(table)}")
                self.lost[section] = True
                continue
            out.append(_Entry(self, section, i, table))
        return out

    def _index(
        self, section: str, entries: list[_Entry], read: Callable[[_Entry], dict]
    ) -> dict[str, tuple[_Entry, dict]]:
        """Read every entry; keep the first of each key (duplicates are problems)."""
        index: dict[str, tuple[_Entry, dict]] = {}
        for entry in entries:
            record = read(entry)
            self.records[section].append(record)
            key = record["key"]
            if key is None:
                self.lost[section] = True
                continue
            if key in index:
                first = index[key][0]
                entry.problem("key", f'duplicate key "{key}" (already used by {first.label})')
                continue
            index[key] = (entry, record)
        return index

    # -- per-entry reading ---------------------------------------------------
    def _read_office(self, e: _Entry) -> dict:
        e.reject_unknown_fields(
            ("key", "name", "short_name", "level", "parent", "county", "ticket_prefix",
             "wecom_webhook", "dingtalk_webhook", "dingtalk_webhook_secret")
        )
        rec = {
            "key": e.key("key", required=True),
            "name": e.string("name", required=True),
            "short_name": e.string("short_name", required=False),
            "level": e.choice("level", OFFICE_LEVELS, "office level", required=True),
            "parent": e.key("parent", required=False),
            "county": e.string("county", required=False),
            "ticket_prefix": e.pattern(
                "ticket_prefix", TICKET_PREFIX_RE, "2 to 6 uppercase ASCII letters", required=True
            ),
            "wecom_webhook": e.pattern("wecom_webhook", WEBHOOK_RE, "an http(s) URL", required=False),
            "dingtalk_webhook": e.pattern("dingtalk_webhook", WEBHOOK_RE, "an http(s) URL", required=False),
            "dingtalk_webhook_secret": e.string("dingtalk_webhook_secret", required=False),
        }
        if rec["short_name"] is None:
            rec["short_name"] = rec["name"]
        if rec["level"] == "county" and rec["county"] is None and e.unset("county"):
            e.problem("county", "missing required field (a county office names its county/district)")
        if rec["level"] == "city" and rec["county"] is not None:
            e.problem("county", "only a county office names a county/district")
        secret, webhook = rec["dingtalk_webhook_secret"], rec["dingtalk_webhook"]
        if secret is not None and webhook is None and e.unset("dingtalk_webhook"):
            e.problem("dingtalk_webhook_secret", "set without dingtalk_webhook")
        rec["_entry"] = e
        return rec

    def _read_unit(self, e: _Entry) -> dict:
        e.reject_unknown_fields(("key", "name", "unit_type", "office", "contact", "leader"))
        return {
            "key": e.key("key", required=True),
            "name": e.string("name", required=True),
            "unit_type": e.choice("unit_type", UNIT_TYPES, "unit type", required=True),
            "office": e.key("office", required=True),
            "contact": e.key("contact", required=True),
            "leader": e.key("leader", required=True),
            "_entry": e,
        }

    def _read_person(self, e: _Entry) -> dict:
        e.reject_unknown_fields(
            ("key", "name", "roles", "unit", "office", "company", "phone", "preferred_channel", "identities")
        )
        rec: dict[str, Any] = {
            "key": e.key("key", required=True),
            "name": e.string("name", required=True),
            "roles": None,
            "_entry": e,
        }
        roles = e.string_list("roles", required=True, item_key=False)
        if roles is not None:
            unknown = [(i, r) for i, r in enumerate(roles) if r not in ROLES]
            for i, role in unknown:
                e.problem(f"roles[{i}]", f'unknown role "{role}" (expected one of: {", ".join(ROLES)})')
            rec["roles"] = None if unknown else tuple(roles)
        rec.update({
            "unit": e.key("unit", required=False),
            "office": e.key("office", required=False),
            "company": e.string("company", required=False),
            "phone": e.pattern("phone", PHONE_RE, "a phone number", required=False),
            "preferred_channel": e.choice("preferred_channel", CHANNELS, "channel", required=False),
        })

        identities: dict[str, str] | None = None
        raw = e.table.get("identities", _MISSING)
        if raw is _MISSING:
            e.problem("identities", "missing required field (at least one channel = user id)")
        elif not isinstance(raw, dict):
            e.problem("identities", f"must be a table of channel = user id, not {_type_name(raw)}")
        else:
            identities = {}
            for channel, uid in raw.items():
                where = f"identities.{channel}"
                if channel not in CHANNELS:
                    e.problem(where, f'unknown channel "{channel}" (expected one of: {", ".join(CHANNELS)})')
                elif not isinstance(uid, str):
                    e.problem(where, f"must be a string, not {_type_name(uid)}")
                elif not uid.strip():
                    e.problem(where, "must not be empty")
                else:
                    identities[channel] = uid.strip()
            if not raw:
                e.problem("identities", "must not be empty (at least one channel = user id)")
        rec["identities"] = identities

        preferred = rec["preferred_channel"]
        if identities is not None:
            if preferred is None and e.unset("preferred_channel"):
                # Not given: the first channel (in CHANNELS order) the person has.
                rec["preferred_channel"] = next((c for c in CHANNELS if c in identities), None)
            elif preferred is not None and preferred not in raw:
                e.problem(
                    "preferred_channel",
                    f'"{preferred}" has no identity for this person '
                    f"(add identities.{preferred} or choose another channel)",
                )
        return rec

    def _read_project(self, e: _Entry) -> dict:
        e.reject_unknown_fields(("key", "name", "office", "level", "company", "liaisons", "leader"))
        rec = {
            "key": e.key("key", required=True),
            "name": e.string("name", required=True),
            "office": e.key("office", required=True),
            "level": e.choice("level", PROJECT_LEVELS, "project level", required=True),
            "company": e.string("company", required=True),
        }
        liaisons = e.string_list("liaisons", required=True, item_key=True)
        rec["liaisons"] = tuple(liaisons) if liaisons is not None else None
        rec["leader"] = e.key("leader", required=False)
        rec["_entry"] = e
        return rec

    # -- cross-entry checks ---------------------------------------------------
    def _unknown(self, section: str, key: str | None, index: dict) -> bool:
        """True when `key` is set and surely names no entry of `section`."""
        return key is not None and key not in index and not self.lost[section]

    def _complete(self, section: str, field_: str, targets: dict, *, optional: bool = False) -> bool:
        """True when every record's `field_` (a key or a list of keys) was read and names
        an existing entry, so that "nobody refers to X" is a fact, not a follow-up error."""
        if self.lost[section]:
            return False
        for rec in self.records[section]:
            value = rec[field_]
            if value is None:
                if optional and rec["_entry"].unset(field_):
                    continue
                return False
            for key in value if isinstance(value, tuple) else (value,):
                if key not in targets:
                    return False
        return True

    def _unique(self, index: dict[str, tuple[_Entry, dict]], fld: str, what: str, *, where=None) -> None:
        seen: dict[str, _Entry] = {}
        for entry, rec in index.values():
            value = rec[fld]
            if value is None or (where is not None and not where(rec)):
                continue
            if value in seen:
                entry.problem(fld, f'{what} "{value}" is already used by {seen[value].label}')
            else:
                seen[value] = entry

    def _check_offices(self, offices: dict[str, tuple[_Entry, dict]]) -> None:
        self._unique(offices, "name", "name")
        self._unique(offices, "ticket_prefix", "ticket prefix")
        self._unique(offices, "county", "county", where=lambda rec: rec["level"] == "county")
        for entry, rec in offices.values():
            parent_key = rec["parent"]
            if parent_key is None:
                if rec["level"] == "county" and entry.unset("parent"):
                    entry.problem("parent", "missing: a county office needs a city-level parent office")
            elif parent_key == rec["key"]:
                entry.problem("parent", "an office cannot be its own parent")
            elif self._unknown("offices", parent_key, offices):
                entry.problem("parent", f'unknown office "{parent_key}"')
            elif parent_key in offices and offices[parent_key][1]["level"] == "county":
                entry.problem(
                    "parent", f'parent office "{parent_key}" is a county office; the parent must be a city office'
                )
        # Cycles: follow each chain of known parents once.
        done: set[str] = set()
        for start in offices:
            path: list[str] = []
            key: str | None = start
            while key is not None and key in offices and key not in done and key not in path:
                path.append(key)
                key = offices[key][1]["parent"]
            if key is not None and key in path:
                cycle = path[path.index(key):]
                if len(cycle) > 1:  # an office that is its own parent is reported above
                    offices[cycle[0]][0].problem(
                        "parent", "the office hierarchy has a cycle: " + " -> ".join(cycle + [cycle[0]])
                    )
            done.update(path)

    def _check_units(self, units, offices, people) -> None:
        self._unique(units, "name", "name")
        by_type: dict[tuple[str, str], _Entry] = {}
        for entry, rec in units.values():
            if self._unknown("offices", rec["office"], offices):
                entry.problem("office", f'unknown office "{rec["office"]}"')
            office = offices.get(rec["office"]) if rec["office"] else None
            if office is not None and rec["unit_type"] is not None:
                if rec["unit_type"] == "county_government" and office[1]["level"] == "city":
                    entry.problem("unit_type", "a county_government unit must belong to a county office")
                slot = (rec["office"], rec["unit_type"])
                if slot in by_type:
                    entry.problem(
                        "unit_type",
                        f'office "{rec["office"]}" already has a unit of type "{rec["unit_type"]}" '
                        f"({by_type[slot].label})",
                    )
                else:
                    by_type[slot] = entry
            contact = rec["contact"]
            if self._unknown("people", contact, people):
                entry.problem("contact", f'unknown person "{contact}"')
            elif contact in people:
                p = people[contact][1]
                if p["roles"] is not None and "unit_contact" not in p["roles"]:
                    entry.problem("contact", f'person "{contact}" lacks the unit_contact role')
                if p["unit"] is not None and p["unit"] != rec["key"] and p["unit"] in units:
                    entry.problem("contact", f'person "{contact}" belongs to unit "{p["unit"]}", not to this unit')
            leader = rec["leader"]
            if self._unknown("people", leader, people):
                entry.problem("leader", f'unknown person "{leader}"')
            elif leader in people:
                p = people[leader][1]
                if p["roles"] is not None and "unit_leader" not in p["roles"]:
                    entry.problem("leader", f'person "{leader}" lacks the unit_leader role')

    def _check_people(self, people, units, offices, projects) -> None:
        leaders: dict[str, list[str]] = {}
        for rec in self.records["units"]:
            if rec["leader"] and rec["key"]:
                leaders.setdefault(rec["leader"], []).append(rec["key"])
        leaders_known = self._complete("units", "leader", people)
        on_project = {p for rec in self.records["projects"] for p in rec["liaisons"] or ()}
        liaisons_known = self._complete("projects", "liaisons", people)
        lead_project = {rec["leader"] for rec in self.records["projects"] if rec["leader"]}
        project_leaders_known = self._complete("projects", "leader", people, optional=True)
        seen_ids: dict[tuple[str, str], _Entry] = {}

        for entry, rec in people.values():
            key, roles = rec["key"], rec["roles"] or ()
            if self._unknown("units", rec["unit"], units):
                entry.problem("unit", f'unknown unit "{rec["unit"]}"')
            unit = units.get(rec["unit"]) if rec["unit"] else None
            if self._unknown("offices", rec["office"], offices):
                entry.problem("office", f'unknown office "{rec["office"]}"')
            elif rec["office"] is not None and unit is not None and unit[1]["office"] in offices:
                if unit[1]["office"] != rec["office"]:
                    entry.problem(
                        "office",
                        f'office "{rec["office"]}" differs from the office "{unit[1]["office"]}" '
                        f'of unit "{rec["unit"]}" (leave office out for unit staff)',
                    )
            if "office" in roles and rec["office"] is None and entry.unset("office"):
                entry.problem("office", "missing: a person with the office role names his office")
            if "unit_contact" in roles:
                if rec["unit"] is None and entry.unset("unit"):
                    entry.problem("unit", "missing: a unit_contact names his unit")
                elif unit is not None and unit[1]["contact"] in people and unit[1]["contact"] != key:
                    entry.problem(
                        "roles",
                        f'has the unit_contact role but is not the contact of his unit "{rec["unit"]}" '
                        f'(its contact is "{unit[1]["contact"]}"; a unit has one 13710 contact)',
                    )
            if "unit_leader" in roles and leaders_known:
                led = leaders.get(key, [])
                if not led:
                    entry.problem("roles", "has the unit_leader role but leads no unit")
                elif unit is not None and rec["unit"] not in led:
                    entry.problem(
                        "roles",
                        f'has the unit_leader role for unit "{rec["unit"]}" but is not its leader '
                        f'(leads: {", ".join(led)})',
                    )
            if "liaison" in roles and liaisons_known and key not in on_project:
                entry.problem("roles", "has the liaison role but is not a liaison of any project")
            if "project_leader" in roles and project_leaders_known and key not in lead_project:
                entry.problem("roles", "has the project_leader role but leads no project")
            for channel, uid in (rec["identities"] or {}).items():
                slot = (channel, uid)
                if slot in seen_ids:
                    entry.problem(
                        f"identities.{channel}",
                        f'{channel} id "{uid}" is already used by {seen_ids[slot].label}',
                    )
                else:
                    seen_ids[slot] = entry

    def _check_projects(self, projects, offices, people) -> None:
        self._unique(projects, "name", "name")
        for entry, rec in projects.values():
            if self._unknown("offices", rec["office"], offices):
                entry.problem("office", f'unknown office "{rec["office"]}"')
            for i, liaison in enumerate(rec["liaisons"] or ()):
                if self._unknown("people", liaison, people):
                    entry.problem(f"liaisons[{i}]", f'unknown person "{liaison}"')
                elif liaison in people:
                    roles = people[liaison][1]["roles"]
                    if roles is not None and "liaison" not in roles:
                        entry.problem(f"liaisons[{i}]", f'person "{liaison}" lacks the liaison role')
            leader = rec["leader"]
            if self._unknown("people", leader, people):
                entry.problem("leader", f'unknown person "{leader}"')
            elif leader in people:
                roles = people[leader][1]["roles"]
                if roles is not None and "project_leader" not in roles:
                    entry.problem("leader", f'person "{leader}" lacks the project_leader role')


def _type_name(value: Any) -> str:
    return {
        str: "a string", int: "an integer", float: "a number", bool: "a boolean",
        list: "a list", dict: "a table",
    }.get(type(value), type(value).__name__)


def _build(cls, rec: dict):
    return cls(**{k: v for k, v in rec.items() if not k.startswith("_")})


def _person(rec: dict) -> PersonSpec:
    fields = {k: v for k, v in rec.items() if not k.startswith("_")}
    fields["identities"] = MappingProxyType(dict(fields["identities"]))
    return PersonSpec(**fields)
