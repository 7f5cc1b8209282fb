"""The WeCom API client against the fake WeCom API server (real HTTP both ways)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest

from bot.channels.wecom_api import (
    SlidingWindowLimiter,
    WeComClient,
    WeComMediaError,
    split_utf8,
)
from bot.message import Button, Reply
from config.settings import Settings
from tests.fakes.wecom_api import FakeWeComAPI

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4


class FakeTime:
    """One clock for the client (`now`), the fake server and the limiter; sleeping moves it."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc) + timedelta(seconds=self.t - 1000.0)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def ft() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def fake(ft):
    async with FakeWeComAPI(clock=ft.monotonic, known_users={"zhangsan", "lisi", "wangwu"}) as server:
        yield server


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


def make_client(fake: FakeWeComAPI, session, ft: FakeTime, **kw) -> WeComClient:
    ids = iter(range(1, 10_000))
    options = dict(
        corp_id=fake.corp_id,
        secret=fake.secret,
        agent_id=fake.agent_id,
        session=session,
        api_base=fake.url,
        now=ft.now,
        new_id=lambda: f"{next(ids):06d}",
        webhook_limiter=SlidingWindowLimiter(20, 60.0, max_wait=120.0, monotonic=ft.monotonic, sleep=ft.sleep),
    )
    options.update(kw)
    return WeComClient(**options)


@pytest.fixture
def client(fake, session, ft) -> WeComClient:
    return make_client(fake, session, ft)


# -- access token ------------------------------------------------------------------------------


async def test_token_is_cached(client, fake):
    for text in ("一", "二", "三"):
        assert (await client.send("zhangsan", Reply(text=text))).ok
    assert fake.token_fetches == 1
    assert [m["text"]["content"] for m in fake.sent_messages()] == ["一", "二", "三"]
    call = fake.calls_to("/cgi-bin/gettoken")[0]
    assert call.query == {"corpid": fake.corp_id, "corpsecret": fake.secret}


async def test_concurrent_callers_share_one_fetch(client, fake):
    results = await asyncio.gather(*(client.send("lisi", Reply(text=f"第{i}条")) for i in range(20)))
    assert all(r.ok for r in results)
    assert fake.token_fetches == 1
    assert len(fake.sent_messages()) == 20


async def test_concurrent_callers_share_one_failed_fetch(client, fake):
    fake.fail_next(1, errcode=-1, path="/cgi-bin/gettoken")
    results = await asyncio.gather(*(client.send("lisi", Reply(text="x")) for _ in range(10)))
    assert all(not r.ok and r.retryable for r in results)
    assert fake.token_fetches == 1
    assert (await client.send("lisi", Reply(text="x"))).ok  # the next call fetches again
    assert fake.token_fetches == 2


async def test_token_refetched_after_its_lifetime(client, fake, ft):
    assert (await client.send("zhangsan", Reply(text="a"))).ok
    ft.advance(7200 - 300 - 1)  # still inside expires_in minus the margin
    assert (await client.send("zhangsan", Reply(text="b"))).ok
    assert fake.token_fetches == 1
    ft.advance(2)
    assert (await client.send("zhangsan", Reply(text="c"))).ok
    assert fake.token_fetches == 2


async def test_short_lived_token_margin(session, ft):
    async with FakeWeComAPI(clock=ft.monotonic, token_lifetime=60) as fake:
        client = make_client(fake, session, ft)
        assert (await client.send("zhangsan", Reply(text="a"))).ok
        ft.advance(29)  # used for max(60 - 300, 60 / 2) = 30 s
        assert (await client.send("zhangsan", Reply(text="b"))).ok
        assert fake.token_fetches == 1
        ft.advance(2)
        assert (await client.send("zhangsan", Reply(text="c"))).ok
        assert fake.token_fetches == 2


async def test_expired_token_exactly_one_refetch(client, fake):
    assert (await client.send("zhangsan", Reply(text="a"))).ok
    fake.expire_tokens()  # the platform expires it while the client still trusts it
    result = await client.send("zhangsan", Reply(text="b"))
    assert result.ok
    assert fake.token_fetches == 2
    answers = [c.answer["errcode"] for c in fake.calls_to("/cgi-bin/message/send")]
    assert answers == [0, 42001, 0]


