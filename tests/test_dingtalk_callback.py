"""The DingTalk robot HTTP callback through the real aiohttp route."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from bot.channels.dingtalk import CALLBACK_PATH, DingTalkCallback, compute_sign, parse_robot_message
from bot.message import IncomingMessage, MessageKind

SECRET = "SEC-test-secret-钉钉"
NOW = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


def hand_sign(timestamp: str, secret: str) -> str:
    """Computed here by hand, independently of the bot's code."""
    mac = hmac.new(secret.encode("utf-8"), (timestamp + "\n" + secret).encode("utf-8"), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


# Vectors computed outside Python: printf '%s\n%s' ts secret | openssl dgst -sha256 -hmac secret -binary | base64
OPENSSL_VECTORS = [
    ("1700000000000", SECRET, "+mrrtsipGmHj8AOnc+MTcZfZMcqQBIjKQXCwlXAUP0w="),
    ("1577262236757", "testappSecret", "RvkY0zfBcFgp3BDvQrx1i/WZLeCZ0xiB+gi9wKDIGWI="),
]


@pytest.mark.parametrize(("timestamp", "secret", "expected"), OPENSSL_VECTORS)
def test_sign_vectors(timestamp: str, secret: str, expected: str) -> None:
    assert hand_sign(timestamp, secret) == expected
    assert compute_sign(timestamp, secret) == expected


def text_body(**overrides: object) -> dict:
    body = {
        "conversationId": "cidP2P==",
        "atUsers": [],
        "chatbotCorpId": "dingcorp",
        "chatbotUserId": "$:LWCP_v1:$bot",
        "msgId": "msgA1b2C3==",
        "senderNick": "张三",
        "isAdmin": False,
        "senderStaffId": "staff-001",
        "sessionWebhookExpiredTime": NOW_MS + 90 * 60 * 1000,
        "createAt": NOW_MS - 500,
        "senderCorpId": "dingcorp",
        "conversationType": "1",
        "senderId": "$:LWCP_v1:$sender",
        "sessionWebhook": "https://oapi.dingtalk.com/robot/sendBySession?session=abc",
        "text": {"content": " 项目用地手续卡住了 "},
        "robotCode": "dingrobot",
        "msgtype": "text",
    }
    body.update(overrides)
    return body


class Recorder:
    def __init__(self, fresh: bool = True, fail: bool = False):
        self.messages: list[IncomingMessage] = []
        self.fresh = fresh
        self.fail = fail

    async def __call__(self, message: IncomingMessage) -> bool:
        if self.fail:
            raise RuntimeError("database is down")
        seen = any(m.message_id == message.message_id for m in self.messages)
        self.messages.append(message)
        return self.fresh and not seen


@pytest.fixture
def store() -> Recorder:
    return Recorder()


@pytest.fixture
def make_client(aiohttp_client):
    async def make(store, secret: str = SECRET, max_body_bytes: int = 4096):
        app = web.Application()
        DingTalkCallback(secret, store, lambda: NOW, max_body_bytes=max_body_bytes).add_routes(app)
        return await aiohttp_client(app)

    return make


def headers(timestamp_ms: int = NOW_MS, secret: str = SECRET) -> dict[str, str]:
    ts = str(timestamp_ms)
    return {"timestamp": ts, "sign": hand_sign(ts, secret), "Content-Type": "application/json"}


async def post(client, body, hdrs=None):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body, ensure_ascii=False)
    return await client.post(CALLBACK_PATH, data=data, headers=headers() if hdrs is None else hdrs)


async def test_valid_text_is_stored_and_answered(make_client, store):
    client = await make_client(store)
    resp = await post(client, text_body())
    assert resp.status == 200
    assert await resp.json() == {"msgtype": "empty"}
    [msg] = store.messages
    assert msg.channel == "dingtalk"
    assert msg.message_id == "msgA1b2C3=="
    assert msg.sender_id == "staff-001"
    assert msg.kind is MessageKind.TEXT
    assert msg.text == "项目用地手续卡住了"
    assert msg.chat_id is None
    assert msg.received_at == NOW
    assert msg.reply_webhook == "https://oapi.dingtalk.com/robot/sendBySession?session=abc"
    assert msg.reply_webhook_expires_at == NOW + timedelta(minutes=90)
    assert IncomingMessage.from_dict(msg.to_dict()) == msg


