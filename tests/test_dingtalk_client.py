"""DingTalkClient against the fake DingTalk API server (real HTTP both ways)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import aiohttp
import pytest

from bot.channels.dingtalk_api import DingTalkClient, SlidingWindowLimiter, button_url, DingTalkError
from bot.message import Button, Reply
from tests.fakes.dingtalk_api import FakeDingTalkAPI

BATCH = "/v1.0/robot/oToMessages/batchSend"
TOKEN = "/v1.0/oauth2/accessToken"
WORK = "/topapi/message/corpconversation/asyncsend_v2"


class Clock:
    def __init__(self) -> None:
        self.t = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.t

    def advance(self, **kwargs: float) -> None:
        self.t += timedelta(**kwargs)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def api(clock):
    fake = FakeDingTalkAPI(now=clock)
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


def make_client(api, session, clock, **kwargs) -> DingTalkClient:
    return DingTalkClient(
        api.app_key, api.app_secret, api.robot_code, api.base_url, api.base_url, session, clock, **kwargs
    )


@pytest.fixture
def client(api, session, clock) -> DingTalkClient:
    return make_client(api, session, clock, agent_id=api.agent_id)


# -- tokens ----------------------------------------------------------------------


async def test_token_is_cached_until_it_expires(api, client, clock):
    for _ in range(3):
        assert (await client.send("u1", Reply("你好"))).ok
    assert len(api.calls_to(TOKEN)) == 1
    clock.advance(seconds=7200)  # past the token's life (and our margin)
    assert (await client.send("u1", Reply("你好"))).ok
    assert len(api.calls_to(TOKEN)) == 2
    tokens = [c.headers["x-acs-dingtalk-access-token"] for c in api.calls_to(BATCH)]
    assert tokens[0] == tokens[2] != tokens[3]


async def test_token_refreshed_before_the_platform_expires_it(api, client, clock):
    await client.send("u1", Reply("a"))
    clock.advance(seconds=7200 - 200)  # inside our 5-minute safety margin
    assert (await client.send("u1", Reply("b"))).ok
    assert len(api.calls_to(TOKEN)) == 2
    assert len(api.calls_to(BATCH)) == 2  # no InvalidAuthentication answer was needed


async def test_concurrent_callers_share_one_refresh(api, client):
    results = await asyncio.gather(*(client.send(f"u{i}", Reply("hi")) for i in range(10)))
    assert all(r.ok for r in results)
    assert len(api.calls_to(TOKEN)) == 1


async def test_invalid_token_answer_causes_exactly_one_refetch(api, client):
    await client.send("u1", Reply("a"))
    api.revoke_tokens()
    result = await client.send("u1", Reply("b"))
    assert result.ok
    assert len(api.calls_to(TOKEN)) == 2
    assert len(api.calls_to(BATCH)) == 3  # ok, refused, retried ok


async def test_persistent_invalid_token_gives_up_after_one_refetch(api, client):
    api.fail_next(BATCH, 400, {"code": "InvalidAuthentication", "message": "不合法的access_token"}, times=5)
    result = await client.send("u1", Reply("a"))
    assert not result.ok and result.retryable
    assert "InvalidAuthentication" in result.error
    assert len(api.calls_to(TOKEN)) == 2
    assert len(api.calls_to(BATCH)) == 2


async def test_concurrent_invalid_token_answers_refetch_once(api, client):
    await client.send("u0", Reply("warm up"))
    api.revoke_tokens()
    results = await asyncio.gather(*(client.send(f"u{i}", Reply("hi")) for i in range(8)))
    assert all(r.ok for r in results)
    assert len(api.calls_to(TOKEN)) == 2


async def test_wrong_app_secret_is_not_retryable(api, session, clock):
    client = DingTalkClient(api.app_key, "wrong", api.robot_code, api.base_url, api.base_url, session, clock)
    result = await client.send("u1", Reply("a"))
    assert not result.ok and not result.retryable
    assert api.calls_to(BATCH) == []


# -- 1:1 messages ------------------------------------------------------------------


async def test_plain_text_goes_out_as_sample_text_with_msg_param_as_string(api, client):
    result = await client.send("staff-1", Reply("您的问题已登记，编号 KP-2026-0001"))
    assert result.ok and result.platform_id
    [call] = api.calls_to(BATCH)
    assert isinstance(call.body["msgParam"], str)
    assert json.loads(call.body["msgParam"]) == {"content": "您的问题已登记，编号 KP-2026-0001"}
    assert call.body["msgKey"] == "sampleText"
    assert call.body["robotCode"] == api.robot_code
    assert call.body["userIds"] == ["staff-1"]


async def test_markdown_and_titled_replies(api, client):
    await client.send("u", Reply("**加粗**", markdown=True))
    await client.send("u", Reply("正文", title="新交办"))
    md, titled = api.robot_messages
    assert md["msgKey"] == "sampleMarkdown" and md["msgParam"]["text"] == "**加粗**"
    assert md["msgParam"]["title"] == "**加粗**"
    assert titled["msgKey"] == "sampleMarkdown" and titled["msgParam"]["title"] == "新交办"


async def test_buttons_become_an_action_card_whose_clicks_send_the_key(api, client):
    reply = Reply(
        "KP-2026-0001 道路施工受阻",
        title="新交办问题",
        buttons=(Button("ack:KP-2026-0001", "签收"), Button("return:KP-2026-0001", "退回")),
    )
    assert (await client.send("unit-1", reply)).ok
    [msg] = api.robot_messages
    assert msg["msgKey"] == "sampleActionCard2"
    param = msg["msgParam"]
    assert param["title"] == "新交办问题"
    assert (param["actionTitle1"], param["actionTitle2"]) == ("签收", "退回")
    for n, key in ((1, "ack:KP-2026-0001"), (2, "return:KP-2026-0001")):
        url = param[f"actionURL{n}"]
        assert url.startswith("dtmd://dingtalkclient/sendMessage?content=")
        assert unquote(url.split("content=", 1)[1]) == key


async def test_single_button_and_overflow_buttons(api, client):
    await client.send("u", Reply("只一个", buttons=(Button("ok:1", "满意"),)))
    many = tuple(Button(f"pick:{i}", f"选项{i}") for i in range(7))
    await client.send("u", Reply("很多", buttons=many))
    single, card = api.robot_messages
    assert single["msgKey"] == "sampleActionCard"
    assert single["msgParam"]["singleTitle"] == "满意"
    assert single["msgParam"]["singleURL"] == button_url("ok:1")
    assert card["msgKey"] == "sampleActionCard5"
    assert button_url("pick:5") in card["msgParam"]["text"]
    assert button_url("pick:6") in card["msgParam"]["text"]


async def test_batch_of_45_users_is_three_calls(api, client):
    users = [f"user{i:02d}" for i in range(45)]
    results = await client.send_batch(users, Reply("今日督办提醒"))
    assert set(results) == set(users) and all(r.ok for r in results.values())
    sizes = [len(c.body["userIds"]) for c in api.calls_to(BATCH)]
    assert sizes == [20, 20, 5]
    assert sorted(m["user"] for m in api.robot_messages) == users


async def test_batch_reports_invalid_and_flow_controlled_users(api, client):
    api.invalid_users.add("gone")
    api.flow_controlled_users.add("busy")
    results = await client.send_batch(["ok", "gone", "busy", "ok"], Reply("x"))
    assert results["ok"].ok
    assert not results["gone"].ok and not results["gone"].retryable
    assert not results["busy"].ok and results["busy"].retryable
    assert [len(c.body["userIds"]) for c in api.calls_to(BATCH)] == [3]


@pytest.mark.parametrize(
    ("status", "body", "retryable"),
    [
        (403, {"code": "Forbidden.AccessDenied.QpsLimitForApi", "message": "限流"}, True),
        (403, {"code": "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi", "message": "限流"}, True),
        (429, {"code": "Throttling.Api", "message": "Request was denied due to api flow control."}, True),
        (500, {"code": "InternalError", "message": "系统繁忙"}, True),
        (503, {"code": "ServiceUnavailable", "message": "busy"}, True),
        (400, {"code": "invalidParameter.userIds", "message": "bad"}, False),
        (403, {"code": "Forbidden.AccessDenied.AccessTokenPermissionDenied", "message": "没有权限"}, False),
    ],
)
async def test_error_answers_are_classified(api, client, status, body, retryable):
    api.fail_next(BATCH, status, body)
    result = await client.send("u1", Reply("x"))
    assert not result.ok
    assert result.retryable is retryable
    assert body["code"] in result.error


async def test_network_error_is_retryable(api, client):
    api.drop_next(BATCH)
    result = await client.send("u1", Reply("x"))
    assert not result.ok and result.retryable
    assert (await client.send("u1", Reply("x"))).ok


async def test_unreachable_server_is_retryable(session, clock):
    client = DingTalkClient("k", "s", "r", "http://127.0.0.1:9", "http://127.0.0.1:9", session, clock, timeout=2)
    result = await client.send("u1", Reply("x"))
    assert not result.ok and result.retryable


# -- session webhooks --------------------------------------------------------------


async def test_session_webhook_used_while_valid_then_the_api(api, client, clock):
    expires = clock() + timedelta(minutes=90)
    hook = api.session_webhook(expires)
    assert (await client.send("u1", Reply("收到"), hook, expires)).ok
    [sent] = api.sessions[hook.split("session=")[1]].messages
    assert sent == {"msgtype": "text", "text": {"content": "收到"}}
    assert api.calls_to(BATCH) == [] and api.calls_to(TOKEN) == []

    clock.advance(minutes=91)
    assert (await client.send("u1", Reply("过期后"), hook, expires)).ok
    assert len(api.calls_to("/robot/sendBySession")) == 1  # not tried once expired
    assert [m["msgParam"]["content"] for m in api.robot_messages] == ["过期后"]


async def test_refused_session_webhook_falls_back_to_the_api(api, client, clock):
    # our clock says valid, DingTalk says expired (clock skew): the API delivers it
    hook = api.session_webhook(clock() - timedelta(seconds=1))
    assert (await client.send("u1", Reply("回复"), hook, clock() + timedelta(minutes=5))).ok
    assert len(api.calls_to("/robot/sendBySession")) == 1
    assert [m["user"] for m in api.robot_messages] == ["u1"]


async def test_session_webhook_renders_cards(api, client, clock):
    expires = clock() + timedelta(minutes=10)
    hook = api.session_webhook(expires)
    reply = Reply("请确认", buttons=(Button("ok:1", "满意"), Button("nok:1", "不满意")))
    assert (await client.send("u1", reply, hook, expires)).ok
    [sent] = api.sessions[hook.split("session=")[1]].messages
    assert sent["msgtype"] == "actionCard"
    assert [b["actionURL"] for b in sent["actionCard"]["btns"]] == [button_url("ok:1"), button_url("nok:1")]


async def test_session_webhook_network_error_is_retryable_without_a_second_copy(api, client, clock):
    expires = clock() + timedelta(minutes=10)
    hook = api.session_webhook(expires)
    api.drop_next("/robot/sendBySession")
    result = await client.send("u1", Reply("x"), hook, expires)
    assert not result.ok and result.retryable
    assert api.calls_to(BATCH) == []


# -- group, files, work notices -------------------------------------------------------


async def test_group_message(api, client):
    result = await client.send_group("cidGroup==", Reply("**周报**", markdown=True))
    assert result.ok
    [msg] = api.group_messages
    assert msg["conversation"] == "cidGroup==" and msg["msgKey"] == "sampleMarkdown"


async def test_reply_with_file_uploads_and_sends_it(api, client, tmp_path):
    ledger = tmp_path / "台账.xlsx"
    ledger.write_bytes(b"PK\x03\x04 fake xlsx")
    assert (await client.send("office-1", Reply("台账见附件", file_path=str(ledger)))).ok
    text, file = api.robot_messages
    assert text["msgKey"] == "sampleText"
    assert file["msgKey"] == "sampleFile"
    assert file["msgParam"]["fileName"] == "台账.xlsx" and file["msgParam"]["fileType"] == "xlsx"
    assert api.uploads[file["msgParam"]["mediaId"]] == ("台账.xlsx", b"PK\x03\x04 fake xlsx")


async def test_download_file(api, client, tmp_path):
    api.add_file("dl-code-1", b"\xff\xd8\xff\xe0 jpeg bytes", "image/jpeg")
    path = await client.download_file("dl-code-1", tmp_path / "media")
    assert path.read_bytes() == b"\xff\xd8\xff\xe0 jpeg bytes"
    assert path.suffix in (".jpg", ".jpeg") and path.parent == tmp_path / "media"
    assert [p.name for p in (tmp_path / "media").iterdir()] == [path.name]  # no leftovers
    with pytest.raises(DingTalkError) as info:
        await client.download_file("unknown-code", tmp_path)
    assert not info.value.retryable


async def test_work_notice(api, client):
    users = [f"u{i}" for i in range(150)]
    result = await client.send_work_notice(users, Reply("逾期提醒", title="督办"))
    assert result.ok and result.platform_id
    calls = api.calls_to(WORK)
    assert [len(c.body["userid_list"].split(",")) for c in calls] == [100, 50]
    assert all(c.query["access_token"] for c in calls)
    assert api.work_notices[0]["msg"]["msgtype"] == "markdown"


async def test_work_notice_errors(api, client, session, clock):
    api.fail_next(WORK, 200, {"errcode": 90018, "errmsg": "频率超限"})
    result = await client.send_work_notice(["u1"], Reply("x"))
    assert not result.ok and result.retryable
    api.fail_next(WORK, 200, {"errcode": 40014, "errmsg": "不合法的access_token"})
    assert (await client.send_work_notice(["u1"], Reply("x"))).ok  # one refetch
    no_agent = make_client(api, session, clock)
    result = await no_agent.send_work_notice(["u1"], Reply("x"))
    assert not result.ok and not result.retryable


# -- group custom robot webhook --------------------------------------------------------


def test_signed_url_matches_a_hand_computed_sign():
    from bot.channels.dingtalk_api import signed_webhook_url

    ts = 1700000000005  # its sign has both "+" and "/"
    url = signed_webhook_url("https://oapi.dingtalk.com/robot/send?access_token=abc", "SECxyz", ts)
    mac = hmac.new(b"SECxyz", f"{ts}\nSECxyz".encode(), hashlib.sha256).digest()
    expected = base64.b64encode(mac).decode()
    assert expected == "/CBhI3DFdiNvci8/s+4clUGp7ded8OWhbqQm0DZTDMY="
    query = parse_qs(urlsplit(url).query)  # "+" left raw would decode as a space
    assert query["sign"] == [expected]
    assert query["timestamp"] == [str(ts)] and query["access_token"] == ["abc"]


class FakeTime:
    """A monotonic clock and a sleep that advances it (and the wall clock) instantly."""

    def __init__(self, clock: Clock) -> None:
        self.value = 1000.0
        self.clock = clock
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.value

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.value += seconds
        self.clock.advance(seconds=seconds)


async def test_group_webhook_is_signed_and_limited_to_20_a_minute(api, session, clock):
    fake_time = FakeTime(clock)
    limiter = SlidingWindowLimiter(monotonic=fake_time.monotonic, sleep=fake_time.sleep)
    client = make_client(api, session, clock, webhook_limiter=limiter)
    url = api.custom_robot(secret="SECabc+/=")
    results = [await client.send_group_webhook(url, "SECabc+/=", Reply(f"第{i}条")) for i in range(25)]
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    # the first 20 go at once; the 21st waits until the first leaves the minute window
    assert fake_time.sleeps == [pytest.approx(60.0)]
    [robot] = api.robots.values()
    assert len(robot.messages) == 25  # the fake would have answered 130101 past 20 a minute


async def test_group_webhook_limit_without_waiting_is_a_retryable_failure(api, session, clock):
    fake_time = FakeTime(clock)
    limiter = SlidingWindowLimiter(monotonic=fake_time.monotonic, sleep=fake_time.sleep)
    client = make_client(api, session, clock, webhook_limiter=limiter, webhook_max_wait=0)
    url = api.custom_robot()
    results = [await client.send_group_webhook(url, "SECfake", Reply("x")) for _ in range(21)]
    assert all(r.ok for r in results[:20])
    assert not results[20].ok and results[20].retryable
    assert fake_time.sleeps == []


async def test_group_webhook_platform_errors(api, client):
    url = api.custom_robot(secret="SECright")
    wrong = await client.send_group_webhook(url, "SECwrong", Reply("x"))
    assert not wrong.ok and not wrong.retryable and "310000" in wrong.error
    api.fail_next("/robot/send", 200, {"errcode": 130101, "errmsg": "send too fast"})
    throttled = await client.send_group_webhook(url, "SECright", Reply("x"))
    assert not throttled.ok and throttled.retryable
    card = await client.send_group_webhook(url, "SECright", Reply("今日汇总", title="日报"))
    assert card.ok
    [robot] = api.robots.values()
    assert robot.messages[-1]["msgtype"] == "markdown"


# -- wiring ------------------------------------------------------------------------------


async def test_deliver_reads_the_outbox_payload(api, client, clock):
    expires = clock() + timedelta(minutes=30)
    hook = api.session_webhook(expires)
    reply = Reply("已签收", buttons=(Button("feedback:KP-1", "反馈"),))
    payload = {"reply": reply.to_dict(), "reply_webhook": hook, "reply_webhook_expires_at": expires.isoformat()}
    assert (await client.deliver("staff-9", json.loads(json.dumps(payload)))).ok
    assert len(api.sessions[hook.split("session=")[1]].messages) == 1
    assert (await client.deliver("staff-9", {"reply": Reply("无 webhook").to_dict()})).ok
    assert [m["user"] for m in api.robot_messages] == ["staff-9"]
    broken = await client.deliver("staff-9", {"nothing": 1})
    assert not broken.ok and not broken.retryable


async def test_from_settings(api, session, clock):
    from config.settings import Settings

    settings = Settings(
        dingtalk_app_key=api.app_key,
        dingtalk_app_secret=api.app_secret,
        dingtalk_robot_code=api.robot_code,
        dingtalk_api_base=api.base_url,
        dingtalk_oapi_base=api.base_url,
    )
    client = DingTalkClient.from_settings(settings, session=session, now=clock)
    assert (await client.send("u1", Reply("hi"))).ok
    assert api.robot_messages[0]["user"] == "u1"