@pytest.mark.parametrize("errcode", [40014, 42001, 40001])
async def test_token_errors_refetch_and_retry_once(client, fake, errcode):
    assert (await client.send("zhangsan", Reply(text="a"))).ok
    fake.fail_next(1, errcode=errcode, path="/cgi-bin/message/send")
    assert (await client.send("zhangsan", Reply(text="b"))).ok
    assert fake.token_fetches == 2
    assert len(fake.calls_to("/cgi-bin/message/send")) == 3


async def test_token_error_twice_is_a_retryable_failure_without_looping(client, fake):
    fake.fail_next(5, errcode=42001, path="/cgi-bin/message/send")
    result = await client.send("zhangsan", Reply(text="a"))
    assert not result.ok and result.retryable
    assert "42001" in result.error
    assert fake.token_fetches == 2
    assert len(fake.calls_to("/cgi-bin/message/send")) == 2


async def test_wrong_secret_is_not_retryable(fake, session, ft):
    client = make_client(fake, session, ft, secret="wrong")
    result = await client.send("zhangsan", Reply(text="a"))
    assert not result.ok and not result.retryable
    assert "40001" in result.error
    client = make_client(fake, session, ft, corp_id="wrongcorp")
    result = await client.send("zhangsan", Reply(text="a"))
    assert not result.ok and not result.retryable and "40013" in result.error


# -- failures ------------------------------------------------------------------------------------


async def test_rate_limit_45009_is_retryable_with_backoff_hint(session, ft):
    async with FakeWeComAPI(clock=ft.monotonic, send_limit_per_minute=3) as fake:
        client = make_client(fake, session, ft)
        results = [await client.send("zhangsan", Reply(text=str(i))) for i in range(4)]
        assert [r.ok for r in results] == [True, True, True, False]
        assert results[3].retryable and "45009" in results[3].error and "retry after 60 s" in results[3].error
        assert len(fake.calls_to("/cgi-bin/message/send")) == 4  # no hidden retry
        ft.advance(61)
        assert (await client.send("zhangsan", Reply(text="again"))).ok


@pytest.mark.parametrize(
    "failure, retryable, text",
    [
        (dict(errcode=-1), True, "errcode -1"),
        (dict(errcode=45033), True, "45033"),
        (dict(status=500), True, "HTTP 500"),
        (dict(status=502), True, "HTTP 502"),
        (dict(drop=True), True, "network error"),
        (dict(errcode=40056), False, "40056"),
        (dict(errcode=40008), False, "40008"),
        (dict(status=404), False, "HTTP 404"),
    ],
)
async def test_send_failures(client, fake, failure, retryable, text):
    assert (await client.send("zhangsan", Reply(text="warm up"))).ok
    fake.fail_next(1, path="/cgi-bin/message/send", **failure)
    result = await client.send("zhangsan", Reply(text="x"))
    assert not result.ok
    assert result.retryable is retryable
    assert text in result.error
    assert (await client.send("zhangsan", Reply(text="after"))).ok


async def test_unreachable_user_is_not_retryable(client, fake):
    result = await client.send("nobody", Reply(text="x"))
    assert not result.ok and not result.retryable and "81013" in result.error


async def test_network_down_is_retryable(session, ft):
    client = WeComClient(corp_id="c", secret="s", agent_id=1, session=session, api_base="http://127.0.0.1:9", now=ft.now)
    result = await client.send("zhangsan", Reply(text="x"))
    assert not result.ok and result.retryable and "network error" in result.error


async def test_success_reports_platform_ids(client, fake):
    result = await client.send("zhangsan", Reply(text="x"))
    assert result.ok and result.platform_id and result.platform_id.startswith("msg-")


# -- text, markdown, cards ---------------------------------------------------------------------------


def test_split_utf8_properties():
    text = "重点项目问题督办" * 400 + "end"  # 24 bytes per repetition
    pieces = split_utf8(text, 2048)
    assert "".join(pieces) == text
    assert all(len(p.encode("utf-8")) <= 2048 for p in pieces)
    assert all(len(p.encode("utf-8")) >= 2046 for p in pieces[:-1])  # full, up to a 3-byte character
    emoji = "🚧" * 600  # 4 bytes each
    pieces = split_utf8(emoji, 2048)
    assert "".join(pieces) == emoji and all(len(p.encode()) <= 2048 for p in pieces)
    assert split_utf8("", 2048) == [""]
    assert split_utf8("短", 2048) == ["短"]
    mixed = "a" * 2047 + "工" + "b"
    assert split_utf8(mixed, 2048) == ["a" * 2047, "工b"]