async def test_openssl_vector_accepted_through_route(aiohttp_client):
    store = Recorder()
    ts, secret, sign = OPENSSL_VECTORS[0]
    at = datetime.fromtimestamp(int(ts) / 1000, tz=UTC)
    app = web.Application()
    DingTalkCallback(secret, store, lambda: at).add_routes(app)
    client = await aiohttp_client(app)
    resp = await post(client, text_body(), {"timestamp": ts, "sign": sign})
    assert resp.status == 200
    assert len(store.messages) == 1


async def test_group_message_has_chat_id_and_falls_back_to_sender_id(make_client, store):
    client = await make_client(store)
    body = text_body(conversationType="2", conversationId="cidGroup==", conversationTitle="项目推进群")
    del body["senderStaffId"]
    resp = await post(client, body)
    assert resp.status == 200
    [msg] = store.messages
    assert msg.chat_id == "cidGroup=="
    assert msg.sender_id == "$:LWCP_v1:$sender"


async def test_picture_rich_text_audio_file_and_unknown(make_client, store):
    client = await make_client(store)
    bodies = [
        text_body(msgId="p1", msgtype="picture", content={"downloadCode": "dl-pic", "pictureDownloadCode": "x"}),
        text_body(
            msgId="r1",
            msgtype="richText",
            content={
                "richText": [
                    {"text": "现场照片"},
                    {"pictureDownloadCode": "pd", "downloadCode": "dl-r1", "type": "picture"},
                    {"text": "请尽快处理"},
                ]
            },
        ),
        text_body(msgId="a1", msgtype="audio", content={"downloadCode": "dl-voice", "recognition": "道路被堵", "duration": 4000}),
        text_body(msgId="f1", msgtype="file", content={"downloadCode": "dl-file", "fileName": "合同.pdf"}),
        text_body(msgId="u1", msgtype="interactiveCard", content={"whatever": 1}),
    ]
    for body in bodies:
        body.pop("text")
        resp = await post(client, body)
        assert resp.status == 200, await resp.text()
    pic, rich, audio, file, unknown = store.messages
    assert pic.kind is MessageKind.IMAGE
    assert [(a.kind, a.media_id) for a in pic.attachments] == [("image", "dl-pic")]
    assert rich.kind is MessageKind.TEXT
    assert rich.text == "现场照片\n请尽快处理"
    assert [(a.kind, a.media_id) for a in rich.attachments] == [("image", "dl-r1")]
    assert audio.kind is MessageKind.VOICE and audio.text == "道路被堵"
    assert audio.attachments[0].kind == "voice" and audio.attachments[0].media_id == "dl-voice"
    assert file.kind is MessageKind.FILE and file.text == "合同.pdf"
    assert file.attachments[0].media_id == "dl-file"
    assert unknown.kind is MessageKind.UNKNOWN


async def test_button_click_text_becomes_an_action(make_client, store):
    client = await make_client(store)
    await post(client, text_body(msgId="c1", text={"content": "ack:KP-2026-0001"}))
    await post(client, text_body(msgId="c2", text={"content": "see https://example.com/a:b"}))
    click, plain = store.messages
    assert click.kind is MessageKind.ACTION and click.action == "ack:KP-2026-0001"
    assert plain.kind is MessageKind.TEXT and plain.action is None


async def test_duplicate_is_answered_200_and_stored_once(make_client, store):
    client = await make_client(store)
    for _ in range(3):
        resp = await post(client, text_body())
        assert resp.status == 200
    assert len({m.message_id for m in store.messages}) == 1


