"""The organisation file: the demo loads, and every validation rule answers with
a ConfigError naming the file, the entry (and field) and the problem."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest

from config.org import (
    DEFAULT_ORG_FILE,
    OrgConfigError,
    OrgSpec,
    load_org,
    parse_org,
)
from config.settings import ConfigError
from config.vocabulary import CHANNELS, PROJECT_LEVELS, ROLES, UNIT_TYPES

# ---------------------------------------------------------------------------
# The demo organisation
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo() -> OrgSpec:
    return load_org(DEFAULT_ORG_FILE)


def test_demo_loads_with_its_offices(demo):
    city = [o for o in demo.offices if o.level == "city"]
    counties = [o for o in demo.offices if o.level == "county"]
    assert len(city) == 1 and city[0].parent is None and city[0].county is None
    assert "总指挥部办公室" in city[0].name
    assert len(counties) >= 2
    assert all(o.parent == city[0].key and o.county for o in counties)
    assert len({o.ticket_prefix for o in demo.offices}) == len(demo.offices)


def test_demo_has_every_city_unit_type_and_each_county_government(demo):
    city = next(o for o in demo.offices if o.level == "city")
    city_types = {u.unit_type for u in demo.units_of_office(city.key)}
    assert city_types == set(UNIT_TYPES) - {"county_government"}
    for office in demo.offices:
        if office.level == "county":
            gov = demo.unit_of_type(office.key, "county_government")
            assert gov is not None and gov.name == f"{office.county}人民政府"
            for common in ("natural_resources", "housing", "ecology", "public_security", "power", "approval"):
                assert demo.unit_of_type(office.key, common) is not None, (office.key, common)


def test_demo_units_have_one_contact_and_a_leader(demo):
    for unit in demo.units:
        contact, leader = demo.person(unit.contact), demo.person(unit.leader)
        assert "unit_contact" in contact.roles and contact.unit == unit.key
        assert "unit_leader" in leader.roles
        assert [p.key for p in demo.people if p.unit == unit.key and "unit_contact" in p.roles] == [unit.contact]


def test_demo_people_have_all_three_identities(demo):
    for person in demo.people:
        assert set(person.identities) == set(CHANNELS), person.key
        assert person.identities["local"] == person.key
        assert person.preferred_channel in person.identities
        assert demo.person_by_identity("wecom", person.identities["wecom"]) is person
        assert demo.person_by_identity("dingtalk", person.identities["dingtalk"]) is person
    assert demo.person_by_identity("wecom", "zr_contact_city").key == "city_zr_contact"
    assert demo.person_by_identity("wecom", "nobody") is None


def test_demo_projects_liaisons_and_leaders(demo):
    assert len(demo.projects) >= 6
    assert {p.level for p in demo.projects} == set(PROJECT_LEVELS)
    assert {p.office for p in demo.projects} == {o.key for o in demo.offices}
    for project in demo.projects:
        assert 1 <= len(project.liaisons) <= 2 and project.company
        assert project.leader and "project_leader" in demo.person(project.leader).roles
    liaisons = demo.people_with_role("liaison")
    assert any(len(demo.projects_of(p.key)) >= 2 for p in liaisons)
    for office in demo.offices:
        staff = [p for p in demo.people if "office" in p.roles and p.office == office.key]
        assert len(staff) == 2
    assert set().union(*(p.roles for p in demo.people)) == set(ROLES)


def test_demo_specs_are_immutable(demo):
    person = demo.people[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        person.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        person.identities["wecom"] = "x"  # type: ignore[index]
    assert isinstance(demo.offices, tuple) and isinstance(person.roles, tuple)
    hash(person)  # usable in sets despite the mapping


def test_office_chain_and_lookups(demo):
    assert [o.key for o in demo.office_chain("yd")] == ["yd", "city"]
    assert {o.key for o in demo.children("city")} == {"yd", "hd", "xf"}
    with pytest.raises(KeyError):
        demo.person("nobody")


# ---------------------------------------------------------------------------
# A small valid organisation, written to tmp_path as TOML
# ---------------------------------------------------------------------------

BASE: dict = {
    "offices": [
        {"key": "city", "name": "示范市重点工程项目总指挥部办公室", "short_name": "市重点办",
         "level": "city", "ticket_prefix": "SF"},
        {"key": "yd", "name": "尧都区重点工程项目指挥部办公室", "level": "county",
         "parent": "city", "county": "尧都区", "ticket_prefix": "YD"},
    ],
    "units": [
        {"key": "yd_zr", "name": "尧都区自然资源局", "unit_type": "natural_resources",
         "office": "yd", "contact": "yd_zr_contact", "leader": "yd_zr_leader"},
    ],
    "people": [
        {"key": "city_office_duty", "name": "市重点办值班员", "roles": ["office"], "office": "city",
         "identities": {"wecom": "office_duty_city", "local": "city_office_duty"}},
        {"key": "yd_zr_contact", "name": "尧都区自然资源局13710联系人", "roles": ["unit_contact"],
         "unit": "yd_zr", "phone": "0357-1234567",
         "identities": {"wecom": "zr_contact_yd", "dingtalk": "dt_zr_contact_yd"}},
        {"key": "yd_zr_leader", "name": "尧都区自然资源局分管领导", "roles": ["unit_leader"],
         "unit": "yd_zr", "identities": {"wecom": "zr_leader_yd"}},
        {"key": "p_wuliu_liaison", "name": "示范物流园项目联络员", "roles": ["liaison"],
         "company": "示范物流园开发有限公司", "preferred_channel": "dingtalk",
         "identities": {"wecom": "wuliu_liaison", "dingtalk": "dt_wuliu_liaison"}},
        {"key": "p_wuliu_leader", "name": "示范物流园项目包联领导", "roles": ["project_leader"],
         "identities": {"local": "p_wuliu_leader"}},
    ],
    "projects": [
        {"key": "wuliu", "name": "示范物流园项目", "office": "yd", "level": "province",
         "company": "示范物流园开发有限公司", "liaisons": ["p_wuliu_liaison"], "leader": "p_wuliu_leader"},
    ],
}


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)


def to_toml(data: dict) -> str:
    """A tiny TOML writer for the test organisations (arrays of tables, inline tables)."""
    lines = []
    for name, value in data.items():  # plain values first, as TOML requires
        if not (isinstance(value, list) and value and all(isinstance(t, dict) for t in value)):
            lines.append(f"{name} = {_value(value)}")
    for name, value in data.items():
        if isinstance(value, list) and value and all(isinstance(t, dict) for t in value):
            for table in value:
                lines += ["", f"[[{name}]]"] + [f"{k} = {_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "org.toml"
    path.write_text(to_toml(data), encoding="utf-8")
    return path


def base() -> dict:
    return copy.deepcopy(BASE)


def person(org: dict, key: str) -> dict:
    return next(p for p in org["people"] if p["key"] == key)


def test_base_loads_with_defaults(tmp_path):
    org = load_org(write(tmp_path, base()))
    assert org.office("yd").short_name == "尧都区重点工程项目指挥部办公室"  # defaults to name
    assert org.person("yd_zr_contact").preferred_channel == "wecom"  # first channel it has
    assert org.person("p_wuliu_leader").preferred_channel == "local"
    assert org.person("p_wuliu_liaison").preferred_channel == "dingtalk"
    assert org.person("yd_zr_contact").phone == "0357-1234567"
    assert org.project("wuliu").liaisons == ("p_wuliu_liaison",)
    assert org.office("city").wecom_webhook is None


def test_same_id_on_two_channels_is_fine(tmp_path):
    org = base()
    person(org, "yd_zr_contact")["identities"] = {"wecom": "same", "dingtalk": "same"}
    assert load_org(write(tmp_path, org)).person_by_identity("dingtalk", "same").key == "yd_zr_contact"


def test_a_leader_may_lead_several_units(tmp_path):
    org = base()
    org["units"].append({"key": "yd_zj", "name": "尧都区住房和城乡建设局", "unit_type": "housing",
                         "office": "yd", "contact": "yd_zj_contact", "leader": "yd_zr_leader"})
    org["people"].append({"key": "yd_zj_contact", "name": "尧都区住建局13710联系人", "roles": ["unit_contact"],
                          "unit": "yd_zj", "identities": {"wecom": "zj_contact_yd"}})
    assert load_org(write(tmp_path, org)).unit("yd_zj").leader == "yd_zr_leader"


# ---------------------------------------------------------------------------
# Every validation error
# ---------------------------------------------------------------------------

P_CONTACT = 'people[1] (key="yd_zr_contact")'
P_LEADER = 'people[2] (key="yd_zr_leader")'
P_LIAISON = 'people[3] (key="p_wuliu_liaison")'
UNIT = 'units[0] (key="yd_zr")'
YD = 'offices[1] (key="yd")'
CITY = 'offices[0] (key="city")'
PROJECT = 'projects[0] (key="wuliu")'


def _add_person(**fields):
    def change(org):
        entry = {"key": "extra", "name": "多余的人", "roles": ["office"], "office": "city",
                 "identities": {"wecom": "extra"}}
        entry.update(fields)
        org["people"].append({k: v for k, v in entry.items() if v is not None})
    return change


def _add_unit(key, name, unit_type, office):
    """A unit with its own contact and leader, so only the unit itself can be wrong."""
    def change(org):
        org["units"].append({"key": key, "name": name, "unit_type": unit_type, "office": office,
                             "contact": f"{key}_contact", "leader": f"{key}_leader"})
        for role in ("contact", "leader"):
            org["people"].append({"key": f"{key}_{role}", "name": f"{name}{role}", "roles": [f"unit_{role}"],
                                  "unit": key, "identities": {"wecom": f"{key}_{role}"}})
    return change


def _set(section, index, **fields):
    def change(org):
        org[section][index].update(fields)
    return change


def _drop(section, index, field):
    def change(org):
        del org[section][index][field]
    return change


def _both(*changes):
    def change(org):
        for c in changes:
            c(org)
    return change


def _add_office(**fields):
    def change(org):
        entry = {"key": "extra", "name": "额外办公室", "level": "city", "ticket_prefix": "EX"}
        entry.update(fields)
        org["offices"].append(entry)
    return change


CASES = [
    # (id, change, entry, problem)
    ("duplicate person key", _add_person(key="yd_zr_contact"), 'people[5] (key="yd_zr_contact").key',
     'duplicate key "yd_zr_contact" (already used by people[1]'),
    ("duplicate office key", _add_office(key="yd", ticket_prefix="EX"), 'offices[2] (key="yd").key',
     'duplicate key "yd"'),
    ("duplicate unit name", _add_unit("city_zr", "尧都区自然资源局", "natural_resources", "city"),
     'units[1] (key="city_zr").name', 'name "尧都区自然资源局" is already used by units[0]'),
    ("duplicate project name", lambda o: o["projects"].append({**o["projects"][0], "key": "wuliu2"}),
     'projects[1] (key="wuliu2").name', "is already used by projects[0]"),
    ("invalid key", _set("offices", 1, key="YD-Office"), 'offices[1] (key="YD-Office").key',
     'is not a valid key'),
    ("unknown office of a unit", _set("units", 0, office="ydd"), f"{UNIT}.office", 'unknown office "ydd"'),
    ("unknown unit of a person", _set("people", 2, unit="yd_zrr"), f"{P_LEADER}.unit", 'unknown unit "yd_zrr"'),
    ("unknown office of a person", _set("people", 0, office="town"),
     'people[0] (key="city_office_duty").office', 'unknown office "town"'),
    ("unknown contact", _set("units", 0, contact="nobody"), f"{UNIT}.contact", 'unknown person "nobody"'),
    ("unknown leader", _set("units", 0, leader="nobody"), f"{UNIT}.leader", 'unknown person "nobody"'),
    ("unknown project office", _set("projects", 0, office="town"), f"{PROJECT}.office", 'unknown office "town"'),
    ("unknown project liaison", _set("projects", 0, liaisons=["p_wuliu_liaison", "ghost"]),
     f"{PROJECT}.liaisons[1]", 'unknown person "ghost"'),
    ("unknown project leader", _both(_set("projects", 0, leader="ghost"), lambda o: o["people"].pop(4)),
     f"{PROJECT}.leader", 'unknown person "ghost"'),
    ("unknown role", _set("people", 0, roles=["office", "boss"]), 'people[0] (key="city_office_duty").roles[1]',
     'unknown role "boss"'),
    ("unknown unit type", _set("units", 0, unit_type="forestry"), f"{UNIT}.unit_type", 'unknown unit type "forestry"'),
    ("unknown channel", _set("people", 2, identities={"wecom": "zr_leader_yd", "qq": "123"}),
     f"{P_LEADER}.identities.qq", 'unknown channel "qq"'),
    ("unknown preferred channel", _set("people", 2, preferred_channel="email"), f"{P_LEADER}.preferred_channel",
     'unknown channel "email"'),
    ("unknown project level", _set("projects", 0, level="national"), f"{PROJECT}.level",
     'unknown project level "national"'),
    ("unknown office level", _set("offices", 1, level="town"), f"{YD}.level", 'unknown office level "town"'),
    ("second unit_contact of a unit",
     _add_person(key="yd_zr_contact2", roles=["unit_contact"], unit="yd_zr", office=None),
     'people[5] (key="yd_zr_contact2").roles', 'not the contact of his unit "yd_zr" (its contact is "yd_zr_contact"'),
    ("contact from another unit",
     _both(lambda o: o["units"].append({"key": "yd_zj", "name": "尧都区住建局", "unit_type": "housing",
                                         "office": "yd", "contact": "yd_zr_contact", "leader": "yd_zr_leader"})),
     'units[1] (key="yd_zj").contact', 'person "yd_zr_contact" belongs to unit "yd_zr", not to this unit'),
    ("contact lacking unit_contact role", _set("people", 1, roles=["office"], office="yd"), f"{UNIT}.contact",
     'person "yd_zr_contact" lacks the unit_contact role'),
    ("unit_contact without unit", _both(_drop("people", 1, "unit")), f"{P_CONTACT}.unit",
     "a unit_contact names his unit"),
    ("leader lacking unit_leader role", _set("people", 2, roles=["office"], office="yd"), f"{UNIT}.leader",
     'person "yd_zr_leader" lacks the unit_leader role'),
    ("unit_leader leading no unit", _add_person(roles=["unit_leader"], office=None), 'people[5] (key="extra").roles',
     "has the unit_leader role but leads no unit"),
    ("liaison on no project", _add_person(roles=["liaison"], office=None), 'people[5] (key="extra").roles',
     "has the liaison role but is not a liaison of any project"),
    ("project_leader leading no project", _add_person(roles=["project_leader"], office=None),
     'people[5] (key="extra").roles', "has the project_leader role but leads no project"),
    ("project liaison lacking liaison role", _set("projects", 0, liaisons=["p_wuliu_liaison", "city_office_duty"]),
     f"{PROJECT}.liaisons[1]", 'person "city_office_duty" lacks the liaison role'),
    ("project leader lacking project_leader role",
     _both(_set("projects", 0, leader="city_office_duty"), lambda o: o["people"].pop(4)),
     f"{PROJECT}.leader", 'person "city_office_duty" lacks the project_leader role'),
    ("liaison listed twice", _set("projects", 0, liaisons=["p_wuliu_liaison", "p_wuliu_liaison"]),
     f"{PROJECT}.liaisons[1]", '"p_wuliu_liaison" is listed twice'),
    ("duplicate identity", _set("people", 2, identities={"wecom": "zr_contact_yd"}), f"{P_LEADER}.identities.wecom",
     f'wecom id "zr_contact_yd" is already used by {P_CONTACT}'),
    ("office role without office", _drop("people", 0, "office"), 'people[0] (key="city_office_duty").office',
     "a person with the office role names his office"),
    ("person office differs from unit office", _set("people", 2, office="city"), f"{P_LEADER}.office",
     'differs from the office "yd" of unit "yd_zr"'),
    ("office cycle", _both(_add_office(key="a", parent="b", ticket_prefix="AA"),
                           _add_office(key="b", name="另一个办公室", parent="a", ticket_prefix="BB")),
     'offices[2] (key="a").parent', "the office hierarchy has a cycle: a -> b -> a"),
    ("office its own parent", _add_office(parent="extra"), 'offices[2] (key="extra").parent',
     "an office cannot be its own parent"),
    ("county office without parent", _drop("offices", 1, "parent"), f"{YD}.parent",
     "a county office needs a city-level parent office"),
    ("county office under a county office",
     _add_office(key="town", level="county", county="某镇", parent="yd", ticket_prefix="TW"),
     'offices[2] (key="town").parent', 'parent office "yd" is a county office'),
    ("unknown parent office", _set("offices", 1, parent="province"), f"{YD}.parent", 'unknown office "province"'),
    ("county office without county", _drop("offices", 1, "county"), f"{YD}.county",
     "a county office names its county/district"),
    ("city office with county", _set("offices", 0, county="尧都区"), f"{CITY}.county",
     "only a county office names a county/district"),
    ("ticket prefix collision", _set("offices", 1, ticket_prefix="SF"), f"{YD}.ticket_prefix",
     f'ticket prefix "SF" is already used by {CITY}'),
    ("ticket prefix lowercase", _set("offices", 1, ticket_prefix="yd"), f"{YD}.ticket_prefix",
     '"yd" is not 2 to 6 uppercase ASCII letters'),
    ("ticket prefix too long", _set("offices", 1, ticket_prefix="YAODUQU"), f"{YD}.ticket_prefix",
     "is not 2 to 6 uppercase ASCII letters"),
    ("ticket prefix not ascii", _set("offices", 1, ticket_prefix="ＹＤ"), f"{YD}.ticket_prefix",
     "is not 2 to 6 uppercase ASCII letters"),
    ("preferred channel without identity", _set("people", 1, preferred_channel="local"),
     f"{P_CONTACT}.preferred_channel", '"local" has no identity for this person'),
    ("empty identities", _set("people", 2, identities={}), f"{P_LEADER}.identities", "must not be empty"),
    ("blank identity", _set("people", 2, identities={"wecom": "  "}), f"{P_LEADER}.identities.wecom",
     "must not be empty"),
    ("county government at city level", _add_unit("city_zf", "示范市人民政府", "county_government", "city"),
     'units[1] (key="city_zf").unit_type', "a county_government unit must belong to a county office"),
    ("two units of one type in an office", _add_unit("yd_zr2", "尧都区规划局", "natural_resources", "yd"),
     'units[1] (key="yd_zr2").unit_type', 'office "yd" already has a unit of type "natural_resources"'),
    ("dingtalk secret without webhook", _set("offices", 0, dingtalk_webhook_secret="SECabc"),
     f"{CITY}.dingtalk_webhook_secret", "set without dingtalk_webhook"),
    ("bad webhook", _set("offices", 0, wecom_webhook="qyapi.weixin.qq.com/x"), f"{CITY}.wecom_webhook",
     "is not an http(s) URL"),
    ("bad phone", _set("people", 1, phone="call me"), f"{P_CONTACT}.phone", '"call me" is not a phone number'),
    ("unknown field", _set("offices", 1, nmae="x"), f"{YD}.nmae", "unknown field"),
    ("unknown section", lambda o: o.update(teams=[{"key": "x"}]), "teams", "unknown section"),
    ("no offices", lambda o: o.update(offices=[], units=[], people=[], projects=[]), "offices",
     "at least one"),
    # missing required fields
    ("missing office name", _drop("offices", 1, "name"), f"{YD}.name", "missing required field"),
    ("missing ticket prefix", _drop("offices", 1, "ticket_prefix"), f"{YD}.ticket_prefix", "missing required field"),
    ("missing office level", _drop("offices", 0, "level"), f"{CITY}.level", "missing required field"),
    ("missing office key", _drop("offices", 0, "key"), "offices[0].key", "missing required field"),
    ("missing unit type", _drop("units", 0, "unit_type"), f"{UNIT}.unit_type", "missing required field"),
    ("missing person name", _drop("people", 2, "name"), f"{P_LEADER}.name", "missing required field"),
    ("empty person name", _set("people", 2, name="  "), f"{P_LEADER}.name", "must not be empty"),
    ("missing roles", _drop("people", 0, "roles"), 'people[0] (key="city_office_duty").roles',
     "missing required field"),
    ("empty roles", _set("people", 0, roles=[]), 'people[0] (key="city_office_duty").roles', "must not be empty"),
    ("missing identities", _drop("people", 2, "identities"), f"{P_LEADER}.identities", "missing required field"),
    ("missing project company", _drop("projects", 0, "company"), f"{PROJECT}.company", "missing required field"),
    ("missing project liaisons", _drop("projects", 0, "liaisons"), f"{PROJECT}.liaisons", "missing required field"),
    ("empty project liaisons", _both(_set("projects", 0, liaisons=[]), _drop("people", 3, "roles"),
                                     _set("people", 3, roles=["office"], office="yd")),
     f"{PROJECT}.liaisons", "must not be empty"),
    # wrong types
    ("roles as a string", _set("people", 0, roles="office"), 'people[0] (key="city_office_duty").roles',
     "must be a list of strings, not a string"),
    ("name as a number", _set("offices", 1, name=5), f"{YD}.name", "must be a string, not an integer"),
    ("identity as a number", _set("people", 2, identities={"wecom": 123}), f"{P_LEADER}.identities.wecom",
     "must be a string, not an integer"),
    ("identities as a string", _set("people", 2, identities="zr_leader_yd"), f"{P_LEADER}.identities",
     "must be a table of channel = user id, not a string"),
    ("liaison as a number", _set("projects", 0, liaisons=["p_wuliu_liaison", 7]), f"{PROJECT}.liaisons[1]",
     "must be a string, not an integer"),
    ("unit office as a list", _set("units", 0, office=["yd"]), f"{UNIT}.office", "must be a string, not a list"),
    ("section not an array", lambda o: o.update(projects="wuliu"), "projects",
     "must be an array of tables ([[projects]]), not a string"),
    ("entry not a table", lambda o: o["projects"].append("wuliu"), "projects[1]", "must be a table, not a string"),
]


@pytest.mark.parametrize(("change", "entry", "problem"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validation_error_names_file_entry_and_problem(tmp_path, change, entry, problem):
    org = base()
    change(org)
    path = write(tmp_path, org)
    with pytest.raises(ConfigError) as info:
        load_org(path)
    err = info.value
    assert isinstance(err, OrgConfigError)
    assert err.file == str(path)
    assert str(path) in str(err)
    found = [p for p in err.problems if p.entry == entry and problem in p.problem]
    assert found, f"expected {entry}: ...{problem}... in\n{err}"
    assert f"{entry}: " in str(err) and problem in str(err)
    # one cause, one problem: no cascade of follow-up complaints
    assert len(err.problems) == 1, str(err)
    assert (err.key, err.problem) == (entry, err.problems[0].problem)


def test_all_problems_are_listed_together(tmp_path):
    org = base()
    _set("units", 0, unit_type="forestry")(org)
    _set("offices", 1, ticket_prefix="SF")(org)
    _set("people", 2, identities={"wecom": "zr_contact_yd"})(org)
    path = write(tmp_path, org)
    with pytest.raises(OrgConfigError) as info:
        load_org(path)
    err = info.value
    assert err.key == "(several)"
    assert [p.entry for p in err.problems] == [
        f"{UNIT}.unit_type", f"{YD}.ticket_prefix", f"{P_LEADER}.identities.wecom",
    ]
    text = str(err)
    assert text.startswith(f"{path}: (several): 3 problems:")
    for p in err.problems:
        assert f"{p.entry}: {p.problem}" in text


def test_nothing_is_returned_on_error_and_input_is_untouched():
    org = base()
    org["projects"][0]["level"] = "national"
    before = copy.deepcopy(org)
    result = None
    with pytest.raises(ConfigError):
        result = parse_org(org, "inline.toml")
    assert result is None
    assert org == before
    org["projects"][0]["level"] = "county"
    assert parse_org(org, "inline.toml").project("wuliu").level == "county"


def test_a_typo_in_the_demo_file_is_pinpointed(tmp_path):
    text = DEFAULT_ORG_FILE.read_text(encoding="utf-8")
    assert text.count('leader = "p_huanlu_leader"') == 1
    path = tmp_path / "org.toml"
    path.write_text(text.replace('leader = "p_huanlu_leader"', 'leader = "p_huanlu_leeder"'), encoding="utf-8")
    with pytest.raises(OrgConfigError) as info:
        load_org(path)
    index = [p.key for p in load_org(DEFAULT_ORG_FILE).projects].index("huanlu")
    assert str(info.value) == (
        f'{path}: projects[{index}] (key="huanlu").leader: unknown person "p_huanlu_leeder"'
    )


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "broken.toml"
    bad.write_text("[[offices]\nkey = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="broken.toml: -: not valid TOML"):
        load_org(bad)
    with pytest.raises(ConfigError, match="file not found"):
        load_org(tmp_path / "absent.toml")