def test_split_utf8_prefers_line_breaks():
    lines = "\n".join(f"第{i}行：进度正常，已完成{i}%" for i in range(200))
    pieces = split_utf8(lines, 2048)
    assert "".join(pieces) == lines
    assert all(p.endswith("\n") for p in pieces[:-1])


async def test_long_chinese_text_split_into_several_sends(client, fake):
    text = "".join(f"{i:03d}号问题：施工便道被占用，需协调交警部门处理。\n" for i in range(150))
    assert len(text.encode("utf-8")) > 3 * 2048
    result = await client.send("zhangsan", Reply(text=text))
    assert result.ok
    sent = fake.sent_messages()
    assert len(sent) == len(split_utf8(text)) >= 4
    contents = [m["text"]["content"] for m in sent]
    assert "".join(contents) == text
    assert all(len(c.encode("utf-8")) <= 2048 for c in contents)
    assert all(m["enable_duplicate_check"] == 1 and m["duplicate_check_interval"] == 1800 for m in sent)
    assert result.platform_id.count(",") == len(sent) - 1


async def test_short_text_has_no_duplicate_check(client, fake):
    await client.send("zhangsan", Reply(text="您好"))
    [m] = fake.sent_messages()
    assert m == {"touser": "zhangsan", "agentid": fake.agent_id, "msgtype": "text", "text": {"content": "您好"}}


async def test_markdown_and_title(client, fake):
    await client.send("zhangsan", Reply(text="**逾期**：1 件", markdown=True, title="每日汇总"))
    await client.send("zhangsan", Reply(text="请及时处理", title="提醒"))
    md, text = fake.sent_messages()
    assert md["msgtype"] == "markdown" and md["markdown"]["content"] == "**每日汇总**\n\n**逾期**：1 件"
    assert text["msgtype"] == "text" and text["text"]["content"] == "【提醒】\n请及时处理"


TASK_ID = re.compile(r"^[0-9A-Za-z_\-@]{1,128}$")


async def test_template_card_payload_shape(client, fake):
    reply = Reply(
        text="施工便道被占用，请于 3 日内办结。",
        title="新问题 KP-2026-0001",
        buttons=(Button("ack:KP-2026-0001", "签收"), Button("return:KP-2026-0001", "退回")),
    )
    assert (await client.send("wangwu", reply)).ok
    assert (await client.send("wangwu", reply)).ok
    first, second = fake.sent_messages()
    assert first["msgtype"] == "template_card"
    assert first["touser"] == "wangwu" and first["agentid"] == fake.agent_id
    card = first["template_card"]
    assert card["card_type"] == "button_interaction"
    assert card["main_title"] == {"title": "新问题 KP-2026-0001"}
    assert card["sub_title_text"] == "施工便道被占用，请于 3 日内办结。"
    assert card["button_list"] == [
        {"text": "签收", "style": 1, "key": "ack:KP-2026-0001"},
        {"text": "退回", "style": 1, "key": "return:KP-2026-0001"},
    ]
    assert TASK_ID.match(card["task_id"])
    assert card["task_id"] != second["template_card"]["task_id"]


async def test_task_id_is_sanitised_and_bounded(fake, session, ft):
    client = make_client(fake, session, ft, new_id=lambda: "坏/id?" + "x" * 300)
    assert (await client.send("wangwu", Reply(text="t", buttons=(Button("k", "好"),)))).ok
    task_id = fake.sent_messages()[0]["template_card"]["task_id"]
    assert TASK_ID.match(task_id) and len(task_id) == 128


async def test_more_than_six_buttons_make_several_cards(client, fake):
    buttons = tuple(Button(f"pick:{i}", f"单位{i}") for i in range(8))
    assert (await client.send("wangwu", Reply(text="请选择承办单位", buttons=buttons))).ok
    cards = [m["template_card"] for m in fake.sent_messages()]
    assert [len(c["button_list"]) for c in cards] == [6, 2]
    assert [b["key"] for c in cards for b in c["button_list"]] == [b.key for b in buttons]


async def test_long_card_text_goes_first_as_text(client, fake):
    text = "问题描述：" + "现场土方外运受阻，" * 30
    reply = Reply(text=text, title="KP-2026-0002", buttons=(Button("ack:2", "签收"),))
    assert (await client.send("wangwu", reply)).ok
    first, card = fake.sent_messages()
    assert first["msgtype"] == "text" and first["text"]["content"] == text
    assert card["msgtype"] == "template_card" and "sub_title_text" not in card["template_card"]
    assert card["template_card"]["main_title"]["title"] == "KP-2026-0002"


