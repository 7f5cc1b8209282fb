"""The clock over whole weeks and months, on SQLite and PostgreSQL (the
`database` fixture): reminders before, at and after the deadlines and their
climb from the unit contact to the leader and the office; the 一二三 ladder;
digests and the ranking to the offices; every job queuing once however often
and however many runners run it; the scheduler surviving a failing job.

The first three tests drive the real app: the liaison reports through the
simulator, the unit answers through it, and what people receive is read from
their simulator inbox. The others work on the database directly, which makes
hundreds of tickets cheap."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from config.org import load_org
from config.policy import default_policy
from config.settings import PACKAGE_DIR
from models import repo
from models.db import make_sessionmaker
from models.orgsync import sync_org
from models.tables import Notice, Office, Person, Project, Ticket, TicketEvent, Unit
from models.tickets import create_ticket, make_move
from models.workflow import SYSTEM, Move
from scheduler import jobs, setup
from tests.conftest import local

from models import deadlines
from models.reminders import Reminder
from models.tables import Identity
from scheduler import texts

LIAISON = "p_wuliu_liaison"
LAND = "项目用地指标还没批下来，影响开工"
ZR, ZR_LEADER = "yd_zr_contact", "yd_zr_leader"  # 尧都区自然资源局
YD_OFFICE = ("yd_office_duty", "yd_office_head")  # 尧都区重点办
CITY_OFFICE = ("city_office_duty", "city_office_head")  # 市重点办
PROJECT_LEADER = "p_wuliu_leader"  # 物流园的包联领导
CHANNELS = ("local",)


# -- until the workflow plans reminders itself --------------------------------------------------



# -- helpers -------------------------------------------------------------------------------------


def titles(items: list[dict]) -> list[str]:
    return [i["reply"].get("title") or i["reply"]["text"].splitlines()[0] for i in items]


async def notices(sessionmaker, prefix: str = "") -> list[Notice]:
    async with sessionmaker() as session:
        stmt = select(Notice).where(Notice.dedupe_key.like(prefix + "%")).order_by(Notice.id)
        return list((await session.scalars(stmt)).all())


async def person_ids(sessionmaker) -> dict[int, str]:
    async with sessionmaker() as session:
        return {p.id: p.key for p in (await session.scalars(select(Person))).all()}


class Clockwork:
    """Runs the jobs as the scheduler would, at the bot's clock time."""

    def __init__(self, sessionmaker, clock, policy=None, channels=CHANNELS, reports_dir: Path | None = None):
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.policy = policy or default_policy()
        self.channels = channels
        self.reports_dir = reports_dir or Path("/nonexistent")

    async def sweep(self, now: datetime | None = None) -> list[jobs.Queued]:
        return await jobs.sweep_deadlines(self.sessionmaker, self.policy, now or self.clock.now(), self.channels)

    async def escalate(self, now: datetime | None = None) -> list[jobs.Queued]:
        return await jobs.escalate_stalled(self.sessionmaker, self.policy, now or self.clock.now(), self.channels)

    async def walk(self, until: datetime, step: timedelta = timedelta(hours=1), sweep: bool = True,
                   escalate: bool = False) -> list:
        """Move the clock in steps up to `until`, sweeping and/or escalating at each."""
        queued = []
        while self.clock.now() < until:
            self.clock.current = min(self.clock.now() + step, until)
            if sweep:
                queued += await self.sweep()
            if escalate:
                queued += await self.escalate()
        return queued


# -- through the app: a late acknowledgement ------------------------------------------------------


async def report_land_problem(bot) -> str:
    answer = await bot.say(LIAISON, LAND)
    assert answer and answer[0]["reply"]["title"] == "问题已受理：YD-2026-0001", titles(answer)
    async with bot.runtime.sessionmaker() as session:
        ticket = await repo.ticket_by_number(session, "YD-2026-0001")
        unit = await session.get(Unit, ticket.unit_id)
    assert ticket.status == "dispatched" and unit.key == "yd_zr"
    await bot.new(ZR)  # the new-ticket card
    return ticket.number


