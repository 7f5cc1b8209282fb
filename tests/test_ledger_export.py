"""The ledger (台账) rows and workbook (scheduler/ledger_export.py), on the real
database, read back with openpyxl."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from openpyxl import load_workbook

from models.workflow import Move
from scheduler.ledger_export import LEDGER_HEADERS, ledger_rows, parse_statuses, write_ledger_xlsx
from tests.test_ranking import FIVE, SH, World, at, session  # noqa: F401  (session is a fixture)

NOW = at(2026, 11, 20, 10)


async def ledger_world(w: World) -> dict[str, int]:
    # L4 (市本级): entered on 10-31 23:30 local, returned as not theirs.
    l4 = await w.report(w.city, at(2026, 10, 31, 23, 30), project=w.p_city, text="施工现场周边有人堵门阻工")
    await w.move(l4, Move.DISPATCH, at(2026, 11, 1, 9), unit_id=w.B.id)
    await w.move(l4, Move.RETURN, at(2026, 11, 1, 10), "unit", note="非本单位职责")
    # L2 (市本级): resolved two days late, closed.
    l2 = await w.report(w.city, at(2026, 11, 1, 9), project=w.p_city, unit_type="natural_resources",
                        text="快速路项目用地预审未完成")
    await w.move(l2, Move.DISPATCH, at(2026, 11, 1, 10), unit_id=w.A.id)
    await w.move(l2, Move.ACKNOWLEDGE, at(2026, 11, 1, 11), "unit")
    await w.move(l2, Move.FEEDBACK, at(2026, 11, 3, 9), "unit", note="正在预审")
    await w.move(l2, Move.RESOLVE, at(2026, 11, 10, 10), "unit", note="已完成用地预审")
    await w.move(l2, Move.CONFIRM, at(2026, 11, 11, 9), "reporter")
    # L1 (尧都区): flagged, extended 5 days, one step up the 一二三 ladder, overdue.
    long_text = "产业园项目用地指标不足，土地组卷报批进展缓慢，" * 4
    l1 = await w.report(w.yd, at(2026, 11, 2, 9), project=w.p_yd, unit_type="natural_resources", text=long_text)
    l1.secondary_unit_types = ["ecology"]
    await w.move(l1, Move.DISPATCH, at(2026, 11, 2, 10), unit_id=w.C.id)
    await w.move(l1, Move.ACKNOWLEDGE, at(2026, 11, 2, 11), "unit")
    await w.move(l1, Move.FEEDBACK, at(2026, 11, 3, 9), "unit", note="已协调土地部门")
    await w.move(l1, Move.FEEDBACK, at(2026, 11, 5, 9), "unit", note="正在办理用地手续")
    await w.move(l1, Move.FLAG, at(2026, 11, 6, 9), flag=FIVE)
    await w.move(l1, Move.REQUEST_EXTENSION, at(2026, 11, 8, 9), "unit", note="等待用地批复", days=5)
    await w.move(l1, Move.GRANT_EXTENSION, at(2026, 11, 9, 9))
    l1.escalation_level = 1
    await w.clock_event(l1, "escalate", at(2026, 11, 19, 9), level=1)
    # L3 (洪洞县): no project, not dispatched; dispatch was due 11-19 18:00.
    l3 = await w.report(w.hd, at(2026, 11, 18, 9), text="电力接入迟迟不能完成")
    await w.session.commit()
    return {"L1": l1.id, "L2": l2.id, "L3": l3.id, "L4": l4.id}


@pytest.fixture
async def world(session):  # noqa: F811
    w = await World(session).build()
    ids = await ledger_world(w)
    return w, ids


async def test_rows_carry_what_the_ledger_shows(world, session):  # noqa: F811
    w, ids = world
    rows = await ledger_rows(session, now=NOW)
    assert [r.ticket_id for r in rows] == [ids["L4"], ids["L2"], ids["L1"], ids["L3"]]  # by entry time
    by_id = {r.ticket_id: r for r in rows}

    l1 = by_id[ids["L1"]]
    assert (l1.project, l1.county, l1.unit) == ("尧都区示范产业园项目", "尧都区", "尧都区人民政府")
    assert l1.category == "规划和自然资源、生态环境"
    assert l1.tier == "一般问题(7日)"
    assert l1.contact == "尧都区人民政府13710联系人"
    assert l1.progress == "办理中：正在办理用地手续（11-05）"
    assert l1.resolve_due_at == at(2026, 11, 14, 18)  # 11-09 18:00 + 5 days
    assert l1.overdue_days == 6 and l1.flagged and not l1.closed
    assert l1.remarks == ("挂牌督办（责任领导：王副市长，责任人：李科长，时限：2026-11-30）；"
                          "一二三督办：满1个月无进展，属地专题报告；已延期1次共5天（至2026-11-14）")

    l2 = by_id[ids["L2"]]
    assert (l2.county, l2.unit, l2.contact) == ("市本级", "市规划和自然资源局", "市规划和自然资源局13710联系人（0357-2000001）")
    assert l2.progress == "已销号：已完成用地预审（11-10）"
    assert l2.closed and l2.overdue_days == 2  # due 11-08 18:00, resolved 11-10
    assert l2.resolved_at == at(2026, 11, 10, 10) and l2.acknowledged_at == at(2026, 11, 1, 11)

    l3 = by_id[ids["L3"]]
    assert (l3.project, l3.county, l3.unit, l3.category, l3.progress) == (
        "（未关联项目）", "洪洞县", "（待交办）", "待分类", "待交办")
    assert l3.dispatched_at is None and l3.resolve_due_at is None
    assert l3.overdue_days == 0 and l3.remarks == "交办超期1天"

    l4 = by_id[ids["L4"]]
    assert l4.progress == "已退回：非本单位职责（11-01）"
    assert l4.remarks == "交办超期18天"  # due again 11-02 18:00 after the return


async def test_filters(world, session):  # noqa: F811
    w, ids = world
    only = [r.ticket_id for r in await ledger_rows(session, office_ids=[w.yd.id], now=NOW)]
    assert only == [ids["L1"]]
    assert [r.ticket_id for r in await ledger_rows(session, status="办理中", now=NOW)] == [ids["L1"]]
    assert [r.ticket_id for r in await ledger_rows(session, status="closed", now=NOW)] == [ids["L2"]]
    assert {r.ticket_id for r in await ledger_rows(session, status="open", now=NOW)} == {ids["L1"], ids["L3"], ids["L4"]}
    # Local dates, inclusive: 10-31 23:30 Shanghai is 15:30 UTC.
    assert [r.ticket_id for r in await ledger_rows(session, date_to=date(2026, 10, 31), now=NOW)] == [ids["L4"]]
    got = await ledger_rows(session, date_from=date(2026, 11, 1), date_to=date(2026, 11, 2), now=NOW)
    assert [r.ticket_id for r in got] == [ids["L2"], ids["L1"]]
    with pytest.raises(ValueError, match="unknown status"):
        await ledger_rows(session, status="pending", now=NOW)


def test_parse_statuses():
    assert parse_statuses(None) is None
    assert parse_statuses(["已销号", "returned"]) == {"closed", "returned"}
    assert "closed" not in parse_statuses("open")


async def test_workbook_reads_back(world, session, tmp_path):  # noqa: F811
    w, ids = world
    rows = await ledger_rows(session, now=NOW)
    path = write_ledger_xlsx(rows, tmp_path / "台账.xlsx", SH)
    wb = load_workbook(path)
    ws = wb.active
    assert ws.title == "重点项目问题台账" and ws["A1"].value == "重点项目问题台账"
    assert tuple(c.value for c in ws[2]) == LEDGER_HEADERS == (
        "序号", "编号", "项目名称", "所属县区", "问题描述", "问题类别", "处理时限类型", "责任单位", "13710联系人",
        "交办时间", "签收时间", "办理时限", "办理进展", "办结时间", "是否销号", "是否挂牌", "超期天数", "备注")
    assert ws.freeze_panes == "A3"
    assert ws.auto_filter.ref == "A2:R6"
    assert ws.max_row == 6

    col = {h: i for i, h in enumerate(LEDGER_HEADERS, start=1)}
    l2 = {h: ws.cell(row=4, column=i) for h, i in col.items()}  # second line: L2
    assert l2["序号"].value == 2 and l2["编号"].value.startswith("SF-2026-")
    assert isinstance(l2["交办时间"].value, datetime)
    assert l2["交办时间"].value == datetime(2026, 11, 1, 10, 0)  # local wall-clock time, naive
    assert l2["办结时间"].value == datetime(2026, 11, 10, 10, 0)
    assert l2["办理时限"].value == datetime(2026, 11, 8, 18, 0)
    assert l2["交办时间"].number_format == "yyyy-mm-dd hh:mm"
    assert (l2["是否销号"].value, l2["是否挂牌"].value, l2["超期天数"].value) == ("是", "否", 2)

    l1 = {h: ws.cell(row=5, column=i) for h, i in col.items()}
    assert l1["问题描述"].alignment.wrap_text
    assert l1["是否挂牌"].value == "是" and l1["超期天数"].value == 6
    assert l1["办理进展"].value == "办理中：正在办理用地手续（11-05）"
    l3 = {h: ws.cell(row=6, column=i) for h, i in col.items()}
    assert l3["交办时间"].value is None and l3["签收时间"].value is None
    assert ws.column_dimensions["E"].width == 48  # 问题描述
    assert ws.column_dimensions["A"].width < ws.column_dimensions["B"].width


async def test_empty_ledger_is_still_a_valid_workbook(session, tmp_path):  # noqa: F811
    await World(session).build()
    rows = await ledger_rows(session, now=NOW)
    assert rows == []
    ws = load_workbook(write_ledger_xlsx(rows, tmp_path / "empty.xlsx", SH)).active
    assert ws.max_row == 2 and ws.auto_filter.ref == "A2:R2"


def test_naive_times_are_refused():
    with pytest.raises(ValueError):
        write_ledger_xlsx([_row_with(dispatched_at=datetime(2026, 11, 1, 10))], "/nonexistent/x.xlsx", SH)


def _row_with(**kw):
    from scheduler.ledger_export import LedgerRow

    values = dict(ticket_id=1, number="SF-2026-0001", project="p", county="c", text="t", category="k", tier="g",
                  unit="u", contact="", dispatched_at=None, acknowledged_at=None, resolve_due_at=None,
                  progress="", resolved_at=None, closed=False, flagged=False, overdue_days=0, remarks="",
                  status="reported", office_id=1, created_at=at(2026, 11, 1, 9))
    values.update(kw)
    return LedgerRow(**values)