@pytest.mark.parametrize(
    "buttons",
    [(Button("same", "a"), Button("same", "b")), (Button("", "a"),), (Button("k" * 1025, "a"),)],
    ids=["duplicate", "empty", "too-long"],
)
async def test_bad_buttons_are_not_retryable(client, fake, buttons):
    result = await client.send("wangwu", Reply(text="x", buttons=buttons))
    assert not result.ok and not result.retryable
    assert fake.calls_to("/cgi-bin/message/send") == []


async def test_missing_agent_id_is_not_retryable(fake, session, ft):
    client = make_client(fake, session, ft, agent_id=None)
    result = await client.send("wangwu", Reply(text="x"))
    assert not result.ok and not result.retryable and "KPBOT_WECOM_AGENT_ID" in result.error
    assert fake.calls == []


async def test_empty_reply(client, fake):
    result = await client.send("wangwu", Reply(text=""))
    assert not result.ok and not result.retryable


async def test_failure_after_first_part(client, fake):
    # The first part goes through, the second fails: the error says how far it got.
    assert (await client.send("zhangsan", Reply(text="warm up"))).ok
    fake.fail_next(1, errcode=-1, path="/cgi-bin/message/send", skip=1)
    result = await client.send("zhangsan", Reply(text="长" * 2000))  # 6000 bytes: three parts
    assert not result.ok and result.retryable
    assert "after 1 of 3 messages were sent" in result.error
    assert len(fake.sent_messages()) == 2  # warm-up + first part; the third was not attempted


# -- files and media -------------------------------------------------------------------------------------


async def test_file_is_uploaded_then_sent(client, fake, tmp_path):
    ledger = tmp_path / "台账-2026-03.xlsx"
    ledger.write_bytes(b"PK\x03\x04" + b"\x00" * 500)
    result = await client.send("zhangsan", Reply(text="本月台账见附件", file_path=str(ledger)))
    assert result.ok
    [upload] = fake.calls_to("/cgi-bin/media/upload")
    assert upload.query["type"] == "file"
    assert upload.upload["filename"] == "台账-2026-03.xlsx" and upload.upload["size"] == 504
    text, file_msg = fake.sent_messages()
    assert text["text"]["content"] == "本月台账见附件"
    assert file_msg["msgtype"] == "file" and file_msg["file"]["media_id"] == upload.answer["media_id"]


async def test_missing_file_is_not_retryable(client, fake, tmp_path):
    result = await client.send("zhangsan", Reply(text="", file_path=str(tmp_path / "gone.xlsx")))
    assert not result.ok and not result.retryable and "cannot read" in result.error


async def test_download_media(client, fake, tmp_path):
    fake.add_media("MEDIA_1", JPEG, "image/jpeg")
    path = await client.download_media("MEDIA_1", tmp_path / "media")
    assert path.parent == tmp_path / "media"
    assert path.suffix == ".jpg"
    assert path.read_bytes() == JPEG
    [call] = fake.calls_to("/cgi-bin/media/get")
    assert call.query["media_id"] == "MEDIA_1"


async def test_download_voice_suffix_from_disposition(client, fake, tmp_path):
    fake.add_media("VOICE_1", b"#!AMR\n" + b"\x00" * 100, "audio/amr", filename="VOICE_1.amr")
    path = await client.download_media("VOICE_1", tmp_path)
    assert path.name == "VOICE_1.amr"


async def test_download_media_json_error_is_an_error(client, fake, tmp_path):
    with pytest.raises(WeComMediaError) as info:
        await client.download_media("NO_SUCH_MEDIA", tmp_path)
    assert info.value.errcode == 40007 and not info.value.retryable
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/octet-stream"])
async def test_download_media_json_body_under_any_content_type(client, fake, tmp_path, content_type):
    fake.add_media("M", b'{"errcode":45009,"errmsg":"api freq out of limit"}', content_type)
    with pytest.raises(WeComMediaError) as info:
        await client.download_media("M", tmp_path)
    assert info.value.errcode == 45009 and info.value.retryable
    assert list(tmp_path.iterdir()) == []


async def test_download_media_refetches_an_expired_token(client, fake, tmp_path):
    fake.add_media("MEDIA_2", PNG, "image/png", filename="MEDIA_2.png")
    assert (await client.send("zhangsan", Reply(text="a"))).ok
    fake.expire_tokens()
    path = await client.download_media("MEDIA_2", tmp_path)
    assert path.read_bytes() == PNG and path.suffix == ".png"
    assert fake.token_fetches == 2