async def test_ticket_acknowledged_late(bot):
    bot.clock.set_local(2026, 11, 23, 10, 0)  # Monday
    number = await report_land_problem(bot)  # 签收 due Monday 18:00
    clock = Clockwork(bot.runtime.sessionmaker, bot.clock)

    assert await clock.walk(local(2026, 11, 23, 15, 0)) == []
    queued = await clock.walk(local(2026, 11, 23, 16, 0))
    assert [(q.to, q.title) for q in queued] == [("尧都区自然资源局13710联系人", f"【签收提醒】{number}")]
    await bot.settle()
    (reminder,) = await bot.new(ZR)
    assert reminder["reply"]["title"] == f"【签收提醒】{number}"
    assert "请于2026年11月23日 18:00前签收" in reminder["reply"]["text"]
    assert "回复“签收 YD-2026-0001”" in reminder["reply"]["text"]
    assert [b["key"] for b in reminder["reply"]["buttons"]] == [f"签收 {number}", f"退回 {number}"]

    await clock.walk(local(2026, 11, 24, 12, 0))  # through the night
    await bot.settle()
    assert titles(await bot.new(ZR)) == [f"【签收到期】{number}", f"【签收超期】{number}"]
    assert await bot.new(ZR_LEADER) == []  # not yet: 24 hours late is Tuesday 18:00

    await clock.walk(local(2026, 11, 24, 18, 0))
    await bot.settle()
    (leader,) = await bot.new(ZR_LEADER)
    assert leader["reply"]["title"] == f"【超期督促】{number}"
    assert "签收已超期1天（时限2026年11月23日 18:00）" in leader["reply"]["text"]
    assert "请督促尽快签收" in leader["reply"]["text"]
    assert await bot.new(ZR) == []

    bot.clock.set_local(2026, 11, 24, 18, 30)
    (answer,) = await bot.say(ZR, f"签收 {number}")
    assert number in answer["reply"]["text"]
    async with bot.runtime.sessionmaker() as session:
        ticket = await repo.ticket_by_number(session, number)
        ack = await session.scalar(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id,
                                                             TicketEvent.kind == "acknowledge"))
    assert ack.data["late"] is True
    assert ticket.next_action_at == local(2026, 11, 26, 9, 0)  # the feedback deadline's morning

    # The rest of the week: only the feedback deadline speaks now, to the contact.
    await clock.walk(local(2026, 11, 26, 18, 0))
    await bot.settle()
    assert titles(await bot.new(ZR)) == [f"【首次反馈提醒】{number}", f"【首次反馈提醒】{number}",
                                         f"【首次反馈到期】{number}"]
    assert await bot.new(ZR_LEADER) == []
    for office in YD_OFFICE:
        assert await bot.new(office) == []


# -- through the app: overdue, climbing the chain ---------------------------------------------------


