"""WeCom callback crypto conformance, through the real aiohttp routes.

Published vectors:
* WeCom's "加解密方案说明" sample (token QDG6eK, corp wx5823bf96d3bd56c7), as also
  shipped in Tencent's WXBizMsgCrypt samples: URL verification and a POST;
* Tencent's official python callback sample (weworkapi_python/callback/Sample.py):
  URL verification and a POST whose XML has no CDATA and Chinese text;
* wechatpy's own tests (tests/test_crypto.py): check_signature, decrypt_message and
  encrypt_message with a fixed random prefix.
Then every PKCS#7 padding length (1..32) and corrupt plaintexts.
"""

from __future__ import annotations

import base64
import struct
from datetime import datetime, timezone

import pytest
import yarl
from aiohttp import web

from bot.channels.wecom import WeComCallback, compute_signature
from bot.message import IncomingMessage, MessageKind
from tests.fakes.wecom_api import CallbackBuilder

NOW = datetime(2026, 3, 2, 1, 30, tzinfo=timezone.utc)

# -- WeCom documentation sample ---------------------------------------------------------
DOC_TOKEN = "QDG6eK"
DOC_CORP = "wx5823bf96d3bd56c7"
DOC_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
# The GET exactly as the sample prints it: echostr percent-encoded (%2F %2B %3D).
DOC_VERIFY_QUERY = (
    "msg_signature=5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3&timestamp=1409659589&nonce=263014780"
    "&echostr=P9nAzCzyDtyTWESHep1vC5X9xho%2FqYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp%2B4RPcs8TgAE7OaBO%2BFZXvnaqQ%3D%3D"
)
DOC_ECHO_PLAIN = "1616140317555161061"
DOC_POST_QUERY = "msg_signature=477715d11cdb4164915debcba66cb864d751f3e6&timestamp=1409659813&nonce=1372623149"
DOC_POST_BODY = (
    "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA["
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3T"
    "UUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsij"
    "ff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5w"
    "LVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZ"
    "ZIs2pDBS8R07+qN+E7Q==]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>"
)

# -- Tencent's official python sample -------------------------------------------------------
TX_TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
TX_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
TX_CORP = "ww1436e0e65a779aee"
TX_VERIFY = {
    "msg_signature": "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb",
    "timestamp": "1476416373",
    "nonce": "47744683",
    "echostr": "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==",
}
TX_POST = {"msg_signature": "0c3914025cb4b4d68103f6bfc8db550f79dcf48e", "timestamp": "1476422779", "nonce": "1597212914"}
TX_POST_BODY = (
    "<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>\n<Encrypt><![CDATA["
    "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkYc"
    "D+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7i"
    "lEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKY"
    "g84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+]]></Encrypt>\n<AgentID><![CDATA[1000002]]></AgentID>\n</xml>"
)

# -- wechatpy's test vectors ---------------------------------------------------------------------
WP_TOKEN = "123456"
WP_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
WP_CORP = "wx49f0ab532d5d035a"
WP_VERIFY = {
    "msg_signature": "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96",
    "timestamp": "1411443780",
    "nonce": "437374425",
    "echostr": "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==",
}
WP_POST = {"msg_signature": "74d92dfeb87ba7c714f89d98870ae5eb62dff26d", "timestamp": "1411525903", "nonce": "461056294"}
WP_POST_BODY = """<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>
<Encrypt><![CDATA[RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=]]></Encrypt>
<AgentID><![CDATA[1]]></AgentID>
</xml>"""
WP_REPLY = """<xml>
<MsgType><![CDATA[text]]></MsgType>
<Content><![CDATA[test]]></Content>
<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>
<ToUserName><![CDATA[messense]]></ToUserName>
<AgentID>1</AgentID>
<CreateTime>1411525903</CreateTime>
</xml>"""
WP_REPLY_ENCRYPTED = (
    "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ"
    "+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p"
    "9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFx"
    "tAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3"
)
WP_REPLY_SIGNATURE = "407518b7649e86ef23978113f92d27afa9296533"


class RecordingStore:
    def __init__(self) -> None:
        self.messages: list[IncomingMessage] = []

    async def __call__(self, message: IncomingMessage) -> bool:
        fresh = all(m.message_id != message.message_id for m in self.messages)
        self.messages.append(message)
        return fresh


@pytest.fixture
def make_client(aiohttp_client):
    async def make(token: str, key: str, corp: str):
        store = RecordingStore()
        raw_paths: list[str] = []

        @web.middleware
        async def record_raw(request, handler):
            raw_paths.append(request.raw_path)
            return await handler(request)

        app = web.Application(middlewares=[record_raw])
        WeComCallback(token=token, aes_key=key, corp_id=corp, store=store, now=lambda: NOW).add_routes(app)
        client = await aiohttp_client(app)
        client.store = store
        client.raw_paths = raw_paths
        return client

    return make


def raw_url(client, raw_query: str) -> yarl.URL:
    """The callback URL with this exact, already-encoded query string (nothing re-encoded)."""
    return yarl.URL(f"{client.make_url('/wecom/callback')}?{raw_query}", encoded=True)


