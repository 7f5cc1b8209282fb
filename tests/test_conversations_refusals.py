"""Every refusal: a clear Chinese answer saying why and what to do instead, and
nothing changes (the ticket, its events, and nobody else hears anything). Then
the role × command matrix: every role tries every command."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, select

from models.tables import Notice, Person, Ticket, TicketEvent

LIAISON = "p_wuliu_liaison"
OTHER_LIAISON = "p_tegang_liaison"
ZR = "yd_zr_contact"
ZR_LEADER = "yd_zr_leader"
OTHER_UNIT = "city_zr_contact"
OFFICE = "yd_office_duty"
OTHER_OFFICE = "hd_office_duty"
PROJECT_LEADER = "p_wuliu_leader"
LAND = "项目东侧用地规划许可证迟迟未办理，影响开工"
MAJOR = "用地报批属于重大复杂问题，涉及多个部门"
VAGUE = "希望领导多关心我们项目"


def one(items: list[dict]) -> dict:
    assert len(items) == 1, [i["reply"]["text"] for i in items]
    return items[0]["reply"]


async def snapshot(bot, number: str | None, sender: str) -> tuple:
    """Everything a refused command must leave alone."""
    async with bot.runtime.sessionmaker() as session:
        sender_id = await session.scalar(select(Person.id).where(Person.key == sender))
        others = await session.scalar(select(func.count()).select_from(Notice).where(
            or_(Notice.person_id.is_(None), Notice.person_id != sender_id)))
        tickets = await session.scalar(select(func.count()).select_from(Ticket))
        events = await session.scalar(select(func.count()).select_from(TicketEvent))
        state = None
        if number:
            t = await session.scalar(select(Ticket).where(Ticket.number == number))
            state = (t.status, t.unit_id, t.flagged, t.flag, t.pending_extension, t.extensions, t.resolve_due_at,
                     t.acknowledged_at, t.plan, t.reopen_count)
        return others, tickets, events, state


async def refused(bot, who: str, text: str, number: str | None = None, *, click: bool = False) -> str:
    """Say `text` as `who`; assert one answer and no change at all; return the answer."""
    await bot.new(who)
    before = await snapshot(bot, number, who)
    items = await (bot.click(who, text) if click else bot.say(who, text))
    answer = one(items)["text"]
    assert await snapshot(bot, number, who) == before, (who, text, answer)
    return answer


# -- preparing tickets in each state, by chat ------------------------------------------


class Tickets:
    def __init__(self, bot):
        self.bot = bot
        self.count = 0

    async def _report(self, text: str) -> str:
        self.count += 1
        await self.bot.say(LIAISON, text)
        return f"YD-2026-{self.count:04d}"

    async def reported(self) -> str:
        return await self._report(VAGUE)

    async def dispatched(self) -> str:
        return await self._report(LAND)

    async def acknowledged(self, text: str = LAND) -> str:
        number = await self._report(text)
        await self.bot.say(ZR, f"签收 {number}")
        return number

    async def major(self) -> str:
        return await self.acknowledged(MAJOR)

    async def resolved(self) -> str:
        number = await self.acknowledged()
        await self.bot.say(ZR, f"办结 {number} 已核发")
        return number

    async def extension(self) -> str:
        number = await self.acknowledged()
        await self.bot.say(ZR, f"延期 {number} 5 等专家评审")
        return number

    async def flagged(self) -> str:
        number = await self.acknowledged()
        await self.bot.say(OFFICE, f"挂牌 {number} 专班协调 副区长 局长 2026-12-20")
        return number

    async def closed(self) -> str:
        number = await self.resolved()
        await self.bot.say(LIAISON, f"满意 {number}")
        return number


# -- refusals ------------------------------------------------------------------------------


async def test_refusals_by_role(bot):
    t = Tickets(bot)
    n = await t.dispatched()
    answer = await refused(bot, LIAISON, f"签收 {n}", n)
    assert answer == ("“签收”由承办单位（13710联系人或分管领导）使用，您（项目单位联络员）不能使用。"
                      "如需反映问题，请直接发送文字描述。")
    answer = await refused(bot, ZR, f"交办 {n} 尧都区自然资源局", n)
    assert answer == "“交办”由重点办使用，您（承办单位13710联系人）不能使用。发送 帮助 查看您可用的指令。"
    assert "“我的问题”由项目单位联络员使用" in await refused(bot, OFFICE, "我的问题")
    assert "“满意”由项目单位联络员或重点办使用" in await refused(bot, ZR, f"满意 {n}", n)
    assert "“台账”由重点办使用" in await refused(bot, PROJECT_LEADER, "台账")


async def test_refusals_for_foreign_and_wrong_numbers(bot):
    t = Tickets(bot)
    n = await t.dispatched()
    assert await refused(bot, OTHER_UNIT, f"签收 {n}", n) == "问题 YD-2026-0001 不由您经办，不能签收。签收需由承办单位办理。"
    assert await refused(bot, OTHER_OFFICE, f"催办 {n}", n) == "问题 YD-2026-0001 不由您经办，不能催办。催办需由重点办办理。"
    assert await refused(bot, OTHER_LIAISON, f"补充 {n} 我也看到了", n) == (
        "问题 YD-2026-0001 不由您经办，不能补充情况。补充情况需由重点办或提交该问题的联络员办理。")
    assert await refused(bot, ZR, "签收 YD-2026-0099") == (
        "没有找到编号为 YD-2026-0099 的问题，请核对编号（格式如 YD-2026-0001）。")
    assert await refused(bot, OTHER_UNIT, f"查询 {n}", n) == "问题 YD-2026-0001 不在您的查看范围内。"
    assert await refused(bot, OFFICE, "交办 尧都区自然资源局") == "请写明问题编号，例如：交办 YD-2026-0001 尧都区自然资源局"


async def test_refusals_for_the_wrong_state(bot):
    t = Tickets(bot)
    dispatched, acknowledged, resolved, closed = (await t.dispatched(), await t.acknowledged(),
                                                  await t.resolved(), await t.closed())
    assert await refused(bot, ZR, f"签收 {acknowledged}", acknowledged) == (
        "问题 YD-2026-0002 当前“已签收”，不能签收。已签收过，请直接反馈进展：反馈 YD-2026-0002 进展")
    assert await refused(bot, ZR, f"办结 {dispatched} 已办好", dispatched) == (
        "问题 YD-2026-0001 当前“已交办，待签收”，不能办结。请先签收：签收 YD-2026-0001")
    assert await refused(bot, LIAISON, f"满意 {acknowledged}", acknowledged) == (
        "问题 YD-2026-0002 当前“已签收”，不能确认满意。承办单位办结后才能确认。")
    assert await refused(bot, LIAISON, f"不满意 {closed} 又坏了", closed) == (
        "问题 YD-2026-0004 当前“已销号”，不能提出不满意。问题已销号。如有新问题，请直接发送文字描述。")
    assert await refused(bot, OFFICE, f"交办 {dispatched} 尧都区住房和城乡建设局", dispatched) == (
        "问题 YD-2026-0001 当前“已交办，待签收”，不能交办。已交办。如需更换单位，请用：转办 YD-2026-0001 单位 理由")
    assert "不能退回" in await refused(bot, ZR, f"退回 {resolved} 不归我们", resolved)
    assert await refused(bot, OFFICE, f"批准延期 {acknowledged}", acknowledged) == "问题 YD-2026-0002 没有待审批的延期申请。"
    assert await refused(bot, OFFICE, f"驳回延期 {acknowledged}", acknowledged) == "问题 YD-2026-0002 没有待审批的延期申请。"
    assert await refused(bot, OFFICE, f"摘牌 {acknowledged}", acknowledged) == "问题 YD-2026-0002 没有挂牌，无需摘牌。"
    assert "不能催办" in await refused(bot, OFFICE, f"催办 {closed}", closed)
    assert "不能补充情况" in await refused(bot, LIAISON, f"补充 {closed} 还有", closed)


async def test_refusals_for_missing_or_bad_arguments(bot):
    t = Tickets(bot)
    reported, acknowledged, major = await t.reported(), await t.acknowledged(), await t.major()
    # Missing text.
    assert await refused(bot, ZR, f"反馈 {acknowledged}", acknowledged) == (
        "请写明进展，例如：反馈 YD-2026-0002 已现场踏勘，正在协调")
    assert await refused(bot, ZR, f"办结 {acknowledged}", acknowledged) == (
        "请写明办结情况，例如：办结 YD-2026-0002 规划许可证已核发")
    assert await refused(bot, LIAISON, f"补充 {acknowledged}", acknowledged) == (
        "请写明补充内容，例如：补充 YD-2026-0002 现场已停工两天")
    # 延期: days missing or out of range, reason missing.
    assert await refused(bot, ZR, f"延期 {acknowledged} 等评审", acknowledged) == (
        "延期天数应为 1 到 30 之间的整数，例如：延期 YD-2026-0002 5 需等待专家评审")
    assert (await refused(bot, ZR, f"延期 {acknowledged} 45 等评审", acknowledged)).startswith("延期天数应为 1 到 30")
    assert await refused(bot, ZR, f"延期 {acknowledged} 5", acknowledged) == (
        "请写明延期理由，例如：延期 YD-2026-0002 5 需等待专家评审")
    # 方案: only for major problems, needs a future date.
    assert (await refused(bot, ZR, f"方案 {acknowledged} 分步办理 2026-12-31", acknowledged)).startswith(
        "书面方案适用于重大复杂问题；问题 YD-2026-0002 为一般问题（7日内办结）")
    assert await refused(bot, ZR, f"方案 {major} 分步办理", major) == (
        "请在最后写明截止日期，例如：方案 YD-2026-0003 分三步完成征地报批 2026-12-31")
    assert (await refused(bot, ZR, f"方案 {major} 分步办理 2026-11-01", major)).startswith("时间节点须是今天以后的日期")
    assert (await refused(bot, ZR, f"方案 {major} 分步办理 2026-02-30", major)).startswith("时间节点须是今天以后的日期")
    # 交办 / 转办: the unit missing, unknown or ambiguous; 转办 without a reason or to the same unit.
    assert await refused(bot, OFFICE, f"交办 {reported}", reported) == (
        "请写明承办单位，例如：交办 YD-2026-0001 尧都区自然资源局")
    assert (await refused(bot, OFFICE, f"交办 {reported} 火星局", reported)).startswith("没有找到单位“火星局”")
    assert (await refused(bot, OFFICE, f"交办 {reported} 自然资源", reported)).startswith("“自然资源”对应多个单位")
    assert await refused(bot, OFFICE, f"转办 {acknowledged} 尧都区住房和城乡建设局", acknowledged) == (
        "请写明转办理由，例如：转办 YD-2026-0002 市规划和自然资源局 涉及市级审批权限")
    assert await refused(bot, OFFICE, f"转办 {acknowledged} 尧都区自然资源局 再办", acknowledged) == (
        "问题 YD-2026-0002 已在该单位办理，无需转办。")
    # 挂牌: the five must be in place, and the ticket must have a unit.
    assert (await refused(bot, OFFICE, f"挂牌 {acknowledged} 专班协调 副区长", acknowledged)).startswith("挂牌须五到位")
    assert await refused(bot, OFFICE, f"挂牌 {reported} 专班协调 副区长 局长 2026-12-20", reported) == (
        "问题 YD-2026-0001 还没有承办单位，请先交办，再挂牌督办（责任单位须明确）。")
    # A reason asked for and then not given: 取消 leaves everything as it was.
    await t.resolved()
    assert "请回复不满意的理由" in await refused(bot, LIAISON, "不满意 YD-2026-0004", "YD-2026-0004", click=True)
    assert await refused(bot, LIAISON, "取消", "YD-2026-0004") == "已取消，问题 YD-2026-0004 没有变化。"


async def test_number_may_be_left_out_only_when_one_ticket_fits(bot):
    t = Tickets(bot)
    assert await refused(bot, ZR, "签收") == "您目前没有可签收的问题。发送 待办 或 我的问题 查看。"
    await t.dispatched()
    await t.dispatched()
    assert await refused(bot, ZR, "签收") == (
        "您有 2 件问题可签收，请写明编号：YD-2026-0001、YD-2026-0002\n例如：签收 YD-2026-0001")
    assert await refused(bot, LIAISON, "满意") == "您目前没有可确认满意的问题。发送 待办 或 我的问题 查看。"
    assert await refused(bot, OFFICE, "催办") == "请写明问题编号，例如：催办 YD-2026-0001"
    assert one(await bot.say(ZR, "签收YD-2026-2"))["text"].startswith("已签收 YD-2026-0002")
    assert one(await bot.say(ZR, "签收"))["text"].startswith("已签收 YD-2026-0001")


# -- the matrix ---------------------------------------------------------------------------

ACTORS = {
    "liaison": LIAISON, "other_liaison": OTHER_LIAISON, "unit_contact": ZR, "unit_leader": ZR_LEADER,
    "other_unit": OTHER_UNIT, "office": OFFICE, "other_office": OTHER_OFFICE, "project_leader": PROJECT_LEADER,
}
UNIT = {"unit_contact", "unit_leader"}
REPORTER_OR_OFFICE = {"liaison", "office"}


@dataclass(frozen=True)
class Row:
    command: str  # with {n} for the ticket number
    state: str | None  # the Tickets method that prepares the ticket; None: no ticket
    allowed: frozenset[str]
    changes: bool = True  # an allowed use changes the ticket


MATRIX = [
    Row("签收 {n}", "dispatched", frozenset(UNIT)),
    Row("反馈 {n} 已现场踏勘", "acknowledged", frozenset(UNIT)),
    Row("办结 {n} 已核发", "acknowledged", frozenset(UNIT)),
    Row("退回 {n} 不属本单位职责", "dispatched", frozenset(UNIT)),
    Row("延期 {n} 5 等专家评审", "acknowledged", frozenset(UNIT)),
    Row("方案 {n} 分三步报批 2027-01-15", "major", frozenset(UNIT)),
    Row("待办", None, frozenset({*UNIT, "other_unit"}), changes=False),
    Row("满意 {n}", "resolved", frozenset(REPORTER_OR_OFFICE)),
    Row("不满意 {n} 证件未到", "resolved", frozenset(REPORTER_OR_OFFICE)),
    Row("补充 {n} 东门也有问题", "dispatched", frozenset(REPORTER_OR_OFFICE)),
    Row("我的问题", None, frozenset({"liaison", "other_liaison"}), changes=False),
    Row("查询 {n}", "dispatched", frozenset({"liaison", "office", "project_leader", *UNIT}), changes=False),
    Row("交办 {n} 尧都区自然资源局", "reported", frozenset({"office"})),
    Row("转办 {n} 尧都区住房和城乡建设局 属住建职责", "dispatched", frozenset({"office"})),
    Row("挂牌 {n} 专班协调 副区长 局长 2026-12-20", "acknowledged", frozenset({"office"})),
    Row("摘牌 {n}", "flagged", frozenset({"office"})),
    Row("批准延期 {n}", "extension", frozenset({"office"})),
    Row("驳回延期 {n} 请按期办结", "extension", frozenset({"office"})),
    Row("催办 {n}", "dispatched", frozenset({"office"})),
    Row("台账", None, frozenset({"office", "other_office"}), changes=False),
]
REFUSAL_MARKS = ("不能使用", "不由您经办", "不在您的查看范围内")


async def test_role_command_matrix(bot):
    t = Tickets(bot)
    for row in MATRIX:
        number = await getattr(t, row.state)() if row.state else None
        text = row.command.format(n=number)
        for role, who in ACTORS.items():
            if role in row.allowed:
                continue
            answer = await refused(bot, who, text, number)
            assert any(mark in answer for mark in REFUSAL_MARKS), (role, text, answer)
        for role in sorted(row.allowed):
            who = ACTORS[role]
            if row.changes and role != min(row.allowed):  # a fresh ticket for each allowed role
                number = await getattr(t, row.state)()
                text = row.command.format(n=number)
            await bot.new(who)
            before = await snapshot(bot, number, who)
            answer = (await bot.say(who, text))[0]["reply"]["text"]  # 台账 also sends its workbook
            assert not any(mark in answer for mark in REFUSAL_MARKS), (role, text, answer)
            if row.changes:
                assert await snapshot(bot, number, who) != before, (role, text, answer)


async def test_a_pending_reason_ends_when_the_sender_moves_on(bot):
    t = Tickets(bot)
    first, second = await t.dispatched(), await t.dispatched()
    await bot.new(ZR)
    assert "请回复退回理由" in one(await bot.click(ZR, f"退回 {first}"))["text"]
    assert one(await bot.click(ZR, f"签收 {second}"))["text"].startswith(f"已签收 {second}")
    # The words that follow are not taken as the reason to return the first ticket.
    answer = await refused(bot, ZR, "好的，收到", first)
    assert answer.startswith("没有识别“好的，收到”")