async def test_overdue_ticket_climbs_from_contact_to_leader_to_office(bot):
    bot.clock.set_local(2026, 11, 23, 10, 0)
    number = await report_land_problem(bot)
    bot.clock.set_local(2026, 11, 23, 11, 0)
    await bot.say(ZR, f"签收 {number}")
    await bot.say(ZR, f"反馈 {number} 已现场踏勘，正在准备用地报批材料")
    await bot.new(ZR)
    clock = Clockwork(bot.runtime.sessionmaker, bot.clock)

    # A week: nothing but the 办结 deadline (general problem: Monday 30th 18:00).
    await clock.walk(local(2026, 11, 30, 18, 0))
    await bot.settle()
    assert titles(await bot.new(ZR)) == [f"【办结提醒】{number}", f"【办结提醒】{number}", f"【办结到期】{number}"]

    # Overdue: the contact every morning, the leader from 24 hours, the office at 72 hours.
    await clock.walk(local(2026, 12, 4, 12, 0))
    await bot.settle()
    assert titles(await bot.new(ZR)) == [f"【办结超期】{number}"] * 4  # 1st, 2nd, 3rd, 4th at 09:00
    leader = await bot.new(ZR_LEADER)
    assert titles(leader) == [f"【超期督促】{number}"] * 4  # 1st 18:00, then 2nd, 3rd, 4th at 09:00
    sent = [n for n in await notices(bot.runtime.sessionmaker, f"remind:{number}:resolve:")
            if n.dedupe_key.endswith(f":{ZR_LEADER}")]
    assert [n.created_at for n in sent] == [local(2026, 12, 1, 18, 0), local(2026, 12, 2, 9, 0),
                                           local(2026, 12, 3, 9, 0), local(2026, 12, 4, 9, 0)]
    for office in YD_OFFICE:  # once, 72 hours late (then the digest lists it)
        (item,) = await bot.new(office)
        assert item["reply"]["title"] == f"【超期通报】{number}"
        assert "办结已超期3天（时限2026年11月30日 18:00）" in item["reply"]["text"]
        assert "见每日简报" in item["reply"]["text"]
        assert [b["key"] for b in item["reply"]["buttons"]] == [f"催办 {number}"]
    for office in CITY_OFFICE:
        assert await bot.new(office) == []

    # The same moment swept again, or a whole day again: nothing new.
    assert await clock.sweep(local(2026, 12, 4, 9, 0)) == []
    assert await clock.sweep() == []


# -- through the app: three months without progress --------------------------------------------------


async def test_ticket_stalled_for_three_months_climbs_the_ladder_once_per_level(bot):
    bot.clock.set_local(2026, 11, 23, 10, 0)
    number = await report_land_problem(bot)
    bot.clock.set_local(2026, 11, 24, 10, 0)
    await bot.say(ZR, f"反馈 {number} 已受理用地报批，等待省厅批复")  # progress: Tuesday 10:00
    clock = Clockwork(bot.runtime.sessionmaker, bot.clock)

    # every day at 10:00 for three months (the hourly job, at the hour it matters)
    queued = await clock.walk(local(2027, 2, 26, 10, 0), step=timedelta(days=1), sweep=False, escalate=True)
    ladder = [q for q in queued if q.key.startswith("ladder:")]
    async with bot.runtime.sessionmaker() as session:
        ticket = await repo.ticket_by_number(session, number)
        events = (await session.scalars(select(TicketEvent).where(
            TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "escalate").order_by(TicketEvent.id))).all()
    assert ticket.escalation_level == 3
    assert [(e.data["level"], e.at, e.actor_id) for e in events] == [
        (1, local(2026, 12, 24, 10, 0), None),  # one month after the last progress
        (2, local(2027, 1, 24, 10, 0), None),
        (3, local(2027, 2, 24, 10, 0), None),
    ]
    assert [e.note for e in events] == ["满1个月无进展，属地专题报告", "满2个月无进展，市级专项督办",
                                        "满3个月无进展，上报市委、市政府"]

    by_level: dict[str, set[str]] = {}
    names = {p: k for p, k in (await person_ids(bot.runtime.sessionmaker)).items()}
    for notice in await notices(bot.runtime.sessionmaker, f"ladder:{number}:"):
        by_level.setdefault(notice.dedupe_key.split(":")[2], set()).add(names[notice.person_id])
    assert by_level == {
        "1": {*YD_OFFICE, ZR, ZR_LEADER},
        "2": {*CITY_OFFICE, *YD_OFFICE, ZR, ZR_LEADER, PROJECT_LEADER},
        "3": {*CITY_OFFICE, *YD_OFFICE, ZR, ZR_LEADER, PROJECT_LEADER},
    }
    assert len(ladder) == 4 + 7 + 7

    await bot.settle()
    leader_items = [i for i in await bot.inbox(PROJECT_LEADER) if "督办" in (i["reply"].get("title") or "")]
    assert titles(leader_items) == [f"【包联项目问题督办】{number}"] * 2
    assert "已转市重点办专项督办" in leader_items[0]["reply"]["text"]
    assert "示范现代物流园项目" in leader_items[0]["reply"]["text"]
    duty = titles(await bot.inbox("yd_office_duty"))
    assert f"【一二三督办·专题报告】{number}" in duty
    city = titles(await bot.inbox("city_office_duty"))
    assert f"【一二三督办·专项督办】{number}" in city and f"【一二三督办·上报市委市政府】{number}" in city

    # Shown in the ticket's timeline.
    await bot.new("yd_office_duty")
    (detail,) = await bot.say("yd_office_duty", f"查询 {number}")
    assert "满1个月无进展，属地专题报告" in detail["reply"]["text"]
    assert "满3个月无进展，上报市委、市政府" in detail["reply"]["text"]

    # Again, and again later: the ladder is done.
    assert await clock.escalate() == []
    assert await clock.escalate(local(2027, 6, 1, 10, 0)) == []

    # Progress starts the count again from zero.
    bot.clock.set_local(2027, 2, 27, 10, 0)
    await bot.say(ZR, f"反馈 {number} 省厅已批复，正在办理供地手续")
    async with bot.runtime.sessionmaker() as session:
        assert (await repo.ticket_by_number(session, number)).escalation_level == 0
    assert await clock.escalate(local(2027, 3, 26, 10, 0)) == []
    (again,) = [q for q in await clock.escalate(local(2027, 3, 27, 10, 0)) if q.to == "尧都区重点办值班员"]
    assert again.key == f"ladder:{number}:1:{jobs.stamp(local(2027, 2, 27, 10, 0))}:yd_office_duty"