# -- WeCom documentation sample --------------------------------------------------------------


async def test_doc_sample_url_verification_percent_encoded(make_client):
    client = await make_client(DOC_TOKEN, DOC_KEY, DOC_CORP)
    resp = await client.session.get(raw_url(client, DOC_VERIFY_QUERY))
    assert resp.status == 200
    assert await resp.text() == DOC_ECHO_PLAIN
    assert resp.content_type == "text/plain"
    assert "%2B" in client.raw_paths[-1] and "%2F" in client.raw_paths[-1] and "%3D" in client.raw_paths[-1]
    assert client.store.messages == []


async def test_doc_sample_url_verification_plus_encoded_slash_and_equals_literal(make_client):
    client = await make_client(DOC_TOKEN, DOC_KEY, DOC_CORP)
    raw = DOC_VERIFY_QUERY.replace("%2F", "/").replace("%3D", "=")
    assert "%2B" in raw and "/" in raw and "==" in raw
    resp = await client.session.get(raw_url(client, raw))
    assert resp.status == 200
    assert await resp.text() == DOC_ECHO_PLAIN


async def test_doc_sample_url_verification_literal_plus(make_client):
    # A proxy that un-escapes the query turns "+" into a literal "+", which form
    # decoding reads as a space; base64 has no spaces, so the route restores it.
    client = await make_client(DOC_TOKEN, DOC_KEY, DOC_CORP)
    literal = DOC_VERIFY_QUERY.replace("%2B", "+").replace("%2F", "/")
    resp = await client.session.get(raw_url(client, literal))
    assert resp.status == 200
    assert await resp.text() == DOC_ECHO_PLAIN


async def test_doc_sample_url_verification_via_params(make_client):
    client = await make_client(DOC_TOKEN, DOC_KEY, DOC_CORP)
    params = {
        "msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
        "timestamp": "1409659589",
        "nonce": "263014780",
        "echostr": "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==",
    }
    resp = await client.get("/wecom/callback", params=params)
    assert resp.status == 200
    assert await resp.text() == DOC_ECHO_PLAIN


async def test_doc_sample_url_verification_tampered(make_client):
    client = await make_client(DOC_TOKEN, DOC_KEY, DOC_CORP)
    resp = await client.session.get(raw_url(client, DOC_VERIFY_QUERY.replace("nonce=263014780", "nonce=263014781")))
    assert resp.status == 403
    assert DOC_ECHO_PLAIN not in await resp.text()


async def test_doc_sample_post(make_client):
    client = await make_client(DOC_TOKEN, DOC_KEY, DOC_CORP)
    resp = await client.session.post(raw_url(client, DOC_POST_QUERY), data=DOC_POST_BODY.encode())
    assert resp.status == 200
    assert await resp.text() == ""
    [message] = client.store.messages
    assert message.channel == "wecom"
    assert message.kind is MessageKind.TEXT
    assert message.text == "hello"
    assert message.sender_id == "mycreate"
    assert message.message_id == "4561255354251345929"
    assert message.received_at == NOW


# -- Tencent's official sample -------------------------------------------------------------------


async def test_tencent_sample_url_verification(make_client):
    client = await make_client(TX_TOKEN, TX_KEY, TX_CORP)
    resp = await client.get("/wecom/callback", params=TX_VERIFY)
    assert resp.status == 200
    assert await resp.text() == "1288432023552776189"


async def test_tencent_sample_post_without_cdata_and_chinese_text(make_client):
    client = await make_client(TX_TOKEN, TX_KEY, TX_CORP)
    resp = await client.post("/wecom/callback", params=TX_POST, data=TX_POST_BODY.encode())
    assert resp.status == 200
    [message] = client.store.messages
    assert message.kind is MessageKind.TEXT
    assert message.text == "你好"
    assert message.sender_id == "ChenJiaShun"
    assert message.message_id == "1456453720"


async def test_tencent_sample_rejected_under_another_corp(make_client):
    # Same token and key but another corp id: the signature is good, the receive id is not ours.
    client = await make_client(TX_TOKEN, TX_KEY, "ww0000000000000000")
    resp = await client.post("/wecom/callback", params=TX_POST, data=TX_POST_BODY.encode())
    assert resp.status == 403
    assert client.store.messages == []
    resp = await client.get("/wecom/callback", params=TX_VERIFY)
    assert resp.status == 403


# -- wechatpy's vectors -------------------------------------------------------------------------------


async def test_wechatpy_check_signature_vector(make_client):
    client = await make_client(WP_TOKEN, WP_KEY, WP_CORP)
    resp = await client.get("/wecom/callback", params=WP_VERIFY)
    assert resp.status == 200
    assert await resp.text() == "5927782489442352469"
    resp = await client.get("/wecom/callback", params={**WP_VERIFY, "nonce": "437374424"})  # wechatpy's failing case
    assert resp.status == 403


