"""Shared fixtures: a real database (SQLite in a temp dir, or PostgreSQL when
KPBOT_TEST_DATABASE_URL names one), a clock tests can move, and the real app
driven over HTTP through the chat simulator."""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from config.settings import Settings
from models import schema
from models.db import is_sqlite, make_engine

SHANGHAI = ZoneInfo("Asia/Shanghai")
PG_URL = os.environ.get("KPBOT_TEST_DATABASE_URL", "")


class Clock:
    """A clock that stands still until a test moves it."""

    def __init__(self, start: datetime):
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta) -> datetime:
        self.current += timedelta(**delta)
        return self.current

    def set_local(self, *args) -> datetime:
        self.current = datetime(*args, tzinfo=SHANGHAI).astimezone(timezone.utc)
        return self.current


def local(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI).astimezone(timezone.utc)


@pytest.fixture
def clock() -> Clock:
    # A Monday morning in Shanghai.
    return Clock(local(2026, 11, 23, 9, 0))


@dataclass(frozen=True)
class Database:
    url: str
    schema: str | None  # PostgreSQL schema of this test

    def settings(self, data_dir: Path, **overrides) -> Settings:
        values = dict(data_dir=data_dir, database_url=self.url, database_schema=self.schema or "",
                      load_demo_org=True, scheduler_enabled=False)
        values.update(overrides)
        return Settings(_env_file=None, **values)

    def engine(self):
        return make_engine(self.url, schema=self.schema)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """Migrate an empty SQLite file once; each test gets a copy."""
    import asyncio

    path = tmp_path_factory.mktemp("template") / "kpbot.db"

    async def migrate():
        engine = make_engine(f"sqlite+aiosqlite:///{path}")
        await schema.upgrade(engine)
        await engine.dispose()

    asyncio.run(migrate())
    return path


@pytest.fixture
async def database(tmp_path, sqlite_template) -> Database:
    if PG_URL and not is_sqlite(PG_URL):
        name = f"t_{uuid.uuid4().hex[:12]}"
        admin = make_engine(PG_URL)
        async with admin.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA "{name}"'))
        db = Database(PG_URL, name)
        engine = db.engine()
        await schema.upgrade(engine)
        await engine.dispose()
        yield db
        async with admin.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        await admin.dispose()
        return
    path = tmp_path / "kpbot.db"
    shutil.copy(sqlite_template, path)
    yield Database(f"sqlite+aiosqlite:///{path}", None)


@pytest.fixture(scope="session")
def classifier(tmp_path_factory):
    """Built once: jieba's dictionary load is the slow part of start-up."""
    from handlers.triage_setup import build_from_settings

    return build_from_settings(Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("triage")))


class Bot:
    """The real app over HTTP, driven through the simulator API."""

    def __init__(self, client, clock: Clock):
        self.client = client
        self.clock = clock
        self._seen: dict[str, int] = {}

    @property
    def runtime(self):
        from bot.app import RUNTIME

        return self.client.app[RUNTIME]

    async def say(self, user: str, text: str) -> list[dict]:
        """Send as `user`, wait until processed and delivered; return what `user` got."""
        await self._post({"user": user, "text": text})
        return await self.new(user)

    async def click(self, user: str, action: str) -> list[dict]:
        await self._post({"user": user, "action": action})
        return await self.new(user)

    async def _post(self, body: dict) -> None:
        response = await self.client.post("/sim/api/messages?wait=1", json=body)
        assert response.status == 200, await response.text()

    async def inbox(self, user: str) -> list[dict]:
        response = await self.client.get("/sim/api/inbox", params={"user": user})
        assert response.status == 200, await response.text()
        return await response.json()

    async def new(self, user: str) -> list[dict]:
        """What `user` received since the last look."""
        items = await self.inbox(user)
        seen = self._seen.get(user, 0)
        fresh = [i for i in items if i["id"] > seen]
        if items:
            self._seen[user] = items[-1]["id"]
        return fresh

    async def texts(self, user: str) -> list[str]:
        return [i["reply"]["text"] for i in await self.new(user)]

    async def settle(self) -> None:
        await self.runtime.settle()


@pytest.fixture
async def bot(aiohttp_client, database, tmp_path, clock, classifier) -> Bot:
    from bot.app import build_app

    settings = database.settings(tmp_path)
    app = build_app(settings, now=clock.now, start_workers=False, classifier=classifier)
    client = await aiohttp_client(app)
    return Bot(client, clock)


# -- the bot on WeCom, against the fake WeCom API ------------------------------------

WECOM = {
    "corp_id": "wwkpbotdemo0001",
    "agent_id": 1000002,
    "secret": "kpbot-wecom-secret",
    "token": "kpbotToken",
    "aes_key": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
}


class WeComBot:
    """The real app with WeCom on, its API calls going to a fake WeCom server."""

    def __init__(self, client, fake, builder, clock: Clock):
        self.client = client
        self.fake = fake
        self.builder = builder
        self.clock = clock

    @property
    def runtime(self):
        from bot.app import RUNTIME

        return self.client.app[RUNTIME]

    async def post_xml(self, xml: str):
        query, body = self.builder.post(xml)
        return await self.client.post("/wecom/callback", params=query, data=body)

    async def say(self, wecom_user: str, text: str, *, msg_id: int | None = None) -> int:
        response = await self.post_xml(self.builder.text(wecom_user, text, msg_id=msg_id))
        return response.status

    async def settle(self) -> None:
        await self.runtime.settle()

    def sent_to(self, wecom_user: str) -> list[dict]:
        return [m for m in self.fake.sent_messages() if m.get("touser") == wecom_user]


@pytest.fixture
async def wecom_bot(aiohttp_client, database, tmp_path, clock, classifier):
    from bot.app import build_app
    from tests.fakes.wecom_api import CallbackBuilder, FakeWeComAPI

    async with FakeWeComAPI(corp_id=WECOM["corp_id"], secret=WECOM["secret"]) as fake:
        settings = database.settings(
            tmp_path, wecom_corp_id=WECOM["corp_id"], wecom_agent_id=WECOM["agent_id"],
            wecom_secret=WECOM["secret"], wecom_token=WECOM["token"], wecom_aes_key=WECOM["aes_key"],
            wecom_api_base=fake.url, simulator="off",
        )
        app = build_app(settings, now=clock.now, start_workers=False, classifier=classifier)
        client = await aiohttp_client(app)
        builder = CallbackBuilder(WECOM["token"], WECOM["aes_key"], WECOM["corp_id"], WECOM["agent_id"])
        yield WeComBot(client, fake, builder, clock)
