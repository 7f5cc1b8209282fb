"""A fake DingTalk Stream gateway: ``POST /v1.0/gateway/connections/open`` and the
websocket it hands out, on one aiohttp server bound to port 0.

It checks clientId/clientSecret and the subscriptions, issues single-use tickets
(refused on reuse), and lets a test push frames shaped like DingTalk's
(``specVersion``/``type``/``headers``/``data`` as a JSON string), send SYSTEM
``ping`` and ``disconnect``, drop a connection, and read every frame the client
sent back (``acks``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

ROBOT_TOPIC = "/v1.0/im/bot/messages/get"


@dataclass
class GatewayConnection:
    number: int
    ticket: str
    ws: web.WebSocketResponse
    request: web.Request
    acks: list[dict[str, Any]] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    _ids: Any = None

    def _next_id(self) -> str:
        return f"{self.number:04x}_{next(self._ids):x}_{secrets.token_hex(3)}"

    async def push(self, frame: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(frame, ensure_ascii=False))

    async def push_callback(
        self, payload: dict[str, Any] | str, message_id: str | None = None, topic: str = ROBOT_TOPIC
    ) -> str:
        """A CALLBACK frame (a robot message by default); its messageId."""
        message_id = message_id or self._next_id()
        data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
        await self.push(
            {
                "specVersion": "1.0",
                "type": "CALLBACK",
                "headers": {
                    "appId": "fake-app-id",
                    "connectionId": f"conn-{self.number}",
                    "contentType": "application/json",
                    "messageId": message_id,
                    "time": str(int(time.time() * 1000)),
                    "topic": topic,
                },
                "data": data,
            }
        )
        return message_id

    async def ping(self, opaque: str | None = None) -> tuple[str, str]:
        """A SYSTEM ping; (messageId, the data string sent)."""
        message_id = self._next_id()
        data = json.dumps({"opaque": opaque or secrets.token_hex(6)})
        await self.push(
            {
                "specVersion": "1.0",
                "type": "SYSTEM",
                "headers": {"contentType": "application/json", "messageId": message_id, "topic": "ping"},
                "data": data,
            }
        )
        return message_id, data

    async def disconnect(self, reason: str = "connection is expired", close_after: float | None = None) -> None:
        """The SYSTEM disconnect notice; the socket is closed ``close_after`` seconds later
        (None: left open for the test to close)."""
        await self.push(
            {
                "specVersion": "1.0",
                "type": "SYSTEM",
                "headers": {"contentType": "application/json", "messageId": self._next_id(), "topic": "disconnect"},
                "data": json.dumps({"reason": reason}),
            }
        )
        if close_after is not None:
            loop = asyncio.get_running_loop()
            loop.call_later(close_after, lambda: asyncio.ensure_future(self.ws.close()))

    async def close(self) -> None:
        await self.ws.close()

    def drop(self) -> None:
        """Cut the TCP connection without a websocket close."""
        assert self.request.transport is not None
        self.request.transport.close()

    def ack_for(self, message_id: str) -> dict[str, Any] | None:
        return next((a for a in self.acks if a.get("headers", {}).get("messageId") == message_id), None)


class FakeDingTalkGateway:
    def __init__(self, client_id: str = "ding-app-key", client_secret: str = "ding-app-secret"):
        self.client_id = client_id
        self.client_secret = client_secret
        self.open_requests: list[Any] = []
        self.connections: list[GatewayConnection] = []
        self.refused_tickets: list[str] = []
        self._tickets: dict[str, float] = {}
        self._open_failures: list[tuple[int, Any]] = []
        self._ids = itertools.count(1)
        self._server: TestServer | None = None
        self._changed = asyncio.Event()

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1.0/gateway/connections/open", self._open)
        app.router.add_get("/connect", self._connect)
        self._server = TestServer(app, port=0)
        await self._server.start_server()
        return self.base_url

    async def close(self) -> None:
        for conn in self.connections:
            if not conn.ws.closed:
                await conn.ws.close()
        if self._server is not None:
            await self._server.close()
            self._server = None

    async def __aenter__(self) -> FakeDingTalkGateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "not started"
        return str(self._server.make_url("")).rstrip("/")

    def fail_opens(self, times: int, status: int = 503, body: Any = None) -> None:
        self._open_failures.extend([(status, body or {"code": "ServiceUnavailable", "message": "busy"})] * times)

    @property
    def acks(self) -> list[dict[str, Any]]:
        return [ack for conn in self.connections for ack in conn.acks]

    def ack_for(self, message_id: str) -> dict[str, Any] | None:
        return next((a for a in self.acks if a.get("headers", {}).get("messageId") == message_id), None)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Any, timeout: float = 5.0) -> Any:
        """Wait until ``predicate()`` (re-checked at every gateway event) is truthy; its value."""
        async def wait() -> Any:
            while True:
                changed = self._changed
                value = predicate()
                if value:
                    return value
                await changed.wait()

        return await asyncio.wait_for(wait(), timeout)

    async def wait_for_connection(self, number: int = 1, timeout: float = 5.0) -> GatewayConnection:
        """The ``number``-th websocket connection (1-based), once it is open."""
        return await self.wait_until(lambda: len(self.connections) >= number and self.connections[number - 1], timeout)

    async def wait_for_ack(self, message_id: str, timeout: float = 5.0) -> dict[str, Any]:
        return await self.wait_until(lambda: self.ack_for(message_id), timeout)

    # -- handlers ------------------------------------------------------------------

    async def _open(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        self.open_requests.append(body)
        self._notify()
        if self._open_failures:
            status, payload = self._open_failures.pop(0)
            return web.json_response(payload, status=status)
        if not isinstance(body, dict) or body.get("clientId") != self.client_id:
            return web.json_response({"code": "InvalidClientId", "message": "clientId 不正确"}, status=400)
        if body.get("clientSecret") != self.client_secret:
            return web.json_response({"code": "InvalidClientSecret", "message": "clientSecret 不正确"}, status=400)
        subs = body.get("subscriptions")
        if not isinstance(subs, list) or not subs:
            return web.json_response({"code": "InvalidSubscriptions", "message": "subscriptions 为空"}, status=400)
        ticket = secrets.token_hex(16)
        self._tickets[ticket] = time.monotonic() + 90
        return web.json_response({"endpoint": f"{str(self._server.make_url('/connect')).replace('http', 'ws', 1)}", "ticket": ticket})

    async def _connect(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        expires = self._tickets.pop(ticket, None)
        if expires is None or time.monotonic() > expires:
            self.refused_tickets.append(ticket)
            self._notify()
            return web.Response(status=401, text="invalid ticket")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = GatewayConnection(len(self.connections) + 1, ticket, ws, request, _ids=itertools.count(1))
        self.connections.append(conn)
        self._notify()
        try:
            async for msg in ws:
                try:
                    conn.acks.append(json.loads(msg.data))
                except (TypeError, ValueError):
                    conn.acks.append({"unparsable": msg.data})
                self._notify()
        finally:
            conn.closed.set()
            self._notify()
        return ws