# -- on the database directly --------------------------------------------------------------------------


@dataclass
class World:
    engine: object
    sessionmaker: object
    policy: object

    async def ticket(self, now: datetime, *, tier: str = "general", dispatch: bool = True, unit: str = "yd_zr",
                     project: str = "wuliu", office: str = "yd", text: str = LAND) -> str:
        async with self.sessionmaker() as session, session.begin():
            office_row = await repo.office_by_key(session, office)
            unit_row = await session.scalar(select(Unit).where(Unit.key == unit))
            project_row = await session.scalar(select(Project).where(Project.key == project))
            reporter = await repo.person_by_key(session, LIAISON)
            ticket, _ = await create_ticket(
                session, office=office_row, text=text, now=now, policy=self.policy, reporter_id=reporter.id,
                project_id=project_row.id, tier=tier, unit_type=unit_row.unit_type, triage={},
                proposed_unit=unit_row)
            if dispatch:
                await make_move(session, ticket, Move.DISPATCH, SYSTEM, now, self.policy, unit_id=unit_row.id)
            return ticket.number

    async def tickets(self, count: int, now: datetime, **kwargs) -> list[str]:
        return [await self.ticket(now, **kwargs) for _ in range(count)]

    async def move(self, number: str, move: Move, who: str, now: datetime, **arguments) -> None:
        async with self.sessionmaker() as session, session.begin():
            ticket = await repo.ticket_by_number(session, number)
            actor = await repo.actor_for(session, await repo.person_by_key(session, who))
            await make_move(session, ticket, move, actor, now, self.policy, **arguments)


@pytest.fixture
async def world(database) -> World:
    engine = database.engine()
    sessionmaker = make_sessionmaker(engine)
    async with sessionmaker() as session, session.begin():
        await sync_org(session, load_org(PACKAGE_DIR / "org.toml"))
    yield World(engine, sessionmaker, default_policy())
    await engine.dispose()


