"""DingTalk outbound: an aiohttp API client (no blocking calls on the event loop).

Endpoints used (``api_base`` = https://api.dingtalk.com, ``oapi_base`` =
https://oapi.dingtalk.com; both are settings so tests point them at the fakes):

* ``POST {api}/v1.0/oauth2/accessToken`` {appKey, appSecret} -> {accessToken, expireIn}.
  The token also authorises the old ``oapi`` endpoints (``?access_token=``).
* ``POST {api}/v1.0/robot/oToMessages/batchSend`` (header
  ``x-acs-dingtalk-access-token``) {robotCode, userIds (<= 20), msgKey, msgParam}
  where ``msgParam`` is a JSON *string*; answers {processQueryKey,
  invalidStaffIdList, flowControlledStaffIdList}.
* ``POST {api}/v1.0/robot/groupMessages/send`` {robotCode, openConversationId, msgKey, msgParam}.
* ``POST {api}/v1.0/robot/messageFiles/download`` {robotCode, downloadCode} -> {downloadUrl}.
* ``POST {oapi}/topapi/message/corpconversation/asyncsend_v2?access_token=`` work
  notifications {agent_id, userid_list ("a,b", <= 100), msg}.
* ``POST {oapi}/media/upload?access_token=&type=file`` (multipart ``media``) -> {media_id}.
* a message's ``sessionWebhook`` (no token, valid until ``sessionWebhookExpiredTime``)
  and a group custom robot's webhook with ``&timestamp=&sign=`` (20 messages a
  minute per robot; beyond that DingTalk throttles it for 10 minutes).

Errors: the new API answers 4xx/5xx with {code, message, requestid}; an invalid or
expired token is ``InvalidAuthentication`` (HTTP 400/401), rate limits are HTTP
403 ``Forbidden.AccessDenied.QpsLimitForApi`` / ``...QpsLimitForAppkeyAndApi``
(Alibaba's SDKs name the class ``Throttling.*``; HTTP 429 is treated alike). The
old oapi answers HTTP 200 with {errcode, errmsg}: 40014/42001 invalid/expired
token, 90002/90005/90006/90018 rate limits, -1 busy; custom robots answer 130101
/ 410100 when sending too fast. Rate limits, 5xx and network errors are
retryable ``SendResult`` failures; everything else is not.

Buttons: a Reply with buttons becomes an action card whose buttons are
``dtmd://dingtalkclient/sendMessage?content=<urlencoded button key>`` links; a
click makes the person's DingTalk send the key to the robot as a text message,
which ``dingtalk.parse_robot_message`` turns into an ACTION. Up to five buttons
are real buttons (sampleActionCard .. sampleActionCard5); further ones become
links in the card's markdown text.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import mimetypes
import os
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import aiohttp
from yarl import URL

from bot.channels.dingtalk import compute_sign
from bot.channels.outbox_sender import ReplySender
from bot.channels.ratelimit import SlidingWindowLimiter
from bot.message import Button, Reply, SendResult
from config.settings import Settings

log = logging.getLogger(__name__)

BATCH_SIZE = 20  # robot 1:1 batchSend: userIds per call
WORK_NOTICE_BATCH = 100  # asyncsend_v2: userid_list per call
WEBHOOK_LIMIT = 20  # group custom robot: messages per window
WEBHOOK_WINDOW = 60.0  # seconds
MAX_CARD_BUTTONS = 5
WEBHOOK_SAFETY = timedelta(seconds=5)  # a session webhook this close to expiry is not used

INVALID_TOKEN_CODES = frozenset({"InvalidAuthentication"})
THROTTLE_CODES = frozenset(
    {
        "Forbidden.AccessDenied.QpsLimitForApi",
        "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
        "Throttling",
        "Throttling.Api",
        "Throttling.User",
    }
)
OAPI_INVALID_TOKEN = frozenset({40014, 42001})
OAPI_RETRYABLE = frozenset({-1, 90002, 90005, 90006, 90018, 130101, 410100})

# What people read when a card's title must be made up (Chinese: user-facing).
DEFAULT_TITLE = "消息"
WORK_NOTICE_BUTTON_HINT = "请在与机器人的单聊中回复以下指令："

Clock = Callable[[], datetime]


class DingTalkError(Exception):
    """One failed DingTalk call; ``retryable`` says whether trying again later may help."""

    def __init__(self, message: str, retryable: bool):
        super().__init__(message)
        self.retryable = retryable

    def to_result(self) -> SendResult:
        return SendResult.failure(str(self), retryable=self.retryable)


class _InvalidToken(DingTalkError):
    def __init__(self, message: str):
        super().__init__(message, retryable=True)


# -- rendering -----------------------------------------------------------------


def button_url(command: str) -> str:
    """A link that, clicked in DingTalk, sends ``command`` to the robot as text."""
    return "dtmd://dingtalkclient/sendMessage?content=" + quote(command, safe="")


def _title(reply: Reply) -> str:
    if reply.title:
        return reply.title
    first = next((line.strip() for line in reply.text.splitlines() if line.strip()), "")
    first = first.lstrip("#> ").strip()
    return (first[:20] or DEFAULT_TITLE) if first else DEFAULT_TITLE


def hard_line_breaks(text: str) -> str:
    """DingTalk's markdown (markdown messages, action cards) joins lines split by a
    single newline into one; end each such line with two spaces, markdown's hard
    line break. Blank lines (paragraph breaks) are left alone."""
    lines = text.split("\n")
    for i in range(len(lines) - 1):
        if lines[i].strip() and lines[i + 1].strip():
            lines[i] = lines[i].rstrip(" ") + "  "
    return "\n".join(lines)


def _card_text(reply: Reply, overflow: Sequence[Button]) -> str:
    text = reply.text
    if reply.title and not reply.markdown:
        text = f"### {reply.title}\n\n{text}"
    if overflow:
        links = "\n".join(f"[{b.label}]({button_url(b.key)})" for b in overflow)
        text = f"{text}\n\n{links}"
    return hard_line_breaks(text)


def robot_message(reply: Reply) -> tuple[str, dict[str, Any]]:
    """msgKey and msgParam (as a dict) for the robot API (batchSend / groupMessages)."""
    if reply.buttons:
        shown, overflow = reply.buttons[:MAX_CARD_BUTTONS], reply.buttons[MAX_CARD_BUTTONS:]
        param: dict[str, Any] = {"title": _title(reply), "text": _card_text(reply, overflow)}
        if len(shown) == 1:
            param["singleTitle"] = shown[0].label
            param["singleURL"] = button_url(shown[0].key)
            return "sampleActionCard", param
        for i, button in enumerate(shown, start=1):
            param[f"actionTitle{i}"] = button.label
            param[f"actionURL{i}"] = button_url(button.key)
        return f"sampleActionCard{len(shown)}", param
    if reply.markdown or reply.title:
        return "sampleMarkdown", {"title": _title(reply), "text": _card_text(reply, ())}
    return "sampleText", {"content": reply.text}


def webhook_message(reply: Reply) -> dict[str, Any]:
    """Body for a session webhook or a group custom-robot webhook."""
    if reply.buttons:
        shown, overflow = reply.buttons[:MAX_CARD_BUTTONS], reply.buttons[MAX_CARD_BUTTONS:]
        card: dict[str, Any] = {"title": _title(reply), "text": _card_text(reply, overflow)}
        if len(shown) == 1:
            card["singleTitle"] = shown[0].label
            card["singleURL"] = button_url(shown[0].key)
        else:
            card["btnOrientation"] = "0"
            card["btns"] = [{"title": b.label, "actionURL": button_url(b.key)} for b in shown]
        return {"msgtype": "actionCard", "actionCard": card}
    if reply.markdown or reply.title:
        return {"msgtype": "markdown", "markdown": {"title": _title(reply), "text": _card_text(reply, ())}}
    return {"msgtype": "text", "text": {"content": reply.text}}


def work_notice_message(reply: Reply) -> dict[str, Any]:
    """``msg`` of a work notification. Its buttons cannot talk to the robot, so they
    are listed as commands to send in the robot chat."""
    if reply.buttons:
        lines = "\n".join(f"- {b.label}：`{b.key}`" for b in reply.buttons)
        text = f"{_card_text(reply, ())}\n\n{WORK_NOTICE_BUTTON_HINT}\n\n{lines}"
        return {"msgtype": "markdown", "markdown": {"title": _title(reply), "text": text}}
    if reply.markdown or reply.title:
        return {"msgtype": "markdown", "markdown": {"title": _title(reply), "text": _card_text(reply, ())}}
    return {"msgtype": "text", "text": {"content": reply.text}}


def signed_webhook_url(webhook_url: str, secret: str, timestamp_ms: int) -> str:
    """The custom robot's URL with ``timestamp`` and the url-encoded ``sign``."""
    if not secret:
        return webhook_url
    sign = quote_plus(compute_sign(str(timestamp_ms), secret))
    joiner = "&" if "?" in webhook_url else "?"
    return f"{webhook_url}{joiner}timestamp={timestamp_ms}&sign={sign}"


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- the client ----------------------------------------------------------------


