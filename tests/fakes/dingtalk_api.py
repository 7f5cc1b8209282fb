"""A fake DingTalk API server: the new OpenAPI, the old oapi, session webhooks and
group custom-robot webhooks on one aiohttp server bound to port 0.

Answers follow the real shapes (see bot/channels/dingtalk_api.py): tokens from
``/v1.0/oauth2/accessToken`` that expire by the injected clock; an unknown or
expired token is HTTP 400 ``{"code": "InvalidAuthentication", ...}`` on the new
API and ``errcode`` 40014 / 42001 on oapi; rate limits are HTTP 403
``Forbidden.AccessDenied.QpsLimitForApi`` (``throttle``); a custom robot allows 20
messages a minute and then answers errcode 130101. Anything can be scripted with
``fail_next`` (an answer) or ``drop_next`` (the connection is cut). Every request
is kept in ``calls``.

Own choices where DingTalk does not document an answer: an expired or unknown
session webhook answers errcode 300001 "session expired"; a custom robot whose
signature is wrong answers errcode 310000 "sign not match".

The fake computes signatures itself (hmac/base64 here), not with the bot's code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

MSG_KEYS = {
    "sampleText",
    "sampleMarkdown",
    "sampleImageMsg",
    "sampleLink",
    "sampleActionCard",
    "sampleActionCard2",
    "sampleActionCard3",
    "sampleActionCard4",
    "sampleActionCard5",
    "sampleActionCard6",
    "sampleAudio",
    "sampleFile",
    "sampleVideo",
}

INVALID_TOKEN = {"code": "InvalidAuthentication", "message": "不合法的access_token"}
QPS_LIMIT = {"code": "Forbidden.AccessDenied.QpsLimitForApi", "message": "调用该接口超过限流"}
SEND_TOO_FAST = {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any  # parsed JSON, or the raw bytes when not JSON
    at: datetime


@dataclass
class RobotWebhook:
    access_token: str
    secret: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    sent_at: deque[datetime] = field(default_factory=deque)


@dataclass
class SessionWebhook:
    session: str
    expires_at: datetime
    messages: list[dict[str, Any]] = field(default_factory=list)


class FakeDingTalkAPI:
    def __init__(
        self,
        app_key: str = "ding-app-key",
        app_secret: str = "ding-app-secret",
        robot_code: str = "ding-robot-code",
        agent_id: int = 1001,
        now: Callable[[], datetime] = _utcnow,
        token_ttl: int = 7200,
    ):
        self.app_key = app_key
        self.app_secret = app_secret
        self.robot_code = robot_code
        self.agent_id = agent_id
        self.now = now
        self.token_ttl = token_ttl

        self.calls: list[Call] = []
        self.tokens: dict[str, datetime] = {}
        self.robot_messages: list[dict[str, Any]] = []  # one per user per batchSend
        self.group_messages: list[dict[str, Any]] = []
        self.work_notices: list[dict[str, Any]] = []
        self.uploads: dict[str, tuple[str, bytes]] = {}
        self.files: dict[str, tuple[bytes, str]] = {}
        self.invalid_users: set[str] = set()
        self.flow_controlled_users: set[str] = set()
        self.robots: dict[str, RobotWebhook] = {}
        self.sessions: dict[str, SessionWebhook] = {}
        self._scripted: dict[str, deque[tuple[int, Any] | None]] = {}
        self._ids = itertools.count(1)
        self._server: TestServer | None = None

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._server = TestServer(app, port=0)
        await self._server.start_server()
        return self.base_url

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()
            self._server = None

    async def __aenter__(self) -> FakeDingTalkAPI:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "not started"
        return str(self._server.make_url("")).rstrip("/")

    # -- scripting ---------------------------------------------------------------

    def fail_next(self, path: str, status: int, body: Any, times: int = 1) -> None:
        """Answer the next ``times`` requests to ``path`` with this status and JSON body."""
        self._scripted.setdefault(path, deque()).extend([(status, body)] * times)

    def drop_next(self, path: str, times: int = 1) -> None:
        """Cut the connection of the next ``times`` requests to ``path`` without answering."""
        self._scripted.setdefault(path, deque()).extend([None] * times)

    def throttle(self, path: str, times: int = 1) -> None:
        self.fail_next(path, 403, QPS_LIMIT, times)

    def revoke_tokens(self) -> None:
        """Every issued token becomes invalid (as if DingTalk had rotated it)."""
        self.tokens.clear()

    def calls_to(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.path == path]

    def add_file(self, download_code: str, content: bytes, content_type: str = "image/jpeg") -> None:
        self.files[download_code] = (content, content_type)

    def session_webhook(self, expires_at: datetime) -> str:
        """A new session webhook URL, valid until ``expires_at`` (by the fake's clock)."""
        session = secrets.token_hex(8)
        self.sessions[session] = SessionWebhook(session, expires_at)
        return f"{self.base_url}/robot/sendBySession?session={session}"

    def custom_robot(self, secret: str = "SECfake") -> str:
        """A group custom robot; its webhook URL (without timestamp and sign)."""
        token = secrets.token_hex(8)
        self.robots[token] = RobotWebhook(token, secret)
        return f"{self.base_url}/robot/send?access_token={token}"

    # -- helpers -------------------------------------------------------------------

    def _token_state(self, token: str | None) -> str:
        if not token or token not in self.tokens:
            return "unknown"
        if self.now() >= self.tokens[token]:
            return "expired"
        return "ok"

    @staticmethod
    def _sign(timestamp: str, secret: str) -> str:
        mac = hmac.new(secret.encode(), (timestamp + "\n" + secret).encode(), hashlib.sha256)
        return base64.b64encode(mac.digest()).decode()

    def _new_api_error(self, status: int, code: str, message: str) -> web.Response:
        return web.json_response(
            {"code": code, "message": message, "requestid": f"req-{next(self._ids)}"}, status=status
        )

    # -- dispatch ------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body: Any
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            body = {k: (v.filename, v.file.read()) if isinstance(v, web.FileField) else v for k, v in form.items()}
        else:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw
        self.calls.append(
            Call(request.method, request.path, dict(request.query), dict(request.headers), body, self.now())
        )
        script = self._scripted.get(request.path)
        if script:
            answer = script.popleft()
            if answer is None:
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=500)  # never reaches the client
            status, payload = answer
            return web.json_response(payload, status=status)

        routes = {
            ("POST", "/v1.0/oauth2/accessToken"): self._access_token,
            ("POST", "/v1.0/robot/oToMessages/batchSend"): self._batch_send,
            ("POST", "/v1.0/robot/groupMessages/send"): self._group_send,
            ("POST", "/v1.0/robot/messageFiles/download"): self._file_download,
            ("POST", "/topapi/message/corpconversation/asyncsend_v2"): self._work_notice,
            ("POST", "/media/upload"): self._media_upload,
            ("POST", "/robot/sendBySession"): self._session_send,
            ("POST", "/robot/send"): self._robot_send,
        }
        handler = routes.get((request.method, request.path))
        if handler is not None:
            return await handler(request, body)
        if request.method == "GET" and request.path.startswith("/files/"):
            return self._file_content(request.path.removeprefix("/files/"))
        return web.json_response({"code": "NotFound", "message": request.path}, status=404)

    # -- new API -----------------------------------------------------------------

    async def _access_token(self, request: web.Request, body: Any) -> web.Response:
        if not isinstance(body, dict) or body.get("appKey") != self.app_key or body.get("appSecret") != self.app_secret:
            return self._new_api_error(400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret")
        token = f"tok-{next(self._ids)}-{secrets.token_hex(4)}"
        self.tokens[token] = self.now() + timedelta(seconds=self.token_ttl)
        return web.json_response({"accessToken": token, "expireIn": self.token_ttl})

    def _check_new_api(self, request: web.Request, body: Any) -> web.Response | None:
        if self._token_state(request.headers.get("x-acs-dingtalk-access-token")) != "ok":
            return self._new_api_error(400, INVALID_TOKEN["code"], INVALID_TOKEN["message"])
        if not isinstance(body, dict):
            return self._new_api_error(400, "MissingBody", "body is mandatory for this action.")
        if body.get("robotCode") != self.robot_code:
            return self._new_api_error(400, "invalidParameter.robotCode", "robotCode 不正确")
        return None

    def _check_msg(self, body: dict[str, Any]) -> tuple[web.Response | None, dict[str, Any]]:
        if body.get("msgKey") not in MSG_KEYS:
            return self._new_api_error(400, "invalidParameter.msgKey", "msgKey 不正确"), {}
        param = body.get("msgParam")
        if not isinstance(param, str):
            return self._new_api_error(400, "invalidParameter.msgParam", "msgParam 必须是JSON字符串"), {}
        try:
            parsed = json.loads(param)
        except ValueError:
            return self._new_api_error(400, "invalidParameter.msgParam", "msgParam 不是合法JSON"), {}
        return None, parsed

    async def _batch_send(self, request: web.Request, body: Any) -> web.Response:
        refused = self._check_new_api(request, body)
        if refused:
            return refused
        users = body.get("userIds")
        if not isinstance(users, list) or not users or len(users) > 20:
            return self._new_api_error(400, "invalidParameter.userIds", "userIds 必须是1到20个用户")
        refused, param = self._check_msg(body)
        if refused:
            return refused
        invalid = [u for u in users if u in self.invalid_users]
        throttled = [u for u in users if u in self.flow_controlled_users]
        key = f"pqk-{next(self._ids)}"
        for user in users:
            if user not in invalid and user not in throttled:
                self.robot_messages.append(
                    {"user": user, "msgKey": body["msgKey"], "msgParam": param, "processQueryKey": key}
                )
        return web.json_response(
            {"processQueryKey": key, "invalidStaffIdList": invalid, "flowControlledStaffIdList": throttled}
        )

    async def _group_send(self, request: web.Request, body: Any) -> web.Response:
        refused = self._check_new_api(request, body)
        if refused:
            return refused
        if not body.get("openConversationId"):
            return self._new_api_error(400, "invalidParameter.openConversationId", "缺少openConversationId")
        refused, param = self._check_msg(body)
        if refused:
            return refused
        key = f"pqk-{next(self._ids)}"
        self.group_messages.append(
            {"conversation": body["openConversationId"], "msgKey": body["msgKey"], "msgParam": param}
        )
        return web.json_response({"processQueryKey": key})

    async def _file_download(self, request: web.Request, body: Any) -> web.Response:
        refused = self._check_new_api(request, body)
        if refused:
            return refused
        code = body.get("downloadCode")
        if code not in self.files:
            return self._new_api_error(400, "invalidParameter.downloadCode", "downloadCode 无效")
        ticket = base64.urlsafe_b64encode(code.encode()).decode()
        return web.json_response({"downloadUrl": f"{self.base_url}/files/{ticket}"})

    def _file_content(self, ticket: str) -> web.Response:
        try:
            code = base64.urlsafe_b64decode(ticket.encode()).decode()
        except ValueError:
            code = ""
        if code not in self.files:
            return web.Response(status=404, text="<html>not found</html>", content_type="text/html")
        content, content_type = self.files[code]
        return web.Response(body=content, content_type=content_type)

    # -- oapi ----------------------------------------------------------------------

    def _check_oapi(self, request: web.Request) -> web.Response | None:
        state = self._token_state(request.query.get("access_token"))
        if state == "unknown":
            return web.json_response({"errcode": 40014, "errmsg": "不合法的access_token"})
        if state == "expired":
            return web.json_response({"errcode": 42001, "errmsg": "access_token超时"})
        return None

    async def _work_notice(self, request: web.Request, body: Any) -> web.Response:
        refused = self._check_oapi(request)
        if refused:
            return refused
        if not isinstance(body, dict) or body.get("agent_id") != self.agent_id:
            return web.json_response({"errcode": 60020, "errmsg": "agent_id 不正确"})
        users = body.get("userid_list")
        if not isinstance(users, str) or not users or len(users.split(",")) > 100:
            return web.json_response({"errcode": 40000, "errmsg": "userid_list 不正确"})
        msg = body.get("msg")
        if not isinstance(msg, dict) or "msgtype" not in msg:
            return web.json_response({"errcode": 40035, "errmsg": "缺少参数 msg"})
        task_id = next(self._ids)
        self.work_notices.append({"users": users.split(","), "msg": msg, "task_id": task_id})
        return web.json_response({"errcode": 0, "errmsg": "ok", "task_id": task_id, "request_id": "r"})

    async def _media_upload(self, request: web.Request, body: Any) -> web.Response:
        refused = self._check_oapi(request)
        if refused:
            return refused
        media = body.get("media") if isinstance(body, dict) else None
        if not isinstance(media, tuple):
            return web.json_response({"errcode": 40004, "errmsg": "缺少media"})
        name, content = media
        media_id = f"@media-{next(self._ids)}"
        self.uploads[media_id] = (name, content)
        return web.json_response(
            {"errcode": 0, "errmsg": "ok", "media_id": media_id, "type": request.query.get("type", "file")}
        )

    # -- webhooks ------------------------------------------------------------------

    async def _session_send(self, request: web.Request, body: Any) -> web.Response:
        hook = self.sessions.get(request.query.get("session", ""))
        if hook is None or self.now() >= hook.expires_at:
            return web.json_response({"errcode": 300001, "errmsg": "session expired"})
        if not isinstance(body, dict) or "msgtype" not in body:
            return web.json_response({"errcode": 40035, "errmsg": "缺少参数 msgtype"})
        hook.messages.append(body)
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _robot_send(self, request: web.Request, body: Any) -> web.Response:
        robot = self.robots.get(request.query.get("access_token", ""))
        if robot is None:
            return web.json_response({"errcode": 300005, "errmsg": "token is not exist"})
        timestamp = request.query.get("timestamp", "")
        sign = request.query.get("sign", "")  # aiohttp has url-decoded it
        if robot.secret:
            if not timestamp.isdigit():
                return web.json_response({"errcode": 310000, "errmsg": "sign not match, timestamp missing"})
            sent = datetime.fromtimestamp(int(timestamp) / 1000, tz=UTC)
            if abs(self.now() - sent) > timedelta(hours=1):
                return web.json_response({"errcode": 310000, "errmsg": "sign not match, timestamp expired"})
            if not hmac.compare_digest(sign, self._sign(timestamp, robot.secret)):
                return web.json_response({"errcode": 310000, "errmsg": "sign not match"})
        now = self.now()
        while robot.sent_at and robot.sent_at[0] <= now - timedelta(minutes=1):
            robot.sent_at.popleft()
        if len(robot.sent_at) >= 20:
            return web.json_response(SEND_TOO_FAST)
        if not isinstance(body, dict) or "msgtype" not in body:
            return web.json_response({"errcode": 40035, "errmsg": "缺少参数 msgtype"})
        robot.sent_at.append(now)
        robot.messages.append(body)
        return web.json_response({"errcode": 0, "errmsg": "ok"})
