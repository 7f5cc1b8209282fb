"""`kpbot triage learn`: turn the office's reassignments (TriageCorrection rows)
into an overlay over the keyword tables, kept in the data dir, never in the TOML."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from config.settings import Settings
from handlers.triage_learn import Correction, learn
from handlers.triage_setup import build_from_settings, overlay_path
from models.tables import TriageCorrection


async def load_corrections(session: AsyncSession) -> list[Correction]:
    rows = (await session.scalars(select(TriageCorrection).order_by(TriageCorrection.id))).all()
    return [Correction(r.text, r.proposed_type, r.correct_type) for r in rows]


async def learn_from_database(session: AsyncSession, settings: Settings) -> str:
    corrections = await load_corrections(session)
    if not corrections:
        return "没有纠正记录：重点办转办时改动的责任单位类别会被记录，之后再运行本命令。"
    report = learn(build_from_settings(settings).with_overlay(None), corrections)
    if report.accepted and report.after.correct >= report.before.correct:
        path = overlay_path(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report.overlay.to_json(), encoding="utf-8")
        return report.summary() + f"\n已写入 {path}；重启 kpbot 后生效。"
    return report.summary()