class DingTalkClient:
    """Async DingTalk API client for one enterprise internal app and its robot.

    ``now`` is the injected clock (token expiry, session webhook validity, webhook
    signatures). One token is shared; concurrent callers wait for a single
    refresh, and an invalid-token answer causes exactly one refetch and retry.
    """

    def __init__(
        self,
        app_key: str,
        app_secret: str,
        robot_code: str,
        api_base: str,
        oapi_base: str,
        session: aiohttp.ClientSession,
        now: Clock,
        *,
        agent_id: int | None = None,
        timeout: float = 10.0,
        webhook_limiter: SlidingWindowLimiter | None = None,
        webhook_max_wait: float = WEBHOOK_WINDOW,
        max_download_bytes: int = 50 * 1024 * 1024,
    ):
        self.app_key = app_key
        self._app_secret = app_secret
        self.robot_code = robot_code or app_key
        self.api_base = api_base.rstrip("/")
        self.oapi_base = oapi_base.rstrip("/")
        self.agent_id = agent_id
        self._session = session
        self._now = now
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._token: str | None = None
        self._token_expires_at: datetime | None = None
        self._token_lock = asyncio.Lock()
        self.webhook_limiter = webhook_limiter or SlidingWindowLimiter(WEBHOOK_LIMIT, WEBHOOK_WINDOW)
        self._webhook_max_wait = webhook_max_wait
        self._max_download_bytes = max_download_bytes

    @classmethod
    def from_settings(cls, settings: Settings, *, session: aiohttp.ClientSession, now: Clock) -> DingTalkClient:
        return cls(
            settings.dingtalk_app_key,
            settings.dingtalk_app_secret,
            settings.dingtalk_robot_code,
            settings.dingtalk_api_base,
            settings.dingtalk_oapi_base,
            session,
            now,
            # Settings has no AgentId yet (needed by work notices only).
            agent_id=getattr(settings, "dingtalk_agent_id", None),
        )

    async def deliver(self, address: str, payload: dict[str, Any]) -> SendResult:
        """The outbox's Sender protocol: ``payload`` is {"reply": Reply.to_dict(),
        optionally "reply_webhook" and "reply_webhook_expires_at" (ISO 8601)};
        ``address`` is the person's DingTalk user id (staffId)."""
        try:
            reply = Reply.from_dict(payload["reply"])
            expires_raw = payload.get("reply_webhook_expires_at")
            expires = datetime.fromisoformat(expires_raw) if expires_raw else None
        except (KeyError, TypeError, ValueError) as exc:
            return SendResult.failure(f"unreadable outbox payload: {exc!r}", retryable=False)
        if expires is not None and expires.tzinfo is None:
            expires = None  # never guess the zone of a naive time: use the API instead
        return await self.send(address, reply, payload.get("reply_webhook"), expires)

    # -- token ---------------------------------------------------------------

    async def access_token(self) -> str:
        """The cached token, fetched (once, whoever asks concurrently) when missing or expired."""
        token = self._valid_token()
        if token:
            return token
        async with self._token_lock:
            token = self._valid_token()
            if token:
                return token
            return await self._fetch_token()

    def _valid_token(self) -> str | None:
        if self._token and self._token_expires_at and self._now() < self._token_expires_at:
            return self._token
        return None

    def _forget_token(self, token: str) -> None:
        if self._token == token:  # a concurrent caller may have refreshed it already
            self._token = None
            self._token_expires_at = None

    async def _fetch_token(self) -> str:
        url = f"{self.api_base}/v1.0/oauth2/accessToken"
        status, data = await self._post_json(url, {"appKey": self.app_key, "appSecret": self._app_secret})
        if status != 200:
            error = self._api_error("accessToken", status, data)
            if isinstance(error, _InvalidToken):  # refused credentials: retrying will not help
                raise DingTalkError(str(error), retryable=False)
            raise error
        token = data.get("accessToken")
        try:
            expire_in = float(data.get("expireIn", 0))
        except (TypeError, ValueError):
            expire_in = 0.0
        if not isinstance(token, str) or not token or expire_in <= 0:
            raise DingTalkError(f"accessToken: unexpected answer {data!r}", retryable=True)
        margin = min(300.0, expire_in / 10)
        self._token = token
        self._token_expires_at = self._now() + timedelta(seconds=expire_in - margin)
        log.info("dingtalk: new access token, valid %.0f s", expire_in - margin)
        return token

    # -- transport -------------------------------------------------------------

    async def _post_json(
        self,
        url: str | URL,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """POST JSON; (status, JSON object or {}) or DingTalkError(retryable) on network trouble."""
        try:
            async with self._session.post(
                url, json=body, headers=headers, params=params, timeout=self._timeout
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise DingTalkError(f"network error: {exc.__class__.__name__}: {exc}", retryable=True) from exc
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        if status == 200 and raw and not data:
            raise DingTalkError(f"HTTP 200 with a body that is not a JSON object: {raw[:200]!r}", retryable=True)
        return status, data

    @staticmethod
    def _api_error(what: str, status: int, data: dict[str, Any]) -> DingTalkError:
        code = str(data.get("code", ""))
        message = f"{what}: HTTP {status} {code} {data.get('message', '')}".strip()
        if code in INVALID_TOKEN_CODES or status == 401:
            return _InvalidToken(message)
        throttled = status == 429 or code in THROTTLE_CODES or code.startswith("Throttling")
        return DingTalkError(message, retryable=throttled or status >= 500)

    async def _call_api(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to the new API with the token header; one refetch on an invalid token."""
        url = f"{self.api_base}{path}"
        for attempt in (1, 2):
            token = await self.access_token()
            status, data = await self._post_json(url, body, headers={"x-acs-dingtalk-access-token": token})
            if 200 <= status < 300:
                return data
            error = self._api_error(path, status, data)
            if isinstance(error, _InvalidToken) and attempt == 1:
                log.info("dingtalk: token refused by %s, fetching a new one", path)
                self._forget_token(token)
                continue
            raise error
        raise AssertionError("unreachable")

    async def _call_oapi(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to the old oapi (``?access_token=``); errcode 0 or DingTalkError."""
        url = f"{self.oapi_base}{path}"
        for attempt in (1, 2):
            token = await self.access_token()
            status, data = await self._post_json(url, body, params={"access_token": token})
            errcode = data.get("errcode")
            if status == 200 and errcode == 0:
                return data
            if status != 200:
                raise DingTalkError(f"{path}: HTTP {status}", retryable=status >= 500 or status == 429)
            message = f"{path}: errcode {errcode} {data.get('errmsg', '')}".strip()
            if errcode in OAPI_INVALID_TOKEN and attempt == 1:
                self._forget_token(token)
                continue
            raise DingTalkError(message, retryable=errcode in OAPI_RETRYABLE or errcode in OAPI_INVALID_TOKEN)
        raise AssertionError("unreachable")

    # -- robot messages ----------------------------------------------------------

    async def send(
        self,
        user_id: str,
        reply: Reply,
        reply_webhook: str | None = None,
        reply_webhook_expires_at: datetime | None = None,
    ) -> SendResult:
        """Send one reply to one person.

        Through the message's session webhook while it is valid (by the injected
        clock, with a few seconds' margin); otherwise, or when the webhook refuses,
        through the robot 1:1 API. A reply with ``file_path`` also sends the file
        (uploaded, then a sampleFile message) through the API; when only that part
        fails, the result is its failure, and a retry sends the text once more.
        """
        result = None
        if reply_webhook and reply_webhook_expires_at and self._now() < reply_webhook_expires_at - WEBHOOK_SAFETY:
            result = await self._send_session_webhook(reply_webhook, reply)
        if result is None:
            result = (await self._batch_send([user_id], reply))[user_id]
        if result.ok and reply.file_path:
            file_result = await self._send_file([user_id], reply.file_path)
            return file_result[user_id]
        return result

    async def _send_session_webhook(self, url: str, reply: Reply) -> SendResult | None:
        """The result, or None when the webhook refused and the API should be used."""
        try:
            status, data = await self._post_json(URL(url, encoded=True), webhook_message(reply))
        except DingTalkError as exc:  # delivery unknown: do not risk a second copy now
            return exc.to_result()
        if status == 200 and data.get("errcode", 0) == 0:
            return SendResult.success()
        log.info("dingtalk: session webhook refused (HTTP %s, %s); using the robot API", status, data)
        return None

    async def _batch_send(self, user_ids: Sequence[str], reply: Reply) -> dict[str, SendResult]:
        msg_key, msg_param = robot_message(reply)
        return await self._batch_send_raw(user_ids, msg_key, msg_param)

    async def _batch_send_raw(
        self, user_ids: Sequence[str], msg_key: str, msg_param: dict[str, Any]
    ) -> dict[str, SendResult]:
        results: dict[str, SendResult] = {}
        unique = list(dict.fromkeys(user_ids))
        for chunk in _chunks(unique, BATCH_SIZE):
            body = {
                "robotCode": self.robot_code,
                "userIds": list(chunk),
                "msgKey": msg_key,
                "msgParam": json.dumps(msg_param, ensure_ascii=False),
            }
            try:
                data = await self._call_api("/v1.0/robot/oToMessages/batchSend", body)
            except DingTalkError as exc:
                results.update({user: exc.to_result() for user in chunk})
                continue
            invalid = set(data.get("invalidStaffIdList") or ())
            throttled = set(data.get("flowControlledStaffIdList") or ())
            key = data.get("processQueryKey")
            for user in chunk:
                if user in invalid:
                    results[user] = SendResult.failure("invalid staff id", retryable=False)
                elif user in throttled:
                    results[user] = SendResult.failure("flow controlled", retryable=True)
                else:
                    results[user] = SendResult.success(key)
        return results

    async def send_batch(self, user_ids: Sequence[str], reply: Reply) -> dict[str, SendResult]:
        """The same reply to many people through the robot 1:1 API, 20 a call.

        Returns one SendResult per (distinct) user id.
        """
        results = await self._batch_send(user_ids, reply)
        if reply.file_path:
            sent = [user for user, result in results.items() if result.ok]
            if sent:
                results.update(await self._send_file(sent, reply.file_path))
        return results

    async def send_group(self, open_conversation_id: str, reply: Reply) -> SendResult:
        """A robot message into a group conversation the robot is in."""
        msg_key, msg_param = robot_message(reply)
        body = {
            "robotCode": self.robot_code,
            "openConversationId": open_conversation_id,
            "msgKey": msg_key,
            "msgParam": json.dumps(msg_param, ensure_ascii=False),
        }
        try:
            data = await self._call_api("/v1.0/robot/groupMessages/send", body)
        except DingTalkError as exc:
            return exc.to_result()
        return SendResult.success(data.get("processQueryKey"))

    # -- files -----------------------------------------------------------------

    async def upload_media(self, path: str | Path, media_type: str = "file") -> str:
        """Upload a file (oapi media/upload); its media_id. Raises DingTalkError."""
        path = Path(path)
        url = f"{self.oapi_base}/media/upload"
        for attempt in (1, 2):
            token = await self.access_token()
            form = aiohttp.FormData(quote_fields=False)  # raw UTF-8 file name, as browsers send it
            form.add_field(
                "media",
                await asyncio.to_thread(path.read_bytes),
                filename=path.name,
                content_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream",
            )
            try:
                async with self._session.post(
                    url, data=form, params={"access_token": token, "type": media_type}, timeout=self._timeout
                ) as resp:
                    status = resp.status
                    data = await resp.json(content_type=None)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
                raise DingTalkError(f"media/upload: {exc.__class__.__name__}: {exc}", retryable=True) from exc
            data = data if isinstance(data, dict) else {}
            errcode = data.get("errcode")
            if status == 200 and errcode == 0 and data.get("media_id"):
                return str(data["media_id"])
            if errcode in OAPI_INVALID_TOKEN and attempt == 1:
                self._forget_token(token)
                continue
            raise DingTalkError(
                f"media/upload: HTTP {status} errcode {errcode} {data.get('errmsg', '')}",
                retryable=status >= 500 or errcode in OAPI_RETRYABLE,
            )
        raise AssertionError("unreachable")

    async def _send_file(self, user_ids: Sequence[str], file_path: str) -> dict[str, SendResult]:
        path = Path(file_path)
        try:
            media_id = await self.upload_media(path)
        except DingTalkError as exc:
            return {user: exc.to_result() for user in user_ids}
        except OSError as exc:
            return {user: SendResult.failure(f"cannot read {path}: {exc}", retryable=False) for user in user_ids}
        param = {"mediaId": media_id, "fileName": path.name, "fileType": path.suffix.lstrip(".") or "file"}
        return await self._batch_send_raw(user_ids, "sampleFile", param)

    async def download_file(self, download_code: str, dest_dir: str | Path) -> Path:
        """Fetch a received picture/file/voice by its ``downloadCode`` into ``dest_dir``.

        The file is named after a hash of the code (a second download of the same
        code reuses the name) with an extension from the content type. Raises
        DingTalkError.
        """
        data = await self._call_api(
            "/v1.0/robot/messageFiles/download", {"downloadCode": download_code, "robotCode": self.robot_code}
        )
        download_url = data.get("downloadUrl")
        if not isinstance(download_url, str) or not download_url:
            raise DingTalkError(f"messageFiles/download: no downloadUrl in {data!r}", retryable=False)
        dest_dir = Path(dest_dir)
        dest_dir.mkdir(parents=True, exist_ok=True)
        stem = hashlib.sha256(download_code.encode("utf-8")).hexdigest()[:24]
        tmp = dest_dir / f".{stem}.part"
        try:
            async with self._session.get(
                URL(download_url, encoded=True), timeout=aiohttp.ClientTimeout(total=120)
            ) as resp:
                if resp.status != 200:
                    raise DingTalkError(f"download: HTTP {resp.status}", retryable=resp.status >= 500)
                content_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
                if content_type in ("application/json", "text/html"):
                    raise DingTalkError(f"download: got {content_type}, not a file", retryable=False)
                size = 0
                with tmp.open("wb") as fh:
                    async for chunk in resp.content.iter_chunked(64 * 1024):
                        size += len(chunk)
                        if size > self._max_download_bytes:
                            raise DingTalkError("download: file too large", retryable=False)
                        fh.write(chunk)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            tmp.unlink(missing_ok=True)
            raise DingTalkError(f"download: {exc.__class__.__name__}: {exc}", retryable=True) from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        ext = (mimetypes.guess_extension(content_type) or "") if content_type else ""
        final = dest_dir / f"{stem}{ext}"
        os.replace(tmp, final)
        return final

    # -- work notifications ------------------------------------------------------

    async def send_work_notice(
        self, user_ids: Sequence[str], reply: Reply, agent_id: int | None = None
    ) -> SendResult:
        """A work notification (工作通知) to up to any number of people, 100 a call.

        Needs the app's AgentId (constructor ``agent_id`` or this argument). The
        result's ``platform_id`` is the last task id.
        """
        agent = agent_id if agent_id is not None else self.agent_id
        if agent is None:
            return SendResult.failure("no DingTalk agent id configured for work notices", retryable=False)
        unique = list(dict.fromkeys(user_ids))
        if not unique:
            return SendResult.failure("no recipients", retryable=False)
        msg = work_notice_message(reply)
        task_id = None
        for chunk in _chunks(unique, WORK_NOTICE_BATCH):
            body = {"agent_id": agent, "userid_list": ",".join(chunk), "msg": msg}
            try:
                data = await self._call_oapi("/topapi/message/corpconversation/asyncsend_v2", body)
            except DingTalkError as exc:
                return exc.to_result()
            task_id = data.get("task_id")
        return SendResult.success(str(task_id) if task_id is not None else None)

    # -- group custom robot ------------------------------------------------------

    async def send_group_webhook(self, webhook_url: str, secret: str, reply: Reply) -> SendResult:
        """A message through a group custom robot (signed URL, 20 a minute per robot)."""
        key = webhook_url.split("&timestamp=")[0]
        if await self.webhook_limiter.acquire(key, self._webhook_max_wait) is not None:
            return SendResult.failure("group webhook: local limit of 20 a minute reached", retryable=True)
        timestamp_ms = int(self._now().timestamp() * 1000)
        url = URL(signed_webhook_url(webhook_url, secret, timestamp_ms), encoded=True)
        try:
            status, data = await self._post_json(url, webhook_message(reply))
        except DingTalkError as exc:
            return exc.to_result()
        errcode = data.get("errcode")
        if status == 200 and errcode == 0:
            return SendResult.success()
        message = f"group webhook: HTTP {status} errcode {errcode} {data.get('errmsg', '')}".strip()
        return SendResult.failure(message, retryable=status >= 500 or status == 429 or errcode in OAPI_RETRYABLE)


class DingTalkGroupSender(ReplySender):
    """The outbox's Sender protocol for office group custom robots: address =
    webhook URL, payload["secret"] = the robot's signing secret."""

    def __init__(self, client: DingTalkClient):
        self._client = client

    async def send_reply(self, address: str, reply: Reply, payload: dict[str, Any]) -> SendResult:
        return await self._client.send_group_webhook(address, payload.get("secret") or "", reply)
