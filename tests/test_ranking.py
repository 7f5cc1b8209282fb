"""The monthly ranking (scheduler/ranking.py): a month with answers worked out
by hand, the pure ordering, the xlsx, the markdown 通报 and the chart with a
Chinese font that has every glyph.

`World` (also used by test_digest.py and test_ledger_export.py) builds a small
organisation and drives tickets through the real workflow at given times, on
the real database of the `database` fixture (SQLite, or PostgreSQL in a schema
of its own when KPBOT_TEST_DATABASE_URL says so)."""

from __future__ import annotations

import warnings
from dataclasses import replace
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from config.policy import default_policy
from models import workflow
from models.db import make_sessionmaker
from models.tables import Office, Person, Project, Ticket, TicketEvent, Unit
from models.workflow import SYSTEM, Actor, Move
from scheduler.ranking import (
    LaggardRule,
    Stats,
    chart_texts,
    chinese_font_path,
    classify,
    missing_glyphs,
    monthly_ranking,
    rank,
    render_ranking_chart,
    render_ranking_markdown,
    write_ranking_xlsx,
)

SH = ZoneInfo("Asia/Shanghai")
POLICY = default_policy()


def at(*args) -> datetime:
    """A Shanghai wall-clock time as aware UTC."""
    return datetime(*args, tzinfo=SH).astimezone(timezone.utc)


FIVE = {"method": "召开专题协调会", "unit": "市规划和自然资源局", "leader": "王副市长", "person": "李科长",
        "due": "2026-11-30"}


class World:
    """Offices city (市重点办) > yd (尧都区), hd (洪洞县); units A (市规划和自然资源局),
    B (市公安局), C (尧都区人民政府), each with a 13710 contact; a liaison; a
    project per office."""

    def __init__(self, session):
        self.session = session
        self.seq = 0

    async def build(self) -> World:
        s = self.session
        self.city = Office(key="city", name="示范市重点工程项目总指挥部办公室", short_name="市重点办",
                           level="city", ticket_prefix="SF")
        s.add(self.city)
        await s.flush()
        self.yd = Office(key="yd", name="尧都区重点工程项目指挥部办公室", short_name="尧都区重点办",
                         level="county", parent_id=self.city.id, county="尧都区", ticket_prefix="YD")
        self.hd = Office(key="hd", name="洪洞县重点工程项目指挥部办公室", short_name="洪洞县重点办",
                         level="county", parent_id=self.city.id, county="洪洞县", ticket_prefix="HD")
        s.add_all([self.yd, self.hd])
        await s.flush()
        self.A = Unit(key="city_zr", name="市规划和自然资源局", unit_type="natural_resources", office_id=self.city.id)
        self.B = Unit(key="city_ga", name="市公安局", unit_type="public_security", office_id=self.city.id)
        self.C = Unit(key="yd_gov", name="尧都区人民政府", unit_type="county_government", office_id=self.yd.id)
        s.add_all([self.A, self.B, self.C])
        await s.flush()
        self.contacts = {}
        for unit, phone in ((self.A, "0357-2000001"), (self.B, "0357-2000002"), (self.C, None)):
            person = Person(key=f"{unit.key}_contact", name=f"{unit.name}13710联系人", unit_id=unit.id, phone=phone)
            s.add(person)
            await s.flush()
            unit.contact_id = person.id
            self.contacts[unit.id] = person
        self.liaison = Person(key="liaison", name="示范项目联络员", company="示范建设公司")
        s.add(self.liaison)
        await s.flush()
        self.p_yd = Project(key="p_yd", name="尧都区示范产业园项目", office_id=self.yd.id, level="county")
        self.p_city = Project(key="p_city", name="示范市快速路项目", office_id=self.city.id, level="city")
        self.p_hd = Project(key="p_hd", name="洪洞县新能源项目", office_id=self.hd.id, level="county")
        s.add_all([self.p_yd, self.p_city, self.p_hd])
        await s.flush()
        return self

    async def report(self, office: Office, when: datetime, *, tier: str = "general", project=None,
                     text: str = "项目用地手续办理缓慢，影响开工", unit_type: str | None = None) -> Ticket:
        self.seq += 1
        ticket = Ticket(number=f"{office.ticket_prefix}-2026-{self.seq:04d}", office_id=office.id,
                        project_id=project.id if project else None, text=text, tier=tier, unit_type=unit_type,
                        triage={}, extensions=[], secondary_unit_types=[], needs_office=False)
        event = workflow.open_ticket(ticket, reporter_id=self.liaison.id, now=when, policy=POLICY)
        self.session.add(ticket)
        await self.session.flush()
        event.ticket_id = ticket.id
        self.session.add(event)
        await self.session.flush()
        return ticket

    async def move(self, ticket: Ticket, move: Move, when: datetime, who: str = "office", **kw) -> TicketEvent:
        if who == "office":
            actor = SYSTEM
        elif who == "unit":
            actor = Actor(person_id=self.contacts[ticket.unit_id].id, roles=frozenset({"unit_contact"}),
                          unit_id=ticket.unit_id)
        else:
            actor = Actor(person_id=ticket.reporter_id, roles=frozenset({"liaison"}))
        event = workflow.apply(ticket, move, actor, when, POLICY, **kw)
        self.session.add(event)
        await self.session.flush()
        return event

    async def clock_event(self, ticket: Ticket, kind: str, when: datetime, **data) -> TicketEvent:
        """An event the clock writes (remind / escalate)."""
        event = TicketEvent(ticket_id=ticket.id, at=when, kind=kind, unit_id=ticket.unit_id, data=data)
        self.session.add(event)
        await self.session.flush()
        return event


