"""Queries inside one unit of work: rows an earlier step loaded are used again
without a second SELECT, even after the caller dropped them; ticket numbers
come from one upsert. SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import gc

import pytest
from sqlalchemy import event, select

from config.org import load_org
from config.settings import PACKAGE_DIR
from models import repo
from models.db import make_sessionmaker
from models.orgsync import sync_org
from models.tables import Office, Person, Unit


@pytest.fixture
async def sessionmaker(database):
    engine = database.engine()
    maker = make_sessionmaker(engine)
    async with maker() as session, session.begin():
        await sync_org(session, load_org(PACKAGE_DIR / "org.toml"))
    yield maker
    await engine.dispose()


class Statements:
    def __init__(self, session):
        self.seen: list[str] = []
        event.listen(session.bind.sync_engine, "before_cursor_execute", self._count)
        self._engine = session.bind.sync_engine

    def _count(self, _conn, _cursor, statement, *_args):
        self.seen.append(statement)

    def close(self):
        event.remove(self._engine, "before_cursor_execute", self._count)


async def test_people_found_earlier_in_the_unit_of_work_are_not_selected_again(sessionmaker):
    async with sessionmaker() as session, session.begin():
        liaison = await repo.person_by_identity(session, "wecom", "wuliu_liaison")
        assert liaison.roles == {"liaison"}
        assert {i.channel for i in liaison.identities} == {"wecom", "dingtalk", "local"}
        liaison_id, key = liaison.id, liaison.key
        del liaison
        gc.collect()  # the session's identity map alone would have let it go
        statements = Statements(session)
        try:
            again = await repo.person_by_key(session, key)
            both = await repo.people_by_ids(session, [liaison_id, None])
            assert statements.seen == []
            contact = await session.scalar(select(Unit.contact_id).where(Unit.key == "yd_gd"))
            statements.seen.clear()
            mixed = await repo.people_by_ids(session, [liaison_id, contact])
            assert len(statements.seen) == 1, "one query for the one not loaded yet"
        finally:
            statements.close()
        assert again is both[liaison_id] is mixed[liaison_id]
        assert mixed[contact].roles == {"unit_contact"}


async def test_units_and_offices_by_id_reuse_the_session(sessionmaker):
    async with sessionmaker() as session, session.begin():
        rows = await repo.unit_rows(session)
        first = rows[0]
        units = await repo.units_by_ids(session, [first.id])
        assert units[first.id].key == first.key
        statements = Statements(session)
        try:
            assert (await repo.units_by_ids(session, [first.id]))[first.id] is units[first.id]
            office = await repo.office_by_id(session, first.office_id)
            assert isinstance(office, Office) and await repo.office_by_id(session, -1) is None
            assert len(statements.seen) == 1, "the offices, read once for the unit of work"
            await repo.office_by_id(session, first.office_id)
            assert len(statements.seen) == 1
        finally:
            statements.close()


async def test_ticket_numbers_count_up_per_office_and_year(sessionmaker):
    async with sessionmaker() as session, session.begin():
        offices = {o.key: o for o in await repo.all_offices(session)}
        numbers = [await repo.allocate_ticket_number(session, offices["yd"], 2026) for _ in range(3)]
        numbers.append(await repo.allocate_ticket_number(session, offices["hd"], 2026))
        numbers.append(await repo.allocate_ticket_number(session, offices["yd"], 2027))
    assert numbers == ["YD-2026-0001", "YD-2026-0002", "YD-2026-0003", "HD-2026-0001", "YD-2027-0001"]


async def test_concurrent_units_of_work_never_share_a_number(database, sessionmaker):
    """Two engines (two bot instances) allocating at once: every number once."""
    engines = [database.engine(), database.engine()]
    try:
        async def allocate(engine, count):
            got = []
            for _ in range(count):
                async with make_sessionmaker(engine)() as session, session.begin():
                    office = next(o for o in await repo.all_offices(session) if o.key == "yd")
                    got.append(await repo.allocate_ticket_number(session, office, 2026))
                    await asyncio.sleep(0)
            return got

        results = await asyncio.gather(*(allocate(engine, 15) for engine in engines))
    finally:
        for engine in engines:
            await engine.dispose()
    numbers = results[0] + results[1]
    assert sorted(numbers) == [f"YD-2026-{n:04d}" for n in range(1, 31)]


def test_people_query_is_built_once():
    assert repo.select_people() is repo.select_people()
    assert repo.select_people().column_descriptions[0]["entity"] is Person
