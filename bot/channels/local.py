"""The built-in chat simulator: speak as anyone of the organisation, see what the
bot sends to each person. The demo and the end-to-end tests run on it.

It goes through the same pipeline as the real channels (store, dispatch, outbox);
only transport differs: "sending" to a person means adding to their inbox.
Everything it needs from the rest of the bot is injected by the app.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from aiohttp import web

from bot.message import IncomingMessage, Location, MessageKind, SendResult

log = logging.getLogger(__name__)

PAGE = Path(__file__).resolve().parent / "sim.html"
CHANNEL = "local"
MAX_TEXT = 2000


@dataclass(frozen=True)
class LocalPorts:
    """What the simulator needs from the app."""

    store: Callable[[IncomingMessage], Awaitable[bool]]
    people: Callable[[], Awaitable[list[dict]]]  # [{key, name, roles, local}]
    person: Callable[[str], Awaitable[dict | None]]  # one of those by key
    inbox: Callable[[str, int], Awaitable[list[dict]]]  # (local id, after id) -> items
    append_inbox: Callable[[str, dict], Awaitable[None]]  # (local id, payload)
    settle: Callable[[], Awaitable[None]]  # process what is queued (for ?wait=1)
    now: Callable[[], datetime]


class LocalChannel:
    def __init__(self, ports: LocalPorts):
        self._ports = ports

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/sim", self.page),
            web.get("/sim/api/people", self.list_people),
            web.post("/sim/api/messages", self.post_message),
            web.get("/sim/api/inbox", self.get_inbox),
        ]

    # -- the page --------------------------------------------------------------

    async def page(self, _request: web.Request) -> web.Response:
        return web.Response(text=PAGE.read_text(encoding="utf-8"), content_type="text/html")

    async def list_people(self, _request: web.Request) -> web.Response:
        return web.json_response(await self._ports.people())

    # -- in ------------------------------------------------------------------------

    async def post_message(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "body must be JSON")
        if not isinstance(body, dict):
            return _error(400, "body must be a JSON object")
        person = await self._person(body.get("user"))
        if person is None:
            return _error(404, "unknown user: use a person key from /sim/api/people")
        message = self._to_message(person["local"], body)
        if isinstance(message, str):
            return _error(400, message)
        stored = await self._ports.store(message)
        if request.query.get("wait") in ("1", "true"):
            await asyncio.wait_for(self._ports.settle(), timeout=30)
        return web.json_response({"ok": True, "id": message.message_id, "duplicate": not stored})

    def _to_message(self, sender: str, body: dict) -> IncomingMessage | str:
        text, action = body.get("text"), body.get("action")
        location = body.get("location")
        message_id = str(body.get("id") or uuid.uuid4().hex)
        common = dict(channel=CHANNEL, message_id=message_id, sender_id=sender, received_at=self._ports.now())
        if action is not None:
            if not isinstance(action, str) or not action.strip():
                return "action must be a non-empty string"
            return IncomingMessage(kind=MessageKind.ACTION, action=action.strip(), **common)
        if isinstance(location, dict):
            try:
                loc = Location(float(location["latitude"]), float(location["longitude"]), str(location.get("label", "")))
            except (KeyError, TypeError, ValueError):
                return "location needs latitude and longitude"
            return IncomingMessage(kind=MessageKind.LOCATION, location=loc, **common)
        if not isinstance(text, str) or not text.strip():
            return "give text, action or location"
        if len(text) > MAX_TEXT:
            return f"text longer than {MAX_TEXT} characters"
        return IncomingMessage(kind=MessageKind.TEXT, text=text, **common)

    # -- out -----------------------------------------------------------------------

    async def get_inbox(self, request: web.Request) -> web.Response:
        person = await self._person(request.query.get("user"))
        if person is None:
            return _error(404, "unknown user")
        try:
            after = int(request.query.get("after", "0"))
        except ValueError:
            return _error(400, "after must be an integer")
        return web.json_response(await self._ports.inbox(person["local"], after))

    async def deliver(self, address: str, payload: dict) -> SendResult:
        await self._ports.append_inbox(address, payload)
        return SendResult.success()

    async def _person(self, key) -> dict | None:
        if not isinstance(key, str):
            return None
        person = await self._ports.person(key)
        return person if person and person.get("local") else None


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=status)
