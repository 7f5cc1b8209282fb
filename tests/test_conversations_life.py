"""Transcripts over the simulator: a ticket's life from report to 销号, a returned
and reassigned ticket, a flagged one, extensions granted and refused, a written plan.

Who says what, and what each person receives. The demo organisation: the 物流园
project belongs to 尧都区 (YD); its land problems go to 尧都区自然资源局.
"""

from __future__ import annotations

from sqlalchemy import func, select

from models.tables import Ticket, TicketEvent, TriageCorrection

LIAISON = "p_wuliu_liaison"
ZR = "yd_zr_contact"  # 尧都区自然资源局13710联系人
ZR_LEADER = "yd_zr_leader"
OFFICE = "yd_office_duty"
OFFICE_HEAD = "yd_office_head"
LAND = "项目东侧用地规划许可证迟迟未办理，影响开工"


def one(items: list[dict]) -> dict:
    assert len(items) == 1, [i["reply"]["text"] for i in items]
    return items[0]["reply"]


def buttons(reply: dict) -> list[tuple[str, str]]:
    return [(b["key"], b["label"]) for b in reply["buttons"]]


async def ticket(bot, number: str) -> Ticket:
    async with bot.runtime.sessionmaker() as session:
        return await session.scalar(select(Ticket).where(Ticket.number == number))


async def event_kinds(bot, number: str) -> list[str]:
    async with bot.runtime.sessionmaker() as session:
        t = await session.scalar(select(Ticket).where(Ticket.number == number))
        rows = await session.scalars(select(TicketEvent.kind).where(TicketEvent.ticket_id == t.id)
                                     .order_by(TicketEvent.id))
        return list(rows)


async def report(bot, text: str = LAND, who: str = LIAISON) -> dict:
    return one(await bot.say(who, text))


async def test_whole_life_report_ack_feedback_resolve_reject_resolve_accept(bot):
    # The liaison reports; triage is sure, so the ticket goes straight to the unit.
    answer = await report(bot)
    assert answer["title"] == "问题已受理：YD-2026-0001"
    text = answer["text"]
    assert "示范现代物流园项目" in text and "用地规划许可证" in text
    assert "类别：规划和自然资源（依据：用地规划许可证）" in text
    assert "已交办：尧都区自然资源局" in text and "尧都区自然资源局13710联系人" in text
    assert "一般问题（7日内办结）" in text
    assert "签收 2026年11月23日 18:00" in text and "办结 2026年11月30日 18:00" in text
    assert "首次反馈 2026年11月26日 18:00" in text

    card = one(await bot.new(ZR))
    assert card["title"] == "新交办问题：YD-2026-0001"
    assert buttons(card) == [("签收 YD-2026-0001", "签收"), ("退回 YD-2026-0001", "退回")]
    assert "项目：示范现代物流园项目（省级重点项目，尧都区重点办）" in card["text"]
    assert "签收期限：2026年11月23日 18:00" in card["text"]
    assert await bot.new(OFFICE) == []  # nothing for the office to do

    # The unit clicks 签收 on the card; the liaison hears of it.
    bot.clock.advance(hours=1)
    reply = one(await bot.click(ZR, "签收 YD-2026-0001"))
    assert reply["text"].startswith("已签收 YD-2026-0001。请在 2026年11月26日 18:00 前反馈进展")
    assert await bot.texts(LIAISON) == ["问题 YD-2026-0001 已由尧都区自然资源局签收，正在办理。"]

    # 反馈 without the number: the unit has exactly one ticket in a fitting state.
    reply = one(await bot.say(ZR, "反馈 已现场踏勘，正在准备审批材料"))
    assert "已反馈 YD-2026-0001 的进展" in reply["text"] and "首次反馈" in reply["text"]
    note = one(await bot.new(LIAISON))
    assert note["title"] == "办理进展：YD-2026-0001"
    assert note["text"] == "尧都区自然资源局反馈：已现场踏勘，正在准备审批材料"

    # 办结: the liaison gets a card 满意 / 不满意.
    bot.clock.advance(days=2)
    reply = one(await bot.say(ZR, "办结 YD-2026-0001 规划许可证已核发"))
    assert "已办结 YD-2026-0001" in reply["text"]
    card = one(await bot.new(LIAISON))
    assert card["title"] == "请确认办结：YD-2026-0001"
    assert buttons(card) == [("满意 YD-2026-0001", "满意"), ("不满意 YD-2026-0001", "不满意")]
    assert "办结情况：规划许可证已核发" in card["text"]

    # 不满意 from the card asks for the reason; the next message is the reason.
    ask = one(await bot.click(LIAISON, "不满意 YD-2026-0001"))
    assert "请回复不满意的理由" in ask["text"]
    assert (await ticket(bot, "YD-2026-0001")).status == "resolved"  # nothing changed yet
    reply = one(await bot.say(LIAISON, "证件还没有送到项目单位"))
    assert reply["text"].startswith("已将问题 YD-2026-0001 退回尧都区自然资源局重新办理")
    back = one(await bot.new(ZR))
    assert back["title"] == "重新办理：YD-2026-0001"
    assert "联络员对办理结果不满意" in back["text"] and "理由：证件还没有送到项目单位" in back["text"]

    # The unit finishes again; this time the liaison is satisfied: 销号.
    bot.clock.advance(days=1)
    one(await bot.say(ZR, "办结 证件已送达项目单位"))
    one(await bot.new(LIAISON))
    reply = one(await bot.click(LIAISON, "满意 YD-2026-0001"))
    assert reply["text"] == "问题 YD-2026-0001 已销号。感谢您的确认！"
    assert await bot.texts(ZR) == ["问题 YD-2026-0001 联络员确认满意，已销号。"]
    assert await bot.new(OFFICE) == [] and await bot.new(OFFICE_HEAD) == []

    t = await ticket(bot, "YD-2026-0001")
    assert t.status == "closed" and not t.is_open and t.reopen_count == 1 and t.satisfied_first_time is False
    assert await event_kinds(bot, "YD-2026-0001") == [
        "create", "dispatch", "acknowledge", "feedback", "resolve", "reopen", "resolve", "confirm"]

    # The timeline, as the liaison sees it.
    detail = one(await bot.say(LIAISON, "查询 yd-2026-1"))
    assert detail["title"] == "YD-2026-0001（已销号）"
    for line in ("系统交办给尧都区自然资源局", "尧都区自然资源局13710联系人签收", "反馈进展：已现场踏勘",
                 "示范物流园项目联络员不满意，重新办理：证件还没有送到项目单位", "确认满意，销号"):
        assert line in detail["text"]
    assert one(await bot.say(LIAISON, "我的问题"))["text"].startswith("您目前没有未销号的问题")


