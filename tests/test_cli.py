"""The `kpbot` command line, run in-process (`bot.cli.main`) against a real
database, and the app's start-up: the schema policy, the demo organisation and
/healthz. Tickets come from the real app driven through the simulator (the
`bot` fixture); commands that run next to it run in a thread, since main() has
its own event loop."""

from __future__ import annotations

import asyncio
import io
import json
import sys
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select, text

from bot.app import RUNTIME, build_app
from bot.cli import main
from config.settings import Settings
from handlers.triage_learn import Overlay
from models import schema
from models.db import is_sqlite, make_engine
from models.tables import Person, Ticket, TriageCorrection
from tests.conftest import PG_URL, Database

LIAISON = "p_wuliu_liaison"  # 示范现代物流园项目, 尧都区
OFFICE = "yd_office_duty"
POWER = "项目临时用电迟迟接不上，变压器还没装"
LAND = "项目用地手续迟迟办不下来，土地证还没有"
CHATTER = "今天天气不错大家辛苦了"
CLASSIFY_KEYS = {"text", "unit_type", "unit", "tier", "confidence", "matched", "candidates", "needs_office"}
LEDGER_KEYS = {"number", "project", "county", "text", "unit", "contact", "status", "tier", "flagged", "created_at",
               "dispatched_at", "dispatch_due_at", "ack_due_at", "feedback_due_at", "resolve_due_at",
               "confirm_due_at", "closed_at"}
ON_POSTGRES = bool(PG_URL) and not is_sqlite(PG_URL)


# -- helpers -------------------------------------------------------------------------