async def test_download_media_id_cannot_escape_the_folder(client, fake, tmp_path):
    fake.add_media("../../etc/passwd", JPEG, "image/jpeg", filename="../../x.jpg")
    dest = tmp_path / "inbox"
    path = await client.download_media("../../etc/passwd", dest)
    assert path.parent == dest and path.read_bytes() == JPEG


async def test_download_media_network_failure_is_retryable(client, fake, tmp_path):
    fake.add_media("M3", JPEG)
    fake.fail_next(1, status=503, path="/cgi-bin/media/get")
    with pytest.raises(WeComMediaError) as info:
        await client.download_media("M3", tmp_path)
    assert info.value.retryable


async def test_download_media_too_large(fake, session, ft, tmp_path):
    client = make_client(fake, session, ft, max_media_bytes=1000)
    fake.add_media("BIG", JPEG * 2)
    with pytest.raises(WeComMediaError) as info:
        await client.download_media("BIG", tmp_path)
    assert not info.value.retryable


# -- group robot webhook ---------------------------------------------------------------------------------


async def test_webhook_markdown_and_image(client, fake, tmp_path):
    image = tmp_path / "chart.png"
    image.write_bytes(PNG)
    reply = Reply(text="今日新增问题 3 件，逾期 1 件。", title="每日汇总")
    result = await client.send_group_webhook(fake.webhook_url("office-1"), reply, image_path=image)
    assert result.ok
    md, img = fake.webhook_messages("office-1")
    assert md == {"msgtype": "markdown", "markdown": {"content": "**每日汇总**\n\n今日新增问题 3 件，逾期 1 件。"}}
    assert img["msgtype"] == "image"
    assert base64.b64decode(img["image"]["base64"]) == PNG
    assert img["image"]["md5"] == hashlib.md5(PNG).hexdigest()
    assert fake.token_fetches == 0  # a webhook needs no access token


async def test_webhook_long_markdown_split_at_4096_bytes(client, fake):
    text = "\n".join(f"- KP-2026-{i:04d} 土方外运受阻，已逾期 {i} 天" for i in range(300))
    assert (await client.send_group_webhook(fake.webhook_url(), Reply(text=text))).ok
    contents = [m["markdown"]["content"] for m in fake.webhook_messages()]
    assert len(contents) > 1 and "".join(contents) == text
    assert all(len(c.encode("utf-8")) <= 4096 for c in contents)


async def test_webhook_file(client, fake, tmp_path):
    ledger = tmp_path / "ledger.xlsx"
    ledger.write_bytes(b"PK\x03\x04" + b"1" * 100)
    assert (await client.send_group_webhook(fake.webhook_url("k9"), Reply(text="台账", file_path=str(ledger)))).ok
    [upload] = fake.calls_to("/cgi-bin/webhook/upload_media")
    assert upload.query == {"key": "k9", "type": "file"}
    md, file_msg = fake.webhook_messages("k9")
    assert file_msg == {"msgtype": "file", "file": {"media_id": upload.answer["media_id"]}}


@pytest.mark.parametrize("content", [b"GIF89a" + b"\x00" * 10, b"", b"\xff\xd8\xff" + b"\x00" * (2 * 1024 * 1024)])
async def test_webhook_bad_image_is_not_retryable(client, fake, tmp_path, content):
    image = tmp_path / "x.img"
    image.write_bytes(content)
    result = await client.send_group_webhook(fake.webhook_url(), Reply(text="x"), image_path=image)
    assert not result.ok and not result.retryable
    assert fake.webhook_messages() == []


async def test_webhook_limiter_keeps_20_per_minute(client, fake, ft):
    url = fake.webhook_url("busy")
    results = [await client.send_group_webhook(url, Reply(text=f"通知{i}")) for i in range(45)]
    assert all(r.ok for r in results)
    assert len(fake.webhook_messages("busy")) == 45
    assert not [c for c in fake.calls_to("/cgi-bin/webhook/send") if c.answer["errcode"] != 0]  # never a 45009
    # Bursts of 20, then a wait for the window to pass (the clock only moves by sleeping).
    assert ft.sleeps == [60.0, 60.0]
    # Another robot has its own budget.
    before = len(ft.sleeps)
    assert (await client.send_group_webhook(fake.webhook_url("quiet"), Reply(text="x"))).ok
    assert len(ft.sleeps) == before