async def test_returned_ticket_is_reassigned_by_the_office(bot):
    await report(bot, "项目用地预审一直没有批复，施工图审查也卡住了")
    assert one(await bot.new(ZR))["title"] == "新交办问题：YD-2026-0001"
    await bot.new(LIAISON)

    # 退回 from the card, without a reason: asked for one; the reason completes it.
    ask = one(await bot.click(ZR, "退回 YD-2026-0001"))
    assert "请回复退回理由" in ask["text"]
    assert (await ticket(bot, "YD-2026-0001")).status == "dispatched"
    reply = one(await bot.say(ZR, "施工图审查不属于本单位职责"))
    assert reply["text"] == "已退回 YD-2026-0001，重点办将重新交办。"
    for office_person in (OFFICE, OFFICE_HEAD):
        card = one(await bot.new(office_person))
        assert card["title"] == "单位退回：YD-2026-0001"
        assert "尧都区自然资源局退回了问题 YD-2026-0001，理由：施工图审查不属于本单位职责" in card["text"]
        assert "请在 2026年11月24日 18:00 前重新交办" in card["text"]
        assert ("交办 YD-2026-0001 yd_zr", "尧都区自然资源局") not in buttons(card)
    assert (await ticket(bot, "YD-2026-0001")).status == "returned"
    assert await bot.new(LIAISON) == []

    # The office reassigns it, with a reason; the type differs from triage's: a correction.
    reply = one(await bot.say(OFFICE, "转办 YD-2026-0001 尧都区住房和城乡建设局 施工图审查属住建部门"))
    assert reply["text"].startswith(
        "已将 YD-2026-0001 转办给尧都区住房和城乡建设局（联系人：尧都区住房和城乡建设局13710联系人）")
    card = one(await bot.new("yd_zj_contact"))
    assert card["title"] == "新交办问题：YD-2026-0001"
    assert card["text"].startswith("（由尧都区重点办转办，原因：施工图审查属住建部门）")
    assert buttons(card)[0] == ("签收 YD-2026-0001", "签收")
    note = one(await bot.new(LIAISON))
    assert note["title"] == "问题已转办：YD-2026-0001" and "已交尧都区住房和城乡建设局办理" in note["text"]
    assert await bot.new(ZR) == []  # it returned the ticket itself: nothing more to tell

    t = await ticket(bot, "YD-2026-0001")
    assert t.status == "dispatched" and t.triage["unit_type"] == "natural_resources"
    async with bot.runtime.sessionmaker() as session:
        corrections = (await session.scalars(select(TriageCorrection))).all()
    assert [(c.proposed_type, c.correct_type) for c in corrections] == [("natural_resources", "housing")]

    # A second 转办 while the new unit has it: the old unit hears it is off its desk.
    one(await bot.click("yd_zj_contact", "签收 YD-2026-0001"))
    reply = one(await bot.say(OFFICE, "转办 YD-2026-0001 市住房和城乡建设局 涉及市级审查权限"))
    assert "转办给市住房和城乡建设局" in reply["text"]
    assert "贵单位无需继续办理" in one(await bot.new("yd_zj_contact"))["text"]
    assert one(await bot.new("city_zj_contact"))["title"] == "新交办问题：YD-2026-0001"
    assert await event_kinds(bot, "YD-2026-0001") == [
        "create", "dispatch", "return", "reassign", "acknowledge", "reassign"]


