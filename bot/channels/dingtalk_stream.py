"""DingTalk Stream mode, driven with aiohttp's websocket client.

Why not the official ``dingtalk-stream`` SDK: 0.24.x opens connections and fetches
tokens with blocking ``requests`` calls; this module speaks the documented frame
protocol itself (open-dingtalk developerpedia "Stream 协议描述" and the SDK's
``frames.py``):

1. ``POST {api_base}/v1.0/gateway/connections/open`` with ``clientId`` (AppKey),
   ``clientSecret`` (AppSecret) and ``subscriptions`` ->
   ``{"endpoint": "wss://...", "ticket": "..."}``; a ticket is good for one
   connection within 90 s.
2. websocket to ``endpoint?ticket=<ticket>``.
3. Frames are JSON text: ``{"specVersion", "type": SYSTEM|EVENT|CALLBACK,
   "headers": {"messageId", "topic", "contentType", "time", ...}, "data": "<JSON string>"}``.
   Robot messages are CALLBACK frames of topic ``/v1.0/im/bot/messages/get``;
   ``data`` is the same JSON the HTTP callback receives.
4. Every CALLBACK is answered with ``{"code": 200, "headers": {"contentType":
   "application/json", "messageId": <same>}, "message": "OK", "data":
   "{\\"response\\": null}"}`` -- here only after ``store()`` has committed the
   message (500 when storing failed, 400 for a body we cannot read).
5. SYSTEM ``ping`` is answered at once with the same messageId and its ``data``
   (``{"opaque": ...}``) echoed. SYSTEM ``disconnect`` announces that the server
   will close this connection about 10 s later: a new connection is opened right
   away (after the small first backoff delay) while the old one keeps being read
   until it closes, so nothing sent in between is dropped.

Each CALLBACK is processed in its own task, so one slow ``store()`` never holds
up other frames or pings. Reconnection uses capped exponential backoff with
jitter; the attempt counter starts again after a connection that received
frames. ``sleep`` and ``random`` are injectable for tests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random as _random
import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from yarl import URL

from bot.channels.dingtalk import (
    ACTION_PATTERN,
    Clock,
    DingTalkPayloadError,
    Store,
    parse_robot_message,
)
from config.settings import Settings

log = logging.getLogger(__name__)

ROBOT_TOPIC = "/v1.0/im/bot/messages/get"
OPEN_PATH = "/v1.0/gateway/connections/open"
USER_AGENT = "kpbot-dingtalk-stream/0.1"


class StreamOpenError(Exception):
    """The gateway did not hand out an endpoint and ticket."""


# Failures to connect that need no traceback in the log.
_EXPECTED = (StreamOpenError, aiohttp.ClientError, asyncio.TimeoutError, OSError)


def ack_frame(message_id: str | None, code: int = 200, message: str = "OK", data: Any = None) -> dict[str, Any]:
    """An acknowledgement frame; ``data`` is sent as a JSON string (a str is sent as is)."""
    return {
        "code": code,
        "headers": {"contentType": "application/json", "messageId": message_id},
        "message": message,
        "data": data if isinstance(data, str) else json.dumps(data, ensure_ascii=False),
    }


class _Connection:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse, number: int):
        self.ws = ws
        self.number = number
        self.frames = 0
        self.handover = asyncio.Event()  # set by a SYSTEM disconnect
        self.send_lock = asyncio.Lock()
        self.pending: set[asyncio.Task[None]] = set()


class DingTalkStream:
    """Receive robot messages over DingTalk Stream mode and store them.

    ``start()`` spawns the connection loop (call it at app start-up);
    ``stop()`` ends it, closes the websockets and lets in-flight messages finish
    storing for up to ``stop_grace`` seconds.
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        store: Store,
        session: aiohttp.ClientSession,
        now: Clock,
        *,
        api_base: str = "https://api.dingtalk.com",
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        heartbeat: float | None = 30.0,
        open_timeout: float = 10.0,
        drain_timeout: float = 15.0,
        stop_grace: float = 5.0,
        max_pending: int = 100,
        action_pattern: re.Pattern[str] | None = ACTION_PATTERN,
    ):
        self._client_id = client_id
        self._client_secret = client_secret
        self._store = store
        self._session = session
        self._now = now
        self.api_base = api_base.rstrip("/")
        self._sleep = sleep
        self._random = random
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._heartbeat = heartbeat
        self._open_timeout = aiohttp.ClientTimeout(total=open_timeout)
        self._drain_timeout = drain_timeout
        self._stop_grace = stop_grace
        self._max_pending = max_pending
        self._action_pattern = action_pattern

        self._main: asyncio.Task[None] | None = None
        self._stopping = False
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.connections_opened = 0
        self.last_error = ""

    @classmethod
    def from_settings(
        cls, settings: Settings, *, store: Store, session: aiohttp.ClientSession, now: Clock
    ) -> DingTalkStream:
        return cls(
            settings.dingtalk_app_key,
            settings.dingtalk_app_secret,
            store,
            session,
            now,
            api_base=settings.dingtalk_api_base,
        )

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        if self._main is not None and not self._main.done():
            return
        self._stopping = False
        self._main = asyncio.create_task(self._run(), name="dingtalk-stream")

    async def stop(self) -> None:
        self._stopping = True
        main, self._main = self._main, None
        if main is not None:
            main.cancel()
            await asyncio.gather(main, return_exceptions=True)
        for conn in list(self._connections):
            await conn.ws.close()
        frame_tasks = [t for t in self._tasks if t.get_name().startswith("dingtalk-frame")]
        if frame_tasks:
            await asyncio.wait(frame_tasks, timeout=self._stop_grace)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._connections.clear()

    @property
    def connected(self) -> bool:
        return any(not c.ws.closed and not c.handover.is_set() for c in self._connections)

    def status(self) -> dict[str, Any]:
        """For /healthz."""
        return {
            "mode": "stream",
            "connected": self.connected,
            "connections_opened": self.connections_opened,
            "last_error": self.last_error,
        }

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- backoff ---------------------------------------------------------------

    def backoff_delay(self, attempt: int) -> float:
        """Capped exponential delay with "equal jitter": between half and all of the cap."""
        cap = min(self.backoff_max, self.backoff_base * (2 ** min(attempt, 30)))
        return cap / 2 + self._random() * cap / 2

    # -- the connection loop -----------------------------------------------------

    async def _open(self) -> URL:
        body = {
            "clientId": self._client_id,
            "clientSecret": self._client_secret,
            "subscriptions": [{"type": "CALLBACK", "topic": ROBOT_TOPIC}],
            "ua": USER_AGENT,
        }
        async with self._session.post(
            f"{self.api_base}{OPEN_PATH}",
            json=body,
            headers={"Accept": "application/json"},
            timeout=self._open_timeout,
        ) as resp:
            raw = await resp.read()
            if resp.status != 200:
                raise StreamOpenError(f"connections/open: HTTP {resp.status} {raw[:200]!r}")
        try:
            data = json.loads(raw)
        except ValueError:
            raise StreamOpenError(f"connections/open: not JSON: {raw[:200]!r}") from None
        endpoint = data.get("endpoint") if isinstance(data, dict) else None
        ticket = data.get("ticket") if isinstance(data, dict) else None
        if not isinstance(endpoint, str) or not isinstance(ticket, str) or not endpoint or not ticket:
            raise StreamOpenError(f"connections/open: no endpoint/ticket in {data!r}")
        return URL(endpoint).update_query(ticket=ticket)

    async def _connect(self) -> _Connection:
        url = await self._open()
        async with asyncio.timeout(self._open_timeout.total):  # the handshake, whatever the session's timeout
            ws = await self._session.ws_connect(
                url,
                heartbeat=self._heartbeat,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
                max_msg_size=16 * 1024 * 1024,
            )
        self.connections_opened += 1
        conn = _Connection(ws, self.connections_opened)
        self._connections.add(conn)
        log.info("dingtalk stream: connection %d open", conn.number)
        return conn

    async def _run(self) -> None:
        attempt = 0
        while not self._stopping:
            try:
                healthy = await self._one_connection()
            except Exception as exc:  # never let the loop die: log, back off, try again
                self.last_error = f"{exc.__class__.__name__}: {exc}"
                log.warning("dingtalk stream: %s", self.last_error, exc_info=not isinstance(exc, _EXPECTED))
                healthy = False
            if healthy:
                attempt = 0
            if self._stopping:
                break
            delay = self.backoff_delay(attempt)
            attempt += 1
            log.info("dingtalk stream: (re)connecting in %.1f s", delay)
            await self._sleep(delay)

    async def _one_connection(self) -> bool:
        """Connect and read until the connection ends or announces its end.

        True when the connection received frames (the backoff starts again).
        """
        conn = await self._connect()
        reader = self._spawn(self._read(conn), f"dingtalk-reader-{conn.number}")
        handover = asyncio.ensure_future(conn.handover.wait())
        try:
            await asyncio.wait({reader, handover}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            handover.cancel()
        if reader.done():
            self.last_error = f"connection {conn.number} closed"
            log.warning("dingtalk stream: connection %d closed", conn.number)
        else:  # announced disconnect: keep reading the old one until the server closes it
            self._spawn(self._drain(conn, reader), f"dingtalk-drain-{conn.number}")
        return conn.frames > 0

    async def _drain(self, conn: _Connection, reader: asyncio.Task[Any]) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(reader), timeout=self._drain_timeout)
        except asyncio.TimeoutError:
            log.info("dingtalk stream: closing connection %d after its disconnect notice", conn.number)
            await conn.ws.close()
            await reader

    async def _read(self, conn: _Connection) -> None:
        try:
            async for msg in conn.ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    raw = msg.data
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    raw = msg.data.decode("utf-8", "replace")
                else:  # ERROR
                    log.warning("dingtalk stream: connection %d error %r", conn.number, msg.data)
                    break
                await self._on_frame(conn, raw)
        except (aiohttp.ClientError, ConnectionError, asyncio.TimeoutError) as exc:
            log.warning("dingtalk stream: connection %d failed: %s", conn.number, exc)
        finally:
            if not conn.ws.closed:
                await conn.ws.close()
            self._connections.discard(conn)

    async def _on_frame(self, conn: _Connection, raw: str) -> None:
        try:
            frame = json.loads(raw)
        except ValueError:
            log.warning("dingtalk stream: frame is not JSON: %.200r", raw)
            return
        if not isinstance(frame, dict):
            log.warning("dingtalk stream: frame is not an object: %.200r", raw)
            return
        conn.frames += 1
        headers = frame.get("headers") if isinstance(frame.get("headers"), dict) else {}
        frame_type = frame.get("type")
        topic = headers.get("topic")
        message_id = headers.get("messageId")
        if frame_type == "SYSTEM":
            if topic == "ping":
                await self._send(conn, ack_frame(message_id, data=frame.get("data") or "{}"))
            elif topic == "disconnect":
                log.info("dingtalk stream: connection %d: disconnect notice %s", conn.number, frame.get("data"))
                conn.handover.set()
            else:
                log.info("dingtalk stream: unknown SYSTEM topic %r", topic)
            return
        if frame_type == "CALLBACK":
            while len(conn.pending) >= self._max_pending:
                await asyncio.wait(conn.pending, return_when=asyncio.FIRST_COMPLETED)
            task = self._spawn(self._on_callback(conn, message_id, topic, frame.get("data")), "dingtalk-frame")
            conn.pending.add(task)
            task.add_done_callback(conn.pending.discard)
            return
        if frame_type == "EVENT":  # not subscribed; say so instead of leaving it unanswered
            await self._send(conn, ack_frame(message_id, 404, "not subscribed", {"status": "LATER"}))
            return
        log.warning("dingtalk stream: unknown frame type %r", frame_type)

    async def _on_callback(self, conn: _Connection, message_id: str | None, topic: Any, data: Any) -> None:
        if topic != ROBOT_TOPIC:
            await self._send(conn, ack_frame(message_id, 404, "unknown topic", {"response": None}))
            return
        try:
            payload = json.loads(data) if isinstance(data, str) else data
            message = parse_robot_message(payload, self._now(), self._action_pattern)
        except (ValueError, DingTalkPayloadError) as exc:
            log.warning("dingtalk stream: unreadable robot message %s: %s", message_id, exc)
            await self._send(conn, ack_frame(message_id, 400, "bad message", {"response": None}))
            return
        try:
            fresh = await self._store(message)
        except Exception:
            log.exception("dingtalk stream: storing msgId %s failed", message.message_id)
            await self._send(conn, ack_frame(message_id, 500, "internal error", {"response": None}))
            return
        if not fresh:
            log.info("dingtalk stream: duplicate msgId %s ignored", message.message_id)
        await self._send(conn, ack_frame(message_id, 200, "OK", {"response": None}))

    async def _send(self, conn: _Connection, frame: dict[str, Any]) -> bool:
        async with conn.send_lock:
            if conn.ws.closed:
                log.info("dingtalk stream: connection %d closed before ack %s", conn.number, frame["headers"])
                return False
            try:
                await conn.ws.send_str(json.dumps(frame, ensure_ascii=False))
            except (aiohttp.ClientError, ConnectionError) as exc:
                log.info("dingtalk stream: ack on connection %d failed: %s", conn.number, exc)
                return False
            return True
