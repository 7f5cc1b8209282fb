"""The office digest (scheduler/digest.py): a busy day on the real database,
the periods of each cadence, and markdown split under a byte limit."""

from __future__ import annotations

from datetime import date

import pytest

from models.workflow import Move
from scheduler.digest import build_digest, digest_period, render_digest_markdown, split_markdown
from tests.test_ranking import FIVE, POLICY, World, at, session  # noqa: F401  (session is a fixture)

NOW = at(2026, 11, 5, 8, 30)  # the daily digest of Wednesday 2026-11-04 goes out


async def busy_day(w: World) -> dict[str, int]:
    """Fifteen tickets; the 4th of November is busy. Expected answers in the tests."""
    A, B, C = w.A.id, w.B.id, w.C.id
    t = {}
    t["D1"] = d = await w.report(w.yd, at(2026, 11, 4, 9), project=w.p_yd)
    await w.move(d, Move.DISPATCH, at(2026, 11, 4, 10), unit_id=C)
    await w.move(d, Move.ACKNOWLEDGE, at(2026, 11, 4, 11), "unit")
    t["D2"] = await w.report(w.city, at(2026, 11, 4, 10), project=w.p_city)  # dispatch due today 18:00
    t["D3"] = d = await w.report(w.hd, at(2026, 11, 4, 16), tier="obstruction", project=w.p_hd, text="有人堵门阻工")
    await w.move(d, Move.DISPATCH, at(2026, 11, 4, 17, 45), unit_id=A)  # after the cut-off: ack due today 12:00
    t["D4"] = d = await w.report(w.city, at(2026, 11, 1, 9), project=w.p_city)
    await w.move(d, Move.DISPATCH, at(2026, 11, 1, 10), unit_id=B)
    await w.move(d, Move.ACKNOWLEDGE, at(2026, 11, 4, 9), "unit")  # late; no 反馈 by 11-04 18:00 either
    t["D5"] = d = await w.report(w.yd, at(2026, 10, 20, 9), project=w.p_yd)
    await w.move(d, Move.DISPATCH, at(2026, 10, 20, 10), unit_id=A)
    await w.move(d, Move.ACKNOWLEDGE, at(2026, 10, 20, 11), "unit")
    await w.move(d, Move.FEEDBACK, at(2026, 10, 21, 9), "unit", note="协调中")
    await w.move(d, Move.FLAG, at(2026, 11, 4, 14), flag=FIVE)
    t["D6"] = d = await w.report(w.city, at(2026, 8, 1, 9), tier="major", project=w.p_city)
    await w.move(d, Move.DISPATCH, at(2026, 8, 1, 10), unit_id=A)
    await w.move(d, Move.ACKNOWLEDGE, at(2026, 8, 1, 11), "unit")
    await w.move(d, Move.FEEDBACK, at(2026, 8, 2, 9), "unit", note="研究方案")
    d.escalation_level = 2
    await w.clock_event(d, "escalate", at(2026, 11, 4, 8), level=2)
    t["D7"] = d = await w.report(w.yd, at(2026, 10, 25, 9), project=w.p_yd)
    await w.move(d, Move.DISPATCH, at(2026, 10, 25, 10), unit_id=C)
    await w.move(d, Move.ACKNOWLEDGE, at(2026, 10, 25, 11), "unit")
    await w.move(d, Move.FEEDBACK, at(2026, 10, 26, 9), "unit", note="推进中")
    await w.move(d, Move.RESOLVE, at(2026, 11, 4, 10), "unit", note="已办结")
    t["D8"] = d = await w.report(w.yd, at(2026, 10, 24, 9), project=w.p_yd)
    await w.move(d, Move.DISPATCH, at(2026, 10, 24, 10), unit_id=C)
    await w.move(d, Move.ACKNOWLEDGE, at(2026, 10, 24, 11), "unit")
    await w.move(d, Move.RESOLVE, at(2026, 11, 2, 10), "unit", note="已办结")
    await w.move(d, Move.CONFIRM, at(2026, 11, 4, 15), "reporter")
    t["D9"] = d = await w.report(w.city, at(2026, 10, 26, 9), project=w.p_city)
    await w.move(d, Move.DISPATCH, at(2026, 10, 26, 10), unit_id=A)
    await w.move(d, Move.ACKNOWLEDGE, at(2026, 10, 26, 11), "unit")
    await w.move(d, Move.FEEDBACK, at(2026, 10, 27, 9), "unit", note="推进中")
    await w.move(d, Move.RESOLVE, at(2026, 11, 1, 10), "unit", note="已办结")
    await w.move(d, Move.REOPEN, at(2026, 11, 4, 16), "reporter", note="现场仍未解决")
    t["D10"] = d = await w.report(w.yd, at(2026, 11, 3, 9), project=w.p_yd)
    await w.move(d, Move.DISPATCH, at(2026, 11, 3, 10), unit_id=A)
    await w.move(d, Move.RETURN, at(2026, 11, 3, 15), "unit", note="非本单位职责")
    await w.move(d, Move.REASSIGN, at(2026, 11, 4, 9, 30), unit_id=C)  # not acknowledged by 18:00
    t["D11"] = await w.report(w.hd, at(2026, 11, 3, 9), project=w.p_hd)  # dispatch was due 11-04 18:00
    for key, day in (("D12", 29), ("D13", 30), ("D14", 31)):  # resolution due 11-05, 11-06, 11-07
        t[key] = d = await w.report(w.city, at(2026, 10, day, 9), project=w.p_city)
        await w.move(d, Move.DISPATCH, at(2026, 10, day, 10), unit_id=B)
        await w.move(d, Move.ACKNOWLEDGE, at(2026, 10, day, 11), "unit")
        await w.move(d, Move.FEEDBACK, at(2026, 10, day, 15), "unit", note="推进中")
    t["D15"] = await w.report(w.city, at(2026, 11, 5, 7), project=w.p_city)  # after the period; due tomorrow
    await w.session.commit()
    return {key: ticket.id for key, ticket in t.items()}


