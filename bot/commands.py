"""What each `kpbot` command does. Each is a small function over the settings;
`run(args, settings)` picks one from a plain table."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from bot.cli import parse_now, print_json_lines
from config.org import load_org
from config.policy import load_policy
from config.settings import Settings
from models import schema
from models.db import is_sqlite, make_engine, make_sessionmaker
from models.orgsync import sync_org
from models.tables import Office, Person, Project, Unit


def run(args, settings: Settings) -> int:
    handlers = {
        "serve": serve,
        "db": db,
        "org": org,
        "classify": classify,
        "triage": triage,
        "ledger": ledger,
        "jobs": jobs,
        "report": report,
        "digest": digest,
    }
    try:
        result = handlers[args.command](args, settings)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
    except schema.SchemaOutdated as exc:
        print(f"kpbot: {exc}", file=sys.stderr)
        return 2
    return result or 0


def _engine(settings: Settings):
    if settings.effective_database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return make_engine(settings.effective_database_url, schema=settings.database_schema or None)


async def _upgraded_engine(settings: Settings):
    """An engine on a current schema, with the start-up policy of `kpbot serve`:
    SQLite (one embedded instance) is upgraded here; PostgreSQL, shared by several
    instances, is only ever upgraded by `kpbot db upgrade` (SchemaOutdated otherwise)."""
    engine = _engine(settings)
    try:
        if not await schema.is_current(engine):
            if not is_sqlite(engine):
                current = await schema.current_revision(engine)
                raise schema.SchemaOutdated(
                    f"database schema is at {current or 'empty'}, this kpbot needs {schema.head_revision()}: "
                    f"run `kpbot db upgrade` first"
                )
            await schema.upgrade(engine)
    except BaseException:
        await engine.dispose()
        raise
    return engine


def _quiet_jieba() -> None:
    """jieba sets its own logger to DEBUG when imported, whatever was set before:
    import it on purpose (commands that classify load it anyway) and quieten it."""
    import jieba

    jieba.setLogLevel(max(logging.WARNING, logging.getLogger().level))


# -- serve ---------------------------------------------------------------------


def serve(args, settings: Settings) -> int:
    from bot.app import build_app

    host = args.host or settings.host
    port = args.port or settings.port
    _quiet_jieba()
    print(f"kpbot: serving on http://{host}:{port}  (database: {_describe_db(settings)})", flush=True)
    if settings.simulator_enabled:
        print(f"kpbot: chat simulator at http://{host}:{port}/sim", flush=True)
    web.run_app(build_app(settings), host=host, port=port, print=None)
    return 0


def _describe_db(settings: Settings) -> str:
    url = settings.effective_database_url
    return url if url.startswith("sqlite") else url.split("@")[-1]


# -- db --------------------------------------------------------------------------


async def db(args, settings: Settings) -> int:
    engine = _engine(settings)
    try:
        if args.action == "upgrade":
            before = await schema.current_revision(engine)
            await schema.upgrade(engine)
            after = await schema.current_revision(engine)
            print("schema already current" if before == after else f"schema upgraded {before or 'empty'} -> {after}")
        else:
            print(await schema.current_revision(engine) or "empty")
    finally:
        await engine.dispose()
    return 0


# -- org ---------------------------------------------------------------------------


async def org(args, settings: Settings) -> int:
    if args.org_action == "load":
        spec = load_org(args.file)  # validates everything before touching the database
        engine = await _upgraded_engine(settings)
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                report = await sync_org(session, spec)
        finally:
            await engine.dispose()
        print(report.summary())
        for line in report.created + report.updated + report.deactivated:
            print(f"  {line}")
        return 0
    engine = await _upgraded_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session:
            rows = await _people_rows(session)
    finally:
        await engine.dispose()
    if args.json:
        print_json_lines(rows)
    else:
        for row in rows:
            print(f"{row['key']:<28} {row['name']}  [{', '.join(row['roles'])}]")
    return 0


async def _people_rows(session) -> list[dict]:
    units = {u.id: u.key for u in (await session.scalars(select(Unit))).all()}
    offices = {o.id: o.key for o in (await session.scalars(select(Office))).all()}
    projects = (await session.scalars(select(Project).options(selectinload(Project.liaisons)).order_by(Project.id))).all()
    by_person: dict[int, list[str]] = {}
    for project in projects:
        for liaison in project.liaisons:
            by_person.setdefault(liaison.id, []).append(project.key)
        if project.leader_id:
            by_person.setdefault(project.leader_id, []).append(project.key)
    people = (await session.scalars(select(Person).order_by(Person.id))).all()
    rows = []
    for person in people:
        identities = {i.channel: i.external_id for i in person.identities}
        rows.append({
            "key": person.key, "name": person.name, "roles": sorted(person.roles),
            "unit": units.get(person.unit_id), "office": offices.get(person.office_id),
            "identities": {c: identities.get(c) for c in ("wecom", "dingtalk", "local")},
            "projects": by_person.get(person.id, []),
        })
    return rows


# -- triage ------------------------------------------------------------------------


async def classify(args, settings: Settings) -> int:
    from handlers.triage import classify_to_json
    from handlers.triage_setup import build_from_settings
    from handlers.units import resolve_for_project

    try:
        text = args.file.read_text(encoding="utf-8") if args.file else sys.stdin.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise SystemExit(f"kpbot: cannot read {args.file}: {exc}") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    engine = await _upgraded_engine(settings)
    try:
        if settings.load_demo_org:
            await _load_demo_org_if_empty(engine, settings)  # as `kpbot serve` does at start
        async with make_sessionmaker(engine)() as session:
            if not await session.scalar(select(func.count()).select_from(Unit)):
                print("kpbot: the database has no units (run `kpbot org load FILE`): "
                      "unit stays null", file=sys.stderr)
            resolver = await resolve_for_project(session, args.project)  # an unknown project fails fast
    finally:
        await engine.dispose()
    _quiet_jieba()
    classifier = await asyncio.to_thread(build_from_settings, settings)
    for line in lines:
        row = classify_to_json(classifier, line, None)
        unit = resolver(row["unit_type"])
        row["unit"] = unit.name if unit is not None else None
        print(json.dumps(row, ensure_ascii=False))
    return 0


async def _load_demo_org_if_empty(engine, settings: Settings) -> None:
    async with make_sessionmaker(engine)() as session, session.begin():
        if await session.scalar(select(func.count()).select_from(Person)):
            return
        await sync_org(session, load_org(settings.config_file("org.toml")))


async def triage(args, settings: Settings) -> int:
    from handlers.triage_learning import learn_from_database

    _quiet_jieba()
    engine = await _upgraded_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session:
            message = await learn_from_database(session, settings)
    finally:
        await engine.dispose()
    print(message)
    return 0


# -- ledger, jobs, reports --------------------------------------------------------------


async def ledger(args, settings: Settings) -> int:
    from scheduler import ledger_cli

    engine = await _upgraded_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session:
            if args.ledger_action == "list":
                rows = await ledger_cli.ledger_list(session, status=args.status, office=args.office,
                                                    now=datetime.now(timezone.utc))
                if args.json:
                    print_json_lines(rows)
                else:
                    for row in rows:
                        print(f"{row['number']}  {row['status']:<12} {row['unit'] or '-':<20} {row['text'][:40]}")
                return 0
            count = await ledger_cli.ledger_export(
                session, Path(args.out), office=args.office, status=args.status,
                date_from=args.date_from, date_to=args.date_to, now=datetime.now(timezone.utc),
                policy=load_policy(settings.config_file("policy.toml")),
            )
            print(f"wrote {count} rows to {args.out}")
            return 0
    finally:
        await engine.dispose()


async def jobs(args, settings: Settings) -> int:
    from scheduler import jobs as job_module

    if args.jobs_action == "list":
        for name, description in job_module.describe():
            print(f"{name:<20} {description}")
        return 0
    engine = await _upgraded_engine(settings)
    try:
        output = await job_module.run_by_name(args.name, make_sessionmaker(engine), settings, parse_now(args.now))
    finally:
        await engine.dispose()
    print(output)
    return 0


async def report(args, settings: Settings) -> int:
    from scheduler import ledger_cli

    engine = await _upgraded_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session:
            paths = await ledger_cli.monthly_report(session, args.month, args.out, settings)
    finally:
        await engine.dispose()
    for path in paths:
        print(f"wrote {path}")
    return 0


async def digest(args, settings: Settings) -> int:
    from scheduler import ledger_cli

    engine = await _upgraded_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session:
            chunks = await ledger_cli.digest_text(session, args.office, args.cadence, parse_now(args.now), settings)
    finally:
        await engine.dispose()
    print("\n\n".join(chunks))
    return 0
