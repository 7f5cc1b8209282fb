"""Transcripts of the liaison's side: choosing a project by button, photos and
locations after a report, 取消, 补充, 我的问题 with its lights, 查询; and what
everyone gets for 帮助, unknown people and unknown commands."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from bot.message import Attachment, IncomingMessage, MessageKind
from models.tables import Conversation, Ticket, TicketAttachment

LIAISON = "p_wuliu_liaison"
MULTI = "p_xny_liaison"  # 洪洞县独立储能电站项目 and 襄汾县农光互补光伏发电项目
ZR = "yd_zr_contact"
OFFICE = "yd_office_duty"
LAND = "项目东侧用地规划许可证迟迟未办理，影响开工"
POWER = "工地附近的变压器容量不够，电力接入一直没解决"


def one(items: list[dict]) -> dict:
    assert len(items) == 1, [i["reply"]["text"] for i in items]
    return items[0]["reply"]


def buttons(reply: dict) -> list[tuple[str, str]]:
    return [(b["key"], b["label"]) for b in reply["buttons"]]


async def send_media(bot, user: str, kind: MessageKind, **fields) -> list[dict]:
    """A photo or voice note as a channel would store it, then processed."""
    message = IncomingMessage(channel="local", message_id=uuid.uuid4().hex, sender_id=user, kind=kind,
                              received_at=bot.clock.now(), **fields)
    assert await bot.runtime.store(message)
    await bot.settle()
    return await bot.new(user)


async def count(bot, model) -> int:
    async with bot.runtime.sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def tickets(bot) -> list[Ticket]:
    async with bot.runtime.sessionmaker() as session:
        return list((await session.scalars(select(Ticket).order_by(Ticket.id))).all())


async def test_multi_project_liaison_chooses_by_button(bot):
    ask = one(await bot.say(MULTI, POWER))
    assert ask["title"] == "请选择项目"
    assert buttons(ask) == [("选择项目 chuneng", "洪洞县独立储能电站项目"),
                            ("选择项目 guangfu", "襄汾县农光互补光伏发电项目")]
    assert "1. 洪洞县独立储能电站项目" in ask["text"]
    assert await tickets(bot) == []  # nothing filed before the choice

    # Anything else first: asked again, nothing filed.
    again = one(await bot.say(MULTI, "不知道"))
    assert again["text"].startswith("请先选择问题所属项目") and len(again["buttons"]) == 2
    assert await tickets(bot) == []

    answer = one(await bot.click(MULTI, "选择项目 guangfu"))
    assert answer["title"] == "问题已受理：XF-2026-0001"  # 襄汾县 is the project's 属地
    assert "项目：襄汾县农光互补光伏发电项目" in answer["text"]
    assert "已交办：国网襄汾县供电公司" in answer["text"]
    assert one(await bot.new("xf_gd_contact"))["title"] == "新交办问题：XF-2026-0001"
    assert await bot.new("hd_gd_contact") == []

    # A second report, chosen by typing the number.
    one(await bot.say(MULTI, LAND))
    answer = one(await bot.say(MULTI, "1"))
    assert answer["title"] == "问题已受理：HD-2026-0001" and "洪洞县自然资源局" in answer["text"]
    # 取消 at the choice: nothing is filed.
    one(await bot.say(MULTI, "有村民堵门"))
    assert one(await bot.say(MULTI, "取消"))["text"] == "已取消，本次问题没有提交。"
    assert [t.number for t in await tickets(bot)] == ["XF-2026-0001", "HD-2026-0001"]
    # A stale button afterwards is explained, not acted on.
    stale = one(await bot.click(MULTI, "选择项目 chuneng"))
    assert stale["text"].startswith("没有待选择项目的问题")
    assert len(await tickets(bot)) == 2


async def test_photo_voice_and_location_after_a_report_attach_to_it(bot):
    one(await bot.say(LIAISON, LAND))
    await bot.new(ZR)
    bot.clock.advance(minutes=2)
    reply = one(await send_media(bot, LIAISON, MessageKind.IMAGE,
                                 attachments=(Attachment("image", media_id="media-1", path="media/a.jpg"),)))
    assert reply["text"] == "已将照片附到问题 YD-2026-0001。"
    assert await bot.texts(ZR) == ["问题 YD-2026-0001 的联络员补充了照片。发送 查询 YD-2026-0001 查看。"]
    one(await send_media(bot, LIAISON, MessageKind.VOICE, attachments=(Attachment("voice", media_id="v-1"),)))
    response = await bot.client.post("/sim/api/messages?wait=1", json={
        "user": LIAISON, "location": {"latitude": 36.08, "longitude": 111.52, "label": "物流园东门"}})
    assert response.status == 200
    assert one(await bot.new(LIAISON))["text"] == "已将位置附到问题 YD-2026-0001。"
    assert await bot.texts(ZR) == ["问题 YD-2026-0001 的联络员补充了语音。发送 查询 YD-2026-0001 查看。",
                                   "问题 YD-2026-0001 的联络员补充了位置。发送 查询 YD-2026-0001 查看。"]

    async with bot.runtime.sessionmaker() as session:
        rows = (await session.scalars(select(TicketAttachment).order_by(TicketAttachment.id))).all()
    assert [(r.kind, r.media_id, r.path) for r in rows] == [
        ("image", "media-1", "media/a.jpg"), ("voice", "v-1", None), ("location", None, None)]
    assert rows[2].data["label"] == "物流园东门"
    detail = one(await bot.say(ZR, "查询 YD-2026-0001"))
    assert "附件：照片1个、语音1个、位置1个" in detail["text"]

    # 取消 ends the window; the ticket stays as it is.
    assert one(await bot.say(LIAISON, "取消"))["text"].startswith("好的。后续照片不再附到问题 YD-2026-0001")
    reply = one(await send_media(bot, LIAISON, MessageKind.IMAGE, attachments=(Attachment("image", media_id="m2"),)))
    assert reply["text"].startswith("已收到照片，将附到您接下来提交的问题")
    assert await count(bot, TicketAttachment) == 3


async def test_photos_before_a_report_join_it_and_the_window_expires(bot):
    # A photo first, then the words: the photo goes with the new ticket.
    one(await send_media(bot, LIAISON, MessageKind.IMAGE, attachments=(Attachment("image", media_id="p1"),)))
    answer = one(await bot.say(LIAISON, LAND))
    assert answer["title"] == "问题已受理：YD-2026-0001"
    card = one(await bot.new(ZR))
    assert "附件：1个（发送 查询 YD-2026-0001 查看）" in card["text"]
    assert await count(bot, TicketAttachment) == 1

    # After the window a photo no longer attaches by itself.
    bot.clock.advance(minutes=11)
    reply = one(await send_media(bot, LIAISON, MessageKind.IMAGE, attachments=(Attachment("image", media_id="p2"),)))
    assert reply["text"].startswith("已收到照片，将附到您接下来提交的问题")
    # ... and 补充 puts it on the ticket named.
    reply = one(await bot.say(LIAISON, "补充 YD-2026-0001 东门的照片"))
    assert reply["text"] == "已补充到问题 YD-2026-0001。"
    note = one(await bot.new(ZR))
    assert note["title"] == "问题补充：YD-2026-0001"
    assert "东门的照片" in note["text"] and "（另附1个附件）" in note["text"]
    assert await count(bot, TicketAttachment) == 2
    assert await count(bot, Conversation) == 0

    # A photo from someone who is not a liaison is not taken.
    assert one(await send_media(bot, ZR, MessageKind.IMAGE))["text"].startswith("暂不支持这类消息")


async def test_choice_state_survives_and_collects_photos(bot):
    one(await bot.say(MULTI, POWER))
    reply = one(await send_media(bot, MULTI, MessageKind.IMAGE, attachments=(Attachment("image", media_id="x"),)))
    assert reply["title"] == "请选择项目"
    one(await bot.click(MULTI, "选择项目 chuneng"))
    async with bot.runtime.sessionmaker() as session:
        row = await session.scalar(select(TicketAttachment))
        t = await session.get(Ticket, row.ticket_id)
    assert t.number == "HD-2026-0001"


async def test_my_tickets_and_lights(bot):
    one(await bot.say(LIAISON, LAND))
    one(await bot.say(LIAISON, "希望领导多关心我们项目"))  # triage cannot tell: to the office
    mine = one(await bot.say(LIAISON, "我的问题"))
    assert mine["title"] == "我的问题（未销号 2 件）"
    assert "YD-2026-0002 待交办" in mine["text"] and "交办期限 2026年11月24日 18:00" in mine["text"]
    assert "YD-2026-0001 已交办，待签收【临期】" in mine["text"]  # 签收 due at 18:00 today
    bot.clock.advance(days=2)
    mine = one(await bot.say(LIAISON, "我的问题"))
    assert "YD-2026-0001 已交办，待签收【超期2天】" in mine["text"]
    assert "YD-2026-0002 待交办【超期1天】" in mine["text"]
    assert mine["text"].index("YD-2026-0001") < mine["text"].index("YD-2026-0002")
    # 查询 without a number is the same list for a liaison.
    assert one(await bot.say(LIAISON, "查询"))["title"] == "我的问题（未销号 2 件）"
    # The other liaison of the same project may look at the ticket; a stranger's ticket may not be seen.
    assert one(await bot.say("p_wuliu_site", "查询 YD-2026-0001"))["title"].startswith("YD-2026-0001")
    assert one(await bot.say("p_tegang_liaison", "查询 YD-2026-0001"))["text"] == "问题 YD-2026-0001 不在您的查看范围内。"
    assert one(await bot.say(LIAISON, "查询 YD-2026-0099"))["text"].startswith("没有找到编号为 YD-2026-0099 的问题")


async def test_office_queries_by_unit_project_county_and_ledger(bot):
    one(await bot.say(LIAISON, LAND))
    one(await bot.say(LIAISON, "希望领导多关心我们项目"))
    one(await bot.say("p_tegang_liaison", LAND))  # 洪洞县: outside 尧都区's scope
    assert one(await bot.new(OFFICE))["title"] == "待交办：YD-2026-0002"
    by_unit = one(await bot.say(OFFICE, "查询 尧都区自然资源局"))
    assert by_unit["title"] == "查询：尧都区自然资源局（未销号 1 件）" and "YD-2026-0001" in by_unit["text"]
    by_project = one(await bot.say(OFFICE, "查询 物流园"))
    assert by_project["title"] == "查询：示范现代物流园项目（未销号 2 件）"
    assert one(await bot.say(OFFICE, "查询 尧都区"))["title"] == "查询：尧都区（未销号 2 件）"
    assert one(await bot.say(OFFICE, "查询 HD-2026-0001"))["text"] == "问题 HD-2026-0001 不在您的查看范围内。"
    assert one(await bot.say(OFFICE, "查询 洪洞县"))["text"] == "“洪洞县”不在您的辖区（尧都区重点办）。"
    city = one(await bot.say("city_office_duty", "查询 洪洞县"))  # the city office oversees every county
    assert city["title"] == "查询：洪洞县（未销号 1 件）"
    assert one(await bot.say("city_office_duty", "查询"))["title"] == "查询：本辖区（未销号 3 件）"

    ledger, workbook = (item["reply"] for item in await bot.say(OFFICE, "台账"))
    assert ledger["title"] == "问题台账（尧都区重点办）"
    assert "未销号 2 件：待交办 1，待签收 1" in ledger["text"]
    assert workbook["file_path"].endswith(".xlsx")
    bot.clock.advance(days=1)
    assert "其中超期 1 件" in (await bot.say(OFFICE, "台账"))[0]["reply"]["text"]  # 签收 was due last night
    bot.clock.advance(hours=10)
    assert "其中超期 2 件" in (await bot.say(OFFICE, "台账"))[0]["reply"]["text"]


async def test_help_for_each_role(bot):
    liaison = one(await bot.say(LIAISON, "帮助"))["text"]
    assert "【项目单位联络员】" in liaison and "满意 编号" in liaison and "【重点办】" not in liaison
    unit = one(await bot.say(ZR, "帮助"))["text"]
    assert "【承办单位】" in unit and "签收 YD-2026-0001" in unit and "【项目单位联络员】" not in unit
    assert "分管领导可使用" in one(await bot.say("yd_zr_leader", "help"))["text"]
    office = one(await bot.say(OFFICE, "？"))["text"]
    assert "【重点办】" in office and "挂牌 编号 办法 责任领导 责任人 期限" in office
    assert "【项目包联领导】" in one(await bot.say("p_wuliu_leader", "帮助"))["text"]


async def test_unknown_people_get_only_how_to_register(bot):
    one(await bot.say(LIAISON, LAND))
    for text in ("你好", "查询 YD-2026-0001", "我的问题", "签收 YD-2026-0001"):
        message = IncomingMessage(channel="local", message_id=uuid.uuid4().hex, sender_id="stranger",
                                  kind=MessageKind.TEXT, received_at=bot.clock.now(), text=text)
        await bot.runtime.store(message)
    await bot.settle()
    async with bot.runtime.sessionmaker() as session:
        from models.tables import LocalInboxItem

        items = (await session.scalars(select(LocalInboxItem).where(LocalInboxItem.user == "stranger"))).all()
    assert len(items) == 4
    for item in items:
        text = item.payload["reply"]["text"]
        assert "尚未登记" in text and "YD-2026" not in text and "自然资源" not in text
    assert len(await tickets(bot)) == 1


async def test_unknown_commands_and_free_text_of_non_liaisons(bot):
    assert one(await bot.say(ZR, "你好"))["text"].startswith("没有识别“你好”。办理问题请用")
    assert one(await bot.say(OFFICE, "今天几号"))["text"].startswith("没有识别“今天几号”。请用“交办")
    assert one(await bot.click(ZR, "frobnicate 1"))["text"].startswith("没有识别")
    assert one(await bot.say("p_wuliu_leader", "项目怎么样了"))["text"].startswith("没有识别")
    assert one(await bot.say(LIAISON, "取消"))["text"] == "当前没有进行中的对话，无需取消。"
    assert await tickets(bot) == []


async def test_ledger_in_chat_sends_the_excel_file(bot):
    from openpyxl import load_workbook

    one(await bot.say(LIAISON, LAND))
    summary, file_reply = await bot.say(OFFICE, "台账")
    assert summary["reply"]["title"] == "问题台账（尧都区重点办）" and "未销号 1 件" in summary["reply"]["text"]
    path = file_reply["reply"]["file_path"]
    assert path.endswith("问题台账-yd-20261123.xlsx")
    sheet = load_workbook(path).active
    assert "YD-2026-0001" in [cell.value for row in sheet.iter_rows() for cell in row]