"""DingTalk (钉钉) enterprise-app robot: HTTP callback, message parsing, signatures.

Three modules make up the channel:

* this one: the robot's HTTP callback at ``/dingtalk/callback`` (signature check,
  parsing into the channel-neutral ``IncomingMessage``, store, answer at once) and
  the pure helpers shared with Stream mode;
* ``dingtalk_stream``: Stream mode (the websocket that needs no public address);
* ``dingtalk_api``: the outbound API client (tokens, robot messages, session
  webhooks, work notifications, group custom-robot webhooks, file download).

The HTTP callback (``timestamp`` + ``sign`` headers): DingTalk signs
``timestamp + "\\n" + appSecret`` with HMAC-SHA256 keyed by the appSecret and
sends the base64 of the digest. ``timestamp`` is in milliseconds; a request more
than one hour away from our clock is refused. The check never passes when no
secret is configured.

Buttons: DingTalk's robot action cards cannot call back the bot. Each button of a
card we send is a ``dtmd://dingtalkclient/sendMessage?content=<button key>`` link
(see ``dingtalk_api.button_url``), so a click makes the person's client send the
button key as an ordinary text message. A text message whose whole content looks
like a button key (``ACTION_PATTERN``: ``verb:argument`` without spaces or
slashes, e.g. ``ack:KP-2026-0001``) is therefore mapped to ``MessageKind.ACTION``
with ``action`` set, exactly like a WeCom card click.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from bot.message import Attachment, IncomingMessage, MessageKind
from config.settings import Settings

log = logging.getLogger(__name__)

CHANNEL = "dingtalk"
CALLBACK_PATH = "/dingtalk/callback"
MAX_CLOCK_SKEW = timedelta(hours=1)

# What a click on one of our action-card buttons sends back (see module doc).
ACTION_PATTERN = re.compile(r"[a-z][a-z0-9_]*:[A-Za-z0-9_.:\-]+")

Store = Callable[[IncomingMessage], Awaitable[bool]]
Clock = Callable[[], datetime]

# The answer to a callback that must not post anything into the conversation.
_EMPTY_REPLY = {"msgtype": "empty"}


class DingTalkPayloadError(ValueError):
    """A robot message body that is not what DingTalk documents."""


# -- signatures --------------------------------------------------------------


def compute_sign(timestamp: str, secret: str) -> str:
    """base64(HMAC-SHA256(secret, timestamp + "\\n" + secret)).

    The same construction signs the robot HTTP callback (secret = appSecret) and
    the group custom-robot webhook URL (secret = the robot's ``SEC...`` secret;
    the URL carries it url-encoded).
    """
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def check_callback_sign(timestamp: str | None, sign: str | None, app_secret: str, now: datetime) -> str | None:
    """Why a callback's ``timestamp``/``sign`` headers are refused, or None when valid."""
    if not app_secret:
        return "no app secret configured"
    if not timestamp or not sign:
        return "missing timestamp or sign header"
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 15:
        return "timestamp is not a millisecond number"
    sent_at = datetime.fromtimestamp(int(timestamp) / 1000, tz=UTC)
    if abs(now - sent_at) > MAX_CLOCK_SKEW:
        return f"timestamp {timestamp} is more than an hour off"
    expected = compute_sign(timestamp, app_secret)
    if not hmac.compare_digest(expected.encode("ascii"), sign.encode("utf-8", "replace")):
        return "sign does not match"
    return None


# -- parsing -------------------------------------------------------------------