@pytest.fixture
async def session(database):
    engine = database.engine()
    async with make_sessionmaker(engine)() as session:
        yield session
    await engine.dispose()


# -- a November with known answers ----------------------------------------------------------


async def november(w: World) -> None:
    """Ten tickets; the expected figures are worked out in the tests below."""
    A, B, C = w.A.id, w.B.id, w.C.id
    # T1 (尧都区): on time at every step, closed after exactly 5 days.
    t1 = await w.report(w.yd, at(2026, 11, 2, 9), project=w.p_yd)
    await w.move(t1, Move.DISPATCH, at(2026, 11, 2, 10), unit_id=A)
    await w.move(t1, Move.ACKNOWLEDGE, at(2026, 11, 2, 15), "unit")
    await w.move(t1, Move.FEEDBACK, at(2026, 11, 3, 10), "unit", note="已对接")
    await w.move(t1, Move.RESOLVE, at(2026, 11, 6, 10), "unit", note="已办结")
    await w.move(t1, Move.CONFIRM, at(2026, 11, 7, 10), "reporter")
    # T2 (尧都区): acknowledged late, resolved late (due 11-11 18:00), 不满意 once, then closed.
    t2 = await w.report(w.yd, at(2026, 11, 3, 9), project=w.p_yd)
    await w.move(t2, Move.DISPATCH, at(2026, 11, 4, 9), unit_id=A)
    await w.move(t2, Move.ACKNOWLEDGE, at(2026, 11, 5, 9), "unit")
    await w.move(t2, Move.FEEDBACK, at(2026, 11, 6, 9), "unit", note="正在协调")
    await w.move(t2, Move.RESOLVE, at(2026, 11, 14, 10), "unit", note="已办结")
    await w.move(t2, Move.REOPEN, at(2026, 11, 15, 10), "reporter", note="现场仍未解决")
    await w.move(t2, Move.RESOLVE, at(2026, 11, 20, 10), "unit", note="已彻底解决")
    await w.move(t2, Move.CONFIRM, at(2026, 11, 21, 10), "reporter")
    # T3 (市本级, obstruction): B never answers in November; its late answer on
    # 12-02 must not change November's figures.
    t3 = await w.report(w.city, at(2026, 11, 10, 8), tier="obstruction", project=w.p_city)
    await w.move(t3, Move.DISPATCH, at(2026, 11, 10, 9), unit_id=B)
    # T4 (市本级): B acknowledges on time and returns it; reassigned to A, who
    # acknowledges late (due 11-21 18:00) and resolves on time, unconfirmed.
    t4 = await w.report(w.city, at(2026, 11, 20, 9), project=w.p_city)
    await w.move(t4, Move.DISPATCH, at(2026, 11, 20, 10), unit_id=B)
    await w.move(t4, Move.ACKNOWLEDGE, at(2026, 11, 20, 11), "unit")
    await w.move(t4, Move.RETURN, at(2026, 11, 21, 9), "unit", note="非本单位职责")
    await w.move(t4, Move.REASSIGN, at(2026, 11, 21, 15), unit_id=A)
    await w.move(t4, Move.ACKNOWLEDGE, at(2026, 11, 22, 9), "unit")
    await w.move(t4, Move.FEEDBACK, at(2026, 11, 23, 9), "unit", note="已现场查看")
    await w.move(t4, Move.RESOLVE, at(2026, 11, 25, 9), "unit", note="已办结")
    # T5 (尧都区): dispatched in October: in no November cohort.
    t5 = await w.report(w.yd, at(2026, 10, 28, 10), tier="major", project=w.p_yd)
    await w.move(t5, Move.DISPATCH, at(2026, 10, 28, 11), unit_id=C)
    await w.move(t5, Move.FEEDBACK, at(2026, 11, 5, 9), "unit", note="方案编制中")
    # T6 (尧都区): C acknowledges on time; the resolution is due in December.
    t6 = await w.report(w.yd, at(2026, 11, 28, 9), project=w.p_yd)
    await w.move(t6, Move.DISPATCH, at(2026, 11, 28, 10), unit_id=C)
    await w.move(t6, Move.ACKNOWLEDGE, at(2026, 11, 28, 11), "unit")
    # T7 (尧都区): entered 11-29 20:00, never dispatched: dispatch was due 11-30 18:00.
    await w.report(w.yd, at(2026, 11, 29, 20), project=w.p_yd)
    # T8 (市本级): entered 11-30 17:00; dispatch due 12-01 18:00, not yet measured.
    await w.report(w.city, at(2026, 11, 30, 17), project=w.p_city)
    # T9 (市本级): A; 21 days' extension granted on 11-12 moves the deadline to
    # 12-03 18:00, so it is not overdue at the end of November.
    t9 = await w.report(w.city, at(2026, 11, 5, 9), project=w.p_city)
    await w.move(t9, Move.DISPATCH, at(2026, 11, 5, 10), unit_id=A)
    await w.move(t9, Move.ACKNOWLEDGE, at(2026, 11, 5, 11), "unit")
    await w.move(t9, Move.FEEDBACK, at(2026, 11, 6, 9), "unit", note="需省厅批复")
    await w.move(t9, Move.REQUEST_EXTENSION, at(2026, 11, 11, 9), "unit", note="等待省厅批复", days=21)
    await w.move(t9, Move.GRANT_EXTENSION, at(2026, 11, 12, 9))
    # T10 (洪洞县): A answers with a 反馈 straight away (no 签收), on time; closed in 2 days.
    t10 = await w.report(w.hd, at(2026, 11, 12, 9), project=w.p_hd)
    await w.move(t10, Move.DISPATCH, at(2026, 11, 12, 10), unit_id=A)
    await w.move(t10, Move.FEEDBACK, at(2026, 11, 12, 17), "unit", note="已安排")
    await w.move(t10, Move.RESOLVE, at(2026, 11, 13, 10), "unit", note="已办结")
    await w.move(t10, Move.CONFIRM, at(2026, 11, 14, 10), "reporter")
    # After the month: none of this may count for November.
    await w.move(t3, Move.ACKNOWLEDGE, at(2026, 12, 2, 10), "unit")
    await w.move(t6, Move.RESOLVE, at(2026, 12, 10, 10), "unit", note="已办结")
    await w.session.commit()


