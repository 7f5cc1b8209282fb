"""Benchmark: the ledger's two hot queries at 1,000,000 tickets (about 10% open).

    python -m bench.store                                            # SQLite in a temp dir
    python -m bench.store --database postgresql://postgres@127.0.0.1/test --schema bench_store
    python -m bench.store --tickets 200000

Times, over repeated runs (median and worst), each run in a fresh session, the
queries the product runs:
- "next action due now": `scheduler.jobs.read_due`, the sweep's read (open
  tickets whose next_action_at <= now, oldest first, a batch of 1000, with
  what the reminders need): one range of the (is_open, next_action_at) index;
- the per-unit / per-status counts a digest needs: the city office's digest
  queries over the ticket table (`DigestQueries.overdue`: open tickets overdue
  per unit and per stage, with the longest overdue; `open_count`;
  `escalation_levels`).
Target (issue 2): each under 50 ms on SQLite at 1M rows.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text  # noqa: E402

from bench.datagen import DEFAULT_NOW, generate  # noqa: E402
from config.policy import default_policy  # noqa: E402
from models import schema  # noqa: E402
from models.db import is_sqlite, make_engine, make_sessionmaker  # noqa: E402
from scheduler.digest import digest_queries  # noqa: E402
from scheduler.jobs import due_time_converter, read_due  # noqa: E402


async def timed(function, repeat: int) -> tuple[float, float, object]:
    samples, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = await function()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), max(samples), result


async def run(url: str, db_schema: str | None, tickets: int, repeat: int) -> None:
    if db_schema and not is_sqlite(url):
        admin = make_engine(url)
        async with admin.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA IF EXISTS "{db_schema}" CASCADE'))
            await connection.execute(text(f'CREATE SCHEMA "{db_schema}"'))
        await admin.dispose()
    engine = make_engine(url, schema=db_schema)
    await schema.upgrade(engine)
    started = time.perf_counter()
    generated = await generate(engine, tickets, open_fraction=0.1, with_events=False)
    print(f"generated {tickets:,} tickets in {time.perf_counter() - started:.1f} s ({engine.dialect.name})")
    if is_sqlite(url):
        async with engine.begin() as connection:
            await connection.execute(text("ANALYZE"))
    else:
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            # What autovacuum does in steady state: statistics and the visibility map
            # (index-only scans need it).
            await connection.execute(text("VACUUM ANALYZE tickets"))
    sessionmaker = make_sessionmaker(engine)
    policy = default_policy()

    async def due():
        async with sessionmaker() as session:
            return await read_due(session, DEFAULT_NOW, 1000, await due_time_converter(session))

    async def counts():
        async with sessionmaker() as session:
            _, queries = await digest_queries(session, generated.city_office_id, DEFAULT_NOW, policy, "daily")
            _, by_unit = await queries.overdue()
            return by_unit, await queries.open_count(), await queries.escalation_levels()

    median, worst, rows = await timed(due, repeat)
    print(f"next action due now (batch of 1000): median {median:.1f} ms, worst {worst:.1f} ms, {len(rows)} rows")
    median, worst, (by_unit, open_count, _) = await timed(counts, repeat)
    print(f"digest counts (overdue per unit and stage, open, escalation levels): median {median:.1f} ms, "
          f"worst {worst:.1f} ms; {len(by_unit)} units overdue, {open_count:,} open")
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", help="database URL (default: SQLite in a temp dir)")
    parser.add_argument("--schema", help="PostgreSQL schema to (re)create for the run")
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite+aiosqlite:///{tmp}/bench.db"
        asyncio.run(run(url, args.schema, args.tickets, args.repeat))


if __name__ == "__main__":
    main()