async def test_wechatpy_decrypt_message_vector(make_client):
    client = await make_client(WP_TOKEN, WP_KEY, WP_CORP)
    resp = await client.post("/wecom/callback", params=WP_POST, data=WP_POST_BODY.encode())
    assert resp.status == 200
    [message] = client.store.messages
    assert (message.text, message.sender_id, message.message_id) == ("test", "messense", "4363689963896700987")


async def test_wechatpy_encrypt_vector_reproduced_by_builder(make_client):
    builder = CallbackBuilder(WP_TOKEN, WP_KEY, WP_CORP, random16="1234567890123456")
    encrypted = builder.encrypt(WP_REPLY)
    assert encrypted == WP_REPLY_ENCRYPTED
    assert compute_signature(WP_TOKEN, "1411525903", "461056294", encrypted) == WP_REPLY_SIGNATURE
    # And the route decrypts it (a message without MsgId gets a key built from its fields).
    client = await make_client(WP_TOKEN, WP_KEY, WP_CORP)
    query, body = builder.post_encrypted(encrypted, timestamp="1411525903", nonce="461056294")
    assert query["msg_signature"] == WP_REPLY_SIGNATURE
    resp = await client.post("/wecom/callback", params=query, data=body)
    assert resp.status == 200
    [message] = client.store.messages
    assert message.text == "test" and message.sender_id == "wx49f0ab532d5d035a"
    assert message.message_id.startswith("msg:")


# -- padding and corrupt plaintexts ------------------------------------------------------------------

KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
CORP = "wwtestcorp00000001"
TOKEN = "tok3n"


@pytest.mark.parametrize("padding", range(1, 33))
async def test_every_pkcs7_padding_length(make_client, padding):
    builder = CallbackBuilder(TOKEN, KEY, CORP)
    base = builder.text("zhangsan", "", msg_id=1000 + padding, cdata=False)
    frame_len = len(CallbackBuilder.frame(base.encode(), CORP.encode()))
    # Pad the content with multi-byte and single-byte characters to hit this padding length.
    extra = (32 - padding - frame_len) % 32
    content = "工地" * (extra // 6) + "x" * (extra % 6)
    xml = builder.text("zhangsan", content, msg_id=1000 + padding, cdata=False)
    assert 32 - len(CallbackBuilder.frame(xml.encode(), CORP.encode())) % 32 == padding
    client = await make_client(TOKEN, KEY, CORP)
    query, body = builder.post(xml)
    resp = await client.post("/wecom/callback", params=query, data=body)
    assert resp.status == 200
    [message] = client.store.messages
    assert message.text == content
    assert message.message_id == str(1000 + padding)


def _pad(data: bytes, pad_byte: int, count: int) -> bytes:
    return data + bytes([pad_byte]) * count


CORRUPT = {
    # padding byte 0: wechatpy slices [16:-0] = nothing -> struct.error
    "padding-zero": lambda x: _pad(CallbackBuilder.frame(x, CORP.encode()), 0, 32 - len(CallbackBuilder.frame(x, CORP.encode())) % 32),
    # padding byte larger than the plaintext
    "padding-huge": lambda x: _pad(CallbackBuilder.frame(x, CORP.encode()), 255, 32 - len(CallbackBuilder.frame(x, CORP.encode())) % 32),
    # declared XML length longer than the data: the receive id comes out empty
    "length-too-long": lambda x: _repad(b"0123456789abcdef" + struct.pack("!I", 5000) + x + CORP.encode()),
    # invalid UTF-8 inside the XML
    "bad-utf8": lambda x: _repad(CallbackBuilder.frame(x.replace(b"hello", b"\xff\xfe\xfd\xfc\xfb"), CORP.encode())),
    # a plaintext shorter than the framing (just padding)
    "only-padding": lambda x: bytes([32]) * 32,
}


def _repad(data: bytes) -> bytes:
    count = 32 - len(data) % 32
    return data + bytes([count]) * count


@pytest.mark.parametrize("case", sorted(CORRUPT))
async def test_corrupt_plaintext_is_a_4xx(make_client, case):
    builder = CallbackBuilder(TOKEN, KEY, CORP)
    xml = builder.text("zhangsan", "hello", msg_id=5).encode()
    encrypted = builder.encrypt_raw(CORRUPT[case](xml))
    client = await make_client(TOKEN, KEY, CORP)
    query, body = builder.post_encrypted(encrypted)
    resp = await client.post("/wecom/callback", params=query, data=body)
    assert 400 <= resp.status < 500
    assert client.store.messages == []


@pytest.mark.parametrize(
    "encrypted",
    [
        "not base64 at all!!",  # base64 decoding keeps a few letters: wrong block length
        "YWJj",  # 3 bytes: not a multiple of the AES block
        "QUJD=",  # bad base64 padding
        base64.b64encode(b"x" * 15).decode(),
        "====",
    ],
)
async def test_broken_ciphertext_is_a_400(make_client, encrypted):
    builder = CallbackBuilder(TOKEN, KEY, CORP)
    client = await make_client(TOKEN, KEY, CORP)
    query, body = builder.post_encrypted(encrypted)
    resp = await client.post("/wecom/callback", params=query, data=body)
    assert resp.status == 400
    assert client.store.messages == []