@pytest.fixture
async def ranked(session):
    w = await World(session).build()
    await november(w)
    return w, await monthly_ranking(session, date(2026, 11, 17), SH)


async def test_unit_figures_match_the_hand_count(ranked):
    w, ranking = ranked
    units = {e.stats.name: e for e in ranking.units}
    assert set(units) == {"市规划和自然资源局", "市公安局", "尧都区人民政府"}

    a = units["市规划和自然资源局"].stats  # T1, T2, T4 (from 11-21), T9, T10
    assert (a.tickets, a.ack_measured, a.ack_on_time, a.unanswered) == (5, 5, 3, 0)
    assert (a.resolve_measured, a.resolve_on_time) == (4, 3)  # T9 still within its extended term
    assert (a.verdicts, a.satisfied_first, a.reopenings, a.overdue) == (3, 2, 1, 1)
    assert a.closed == 3 and a.avg_close_days == 8.0  # (5 + 17 1/24 + 2) / 3 = 8.01
    assert a.ack_rate == pytest.approx(0.6) and a.resolve_rate == pytest.approx(0.75)
    assert a.group == "市重点办"

    b = units["市公安局"].stats  # T3 (no answer, overdue), T4 (acknowledged on time, returned)
    assert (b.tickets, b.ack_measured, b.ack_on_time, b.unanswered) == (2, 2, 1, 1)
    assert (b.resolve_measured, b.resolve_on_time, b.overdue) == (1, 0, 1)
    assert (b.verdicts, b.reopenings, b.closed, b.avg_close_days) == (0, 0, 0, None)

    c = units["尧都区人民政府"].stats  # T6 only: T5 was first dispatched in October
    assert (c.tickets, c.ack_measured, c.ack_on_time) == (1, 1, 1)
    assert (c.resolve_measured, c.resolve_rate, c.overdue) == (0, None, 0)