async def test_needs_office_ticket_dispatched_by_button(bot):
    answer = await report(bot, "资金拨付和用地指标都有问题")
    assert "需由尧都区重点办确定承办单位，将在 2026年11月24日 18:00 前交办" in answer["text"]
    card = one(await bot.new(OFFICE))
    assert card["title"] == "待交办：YD-2026-0001"
    assert "可能涉及多个单位" in card["text"]
    keys = [k for k, _ in buttons(card)]
    assert "交办 YD-2026-0001 city_cz" in keys and "交办 YD-2026-0001 yd_zr" in keys
    assert one(await bot.new(OFFICE_HEAD))["title"] == "待交办：YD-2026-0001"

    reply = one(await bot.click(OFFICE, "交办 YD-2026-0001 yd_zr"))
    assert reply["text"].startswith("已将 YD-2026-0001 交办给尧都区自然资源局")
    assert one(await bot.new(ZR))["title"] == "新交办问题：YD-2026-0001"
    note = one(await bot.new(LIAISON))
    assert note["title"] == "问题已交办：YD-2026-0001" and "办结期限：2026年11月30日 18:00" in note["text"]
    # Clicking again (the other officer, the same card): a clear refusal, nothing changes.
    again = one(await bot.click(OFFICE_HEAD, "交办 YD-2026-0001 city_cz"))
    assert "当前“已交办，待签收”，不能交办" in again["text"] and "转办" in again["text"]
    assert (await ticket(bot, "YD-2026-0001")).unit_id is not None
    assert await bot.new("city_cz_contact") == []


async def test_flagged_ticket_is_marked_everywhere(bot):
    await report(bot)
    await bot.new(ZR)
    one(await bot.say(ZR, "签收"))
    await bot.new(LIAISON)
    reply = one(await bot.say(OFFICE, "挂牌 YD-2026-0001 专班协调用地报批 区政府副区长 自然资源局局长 2026-12-20"))
    assert reply["text"].startswith("已对 YD-2026-0001 挂牌督办")
    assert "责任单位 尧都区自然资源局" in reply["text"] and "期限 2026年12月20日" in reply["text"]
    for person in (ZR, ZR_LEADER):
        card = one(await bot.new(person))
        assert card["title"] == "【挂牌督办】YD-2026-0001"
        assert "办法 专班协调用地报批" in card["text"]
    t = await ticket(bot, "YD-2026-0001")
    assert t.flagged and t.flag["leader"] == "区政府副区长" and t.flag["due"] == "2026-12-20"

    # Shown with the mark in lists, details and cards.
    assert "【挂牌督办】YD-2026-0001" in one(await bot.say(LIAISON, "我的问题"))["text"]
    assert one(await bot.say(ZR, "查询 YD-2026-0001"))["title"].startswith("【挂牌督办】YD-2026-0001")
    assert "【挂牌督办】YD-2026-0001" in one(await bot.say(ZR, "待办"))["text"]
    one(await bot.say(OFFICE, "催办 YD-2026-0001 请本周内拿出办理意见"))
    urge = one(await bot.new(ZR))
    assert urge["title"] == "【挂牌督办】催办：YD-2026-0001" and "请本周内拿出办理意见" in urge["text"]
    one(await bot.say(ZR, "办结 已核发"))
    assert one(await bot.new(LIAISON))["title"] == "【挂牌督办】请确认办结：YD-2026-0001"

    # 摘牌: the mark goes.
    one(await bot.say(OFFICE, "摘牌 YD-2026-0001"))
    assert await bot.texts(ZR) == ["问题 YD-2026-0001 已由尧都区重点办摘牌。"]
    assert "【挂牌督办】" not in one(await bot.say(LIAISON, "我的问题"))["text"]