@pytest.mark.parametrize("offset", [timedelta(hours=1, seconds=1), -timedelta(hours=1, seconds=1), timedelta(days=3)])
async def test_stale_or_future_timestamp_is_refused(make_client, store, offset):
    client = await make_client(store)
    ts = int((NOW - offset).timestamp() * 1000)
    resp = await post(client, text_body(), headers(ts))
    assert resp.status == 403
    assert store.messages == []


@pytest.mark.parametrize("offset", [timedelta(minutes=59), -timedelta(minutes=59)])
async def test_timestamp_within_an_hour_is_accepted(make_client, store, offset):
    client = await make_client(store)
    ts = int((NOW - offset).timestamp() * 1000)
    resp = await post(client, text_body(), headers(ts))
    assert resp.status == 200


async def test_wrong_sign_is_refused(make_client, store):
    client = await make_client(store)
    bad = headers()
    bad["sign"] = hand_sign(bad["timestamp"], "another-secret")
    resp = await post(client, text_body(), bad)
    assert resp.status == 403
    tampered = headers()
    tampered["timestamp"] = str(NOW_MS + 1)  # sign of another timestamp
    tampered["sign"] = headers()["sign"]
    resp = await post(client, text_body(), tampered)
    assert resp.status == 403
    assert store.messages == []


@pytest.mark.parametrize("missing", ["timestamp", "sign"])
async def test_missing_header_is_refused(make_client, store, missing):
    client = await make_client(store)
    hdrs = headers()
    del hdrs[missing]
    resp = await post(client, text_body(), hdrs)
    assert resp.status == 401
    assert store.messages == []


async def test_non_numeric_timestamp_is_refused(make_client, store):
    client = await make_client(store)
    resp = await post(client, text_body(), {"timestamp": "yesterday", "sign": hand_sign("yesterday", SECRET)})
    assert resp.status == 403
    assert store.messages == []


async def test_no_secret_never_passes(make_client, store):
    client = await make_client(store, secret="")
    ts = str(NOW_MS)
    for sign in (hand_sign(ts, ""), "", "x"):
        resp = await post(client, text_body(), {"timestamp": ts, "sign": sign})
        assert resp.status in (401, 403)
    assert store.messages == []


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"\xff\xfe\x00",
        b"[1, 2]",
        json.dumps({k: v for k, v in text_body().items() if k != "msgId"}),
        json.dumps({k: v for k, v in text_body().items() if k != "msgtype"}),
        json.dumps({k: v for k, v in text_body().items() if k not in ("senderStaffId", "senderId")}),
        json.dumps(text_body(msgId=123)),
        json.dumps(text_body(text="not an object")),
        json.dumps(text_body(msgtype="picture", content={})),
        json.dumps(text_body(conversationType="2", conversationId="")),
    ],
)
async def test_broken_bodies_are_400(make_client, store, body):
    client = await make_client(store)
    resp = await post(client, body)
    assert resp.status == 400
    assert store.messages == []


async def test_oversize_body_is_413(make_client, store):
    client = await make_client(store, max_body_bytes=1024)
    body = text_body(text={"content": "很" * 2000})
    resp = await post(client, body)
    assert resp.status == 413
    assert store.messages == []


async def test_oversize_chunked_body_is_413(make_client, store):
    client = await make_client(store, max_body_bytes=1024)
    payload = json.dumps(text_body(text={"content": "x" * 4000})).encode()

    async def chunks():
        for i in range(0, len(payload), 500):
            yield payload[i : i + 500]

    resp = await client.post(CALLBACK_PATH, data=chunks(), headers=headers())
    assert resp.status == 413
    assert store.messages == []


async def test_store_failure_is_not_answered_ok(make_client):
    store = Recorder(fail=True)
    client = await make_client(store)
    resp = await post(client, text_body())
    assert resp.status == 503


def test_session_webhook_without_expiry_is_dropped():
    body = text_body()
    del body["sessionWebhookExpiredTime"]
    msg = parse_robot_message(body, NOW)
    assert msg.reply_webhook is None and msg.reply_webhook_expires_at is None