async def test_unit_order_and_laggards(ranked):
    _, ranking = ranked
    assert [(e.rank, e.stats.name, e.verdict) for e in ranking.units] == [
        (1, "尧都区人民政府", None),
        (2, "市规划和自然资源局", "slow"),
        (3, "市公安局", "inaction"),
    ]
    reasons = {e.stats.name: e.reasons for e in ranking.units}
    assert reasons["市公安局"] == ("1件逾期未签收", "按期办结率为0")
    assert reasons["市规划和自然资源局"] == ("按期签收率60%", "按期办结率75%", "超期1件")


async def test_county_figures_match_the_hand_count(ranked):
    _, ranking = ranked
    offices = {e.stats.name: e.stats for e in ranking.offices}
    assert set(offices) == {"尧都区", "市本级", "洪洞县"}

    yd = offices["尧都区"]  # T1, T2, T6, T7 (T5 was entered in October)
    assert (yd.tickets, yd.dispatch_measured, yd.dispatch_on_time) == (4, 4, 3)
    assert (yd.ack_measured, yd.ack_on_time) == (3, 2)
    assert (yd.resolve_measured, yd.resolve_on_time, yd.overdue) == (2, 1, 1)
    assert (yd.verdicts, yd.satisfied_first, yd.reopenings) == (2, 1, 1)
    assert yd.closed == 2 and yd.avg_close_days == 11.5  # (5 1/24 + 18 1/24) / 2

    city = offices["市本级"]  # T3, T4, T8 (not yet due to dispatch), T9
    assert (city.tickets, city.dispatch_measured, city.dispatch_on_time) == (4, 3, 3)
    assert (city.ack_measured, city.ack_on_time, city.unanswered) == (3, 2, 1)
    assert (city.resolve_measured, city.resolve_on_time, city.overdue) == (2, 1, 1)
    assert (city.verdicts, city.closed) == (0, 0)

    hd = offices["洪洞县"]
    assert (hd.tickets, hd.dispatch_on_time, hd.ack_on_time, hd.resolve_on_time, hd.satisfied_first) == (1, 1, 1, 1, 1)
    assert hd.avg_close_days == 2.0

    # Equal on resolution, acknowledgement and overdue; 市本级 has no 不满意 yet.
    assert [(e.rank, e.stats.name, e.verdict) for e in ranking.offices] == [
        (1, "洪洞县", None), (2, "市本级", "inaction"), (3, "尧都区", "slow")]


async def test_the_ranking_is_the_same_when_computed_again_later(ranked, session):
    w, first = ranked
    # More happens in December; November's figures stay put.
    t = await w.report(w.yd, at(2026, 12, 3, 9))
    await w.move(t, Move.DISPATCH, at(2026, 12, 3, 10), unit_id=w.A.id)
    await session.commit()
    again = await monthly_ranking(session, date(2026, 11, 1), SH)
    assert again == first
    december = await monthly_ranking(session, date(2026, 12, 1), SH)
    assert [e.stats.tickets for e in december.units] == [1]


async def test_office_filter(ranked, session):
    w, _ = ranked
    ranking = await monthly_ranking(session, date(2026, 11, 1), SH, office_ids=[w.hd.id])
    assert [e.stats.name for e in ranking.offices] == ["洪洞县"]
    assert [(e.stats.name, e.stats.tickets) for e in ranking.units] == [("市规划和自然资源局", 1)]


# -- the pure ordering -----------------------------------------------------------------------


def stats(name, **kw) -> Stats:
    return Stats(kind="unit", key=hash(name) % 1000, name=name, **kw)


def test_rank_orders_by_resolution_then_acknowledgement_then_overdue_and_shares_ties():
    entries = rank([
        stats("丙", tickets=4, resolve_measured=4, resolve_on_time=3, ack_measured=4, ack_on_time=4),
        stats("甲", tickets=2, resolve_measured=2, resolve_on_time=2, ack_measured=2, ack_on_time=1),
        stats("乙", tickets=2, resolve_measured=2, resolve_on_time=2, ack_measured=2, ack_on_time=1),
        stats("丁", tickets=1),  # nothing measured yet: counts as 100%
        stats("戊", tickets=3, resolve_measured=4, resolve_on_time=3, ack_measured=4, ack_on_time=4, overdue=1),
        stats("无件", tickets=0),  # left out
    ])
    assert [(e.rank, e.stats.name) for e in entries] == [(1, "丁"), (2, "乙"), (2, "甲"), (4, "丙"), (5, "戊")]


