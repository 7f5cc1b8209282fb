"""WeCom (企业微信) self-built app: the inbound callback.

`/wecom/callback` answers two kinds of request from the WeCom servers:

* GET, URL verification: check `msg_signature` over token/timestamp/nonce/echostr,
  decrypt `echostr` and answer the bare plaintext.
* POST, a message or an event: check the signature, decrypt (AES-256-CBC, wechatpy's
  crypto), verify the receive id is our corp id, parse the XML (DOCTYPE and entity
  declarations refused), map it to a channel-neutral `IncomingMessage`, hand it to
  the injected `store` and answer 200 at once. Business logic runs later, in the
  dispatcher; WeCom retries an unanswered callback after 5 s.

Every bad input gets a 4xx with a logged reason and nothing is stored; a store failure
gets a 503 so that WeCom retries. The outbound API client is in `wecom_api.py`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import struct
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any
from xml.parsers import expat

from aiohttp import web
from wechatpy.enterprise.crypto import PrpCrypto
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.enterprise.messages import MESSAGE_TYPES
from wechatpy.messages import UnknownMessage
from wechatpy.utils import WeChatSigner

from bot.channels.wecom_api import WeComClient  # noqa: F401  (re-exported for app.py)
from bot.message import Attachment, IncomingMessage, Location, MessageKind
from config.settings import Settings

__all__ = ["CALLBACK_PATH", "CallbackRejected", "WeComCallback", "WeComClient", "WeComCrypto", "to_incoming"]

log = logging.getLogger("kpbot.wecom")

CHANNEL = "wecom"
CALLBACK_PATH = "/wecom/callback"
MAX_XML_DEPTH = 8

StoreFn = Callable[[IncomingMessage], Awaitable[bool]]
NowFn = Callable[[], datetime]


# -- errors --------------------------------------------------------------------


class CallbackRejected(Exception):
    """A callback we refuse. `status` is the HTTP status to answer (always 4xx)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _bad(reason: str) -> CallbackRejected:
    return CallbackRejected(400, reason)


def _forbidden(reason: str) -> CallbackRejected:
    return CallbackRejected(403, reason)


# -- XML -------------------------------------------------------------------------


class _ForbiddenXML(Exception):
    pass


def _refuse_doctype(*_args: Any) -> None:
    raise _ForbiddenXML("DOCTYPE declaration")


def _refuse_entity(*_args: Any) -> None:
    raise _ForbiddenXML("ENTITY declaration")


def _refuse_external(*_args: Any) -> int:
    raise _ForbiddenXML("external entity reference")


def parse_xml(data: str | bytes) -> dict[str, Any]:
    """Parse WeCom's flat XML into a dict: leaf -> text, nested -> dict, repeated -> list.

    Refuses any DOCTYPE, entity declaration or external entity (before anything is
    expanded), requires the root element `<xml>`, and ignores attributes. Raises
    CallbackRejected(400) on anything else that is not well-formed.
    """
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_entity
    parser.UnparsedEntityDeclHandler = _refuse_entity
    parser.ExternalEntityRefHandler = _refuse_external
    parser.buffer_text = True

    # Each frame: [tag, children (dict), text parts (list)].
    stack: list[list[Any]] = []
    result: list[tuple[str, Any]] = []

    def start(tag: str, _attrs: Any) -> None:
        if len(stack) >= MAX_XML_DEPTH:
            raise _ForbiddenXML("nesting too deep")
        stack.append([tag, {}, []])

    def end(_tag: str) -> None:
        tag, children, text = stack.pop()
        value: Any = children if children else "".join(text)
        if not stack:
            result.append((tag, value))
            return
        siblings = stack[-1][1]
        if tag in siblings:
            existing = siblings[tag]
            if isinstance(existing, list):
                existing.append(value)
            else:
                siblings[tag] = [existing, value]
        else:
            siblings[tag] = value

    def chars(text: str) -> None:
        if stack:
            stack[-1][2].append(text)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(data, True)
    except _ForbiddenXML as exc:
        raise _bad(f"XML refused: {exc}") from None
    except (expat.ExpatError, ValueError, UnicodeError) as exc:
        raise _bad(f"malformed XML: {exc}") from None
    if not result or result[0][0] != "xml":
        raise _bad("XML root is not <xml>")
    root = result[0][1]
    return root if isinstance(root, dict) else {}


def _text_field(fields: Mapping[str, Any], name: str, *, required: bool = True) -> str:
    value = fields.get(name)
    if value is None:
        if required:
            raise _bad(f"missing field {name}")
        return ""
    if not isinstance(value, str):
        raise _bad(f"field {name} is not text")
    value = value.strip()
    if required and not value:
        raise _bad(f"empty field {name}")
    return value


# -- crypto ---------------------------------------------------------------------