def _ms_to_datetime(value: Any) -> datetime | None:
    try:
        millis = int(value)
    except (TypeError, ValueError):
        return None
    if millis <= 0:
        return None
    try:
        return datetime.fromtimestamp(millis / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _str_field(payload: dict[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise DingTalkPayloadError(f"{key} is not a string")
    return value


def _content(payload: dict[str, Any]) -> dict[str, Any]:
    content = payload.get("content")
    if isinstance(content, str):  # some deliveries carry it as a JSON string
        try:
            content = json.loads(content)
        except ValueError:
            raise DingTalkPayloadError("content is not JSON") from None
    if not isinstance(content, dict):
        raise DingTalkPayloadError("content is missing or not an object")
    return content


def _download_code(content: dict[str, Any]) -> str:
    code = content.get("downloadCode") or content.get("pictureDownloadCode")
    if not isinstance(code, str) or not code:
        raise DingTalkPayloadError("content.downloadCode is missing")
    return code


def parse_robot_message(
    payload: Any,
    received_at: datetime,
    action_pattern: re.Pattern[str] | None = ACTION_PATTERN,
) -> IncomingMessage:
    """Map one robot message (HTTP callback body or Stream ``data``) to an IncomingMessage.

    Raises DingTalkPayloadError when a field the bot relies on is missing or of the
    wrong type; an unknown ``msgtype`` is not an error (``MessageKind.UNKNOWN``).
    """
    if not isinstance(payload, dict):
        raise DingTalkPayloadError("body is not a JSON object")
    message_id = _str_field(payload, "msgId")
    if not message_id:
        raise DingTalkPayloadError("msgId is missing")
    msgtype = _str_field(payload, "msgtype")
    if not msgtype:
        raise DingTalkPayloadError("msgtype is missing")
    sender_id = _str_field(payload, "senderStaffId") or _str_field(payload, "senderId")
    if not sender_id:
        raise DingTalkPayloadError("senderStaffId and senderId are missing")

    chat_id = None
    if str(payload.get("conversationType", "1")) == "2":
        chat_id = _str_field(payload, "conversationId")
        if not chat_id:
            raise DingTalkPayloadError("group message without conversationId")

    webhook = _str_field(payload, "sessionWebhook")
    webhook_expires = _ms_to_datetime(payload.get("sessionWebhookExpiredTime")) if webhook else None
    if webhook_expires is None:
        webhook = None  # of unknown validity: never used

    kind = MessageKind.UNKNOWN
    text = ""
    action = None
    attachments: list[Attachment] = []
    if msgtype == "text":
        body = payload.get("text")
        if not isinstance(body, dict) or not isinstance(body.get("content", ""), str):
            raise DingTalkPayloadError("text.content is missing")
        text = body.get("content", "").strip()
        kind = MessageKind.TEXT
        if action_pattern is not None and action_pattern.fullmatch(text):
            kind = MessageKind.ACTION
            action = text
    elif msgtype == "picture":
        attachments.append(Attachment(kind="image", media_id=_download_code(_content(payload))))
        kind = MessageKind.IMAGE
    elif msgtype == "richText":
        items = _content(payload).get("richText")
        if not isinstance(items, list):
            raise DingTalkPayloadError("content.richText is not a list")
        lines = []
        for item in items:
            if not isinstance(item, dict):
                continue
            if isinstance(item.get("text"), str):
                lines.append(item["text"])
            code = item.get("downloadCode") or item.get("pictureDownloadCode")
            if isinstance(code, str) and code:
                attachments.append(Attachment(kind="image", media_id=code))
        text = "\n".join(line for line in lines).strip()
        kind = MessageKind.TEXT if text or not attachments else MessageKind.IMAGE
    elif msgtype == "audio":
        content = _content(payload)
        recognition = content.get("recognition")
        text = recognition.strip() if isinstance(recognition, str) else ""
        attachments.append(Attachment(kind="voice", media_id=_download_code(content)))
        kind = MessageKind.VOICE
    elif msgtype in ("file", "video"):
        content = _content(payload)
        name = content.get("fileName")
        text = name if isinstance(name, str) else ""
        mime = None
        if msgtype == "video":
            video_type = content.get("videoType")
            mime = f"video/{video_type}" if isinstance(video_type, str) and video_type else "video/mp4"
        attachments.append(Attachment(kind="file", media_id=_download_code(content), mime=mime))
        kind = MessageKind.FILE
    else:
        log.info("dingtalk: tolerating unknown msgtype %r (msgId %s)", msgtype, message_id)

    return IncomingMessage(
        channel=CHANNEL,
        message_id=message_id,
        sender_id=sender_id,
        kind=kind,
        received_at=received_at,
        text=text,
        action=action,
        attachments=tuple(attachments),
        chat_id=chat_id,
        reply_webhook=webhook,
        reply_webhook_expires_at=webhook_expires,
    )


# -- HTTP callback -------------------------------------------------------------


async def _read_limited(request: web.Request, limit: int) -> bytes | None:
    """The body, or None when it is larger than ``limit`` bytes (whatever the headers say)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(64 * 1024)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class DingTalkCallback:
    """The robot's HTTP-mode message callback: verify, parse, store, answer at once.

    ``store`` persists the message (insert-or-ignore on the platform message id)
    and returns False for a duplicate; the callback answers 200 in both cases and
    never runs business logic. DingTalk waits about 1.5 s for the answer.
    """

    def __init__(
        self,
        app_secret: str,
        store: Store,
        now: Clock,
        max_body_bytes: int = 256 * 1024,
        action_pattern: re.Pattern[str] | None = ACTION_PATTERN,
    ):
        self._secret = app_secret
        self._store = store
        self._now = now
        self._max_body_bytes = max_body_bytes
        self._action_pattern = action_pattern

    @classmethod
    def from_settings(cls, settings: Settings, *, store: Store, now: Clock) -> DingTalkCallback:
        return cls(settings.dingtalk_app_secret, store, now, max_body_bytes=settings.max_body_bytes)

    def routes(self, path: str = CALLBACK_PATH) -> list[web.RouteDef]:
        return [web.post(path, self.handle)]

    def add_routes(self, app: web.Application, path: str = CALLBACK_PATH) -> None:
        app.router.add_routes(self.routes(path))

    @staticmethod
    def _refuse(status: int, reason: str, request: web.Request) -> web.Response:
        log.warning("dingtalk callback refused (%s) from %s: %s", status, request.remote, reason)
        return web.json_response({"error": reason}, status=status)

    async def handle(self, request: web.Request) -> web.Response:
        now = self._now()
        if not self._secret:
            return self._refuse(403, "no app secret configured", request)
        timestamp = request.headers.get("timestamp")
        sign = request.headers.get("sign")
        if not timestamp or not sign:
            return self._refuse(401, "missing timestamp or sign header", request)
        problem = check_callback_sign(timestamp, sign, self._secret, now)
        if problem:
            return self._refuse(403, problem, request)

        body = await _read_limited(request, self._max_body_bytes)
        if body is None:
            return self._refuse(413, f"body larger than {self._max_body_bytes} bytes", request)
        try:
            payload = json.loads(body)
        except ValueError:  # includes UnicodeDecodeError
            return self._refuse(400, "body is not JSON", request)
        try:
            message = parse_robot_message(payload, now, self._action_pattern)
        except DingTalkPayloadError as exc:
            return self._refuse(400, str(exc), request)

        try:
            fresh = await self._store(message)
        except Exception:
            log.exception("dingtalk callback: storing msgId %s failed", message.message_id)
            return web.json_response({"error": "not stored"}, status=503)
        if not fresh:
            log.info("dingtalk callback: duplicate msgId %s ignored", message.message_id)
        return web.json_response(_EMPTY_REPLY)