def test_classify():
    rule = LaggardRule(slow_below=0.8)
    assert classify(stats("a", tickets=1, ack_measured=1, ack_on_time=1), rule) == (None, ())
    assert classify(stats("a", tickets=2, ack_measured=2, ack_on_time=0), rule) == ("inaction", ("按期签收率为0",))
    assert classify(stats("a", tickets=5, ack_measured=5, ack_on_time=3), rule) == ("slow", ("按期签收率60%",))
    assert classify(stats("a", tickets=5, ack_measured=5, ack_on_time=5, overdue=2), rule) == ("slow", ("超期2件",))
    # One straggler among many is slow; a fifth of the tickets unanswered is inaction.
    many = dict(tickets=10, ack_measured=10, ack_on_time=9)
    assert classify(stats("a", unanswered=1, **many), rule) == ("slow", ("1件逾期未签收",))
    assert classify(stats("a", unanswered=2, **many), rule) == ("inaction", ("2件逾期未签收",))


# -- outputs -------------------------------------------------------------------------------------


async def test_markdown_names_the_laggards(ranked):
    _, ranking = ranked
    text = render_ranking_markdown(ranking)
    assert text.startswith("## 2026年11月重点项目问题办理月排名（月通报）")
    assert "1. **尧都区人民政府**（尧都区重点办）：交办1件，按期签收100%，按期办结—" in text
    assert "2. **市规划和自然资源局**（市重点办） 〔慢作为〕：交办5件，按期签收60%，按期办结75%，首次满意66.7%" in text
    assert "**不作为**（承办单位）：市公安局（1件逾期未签收，按期办结率为0）" in text
    assert "**慢作为**（县区）：尧都区（按期交办率75%，按期签收率66.7%，按期办结率50%，超期1件）" in text
    assert "截至12月1日0时" in text


async def test_xlsx_reads_back(ranked, tmp_path):
    _, ranking = ranked
    path = write_ranking_xlsx(ranking, tmp_path / "排名.xlsx")
    wb = load_workbook(path)
    assert wb.sheetnames == ["承办单位排名", "县区排名"]
    ws = wb["承办单位排名"]
    assert ws["A1"].value == "2026年11月重点项目问题办理月排名（承办单位排名）"
    header = [c.value for c in ws[2]]
    assert header[:6] == ["排名", "单位", "所属", "交办件次", "按期签收率", "按期办结率"]
    assert ws.freeze_panes == "A3" and ws.auto_filter.ref == "A2:N5"
    row = {h: c.value for h, c in zip(header, ws[4])}
    assert row["单位"] == "市规划和自然资源局" and row["排名"] == 2
    assert row["按期签收率"] == pytest.approx(0.6) and ws["E4"].number_format == "0.0%"
    assert row["平均办结天数"] == 8.0 and row["评价"] == "慢作为"
    assert ws["F3"].value is None  # 尧都区人民政府: no resolution measured yet
    county = wb["县区排名"]
    assert [county.cell(row=r, column=2).value for r in (3, 4, 5)] == ["洪洞县", "市本级", "尧都区"]


def test_the_font_is_a_real_chinese_font():
    path = chinese_font_path()
    assert path.is_file()
    assert missing_glyphs("重点项目问题办理月排名按期签收率办结率首次满意率不作为慢作为〔〕（）%0123456789.", path) == set()
    assert missing_glyphs("\U0001F600", path) == {"\U0001F600"}  # the check can fail


async def test_chart_renders_every_glyph(ranked, tmp_path):
    _, ranking = ranked
    path = chinese_font_path()
    for text in chart_texts(ranking):
        assert missing_glyphs(text, path) == set(), text
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*missing from font.*")
        out = render_ranking_chart(ranking, tmp_path / "排名.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 30_000


async def test_a_missing_glyph_would_be_caught(ranked, tmp_path):
    """The warning filter of the test above does fire for a character the font lacks."""
    _, ranking = ranked
    odd = replace(ranking, units=(replace(ranking.units[0], stats=replace(ranking.units[0].stats, name="\U0001F600")),))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*missing from font.*")
        with pytest.raises(UserWarning, match="missing from font"):
            render_ranking_chart(odd, tmp_path / "odd.png")


async def test_empty_month_renders(session, tmp_path):
    await World(session).build()
    await session.commit()
    ranking = await monthly_ranking(session, date(2026, 2, 1), SH)
    assert ranking.units == () and ranking.offices == ()
    assert "本月未发现不作为、慢作为情形。" in render_ranking_markdown(ranking)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*missing from font.*")
        assert render_ranking_chart(ranking, tmp_path / "empty.png").stat().st_size > 5_000
    write_ranking_xlsx(ranking, tmp_path / "empty.xlsx")
