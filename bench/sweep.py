"""Benchmark: one deadline sweep with 1M tickets in the database and 10k due.

    python -m bench.sweep                          # 1,000,000 tickets, 10,000 due, temporary SQLite file
    python -m bench.sweep --tickets 200000 --due 5000 --repeat 5
    python -m bench.sweep --database postgresql://postgres@127.0.0.1/test --schema bench_sweep
    python -m bench.sweep --batch 1000             # the job's batch size (default: the job's own)

Builds the schema with the migrations and fills it with bench.datagen (tickets
only, no events: the sweep reads none), then gives the bench organisation what
the sweep needs to address people: a leader per unit, two office staff per
office, and a simulator identity for everyone. Then it times
`scheduler.jobs.sweep_deadlines` at the generator's `now`: the one indexed range
over `is_open, next_action_at`, the reminders of every due ticket (contact,
leader, office by how late), their outbox rows, and the move of every swept
ticket's next_action_at. Between runs the notices are deleted and the swept
tickets' next_action_at restored, so each run does the same work. A sweep with
nothing due (the every-minute case) is timed too. Also printed: the machine's
load average before and after (the figures mean little on a busy machine) and
the garbage collector's share of the timed runs.

Target (issue 6): the sweep with 10k due under 1 s on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import inspect
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import bindparam, delete, func, select, text, update  # noqa: E402

from bench.datagen import generate  # noqa: E402
from config.policy import default_policy  # noqa: E402
from models import schema  # noqa: E402
from models.db import is_sqlite, make_engine, make_sessionmaker  # noqa: E402
from models.tables import Identity, Notice, Office, Person, PersonRole, Ticket, Unit  # noqa: E402
from scheduler.jobs import sweep_deadlines  # noqa: E402

CHANNELS = ("local",)


class GcTime:
    """The garbage collector's collections and time while `running`."""

    def __init__(self):
        self.running = False
        self.collections = 0
        self.seconds = 0.0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if not self.running:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.collections += 1
            self.seconds += time.perf_counter() - self._started


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


async def staff_the_bench_org(sessionmaker) -> tuple[int, int]:
    """Leaders, office staff and identities for the bench organisation: (people, identities) added."""
    async with sessionmaker() as session, session.begin():
        offices = (await session.scalars(select(Office).where(Office.key.like("bench_%")))).all()
        units = (await session.scalars(select(Unit).where(Unit.office_id.in_([o.id for o in offices])))).all()
        added = []
        for unit in units:
            if unit.leader_id is None:
                leader = Person(key=f"{unit.key}_leader", name=f"{unit.name}分管领导", unit_id=unit.id)
                session.add(leader)
                added.append(leader)
        for office in offices:
            for role in ("duty", "head"):
                key = f"{office.key}_office_{role}"
                if await session.scalar(select(Person.id).where(Person.key == key)) is None:
                    person = Person(key=key, name=f"{office.short_name}{'值班员' if role == 'duty' else '主任'}",
                                    office_id=office.id)
                    session.add(person)
                    added.append(person)
        await session.flush()
        for person in added:
            if person.key.endswith("_leader"):
                unit = next(u for u in units if person.key == f"{u.key}_leader")
                unit.leader_id = person.id
                session.add(PersonRole(person_id=person.id, role="unit_leader"))
            else:
                session.add(PersonRole(person_id=person.id, role="office"))
        have = set((await session.scalars(select(Identity.person_id).where(Identity.channel == "local"))).all())
        people = (await session.execute(select(Person.id, Person.key).where(Person.key.like("bench_%")))).all()
        identities = [Identity(person_id=pid, channel="local", external_id=key) for pid, key in people
                      if pid not in have]
        session.add_all(identities)
    return len(added), len(identities)