@pytest.fixture
async def world(session):  # noqa: F811
    w = await World(session).build()
    return w, await busy_day(w)


def numbers(section, ids) -> list[str]:
    by_id = {v: k for k, v in ids.items()}
    return [by_id[line.ticket_id] for line in section.items]


async def test_daily_digest_of_the_city_sees_every_county(world, session):  # noqa: F811
    w, ids = world
    d = await build_digest(session, w.city.id, NOW, POLICY, "daily")
    assert (d.first_day, d.last_day) == (date(2026, 11, 4), date(2026, 11, 4))
    assert d.period_start == at(2026, 11, 4) and d.period_end == at(2026, 11, 5)
    assert d.open_count == 14

    assert numbers(d.new, ids) == ["D1", "D2", "D3"]
    assert numbers(d.dispatched, ids) == ["D10", "D1", "D3"]
    assert [x.note for x in d.dispatched.items] == ["转办", "交办", "交办"]
    assert [x.unit for x in d.dispatched.items] == ["尧都区人民政府", "尧都区人民政府", "市规划和自然资源局"]
    assert numbers(d.acknowledged_late, ids) == ["D4"]
    assert numbers(d.resolved, ids) == ["D7"] and numbers(d.closed, ids) == ["D8"]
    assert numbers(d.reopened, ids) == ["D9"] and d.reopened.items[0].note == "现场仍未解决"
    assert numbers(d.flagged, ids) == ["D5"]
    assert d.flagged.items[0].note == "本期新挂牌，责任领导王副市长，时限2026-11-30"
    assert numbers(d.escalations, ids) == ["D6"] and d.escalations.items[0].level == 2
    assert d.escalation_levels == {2: 1}

    assert d.overdue.total == 5
    assert numbers(d.overdue, ids) == ["D6", "D5", "D4", "D10", "D11"]
    assert [x.note for x in d.overdue.items] == ["办结超期", "办结超期", "首次反馈超期", "签收超期", "交办超期"]
    by_unit = {u.name: u for u in d.overdue_by_unit}
    assert d.overdue_by_unit[0].name == "市规划和自然资源局"
    a = by_unit["市规划和自然资源局"]
    assert (a.tickets, a.resolve, a.ack, a.max_days) == (2, 2, 0, 65)  # D6: due 09-01 18:00
    assert (by_unit["市公安局"].tickets, by_unit["市公安局"].feedback, by_unit["市公安局"].max_days) == (1, 1, 1)
    assert (by_unit["尧都区人民政府"].ack, by_unit["尧都区人民政府"].tickets) == (1, 1)
    office_queue = by_unit["本办（待交办、待确认）"]
    assert (office_queue.unit_id, office_queue.dispatch, office_queue.tickets) == (None, 1, 1)

    assert numbers(d.due_soon, ids) == ["D3", "D2", "D12", "D13", "D15"]
    assert [x.note for x in d.due_soon.items] == ["签收", "交办", "办结", "办结", "交办"]
    assert d.due_soon.items[0].due_at == at(2026, 11, 5, 12)


async def test_a_county_sees_only_its_own(world, session):  # noqa: F811
    w, ids = world
    d = await build_digest(session, w.yd.id, NOW, POLICY, "daily")
    assert d.office_name == "尧都区重点办"
    assert numbers(d.new, ids) == ["D1"]
    assert numbers(d.dispatched, ids) == ["D10", "D1"]
    assert d.acknowledged_late.total == 0 and d.due_soon.total == 0 and d.reopened.total == 0
    assert numbers(d.overdue, ids) == ["D5", "D10"]
    assert numbers(d.resolved, ids) == ["D7"] and numbers(d.closed, ids) == ["D8"]
    assert d.escalations.total == 0 and d.escalation_levels == {}
    assert d.open_count == 4


