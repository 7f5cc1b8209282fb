"""The migrations build exactly the schema the models declare, and 0002's
backfill of tickets.earliest_due_at gives what the workflow itself stores."""

from __future__ import annotations

from datetime import timedelta

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, update

from config.org import load_org
from config.policy import default_policy
from config.settings import PACKAGE_DIR
from models import repo, schema
from models.base import Base
from models.db import make_sessionmaker
from models.orgsync import sync_org
from models.tables import Person, Project, Ticket, Unit
from models.tickets import create_ticket, make_move
from models.workflow import SYSTEM, Move, earliest_due
from tests.conftest import local

NOW = local(2026, 11, 23, 10, 0)


def _differences(connection) -> list:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, Base.metadata)


async def test_the_migrated_schema_is_the_models_schema(database):
    engine = database.engine()
    async with engine.connect() as connection:
        assert await connection.run_sync(_differences) == []
    await engine.dispose()


async def _tickets_in_every_open_state(sessionmaker, policy) -> None:
    """One ticket per open status (and a closed one), through the real workflow."""
    async with sessionmaker() as session, session.begin():
        await sync_org(session, load_org(PACKAGE_DIR / "org.toml"))
    moves_by_ticket = [
        [],
        [Move.DISPATCH],
        [Move.DISPATCH, Move.ACKNOWLEDGE],
        [Move.DISPATCH, Move.ACKNOWLEDGE, Move.FEEDBACK],
        [Move.DISPATCH, Move.ACKNOWLEDGE, Move.FEEDBACK, Move.RESOLVE],
        [Move.DISPATCH, Move.ACKNOWLEDGE, Move.RETURN],
        [Move.DISPATCH, Move.ACKNOWLEDGE, Move.FEEDBACK, Move.RESOLVE, Move.CONFIRM],
    ]
    for index, moves in enumerate(moves_by_ticket):
        async with sessionmaker() as session, session.begin():
            unit = await session.scalar(select(Unit).where(Unit.key == "yd_zr"))
            project = await session.scalar(select(Project).where(Project.key == "wuliu"))
            reporter = await repo.person_by_key(session, "p_wuliu_liaison")
            now = NOW + timedelta(hours=index)
            ticket, _ = await create_ticket(
                session, office=await repo.office_by_key(session, "yd"), text="项目用地指标还没批下来", now=now,
                policy=policy, reporter_id=reporter.id, project_id=project.id, tier="general",
                unit_type=unit.unit_type, triage={}, proposed_unit=unit)
            contact = await repo.actor_for(session, await session.get(Person, unit.contact_id))
            actors = {Move.DISPATCH: SYSTEM, Move.CONFIRM: await repo.actor_for(session, reporter)}
            for step, move in enumerate(moves, start=1):
                arguments = {"unit_id": unit.id} if move == Move.DISPATCH else {"note": "已处理"}
                await make_move(session, ticket, move, actors.get(move, contact), now + timedelta(minutes=step),
                                policy, **arguments)


async def test_0002_backfills_the_earliest_deadline_as_the_workflow_stores_it(database):
    policy = default_policy()
    engine = database.engine()
    sessionmaker = make_sessionmaker(engine)
    await _tickets_in_every_open_state(sessionmaker, policy)
    async with sessionmaker() as session:
        tickets = (await session.scalars(select(Ticket).order_by(Ticket.id))).all()
        stored = {t.id: t.earliest_due_at for t in tickets}
        assert stored == {t.id: earliest_due(t) for t in tickets}
        assert {t.status for t in tickets} == {"reported", "dispatched", "acknowledged", "in_progress", "resolved",
                                               "returned", "closed"}
        assert sum(due is None for due in stored.values()) == 1  # the closed one
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Ticket).values(earliest_due_at=None))

    await schema.downgrade(engine, "0001")
    await schema.upgrade(engine)

    async with sessionmaker() as session:
        backfilled = dict((await session.execute(select(Ticket.id, Ticket.earliest_due_at))).all())
    assert backfilled == stored
    await engine.dispose()