async def test_each_job_run_twice_queues_once(world, clock, tmp_path):
    clock.set_local(2026, 11, 23, 10, 0)
    numbers = await world.tickets(3, clock.now())
    work = Clockwork(world.sessionmaker, clock, reports_dir=tmp_path)

    first = await work.sweep(local(2026, 11, 23, 16, 0))
    assert len(first) == 3 and len({q.key for q in first}) == 3
    assert await work.sweep(local(2026, 11, 23, 16, 0)) == []
    # next_action_at moved on; winding it back (a crash before the update) still queues nothing
    async with world.sessionmaker() as session, session.begin():
        await session.execute(update(Ticket).values(next_action_at=local(2026, 11, 23, 16, 0)))
    assert await work.sweep(local(2026, 11, 23, 16, 0)) == []
    assert len(await notices(world.sessionmaker, "remind:")) == 3

    later = local(2026, 12, 24, 10, 0)
    assert len(await work.escalate(later)) == 3 * 4  # county office (2), contact, leader
    assert await work.escalate(later) == []
    async with world.sessionmaker() as session:
        levels = (await session.scalars(select(TicketEvent.data).where(TicketEvent.kind == "escalate"))).all()
    assert sorted(d["level"] for d in levels) == [1, 1, 1]

    digest_at = local(2026, 11, 30, 8, 30)  # a Monday: daily and weekly
    digests = await jobs.daily_digest(world.sessionmaker, world.policy, digest_at, CHANNELS)
    assert digests and await jobs.daily_digest(world.sessionmaker, world.policy, digest_at, CHANNELS) == []
    keys = {q.key.rsplit(":", 2)[0] for q in digests}
    assert {"digest:yd:daily:2026-11-30", "digest:yd:weekly:2026-11-30", "digest:city:daily:2026-11-30"} <= keys
    assert not any(":monthly:" in k for k in keys)  # the 1st of the month only

    ranking_at = local(2026, 12, 1, 9, 0)
    ranked = await jobs.monthly_ranking(world.sessionmaker, world.policy, ranking_at, CHANNELS, tmp_path)
    assert {q.to for q in ranked} == {"市重点办值班员", "市重点办主任"}
    assert all(q.key.startswith("ranking:2026-11:city:") for q in ranked)
    assert await jobs.monthly_ranking(world.sessionmaker, world.policy, ranking_at, CHANNELS, tmp_path) == []
    assert numbers


async def test_digest_and_ranking_go_to_the_group_robots(world, clock, tmp_path):
    clock.set_local(2026, 11, 23, 10, 0)
    await world.ticket(clock.now())
    async with world.sessionmaker() as session, session.begin():
        await session.execute(update(Office).where(Office.key == "city").values(
            wecom_webhook="https://qyapi.example/cgi-bin/webhook/send?key=city",
            dingtalk_webhook="https://oapi.example/robot/send?access_token=city", dingtalk_webhook_secret="SECcity"))
    channels = ("local", "wecom_group", "dingtalk_group")
    digests = await jobs.daily_digest(world.sessionmaker, world.policy, local(2026, 11, 24, 8, 30), channels)
    city = [n for n in await notices(world.sessionmaker, "digest:city:daily:2026-11-24:")]
    assert {(n.kind, n.channel, n.address) for n in city} == {
        ("group", "wecom_group", "https://qyapi.example/cgi-bin/webhook/send?key=city"),
        ("group", "dingtalk_group", "https://oapi.example/robot/send?access_token=city"),
    }
    assert all(n.payload["reply"]["markdown"] for n in city)
    assert [n.payload.get("secret") for n in city if n.channel == "dingtalk_group"] == ["SECcity"]
    assert any(q.to == "尧都区重点办值班员" for q in digests)  # an office without a group: its staff

    await jobs.monthly_ranking(world.sessionmaker, world.policy, local(2026, 12, 1, 9, 0), channels, tmp_path)
    ranking = await notices(world.sessionmaker, "ranking:2026-11:city:")
    groups = [n for n in ranking if n.kind == "group"]
    staff = [n for n in ranking if n.kind == "person"]
    assert {n.channel for n in groups} == {"wecom_group", "dingtalk_group"}
    assert len(staff) >= 2  # the ranking also goes to each staff member
    assert "月通报" in groups[0].payload["reply"]["text"]
    images = [n.payload.get("image_path") for n in groups if n.channel == "wecom_group"]
    assert images[-1] == str(tmp_path / "ranking-2026-11.png")  # the chart goes with the last chunk
    assert Path(images[-1]).read_bytes()[:4] == b"\x89PNG"
    assert staff[-1].payload["reply"]["file_path"] == images[-1]  # and to the staff as a file


