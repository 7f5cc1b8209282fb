"""Alembic environment. Used both by `kpbot db upgrade` (a connection is passed
in through `config.attributes`) and by the plain `alembic` command."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

import models.tables  # noqa: F401  (registers the tables on the metadata)
from models.base import Base
from models.db import normalise_url

config = context.config
target_metadata = Base.metadata


def run_with_connection(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_from_url(url: str) -> None:
    engine = create_async_engine(normalise_url(url))
    async with engine.connect() as connection:
        await connection.run_sync(run_with_connection)
        await connection.commit()
    await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    run_with_connection(connection)
else:
    asyncio.run(run_from_url(config.get_main_option("sqlalchemy.url")))