def _exc_name(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def compute_signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """WeCom's msg_signature: sha1 of the sorted, concatenated four strings."""
    signer = WeChatSigner()
    signer.add_data(token, timestamp, nonce, encrypted)
    return signer.signature


class WeComCrypto:
    """Signature check and decryption for one app (token, EncodingAESKey, corp id).

    Signatures are compared in constant time; decryption is wechatpy's PrpCrypto, whose
    failures on hostile input (bad base64, wrong block length, bad padding, bad UTF-8,
    someone else's receive id) all become CallbackRejected.
    """

    def __init__(self, token: str, aes_key: str, corp_id: str):
        if not token or not corp_id:
            raise ValueError("WeCom token and corp id must be set")
        try:
            key = base64.b64decode(aes_key + "=", validate=True)
        except (binascii.Error, ValueError, TypeError):
            key = b""
        if len(aes_key) != 43 or len(key) != 32:
            raise ValueError("WeCom EncodingAESKey must be 43 base64 characters (a 32-byte key)")
        self.token = token
        self.corp_id = corp_id
        self.key = key
        self._prp = PrpCrypto(key)

    def check_signature(self, signature: str, timestamp: str, nonce: str, encrypted: str) -> None:
        expected = compute_signature(self.token, timestamp, nonce, encrypted)
        if not hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace")):
            raise _forbidden("bad msg_signature")

    def decrypt(self, encrypted: str) -> str:
        if not encrypted:
            raise _bad("empty ciphertext")
        try:
            return self._prp.decrypt(encrypted, self.corp_id)
        except InvalidCorpIdException:
            raise _forbidden("receive id is not our corp id") from None
        except (binascii.Error, UnicodeDecodeError) as exc:  # before ValueError: both subclass it
            raise _bad(f"undecodable ciphertext ({_exc_name(exc)})") from None
        except (ValueError, struct.error, IndexError, TypeError) as exc:
            raise _bad(f"corrupt ciphertext ({_exc_name(exc)})") from None

    def verify_url(self, signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        self.check_signature(signature, timestamp, nonce, echostr)
        return self.decrypt(echostr)

    def decrypt_message(self, signature: str, timestamp: str, nonce: str, envelope: str | bytes) -> str:
        outer = parse_xml(envelope)
        encrypted = _text_field(outer, "Encrypt")
        self.check_signature(signature, timestamp, nonce, encrypted)
        return self.decrypt(encrypted)


# -- mapping ---------------------------------------------------------------------


def _digest_id(prefix: str, parts: list[Any]) -> str:
    raw = json.dumps(parts, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return f"{prefix}:{hashlib.sha256(raw.encode('utf-8')).hexdigest()[:40]}"


def event_message_id(fields: Mapping[str, Any]) -> str:
    """Events carry no MsgId: FromUserName + CreateTime + the event's own keys."""
    return _digest_id(
        "event",
        [
            fields.get("FromUserName", ""),
            fields.get("CreateTime", ""),
            fields.get("Event", ""),
            fields.get("EventKey", ""),
            fields.get("TaskId", ""),
        ],
    )


def _coordinate(value: str, name: str, limit: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise _bad(f"field {name} is not a number") from None
    if not -limit <= number <= limit:
        raise _bad(f"field {name} out of range")
    return number


_VOICE_MIME = {"amr": "audio/amr", "speex": "audio/speex"}


def to_incoming(xml_text: str, received_at: datetime) -> IncomingMessage:
    """Map one decrypted WeCom XML message to an IncomingMessage (pure; no I/O).

    wechatpy's message classes give the typed message (text, image, voice, location,
    ...). Events are read from the parsed fields directly: `template_card_event` is
    not modelled by wechatpy 1.8.18 (it would be an UnknownMessage).
    """
    fields = parse_xml(xml_text)  # refuses DOCTYPE/ENTITY before wechatpy's parser sees it
    sender = _text_field(fields, "FromUserName")
    create_time = _text_field(fields, "CreateTime")
    if not (create_time.isascii() and create_time.isdigit()):
        raise _bad("field CreateTime is not an integer")
    msg_type = _text_field(fields, "MsgType").lower()

    base: dict[str, Any] = {"channel": CHANNEL, "sender_id": sender, "received_at": received_at}

    if msg_type == "event":
        event = _text_field(fields, "Event").lower()
        message_id = event_message_id(fields)
        if event == "template_card_event":
            key = _text_field(fields, "EventKey", required=False) or _text_field(
                fields, "ButtonKey", required=False
            )
            if not key:
                raise _bad("template_card_event without EventKey")
            return IncomingMessage(message_id=message_id, kind=MessageKind.ACTION, action=key, **base)
        log.info("wecom event %r from %s tolerated as unknown", event, sender)
        return IncomingMessage(message_id=message_id, kind=MessageKind.UNKNOWN, **base)

    # wechatpy's message model over the fields parsed above: its parse_message
    # would parse the same XML a second time (with xmltodict), unguarded.
    parsed = MESSAGE_TYPES.get(msg_type, UnknownMessage)(fields)
    msg_id = _text_field(fields, "MsgId", required=False)
    message_id = msg_id or _digest_id("msg", [fields])

    if msg_type == "text":
        if "Content" not in fields:
            raise _bad("missing field Content")
        _text_field(fields, "Content", required=False)  # must be text, not a nested element
        return IncomingMessage(message_id=message_id, kind=MessageKind.TEXT, text=parsed.content or "", **base)
    if msg_type == "image":
        media_id = _text_field(fields, "MediaId")
        attachment = Attachment(kind="image", media_id=media_id)
        return IncomingMessage(message_id=message_id, kind=MessageKind.IMAGE, attachments=(attachment,), **base)
    if msg_type == "voice":
        media_id = _text_field(fields, "MediaId")
        fmt = _text_field(fields, "Format", required=False).lower()
        attachment = Attachment(kind="voice", media_id=media_id, mime=_VOICE_MIME.get(fmt))
        recognition = _text_field(fields, "Recognition", required=False)
        return IncomingMessage(
            message_id=message_id, kind=MessageKind.VOICE, text=recognition, attachments=(attachment,), **base
        )
    if msg_type == "location":
        latitude = _coordinate(_text_field(fields, "Location_X"), "Location_X", 90.0)
        longitude = _coordinate(_text_field(fields, "Location_Y"), "Location_Y", 180.0)
        label = _text_field(fields, "Label", required=False)
        location = Location(latitude=latitude, longitude=longitude, label=label)
        return IncomingMessage(message_id=message_id, kind=MessageKind.LOCATION, location=location, **base)

    log.info("wecom message type %r (%s) from %s tolerated as unknown", msg_type, type(parsed).__name__, sender)
    return IncomingMessage(message_id=message_id, kind=MessageKind.UNKNOWN, **base)


# -- the aiohttp routes ----------------------------------------------------------------


def _query(request: web.Request, name: str) -> str:
    # request.query has already percent-decoded the value (%2B -> "+"); never rebuild it.
    value = request.query.get(name)
    if not value:
        raise _bad(f"missing query parameter {name}")
    return value


class WeComCallback:
    """The `/wecom/callback` routes for one WeCom app.

    `store(message)` persists the message (insert-or-ignore on its message id) and
    returns False for a duplicate; the POST answers 200 as soon as it returns.
    """

    def __init__(
        self,
        *,
        token: str,
        aes_key: str,
        corp_id: str,
        store: StoreFn,
        now: NowFn,
        max_body_bytes: int = 256 * 1024,
        path: str = CALLBACK_PATH,
    ):
        self.crypto = WeComCrypto(token, aes_key, corp_id)
        self._store = store
        self._now = now
        self.max_body_bytes = max_body_bytes
        self.path = path

    @classmethod
    def from_settings(cls, settings: Settings, *, store: StoreFn, now: NowFn) -> WeComCallback:
        return cls(
            token=settings.wecom_token,
            aes_key=settings.wecom_aes_key,
            corp_id=settings.wecom_corp_id,
            store=store,
            now=now,
            max_body_bytes=settings.max_body_bytes,
        )

    def routes(self) -> list[web.RouteDef]:
        return [web.get(self.path, self.handle_get, allow_head=False), web.post(self.path, self.handle_post)]

    def add_routes(self, app: web.Application) -> None:
        app.router.add_routes(self.routes())

    @staticmethod
    def _reject(request: web.Request, exc: CallbackRejected) -> web.Response:
        log.warning(
            "wecom callback %s rejected (%d): %s [from %s]", request.method, exc.status, exc.reason, request.remote
        )
        return web.Response(status=exc.status, text=exc.reason)

    async def handle_get(self, request: web.Request) -> web.Response:
        try:
            signature = _query(request, "msg_signature")
            timestamp = _query(request, "timestamp")
            nonce = _query(request, "nonce")
            # Base64 has no spaces: a space here is a literal "+" that was form-decoded.
            echostr = _query(request, "echostr").replace(" ", "+")
            plain = self.crypto.verify_url(signature, timestamp, nonce, echostr)
        except CallbackRejected as exc:
            return self._reject(request, exc)
        log.info("wecom callback URL verified [from %s]", request.remote)
        return web.Response(text=plain, content_type="text/plain")

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise CallbackRejected(413, f"body of {request.content_length} bytes exceeds {limit}")
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = await request.content.readany()
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise CallbackRejected(413, f"body exceeds {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def handle_post(self, request: web.Request) -> web.Response:
        try:
            signature = _query(request, "msg_signature")
            timestamp = _query(request, "timestamp")
            nonce = _query(request, "nonce")
            body = await self._read_body(request)
            if not body.strip():
                raise _bad("empty body")
            xml_text = self.crypto.decrypt_message(signature, timestamp, nonce, body)
            message = to_incoming(xml_text, self._now())
        except CallbackRejected as exc:
            return self._reject(request, exc)
        try:
            fresh = await self._store(message)
        except Exception:
            log.exception("wecom callback: storing message %s failed; WeCom will retry", message.message_id)
            return web.Response(status=503, text="store unavailable")
        log.info(
            "wecom %s %s from %s stored%s",
            message.kind,
            message.message_id,
            message.sender_id,
            "" if fresh else " (duplicate)",
        )
        return web.Response(text="")