def _point_at(monkeypatch, data_dir: Path, db: Database) -> None:
    monkeypatch.setenv("KPBOT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("KPBOT_DATABASE_URL", db.url)
    monkeypatch.setenv("KPBOT_DATABASE_SCHEMA", db.schema or "")


@pytest.fixture
def cli_env(monkeypatch, tmp_path, database) -> Path:
    _point_at(monkeypatch, tmp_path, database)
    return tmp_path


@pytest.fixture
def shared_classifier(monkeypatch, classifier):
    """`kpbot classify` with the session's classifier: jieba's dictionary loads
    once, not per command (the tests of the overlay build it for real)."""
    import handlers.triage_setup

    monkeypatch.setattr(handlers.triage_setup, "build_from_settings", lambda settings: classifier)


@pytest.fixture
async def empty_database(tmp_path):
    """A database with nothing in it, not even the schema: a new SQLite file, or
    a new PostgreSQL schema when the tests run on PostgreSQL."""
    if not ON_POSTGRES:
        yield Database(f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}", None)
        return
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(PG_URL)
    async with admin.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{name}"'))
    yield Database(PG_URL, name)
    async with admin.begin() as connection:
        await connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
    await admin.dispose()


def _main(argv: list[str]) -> int:
    """main() as the `kpbot` process would end: a SystemExit message goes to stderr, status 1."""
    try:
        return main(argv)
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return 1
        return exc.code or 0


def run(capsys, *argv) -> tuple[int, str, str]:
    code = _main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def arun(capsys, *argv) -> tuple[int, str, str]:
    """For tests that also drive the app: main() runs its own event loop, in a thread."""
    code = await asyncio.to_thread(_main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


async def report(bot, user: str, text: str) -> str:
    """File a report as `user`; the ticket number."""
    await bot.new(user)  # earlier notices
    [answer] = await bot.say(user, text)
    title = answer["reply"]["title"] or ""
    assert title.startswith("问题已受理："), answer
    return title.removeprefix("问题已受理：")


async def revision(db: Database) -> str | None:
    engine = db.engine()
    try:
        return await schema.current_revision(engine)
    finally:
        await engine.dispose()


# -- kpbot classify ----------------------------------------------------------------------


def test_classify_a_file_at_city_level(cli_env, capsys, tmp_path):
    reports = tmp_path / "reports.txt"
    reports.write_text(f"{POWER}\n\n   \n{CHATTER}\n{LAND}\n", encoding="utf-8")
    code, out, err = run(capsys, "classify", str(reports))
    assert code == 0, err
    rows = json_lines(out)
    assert [r["text"] for r in rows] == [POWER, CHATTER, LAND]  # blank lines skipped
    assert all(set(r) == CLASSIFY_KEYS for r in rows)
    power, chatter, land = rows
    # An empty database gets the demo organisation, as `kpbot serve` does: no project = the city's units.
    assert power["unit_type"] == "power" and power["unit"] == "国网示范供电公司"
    assert power["tier"] == "general" and power["needs_office"] is False
    assert {"临时用电", "变压器"} <= set(power["matched"])
    assert power["candidates"][0][0] == "power" and 0 < power["confidence"] <= 1
    assert land["unit_type"] == "natural_resources" and land["unit"] == "市规划和自然资源局"
    # Nothing to route on: the office decides.
    assert chatter["needs_office"] is True and chatter["unit_type"] is None and chatter["unit"] is None
    assert chatter["matched"] == [] and chatter["candidates"] == []
    assert "jieba" not in err and "Prefix dict" not in err  # jieba's debug chatter stays quiet


def test_classify_stdin_for_a_county_project(cli_env, shared_classifier, capsys, monkeypatch):
    for project in ("wuliu", "示范现代物流园项目"):  # key or name
        monkeypatch.setattr(sys, "stdin", io.StringIO(f"{POWER}\n{LAND}\n{CHATTER}\n"))
        code, out, err = run(capsys, "classify", "--project", project)
        assert code == 0, err
        power, land, chatter = json_lines(out)
        assert (power["unit_type"], power["unit"]) == ("power", "国网尧都区供电公司")  # 属地: 尧都区
        assert (land["unit_type"], land["unit"]) == ("natural_resources", "尧都区自然资源局")
        assert chatter["needs_office"] is True and chatter["unit"] is None
        assert set(power) == CLASSIFY_KEYS


def test_classify_errors(cli_env, capsys, tmp_path):
    reports = tmp_path / "reports.txt"
    reports.write_text(POWER, encoding="utf-8")
    code, out, err = run(capsys, "classify", str(reports), "--project", "nosuch")
    assert code != 0 and out == ""
    assert "unknown project 'nosuch'" in err
    code, out, err = run(capsys, "classify", str(tmp_path / "missing.txt"))
    assert code != 0 and out == "" and "missing.txt" in err and "Traceback" not in err


def test_classify_without_an_organisation_says_so(cli_env, shared_classifier, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("KPBOT_LOAD_DEMO_ORG", "false")
    reports = tmp_path / "reports.txt"
    reports.write_text(POWER, encoding="utf-8")
    code, out, err = run(capsys, "classify", str(reports))
    assert code == 0
    [row] = json_lines(out)
    assert row["unit_type"] == "power" and row["unit"] is None
    assert "kpbot org load" in err


# -- kpbot ledger -------------------------------------------------------------------------


async def test_ledger_list_json_and_filters(bot, cli_env, capsys):
    number = await report(bot, LIAISON, POWER)
    assert number == "YD-2026-0001"
    code, out, err = await arun(capsys, "ledger", "list", "--json")
    assert code == 0, err
    [row] = json_lines(out)
    assert set(row) == LEDGER_KEYS
    assert row["number"] == number and row["text"] == POWER
    assert row["project"] == "示范现代物流园项目" and row["county"] == "尧都区"
    assert row["unit"] == "国网尧都区供电公司" and row["contact"]
    assert row["status"] == "dispatched" and row["tier"] == "general" and row["flagged"] is False
    created = datetime.fromisoformat(row["created_at"])
    assert created == bot.clock.now() and created.utcoffset() is not None
    assert datetime.fromisoformat(row["dispatched_at"]) == created
    assert datetime.fromisoformat(row["ack_due_at"]) > created
    assert datetime.fromisoformat(row["resolve_due_at"]) > datetime.fromisoformat(row["feedback_due_at"])
    assert row["closed_at"] is None

    async def numbers(*options: str) -> list[str]:
        code, out, err = await arun(capsys, "ledger", "list", "--json", *options)
        assert code == 0, err
        return [r["number"] for r in json_lines(out)]

    assert await numbers("--status", "dispatched") == [number]
    assert await numbers("--status", "已交办") == [number]
    assert await numbers("--status", "open") == [number]
    assert await numbers("--status", "closed") == []
    assert await numbers("--office", "yd") == [number]
    assert await numbers("--office", "city") == [number]  # the office and those below it
    assert await numbers("--office", "hd") == []
    code, out, err = await arun(capsys, "ledger", "list")
    assert code == 0 and number in out and "dispatched" in out and "国网尧都区供电公司" in out
    code, out, err = await arun(capsys, "ledger", "list", "--status", "bogus")
    assert code != 0 and "unknown status 'bogus'" in err and "Traceback" not in err
    code, out, err = await arun(capsys, "ledger", "list", "--office", "nosuch")
    assert code != 0 and "unknown office 'nosuch'" in err


async def test_ledger_export(bot, cli_env, capsys, tmp_path):
    number = await report(bot, LIAISON, POWER)
    out_file = tmp_path / "exports" / "台账.xlsx"
    code, out, err = await arun(capsys, "ledger", "export", "--out", str(out_file))
    assert code == 0, err
    assert out.strip() == f"wrote 1 rows to {out_file}"
    sheet = load_workbook(out_file).active
    values = [[c for c in row if c is not None] for row in sheet.iter_rows(values_only=True)]
    data = [row for row in values if number in row]
    assert len(data) == 1 and POWER in data[0] and "国网尧都区供电公司" in data[0]
    empty = tmp_path / "closed.xlsx"
    code, out, err = await arun(capsys, "ledger", "export", "--out", str(empty), "--status", "closed")
    assert code == 0 and out.strip() == f"wrote 0 rows to {empty}"
    assert not [row for row in load_workbook(empty).active.iter_rows(values_only=True) if number in row]
    code, out, err = await arun(capsys, "ledger", "export", "--out", str(empty), "--from", "2026-11-24")
    assert code == 0 and "wrote 0 rows" in out  # the ticket is of 2026-11-23
    code, out, err = await arun(capsys, "ledger", "export", "--out", str(empty), "--status", "bogus")
    assert code != 0 and "unknown status" in err and "Traceback" not in err


# -- reports, digest, jobs -----------------------------------------------------------------


async def test_monthly_report_and_digest(bot, cli_env, capsys, tmp_path):
    number = await report(bot, LIAISON, POWER)
    out_dir = tmp_path / "reports"
    code, out, err = await arun(capsys, "report", "monthly", "--month", "2026-11", "--out", str(out_dir))
    assert code == 0, err
    written = sorted(p.name for p in out_dir.iterdir())
    assert written == ["ranking-2026-11.md", "ranking-2026-11.png", "ranking-2026-11.xlsx"]
    assert (out_dir / "ranking-2026-11.png").read_bytes().startswith(b"\x89PNG")
    assert load_workbook(out_dir / "ranking-2026-11.xlsx").active.max_row > 1
    assert "尧都区" in (out_dir / "ranking-2026-11.md").read_text(encoding="utf-8")
    code, out, err = await arun(capsys, "report", "monthly", "--month", "2026-13", "--out", str(out_dir))
    assert code != 0 and "YYYY-MM" in err

    # The digest of the day the ticket was filed.
    code, out, err = await arun(capsys, "digest", "--print", "--now", "2026-11-24T08:00+08:00")
    assert code == 0, err
    assert "市重点办" in out and "2026年11月23日" in out and number in out
    code, out, err = await arun(capsys, "digest", "--print", "--office", "yd", "--now", "2026-11-24T08:00+08:00")
    assert code == 0 and "尧都区重点办" in out and number in out
    code, out, err = await arun(capsys, "digest", "--print", "--office", "hd", "--now", "2026-11-24T08:00+08:00")
    assert code == 0 and "洪洞县重点办" in out and number not in out
    code, out, err = await arun(capsys, "digest", "--print", "--cadence", "yearly")
    assert code != 0 and "unknown cadence 'yearly'" in err and "Traceback" not in err


def test_jobs_list(cli_env, capsys):
    code, out, err = run(capsys, "jobs", "list")
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()] == [
        "sweep_deadlines", "escalate_stalled", "daily_digest", "monthly_ranking"]


async def test_jobs_run_prints_what_it_queued(bot, cli_env, capsys):
    number = await report(bot, LIAISON, POWER)  # Monday 09:00; to be acknowledged the same day
    at = "2026-11-25T09:00+08:00"
    code, out, err = await arun(capsys, "jobs", "run", "sweep_deadlines", "--now", at)
    assert code == 0, err
    header, *lines = out.strip().splitlines()
    assert header.startswith("sweep_deadlines at 2026-11-25T09:00:00+08:00 (Asia/Shanghai): queued ")
    queued = int(header.split("queued ")[1].split()[0])
    assert queued == len(lines) > 0
    assert all(number in line and "[local]" in line for line in lines)
    async with bot.runtime.sessionmaker() as session:
        from models.tables import Notice

        keys = set((await session.scalars(select(Notice.dedupe_key))).all())
    assert {line.split()[0] for line in lines} <= keys
    # Once is once: the same run queues nothing more.
    code, out, err = await arun(capsys, "jobs", "run", "sweep_deadlines", "--now", at)
    assert code == 0 and "queued 0 notice(s)" in out


def test_jobs_run_errors(cli_env, capsys):
    code, out, err = run(capsys, "jobs", "run", "nosuch")
    assert code != 0 and out == ""
    assert "unknown job 'nosuch'" in err and "sweep_deadlines" in err
    code, out, err = run(capsys, "jobs", "run", "sweep_deadlines", "--now", "2026-11-25T09:00")
    assert code != 0 and "--now needs a timezone" in err
    code, out, err = run(capsys, "jobs", "run", "sweep_deadlines", "--now", "next tuesday")
    assert code != 0 and "not an ISO-8601 time" in err and "Traceback" not in err


# -- kpbot triage learn --------------------------------------------------------------------

# Telecom cables (光缆) are not in the keyword tables; the office keeps moving these to 工信.
CABLE_REPORTS = [
    "施工范围内有通信光缆要迁改",
    "联通光缆迁改费用谈不拢",
    "移动公司的光缆改线方案没出",
    "电信光缆迁移工期太长",
    "红线内有光缆和通信杆要挪",
    "光缆迁改的事没人牵头",
    "通信光缆改迁需要工信协调运营商",
    "铁塔公司的基站和光缆要迁",
    "光缆迁改拖了两个月",
    "三家运营商光缆迁改协调难",
    "通信管线光缆迁改方案没定",
    "光缆要挪，运营商说排不上",
    "厂区里的光缆改线没人管",
    "光缆迁移费用太高",
    "园区主干道下的光缆还没迁走",
    "光缆杆线迁移协议迟迟签不下来",
    "运营商的光缆交接箱挡在围墙位置",
    "光缆迁改设计单位还没进场",
]


def test_triage_learn_without_corrections(cli_env, capsys):
    code, out, err = run(capsys, "triage", "learn")
    assert code == 0, err
    assert out.startswith("没有纠正记录")
    assert not (cli_env / "triage_overlay.json").exists()


async def _corrections_from_the_office(bot) -> int:
    """Two real ones through chat (交办 of a report the office had to route,
    转办 of a misrouted one); the ticket they belong to."""
    unroutable = await report(bot, LIAISON, "光缆迁改运营商一直不配合")
    await bot.new(OFFICE)  # the office was told about the report it has to route
    [answer] = await bot.say(OFFICE, f"交办 {unroutable} 市工业和信息化局")
    assert "市工业和信息化局" in answer["reply"]["text"]
    misrouted = await report(bot, LIAISON, "地下光缆挡着基础施工，要迁走")
    [answer] = await bot.say(OFFICE, f"转办 {misrouted} city_gx 光缆迁改由工信部门协调运营商")
    assert "转办给市工业和信息化局" in answer["reply"]["text"]
    async with bot.runtime.sessionmaker() as session:
        rows = (await session.scalars(select(TriageCorrection).order_by(TriageCorrection.id))).all()
        assert [(r.text, r.proposed_type, r.correct_type) for r in rows] == [
            ("光缆迁改运营商一直不配合", None, "industry"),
            ("地下光缆挡着基础施工，要迁走", "public_security", "industry"),
        ]
        return await session.scalar(select(Ticket.id).where(Ticket.number == misrouted))


async def _add_corrections(bot, ticket_id: int, items: list[tuple[str, str | None, str]]) -> None:
    async with bot.runtime.sessionmaker() as session, session.begin():
        session.add_all(TriageCorrection(ticket_id=ticket_id, at=bot.clock.now(), text=t, proposed_type=p,
                                         correct_type=c) for t, p, c in items)


async def test_triage_learn_accepts_and_writes_the_overlay(bot, cli_env, capsys, classifier):
    ticket_id = await _corrections_from_the_office(bot)
    await _add_corrections(bot, ticket_id, [(t, classifier.classify(t).unit_type, "industry") for t in CABLE_REPORTS])
    code, out, err = await arun(capsys, "triage", "learn")
    assert code == 0, err
    assert "学习前" in out and "学习后" in out and "已采用" in out
    before, after = (float(out.split(label)[1].split("%")[0]) for label in ("学习前 ", "学习后 "))
    assert after > before
    path = cli_env / "triage_overlay.json"
    assert str(path) in out
    overlay = Overlay.from_json(path.read_text(encoding="utf-8"))
    assert "光缆" in overlay.weights
    # The next classification uses it.
    code, out, err = await arun(capsys, "classify", "--project", "wuliu", str(_write(cli_env, "光缆迁改运营商一直不配合")))
    assert code == 0, err
    [row] = json_lines(out)
    assert row["unit_type"] == "industry" and row["unit"] == "市工业和信息化局"


async def test_triage_learn_writes_nothing_when_rejected(bot, cli_env, capsys, classifier, monkeypatch):
    from handlers import triage_learn

    # Trained without the tables' own cases as anchors, corrections contradicting
    # the tables (a 施工许可证 is 审批's, not 住建's) break a table case: the guard
    # must refuse the overlay, and nothing is written.
    original = triage_learn.learn_overlay
    monkeypatch.setattr(triage_learn, "learn_overlay",
                        lambda clf, corrections, anchors=(), **kw: original(clf, corrections, (), **kw))
    ticket_id = await _corrections_from_the_office(bot)
    texts = [f"施工许可证报上去{n}了还没批" for n in ("一个月", "两个月", "三个月", "半年", "四十天", "五十天", "两周",
                                                    "三周", "很久", "快一年")]
    await _add_corrections(bot, ticket_id, [(t, classifier.classify(t).unit_type, "housing") for t in texts])
    code, out, err = await arun(capsys, "triage", "learn")
    assert code == 0, err
    assert "学习前" in out and "已拒绝" in out and "施工许可证报上去一个月了还没批：应为 approval" in out
    assert "已写入" not in out and not (cli_env / "triage_overlay.json").exists()


def _write(folder: Path, *lines: str) -> Path:
    path = folder / f"{uuid.uuid4().hex}.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# -- kpbot db, and the schema policy of the command line --------------------------------------


def test_db_upgrade_twice_and_current(empty_database, monkeypatch, tmp_path, capsys):
    _point_at(monkeypatch, tmp_path, empty_database)
    head = schema.head_revision()
    assert run(capsys, "db", "current")[1].strip() == "empty"
    code, out, err = run(capsys, "db", "upgrade")
    assert code == 0, err
    assert out.strip() == f"schema upgraded empty -> {head}"
    code, out, err = run(capsys, "db", "upgrade")
    assert code == 0 and out.strip() == "schema already current"
    assert run(capsys, "db", "current")[1].strip() == head


async def test_commands_follow_the_start_up_schema_policy(empty_database, monkeypatch, tmp_path, capsys):
    """SQLite upgrades itself; a shared PostgreSQL schema is upgraded only by `kpbot db upgrade`."""
    _point_at(monkeypatch, tmp_path, empty_database)
    code, out, err = await arun(capsys, "ledger", "list", "--json")
    if is_sqlite(empty_database.url):
        assert code == 0 and out == ""
        assert await revision(empty_database) == schema.head_revision()
    else:
        assert code == 2 and out == ""
        assert "kpbot db upgrade" in err and "empty" in err
        assert await revision(empty_database) is None
        assert (await arun(capsys, "db", "upgrade"))[0] == 0
        assert (await arun(capsys, "ledger", "list", "--json"))[0] == 0


# -- start-up ----------------------------------------------------------------------------------


def _settings(tmp_path: Path, db: Database, **overrides) -> Settings:
    return db.settings(tmp_path, **overrides)


async def test_sqlite_start_up_upgrades_an_empty_database(aiohttp_client, tmp_path, classifier):
    path = tmp_path / "empty.db"
    settings = _settings(tmp_path, Database(f"sqlite+aiosqlite:///{path}", None))
    client = await aiohttp_client(build_app(settings, start_workers=False, classifier=classifier))
    runtime = client.app[RUNTIME]
    assert await schema.current_revision(runtime.engine) == schema.head_revision()
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Person)) > 50  # the demo organisation
    response = await client.get("/healthz")
    assert response.status == 200 and (await response.json())["database"] == "ok"


@pytest.mark.skipif(not ON_POSTGRES, reason="needs KPBOT_TEST_DATABASE_URL=postgresql+asyncpg://...")
async def test_postgres_start_up_refuses_an_outdated_schema(aiohttp_client, tmp_path, classifier, empty_database,
                                                            monkeypatch, capsys):
    settings = _settings(tmp_path, empty_database)
    app = build_app(settings, start_workers=False, classifier=classifier)
    with pytest.raises(schema.SchemaOutdated, match=r"run `kpbot db upgrade` first"):
        await aiohttp_client(app)
    if app[RUNTIME].engine is not None:
        await app[RUNTIME].engine.dispose()
    assert await revision(empty_database) is None  # nothing was created
    # Doing what the message says is enough.
    _point_at(monkeypatch, tmp_path, empty_database)
    assert (await arun(capsys, "db", "upgrade"))[0] == 0
    client = await aiohttp_client(build_app(settings, start_workers=False, classifier=classifier))
    assert (await client.get("/healthz")).status == 200


async def test_healthz(bot):
    response = await bot.client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"database": "ok", "channels": {"local": "on"}}
