"""Benchmark: how many stored reports per second the dispatcher turns into
tickets and queued replies (the business logic behind report -> reply).

    python -m bench.dispatch                       # 400 reports, SQLite in a temp dir
    python -m bench.dispatch --reports 1000 --profile out.html
    python -m bench.dispatch --database postgresql://postgres@127.0.0.1/test --schema kpbot_bench_dispatch

The app is the real one (demo organisation, classifier, simulator channel), its
workers not started: the reports, from all the demo's liaisons in turn, are
stored first, then the dispatcher drains them and the time is taken. Prints
reports per second and SQL statements per report.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web  # noqa: E402
from sqlalchemy import event, select, text  # noqa: E402

from bot.app import RUNTIME, build_app  # noqa: E402
from bot.message import IncomingMessage, MessageKind  # noqa: E402
from config.settings import Settings  # noqa: E402
from models.db import is_sqlite, make_engine  # noqa: E402
from models.tables import Identity, Person, person_roles  # noqa: E402

PROBLEMS = [
    "项目临时用电迟迟接不上，变压器还没装，影响设备调试",
    "施工许可证办理卡在消防审验环节，已经等了两周",
    "周边村民堵门阻工，要求先解决青苗补偿",
    "用地指标还没批下来，二期厂房无法开工",
    "扬尘管控停工通知后，复工手续不清楚找谁办",
]


async def liaisons(runtime) -> list[str]:
    async with runtime.sessionmaker() as session:
        rows = await session.execute(
            select(Identity.external_id).join(Person, Person.id == Identity.person_id)
            .join(person_roles, person_roles.c.person_id == Person.id)
            .where(Identity.channel == "local", person_roles.c.role == "liaison").order_by(Person.id))
        return [r[0] for r in rows]


async def run(args: argparse.Namespace, data_dir: Path) -> None:
    settings = Settings(_env_file=None, data_dir=data_dir, database_url=args.database or "",
                        database_schema=args.schema or "", scheduler_enabled=False, simulator="on")
    app = build_app(settings, start_workers=False)
    runner = web.AppRunner(app)
    await runner.setup()
    runtime = app[RUNTIME]
    try:
        senders = await liaisons(runtime)
        now = datetime.now(timezone.utc)
        for i in range(args.reports):
            await runtime.store(IncomingMessage(
                "local", f"bench-{time.time_ns()}-{i}", senders[i % len(senders)], MessageKind.TEXT, now,
                text=f"{PROBLEMS[i % len(PROBLEMS)]}（第{i}处）"))
        statements = count_statements(runtime.engine)
        profiler = start_profiler(args.profile)
        started = time.perf_counter()
        done = await runtime.dispatcher.drain()
        elapsed = time.perf_counter() - started
        if profiler:
            profiler.stop()
            out = Path(args.profile)
            out.write_text(profiler.output_html() if out.suffix == ".html" else profiler.output_text(color=False))
        print(f"dispatcher ({'SQLite' if is_sqlite(runtime.engine) else 'PostgreSQL'}): {done} reports from "
              f"{len(senders)} liaisons in {elapsed:.2f} s = {done / elapsed:.0f} reports/s, "
              f"{elapsed / done * 1000:.1f} ms and {statements[0] / done:.1f} SQL statements each")
    finally:
        await runner.cleanup()


def count_statements(engine) -> list[int]:
    counter = [0]

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def count(*_args):
        counter[0] += 1

    return counter


def start_profiler(path: str | None):
    if not path:
        return None
    from pyinstrument import Profiler

    profiler = Profiler(async_mode="enabled")
    profiler.start()
    return profiler


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        if args.database and not is_sqlite(args.database):
            admin = make_engine(args.database)
            async with admin.begin() as connection:
                await connection.execute(text(f'DROP SCHEMA IF EXISTS "{args.schema}" CASCADE'))
                await connection.execute(text(f'CREATE SCHEMA "{args.schema}"'))
            await admin.dispose()
            from models import schema

            engine = make_engine(args.database, schema=args.schema)
            await schema.upgrade(engine)
            await engine.dispose()
        await run(args, Path(data_dir))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=400)
    parser.add_argument("--database", help="default: SQLite in a temporary directory")
    parser.add_argument("--schema", default="kpbot_bench_dispatch", help="PostgreSQL schema (dropped first)")
    parser.add_argument("--profile", help="write a pyinstrument profile of the drain here (.html, else text)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