async def test_extension_granted_and_one_refused(bot):
    await report(bot)
    await bot.new(ZR)
    one(await bot.say(ZR, "签收"))

    reply = one(await bot.say(ZR, "延期 YD-2026-0001 5 需等待专家评审"))
    assert reply["text"].startswith("已向重点办申请 YD-2026-0001 延期 5 天")
    card = one(await bot.new(OFFICE))
    assert one(await bot.new(OFFICE_HEAD)) == card
    assert card["title"] == "延期申请：YD-2026-0001"
    assert buttons(card) == [("批准延期 YD-2026-0001", "批准延期"), ("驳回延期 YD-2026-0001", "驳回延期")]
    assert "现办结期限：2026年11月30日 18:00；批准后延至：2026年12月5日 18:00" in card["text"]
    # A second request while one waits: refused.
    again = one(await bot.say(ZR, "延期 3 还要补材料"))
    assert again["text"] == "问题 YD-2026-0001 已有一项延期申请等待重点办审批，请等待审批结果。"

    reply = one(await bot.click(OFFICE, "批准延期 YD-2026-0001"))
    assert reply["text"] == "已批准 YD-2026-0001 延期 5 天，办结期限延至 2026年12月5日 18:00。"
    granted = one(await bot.new(ZR))
    assert granted["title"] == "延期已批准：YD-2026-0001" and "2026年12月5日 18:00" in granted["text"]

    # Another request, refused by the office head through the card (reason asked, then given).
    one(await bot.say(ZR, "申请延期 YD-2026-0001 10 审批系统升级"))
    one(await bot.new(OFFICE_HEAD))
    ask = one(await bot.click(OFFICE_HEAD, "驳回延期 YD-2026-0001"))
    assert "请回复驳回延期的理由" in ask["text"]
    reply = one(await bot.say(OFFICE_HEAD, "系统升级不影响线下办理"))
    assert reply["text"] == "已驳回 YD-2026-0001 的延期申请，办结期限仍为 2026年12月5日 18:00。"
    refused = one(await bot.new(ZR))
    assert refused["title"] == "延期未获批准：YD-2026-0001" and "理由：系统升级不影响线下办理" in refused["text"]
    # Nothing waits any more.
    assert one(await bot.new(OFFICE))["title"] == "延期申请：YD-2026-0001"  # the second request's card
    none_left = one(await bot.say(OFFICE, "批准延期 YD-2026-0001"))
    assert none_left["text"] == "问题 YD-2026-0001 没有待审批的延期申请。"
    t = await ticket(bot, "YD-2026-0001")
    assert [e["granted"] for e in t.extensions] == [True, False] and t.pending_extension is None


async def test_major_problem_gets_a_written_plan(bot):
    await report(bot, "环评审批卡住了，项目属于重大复杂问题，涉及多个部门")
    answer_unit = "yd_sp_contact"
    card = one(await bot.new(answer_unit))
    assert "重大复杂问题" in card["text"] and "办结期限：2026年12月23日 18:00" in card["text"]
    one(await bot.say(answer_unit, "签收"))
    await bot.new(LIAISON)
    reply = one(await bot.say(answer_unit, "方案 分三步完成环评报批 2027年1月15日"))
    assert reply["text"] == "已报送 YD-2026-0001 的书面方案，办结时间节点调整为 2027年1月15日 18:00。"
    note = one(await bot.new(LIAISON))
    assert "书面解决方案：分三步完成环评报批" in note["text"] and "2027年1月15日 18:00" in note["text"]
    assert one(await bot.new(OFFICE))["title"] == "办理进展：YD-2026-0001"
    t = await ticket(bot, "YD-2026-0001")
    assert t.plan["text"] == "分三步完成环评报批" and t.status == "in_progress"


async def test_unit_todo_is_most_urgent_first(bot):
    await report(bot, "项目东侧用地规划许可证迟迟未办理，影响开工")
    bot.clock.advance(hours=2)
    await report(bot, "有村民堵门阻工，施工无法进行")  # obstruction: 3 days, goes to 公安
    await report(bot, "项目用地预审一直没有批复")
    assert len(await bot.new(ZR)) == 2
    one(await bot.say(ZR, "签收 YD-2026-0001"))
    todo = one(await bot.say(ZR, "待办"))
    assert todo["title"] == "本单位待办（2 件）"
    assert todo["text"].index("YD-2026-0003") < todo["text"].index("YD-2026-0001")  # 0003 still needs 签收 today
    assert "阻工扰工类（3日内排除）" in one(await bot.new("yd_ga_contact"))["text"]
    police = one(await bot.say("yd_ga_contact", "待办"))
    assert "YD-2026-0002" in police["text"]
    async with bot.runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Ticket)) == 3