async def test_weekly_digest_and_item_limit(world, session):  # noqa: F811
    w, ids = world
    d = await build_digest(session, w.city.id, NOW, POLICY, "weekly", item_limit=2)
    assert (d.first_day, d.last_day) == (date(2026, 10, 29), date(2026, 11, 4))
    assert d.new.total == 9 and numbers(d.new, ids) == ["D12", "D13"]
    assert d.dispatched.total == 7  # D10 was dispatched and reassigned: one ticket
    assert d.resolved.total == 3
    text = "\n".join(render_digest_markdown(d))
    assert "### 一、新增问题 9件" in text and "- ……另有7件" in text


def test_periods_of_each_cadence():
    def period(now, cadence):
        return digest_period(now, POLICY, cadence)

    assert period(NOW, "daily") == (date(2026, 11, 4), date(2026, 11, 4))
    assert period(NOW, "weekly") == (date(2026, 10, 29), date(2026, 11, 4))
    assert period(NOW, "monthly") == (date(2026, 10, 5), date(2026, 11, 4))
    assert period(NOW, "ten_day") == (date(2026, 11, 1), date(2026, 11, 4))
    assert period(at(2026, 11, 11, 8, 30), "ten_day") == (date(2026, 11, 1), date(2026, 11, 10))
    assert period(at(2026, 12, 1, 8, 30), "ten_day") == (date(2026, 11, 21), date(2026, 11, 30))
    assert period(at(2026, 11, 1, 8, 30), "monthly") == (date(2026, 10, 1), date(2026, 10, 31))
    # 00:30 Shanghai is still the previous day in UTC: local days decide.
    assert period(at(2026, 11, 5, 0, 30), "daily") == (date(2026, 11, 4), date(2026, 11, 4))
    with pytest.raises(ValueError, match="unknown cadence"):
        period(NOW, "hourly")


async def test_markdown_of_a_busy_day(world, session):  # noqa: F811
    w, _ = world
    chunks = render_digest_markdown(await build_digest(session, w.city.id, NOW, POLICY, "daily"))
    assert len(chunks) == 1
    text = chunks[0]
    assert len(text.encode()) <= 4096
    lines = text.splitlines()
    assert lines[0] == "## 市重点办每日简报（2026年11月4日）"
    assert lines[1] == "> 统计时段：2026年11月4日｜截至11-05 08:30在办14件，其中超期5件"
    for expected in (
        "### 一、新增问题 3件",
        "### 三、签收超期 1件",
        "- **市规划和自然资源局**：2件（办结2），最长超期65天",
        "- **本办（待交办、待确认）**：1件（交办1），最长超期1天",
        "- 今天12:00 HD-2026-0003 洪洞县新能源项目｜市规划和自然资源局：签收到期",
        "- 明天18:00 SF-2026-0015 示范市快速路项目：交办到期",
        "### 八、不满意重新办理 1件",
        "> 目前在办：一级0件，二级1件，三级0件",
    ):
        assert expected in lines, expected
    assert any(line.startswith("- SF-2026-0006 示范市快速路项目｜市规划和自然资源局：满2个月无进展") for line in lines)


async def test_markdown_splits_under_the_byte_limit(world, session):  # noqa: F811
    w, _ = world
    digest = await build_digest(session, w.city.id, NOW, POLICY, "daily")
    whole = render_digest_markdown(digest)[0].splitlines()
    chunks = render_digest_markdown(digest, max_bytes=700)
    assert len(chunks) > 2
    n = len(chunks)
    body_lines = []
    for i, chunk in enumerate(chunks, start=1):
        assert len(chunk.encode("utf-8")) <= 700
        first, *rest = chunk.splitlines()
        assert first == f"{whole[0]} ({i}/{n})"
        assert rest and not rest[-1].startswith("###")  # no heading left alone at the end
        if i > 1 and not rest[0].startswith("### "):
            pytest.fail(f"chunk {i} does not start with a section heading: {rest[0]}")
        body_lines += [line for line in rest if not line.endswith("（续）")]
    # Nothing lost, nothing reordered: the repeated headings aside, the chunks
    # are the unsplit text.
    assert body_lines == whole[1:]
    assert any(chunk.splitlines()[1].endswith("（续）") for chunk in chunks)


def test_split_clips_a_line_longer_than_a_chunk():
    chunks = split_markdown("## 标题", [("### 一、长", ["办" * 400]), ("### 二、短", ["- 一行"])], max_bytes=300)
    assert all(len(c.encode()) <= 300 for c in chunks)
    assert chunks[0].endswith("…")
    assert chunks[-1].splitlines()[-2:] == ["### 二、短", "- 一行"]
    assert split_markdown("## 标题", [("", ["短"])], max_bytes=300) == ["## 标题\n短"]
    with pytest.raises(ValueError, match="too small"):
        split_markdown("## 标题" * 20, [], max_bytes=100)
