"""`kpbot` (= `python -m bot`): serve, db upgrade, org load/list, classify,
ledger list/export, triage learn, jobs list/run, report monthly, digest."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path

from config.settings import ConfigError, load_settings

log = logging.getLogger("kpbot")

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kpbot", description="13710 重点项目问题督办机器人")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the bot (HTTP callbacks, simulator, workers, scheduler)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)

    db = sub.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade", "current"])

    org = sub.add_parser("org", help="the organisation")
    org_sub = org.add_subparsers(dest="org_action", required=True)
    load = org_sub.add_parser("load", help="upsert an organisation TOML file")
    load.add_argument("file", type=Path)
    listing = org_sub.add_parser("list", help="list people")
    listing.add_argument("--json", action="store_true")

    classify = sub.add_parser("classify", help="route reports, one per line (stdin when no file)")
    classify.add_argument("file", nargs="?", type=Path)
    classify.add_argument("--project", help="resolve units for this project's 属地 (name or key)")

    triage = sub.add_parser("triage", help="triage learning")
    triage.add_argument("action", choices=["learn"])

    ledger = sub.add_parser("ledger", help="the ledger (台账)")
    ledger_sub = ledger.add_subparsers(dest="ledger_action", required=True)
    ledger_list = ledger_sub.add_parser("list")
    ledger_list.add_argument("--json", action="store_true")
    ledger_list.add_argument("--status")
    ledger_list.add_argument("--office")
    export = ledger_sub.add_parser("export")
    export.add_argument("--out", type=Path, required=True)
    export.add_argument("--office")
    export.add_argument("--status")
    export.add_argument("--from", dest="date_from")
    export.add_argument("--to", dest="date_to")

    jobs = sub.add_parser("jobs", help="scheduled jobs")
    jobs_sub = jobs.add_subparsers(dest="jobs_action", required=True)
    jobs_sub.add_parser("list")
    run = jobs_sub.add_parser("run")
    run.add_argument("name")
    run.add_argument("--now", help="ISO-8601 time to run the job at (default: now)")

    report = sub.add_parser("report", help="reports")
    report.add_argument("kind", choices=["monthly"])
    report.add_argument("--month", required=True, help="YYYY-MM")
    report.add_argument("--out", type=Path, required=True)

    digest = sub.add_parser("digest", help="print an office digest")
    digest.add_argument("--print", action="store_true", dest="print_")
    digest.add_argument("--office")
    digest.add_argument("--cadence", default="daily")
    digest.add_argument("--now")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ValueError as exc:
        print(f"kpbot: bad settings: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("alembic", "jieba"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    from bot import commands  # the command implementations: imported on use, not at import

    try:
        return commands.run(args, settings)
    except ConfigError as exc:
        print(f"kpbot: {exc}", file=sys.stderr)
        return 2


def parse_now(value: str | None) -> datetime:
    if not value:
        return datetime.now(timezone.utc)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise SystemExit(f"kpbot: --now {value!r} is not an ISO-8601 time, e.g. 2026-11-23T09:00+08:00") from None
    if moment.tzinfo is None:
        raise SystemExit("kpbot: --now needs a timezone, e.g. 2026-11-23T09:00+08:00")
    return moment


def print_json_lines(rows) -> None:
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))

