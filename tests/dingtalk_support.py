"""The real app on DingTalk (HTTP callback mode), its API calls going to the fake
DingTalk API (tests/fakes/dingtalk_api.py).

Callbacks are built here the way DingTalk builds them: a robot message body with
a fresh session webhook (on the fake, valid 90 minutes by the test clock unless
told otherwise) and the ``timestamp``/``sign`` headers, the sign computed by hand
(base64 of HMAC-SHA256 keyed by the appSecret over ``timestamp + "\\n" + appSecret``),
independently of the bot's code.

A test module makes its fixture with ``running_dingtalk_bot`` (tests/conftest.py is
shared and left alone).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

DINGTALK = {
    "app_key": "dingkpbotdemo0001",
    "app_secret": "kpbot-dingtalk-secret-钉钉",
    "robot_code": "dingkpbotrobot0001",
}
SESSION_TTL = timedelta(minutes=90)  # what DingTalk gives a session webhook
BUTTON_PREFIX = "dtmd://dingtalkclient/sendMessage?content="


def hand_sign(timestamp: str, secret: str) -> str:
    mac = hmac.new(secret.encode("utf-8"), (timestamp + "\n" + secret).encode("utf-8"), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


def millis(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def button_command(url: str) -> str:
    """What a click on an action-card button makes the person's DingTalk send."""
    assert url.startswith(BUTTON_PREFIX), url
    return unquote(url[len(BUTTON_PREFIX):])


def card_buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, command) of the buttons of a robot API message (batchSend) or a
    session-webhook message (msgtype actionCard)."""
    if "msgKey" in message:
        param = message["msgParam"]
        if "singleURL" in param:
            return [(param["singleTitle"], button_command(param["singleURL"]))]
        pairs = []
        for i in itertools.count(1):
            if f"actionURL{i}" not in param:
                return pairs
            pairs.append((param[f"actionTitle{i}"], button_command(param[f"actionURL{i}"])))
    card = message.get("actionCard") or {}
    if "singleURL" in card:
        return [(card["singleTitle"], button_command(card["singleURL"]))]
    return [(b["title"], button_command(b["actionURL"])) for b in card.get("btns", [])]


def message_text(message: dict[str, Any]) -> str:
    """The readable text of a robot API message or a session-webhook message."""
    if "msgKey" in message:
        param = message["msgParam"]
        return param.get("content") or param.get("text") or ""
    kind = message["msgtype"]
    part = message[kind]
    return part.get("content") or part.get("text") or ""


class DingTalkBot:
    """The real app with DingTalk on; speaks as DingTalk users through /dingtalk/callback."""

    def __init__(self, client, fake, clock):
        self.client = client
        self.fake = fake
        self.clock = clock
        self._msg_ids = itertools.count(1)
        self.sessions: dict[str, list[str]] = {}  # dingtalk user -> the session ids of their messages

    @property
    def runtime(self):
        from bot.app import RUNTIME

        return self.client.app[RUNTIME]

    async def settle(self) -> None:
        await self.runtime.settle()

    def body(
        self,
        user: str,
        text: str,
        *,
        msg_id: str | None = None,
        webhook_expires_at: datetime | None = None,
        fake_expires_at: datetime | None = None,
    ) -> dict[str, Any]:
        """A 1:1 text message from ``user``, DingTalk-shaped, with a new session webhook.

        ``webhook_expires_at`` is what the message says (default: now + 90 min);
        ``fake_expires_at`` is when the fake really stops accepting it (default: the same).
        """
        now = self.clock.now()
        expires = webhook_expires_at or now + SESSION_TTL
        url = self.fake.session_webhook(fake_expires_at or expires)
        self.sessions.setdefault(user, []).append(url.rsplit("=", 1)[1])
        return {
            "conversationId": f"cid{user}==",
            "atUsers": [],
            "chatbotCorpId": "dingkpbotcorp",
            "chatbotUserId": "$:LWCP_v1:$kpbot",
            "msgId": msg_id or f"msg{next(self._msg_ids):06d}==",
            "senderNick": user,
            "isAdmin": False,
            "senderStaffId": user,
            "sessionWebhookExpiredTime": millis(expires),
            "createAt": millis(now) - 300,
            "senderCorpId": "dingkpbotcorp",
            "conversationType": "1",
            "senderId": f"$:LWCP_v1:${user}",
            "sessionWebhook": url,
            "text": {"content": text},
            "robotCode": DINGTALK["robot_code"],
            "msgtype": "text",
        }

    async def post(self, body: dict[str, Any], *, timestamp: str | None = None, sign: str | None = None):
        timestamp = timestamp or str(millis(self.clock.now()))
        sign = sign if sign is not None else hand_sign(timestamp, DINGTALK["app_secret"])
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        return await self.client.post(
            "/dingtalk/callback", data=data,
            headers={"timestamp": timestamp, "sign": sign, "Content-Type": "application/json; charset=utf-8"},
        )

    async def say(self, user: str, text: str, **kwargs: Any) -> int:
        """Post a text message from ``user`` and settle; the callback's HTTP status."""
        response = await self.post(self.body(user, text, **kwargs))
        assert response.status == 200, await response.text()
        assert await response.json() == {"msgtype": "empty"}  # nothing posted into the chat by the callback
        await self.settle()
        return response.status

    # -- what the fake received ------------------------------------------------------

    def webhook_messages(self, user: str) -> list[dict[str, Any]]:
        """Everything posted to the session webhooks of ``user``'s messages, in order."""
        return [m for s in self.sessions.get(user, []) for m in self.fake.sessions[s].messages]

    def last_session(self, user: str) -> list[dict[str, Any]]:
        """What was posted to the session webhook of ``user``'s last message."""
        return self.fake.sessions[self.sessions[user][-1]].messages

    def api_messages(self, user: str) -> list[dict[str, Any]]:
        """Robot 1:1 messages (batchSend) delivered to ``user``."""
        return [m for m in self.fake.robot_messages if m["user"] == user]


@asynccontextmanager
async def running_dingtalk_bot(aiohttp_client, database, tmp_path, clock, classifier) -> AsyncIterator[DingTalkBot]:
    """The app in DingTalk HTTP-callback mode against a started fake API; for a
    ``dingtalk_bot`` fixture (takes the fixtures of tests/conftest.py)."""
    from bot.app import build_app
    from tests.fakes.dingtalk_api import FakeDingTalkAPI

    async with FakeDingTalkAPI(app_key=DINGTALK["app_key"], app_secret=DINGTALK["app_secret"],
                               robot_code=DINGTALK["robot_code"], now=clock.now) as fake:
        settings = database.settings(
            tmp_path, dingtalk_app_key=DINGTALK["app_key"], dingtalk_app_secret=DINGTALK["app_secret"],
            dingtalk_robot_code=DINGTALK["robot_code"], dingtalk_api_base=fake.base_url,
            dingtalk_oapi_base=fake.base_url, dingtalk_mode="http", simulator="off",
        )
        app = build_app(settings, now=clock.now, start_workers=False, classifier=classifier)
        client = await aiohttp_client(app)
        try:
            yield DingTalkBot(client, fake, clock)
        finally:
            await client.close()  # the app goes before the fake it talks to