async def test_dispatch_deadline_reminds_the_office_and_then_the_city(world, clock):
    clock.set_local(2026, 11, 23, 9, 30)
    number = await world.ticket(clock.now(), dispatch=False)  # 交办 due Tuesday 18:00
    work = Clockwork(world.sessionmaker, clock)
    queued = await work.walk(local(2026, 11, 28, 9, 0))
    people = {q.to for q in queued}
    assert {"尧都区重点办值班员", "尧都区重点办主任", "市重点办值班员", "市重点办主任"} == people
    first_city = min((q for q in queued if q.to.startswith("市")), key=lambda q: q.key)
    assert f"remind:{number}:dispatch:" in first_city.key and first_city.title == f"【交办超期】{number}"
    assert jobs.stamp(local(2026, 11, 27, 18, 0)) in first_city.key  # 72 hours late


async def test_concurrent_runners_queue_once(world, clock, database):
    clock.set_local(2026, 11, 23, 10, 0)
    await world.tickets(40, clock.now())
    engines = [database.engine(), database.engine()]
    makers = [make_sessionmaker(e) for e in engines]
    policy = world.policy
    try:
        at = local(2026, 11, 23, 16, 0)
        results = await asyncio.gather(*(jobs.sweep_deadlines(m, policy, at, CHANNELS, batch=7) for m in makers))
        assert sum(len(r) for r in results) == 40
        assert len(await notices(world.sessionmaker, "remind:")) == 40

        at = local(2026, 12, 24, 10, 0)
        results = await asyncio.gather(*(jobs.escalate_stalled(m, policy, at, CHANNELS, batch=7) for m in makers))
        assert sum(len(r) for r in results) == 40 * 4
        async with world.sessionmaker() as session:
            count = await session.scalar(select(func.count()).select_from(TicketEvent)
                                         .where(TicketEvent.kind == "escalate"))
        assert count == 40

        at = local(2026, 11, 30, 8, 30)
        results = await asyncio.gather(*(jobs.daily_digest(m, policy, at, CHANNELS) for m in makers))
        keys = [q.key for r in results for q in r]
        assert keys and len(keys) == len(set(keys)) == len(await notices(world.sessionmaker, "digest:"))
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_broken_ticket_does_not_stop_the_sweep(world, clock, caplog):
    clock.set_local(2026, 11, 23, 10, 0)
    good, bad = await world.tickets(2, clock.now())
    async with world.sessionmaker() as session, session.begin():
        await session.execute(update(Ticket).where(Ticket.number == bad).values(status="nonsense"))
    with caplog.at_level(logging.ERROR, logger="scheduler.jobs"):
        queued = await jobs.sweep_deadlines(world.sessionmaker, world.policy, local(2026, 11, 23, 16, 0), CHANNELS)
    assert [q.key.split(":")[1] for q in queued] == [good]
    assert f"ticket {bad} failed" in caplog.text
    async with world.sessionmaker() as session:
        retry = await session.scalar(select(Ticket.next_action_at).where(Ticket.number == bad))
    assert retry == local(2026, 11, 23, 17, 0)


async def test_kpbot_jobs_run_prints_what_it_queued(world, database, tmp_path, clock):
    clock.set_local(2026, 11, 23, 10, 0)
    number = await world.ticket(clock.now())
    settings = database.settings(tmp_path)
    assert [name for name, _ in jobs.describe()] == ["sweep_deadlines", "escalate_stalled", "daily_digest",
                                                     "monthly_ranking"]
    output = await jobs.run_by_name("sweep_deadlines", world.sessionmaker, settings, local(2026, 11, 23, 16, 0))
    lines = output.splitlines()
    assert lines[0] == "sweep_deadlines at 2026-11-23T16:00:00+08:00 (Asia/Shanghai): queued 1 notice(s)"
    assert number in lines[1] and "尧都区自然资源局13710联系人 [local]" in lines[1] and "【签收提醒】" in lines[1]
    output = await jobs.run_by_name("sweep_deadlines", world.sessionmaker, settings, local(2026, 11, 23, 16, 0))
    assert output.endswith("queued 0 notice(s)")
    with pytest.raises(SystemExit):
        await jobs.run_by_name("nope", world.sessionmaker, settings, clock.now())


