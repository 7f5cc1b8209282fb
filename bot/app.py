"""The app factory: the one place that wires configuration, database, channels,
handlers, workers and the scheduler together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
from aiohttp import web
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.channels.dingtalk import DingTalkCallback
from bot.channels.dingtalk_api import DingTalkClient, DingTalkGroupSender
from bot.channels.dingtalk_stream import DingTalkStream
from bot.channels.local import LocalChannel, LocalPorts
from bot.channels.wecom import WeComCallback
from bot.channels.wecom_api import WeComClient, WeComGroupSender, WeComSender
from bot.dispatch import Dispatcher
from bot.ingest import BatchingStore
from bot.media import MediaWorker
from bot.message import HandlerResult, IncomingMessage, Reply
from bot.router import Router
from config.org import load_org
from config.policy import Policy, load_policy
from config.settings import Settings
from handlers import setup_routes, texts
from handlers.context import Context, Services
from handlers.pipeline import handle_message, reply_payload
from handlers.triage_setup import load_classifier
from models import outbox, schema
from models.db import is_sqlite, make_engine, make_sessionmaker
from models.orgsync import sync_org
from models.tables import LocalInboxItem, Person
from scheduler import setup as clock
from scheduler.delivery import OutboxWorker, Sender
from scheduler.ledger_export import ledger_rows, write_ledger_xlsx
from scheduler.polling import PollingLoop

log = logging.getLogger(__name__)

CHECKPOINT_SECONDS = 10.0  # SQLite: how often the WAL is checkpointed, off the event loop


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Runtime:
    """Everything the running app holds; one instance per app."""

    settings: Settings
    now: Callable[[], datetime]
    policy: Policy
    engine: AsyncEngine | None = None
    sessionmaker: async_sessionmaker[AsyncSession] | None = None
    services: Services | None = None
    router: Router[Context, HandlerResult] | None = None
    dispatcher: Dispatcher | None = None
    outbox_worker: OutboxWorker | None = None
    senders: dict[str, Sender] = field(default_factory=dict)
    channels_status: dict[str, str] = field(default_factory=dict)
    http: aiohttp.ClientSession | None = None
    scheduler: object | None = None
    classifier: object | None = None
    downloaders: dict = field(default_factory=dict)  # channel -> (media id, folder) -> Path
    media_worker: MediaWorker | None = None
    ingest: BatchingStore | None = None
    dingtalk_stream: DingTalkStream | None = None

    @property
    def person_channels(self) -> tuple[str, ...]:
        """Channels that reach a person (not office group robots)."""
        return tuple(c for c in self.senders if not c.endswith("_group"))

    async def store(self, message: IncomingMessage) -> bool:
        """Persist an incoming message and commit, before the platform is answered."""
        return await self.ingest.store(message)

    def wake_dispatcher(self) -> None:
        if self.dispatcher:
            self.dispatcher.wake()

    async def process(self, session: AsyncSession, message: IncomingMessage, now: datetime) -> None:
        await handle_message(session, self.services, self.router, message, now, self.person_channels)

    async def apologise(self, session: AsyncSession, message: IncomingMessage, now: datetime) -> None:
        reply = Reply(texts.PROCESSING_FAILED)
        await outbox.queue(session, route=outbox.Route(message.channel, message.sender_id),
                           payload=reply_payload(reply, message), now=now)

    async def settle(self, rounds: int = 50) -> None:
        """Process everything queued now: inbound messages, the outbox, media downloads."""
        for _ in range(rounds):
            handled = await self.dispatcher.drain()
            sent = await self.outbox_worker.run_once()
            fetched = await self.media_worker.run_once() if self.media_worker else 0
            if not handled and not sent and not fetched:
                return

    def wake_outbox(self) -> None:
        if self.outbox_worker:
            self.outbox_worker.wake()


RUNTIME = web.AppKey("runtime", Runtime)


def build_app(
    settings: Settings,
    *,
    now: Callable[[], datetime] = utc_now,
    start_workers: bool = True,
    classifier: object | None = None,
) -> web.Application:
    """`classifier` lets tests share one built classifier between apps."""
    app = web.Application(client_max_size=settings.max_body_bytes)
    policy = load_policy(settings.config_file("policy.toml"))
    runtime = Runtime(settings=settings, now=now, policy=policy, classifier=classifier)
    app[RUNTIME] = runtime
    app.cleanup_ctx.append(_database(runtime))
    app.cleanup_ctx.append(_http_client(runtime))
    app.cleanup_ctx.append(_core(runtime))
    app.cleanup_ctx.append(_channels(runtime, app))
    if start_workers:
        app.cleanup_ctx.append(_workers(runtime))
        app.cleanup_ctx.append(_scheduler(runtime))
    app.router.add_get("/healthz", healthz)
    return app


def _database(runtime: Runtime):
    async def context(_app: web.Application):
        settings = runtime.settings
        url = settings.effective_database_url
        if is_sqlite(url):
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        runtime.engine = make_engine(url, schema=settings.database_schema or None)
        runtime.sessionmaker = make_sessionmaker(runtime.engine)
        try:
            await _ensure_schema(runtime.engine)
        except BaseException:
            await runtime.engine.dispose()
            raise
        runtime.ingest = BatchingStore(runtime.engine, after_commit=runtime.wake_dispatcher)
        checkpoints = PollingLoop(runtime.ingest.checkpoint, name="checkpoint", poll_seconds=CHECKPOINT_SECONDS)
        if settings.load_demo_org:
            await _load_org_if_empty(runtime)
        await checkpoints.start()
        yield
        await checkpoints.stop()
        await runtime.ingest.close()
        await runtime.engine.dispose()

    return context


async def _ensure_schema(engine: AsyncEngine) -> None:
    """SQLite (one embedded instance) upgrades itself; PostgreSQL, shared by
    several instances, must be upgraded on purpose with `kpbot db upgrade`."""
    if await schema.is_current(engine):
        return
    if is_sqlite(engine):
        log.info("upgrading the SQLite schema to %s", schema.head_revision())
        await schema.upgrade(engine)
        return
    raise schema.SchemaOutdated(
        f"database schema is at {await schema.current_revision(engine) or 'nothing (empty)'}, this kpbot needs "
        f"{schema.head_revision()}: run `kpbot db upgrade` first"
    )


async def _load_org_if_empty(runtime: Runtime) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        if await session.scalar(select(func.count()).select_from(Person)):
            return
        report = await sync_org(session, load_org(runtime.settings.config_file("org.toml")))
    log.info("empty database: loaded the demo organisation (%s)", report.summary())


def _http_client(runtime: Runtime):
    async def context(_app: web.Application):
        runtime.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        yield
        await runtime.http.close()

    return context


def _core(runtime: Runtime):
    async def context(_app: web.Application):
        settings = runtime.settings
        media_dir = settings.data_dir / "media"
        media_dir.mkdir(parents=True, exist_ok=True)
        classifier = runtime.classifier or await load_classifier(settings)
        runtime.services = Services(
            policy=runtime.policy, classifier=classifier, media_dir=media_dir,
            public_url=settings.public_url or f"http://{settings.host}:{settings.port}",
            export_dir=settings.data_dir / "exports",
            ledger_exporter=_ledger_exporter(runtime.policy),
        )
        runtime.router = Router()
        setup_routes(runtime.router)
        runtime.dispatcher = Dispatcher(
            runtime.sessionmaker, runtime.process, runtime.apologise, runtime.now,
            poll_seconds=settings.dispatch_poll_seconds, after_commit=runtime.wake_outbox,
        )
        runtime.outbox_worker = OutboxWorker(
            runtime.sessionmaker, runtime.senders, runtime.now, poll_seconds=settings.outbox_poll_seconds,
            max_attempts=settings.outbox_max_attempts,
        )
        yield

    return context


def _ledger_exporter(policy: Policy):
    async def export(session: AsyncSession, *, office_ids, now: datetime, path: Path) -> Path:
        rows = await ledger_rows(session, office_ids=office_ids, now=now, policy=policy)
        path.parent.mkdir(parents=True, exist_ok=True)
        return await asyncio.to_thread(write_ledger_xlsx, rows, path, policy.clock.tz)

    return export


def _channels(runtime: Runtime, app: web.Application):
    async def context(_app: web.Application):
        settings = runtime.settings
        stream = None
        if settings.wecom_enabled:
            _wire_wecom(runtime, app)
        if settings.dingtalk_enabled:
            stream = _wire_dingtalk(runtime, app)
        if settings.simulator_enabled:
            if settings.wecom_enabled or settings.dingtalk_enabled:
                log.warning("the chat simulator is ON next to a real platform: anyone who reaches /sim "
                            "can speak as anyone. Set KPBOT_SIMULATOR=off in production.")
            local = LocalChannel(_local_ports(runtime))
            app.router.add_routes(local.routes())
            runtime.senders["local"] = local
            runtime.channels_status["local"] = "on"
        runtime.outbox_worker.enabled_channels = runtime.person_channels
        runtime.media_worker = MediaWorker(runtime.sessionmaker, runtime.downloaders, runtime.services.media_dir,
                                           runtime.now)
        if stream is not None:
            await stream.start()
        yield
        if stream is not None:
            await stream.stop()

    return context


def _wire_wecom(runtime: Runtime, app: web.Application) -> None:
    settings = runtime.settings
    WeComCallback.from_settings(settings, store=runtime.store, now=runtime.now).add_routes(app)
    client = WeComClient.from_settings(settings, session=runtime.http, now=runtime.now)
    runtime.senders["wecom"] = WeComSender(client)
    runtime.downloaders["wecom"] = client.download_media
    runtime.senders["wecom_group"] = WeComGroupSender(client)
    runtime.channels_status["wecom"] = "on"


def _wire_dingtalk(runtime: Runtime, app: web.Application) -> DingTalkStream | None:
    settings = runtime.settings
    client = DingTalkClient.from_settings(settings, session=runtime.http, now=runtime.now)
    runtime.senders["dingtalk"] = client
    runtime.downloaders["dingtalk"] = client.download_file
    runtime.senders["dingtalk_group"] = DingTalkGroupSender(client)
    if settings.dingtalk_mode == "http":
        app.router.add_routes(DingTalkCallback.from_settings(settings, store=runtime.store, now=runtime.now).routes())
        runtime.channels_status["dingtalk"] = "on (http callback)"
        return None
    stream = DingTalkStream.from_settings(settings, store=runtime.store, session=runtime.http, now=runtime.now)
    runtime.dingtalk_stream = stream
    runtime.channels_status["dingtalk"] = "on (stream)"
    return stream


def _local_ports(runtime: Runtime) -> LocalPorts:
    def describe(p: Person) -> dict:
        return {"key": p.key, "name": p.name, "roles": sorted(p.roles),
                "local": next((i.external_id for i in p.identities if i.channel == "local"), None)}

    async def people() -> list[dict]:
        async with runtime.sessionmaker() as session:
            rows = (await session.scalars(select(Person).where(Person.active.is_(True)).order_by(Person.id))).all()
            return [describe(p) for p in rows]

    async def person(key: str) -> dict | None:
        async with runtime.sessionmaker() as session:
            row = await session.scalar(select(Person).where(Person.key == key, Person.active.is_(True)))
            return describe(row) if row else None

    async def inbox(user: str, after: int) -> list[dict]:
        async with runtime.sessionmaker() as session:
            stmt = select(LocalInboxItem).where(LocalInboxItem.user == user, LocalInboxItem.id > after)
            rows = (await session.scalars(stmt.order_by(LocalInboxItem.id))).all()
            return [{"id": r.id, "at": r.at.isoformat(), **r.payload} for r in rows]

    async def append_inbox(user: str, payload: dict) -> None:
        async with runtime.sessionmaker() as session, session.begin():
            session.add(LocalInboxItem(user=user, at=runtime.now(), payload={"reply": payload["reply"]}))

    return LocalPorts(store=runtime.store, people=people, person=person, inbox=inbox, append_inbox=append_inbox,
                      settle=runtime.settle, now=runtime.now)


def _workers(runtime: Runtime):
    async def context(_app: web.Application):
        if runtime.settings.dispatcher_enabled:
            await runtime.dispatcher.start()
        await runtime.outbox_worker.start()
        if runtime.downloaders:
            await runtime.media_worker.start()
        yield
        await runtime.dispatcher.stop()
        await runtime.outbox_worker.stop()
        await runtime.media_worker.stop()

    return context


def _scheduler(runtime: Runtime):
    async def context(_app: web.Application):
        scheduler = None
        if runtime.settings.scheduler_enabled:
            scheduler = clock.build_scheduler(
                runtime.sessionmaker, runtime.policy, runtime.settings, runtime.now, runtime.person_channels,
                after_queue=runtime.wake_outbox,
            )
            clock.start(scheduler)
            runtime.scheduler = scheduler
        yield
        if scheduler is not None:
            await clock.shutdown(scheduler)

    return context


async def healthz(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    channels = dict(runtime.channels_status)
    if runtime.dingtalk_stream is not None:
        channels["dingtalk"] = runtime.dingtalk_stream.status()
    status = {"database": "ok", "channels": channels}
    try:
        async with runtime.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - report, don't crash the probe
        status["database"] = f"error: {type(exc).__name__}"
        return web.json_response(status, status=503)
    return web.json_response(status)
