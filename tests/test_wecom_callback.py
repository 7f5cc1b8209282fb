"""The WeCom callback route: message mapping, idempotency keys, and every bad input
answered with a 4xx (never a 500) and nothing stored."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest
from aiohttp import web

from bot.channels.wecom import WeComCallback, event_message_id, parse_xml
from bot.message import IncomingMessage, Location, MessageKind
from config.settings import Settings
from tests.fakes.wecom_api import CallbackBuilder, message_xml

TOKEN = "kpbotToken2026"
KEY = "s3cr3tKeyForTests0123456789abcdefghijklmnop"
CORP = "ww7f1c2d3e4b5a6978"
NOW = datetime(2026, 3, 2, 1, 30, tzinfo=timezone.utc)


class RecordingStore:
    def __init__(self, fail: bool = False) -> None:
        self.messages: list[IncomingMessage] = []
        self.fail = fail

    async def __call__(self, message: IncomingMessage) -> bool:
        if self.fail:
            raise RuntimeError("database is down")
        fresh = all(m.message_id != message.message_id for m in self.messages)
        self.messages.append(message)
        return fresh


@pytest.fixture
def builder() -> CallbackBuilder:
    return CallbackBuilder(TOKEN, KEY, CORP)


@pytest.fixture
def store() -> RecordingStore:
    return RecordingStore()


@pytest.fixture
async def client(aiohttp_client, store):
    app = web.Application()
    WeComCallback(token=TOKEN, aes_key=KEY, corp_id=CORP, store=store, now=lambda: NOW, max_body_bytes=8192).add_routes(app)
    return await aiohttp_client(app)


async def post(client, builder: CallbackBuilder, xml: str, **kw):
    query, body = builder.post(xml, **kw)
    return await client.post("/wecom/callback", params=query, data=body)


# -- mapping ------------------------------------------------------------------------------


async def test_text(client, builder, store):
    resp = await post(client, builder, builder.text("lisi", "塔吊附近道路被堵，无法进场", msg_id=123456789))
    assert resp.status == 200 and await resp.text() == ""
    [m] = store.messages
    assert m == IncomingMessage(
        channel="wecom", message_id="123456789", sender_id="lisi", kind=MessageKind.TEXT,
        received_at=NOW, text="塔吊附近道路被堵，无法进场",
    )


async def test_text_with_markup_characters_without_cdata(client, builder, store):
    resp = await post(client, builder, builder.text("lisi", "a < b & c > d ]]> 完", cdata=False))
    assert resp.status == 200
    assert store.messages[0].text == "a < b & c > d ]]> 完"


async def test_image_keeps_media_id_for_later_download(client, builder, store):
    resp = await post(client, builder, builder.image("lisi", "MEDIA_abc-123", msg_id=42))
    assert resp.status == 200
    [m] = store.messages
    assert m.kind is MessageKind.IMAGE and m.message_id == "42"
    [a] = m.attachments
    assert (a.kind, a.media_id, a.path) == ("image", "MEDIA_abc-123", None)


async def test_voice_with_recognition(client, builder, store):
    resp = await post(client, builder, builder.voice("lisi", "VOICE_1", recognition="申请延期三天"))
    assert resp.status == 200
    [m] = store.messages
    assert m.kind is MessageKind.VOICE and m.text == "申请延期三天"
    assert m.attachments[0].kind == "voice" and m.attachments[0].media_id == "VOICE_1"
    assert m.attachments[0].mime == "audio/amr"


async def test_location(client, builder, store):
    resp = await post(client, builder, builder.location("lisi", 30.5728, 104.0668, "成都市高新区天府大道"))
    assert resp.status == 200
    [m] = store.messages
    assert m.kind is MessageKind.LOCATION
    assert m.location == Location(latitude=30.5728, longitude=104.0668, label="成都市高新区天府大道")


async def test_template_card_button_click(client, builder, store):
    resp = await post(client, builder, builder.card_click("wangwu", "ack:KP-2026-0001", "kp-0123abcd"))
    assert resp.status == 200
    [m] = store.messages
    assert m.kind is MessageKind.ACTION
    assert m.action == "ack:KP-2026-0001"
    assert m.sender_id == "wangwu"
    assert m.message_id.startswith("event:")


async def test_template_card_button_key_field_fallback(client, builder, store):
    xml = builder.event("wangwu", "template_card_event", ButtonKey="done:KP-1", TaskId="t1")
    resp = await post(client, builder, xml)
    assert resp.status == 200
    assert store.messages[0].action == "done:KP-1"


async def test_template_card_event_with_selected_items(client, builder, store):
    # The documented shape (nested SelectedItems) parses; the button key is the action.
    xml = builder.event(
        "wangwu", "template_card_event", EventKey="vote", TaskId="t2", CardType="vote_interaction",
        SelectedItems={"SelectedItem": [
            {"QuestionKey": "q1", "OptionIds": {"OptionId": ["o1", "o2"]}},
            {"QuestionKey": "q2", "OptionIds": {"OptionId": "o3"}},
        ]},
    )
    resp = await post(client, builder, xml)
    assert resp.status == 200
    assert store.messages[0].action == "vote"


@pytest.mark.parametrize(
    "xml",
    [
        lambda b: b.event("lisi", "enter_agent", EventKey=""),
        lambda b: b.event("lisi", "subscribe"),
        lambda b: b.event("lisi", "LOCATION", Latitude="30.1", Longitude="104.1", Precision="20"),
        lambda b: message_xml({"ToUserName": CORP, "FromUserName": "lisi", "CreateTime": 1700000000,
                               "MsgType": "video", "MediaId": "v1", "ThumbMediaId": "t1", "MsgId": 77}),
        lambda b: message_xml({"ToUserName": CORP, "FromUserName": "lisi", "CreateTime": 1700000000,
                               "MsgType": "link", "Title": "t", "Url": "https://x", "MsgId": 78}),
        lambda b: message_xml({"ToUserName": CORP, "FromUserName": "lisi", "CreateTime": 1700000000,
                               "MsgType": "brand_new_type", "MsgId": 79}),
    ],
    ids=["enter_agent", "subscribe", "location-event", "video", "link", "future-type"],
)
async def test_other_types_are_tolerated_as_unknown(client, builder, store, xml):
    resp = await post(client, builder, xml(builder))
    assert resp.status == 200
    [m] = store.messages
    assert m.kind is MessageKind.UNKNOWN and m.sender_id == "lisi"


async def test_message_round_trips_through_dict(client, builder, store):
    await post(client, builder, builder.location("lisi", 1.5, 2.5, "x"))
    await post(client, builder, builder.image("lisi", "m1"))
    for m in store.messages:
        assert IncomingMessage.from_dict(m.to_dict()) == m


# -- idempotency keys ------------------------------------------------------------------------


async def test_replay_three_times_same_message_id(client, builder, store):
    for xml in (builder.text("lisi", "同一条消息", msg_id=9001), builder.card_click("lisi", "ack:KP-1", "task-1")):
        query, body = builder.post(xml, nonce="555")
        for _ in range(3):
            resp = await client.post("/wecom/callback", params=query, data=body)
            assert resp.status == 200
    assert len(store.messages) == 6
    assert len({m.message_id for m in store.messages[:3]}) == 1
    assert len({m.message_id for m in store.messages[3:]}) == 1
    assert store.messages[0].message_id == "9001"


async def test_retry_with_new_nonce_keeps_event_id(client, builder, store):
    # WeCom's retries are new requests (new timestamp/nonce) carrying the same XML.
    xml = builder.card_click("lisi", "ack:KP-1", "task-1")
    for nonce in ("1", "2", "3"):
        assert (await post(client, builder, xml, nonce=nonce, timestamp=f"170000000{nonce}")).status == 200
    assert len({m.message_id for m in store.messages}) == 1


def test_event_ids_differ_by_their_own_keys():
    base = {"FromUserName": "u", "CreateTime": "1", "Event": "template_card_event", "EventKey": "k", "TaskId": "t"}
    ids = {event_message_id(base)}
    for name, value in [("FromUserName", "v"), ("CreateTime", "2"), ("Event", "x"), ("EventKey", "k2"), ("TaskId", "t2")]:
        ids.add(event_message_id({**base, name: value}))
    assert len(ids) == 6
    # ...and not by fields outside the key (ResponseCode, AgentID).
    assert event_message_id({**base, "ResponseCode": "r", "AgentID": "1"}) == event_message_id(base)
    # Field values cannot run into each other.
    assert event_message_id({**base, "EventKey": "a:b", "TaskId": "c"}) != event_message_id(
        {**base, "EventKey": "a", "TaskId": "b:c"}
    )


# -- bad inputs: a 4xx, a reason, nothing stored -------------------------------------------------


async def assert_rejected(resp, status: int, store: RecordingStore, caplog=None, reason: str | None = None):
    assert resp.status == status, await resp.text()
    assert store.messages == []
    if caplog is not None and reason is not None:
        assert any(reason in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]


async def test_bad_signature(client, builder, store, caplog):
    query, body = builder.post(builder.text("lisi", "x"))
    query["msg_signature"] = "0" * 40
    await assert_rejected(await client.post("/wecom/callback", params=query, data=body), 403, store, caplog, "bad msg_signature")


async def test_signature_of_another_token(client, store, caplog):
    other = CallbackBuilder("another-token", KEY, CORP)
    query, body = other.post(other.text("lisi", "x"))
    await assert_rejected(await client.post("/wecom/callback", params=query, data=body), 403, store, caplog, "bad msg_signature")


async def test_wrong_corp_id(client, builder, store, caplog):
    resp = await post(client, builder, builder.text("lisi", "x"), receive_id="wwsomeoneelse")
    await assert_rejected(resp, 403, store, caplog, "not our corp id")


async def test_other_aes_key(client, store):
    other = CallbackBuilder(TOKEN, "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ", CORP)
    query, body = other.post(other.text("lisi", "x"))
    resp = await client.post("/wecom/callback", params=query, data=body)
    assert 400 <= resp.status < 500 and store.messages == []


@pytest.mark.parametrize("missing", ["msg_signature", "timestamp", "nonce"])
async def test_missing_query_parameter(client, builder, store, missing):
    query, body = builder.post(builder.text("lisi", "x"))
    del query[missing]
    await assert_rejected(await client.post("/wecom/callback", params=query, data=body), 400, store)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"<xml><Encrypt>abc",  # truncated
        b"not xml at all",
        b"<xml></xml>",  # no Encrypt
        b"<xml><Encrypt></Encrypt></xml>",
        b"<root><Encrypt>abcd</Encrypt></root>",
        b"<xml><Encrypt><a>nested</a></Encrypt></xml>",
        b"\xff\xfe<\x00x\x00",
    ],
    ids=["empty", "blank", "truncated", "not-xml", "no-encrypt", "empty-encrypt", "wrong-root", "nested", "garbage"],
)
async def test_broken_envelope(client, builder, store, body):
    query = {"msg_signature": "a" * 40, "timestamp": "1", "nonce": "2"}
    await assert_rejected(await client.post("/wecom/callback", params=query, data=body), 400, store)


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><xml><Encrypt>&c;</Encrypt></xml>'
)
XXE = '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><Encrypt>&x;</Encrypt></xml>'


@pytest.mark.parametrize("payload", [BILLION_LAUGHS, XXE, '<!DOCTYPE xml><xml><Encrypt>abcd</Encrypt></xml>'],
                         ids=["entities", "external-entity", "bare-doctype"])
async def test_doctype_in_envelope(client, store, caplog, payload):
    query = {"msg_signature": "a" * 40, "timestamp": "1", "nonce": "2"}
    resp = await client.post("/wecom/callback", params=query, data=payload.encode())
    await assert_rejected(resp, 400, store, caplog, "XML refused")


@pytest.mark.parametrize(
    "inner",
    [
        '<!DOCTYPE xml [<!ENTITY a "boom">]><xml><ToUserName>x</ToUserName><FromUserName>&a;</FromUserName>'
        "<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&a;</Content><MsgId>1</MsgId></xml>",
        BILLION_LAUGHS.replace("<Encrypt>&c;</Encrypt>", "<MsgType>text</MsgType><Content>&c;</Content>"),
        XXE,
    ],
    ids=["entity", "entities", "external-entity"],
)
async def test_doctype_inside_encrypted_message(client, builder, store, caplog, inner):
    resp = await post(client, builder, inner)
    await assert_rejected(resp, 400, store, caplog, "XML refused")


def _fields(**overrides):
    fields = {"ToUserName": CORP, "FromUserName": "lisi", "CreateTime": 1700000000, "MsgType": "text",
              "Content": "x", "MsgId": 1}
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not None}


@pytest.mark.parametrize(
    "fields, reason",
    [
        (_fields(FromUserName=None), "FromUserName"),
        (_fields(FromUserName=""), "FromUserName"),
        (_fields(MsgType=None), "MsgType"),
        (_fields(CreateTime=None), "CreateTime"),
        (_fields(CreateTime="yesterday"), "CreateTime"),
        (_fields(Content=None), "Content"),
        (_fields(MsgType="image", Content=None), "MediaId"),
        (_fields(MsgType="voice", Content=None), "MediaId"),
        (_fields(MsgType="location", Content=None, Location_Y="104.0"), "Location_X"),
        (_fields(MsgType="location", Content=None, Location_X="north", Location_Y="104.0"), "Location_X"),
        (_fields(MsgType="location", Content=None, Location_X="95.0", Location_Y="104.0"), "Location_X"),
        (_fields(MsgType="event", Content=None, MsgId=None), "Event"),
        (_fields(MsgType="event", Content=None, MsgId=None, Event="template_card_event", TaskId="t"), "EventKey"),
        (_fields(FromUserName={"nested": "x"}), "FromUserName"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
async def test_missing_or_bad_fields(client, builder, store, caplog, fields, reason):
    resp = await post(client, builder, message_xml(fields))
    await assert_rejected(resp, 400, store, caplog, reason)


@pytest.mark.parametrize("inner", ["not xml", "<xml><FromUserName>a", "<other><MsgType>text</MsgType></other>", ""])
async def test_broken_inner_xml(client, builder, store, inner):
    resp = await post(client, builder, inner)
    assert 400 <= resp.status < 500
    assert store.messages == []


async def test_oversize_body_by_content_length(client, builder, store, caplog):
    query, _ = builder.post(builder.text("lisi", "x"))
    resp = await client.post("/wecom/callback", params=query, data=b"<xml>" + b"a" * 9000 + b"</xml>")
    await assert_rejected(resp, 413, store, caplog, "exceeds")


async def test_oversize_body_chunked(client, builder, store):
    query, _ = builder.post(builder.text("lisi", "x"))

    async def chunks():
        for _ in range(20):
            yield b"a" * 1000

    resp = await client.post("/wecom/callback", params=query, data=chunks())
    await assert_rejected(resp, 413, store)


async def test_large_but_allowed_body(client, builder, store):
    resp = await post(client, builder, builder.text("lisi", "很长的描述" * 300))  # ~4.5 KB plain, ~6 KB on the wire
    assert resp.status == 200
    assert len(store.messages) == 1


async def test_store_failure_is_a_503_so_wecom_retries(aiohttp_client, builder):
    app = web.Application()
    WeComCallback(token=TOKEN, aes_key=KEY, corp_id=CORP, store=RecordingStore(fail=True), now=lambda: NOW).add_routes(app)
    client = await aiohttp_client(app)
    resp = await post(client, builder, builder.text("lisi", "x"))
    assert resp.status == 503


async def test_answer_comes_right_after_store(aiohttp_client, builder):
    # The route awaits only the store: a store that parks a background job still answers at once.
    started = asyncio.Event()
    release = asyncio.Event()
    background: list[asyncio.Task] = []

    async def store(message):
        async def work():
            started.set()
            await release.wait()

        background.append(asyncio.create_task(work()))
        return True

    app = web.Application()
    WeComCallback(token=TOKEN, aes_key=KEY, corp_id=CORP, store=store, now=lambda: NOW).add_routes(app)
    client = await aiohttp_client(app)
    resp = await asyncio.wait_for(post(client, builder, builder.text("lisi", "x")), timeout=2)
    assert resp.status == 200
    assert not release.is_set()
    release.set()
    await asyncio.gather(*background)


# -- GET verification inputs -----------------------------------------------------------------------------


async def test_get_round_trip_with_builder(client, builder, store):
    query = builder.verify_query("8675309", timestamp="1711111111", nonce="99")
    resp = await client.get("/wecom/callback", params=query)
    assert resp.status == 200 and await resp.text() == "8675309"
    assert store.messages == []


@pytest.mark.parametrize("missing", ["msg_signature", "timestamp", "nonce", "echostr"])
async def test_get_missing_parameter(client, builder, missing):
    query = builder.verify_query("1")
    del query[missing]
    assert (await client.get("/wecom/callback", params=query)).status == 400


async def test_get_bad_signature_and_broken_echostr(client, builder):
    query = builder.verify_query("1")
    assert (await client.get("/wecom/callback", params={**query, "msg_signature": "f" * 40})).status == 403
    broken = "%%%notbase64"
    signed = {**query, "echostr": broken, "msg_signature": builder.sign(query["timestamp"], query["nonce"], broken)}
    assert (await client.get("/wecom/callback", params=signed)).status == 400


async def test_get_wrong_corp(client, builder):
    echostr = builder.encrypt("123", receive_id="wwother")
    query = {"msg_signature": builder.sign("1", "2", echostr), "timestamp": "1", "nonce": "2", "echostr": echostr}
    assert (await client.get("/wecom/callback", params=query)).status == 403


# -- construction ---------------------------------------------------------------------------------------


async def _store(message):  # pragma: no cover - never called
    return True


@pytest.mark.parametrize(
    "token, key, corp",
    [("", KEY, CORP), (TOKEN, "", CORP), (TOKEN, "short", CORP), (TOKEN, KEY, ""), (TOKEN, "!" * 43, CORP)],
)
def test_refuses_to_run_without_secrets(token, key, corp):
    with pytest.raises(ValueError):
        WeComCallback(token=token, aes_key=key, corp_id=corp, store=_store, now=lambda: NOW)


def test_from_settings():
    settings = Settings(wecom_corp_id=CORP, wecom_secret="s", wecom_token=TOKEN, wecom_aes_key=KEY, max_body_bytes=1234)
    callback = WeComCallback.from_settings(settings, store=_store, now=lambda: NOW)
    assert callback.max_body_bytes == 1234
    assert callback.crypto.corp_id == CORP
    assert [r.method for r in callback.routes()] == ["GET", "POST"]


def test_parse_xml_shapes():
    fields = parse_xml("<xml><A>1</A><B><C>x</C><C>y</C></B><D><![CDATA[<b>]]></D></xml>")
    assert fields == {"A": "1", "B": {"C": ["x", "y"]}, "D": "<b>"}