async def main(args: argparse.Namespace) -> None:
    policy = default_policy()
    tz = policy.clock.tz
    temp = None
    url = args.database
    if url is None:
        temp = tempfile.TemporaryDirectory(prefix="kpbot-bench-")
        url = f"sqlite+aiosqlite:///{temp.name}/bench.db"
    if args.schema and not is_sqlite(url):
        admin = make_engine(url)
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{args.schema}" CASCADE'))
            await conn.execute(text(f'CREATE SCHEMA "{args.schema}"'))
        await admin.dispose()
    engine = make_engine(url, schema=args.schema)
    await schema.upgrade(engine)
    sessionmaker = make_sessionmaker(engine)

    generated = await generate(engine, args.tickets, open_fraction=args.open_fraction, due_now=args.due,
                               seed=args.seed, with_events=False)
    people, identities = await staff_the_bench_org(sessionmaker)
    now = generated.now
    async with engine.connect() as conn:
        tickets = await conn.scalar(select(func.count()).select_from(Ticket))
        due = (await conn.execute(select(Ticket.id, Ticket.next_action_at)
                                  .where(Ticket.is_open.is_(True), Ticket.next_action_at <= now))).all()
    print(f"database: {engine.dialect.name}; {tickets:,} tickets ({generated.open_tickets:,} open, "
          f"{len(due):,} due now), generated in {generated.seconds:.1f} s; "
          f"+{people} leaders/staff, {identities} identities")
    sweep = sweep_deadlines if args.batch is None else functools.partial(sweep_deadlines, batch=args.batch)
    batch = args.batch or inspect.signature(sweep_deadlines).parameters["batch"].default
    print(f"now: {now.astimezone(tz):%Y-%m-%d %H:%M} Asia/Shanghai; {args.repeat} runs, batches of {batch:,}; "
          f"{load()}\n")

    restore = update(Ticket.__table__).where(Ticket.__table__.c.id == bindparam("tid")).values(
        next_action_at=bindparam("nat"))
    times, queued = [], []
    collector = GcTime()
    for _ in range(args.repeat):
        async with sessionmaker() as session, session.begin():
            await session.execute(delete(Notice).where(Notice.dedupe_key.like("remind:%")))
            await session.execute(restore, [{"tid": i, "nat": at} for i, at in due])
        started = time.perf_counter()
        collector.running = True
        queued = await sweep(sessionmaker, policy, now, CHANNELS)
        collector.running = False
        times.append(time.perf_counter() - started)
    started = time.perf_counter()
    again = await sweep(sessionmaker, policy, now, CHANNELS)
    idle = time.perf_counter() - started

    by_stage: dict[str, int] = {}
    for q in queued:
        stage = q.key.split(":")[2]
        by_stage[stage] = by_stage.get(stage, 0) + 1
    async with engine.connect() as conn:
        left = await conn.scalar(select(func.count()).select_from(Ticket)
                                 .where(Ticket.is_open.is_(True), Ticket.next_action_at <= now))
    print(f"sweep_deadlines, {len(due):,} due:  best {min(times) * 1000:.0f} ms, "
          f"median {statistics.median(times) * 1000:.0f} ms  (runs: {', '.join(f'{t * 1000:.0f}' for t in times)} ms)")
    print(f"  queued {len(queued):,} reminders ({', '.join(f'{k} {v:,}' for k, v in sorted(by_stage.items()))}); "
          f"{len(due) / min(times):,.0f} tickets/s; still due after the sweep: {left}")
    print(f"  garbage collector: {collector.collections / len(times):.0f} collections, "
          f"{collector.seconds / len(times) * 1000:.0f} ms per run; {load()}")
    print(f"sweep_deadlines, nothing due:  {idle * 1000:.1f} ms, queued {len(again)}")
    await engine.dispose()
    if temp:
        temp.cleanup()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--open-fraction", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, help="tickets per transaction (default: the job's)")
    parser.add_argument("--database", help="database URL (default: a temporary SQLite file)")
    parser.add_argument("--schema", help="PostgreSQL schema to create (dropped first) and use")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
