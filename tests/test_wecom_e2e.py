"""WeCom end to end: encrypted callbacks into the real app, replies out to the
fake WeCom API. Nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from models.tables import InboundMessage, Notice, Ticket

LIAISON = "wuliu_liaison"  # p_wuliu_liaison on WeCom, in the demo organisation
REPORT = "项目临时用电迟迟接不上，变压器还没装，影响设备调试"


async def count(bot, model, *where) -> int:
    async with bot.runtime.sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


async def test_report_by_wecom_files_one_ticket_and_answers_on_wecom(wecom_bot):
    assert await wecom_bot.say(LIAISON, REPORT) == 200
    await wecom_bot.settle()
    assert await count(wecom_bot, Ticket) == 1
    sent = wecom_bot.sent_to(LIAISON)
    assert sent, wecom_bot.fake.calls
    body = sent[0].get("text", {}).get("content") or sent[0].get("markdown", {}).get("content") or str(sent[0])
    assert "问题已受理：YD-2026-0001" in body and "国网尧都区供电公司" in body


async def test_a_replay_three_times_is_one_message_and_one_ticket(wecom_bot):
    xml = wecom_bot.builder.text(LIAISON, REPORT, msg_id=424242)
    for _ in range(3):
        response = await wecom_bot.post_xml(xml)
        assert response.status == 200
    await wecom_bot.settle()
    assert await count(wecom_bot, InboundMessage) == 1
    assert await count(wecom_bot, Ticket) == 1
    assert len(wecom_bot.sent_to(LIAISON)) == 1


async def test_the_answer_never_waits_for_a_slow_handler(wecom_bot):
    runtime = wecom_bot.runtime
    release = asyncio.Event()
    original = runtime.process

    async def slow_process(session, message, now):
        await release.wait()
        await original(session, message, now)

    runtime.process = slow_process
    runtime.dispatcher._process = slow_process
    worker = asyncio.create_task(runtime.dispatcher.drain())
    await asyncio.sleep(0)
    status = await asyncio.wait_for(wecom_bot.say(LIAISON, REPORT), timeout=2)
    assert status == 200
    assert await count(wecom_bot, InboundMessage, InboundMessage.status == "pending") >= 1
    release.set()
    await worker
    await wecom_bot.settle()
    assert await count(wecom_bot, Ticket) == 1


async def test_api_failures_are_retried_and_delivered_once(wecom_bot):
    # Two notices (the liaison's answer, the unit's card) each fail twice.
    wecom_bot.fake.fail_next(4, errcode=45009, path="/cgi-bin/message/send")
    await wecom_bot.say(LIAISON, REPORT)
    await wecom_bot.settle()
    assert wecom_bot.sent_to(LIAISON) == []
    async with wecom_bot.runtime.sessionmaker() as session:
        notice = await session.scalar(select(Notice).where(Notice.address == LIAISON))
        assert notice.status == "pending" and notice.attempts == 1 and "45009" in notice.last_error
    for _ in range(3):
        wecom_bot.clock.advance(minutes=5)
        await wecom_bot.settle()
    assert len(wecom_bot.sent_to(LIAISON)) == 1
    async with wecom_bot.runtime.sessionmaker() as session:
        notice = await session.scalar(select(Notice).where(Notice.address == LIAISON))
        assert notice.status == "sent" and notice.attempts == 3


async def test_an_expired_token_is_refetched_once(wecom_bot):
    await wecom_bot.say(LIAISON, REPORT)
    await wecom_bot.settle()
    fetches = wecom_bot.fake.token_fetches
    wecom_bot.fake.expire_tokens()
    await wecom_bot.say(LIAISON, "帮助")
    await wecom_bot.settle()
    assert wecom_bot.fake.token_fetches == fetches + 1
    assert len(wecom_bot.sent_to(LIAISON)) == 2


async def test_a_notice_that_keeps_failing_is_dead_lettered_and_the_office_alerted(wecom_bot):
    wecom_bot.fake.fail_next(100, errcode=40003, path="/cgi-bin/message/send", skip=0)
    await wecom_bot.say(LIAISON, REPORT)
    await wecom_bot.settle()
    async with wecom_bot.runtime.sessionmaker() as session:
        dead = (await session.scalars(select(Notice).where(Notice.status == "dead"))).all()
        alerts = (await session.scalars(select(Notice).where(Notice.kind == "alert"))).all()
    assert dead, "a non-retryable error must dead-letter at once"
    assert alerts and all("未送达" in a.payload["reply"]["text"] for a in alerts)


async def test_unknown_wecom_user_gets_a_polite_answer_and_no_ticket(wecom_bot):
    await wecom_bot.say("stranger_0001", "你好，我要反映问题")
    await wecom_bot.settle()
    assert await count(wecom_bot, Ticket) == 0
    sent = wecom_bot.sent_to("stranger_0001")
    assert len(sent) == 1


async def test_a_photo_after_a_report_is_attached_and_downloaded(wecom_bot):
    from models.tables import TicketAttachment

    jpeg = b"\xff\xd8\xff\xe0" + b"kpbot-photo" * 100
    wecom_bot.fake.add_media("MEDIA_1", jpeg)
    wecom_bot.fake.add_media("MEDIA_2", b"\xff\xd8\xff\xe0second")
    await wecom_bot.say(LIAISON, REPORT)
    await wecom_bot.post_xml(wecom_bot.builder.image(LIAISON, "MEDIA_1"))
    await wecom_bot.settle()
    wecom_bot.fake.fail_next(1, status=500, path="/cgi-bin/media/get")
    await wecom_bot.post_xml(wecom_bot.builder.image(LIAISON, "MEDIA_2"))
    await wecom_bot.settle()
    async with wecom_bot.runtime.sessionmaker() as session:
        rows = (await session.scalars(select(TicketAttachment).order_by(TicketAttachment.id))).all()
    assert [r.media_id for r in rows] == ["MEDIA_1", "MEDIA_2"]
    first, second = rows
    assert first.fetch_status == "done" and open(first.path, "rb").read() == jpeg
    assert second.fetch_status == "pending" and second.fetch_attempts == 1  # the platform failed once
    wecom_bot.clock.advance(minutes=1)
    await wecom_bot.settle()
    async with wecom_bot.runtime.sessionmaker() as session:
        second = await session.get(TicketAttachment, second.id)
    assert second.fetch_status == "done" and open(second.path, "rb").read() == b"\xff\xd8\xff\xe0second"


async def test_an_expired_media_id_is_marked_failed_not_retried_forever(wecom_bot):
    from models.tables import TicketAttachment

    await wecom_bot.say(LIAISON, REPORT)
    await wecom_bot.post_xml(wecom_bot.builder.image(LIAISON, "GONE"))  # the fake answers 40007
    for _ in range(8):
        await wecom_bot.settle()
        wecom_bot.clock.advance(hours=1)
    async with wecom_bot.runtime.sessionmaker() as session:
        row = await session.scalar(select(TicketAttachment))
    assert row.fetch_status == "failed" and row.path is None and row.fetch_error
