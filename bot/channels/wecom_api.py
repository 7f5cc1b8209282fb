"""WeCom (企业微信) outbound: an aiohttp API client for one self-built app, and the
group-robot webhook.

wechatpy's client is blocking `requests`, so it is not used on the event loop; this
client speaks the few endpoints the bot needs:

* `cgi-bin/gettoken`: the access token, cached until `expires_in` minus a margin;
  concurrent callers share one fetch; a 40014 / 42001 / 40001 answer to any call makes
  exactly one refetch and one retry.
* `cgi-bin/message/send`: text (split at the 2048-byte UTF-8 limit), markdown, and a
  `button_interaction` template card when the reply has buttons; a file message after
  `cgi-bin/media/upload` when the reply carries a file.
* `cgi-bin/media/get`: download a received image or voice (a JSON body is an error).
* `cgi-bin/webhook/send?key=...`: the office group robot, at most 20 messages a minute
  per robot (a local sliding-window limiter; the platform's 45009 is a retryable failure).

Nothing here sleeps to back off: a retryable failure goes back to the outbox, which
owns retries; the error text carries a "retry after N s" hint.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import mimetypes
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import aiohttp

from bot.channels.outbox_sender import ReplySender
from bot.channels.ratelimit import SlidingWindowLimiter
from bot.message import Reply, SendResult
from config.settings import Settings

log = logging.getLogger("kpbot.wecom")

DEFAULT_API_BASE = "https://qyapi.weixin.qq.com"

TEXT_LIMIT_BYTES = 2048  # message/send text.content and markdown.content
WEBHOOK_MARKDOWN_LIMIT_BYTES = 4096  # group robot markdown.content
WEBHOOK_IMAGE_LIMIT_BYTES = 2 * 1024 * 1024  # group robot image, before base64
CARD_MAX_BUTTONS = 6
CARD_BUTTON_KEY_LIMIT_BYTES = 1024
CARD_TITLE_CHARS = 36  # main_title.title, documented as a suggestion
CARD_SUBTITLE_CHARS = 112  # sub_title_text, documented as a suggestion
TASK_ID_LIMIT_BYTES = 128
UPLOAD_MIN_BYTES = 6  # "所有文件size必须大于5个字节"
UPLOAD_LIMIT_BYTES = {"image": 10 * 1024 * 1024, "voice": 2 * 1024 * 1024, "video": 10 * 1024 * 1024, "file": 20 * 1024 * 1024}

TOKEN_ERRCODES = frozenset({40014, 42001, 40001})  # invalid / expired token (40001: invalid credential)
RETRYABLE_ERRCODES = frozenset({-1, 45009, 45033})  # busy, frequency limit, concurrency limit
RETRY_AFTER = {45009: 60.0, 45033: 5.0, -1: 5.0}
NETWORK_RETRY_AFTER = 5.0

_SECRET_PARAM = re.compile(r"(access_token|corpsecret|key)=[^&\s'\"]+")
_TASK_ID_SAFE = re.compile(r"[^0-9A-Za-z_\-@]")
_FILENAME_SAFE = re.compile(r"[^0-9A-Za-z_\-]")


class WeComAPIError(Exception):
    """A failed WeCom call. `retryable` says whether the same call may succeed later."""

    def __init__(self, message: str, *, retryable: bool, errcode: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.errcode = errcode
        self.retry_after = retry_after

    def describe(self) -> str:
        text = str(self)
        if self.retryable and self.retry_after:
            text += f" (retry after {self.retry_after:g} s)"
        return text

    def to_result(self) -> SendResult:
        return SendResult.failure(self.describe(), retryable=self.retryable)


class WeComMediaError(WeComAPIError):
    """media/get or media/upload failed (including a JSON error body instead of a file)."""


def _errcode_error(data: dict[str, Any], what: str, cls: type[WeComAPIError] = WeComAPIError) -> WeComAPIError:
    code = _errcode(data)
    retryable = code in RETRYABLE_ERRCODES or code in TOKEN_ERRCODES
    return cls(
        f"wecom {what}: errcode {code} {data.get('errmsg', '')}".rstrip(),
        retryable=retryable,
        errcode=code,
        retry_after=RETRY_AFTER.get(code),
    )


def _errcode(data: dict[str, Any]) -> int:
    try:
        return int(data.get("errcode", 0) or 0)
    except (TypeError, ValueError):
        return -1


# -- text ------------------------------------------------------------------------


def split_utf8(text: str, limit: int = TEXT_LIMIT_BYTES) -> list[str]:
    """Split `text` into pieces of at most `limit` UTF-8 bytes, never inside a character.

    A piece ends after the last newline of its window when that newline is in the
    window's second half; otherwise at the last whole character that fits.
    """
    if limit < 4:
        raise ValueError("limit must hold at least one character (4 bytes)")
    pieces: list[str] = []
    rest = text
    while len(rest.encode("utf-8")) > limit:
        # Longest prefix that fits: walk characters (cheap; texts are a few KB at most).
        size = 0
        cut = 0
        for index, char in enumerate(rest):
            size += len(char.encode("utf-8"))
            if size > limit:
                cut = index
                break
        newline = rest.rfind("\n", 0, cut)
        if newline >= cut // 2:
            cut = newline + 1
        pieces.append(rest[:cut])
        rest = rest[cut:]
    if rest or not pieces:
        pieces.append(rest)
    return pieces


def _truncate(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


# -- the client ------------------------------------------------------------------------


@dataclass
class _Response:
    status: int
    content_type: str
    headers: Any
    body: bytes

    def json(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None
        return data if isinstance(data, dict) else None


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _default_id() -> str:
    return uuid.uuid4().hex


class WeComClient:
    """Async client for one WeCom self-built app (corp id + app secret + agent id)."""

    def __init__(
        self,
        *,
        corp_id: str,
        secret: str,
        agent_id: int | None,
        session: aiohttp.ClientSession,
        api_base: str = DEFAULT_API_BASE,
        now: Callable[[], datetime] = _utcnow,
        new_id: Callable[[], str] = _default_id,
        token_margin: timedelta = timedelta(minutes=5),
        timeout: aiohttp.ClientTimeout | None = None,
        webhook_limiter: SlidingWindowLimiter | None = None,
        max_media_bytes: int = 20 * 1024 * 1024,
    ):
        self.corp_id = corp_id
        self.secret = secret
        self.agent_id = agent_id
        self.api_base = api_base.rstrip("/")
        self._session = session
        self._now = now
        self._new_id = new_id
        self._token_margin = token_margin
        self._timeout = timeout or aiohttp.ClientTimeout(total=15)
        self.webhook_limiter = webhook_limiter or SlidingWindowLimiter(20, 60.0)
        self.max_media_bytes = max_media_bytes
        self._token: str | None = None
        self._token_expires_at: datetime | None = None
        self._token_fetch: asyncio.Future[str] | None = None
        self.token_fetches = 0  # how many times gettoken was called (for the record and tests)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, session: aiohttp.ClientSession, now: Callable[[], datetime] = _utcnow
    ) -> WeComClient:
        return cls(
            corp_id=settings.wecom_corp_id,
            secret=settings.wecom_secret,
            agent_id=settings.wecom_agent_id,
            session=session,
            api_base=settings.wecom_api_base,
            now=now,
        )

    # -- HTTP ------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        json_body: Any = None,
        data: Any = None,
        max_bytes: int = 1024 * 1024,
    ) -> _Response:
        try:
            async with self._session.request(
                method, url, params=params, json=json_body, data=data, timeout=self._timeout
            ) as resp:
                if resp.content_length is not None and resp.content_length > max_bytes:
                    raise WeComMediaError(
                        f"wecom {urlsplit(url).path}: response of {resp.content_length} bytes exceeds {max_bytes}",
                        retryable=False,
                    )
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > max_bytes:
                        raise WeComMediaError(
                            f"wecom {urlsplit(url).path}: response exceeds {max_bytes} bytes", retryable=False
                        )
                    chunks.append(chunk)
                response = _Response(resp.status, resp.content_type or "", resp.headers, b"".join(chunks))
        except WeComAPIError:
            raise
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise WeComAPIError(
                f"wecom {urlsplit(url).path}: network error {type(exc).__name__}: {_scrub(str(exc))}",
                retryable=True,
                retry_after=NETWORK_RETRY_AFTER,
            ) from None
        if response.status >= 500 or response.status == 429:
            raise WeComAPIError(
                f"wecom {urlsplit(url).path}: HTTP {response.status}", retryable=True, retry_after=NETWORK_RETRY_AFTER
            )
        if response.status >= 400:
            raise WeComAPIError(f"wecom {urlsplit(url).path}: HTTP {response.status}", retryable=False)
        return response

    async def _json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        response = await self._request(method, url, **kwargs)
        data = response.json()
        if data is None:
            raise WeComAPIError(
                f"wecom {urlsplit(url).path}: answer is not a JSON object", retryable=True, retry_after=NETWORK_RETRY_AFTER
            )
        return data

    # -- access token ------------------------------------------------------------------

    def _token_valid(self, stale: str | None) -> bool:
        return (
            self._token is not None
            and self._token != stale
            and self._token_expires_at is not None
            and self._now() < self._token_expires_at
        )

    async def access_token(self, *, stale: str | None = None) -> str:
        """The cached token, fetched when missing, expired, or equal to `stale` (a token
        the platform just refused). Concurrent callers share one fetch and its outcome,
        success or failure."""
        if self._token_valid(stale):
            return self._token  # type: ignore[return-value]
        if self._token_fetch is None:
            self._token_fetch = asyncio.ensure_future(self._fetch_token())
            self._token_fetch.add_done_callback(self._token_fetch_done)
        return await asyncio.shield(self._token_fetch)

    def _token_fetch_done(self, task: asyncio.Future[str]) -> None:
        self._token_fetch = None
        if not task.cancelled():
            task.exception()  # retrieved here too, so a fetch nobody awaits any more is not reported

    async def _fetch_token(self) -> str:
        self.token_fetches += 1
        data = await self._json(
            "GET",
            f"{self.api_base}/cgi-bin/gettoken",
            params={"corpid": self.corp_id, "corpsecret": self.secret},
        )
        code = _errcode(data)
        if code != 0:
            error = _errcode_error(data, "gettoken")
            error.retryable = code in RETRYABLE_ERRCODES  # a refused secret or corp id is configuration
            raise error
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise WeComAPIError("wecom gettoken: no access_token in answer", retryable=True, retry_after=5.0)
        try:
            lifetime = float(data.get("expires_in", 7200))
        except (TypeError, ValueError):
            lifetime = 7200.0
        usable = max(lifetime - self._token_margin.total_seconds(), lifetime / 2)
        self._token = token
        self._token_expires_at = self._now() + timedelta(seconds=usable)
        log.info("wecom access token fetched (valid %.0f s, used for %.0f s)", lifetime, usable)
        return token

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: Any = None,
        form: Callable[[], aiohttp.MultipartWriter] | None = None,
        max_bytes: int = 1024 * 1024,
    ) -> _Response:
        """Call an API with the access token; on a token error refetch once and retry once."""
        token = await self.access_token()
        for attempt in (1, 2):
            response = await self._request(
                method,
                f"{self.api_base}{path}",
                params={**(params or {}), "access_token": token},
                json_body=json_body,
                data=form() if form else None,
                max_bytes=max_bytes,
            )
            data = response.json() if _looks_like_json(response) else None
            if attempt == 1 and data is not None and _errcode(data) in TOKEN_ERRCODES:
                log.info("wecom %s: token refused (errcode %s); refetching once", path, _errcode(data))
                token = await self.access_token(stale=token)
                continue
            return response
        raise AssertionError("unreachable")

    async def _call_json(self, method: str, path: str, what: str, **kwargs: Any) -> dict[str, Any]:
        response = await self._call(method, path, **kwargs)
        data = response.json()
        if data is None:
            raise WeComAPIError(f"wecom {what}: answer is not a JSON object", retryable=True, retry_after=5.0)
        if _errcode(data) != 0:
            raise _errcode_error(data, what)
        return data

    # -- messages -------------------------------------------------------------------------

    def _task_id(self) -> str:
        raw = _TASK_ID_SAFE.sub("", f"kp-{self._new_id()}")
        return raw[:TASK_ID_LIMIT_BYTES]

    def message_payloads(self, user_id: str, reply: Reply) -> list[dict[str, Any]]:
        """The message/send bodies for one reply, in order (the file message excluded:
        it needs an upload first). Raises ValueError for a reply WeCom cannot carry."""
        base = {"touser": user_id, "agentid": self.agent_id}
        payloads: list[dict[str, Any]] = []

        def texts(content: str, *, markdown: bool) -> None:
            pieces = split_utf8(content, TEXT_LIMIT_BYTES)
            kind = "markdown" if markdown else "text"
            for piece in pieces:
                body: dict[str, Any] = {**base, "msgtype": kind, kind: {"content": piece}}
                if len(pieces) > 1:
                    # A retried multi-part reply must not repeat the parts that got through.
                    body["enable_duplicate_check"] = 1
                    body["duplicate_check_interval"] = 1800
                payloads.append(body)

        if reply.buttons:
            for start in range(0, len(reply.buttons), CARD_MAX_BUTTONS):
                chunk = reply.buttons[start : start + CARD_MAX_BUTTONS]
                keys = [b.key for b in chunk]
                if len(set(keys)) != len(keys):
                    raise ValueError("button keys of one card must differ")
                for key in keys:
                    if not key or len(key.encode("utf-8")) > CARD_BUTTON_KEY_LIMIT_BYTES:
                        raise ValueError(f"button key must be 1..{CARD_BUTTON_KEY_LIMIT_BYTES} bytes")
            if len(reply.text) > CARD_SUBTITLE_CHARS:
                texts(reply.text, markdown=reply.markdown)  # the whole text first, the card after it
                subtitle = "" if reply.title else _truncate(reply.text, CARD_SUBTITLE_CHARS)
            else:
                subtitle = reply.text
            if not reply.title and not subtitle:
                raise ValueError("a card needs a title or a text")
            for start in range(0, len(reply.buttons), CARD_MAX_BUTTONS):
                card: dict[str, Any] = {"card_type": "button_interaction", "task_id": self._task_id()}
                if reply.title:
                    card["main_title"] = {"title": _truncate(reply.title, CARD_TITLE_CHARS)}
                if subtitle:
                    card["sub_title_text"] = subtitle
                card["button_list"] = [
                    {"text": b.label, "style": 1, "key": b.key}
                    for b in reply.buttons[start : start + CARD_MAX_BUTTONS]
                ]
                payloads.append({**base, "msgtype": "template_card", "template_card": card})
            return payloads

        if reply.markdown:
            content = f"**{reply.title}**\n\n{reply.text}" if reply.title else reply.text
        else:
            content = f"【{reply.title}】\n{reply.text}" if reply.title else reply.text
        if content:
            texts(content, markdown=reply.markdown)
        return payloads

    async def _send_payload(self, payload: dict[str, Any]) -> str | None:
        data = await self._call_json("POST", "/cgi-bin/message/send", "message/send", json_body=payload)
        invalid = str(data.get("invaliduser") or "")
        if payload.get("touser") and payload["touser"] in invalid.split("|"):
            raise WeComAPIError(f"wecom message/send: user {payload['touser']} is not reachable", retryable=False)
        msgid = data.get("msgid")
        return str(msgid) if msgid else None

    async def send(self, user_id: str, reply: Reply) -> SendResult:
        """Send one reply to one member. Several messages when the text is long, the card
        has more than six buttons, or a file goes along."""
        if self.agent_id is None:
            return SendResult.failure("wecom: no agent id configured (KPBOT_WECOM_AGENT_ID)", retryable=False)
        try:
            payloads = self.message_payloads(user_id, reply)
        except ValueError as exc:
            return SendResult.failure(f"wecom: reply cannot be sent: {exc}", retryable=False)
        if not payloads and not reply.file_path:
            return SendResult.failure("wecom: empty reply", retryable=False)
        ids: list[str] = []
        total = len(payloads) + (1 if reply.file_path else 0)
        try:
            for payload in payloads:
                msgid = await self._send_payload(payload)
                if msgid:
                    ids.append(msgid)
            if reply.file_path:
                media_id = await self.upload_media(reply.file_path, "file")
                msgid = await self._send_payload(
                    {"touser": user_id, "agentid": self.agent_id, "msgtype": "file", "file": {"media_id": media_id}}
                )
                if msgid:
                    ids.append(msgid)
        except WeComAPIError as exc:
            sent = len(ids)
            if total > 1 and sent:
                exc.args = (f"{exc.args[0]} (after {sent} of {total} messages were sent)",)
            log.warning("wecom send to %s failed: %s", user_id, exc.describe())
            return exc.to_result()
        return SendResult.success(",".join(ids) or None)

    # -- media -------------------------------------------------------------------------------

    async def download_media(self, media_id: str, dest_dir: str | Path) -> Path:
        """Fetch a received image/voice with media/get and keep it under `dest_dir`.
        Raises WeComMediaError (with `retryable`) when WeCom answers JSON, not a file."""
        try:
            response = await self._call(
                "GET", "/cgi-bin/media/get", params={"media_id": media_id}, max_bytes=self.max_media_bytes
            )
        except WeComMediaError:
            raise
        except WeComAPIError as exc:
            raise WeComMediaError(
                f"{exc} (media/get {media_id})", retryable=exc.retryable, errcode=exc.errcode, retry_after=exc.retry_after
            ) from None
        if _looks_like_json(response):
            data = response.json()
            if data is None:
                raise WeComMediaError(
                    f"wecom media/get {media_id}: {response.content_type} answer that is not JSON", retryable=True,
                    retry_after=5.0,
                )
            raise _errcode_error(data, f"media/get {media_id}", WeComMediaError)
        if not response.body:
            raise WeComMediaError(f"wecom media/get {media_id}: empty file", retryable=True, retry_after=5.0)
        name = _FILENAME_SAFE.sub("_", media_id)[:80] or "media"
        suffix = _suffix(response)
        dest = Path(dest_dir)
        path = dest / f"{name}{suffix}"
        await asyncio.to_thread(_write_file, path, response.body)
        log.info("wecom media %s saved to %s (%d bytes)", media_id, path, len(response.body))
        return path

    async def upload_media(self, file_path: str | Path, kind: str = "file") -> str:
        """media/upload (temporary media, 3 days) and return its media_id."""
        if kind not in UPLOAD_LIMIT_BYTES:
            raise ValueError(f"unknown media type {kind!r}")
        path, content = await _read_upload(file_path, kind, UPLOAD_LIMIT_BYTES[kind])

        def form() -> aiohttp.MultipartWriter:
            return _media_form(path.name, content)

        try:
            data = await self._call_json("POST", "/cgi-bin/media/upload", "media/upload", params={"type": kind}, form=form)
        except WeComAPIError as exc:
            raise WeComMediaError(str(exc), retryable=exc.retryable, errcode=exc.errcode, retry_after=exc.retry_after) from None
        media_id = data.get("media_id")
        if not isinstance(media_id, str) or not media_id:
            raise WeComMediaError("wecom media/upload: no media_id in answer", retryable=True, retry_after=5.0)
        return media_id

    # -- group robot webhook -------------------------------------------------------------------

    def webhook_payloads(self, reply: Reply) -> list[dict[str, Any]]:
        content = f"**{reply.title}**\n\n{reply.text}" if reply.title else reply.text
        if reply.buttons:
            log.debug("wecom webhook: %d buttons dropped (a group robot card cannot call back)", len(reply.buttons))
        if not content:
            return []
        return [
            {"msgtype": "markdown", "markdown": {"content": piece}}
            for piece in split_utf8(content, WEBHOOK_MARKDOWN_LIMIT_BYTES)
        ]

    async def _webhook_post(self, webhook_url: str, payload: dict[str, Any]) -> None:
        key = _webhook_key(webhook_url)
        wait = await self.webhook_limiter.acquire(key)
        if wait is not None:
            raise WeComAPIError(
                f"wecom webhook {key[:8]}…: 20 messages a minute reached", retryable=True, retry_after=round(wait, 1)
            )
        data = await self._json("POST", webhook_url, json_body=payload)
        if _errcode(data) != 0:
            error = _errcode_error(data, "webhook/send")
            error.retryable = error.errcode in RETRYABLE_ERRCODES
            raise error

    async def send_group_webhook(
        self, webhook_url: str, reply: Reply, image_path: str | Path | None = None
    ) -> SendResult:
        """Post a reply (markdown, then the image, then the file) to a group robot."""
        payloads = self.webhook_payloads(reply)
        try:
            if image_path is not None:
                payloads.append(await _webhook_image(image_path))
            if not payloads and not reply.file_path:
                return SendResult.failure("wecom webhook: empty reply", retryable=False)
            for payload in payloads:
                await self._webhook_post(webhook_url, payload)
            if reply.file_path:
                media_id = await self._webhook_upload(webhook_url, reply.file_path)
                await self._webhook_post(webhook_url, {"msgtype": "file", "file": {"media_id": media_id}})
        except WeComAPIError as exc:
            log.warning("wecom webhook send failed: %s", exc.describe())
            return exc.to_result()
        return SendResult.success()

    async def _webhook_upload(self, webhook_url: str, file_path: str | Path) -> str:
        path, content = await _read_upload(file_path, "file", UPLOAD_LIMIT_BYTES["file"])
        parts = urlsplit(webhook_url)
        upload_url = urlunsplit(
            (parts.scheme, parts.netloc, parts.path.replace("/webhook/send", "/webhook/upload_media"), "", "")
        )
        data = await self._json(
            "POST",
            upload_url,
            params={"key": _webhook_key(webhook_url), "type": "file"},
            data=_media_form(path.name, content),
        )
        if _errcode(data) != 0:
            error = _errcode_error(data, "webhook/upload_media", WeComMediaError)
            error.retryable = error.errcode in RETRYABLE_ERRCODES
            raise error
        media_id = data.get("media_id")
        if not isinstance(media_id, str) or not media_id:
            raise WeComMediaError("wecom webhook/upload_media: no media_id", retryable=True, retry_after=5.0)
        return media_id


# -- helpers ---------------------------------------------------------------------------------


def _scrub(text: str) -> str:
    """Hide tokens, secrets and webhook keys that an exception text may quote from a URL."""
    return _SECRET_PARAM.sub(r"\1=***", text)


def _looks_like_json(response: _Response) -> bool:
    ctype = response.content_type.lower()
    if "json" in ctype or ctype.startswith("text/"):
        return True
    head = response.body[:16].lstrip()
    return head.startswith(b"{") and b"errcode" in response.body[:200]


def _suffix(response: _Response) -> str:
    disposition = response.headers.get("Content-Disposition", "")
    if disposition:
        msg = Message()
        msg["content-disposition"] = disposition
        filename = msg.get_filename() or ""
        suffix = Path(filename).suffix.lower()
        if re.fullmatch(r"\.[0-9a-z]{1,8}", suffix):
            return suffix
    ctype = response.content_type.lower()
    special = {"image/jpeg": ".jpg", "audio/amr": ".amr", "audio/speex": ".speex"}
    return special.get(ctype) or mimetypes.guess_extension(ctype) or ".bin"


def _media_form(filename: str, content: bytes) -> aiohttp.MultipartWriter:
    """The multipart body WeCom documents for uploads: field "media" with filename,
    filelength and content-type. The file name is what recipients see, so it goes out
    as UTF-8 (as browsers and `requests` send it), not percent-encoded."""
    writer = aiohttp.MultipartWriter("form-data")
    part = writer.append(content, {"Content-Type": mimetypes.guess_type(filename)[0] or "application/octet-stream"})
    part.set_content_disposition(
        "form-data", quote_fields=False, name="media", filename=filename.replace('"', "'"), filelength=str(len(content))
    )
    return writer


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)


async def _read_upload(file_path: str | Path, kind: str, limit: int) -> tuple[Path, bytes]:
    path = Path(file_path)
    try:
        content = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise WeComMediaError(f"wecom upload: cannot read {path}: {exc.strerror}", retryable=False) from None
    if not UPLOAD_MIN_BYTES <= len(content) <= limit:
        raise WeComMediaError(
            f"wecom upload: {kind} {path.name} has {len(content)} bytes; allowed {UPLOAD_MIN_BYTES}..{limit}",
            retryable=False,
        )
    return path, content


async def _webhook_image(image_path: str | Path) -> dict[str, Any]:
    path = Path(image_path)
    try:
        content = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise WeComMediaError(f"wecom webhook: cannot read image {path}: {exc.strerror}", retryable=False) from None
    if not content or len(content) > WEBHOOK_IMAGE_LIMIT_BYTES:
        raise WeComMediaError(
            f"wecom webhook: image {path.name} has {len(content)} bytes; at most {WEBHOOK_IMAGE_LIMIT_BYTES}",
            retryable=False,
        )
    if not (content.startswith(b"\xff\xd8\xff") or content.startswith(b"\x89PNG\r\n\x1a\n")):
        raise WeComMediaError(f"wecom webhook: image {path.name} is neither JPG nor PNG", retryable=False)
    return {
        "msgtype": "image",
        "image": {"base64": base64.b64encode(content).decode("ascii"), "md5": hashlib.md5(content).hexdigest()},
    }


def _webhook_key(webhook_url: str) -> str:
    keys = parse_qs(urlsplit(webhook_url).query).get("key")
    return keys[0] if keys else webhook_url


class WeComSender(ReplySender):
    """The outbox's Sender protocol over a WeComClient: 1:1 messages by user id."""

    def __init__(self, client: WeComClient):
        self._client = client

    async def send_reply(self, address: str, reply: Reply, payload: dict[str, Any]) -> SendResult:
        return await self._client.send(address, reply)


class WeComGroupSender(ReplySender):
    """The outbox's Sender protocol for office group robots: address = webhook URL."""

    def __init__(self, client: WeComClient):
        self._client = client

    async def send_reply(self, address: str, reply: Reply, payload: dict[str, Any]) -> SendResult:
        return await self._client.send_group_webhook(address, reply, image_path=payload.get("image_path"))
