"""A fake WeCom API server, and a builder of encrypted WeCom callbacks.

`FakeWeComAPI` is an aiohttp app that answers like qyapi.weixin.qq.com for the calls
the bot makes: gettoken (tokens that expire; the same token while it is valid, as the
real API does), message/send, media/get, media/upload, and the group robot's
webhook/send and webhook/upload_media (20 a minute per robot). It refuses unknown
tokens with 40014 and expired ones with 42001, can rate-limit message/send with 45009,
and can be scripted to fail the next N calls (an errcode, an HTTP status, or a dropped
connection). Every call is recorded.

    async with FakeWeComAPI() as fake:
        client = WeComClient(..., api_base=fake.url, session=session)
        ...
        assert fake.sent_messages()[0]["text"]["content"] == "..."

`CallbackBuilder` encrypts and signs callback XML the way WeCom does (wechatpy's
PrpCrypto), for tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import re
import secrets
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web
from wechatpy.enterprise.crypto import PrpCrypto
from wechatpy.utils import WeChatSigner

# Error codes as documented by WeCom (全局错误码).
ERR_BUSY = -1
ERR_INVALID_SECRET = 40001
ERR_INVALID_MEDIA_ID = 40007
ERR_INVALID_MSGTYPE = 40008
ERR_INVALID_CORPID = 40013
ERR_INVALID_TOKEN = 40014
ERR_INVALID_AGENTID = 40056
ERR_INVALID_PARAMETER = 40058
ERR_TOKEN_MISSING = 41001
ERR_TOKEN_EXPIRED = 42001
ERR_EMPTY_CONTENT = 44004
ERR_FREQ_LIMIT = 45009
ERR_ALL_INVALID = 81013
ERR_INVALID_WEBHOOK = 93000

_TASK_ID_RE = re.compile(r"^[0-9A-Za-z_\-@]{1,128}$")


@dataclass
class RecordedCall:
    method: str
    path: str
    query: dict[str, str]
    json: Any = None
    upload: dict[str, Any] | None = None  # for multipart uploads: filename, size, content_type, data
    answer: dict[str, Any] | None = None  # the JSON answered, when JSON was answered
    status: int = 200
    received_at: float = field(default_factory=time.perf_counter)  # for latency benchmarks


@dataclass
class _Failure:
    path: str | None
    errcode: int | None = None
    status: int | None = None
    drop: bool = False
    skip: int = 0  # matching calls to let through before this one fails


@dataclass
class _Media:
    data: bytes
    content_type: str
    filename: str


@dataclass
class FakeWeComAPI:
    corp_id: str = "wwfakecorp0000001"
    secret: str = "fake-app-secret"
    agent_id: int = 1000002
    token_lifetime: float = 7200.0
    clock: Callable[[], float] = time.monotonic
    send_limit_per_minute: int | None = None  # message/send frequency limit (45009 past it)
    webhook_limit_per_minute: int = 20
    known_users: set[str] | None = None  # when set, message/send to anyone else -> 81013
    webhook_keys: set[str] | None = None  # when set, other keys -> 93000

    calls: list[RecordedCall] = field(default_factory=list)
    media: dict[str, _Media] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._tokens: dict[str, float] = {}  # token -> expiry (clock seconds)
        self._current: str | None = None
        self._failures: deque[_Failure] = deque()
        self._ids = itertools.count(1)
        self._send_times: deque[float] = deque()
        self._webhook_times: dict[str, deque[float]] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.app = web.Application()
        self.app.router.add_get("/cgi-bin/gettoken", self._gettoken)
        self.app.router.add_post("/cgi-bin/message/send", self._message_send)
        self.app.router.add_get("/cgi-bin/media/get", self._media_get)
        self.app.router.add_post("/cgi-bin/media/upload", self._media_upload)
        self.app.router.add_post("/cgi-bin/webhook/send", self._webhook_send)
        self.app.router.add_post("/cgi-bin/webhook/upload_media", self._webhook_upload)

    # -- lifecycle ---------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1") -> str:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://{host}:{port}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeWeComAPI:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- control -------------------------------------------------------------------

    def webhook_url(self, key: str = "robot-key-1") -> str:
        return f"{self.url}/cgi-bin/webhook/send?key={key}"

    def expire_tokens(self) -> None:
        """Every token issued so far is expired from now on (42001)."""
        now = self.clock()
        for token in self._tokens:
            self._tokens[token] = min(self._tokens[token], now)

    def fail_next(
        self,
        count: int = 1,
        *,
        errcode: int | None = None,
        status: int | None = None,
        drop: bool = False,
        path: str | None = None,
        skip: int = 0,
    ) -> None:
        """The next `count` calls (to `path`, or to any path) fail, after `skip` such calls
        went through: a JSON errcode, an HTTP status with a text body, or a connection
        closed without an answer (aiohttp's client retries an idempotent GET once on a
        dropped keep-alive connection, so drop POSTs, or drop GETs twice)."""
        if sum(x is not None and x is not False for x in (errcode, status, drop or None)) != 1:
            raise ValueError("give exactly one of errcode, status, drop")
        for index in range(count):
            self._failures.append(
                _Failure(path=path, errcode=errcode, status=status, drop=drop, skip=skip if index == 0 else 0)
            )

    def add_media(
        self, media_id: str, data: bytes, content_type: str = "image/jpeg", filename: str | None = None
    ) -> None:
        self.media[media_id] = _Media(data, content_type, filename or f"{media_id}.jpg")

    def calls_to(self, path: str) -> list[RecordedCall]:
        return [c for c in self.calls if c.path == path]

    def sent_messages(self) -> list[dict[str, Any]]:
        """Bodies of the message/send calls that were accepted (errcode 0)."""
        return [
            c.json
            for c in self.calls_to("/cgi-bin/message/send")
            if c.answer is not None and c.answer.get("errcode") == 0
        ]

    def webhook_messages(self, key: str | None = None) -> list[dict[str, Any]]:
        return [
            c.json
            for c in self.calls_to("/cgi-bin/webhook/send")
            if c.answer is not None and c.answer.get("errcode") == 0 and (key is None or c.query.get("key") == key)
        ]

    @property
    def token_fetches(self) -> int:
        return len(self.calls_to("/cgi-bin/gettoken"))

    # -- plumbing ----------------------------------------------------------------------

    def _answer(self, call: RecordedCall, errcode: int = 0, errmsg: str = "ok", **extra: Any) -> web.Response:
        body = {"errcode": errcode, "errmsg": errmsg, **extra}
        call.answer = body
        return web.json_response(body)

    async def _begin(self, request: web.Request, *, read_json: bool = True) -> tuple[RecordedCall, web.Response | None]:
        payload: Any = None
        if read_json and request.method == "POST" and request.content_type == "application/json":
            try:
                payload = await request.json()
            except ValueError:
                payload = None
        call = RecordedCall(request.method, request.path, dict(request.query), json=payload)
        self.calls.append(call)
        failure = self._take_failure(request.path)
        if failure is None:
            return call, None
        if failure.drop:
            call.status = 0
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError  # nothing is answered; the client sees a disconnect
        if failure.status is not None:
            call.status = failure.status
            return call, web.Response(status=failure.status, text="scripted failure")
        return call, self._answer(call, failure.errcode or ERR_BUSY, "scripted failure")

    def _take_failure(self, path: str) -> _Failure | None:
        for failure in self._failures:
            if failure.path is None or failure.path == path:
                if failure.skip:
                    failure.skip -= 1
                    return None
                self._failures.remove(failure)
                return failure
        return None

    def _check_token(self, request: web.Request, call: RecordedCall) -> web.Response | None:
        token = request.query.get("access_token")
        if not token:
            return self._answer(call, ERR_TOKEN_MISSING, "access_token missing")
        expiry = self._tokens.get(token)
        if expiry is None:
            return self._answer(call, ERR_INVALID_TOKEN, "invalid access_token")
        if self.clock() >= expiry:
            return self._answer(call, ERR_TOKEN_EXPIRED, "access_token expired")
        return None

    @staticmethod
    def _over_limit(times: deque[float], limit: int, now: float) -> bool:
        while times and times[0] <= now - 60.0:
            times.popleft()
        if len(times) >= limit:
            return True
        times.append(now)
        return False

    # -- endpoints -------------------------------------------------------------------------

    async def _gettoken(self, request: web.Request) -> web.Response:
        call, early = await self._begin(request)
        if early is not None:
            return early
        if request.query.get("corpid") != self.corp_id:
            return self._answer(call, ERR_INVALID_CORPID, "invalid corpid")
        if request.query.get("corpsecret") != self.secret:
            return self._answer(call, ERR_INVALID_SECRET, "invalid credential")
        now = self.clock()
        current = self._current
        if current is not None and self._tokens[current] > now:
            # Within its lifetime the same token is returned, with what is left of it.
            return self._answer(call, access_token=current, expires_in=int(self._tokens[current] - now))
        token = f"tok-{next(self._ids)}-{secrets.token_hex(8)}"
        self._tokens[token] = now + self.token_lifetime
        self._current = token
        return self._answer(call, access_token=token, expires_in=int(self.token_lifetime))

    async def _message_send(self, request: web.Request) -> web.Response:
        call, early = await self._begin(request)
        if early is not None:
            return early
        refused = self._check_token(request, call)
        if refused is not None:
            return refused
        if self.send_limit_per_minute is not None and self._over_limit(
            self._send_times, self.send_limit_per_minute, self.clock()
        ):
            return self._answer(call, ERR_FREQ_LIMIT, "api freq out of limit")
        body = call.json
        if not isinstance(body, dict):
            return self._answer(call, ERR_INVALID_PARAMETER, "invalid json")
        if body.get("agentid") != self.agent_id:
            return self._answer(call, ERR_INVALID_AGENTID, "invalid agentid")
        problem = _check_message(body)
        if problem is not None:
            return self._answer(call, *problem)
        users = [u for u in str(body.get("touser", "")).split("|") if u]
        if not users:
            return self._answer(call, ERR_ALL_INVALID, "user & party & tag all invalid")
        if self.known_users is not None:
            unknown = [u for u in users if u not in self.known_users]
            if len(unknown) == len(users):
                return self._answer(call, ERR_ALL_INVALID, "user & party & tag all invalid")
            extra = {"invaliduser": "|".join(unknown)}
        else:
            extra = {"invaliduser": ""}
        msgid = f"msg-{next(self._ids)}"
        if body.get("msgtype") == "template_card":
            extra["response_code"] = f"rc-{next(self._ids)}"
        return self._answer(call, msgid=msgid, **extra)

    async def _media_get(self, request: web.Request) -> web.Response:
        call, early = await self._begin(request)
        if early is not None:
            return early
        refused = self._check_token(request, call)
        if refused is not None:
            return refused
        media = self.media.get(request.query.get("media_id", ""))
        if media is None:
            return self._answer(call, ERR_INVALID_MEDIA_ID, "invalid media_id")
        return web.Response(
            body=media.data,
            content_type=media.content_type,
            headers={"Content-Disposition": f'attachment; filename="{media.filename}"'},
        )

    async def _read_upload(self, request: web.Request, call: RecordedCall) -> dict[str, Any] | None:
        try:
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    return None
                if part.name == "media":  # type: ignore[union-attr]
                    data = await part.read()  # type: ignore[union-attr]
                    upload = {
                        "filename": part.filename,  # type: ignore[union-attr]
                        "content_type": part.headers.get("Content-Type", ""),  # type: ignore[union-attr]
                        "size": len(data),
                        "data": bytes(data),
                    }
                    call.upload = upload
                    return upload
        except (ValueError, AssertionError):
            return None

    async def _media_upload(self, request: web.Request) -> web.Response:
        call, early = await self._begin(request, read_json=False)
        if early is not None:
            return early
        refused = self._check_token(request, call)
        if refused is not None:
            return refused
        kind = request.query.get("type", "")
        if kind not in {"image", "voice", "video", "file"}:
            return self._answer(call, 40004, "invalid media type")
        upload = await self._read_upload(request, call)
        if upload is None or upload["size"] <= 5:
            return self._answer(call, 40005, "invalid file size")
        media_id = f"media-{next(self._ids)}"
        self.media[media_id] = _Media(upload["data"], upload["content_type"], upload["filename"] or media_id)
        return self._answer(call, 0, "", type=kind, media_id=media_id, created_at=str(int(time.time())))

    def _webhook_key(self, request: web.Request, call: RecordedCall) -> tuple[str, web.Response | None]:
        key = request.query.get("key", "")
        if not key or (self.webhook_keys is not None and key not in self.webhook_keys):
            return key, self._answer(call, ERR_INVALID_WEBHOOK, "invalid webhook url")
        return key, None

    async def _webhook_send(self, request: web.Request) -> web.Response:
        call, early = await self._begin(request)
        if early is not None:
            return early
        key, refused = self._webhook_key(request, call)
        if refused is not None:
            return refused
        times = self._webhook_times.setdefault(key, deque())
        if self._over_limit(times, self.webhook_limit_per_minute, self.clock()):
            return self._answer(call, ERR_FREQ_LIMIT, "api freq out of limit")
        body = call.json
        if not isinstance(body, dict):
            return self._answer(call, ERR_INVALID_PARAMETER, "invalid json")
        msgtype = body.get("msgtype")
        if msgtype == "markdown":
            content = (body.get("markdown") or {}).get("content") or ""
            if not content:
                return self._answer(call, ERR_EMPTY_CONTENT, "empty content")
            if len(content.encode("utf-8")) > 4096:
                return self._answer(call, ERR_INVALID_PARAMETER, "markdown.content exceed max length 4096")
        elif msgtype == "image":
            image = body.get("image") or {}
            try:
                raw = base64.b64decode(image.get("base64", ""), validate=True)
            except (ValueError, TypeError):
                return self._answer(call, ERR_INVALID_PARAMETER, "invalid image base64")
            if not raw or len(raw) > 2 * 1024 * 1024:
                return self._answer(call, 40009, "invalid image size")
            if hashlib.md5(raw).hexdigest() != image.get("md5"):
                return self._answer(call, ERR_INVALID_PARAMETER, "image md5 mismatch")
        elif msgtype == "file":
            if (body.get("file") or {}).get("media_id") not in self.media:
                return self._answer(call, ERR_INVALID_MEDIA_ID, "invalid media_id")
        elif msgtype != "text":
            return self._answer(call, ERR_INVALID_MSGTYPE, "invalid message type")
        return self._answer(call)

    async def _webhook_upload(self, request: web.Request) -> web.Response:
        call, early = await self._begin(request, read_json=False)
        if early is not None:
            return early
        key, refused = self._webhook_key(request, call)
        if refused is not None:
            return refused
        upload = await self._read_upload(request, call)
        if upload is None or upload["size"] <= 5:
            return self._answer(call, 40005, "invalid file size")
        media_id = f"wh-media-{next(self._ids)}"
        self.media[media_id] = _Media(upload["data"], upload["content_type"], upload["filename"] or media_id)
        return self._answer(call, type="file", media_id=media_id, created_at=str(int(time.time())))


def _check_message(body: dict[str, Any]) -> tuple[int, str] | None:
    """The message/send validation the bot's payloads must pass (a subset of WeCom's)."""
    msgtype = body.get("msgtype")
    if msgtype in ("text", "markdown"):
        content = (body.get(msgtype) or {}).get("content")
        if not content:
            return ERR_EMPTY_CONTENT, "empty content"
        return None  # WeCom truncates text over 2048 bytes; tests assert the bot never sends that
    if msgtype == "file":
        return None if (body.get("file") or {}).get("media_id") else (ERR_INVALID_PARAMETER, "media_id missing")
    if msgtype == "template_card":
        card = body.get("template_card") or {}
        if card.get("card_type") != "button_interaction":
            return ERR_INVALID_PARAMETER, "unsupported card_type in fake"
        if not _TASK_ID_RE.match(str(card.get("task_id", ""))):
            return ERR_INVALID_PARAMETER, "invalid task_id"
        if not (card.get("main_title") or {}).get("title") and not card.get("sub_title_text"):
            return ERR_INVALID_PARAMETER, "main_title.title or sub_title_text required"
        buttons = card.get("button_list") or []
        if not 1 <= len(buttons) <= 6:
            return ERR_INVALID_PARAMETER, "button_list must have 1..6 buttons"
        keys = [b.get("key") for b in buttons]
        if len(set(keys)) != len(keys) or any(not k or len(k.encode("utf-8")) > 1024 for k in keys):
            return ERR_INVALID_PARAMETER, "invalid button key"
        return None
    return ERR_INVALID_MSGTYPE, "invalid message type"


# -- encrypted callbacks ----------------------------------------------------------------------


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def message_xml(fields: dict[str, Any], *, cdata: bool = True) -> str:
    """WeCom-style XML: strings in CDATA (or escaped when cdata=False), ints bare, dicts nested."""

    def render(name: str, value: Any) -> str:
        if isinstance(value, dict):
            inner = "".join(render(k, v) for k, v in value.items())
            return f"<{name}>{inner}</{name}>"
        if isinstance(value, list):
            return "".join(render(name, v) for v in value)
        if isinstance(value, int):
            return f"<{name}>{value}</{name}>"
        text = str(value)
        return f"<{name}>{_cdata(text) if cdata else escape(text)}</{name}>"

    return "<xml>" + "".join(render(k, v) for k, v in fields.items()) + "</xml>"


class _FixedRandomPrp(PrpCrypto):
    """PrpCrypto with a fixed 16-byte prefix, to reproduce published ciphertexts."""

    def __init__(self, key: bytes, random16: str):
        super().__init__(key)
        self._random16 = random16

    def get_random_string(self) -> str:
        return self._random16


class CallbackBuilder:
    """Build what WeCom sends to `/wecom/callback`: signed, encrypted, like the real one."""

    def __init__(
        self, token: str, aes_key: str, corp_id: str, agent_id: int = 1000002, *, random16: str | None = None
    ):
        self.token = token
        self.corp_id = corp_id
        self.agent_id = agent_id
        self.key = base64.b64decode(aes_key + "=")
        self._prp = PrpCrypto(self.key) if random16 is None else _FixedRandomPrp(self.key, random16)
        self._ids = itertools.count(7_000_000_000_000_000_001)

    def sign(self, timestamp: str, nonce: str, encrypted: str) -> str:
        signer = WeChatSigner()
        signer.add_data(self.token, timestamp, nonce, encrypted)
        return signer.signature

    def encrypt(self, plaintext: str | bytes, receive_id: str | None = None) -> str:
        """random(16) + len(4, network order) + msg + receive id, PKCS#7 to 32, AES-CBC, base64."""
        return self._prp.encrypt(plaintext, self.corp_id if receive_id is None else receive_id).decode("ascii")

    def encrypt_raw(self, plain_block: bytes) -> str:
        """AES-CBC over exactly these bytes (a multiple of 16), no framing or padding added:
        for building corrupt plaintexts (bad padding, bad length, bad UTF-8)."""
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        encryptor = Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16])).encryptor()
        return base64.b64encode(encryptor.update(plain_block) + encryptor.finalize()).decode("ascii")

    @staticmethod
    def frame(xml: bytes, receive_id: bytes, random16: bytes = b"0123456789abcdef") -> bytes:
        """The unpadded plaintext WeCom encrypts."""
        return random16 + struct.pack("!I", len(xml)) + xml + receive_id

    def verify_query(self, echo_plain: str, *, timestamp: str = "1700000000", nonce: str = "1234567") -> dict[str, str]:
        echostr = self.encrypt(echo_plain)
        return {
            "msg_signature": self.sign(timestamp, nonce, echostr),
            "timestamp": timestamp,
            "nonce": nonce,
            "echostr": echostr,
        }

    def envelope(self, encrypted: str) -> bytes:
        return (
            f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt>"
            f"<AgentID><![CDATA[{self.agent_id}]]></AgentID></xml>"
        ).encode("utf-8")

    def post(
        self,
        xml: str,
        *,
        timestamp: str = "1700000000",
        nonce: str = "1234567",
        receive_id: str | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """(query parameters, body) of a POST callback carrying `xml`."""
        return self.post_encrypted(self.encrypt(xml, receive_id), timestamp=timestamp, nonce=nonce)

    def post_encrypted(
        self, encrypted: str, *, timestamp: str = "1700000000", nonce: str = "1234567"
    ) -> tuple[dict[str, str], bytes]:
        query = {"msg_signature": self.sign(timestamp, nonce, encrypted), "timestamp": timestamp, "nonce": nonce}
        return query, self.envelope(encrypted)

    # -- plaintext messages, as WeCom writes them --------------------------------------------

    def _head(self, user: str, create_time: int, msg_type: str) -> dict[str, Any]:
        return {"ToUserName": self.corp_id, "FromUserName": user, "CreateTime": create_time, "MsgType": msg_type}

    def next_msg_id(self) -> int:
        return next(self._ids)

    def text(self, user: str, content: str, *, msg_id: int | None = None, create_time: int = 1700000000, cdata: bool = True) -> str:
        fields = self._head(user, create_time, "text")
        fields.update(Content=content, MsgId=msg_id or self.next_msg_id(), AgentID=self.agent_id)
        return message_xml(fields, cdata=cdata)

    def image(self, user: str, media_id: str, *, msg_id: int | None = None, create_time: int = 1700000000) -> str:
        fields = self._head(user, create_time, "image")
        fields.update(
            PicUrl="https://wework.qpic.cn/fake.jpg", MediaId=media_id, MsgId=msg_id or self.next_msg_id(),
            AgentID=self.agent_id,
        )
        return message_xml(fields)

    def voice(
        self, user: str, media_id: str, *, fmt: str = "amr", recognition: str | None = None,
        msg_id: int | None = None, create_time: int = 1700000000,
    ) -> str:
        fields = self._head(user, create_time, "voice")
        fields.update(MediaId=media_id, Format=fmt)
        if recognition is not None:
            fields["Recognition"] = recognition
        fields.update(MsgId=msg_id or self.next_msg_id(), AgentID=self.agent_id)
        return message_xml(fields)

    def location(
        self, user: str, latitude: float, longitude: float, label: str = "", *, scale: int = 15,
        msg_id: int | None = None, create_time: int = 1700000000,
    ) -> str:
        fields = self._head(user, create_time, "location")
        fields.update(
            Location_X=str(latitude), Location_Y=str(longitude), Scale=scale, Label=label,
            MsgId=msg_id or self.next_msg_id(), AgentID=self.agent_id,
        )
        return message_xml(fields)

    def card_click(
        self, user: str, key: str, task_id: str, *, card_type: str = "button_interaction",
        create_time: int = 1700000000, response_code: str = "rc-fake",
    ) -> str:
        fields = self._head(user, create_time, "event")
        fields.update(
            Event="template_card_event", EventKey=key, TaskId=task_id, CardType=card_type,
            ResponseCode=response_code, AgentID=self.agent_id,
        )
        return message_xml(fields)

    def event(self, user: str, event: str, *, create_time: int = 1700000000, **extra: Any) -> str:
        fields = self._head(user, create_time, "event")
        fields.update(Event=event, **extra)
        fields["AgentID"] = self.agent_id
        return message_xml(fields)

