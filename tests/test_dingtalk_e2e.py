"""DingTalk end to end: signed robot callbacks into the real app, answers out to
the fake DingTalk API (session webhooks, robot 1:1 batchSend) -- a ticket's whole
life as people live it in DingTalk, replays, expired webhooks, refused callbacks,
strangers, throttling, and Stream mode.

The demo organisation: 示范物流园项目联络员 (p_wuliu_liaison) is ``dt_wuliu_liaison``
on DingTalk; power problems of the 物流园 project (尧都区, YD) go to 国网尧都区供电公司,
whose 13710 contact (yd_gd_contact) is ``dt_gd_contact_yd``.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from handlers import texts
from models import repo
from models.tables import InboundMessage, Notice, Ticket
from tests.dingtalk_support import (
    DINGTALK,
    DingTalkBot,
    card_buttons,
    hand_sign,
    message_text,
    millis,
    running_dingtalk_bot,
)

LIAISON = "dt_wuliu_liaison"
CONTACT = "dt_gd_contact_yd"  # 国网尧都区供电公司13710联系人
REPORT = "项目临时用电迟迟接不上，变压器还没装，影响设备调试"
NUMBER = "YD-2026-0001"
BATCH_SEND = "/v1.0/robot/oToMessages/batchSend"
SESSION_SEND = "/robot/sendBySession"


@pytest.fixture
async def dingtalk_bot(aiohttp_client, database, tmp_path, clock, classifier):
    async with running_dingtalk_bot(aiohttp_client, database, tmp_path, clock, classifier) as bot:
        yield bot


def one(messages: list[dict]) -> dict:
    assert len(messages) == 1, messages
    return messages[0]


def title(message: dict) -> str:
    if "msgKey" in message:
        return message["msgParam"].get("title", "")
    return message[message["msgtype"]].get("title", "")


class Inbox:
    """What one DingTalk user received, through session webhooks and the robot API,
    since the last look."""

    def __init__(self, bot: DingTalkBot, user: str):
        self.bot = bot
        self.user = user
        self._seen_webhook = 0
        self._seen_api = 0

    def webhook(self) -> list[dict]:
        messages = self.bot.webhook_messages(self.user)
        fresh, self._seen_webhook = messages[self._seen_webhook:], len(messages)
        return fresh

    def api(self) -> list[dict]:
        messages = self.bot.api_messages(self.user)
        fresh, self._seen_api = messages[self._seen_api:], len(messages)
        return fresh


async def count(bot: DingTalkBot, model, *where) -> int:
    async with bot.runtime.sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


async def ticket(bot: DingTalkBot, number: str = NUMBER) -> Ticket | None:
    async with bot.runtime.sessionmaker() as session:
        return await repo.ticket_by_number(session, number)


async def test_whole_life_of_a_ticket_over_dingtalk(dingtalk_bot):
    bot = dingtalk_bot
    liaison, contact = Inbox(bot, LIAISON), Inbox(bot, CONTACT)

    # The liaison reports; the answer comes back through the message's session webhook.
    await bot.say(LIAISON, REPORT)
    answer = one(liaison.webhook())
    assert answer["msgtype"] == "markdown" and title(answer) == f"问题已受理：{NUMBER}"
    text = message_text(answer)
    assert "已交办：国网尧都区供电公司" in text and "13710联系人：国网尧都区供电公司13710联系人" in text
    assert "签收 2026年11月23日 18:00" in text
    assert all(line.endswith("  ") for line in text.split("\n\n", 1)[1].split("\n")[:-1])
    assert liaison.api() == []

    # The unit contact gets the new-ticket card through the robot 1:1 API, as an
    # action card whose buttons send the command back.
    card = one(contact.api())
    assert card["msgKey"] == "sampleActionCard2" and title(card) == f"新交办问题：{NUMBER}"
    # DingTalk's markdown needs two spaces before a newline to break the line.
    assert f"### 新交办问题：{NUMBER}\n\n项目：示范现代物流园项目（省级重点项目，尧都区重点办）  \n问题：{REPORT}  \n" in (
        message_text(card))
    assert card_buttons(card) == [("签收", f"签收 {NUMBER}"), ("退回", f"退回 {NUMBER}")]
    assert {m["user"] for m in bot.fake.robot_messages} == {CONTACT}  # nobody else was disturbed

    # The contact clicks 签收: DingTalk sends the button's content as a text message.
    bot.clock.advance(hours=1)
    await bot.say(CONTACT, card_buttons(card)[0][1])
    assert message_text(one(contact.webhook())).startswith(f"已签收 {NUMBER}。请在 2026年11月26日 18:00 前反馈进展")
    assert message_text(one(liaison.api())) == f"问题 {NUMBER} 已由国网尧都区供电公司签收，正在办理。"
    assert (await ticket(bot)).status == "acknowledged"

    # 反馈 without the number: the contact has exactly one fitting ticket.
    await bot.say(CONTACT, "反馈 已联系施工单位，变压器本周进场")
    assert f"已反馈 {NUMBER} 的进展" in message_text(one(contact.webhook()))
    note = one(liaison.api())
    assert title(note) == f"办理进展：{NUMBER}"
    assert "国网尧都区供电公司反馈：已联系施工单位，变压器本周进场" in message_text(note)

    # 办结 with a result: the liaison gets a 满意 / 不满意 card.
    bot.clock.advance(days=2)
    await bot.say(CONTACT, f"办结 {NUMBER} 变压器已安装，临时用电已接通")
    assert f"已办结 {NUMBER}" in message_text(one(contact.webhook()))
    confirm = one(liaison.api())
    assert title(confirm) == f"请确认办结：{NUMBER}"
    assert "办结情况：变压器已安装，临时用电已接通" in message_text(confirm)
    assert card_buttons(confirm) == [("满意", f"满意 {NUMBER}"), ("不满意", f"不满意 {NUMBER}")]

    # 不满意 from the card asks for the reason; the next message is the reason.
    await bot.say(LIAISON, card_buttons(confirm)[1][1])
    assert "请回复不满意的理由" in message_text(one(liaison.webhook()))
    assert (await ticket(bot)).status == "resolved"
    await bot.say(LIAISON, "电压不稳，设备仍无法调试")
    assert message_text(one(liaison.webhook())).startswith(f"已将问题 {NUMBER} 退回国网尧都区供电公司重新办理")
    back = one(contact.api())
    assert title(back) == f"重新办理：{NUMBER}" and "理由：电压不稳，设备仍无法调试" in message_text(back)

    # Resolved again; this time the liaison clicks 满意: 销号.
    bot.clock.advance(days=1)
    await bot.say(CONTACT, "办结 已加装稳压设备，电压正常")
    one(contact.webhook())
    confirm = one(liaison.api())
    assert card_buttons(confirm)[0] == ("满意", f"满意 {NUMBER}")
    await bot.say(LIAISON, card_buttons(confirm)[0][1])
    assert message_text(one(liaison.webhook())) == f"问题 {NUMBER} 已销号。感谢您的确认！"
    assert message_text(one(contact.api())) == f"问题 {NUMBER} 联络员确认满意，已销号。"

    closed = await ticket(bot)
    assert closed.status == "closed" and not closed.is_open and closed.reopen_count == 1
    # Everything went out exactly once, by the two DingTalk paths only, each call
    # accepted the first time (a token fetched only when the last one had run out).
    assert liaison.webhook() == [] and liaison.api() == [] and contact.webhook() == [] and contact.api() == []
    assert {m["user"] for m in bot.fake.robot_messages} == {LIAISON, CONTACT}
    assert len(bot.fake.calls_to(BATCH_SEND)) == len(bot.fake.robot_messages) == 7
    assert len(bot.fake.calls_to(SESSION_SEND)) == len(bot.webhook_messages(LIAISON) + bot.webhook_messages(CONTACT))
    fetched = [c.at for c in bot.fake.calls_to("/v1.0/oauth2/accessToken")]
    assert len(fetched) == 3  # 23 Nov 09:00, 25 Nov 10:00, 26 Nov 10:00: tokens last two hours
    async with bot.runtime.sessionmaker() as session:
        statuses = (await session.scalars(select(Notice.status))).all()
    assert statuses and set(statuses) == {"sent"}


async def test_a_replayed_callback_is_one_message_and_one_ticket(dingtalk_bot):
    bot = dingtalk_bot
    body = bot.body(LIAISON, REPORT, msg_id="msgReplay0001==")
    for _ in range(3):
        response = await bot.post(body)
        assert response.status == 200
        assert await response.json() == {"msgtype": "empty"}
    await bot.settle()
    assert await count(bot, InboundMessage) == 1
    assert await count(bot, Ticket) == 1
    assert len(bot.webhook_messages(LIAISON)) == 1
    assert len(bot.api_messages(CONTACT)) == 1

    # DingTalk retrying while the first delivery is still in flight: the copies
    # arrive together (and may be stored in one group commit).
    body = bot.body(CONTACT, f"签收 {NUMBER}", msg_id="msgReplay0002==")
    responses = await asyncio.gather(*(bot.post(body) for _ in range(3)))
    assert [r.status for r in responses] == [200, 200, 200]
    await bot.settle()
    assert await count(bot, InboundMessage) == 2
    assert len(bot.last_session(CONTACT)) == 1  # one 已签收 answer
    assert len(bot.api_messages(LIAISON)) == 1  # one 已签收 note
    assert (await ticket(bot)).status == "acknowledged"


async def test_an_expired_session_webhook_falls_back_to_the_robot_api(dingtalk_bot):
    bot = dingtalk_bot
    await bot.say(LIAISON, REPORT, webhook_expires_at=bot.clock.now() - timedelta(minutes=1))
    assert bot.webhook_messages(LIAISON) == []
    assert bot.fake.calls_to(SESSION_SEND) == []  # not even tried
    answer = one(bot.api_messages(LIAISON))
    assert answer["msgKey"] == "sampleMarkdown" and answer["msgParam"]["title"] == f"问题已受理：{NUMBER}"


async def test_a_session_webhook_refused_by_dingtalk_falls_back_to_the_robot_api(dingtalk_bot):
    bot = dingtalk_bot
    # The message says the webhook is good for 90 minutes; DingTalk has already dropped it.
    await bot.say(LIAISON, REPORT, fake_expires_at=bot.clock.now())
    assert len(bot.fake.calls_to(SESSION_SEND)) == 1
    assert bot.webhook_messages(LIAISON) == []
    assert title(one(bot.api_messages(LIAISON))) == f"问题已受理：{NUMBER}"


async def test_an_answer_delayed_past_the_webhook_expiry_goes_through_the_api_once(dingtalk_bot):
    bot = dingtalk_bot
    bot.fake.drop_next(SESSION_SEND)  # the connection is cut: delivery unknown, retried later
    await bot.say(LIAISON, REPORT)
    assert bot.webhook_messages(LIAISON) == [] and bot.api_messages(LIAISON) == []
    async with bot.runtime.sessionmaker() as session:
        notice = await session.scalar(select(Notice).where(Notice.address == LIAISON))
    assert notice.status == "pending" and notice.attempts == 1

    bot.clock.advance(hours=2)  # the session webhook (90 min) is gone
    await bot.settle()
    assert len(bot.fake.calls_to(SESSION_SEND)) == 1
    assert title(one(bot.api_messages(LIAISON))) == f"问题已受理：{NUMBER}"
    async with bot.runtime.sessionmaker() as session:
        notice = await session.scalar(select(Notice).where(Notice.address == LIAISON))
    assert notice.status == "sent" and notice.attempts == 2


async def test_refused_callbacks_store_nothing(dingtalk_bot):
    bot = dingtalk_bot
    body = bot.body(LIAISON, REPORT)
    now_ms = str(millis(bot.clock.now()))
    stale_ms = str(millis(bot.clock.now()) - 2 * 3600 * 1000)
    refused = [
        ({"sign": hand_sign(now_ms, "not-the-app-secret")}, 403),
        ({"sign": hand_sign(now_ms, DINGTALK["app_secret"])[:-4] + "AAA="}, 403),
        ({"timestamp": stale_ms, "sign": hand_sign(stale_ms, DINGTALK["app_secret"])}, 403),
        ({"sign": ""}, 401),
    ]
    for headers, status in refused:
        response = await bot.post(body, **headers)
        assert response.status == status, headers
    await bot.settle()
    assert await count(bot, InboundMessage) == 0
    assert await count(bot, Ticket) == 0
    assert bot.fake.calls == []


async def test_an_unknown_dingtalk_user_gets_one_polite_answer_and_no_ticket(dingtalk_bot):
    bot = dingtalk_bot
    stranger = "dt_stranger_0001"
    await bot.say(stranger, REPORT)
    answer = one(bot.webhook_messages(stranger))
    assert message_text(answer) == texts.UNKNOWN_PERSON
    assert await count(bot, Ticket) == 0
    assert bot.fake.robot_messages == []
    assert NUMBER not in json.dumps([c.body for c in bot.fake.calls], ensure_ascii=False)


async def test_a_throttled_send_is_retried_later_and_delivered_once(dingtalk_bot):
    bot = dingtalk_bot
    bot.fake.throttle(BATCH_SEND)  # HTTP 403 Forbidden.AccessDenied.QpsLimitForApi
    await bot.say(LIAISON, REPORT)
    assert len(bot.webhook_messages(LIAISON)) == 1  # the answer took the session webhook
    assert bot.api_messages(CONTACT) == []
    async with bot.runtime.sessionmaker() as session:
        notice = await session.scalar(select(Notice).where(Notice.address == CONTACT))
    assert notice.status == "pending" and notice.attempts == 1 and "QpsLimit" in notice.last_error

    await bot.settle()  # not due yet: nothing more is tried
    assert len(bot.fake.calls_to(BATCH_SEND)) == 1
    bot.clock.advance(seconds=5)
    await bot.settle()
    card = one(bot.api_messages(CONTACT))
    assert title(card) == f"新交办问题：{NUMBER}"
    async with bot.runtime.sessionmaker() as session:
        notice = await session.scalar(select(Notice).where(Notice.address == CONTACT))
    assert notice.status == "sent" and notice.attempts == 2
    bot.clock.advance(minutes=10)
    await bot.settle()
    assert len(bot.api_messages(CONTACT)) == 1


async def test_a_flow_controlled_recipient_is_retried_later_and_delivered_once(dingtalk_bot):
    bot = dingtalk_bot
    bot.fake.flow_controlled_users.add(CONTACT)  # batchSend answers 200, the user in flowControlledStaffIdList
    await bot.say(LIAISON, REPORT)
    assert bot.api_messages(CONTACT) == []
    async with bot.runtime.sessionmaker() as session:
        notice = await session.scalar(select(Notice).where(Notice.address == CONTACT))
    assert notice.status == "pending" and notice.attempts == 1

    bot.fake.flow_controlled_users.clear()
    bot.clock.advance(seconds=5)
    await bot.settle()
    assert title(one(bot.api_messages(CONTACT))) == f"新交办问题：{NUMBER}"
    bot.clock.advance(minutes=10)
    await bot.settle()
    assert len(bot.api_messages(CONTACT)) == 1



async def test_an_invalid_staff_id_is_dead_lettered_and_the_city_office_alerted(dingtalk_bot):
    bot = dingtalk_bot
    bot.fake.invalid_users.add(CONTACT)  # batchSend answers 200 with the user in invalidStaffIdList
    await bot.say(LIAISON, REPORT)
    async with bot.runtime.sessionmaker() as session:
        notice = await session.scalar(select(Notice).where(Notice.address == CONTACT))
    assert notice.status == "dead" and notice.attempts == 1  # not retried: it cannot succeed
    assert bot.api_messages(CONTACT) == []
    for office_person in ("dt_office_duty_city", "dt_office_head_city"):
        alert = one(bot.api_messages(office_person))
        assert message_text(alert).startswith("【消息未送达】发给国网尧都区供电公司13710联系人的一条消息发送失败")
    assert len(bot.fake.calls_to(BATCH_SEND)) == 3

# -- Stream mode -------------------------------------------------------------------


async def test_stream_mode_acks_the_callback_and_files_the_ticket(aiohttp_client, database, tmp_path, clock,
                                                                  classifier):
    from bot.app import RUNTIME, build_app
    from tests.fakes.dingtalk_api import FakeDingTalkAPI
    from tests.fakes.dingtalk_gateway import FakeDingTalkGateway

    async with (
        FakeDingTalkAPI(app_key=DINGTALK["app_key"], app_secret=DINGTALK["app_secret"],
                        robot_code=DINGTALK["robot_code"], now=clock.now) as fake,
        FakeDingTalkGateway(client_id=DINGTALK["app_key"], client_secret=DINGTALK["app_secret"]) as gateway,
    ):
        # One base URL serves both the Stream gateway and the API in production;
        # here the stream opens on the gateway fake and the client is pointed at
        # the API fake once the app has started (before anything is sent).
        settings = database.settings(
            tmp_path, dingtalk_app_key=DINGTALK["app_key"], dingtalk_app_secret=DINGTALK["app_secret"],
            dingtalk_robot_code=DINGTALK["robot_code"], dingtalk_api_base=gateway.base_url,
            dingtalk_oapi_base=fake.base_url, dingtalk_mode="stream", simulator="off",
        )
        client = await aiohttp_client(build_app(settings, now=clock.now, start_workers=False,
                                                classifier=classifier))
        try:
            runtime = client.app[RUNTIME]
            runtime.senders["dingtalk"].api_base = fake.base_url
            bot = DingTalkBot(client, fake, clock)
            assert all(r.canonical != "/dingtalk/callback" for r in client.app.router.resources())

            conn = await gateway.wait_for_connection()
            assert gateway.open_requests[0]["subscriptions"] == [
                {"type": "CALLBACK", "topic": "/v1.0/im/bot/messages/get"}]
            body = bot.body(LIAISON, REPORT, msg_id="msgStream0001==")
            frame_id = await conn.push_callback(body)
            ack = await gateway.wait_for_ack(frame_id)
            assert ack["code"] == 200 and ack["headers"]["messageId"] == frame_id
            assert json.loads(ack["data"]) == {"response": None}
            # The ack comes only after the message is stored.
            assert await count(bot, InboundMessage) == 1

            # DingTalk redelivers the same message in a new frame: acked, ignored.
            again = await conn.push_callback(body)
            assert (await gateway.wait_for_ack(again))["code"] == 200

            await bot.settle()
            assert await count(bot, InboundMessage) == 1
            filed = await ticket(bot)
            assert filed is not None and filed.status == "dispatched"
            assert title(one(bot.webhook_messages(LIAISON))) == f"问题已受理：{NUMBER}"
            card = one(bot.api_messages(CONTACT))
            assert card_buttons(card) == [("签收", f"签收 {NUMBER}"), ("退回", f"退回 {NUMBER}")]
            assert runtime.dingtalk_stream.status()["connected"] is True
            health = await (await client.get("/healthz")).json()
            assert health["channels"]["dingtalk"]["mode"] == "stream"
        finally:
            await client.close()
        assert all(c.closed.is_set() for c in gateway.connections)