# -- the scheduler ----------------------------------------------------------------------------------------


async def test_scheduler_has_the_jobs_from_the_policy(world, database, tmp_path):
    settings = database.settings(tmp_path)
    now = local(2026, 12, 1, 10, 0)  # the ranking day, after 09:00 and after the digest time
    scheduler = setup.build_scheduler(world.sessionmaker, world.policy, settings, lambda: now, CHANNELS)
    jobs_by_id = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs_by_id) == {"sweep_deadlines", "escalate_stalled", "daily_digest", "monthly_ranking",
                               "daily_digest:catch_up", "monthly_ranking:catch_up"}
    assert str(jobs_by_id["daily_digest"].trigger) == "cron[hour='8', minute='30']"
    assert str(jobs_by_id["monthly_ranking"].trigger) == "cron[day='1', hour='9', minute='0']"
    assert jobs_by_id["sweep_deadlines"].trigger.interval == timedelta(minutes=1)
    assert jobs_by_id["escalate_stalled"].trigger.interval == timedelta(hours=1)
    for job in jobs_by_id.values():
        assert job.coalesce and job.max_instances == 1 and job.misfire_grace_time
    assert str(scheduler.timezone) == "Asia/Shanghai"
    assert setup.missed_today(local(2026, 12, 2, 8, 29), world.policy) == []
    assert setup.missed_today(local(2026, 12, 2, 8, 30), world.policy) == ["daily_digest"]


async def test_a_failing_job_is_logged_and_the_scheduler_keeps_going(world, database, tmp_path, caplog):
    settings = database.settings(tmp_path)
    calls = []

    def broken_now():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database down")
        return local(2026, 11, 23, 16, 0)

    scheduler = setup.build_scheduler(world.sessionmaker, world.policy, settings, broken_now, CHANNELS, catch_up=False)
    sweep = scheduler.get_job("sweep_deadlines").func.__self__
    with caplog.at_level(logging.ERROR, logger="scheduler.setup"):
        scheduler.start(paused=True)  # the test fires the jobs itself
        try:
            assert await sweep.run() == -1  # fails, logged
            assert await sweep.run() == 0  # and runs again next tick
            assert scheduler.running and scheduler.get_job("sweep_deadlines") is not None
            digest = scheduler.get_job("daily_digest").func.__self__
            digest.env = jobs.JobEnv(None, world.policy, CHANNELS, tmp_path)  # no database at all
            assert await digest.run() == -1
            assert scheduler.get_job("daily_digest:retry") is not None  # a cron job is retried later
        finally:
            await setup.shutdown(scheduler)
    assert "job sweep_deadlines failed" in caplog.text and "job daily_digest failed" in caplog.text
    assert sweep.failures == 1 and sweep.runs == 2


async def test_started_scheduler_runs_the_sweep_at_once_and_stops_cleanly(world, database, tmp_path):
    settings = database.settings(tmp_path)
    scheduler = setup.build_scheduler(world.sessionmaker, world.policy, settings,
                                      lambda: local(2026, 11, 23, 16, 0), CHANNELS, catch_up=False)
    sweep = scheduler.get_job("sweep_deadlines").func.__self__
    escalate = scheduler.get_job("escalate_stalled").func.__self__
    setup.start(scheduler)
    try:
        for _ in range(100):
            if sweep.runs and escalate.runs:
                break
            await asyncio.sleep(0.05)
        assert sweep.runs == 1 and escalate.runs == 1 and not sweep.failures and not escalate.failures
        assert scheduler.running
    finally:
        await setup.shutdown(scheduler)
    assert not scheduler.running


# -- the sweep's texts: one template per kind of reminder, filled in per ticket ------------------------