async def test_webhook_limiter_refuses_long_waits(fake, session, ft):
    limiter = SlidingWindowLimiter(20, 60.0, max_wait=5.0, monotonic=ft.monotonic, sleep=ft.sleep)
    client = make_client(fake, session, ft, webhook_limiter=limiter)
    url = fake.webhook_url("k")
    for i in range(20):
        assert (await client.send_group_webhook(url, Reply(text=str(i)))).ok
        ft.advance(1)
    result = await client.send_group_webhook(url, Reply(text="21st"))
    assert not result.ok and result.retryable and "retry after 40 s" in result.error
    assert len(fake.calls_to("/cgi-bin/webhook/send")) == 20  # the platform was not asked
    ft.advance(40)
    assert (await client.send_group_webhook(url, Reply(text="21st"))).ok


async def test_webhook_platform_45009_is_retryable(session, ft):
    async with FakeWeComAPI(clock=ft.monotonic, webhook_limit_per_minute=2) as fake:
        client = make_client(fake, session, ft)
        url = fake.webhook_url("k")
        results = [await client.send_group_webhook(url, Reply(text=str(i))) for i in range(3)]
        assert [r.ok for r in results] == [True, True, False]
        assert results[2].retryable and "45009" in results[2].error


async def test_webhook_key_never_appears_in_errors(session, ft):
    secret_key = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
    async with FakeWeComAPI(clock=ft.monotonic, webhook_limit_per_minute=1) as fake:
        client = make_client(fake, session, ft)
        url = fake.webhook_url(secret_key)
        assert (await client.send_group_webhook(url, Reply(text="1"))).ok
        errors = [(await client.send_group_webhook(url, Reply(text="2"))).error]
        fake.fail_next(1, drop=True, path="/cgi-bin/webhook/send")
        ft.advance(61)
        errors.append((await client.send_group_webhook(url, Reply(text="3"))).error)
        assert all(e and secret_key not in e for e in errors), errors


def test_scrub_hides_secrets_in_exception_texts():
    from bot.channels.wecom_api import _scrub

    text = "url='https://q/cgi-bin/gettoken?corpid=a&corpsecret=SEC&x=1' /webhook/send?key=abc access_token=TOK"
    assert _scrub(text) == "url='https://q/cgi-bin/gettoken?corpid=a&corpsecret=***&x=1' /webhook/send?key=*** access_token=***"


async def test_webhook_invalid_key_is_not_retryable(session, ft):
    async with FakeWeComAPI(clock=ft.monotonic, webhook_keys={"good"}) as fake:
        client = make_client(fake, session, ft)
        result = await client.send_group_webhook(fake.webhook_url("bad"), Reply(text="x"))
        assert not result.ok and not result.retryable and "93000" in result.error


async def test_limiter_concurrent_reservations(ft):
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:  # time stands still while all 50 reserve
        sleeps.append(seconds)
        await asyncio.sleep(0)

    limiter = SlidingWindowLimiter(20, 60.0, max_wait=1000.0, monotonic=ft.monotonic, sleep=sleep)
    outcomes = await asyncio.gather(*(limiter.acquire("k") for _ in range(50)))
    assert outcomes == [None] * 50
    # 20 at once, 20 a minute later, 10 two minutes later: no window ever holds more than 20.
    assert sorted(sleeps) == [60.0] * 20 + [120.0] * 10
    limited = SlidingWindowLimiter(20, 60.0, max_wait=90.0, monotonic=ft.monotonic, sleep=sleep)
    outcomes = await asyncio.gather(*(limited.acquire("k") for _ in range(50)))
    assert outcomes.count(None) == 40 and all(o == pytest.approx(120.0) for o in outcomes if o is not None)


async def test_limiter_window_slides():
    t = [0.0]
    limiter = SlidingWindowLimiter(2, 10.0, max_wait=0.0, monotonic=lambda: t[0])
    assert await limiter.acquire("k") is None
    t[0] = 4.0
    assert await limiter.acquire("k") is None
    t[0] = 6.0
    assert await limiter.acquire("k") == pytest.approx(4.0)
    t[0] = 10.0
    assert await limiter.acquire("k") is None
    assert await limiter.acquire("k") == pytest.approx(4.0)


def test_from_settings():
    settings = Settings(wecom_corp_id="ww1", wecom_secret="s", wecom_agent_id=1000005, wecom_api_base="http://fake/")
    client = WeComClient.from_settings(settings, session=object())  # type: ignore[arg-type]
    assert (client.corp_id, client.secret, client.agent_id, client.api_base) == ("ww1", "s", 1000005, "http://fake")
