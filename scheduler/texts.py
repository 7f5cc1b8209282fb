"""Every Chinese string the clock says: reminders, escalations (一二三) and the
captions of digests and rankings sent by the scheduler.

Short and official but friendly, with dates written 2026年11月22日 18:00 in the
policy's time zone, and always saying what to do next (the commands are the
ones handlers/common.py understands, e.g. "签收 YD-2026-0001").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.message import Button, Reply

PROBLEM_PREVIEW = 40  # characters of the problem text shown in a reminder


@dataclass(frozen=True)
class Brief:
    """What a reminder says about its ticket."""

    number: str
    problem: str
    project: str | None = None
    unit: str | None = None  # the handling unit's name
    contact: str | None = None  # its 13710 contact's name
    office: str | None = None  # the ticket's office (short name)
    parent_office: str | None = None  # the office above it (short name)
    city_office: str | None = None  # the top office (short name)


def when(moment: datetime, tz: ZoneInfo) -> str:
    """2026年11月22日 18:00 (local)."""
    local = moment.astimezone(tz)
    return f"{local.year}年{local.month}月{local.day}日 {local.hour:02d}:{local.minute:02d}"


def day(moment: datetime, tz: ZoneInfo) -> str:
    local = moment.astimezone(tz)
    return f"{local.year}年{local.month}月{local.day}日"


def _preview(text: str) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= PROBLEM_PREVIEW else text[: PROBLEM_PREVIEW - 1] + "…"


def about(project: str | None, problem: str) -> str:
    """The lines that say which ticket a message is about: its project and its
    problem (cut to PROBLEM_PREVIEW characters)."""
    preview = f"问题：{_preview(problem)}"
    return f"项目：{project}\n{preview}" if project else preview


def _about(brief: Brief) -> str:
    return about(brief.project, brief.problem)


# -- reminders ---------------------------------------------------------------------------

STAGE_NAMES = {"dispatch": "交办", "ack": "签收", "feedback": "首次反馈", "resolve": "办结", "confirm": "确认"}

# What the unit contact is asked to do, per stage.
_UNIT_ASK = {
    "ack": "请签收：回复“签收 {n}”；不属于本单位职责请回复“退回 {n} 理由”。",
    "feedback": "请反馈办理进展：回复“反馈 {n} 进展情况”。",
    "resolve": "办结后请回复“办结 {n} 办理结果”；确需延期请回复“延期 {n} 天数 理由”。",
}
_UNIT_BEFORE = {
    "ack": "您单位有一件交办问题待签收，请于{due}前签收。",
    "feedback": "请于{due}前首次反馈办理进展。",
    "resolve": "本问题办结时限为{due}，请抓紧办理。",
}
_VERB = {"ack": "签收", "feedback": "反馈进展", "resolve": "办结", "dispatch": "交办", "confirm": "确认"}


def _state(stage: str, phase: str, due: str, days_late: int | str) -> str:
    name = STAGE_NAMES[stage]
    if phase == "due":
        return f"{name}时限（{due}）已到"
    return f"{name}已超期{days_late}天（时限{due}）"


def reminder(stage: str, phase: str, role: str, brief: Brief, due: datetime, days_late: int,
             tz: ZoneInfo) -> Reply:
    """The reminder `role` receives about `stage` of a ticket; `phase` is
    before / due / overdue; `days_late` is 超期天数 (0 unless overdue)."""
    return render_reminder(stage, phase, role, brief, when(due, tz), days_late, about(brief.project, brief.problem))


def render_reminder(stage: str, phase: str, role: str, brief: Brief, due_text: str, days_late: int | str,
                    about_text: str) -> Reply:
    """`reminder` from its parts as text: the deadline written out (`when`),
    the days late and the `about` lines (brief.project and brief.problem are
    not read). Each part goes into the text as it is, so a sweep can render a
    template with placeholders once and fill it in for many tickets."""
    n = brief.number
    name = STAGE_NAMES[stage]
    state = _state(stage, phase, due_text, days_late)
    if role == "unit_contact":
        if phase == "before":
            title, first = f"【{name}提醒】{n}", _UNIT_BEFORE[stage].format(due=due_text)
        else:
            suffix = "到期" if phase == "due" else "超期"
            title, first = f"【{name}{suffix}】{n}", f"{state}，请立即{_VERB[stage]}。"
        buttons = (Button(f"签收 {n}", "签收"), Button(f"退回 {n}", "退回")) if stage == "ack" else ()
        return Reply(f"{first}\n{about_text}\n{_UNIT_ASK[stage].format(n=n)}", title=title, buttons=buttons)
    if role == "unit_leader":
        text = (f"{brief.unit or '贵单位'}承办的问题{n}{state}。"
                f"13710联系人：{brief.contact or '未设置'}。请督促尽快{_VERB[stage]}。\n{about_text}")
        return Reply(text, title=f"【超期督促】{n}")
    if role == "office" and stage == "dispatch":
        if phase == "before":
            first = f"问题{n}待交办，请于{due_text}前核实并交办。"
            title = f"【交办提醒】{n}"
        else:
            first = f"问题{n}{state}，请立即核实交办。"
            title = f"【交办{'到期' if phase == 'due' else '超期'}】{n}"
        return Reply(f"{first}\n{about_text}\n交办请回复“交办 {n} 承办单位”。", title=title)
    if role == "parent_office":
        text = (f"{brief.office or '下级重点办'}的问题{n}{state}，尚未交办承办单位。请督促尽快交办。"
                f"此后不再逐件提醒，情况见每日简报。\n{about_text}")
        return Reply(text, title=f"【交办超期】{n}")
    if role == "reporter":
        text = (f"您反映的问题{n}已办结，请于{due_text}前确认办理结果。\n{about_text}\n"
                f"满意请回复“满意 {n}”；不满意请回复“不满意 {n} 理由”，将退回承办单位重新办理。")
        return Reply(text, title=f"【确认提醒】{n}",
                     buttons=(Button(f"满意 {n}", "满意"), Button(f"不满意 {n}", "不满意")))
    if role == "office" and stage == "confirm":
        late = "" if phase == "due" else f"，已超期{days_late}天"
        text = (f"问题{n}已由{brief.unit or '承办单位'}办结，项目单位未在时限（{due_text}）内确认{late}。"
                f"请联系项目单位核实后代为确认：回复“满意 {n}”或“不满意 {n} 理由”。\n{about_text}")
        return Reply(text, title=f"【待确认】{n}")
    if role == "office":
        text = (f"{brief.unit or '承办单位'}承办的问题{n}{state}，已提醒13710联系人和分管领导。"
                f"请予督办，可回复“催办 {n}”。此后不再逐件提醒，超期情况见每日简报。\n{about_text}")
        return Reply(text, title=f"【超期通报】{n}", buttons=(Button(f"催办 {n}", "催办"),))
    raise ValueError(f"no reminder text for role {role!r} and stage {stage!r}")


# -- 一二三 --------------------------------------------------------------------------------

LADDER_ACTIONS = {1: "属地专题报告", 2: "市级专项督办", 3: "上报市委、市政府"}


def ladder_note(level: int, months: int) -> str:
    """The note of the escalation event in the ticket's timeline (shown after
    the event's name, 一二三督办)."""
    return f"满{months}个月无进展，{LADDER_ACTIONS[level]}"