REMINDER_CASES = [(stage, phase, role)
                  for stage, roles in {"ack": ("unit_contact", "unit_leader", "office"),
                                       "feedback": ("unit_contact", "unit_leader", "office"),
                                       "resolve": ("unit_contact", "unit_leader", "office"),
                                       "dispatch": ("office", "parent_office"),
                                       "confirm": ("reporter", "office")}.items()
                  for role in roles for phase in ("before", "due", "overdue")]


def awkward_org(unit_name: str) -> jobs.Org:
    """An organisation whose names hold what JSON and %-formatting must escape."""
    def person(person_id: int, key: str, name: str, **more) -> Person:
        return Person(id=person_id, key=key, name=name, active=True, preferred_channel="local",
                      identities=[Identity(channel="local", external_id=f"{key}@local")], **more)

    people = {p.id: p for p in (person(10, "contact", '联系人"甲"'), person(11, "leader", "领导\\乙"),
                                person(12, "county_duty", "县值班员", office_id=2),
                                person(13, "city_duty", "市值班员", office_id=1), person(14, "liaison", "联络员"))}
    offices = {1: Office(id=1, key="city", name="市重点办", short_name='市"重点办"', parent_id=None),
               2: Office(id=2, key="county", name="县重点办", short_name="县重点办 100% %(n)s %s", parent_id=1)}
    unit = Unit(id=5, key="unit", name=unit_name, office_id=2, contact_id=10, leader_id=11)
    return jobs.Org(offices=offices, units={5: unit}, staff={1: [people[13]], 2: [people[12]]}, people=people)


def due_ticket(number: str, text: str, project: str | None, due: datetime) -> jobs.DueTicket:
    return jobs.DueTicket(id=7, number=number, status="dispatched", office_id=2, unit_id=5, reporter_id=14,
                           text=text, project_name=project, first_feedback_at=None, dispatch_due_at=None,
                           ack_due_at=due, feedback_due_at=None, resolve_due_at=None, confirm_due_at=None,
                           next_action_at=due)


@pytest.mark.parametrize("unit_name", ["自然资源局 %d%%", "自然资源局\ue000n"])  # the second is not templated
@pytest.mark.parametrize("number,text,project", [
    ("YD-2026-0001", "项目用地指标还没批下来，影响开工", "示范现代物流园项目"),
    ('YD-2026-"2"', '用地 "指标"\\ 100%\n还没批下来\t%(n)s %(a)s %s \ue000n \ue000a，' + "很长" * 30, None),
    ("YD-2026-0003", "", '物流园 "二期" 50%'),
])
def test_sweep_reminders_are_the_texts_rendered_whole(unit_name, number, text, project):
    policy = default_policy()
    tz = policy.clock.tz
    org = awkward_org(unit_name)
    said = jobs._Reminders(org, policy, CHANNELS)
    due = local(2026, 11, 23, 9, 5)
    moments = {"before": due - timedelta(hours=2), "due": due, "overdue": due + timedelta(days=3, minutes=7)}
    ticket = due_ticket(number, text, project, due)
    for stage, phase, role in REMINDER_CASES:
        at = moments[phase]
        rows = jobs._Rows(at)
        said.queue(rows, ticket, [Reminder(at, stage, due, role)])
        reply = texts.reminder(stage, phase, role, jobs.brief_of(ticket, org, project), due,
                               deadlines.overdue_days(due, at, policy), tz)
        people = jobs._recipients(role, ticket, org)
        assert people, (stage, role)
        assert [row[0] for row in rows.rows] == [
            f"remind:{number}:{stage}:{jobs.stamp(due)}:{jobs.stamp(at)}:{p.key}" for p in people]
        for row, person in zip(rows.rows, people):
            assert row == (row[0], "person", person.id, 2, 7, "local", f"{person.key}@local",
                           jobs._json({"reply": jobs.reply_dict(reply)})), (stage, phase, role)
            assert rows.queued[row[0]] == jobs.Queued(row[0], person.name, "local", reply.title)
