"""Benchmark: the digest, the monthly ranking and the ledger over many tickets.

    python -m bench.reports                      # 100k tickets in a temporary SQLite file
    python -m bench.reports --tickets 300000 --repeat 7
    python -m bench.reports --database postgresql://postgres@127.0.0.1/test --schema bench_reports

Builds the schema with the migrations, fills it with bench.datagen, then times
each report a few times (each run in a fresh session) and prints the best and
the median. Target (issue 6): the digest and the monthly ranking each under
1 s on SQLite with 100k tickets.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select, text  # noqa: E402

from bench.datagen import generate  # noqa: E402
from config.policy import default_policy  # noqa: E402
from models import schema  # noqa: E402
from models.db import is_sqlite, make_engine, make_sessionmaker  # noqa: E402
from models.deadlines import add_months  # noqa: E402
from models.tables import Ticket, TicketEvent  # noqa: E402
from scheduler.digest import build_digest, render_digest_markdown  # noqa: E402
from scheduler.ledger_export import ledger_rows, write_ledger_xlsx  # noqa: E402
from scheduler.ranking import monthly_ranking, render_ranking_chart, render_ranking_markdown  # noqa: E402


async def timed(sessionmaker, repeat: int, work) -> tuple[float, float, object]:
    """(best, median) seconds of `work(session)` over `repeat` fresh sessions, and its last result."""
    times, result = [], None
    for _ in range(repeat):
        async with sessionmaker() as session:
            started = time.perf_counter()
            result = await work(session)
            times.append(time.perf_counter() - started)
    return min(times), statistics.median(times), result


async def main(args: argparse.Namespace) -> None:
    policy = default_policy()
    tz = policy.clock.tz
    temp = None
    url = args.database
    if url is None:
        temp = tempfile.TemporaryDirectory(prefix="kpbot-bench-")
        url = f"sqlite+aiosqlite:///{temp.name}/bench.db"
    engine = make_engine(url, schema=args.schema)
    if args.schema and not is_sqlite(url):
        admin = make_engine(url)
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{args.schema}" CASCADE'))
            await conn.execute(text(f'CREATE SCHEMA "{args.schema}"'))
        await admin.dispose()
    await schema.upgrade(engine)

    generated = await generate(engine, args.tickets, open_fraction=args.open_fraction, seed=args.seed)
    now = generated.now
    if not is_sqlite(url):  # as autovacuum would have by now
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE tickets"))
            await conn.execute(text("ANALYZE ticket_events"))
    async with engine.connect() as conn:
        events = await conn.scalar(select(func.count()).select_from(TicketEvent))
        tickets = await conn.scalar(select(func.count()).select_from(Ticket))
    print(f"database: {engine.dialect.name}; {tickets:,} tickets, {events:,} events "
          f"(generated in {generated.seconds:.1f} s; {generated.open_tickets:,} open, {generated.due_now:,} due now)")
    print(f"now: {now.astimezone(tz):%Y-%m-%d %H:%M} Asia/Shanghai; best / median of {args.repeat} runs\n")

    sessionmaker = make_sessionmaker(engine)
    city, county = generated.city_office_id, generated.office_ids[1]
    local_today = now.astimezone(tz).date()
    last_month = add_months(local_today.replace(day=1), -1)
    rows: list[tuple[str, float, float, str]] = []

    for office, label in ((city, "city (sees all)"), (county, "one county")):
        for cadence in ("daily", "weekly", "monthly"):
            best, median, digest = await timed(
                sessionmaker, args.repeat, lambda s, o=office, c=cadence: build_digest(s, o, now, policy, c))
            chunks = render_digest_markdown(digest)
            rows.append((f"build_digest {cadence:<8} {label}", best, median,
                         f"new {digest.new.total:,}, overdue {digest.overdue.total:,}, {len(chunks)} chunk(s)"))

    best, median, ranking = await timed(sessionmaker, args.repeat, lambda s: monthly_ranking(s, last_month, tz))
    cohort = sum(e.stats.tickets for e in ranking.units)
    rows.append((f"monthly_ranking {last_month:%Y-%m}", best, median,
                 f"{len(ranking.units)} units, {len(ranking.offices)} counties, {cohort:,} unit-tickets"))

    started = time.perf_counter()
    render_ranking_markdown(ranking)
    out = Path(temp.name if temp else tempfile.gettempdir())
    render_ranking_chart(ranking, out / "ranking.png")
    rows.append(("render_ranking_chart (+markdown)", time.perf_counter() - started, float("nan"), "PNG"))

    best, median, open_rows = await timed(
        sessionmaker, args.repeat,
        lambda s: ledger_rows(s, office_ids=[county], status="open", now=now))
    rows.append(("ledger_rows open, one county", best, median, f"{len(open_rows):,} rows"))
    first_of_month = local_today.replace(day=1)
    best, median, month_rows = await timed(
        sessionmaker, args.repeat,
        lambda s: ledger_rows(s, date_from=last_month, date_to=date.fromordinal(first_of_month.toordinal() - 1),
                              now=now))
    rows.append(("ledger_rows last month, all", best, median, f"{len(month_rows):,} rows"))
    started = time.perf_counter()
    write_ledger_xlsx(month_rows, out / "ledger.xlsx", tz)
    rows.append(("write_ledger_xlsx last month", time.perf_counter() - started, float("nan"),
                 f"{len(month_rows):,} rows"))

    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  {'best':>8}  {'median':>8}  result")
    for name, best, median, note in rows:
        med = "" if median != median else f"{median * 1000:6.0f} ms"
        print(f"{name:<{width}}  {best * 1000:6.0f} ms  {med:>8}  {note}")
    await engine.dispose()
    if temp:
        temp.cleanup()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--open-fraction", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database", help="database URL (default: a temporary SQLite file)")
    parser.add_argument("--schema", help="PostgreSQL schema to create (dropped first) and use")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
