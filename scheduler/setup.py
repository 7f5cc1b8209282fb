"""The APScheduler (3.x) scheduler of the clock's jobs, built from the policy.

- sweep_deadlines every minute, escalate_stalled every hour (both also once
  right after start);
- daily_digest at [digest].time, monthly_ranking on [ranking].day at
  [ranking].time, local time in [clock].timezone; after a restart later that
  same day a missed run is caught up at once.

Every job runs with coalesce=True and max_instances=1, and is wrapped: an
exception is logged and never reaches the scheduler. A failed interval job
simply runs again at its next tick; a failed cron job is retried after
`retry_delay` (at most `max_retries` times). Running a job again is safe: every
notice has a dedupe key, so nothing is queued twice. Jobs take `now` from
`now_fn`; the scheduler itself fires on the wall clock.

Use from the app (inside the event loop):

    scheduler = build_scheduler(sessionmaker, policy, settings, now_fn, enabled_channels,
                                after_queue=wake_outbox)
    start(scheduler)
    ...
    await shutdown(scheduler)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, time, timedelta, timezone

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from config.policy import Policy
from config.settings import Settings
from scheduler import jobs

log = logging.getLogger(__name__)

SWEEP_EVERY = timedelta(minutes=1)
ESCALATE_EVERY = timedelta(hours=1)
RETRY_DELAY = timedelta(minutes=5)
MAX_RETRIES = 12
CRON_GRACE = timedelta(hours=1)  # a digest fired late stays on its own day
JOB_OPTIONS = {"coalesce": True, "max_instances": 1}


class JobRunner:
    """One job as the scheduler calls it: `now` from `now_fn`, errors logged,
    a failed cron job retried later; `after_queue()` when notices were queued
    (to wake the outbox worker)."""

    def __init__(self, name: str, env: jobs.JobEnv, now_fn: Callable[[], datetime], *,
                 after_queue: Callable[[], None] | None = None, retry: bool = False,
                 retry_delay: timedelta = RETRY_DELAY, max_retries: int = MAX_RETRIES):
        self.name = name
        self.env = env
        self.now_fn = now_fn
        self.after_queue = after_queue
        self.retry = retry
        self.retry_delay = retry_delay
        self.max_retries = max_retries
        self.scheduler: AsyncIOScheduler | None = None
        self.runs = 0
        self.failures = 0

    async def run(self, attempt: int = 0) -> int:
        """Run once; the number of notices queued (-1 when it failed)."""
        self.runs += 1
        queued: list[jobs.Queued] = []
        try:
            queued = await jobs.run_job(self.name, self.env, self.now_fn())
        except Exception as exc:  # noqa: BLE001 - a failing job must never kill the scheduler
            self.failures += 1
            queued = getattr(exc, "queued", [])
            log.exception("job %s failed (attempt %d)", self.name, attempt + 1)
            self._notify(queued)
            self._schedule_retry(attempt)
            return -1
        if queued:
            log.info("job %s queued %d notice(s)", self.name, len(queued))
        self._notify(queued)
        return len(queued)

    def _notify(self, queued: list) -> None:
        if queued and self.after_queue is not None:
            try:
                self.after_queue()
            except Exception:  # noqa: BLE001
                log.exception("after_queue of job %s failed", self.name)

    def _schedule_retry(self, attempt: int) -> None:
        if not self.retry or self.scheduler is None or attempt + 1 > self.max_retries:
            return
        run_at = datetime.now(timezone.utc) + self.retry_delay
        self.scheduler.add_job(self.run, DateTrigger(run_date=run_at), kwargs={"attempt": attempt + 1},
                               id=f"{self.name}:retry", name=f"{self.name} (retry {attempt + 1})",
                               replace_existing=True, misfire_grace_time=int(self.retry_delay.total_seconds()),
                               **JOB_OPTIONS)
        log.info("job %s: retry %d at %s", self.name, attempt + 1, run_at.isoformat())


def build_scheduler(
    sessionmaker,
    policy: Policy,
    settings: Settings,
    now_fn: Callable[[], datetime],
    enabled_channels: Sequence[str],
    *,
    after_queue: Callable[[], None] | None = None,
    catch_up: bool = True,
) -> AsyncIOScheduler:
    """A scheduler with the four jobs; not started (call `start` in the loop)."""
    env = jobs.env_from_settings(sessionmaker, settings, policy, enabled_channels)
    tz = policy.clock.tz
    scheduler = AsyncIOScheduler(timezone=tz, job_defaults={**JOB_OPTIONS, "misfire_grace_time": 60})
    wall_now = datetime.now(timezone.utc)

    def add(name: str, trigger, *, retry: bool, grace: timedelta, job_id: str | None = None, **options) -> None:
        runner = JobRunner(name, env, now_fn, after_queue=after_queue, retry=retry)
        runner.scheduler = scheduler
        scheduler.add_job(runner.run, trigger, id=job_id or name, name=job_id or name,
                          misfire_grace_time=int(grace.total_seconds()), **JOB_OPTIONS, **options)

    add("sweep_deadlines", IntervalTrigger(seconds=SWEEP_EVERY.total_seconds(), timezone=tz),
        retry=False, grace=SWEEP_EVERY, next_run_time=wall_now)
    add("escalate_stalled", IntervalTrigger(seconds=ESCALATE_EVERY.total_seconds(), timezone=tz),
        retry=False, grace=ESCALATE_EVERY, next_run_time=wall_now)
    digest_at = policy.digest.time
    add("daily_digest", CronTrigger(hour=digest_at.hour, minute=digest_at.minute, timezone=tz),
        retry=True, grace=CRON_GRACE)
    ranking = policy.ranking
    add("monthly_ranking",
        CronTrigger(day=ranking.day, hour=ranking.time.hour, minute=ranking.time.minute, timezone=tz),
        retry=True, grace=CRON_GRACE)
    if catch_up:
        for name in missed_today(now_fn(), policy):
            add(name, DateTrigger(run_date=wall_now), retry=True, grace=CRON_GRACE, job_id=f"{name}:catch_up")
    return scheduler


def missed_today(now: datetime, policy: Policy) -> list[str]:
    """The cron jobs whose time already passed on `now`'s local day: run at
    start so a restart does not skip them (dedupe keeps them single)."""
    local = now.astimezone(policy.clock.tz)
    missed = []
    if local.time() >= _minute(policy.digest.time) and policy.digest.cadences_on(local.date()):
        missed.append("daily_digest")
    if local.day == policy.ranking.day and local.time() >= _minute(policy.ranking.time):
        missed.append("monthly_ranking")
    return missed


def _minute(value: time) -> time:
    return time(value.hour, value.minute)


def start(scheduler: AsyncIOScheduler) -> None:
    """Start in the running event loop."""
    scheduler.start()
    log.info("scheduler started: %s", ", ".join(job.id for job in scheduler.get_jobs()))


async def shutdown(scheduler: AsyncIOScheduler) -> None:
    """Stop firing and cancel running jobs (each job's transaction rolls back)."""
    if scheduler.running:
        scheduler.shutdown(wait=False)  # AsyncIOScheduler defers this to the loop: let it run
        for _ in range(10):
            if not scheduler.running:
                break
            await asyncio.sleep(0)
