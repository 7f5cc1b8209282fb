"""DingTalk Stream mode against the fake gateway (real HTTP and websocket)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from bot.channels.dingtalk_stream import ROBOT_TOPIC, DingTalkStream
from bot.message import IncomingMessage, MessageKind
from tests.fakes.dingtalk_gateway import FakeDingTalkGateway

NOW = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


def robot_message(msg_id: str, text: str = "你好", **overrides: object) -> dict:
    body = {
        "conversationId": "cidP2P==",
        "chatbotCorpId": "dingcorp",
        "chatbotUserId": "$:LWCP_v1:$bot",
        "msgId": msg_id,
        "senderNick": "李四",
        "isAdmin": False,
        "senderStaffId": "staff-002",
        "sessionWebhookExpiredTime": NOW_MS + 3600_000,
        "createAt": NOW_MS,
        "senderCorpId": "dingcorp",
        "conversationType": "1",
        "senderId": "$:LWCP_v1:$sender",
        "sessionWebhook": "https://oapi.dingtalk.com/robot/sendBySession?session=s1",
        "text": {"content": text},
        "robotCode": "dingrobot",
        "msgtype": "text",
    }
    body.update(overrides)
    return body


class Store:
    """Records stored messages; dedupes on message_id; can be held or made to fail."""

    def __init__(self) -> None:
        self.messages: list[IncomingMessage] = []
        self.committed: list[str] = []
        self.hold: dict[str, asyncio.Event] = {}
        self.fail: set[str] = set()

    async def __call__(self, message: IncomingMessage) -> bool:
        self.messages.append(message)
        if message.message_id in self.hold:
            await self.hold[message.message_id].wait()
        if message.message_id in self.fail:
            raise RuntimeError("database is down")
        fresh = message.message_id not in self.committed
        self.committed.append(message.message_id)
        return fresh


async def eventually(predicate, timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout)


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


@pytest.fixture
async def gateway():
    gw = FakeDingTalkGateway()
    await gw.start()
    yield gw
    await gw.close()


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def make_stream(gateway, session, store, sleeps):
    streams: list[DingTalkStream] = []

    async def make(**kwargs) -> DingTalkStream:
        options = dict(api_base=gateway.base_url, sleep=sleeps, random=lambda: 0.5)
        options.update(kwargs)
        stream = DingTalkStream(gateway.client_id, gateway.client_secret, store, session, lambda: NOW, **options)
        streams.append(stream)
        await stream.start()
        return stream

    yield make
    for stream in streams:
        await stream.stop()


async def test_connects_through_the_gateway_and_acks_after_storing(gateway, make_stream, store):
    stream = await make_stream()
    conn = await gateway.wait_for_connection(1)
    [opened] = gateway.open_requests
    assert opened["clientId"] == gateway.client_id and opened["clientSecret"] == gateway.client_secret
    assert {"type": "CALLBACK", "topic": ROBOT_TOPIC} in opened["subscriptions"]

    frame_id = await conn.push_callback(robot_message("msg-1", "挂牌督办 KP-2026-0003"))
    ack = await gateway.wait_for_ack(frame_id)
    assert ack == {
        "code": 200,
        "headers": {"contentType": "application/json", "messageId": frame_id},
        "message": "OK",
        "data": json.dumps({"response": None}),
    }
    assert store.committed == ["msg-1"]
    [msg] = store.messages
    assert msg.channel == "dingtalk" and msg.message_id == "msg-1" and msg.sender_id == "staff-002"
    assert msg.kind is MessageKind.TEXT and msg.text == "挂牌督办 KP-2026-0003"
    assert msg.reply_webhook_expires_at == NOW + timedelta(hours=1)
    assert stream.connected and stream.status()["connected"]


async def test_ack_waits_for_the_store_and_a_slow_store_blocks_nothing_else(gateway, make_stream, store):
    await make_stream()
    conn = await gateway.wait_for_connection(1)
    store.hold["slow"] = asyncio.Event()
    slow_id = await conn.push_callback(robot_message("slow", "慢"))
    fast_id = await conn.push_callback(robot_message("fast", "快"))
    ping_id, ping_data = await conn.ping()
    assert (await gateway.wait_for_ack(fast_id))["code"] == 200
    assert (await gateway.wait_for_ack(ping_id))["data"] == ping_data
    await asyncio.sleep(0.05)
    assert gateway.ack_for(slow_id) is None  # not acknowledged before it is stored
    assert store.committed == ["fast"]
    store.hold["slow"].set()
    assert (await gateway.wait_for_ack(slow_id))["code"] == 200
    assert store.committed == ["fast", "slow"]


async def test_ping_is_echoed(gateway, make_stream):
    await make_stream()
    conn = await gateway.wait_for_connection(1)
    ping_id, data = await conn.ping("opaque-123")
    ack = await gateway.wait_for_ack(ping_id)
    assert ack["code"] == 200 and ack["message"] == "OK"
    assert ack["headers"]["messageId"] == ping_id
    assert json.loads(ack["data"]) == {"opaque": "opaque-123"}


async def test_duplicate_frames_are_left_to_the_store(gateway, make_stream, store):
    await make_stream()
    conn = await gateway.wait_for_connection(1)
    first = await conn.push_callback(robot_message("dup-1"))
    await gateway.wait_for_ack(first)
    again = await conn.push_callback(robot_message("dup-1"))  # redelivered under a new frame id
    same = await conn.push_callback(robot_message("dup-1"), message_id=first)  # or the same one
    assert (await gateway.wait_for_ack(again))["code"] == 200
    await gateway.wait_until(lambda: len([a for a in conn.acks if a["headers"]["messageId"] == first]) == 2, 5)
    assert same == first
    assert store.committed == ["dup-1", "dup-1", "dup-1"]  # the store saw each; it keeps one


async def test_failures_are_acked_with_an_error_code(gateway, make_stream, store):
    await make_stream()
    conn = await gateway.wait_for_connection(1)
    store.fail.add("boom")
    failed = await conn.push_callback(robot_message("boom"))
    broken = await conn.push_callback("{not json")
    no_id = await conn.push_callback({"msgtype": "text", "text": {"content": "x"}})
    other = await conn.push_callback({"x": 1}, topic="/v1.0/card/instances/callback")
    assert (await gateway.wait_for_ack(failed))["code"] == 500
    assert (await gateway.wait_for_ack(broken))["code"] == 400
    assert (await gateway.wait_for_ack(no_id))["code"] == 400
    assert (await gateway.wait_for_ack(other))["code"] == 404
    assert "boom" not in store.committed
    ok = await conn.push_callback(robot_message("after"))  # the connection is still fine
    assert (await gateway.wait_for_ack(ok))["code"] == 200


async def test_disconnect_notice_opens_a_new_connection_and_drains_the_old(gateway, make_stream, store, sleeps):
    stream = await make_stream()
    old = await gateway.wait_for_connection(1)
    await old.disconnect(close_after=1.0)
    new = await gateway.wait_for_connection(2)
    assert sleeps.delays == [stream.backoff_delay(0)] == [0.75]
    # the old connection is still read until the server closes it
    late = await old.push_callback(robot_message("late-on-old"))
    assert (await gateway.wait_for_ack(late))["code"] == 200
    assert old.ack_for(late) is not None
    await asyncio.wait_for(old.closed.wait(), 5)
    fresh = await new.push_callback(robot_message("on-new"))
    assert new.ack_for(fresh) or (await gateway.wait_for_ack(fresh))["code"] == 200
    assert store.committed == ["late-on-old", "on-new"]
    assert len(gateway.open_requests) == 2 and gateway.refused_tickets == []
    assert stream.connected


async def test_dropped_connection_reconnects_with_capped_exponential_backoff(gateway, make_stream, store, sleeps):
    stream = await make_stream(backoff_base=1.0, backoff_max=8.0, random=lambda: 1.0)
    first = await gateway.wait_for_connection(1)
    gateway.fail_opens(5)
    first.drop()  # no frame was received on it: it does not count as healthy
    second = await gateway.wait_for_connection(2, timeout=10)
    assert sleeps.delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    msg_id = await second.push_callback(robot_message("after-drop"))
    assert (await gateway.wait_for_ack(msg_id))["code"] == 200
    # a connection that received frames resets the backoff
    sleeps.delays.clear()
    await second.close()
    await gateway.wait_for_connection(3)
    assert sleeps.delays == [1.0]
    assert stream.connections_opened == 3


def test_backoff_is_jittered_and_capped():
    stream = DingTalkStream("id", "secret", None, None, lambda: NOW, backoff_base=1.0, backoff_max=60.0)  # type: ignore[arg-type]
    for attempt, cap in ((0, 1.0), (1, 2.0), (3, 8.0), (6, 60.0), (50, 60.0)):
        stream._random = lambda: 0.0
        low = stream.backoff_delay(attempt)
        stream._random = lambda: 1.0
        high = stream.backoff_delay(attempt)
        assert (low, high) == (cap / 2, cap)


async def test_bad_credentials_keep_retrying_without_connecting(gateway, session, store, sleeps):
    stream = DingTalkStream(
        gateway.client_id, "wrong-secret", store, session, lambda: NOW, api_base=gateway.base_url, sleep=sleeps
    )
    await stream.start()
    try:
        await gateway.wait_until(lambda: len(gateway.open_requests) >= 3, 5)
    finally:
        await stream.stop()
    assert gateway.connections == []
    assert "HTTP 400" in stream.last_error and not stream.connected


async def test_stop_closes_and_does_not_reconnect(gateway, make_stream, store, sleeps):
    stream = await make_stream()
    conn = await gateway.wait_for_connection(1)
    store.hold["in-flight"] = asyncio.Event()
    await conn.push_callback(robot_message("in-flight"))
    await eventually(lambda: store.messages)
    stopping = asyncio.create_task(stream.stop())
    await asyncio.wait_for(conn.closed.wait(), 5)
    store.hold["in-flight"].set()  # let the store finish inside the grace period
    await asyncio.wait_for(stopping, 5)
    assert store.committed == ["in-flight"]
    await asyncio.sleep(0.05)
    assert len(gateway.connections) == 1 and len(gateway.open_requests) == 1
    assert not stream.connected


async def test_old_connection_is_closed_by_us_if_the_server_never_does(gateway, make_stream):
    stream = await make_stream(drain_timeout=0.1)
    old = await gateway.wait_for_connection(1)
    await old.disconnect(close_after=None)
    await gateway.wait_for_connection(2)
    await asyncio.wait_for(old.closed.wait(), 5)
    assert stream.connected


async def test_unsubscribed_event_frames_are_refused_not_ignored(gateway, make_stream):
    await make_stream()
    conn = await gateway.wait_for_connection(1)
    await conn.push(
        {
            "specVersion": "1.0",
            "type": "EVENT",
            "headers": {"messageId": "evt-1", "topic": "*", "contentType": "application/json", "eventType": "x"},
            "data": "{}",
        }
    )
    ack = await gateway.wait_for_ack("evt-1")
    assert ack["code"] == 404 and json.loads(ack["data"]) == {"status": "LATER"}