def ladder_notice(level: int, role: str, brief: Brief, months: int, since: datetime, tz: ZoneInfo) -> Reply:
    """What `role` (county_office, city_office, unit, project_leader) is told when
    a ticket climbs to `level` of the 一二三 ladder."""
    n = brief.number
    county = brief.office or "属地重点办"
    city = brief.city_office or "市重点办"
    stalled = f"{brief.unit or '承办单位'}承办的问题{n}自{day(since, tz)}起已满{months}个月无实质进展"
    step = {
        1: f"已提请{county}查明原因、形成专题报告",
        2: f"已转{city}专项督办",
        3: "已列入上报市委、市政府的问题清单",
    }[level]
    about = _about(brief)
    if role == "county_office" and level == 1:
        text = (f"{stalled}。按“一二三”工作机制，请{county}查明原因，形成专题报告报{city}。\n{about}\n"
                f"督促承办单位可回复“催办 {n}”。")
        return Reply(text, title=f"【一二三督办·专题报告】{n}")
    if role == "city_office" and level == 2:
        text = f"{stalled}。按“一二三”工作机制，请{city}专项督办。\n{about}\n督促承办单位可回复“催办 {n}”。"
        return Reply(text, title=f"【一二三督办·专项督办】{n}")
    if role == "city_office" and level == 3:
        text = f"{stalled}。按“一二三”工作机制，请{city}上报市委、市政府，已列入上报清单。\n{about}"
        return Reply(text, title=f"【一二三督办·上报市委市政府】{n}")
    if role in ("county_office", "city_office"):
        return Reply(f"{stalled}，{step}。\n{about}", title=f"【一二三督办】{n}")
    if role == "unit":
        text = f"{stalled}，{step}。请尽快推进办理并反馈：回复“反馈 {n} 进展情况”。\n{about}"
        return Reply(text, title=f"【无进展督办】{n}")
    if role == "project_leader":
        project = brief.project or "您包联的项目"
        text = (f"您包联的{project}反映的问题{n}，由{brief.unit or '承办单位'}承办，"
                f"自{day(since, tz)}起已满{months}个月无实质进展，{step}。请关注推动。\n问题：{_preview(brief.problem)}")
        return Reply(text, title=f"【包联项目问题督办】{n}")
    raise ValueError(f"no ladder text for role {role!r} at level {level}")
