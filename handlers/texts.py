"""Every Chinese string the users read.

Plain templates and small functions over plain values (strings, numbers,
aware datetimes); the handlers fetch the data and pick the text here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo

PROCESSING_FAILED = "抱歉，系统处理您的消息时出错，已记录并通知管理员。请稍后再试，或直接联系重点办。"

DEFAULT_TZ = ZoneInfo("Asia/Shanghai")

# -- dates ------------------------------------------------------------------------


def when(moment: datetime | None, tz: ZoneInfo = DEFAULT_TZ) -> str:
    """2026年11月22日 18:00, in local time, as offices write it."""
    if moment is None:
        return "—"
    local = moment.astimezone(tz)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def date_text(value: date) -> str:
    return f"{value.year}年{value.month}月{value.day}日"


def day(moment: datetime | None, tz: ZoneInfo = DEFAULT_TZ) -> str:
    if moment is None:
        return "—"
    local = moment.astimezone(tz)
    return f"{local.year}年{local.month}月{local.day}日"


# -- labels -----------------------------------------------------------------------

STATUS = {
    "reported": "待交办",
    "dispatched": "已交办，待签收",
    "acknowledged": "已签收",
    "in_progress": "办理中",
    "resolved": "已办结，待确认",
    "closed": "已销号",
    "returned": "已退回，待重新交办",
}

EVENT = {
    "escalate": "一二三督办",
    "create": "提交问题",
    "dispatch": "交办",
    "reassign": "转办",
    "acknowledge": "签收",
    "feedback": "反馈进展",
    "submit_plan": "提交书面方案",
    "resolve": "办结",
    "confirm": "确认满意，销号",
    "reopen": "不满意，重新办理",
    "return": "退回",
    "request_extension": "申请延期",
    "grant_extension": "批准延期",
    "refuse_extension": "驳回延期",
    "flag": "挂牌督办",
    "unflag": "摘牌",
    "supplement": "补充情况",
    "urge": "催办",
}

# What a move is called in a sentence ("不能{ACTION}").
ACTION = {
    "dispatch": "交办",
    "reassign": "转办",
    "acknowledge": "签收",
    "feedback": "反馈进展",
    "submit_plan": "提交书面方案",
    "resolve": "办结",
    "confirm": "确认满意",
    "reopen": "提出不满意",
    "return": "退回",
    "request_extension": "申请延期",
    "grant_extension": "批准延期",
    "refuse_extension": "驳回延期",
    "flag": "挂牌督办",
    "unflag": "摘牌",
    "supplement": "补充情况",
    "urge": "催办",
}

STAGE = {
    "dispatch": "交办期限",
    "ack": "签收期限",
    "feedback": "反馈期限",
    "resolve": "办结期限",
    "confirm": "确认期限",
}

TIER = {
    "obstruction": "阻工扰工类（3日内排除）",
    "general": "一般问题（7日内办结）",
    "major": "重大复杂问题（1个月内办结，或报书面方案）",
}

PROJECT_LEVEL = {"province": "省级重点项目", "city": "市级重点项目", "county": "县级重点项目"}

ROLE = {
    "liaison": "项目单位联络员",
    "unit_contact": "承办单位13710联系人",
    "unit_leader": "承办单位分管领导",
    "office": "重点办工作人员",
    "project_leader": "项目包联领导",
}

PARTY = {"office": "重点办", "unit": "承办单位", "reporter": "提交该问题的联络员", "liaison": "项目联络员"}

FLAG_FIELD = {"method": "解决办法", "unit": "责任单位", "leader": "责任领导", "person": "责任人", "due": "完成期限"}

FLAG_BADGE = "【挂牌督办】"


def light(kind: str, overdue_days: int = 0) -> str:
    if kind == "overdue":
        return f"【超期{overdue_days}天】" if overdue_days else "【超期】"
    if kind == "near":
        return "【临期】"
    return ""


def heading(number: str, flagged: bool) -> str:
    return f"{FLAG_BADGE}{number}" if flagged else number


def short(text: str, limit: int = 60) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def person_line(name: str, phone: str | None) -> str:
    return f"{name}（{phone}）" if phone else name


SEP = "、"
OR = "或"


def join(items: Iterable[str], sep: str = SEP) -> str:
    return sep.join(items)


# How each command is written, with an example ticket number.
EXAMPLE = {
    "acknowledge": "签收 {number}",
    "feedback": "反馈 {number} 已现场踏勘，正在协调",
    "resolve": "办结 {number} 规划许可证已核发",
    "return": "退回 {number} 不属于本单位职责",
    "request_extension": "延期 {number} 5 需等待专家评审",
    "submit_plan": "方案 {number} 分三步完成征地报批 2026-12-31",
    "confirm": "满意 {number}",
    "reopen": "不满意 {number} 证件仍未拿到",
    "supplement": "补充 {number} 现场已停工两天",
    "dispatch": "交办 {number} 尧都区自然资源局",
    "reassign": "转办 {number} 市规划和自然资源局 涉及市级审批权限",
    "flag": "挂牌 {number} 专班协调用地报批 张副局长 李科长 2026-12-31",
    "unflag": "摘牌 {number}",
    "grant_extension": "批准延期 {number}",
    "refuse_extension": "驳回延期 {number} 理由不充分，请按期办结",
    "urge": "催办 {number}",
    "query": "查询 {number}",
}
EXAMPLE_NUMBER = "YD-2026-0001"

# Who may use a group of commands, for the role refusal.
ROLE_GROUP = {
    ("liaison",): "项目单位联络员",
    ("liaison", "office"): "项目单位联络员或重点办",
    ("unit_contact", "unit_leader"): "承办单位（13710联系人或分管领导）",
    ("office",): "重点办",
}
NO_ROLES = "未分配角色"


# -- unknown people, help, unknown commands ---------------------------------------

UNKNOWN_PERSON = (
    "您好！这里是重点项目问题“13710”督办助手。\n"
    "您的账号尚未登记，暂时无法使用。请联系所在单位或属地重点办，"
    "提供姓名、单位、职务和手机号，由重点办登记后即可使用。"
)

HELP_HEADER = "您好，{name}（{roles}）。您可以这样使用督办助手："

HELP_LIAISON = (
    "【项目单位联络员】\n"
    "· 直接发文字描述问题，即提交问题，例如：\n"
    "  项目东侧用地规划许可证迟迟未办理，影响开工\n"
    "· 提交后10分钟内发的照片、语音、位置会附到该问题上\n"
    "· 补充 编号 内容 —— 补充情况，例如：补充 YD-2026-0001 已和村委会沟通\n"
    "· 我的问题 —— 查看我提交的未销号问题\n"
    "· 查询 编号 —— 查看办理经过，例如：查询 YD-2026-0001\n"
    "· 满意 编号 —— 确认办结，销号\n"
    "· 不满意 编号 理由 —— 退回承办单位重新办理\n"
    "· 取消 —— 结束当前对话（如放弃选择项目）"
)

HELP_UNIT = (
    "【承办单位】\n"
    "· 待办 —— 本单位未办结的问题，最紧急的在前\n"
    "· 签收 编号 —— 当天签收（事不过夜），例如：签收 YD-2026-0001\n"
    "· 反馈 编号 进展 —— 3日内首次反馈，例如：反馈 YD-2026-0001 已现场踏勘，正在办理\n"
    "· 办结 编号 结果 —— 办结后请联络员确认，例如：办结 YD-2026-0001 规划许可证已核发\n"
    "· 退回 编号 理由 —— 不属于本单位职责，退回重点办重新交办\n"
    "· 延期 编号 天数 理由 —— 向重点办申请延期，例如：延期 YD-2026-0001 5 需等待专家评审\n"
    "· 方案 编号 内容 截止日期 —— 重大复杂问题报送书面方案和时间节点，"
    "例如：方案 YD-2026-0001 分三步完成征地报批 2026-12-31\n"
    "· 查询 编号 —— 查看办理经过\n"
    "只有一件可办的问题时，编号可以省略。"
)

HELP_OFFICE = (
    "【重点办】\n"
    "· 交办 编号 单位 —— 例如：交办 YD-2026-0001 尧都区自然资源局\n"
    "· 转办 编号 单位 理由 —— 例如：转办 YD-2026-0001 市规划和自然资源局 涉及市级审批权限\n"
    "· 挂牌 编号 办法 责任领导 责任人 期限 —— 五到位挂牌督办，"
    "例如：挂牌 YD-2026-0001 专班协调用地报批 张副局长 李科长 2026-12-31\n"
    "· 摘牌 编号\n"
    "· 批准延期 编号 ／ 驳回延期 编号 理由\n"
    "· 催办 编号 —— 立即提醒承办单位\n"
    "· 满意 编号 ／ 不满意 编号 理由 —— 联络员逾期未确认时代为确认\n"
    "· 补充 编号 内容\n"
    "· 查询 编号／单位／项目／县区 —— 例如：查询 尧都区自然资源局、查询 物流园、查询 尧都区\n"
    "· 台账 —— 问题台账汇总和Excel导出方式"
)

HELP_UNIT_LEADER_NOTE = "分管领导可使用承办单位的全部指令；本单位问题超期时会收到提醒。"

HELP_PROJECT_LEADER = (
    "【项目包联领导】\n"
    "· 查询 编号 —— 查看包联项目问题的办理经过\n"
    "· 查询 —— 包联项目的未销号问题\n"
    "包联项目的问题升级督办时，您会收到通知。"
)

HELP_FOOTER = "发送 帮助 可随时查看本说明。"
HELP_TITLE = "使用帮助"

UNKNOWN_COMMAND = "没有识别“{text}”。{hint}发送 帮助 查看您可用的指令。"
UNKNOWN_COMMAND_HINT_UNIT = "办理问题请用“签收／反馈／办结 编号 …”等指令。"
UNKNOWN_COMMAND_HINT_OFFICE = "请用“交办／转办／查询 …”等指令。"

UNSUPPORTED_KIND = "暂不支持这类消息。请发送文字，或发送 帮助 查看用法。"
MEDIA_ONLY_LIAISON = "照片、语音和位置需附在问题上。"
ROLE_REFUSED = "“{command}”由{who}使用，您（{roles}）不能使用。{hint}"
ROLE_REFUSED_HINT = "发送 帮助 查看您可用的指令。"
ROLE_REFUSED_HINT_LIAISON = "如需反映问题，请直接发送文字描述。"
NO_ROLE = "您的账号尚未分配角色，请联系重点办。"


# -- ticket lookups ----------------------------------------------------------------

NOT_FOUND = "没有找到编号为 {number} 的问题，请核对编号（格式如 YD-2026-0001）。"
NOT_YOURS = "问题 {number} 不在您的查看范围内。"
NUMBER_REQUIRED = "请写明问题编号，例如：{example}"
NOTHING_FITTING = "您目前没有可{action}的问题。{hint}"
NOTHING_FITTING_HINT = "发送 待办 或 我的问题 查看。"
WHICH_ONE = "您有 {count} 件问题可{action}，请写明编号：{numbers}\n例如：{example}"


# -- the liaison's report ----------------------------------------------------------

NO_PROJECT = "您还没有关联重点项目，暂时无法提交问题。请联系属地重点办登记项目和联络员。"
CHOOSE_PROJECT_TITLE = "请选择项目"
CHOOSE_PROJECT = "您联系着 {count} 个项目，这个问题属于哪个项目？请点选，或回复序号：\n{lines}\n发送 取消 放弃提交。"
CHOOSE_PROJECT_AGAIN = "请先选择问题所属项目（点选或回复序号），或发送 取消 放弃提交。"
CHOOSE_PROJECT_NONE = "没有待选择项目的问题。如需反映问题，请直接发送文字描述。"
PROJECT_CHOICE_BAD = "没有找到这个项目，请点选下面的项目或回复序号。"

REPORT_TITLE = "问题已受理：{number}"
REPORT_UNDERSTOOD = "问题：{summary}"
REPORT_CATEGORY = "类别：{label}（依据：{words}）"
REPORT_CATEGORY_NO_WORDS = "类别：{label}"
REPORT_PROJECT = "项目：{project}"
REPORT_TIER = "类型：{tier}"
REPORT_TIER_WORDS = "类型：{tier}（依据：{words}）"
REPORT_DISPATCHED = "已交办：{unit}\n13710联系人：{contact}"
REPORT_DEADLINES = "时限：签收 {ack}；首次反馈 {feedback}；办结 {resolve}"
REPORT_TO_OFFICE = "该问题需由{office}确定承办单位，将在 {due} 前交办，届时通知您。"
REPORT_ATTACH_HINT = "10分钟内发送的照片、语音、位置将附到本问题；以后补充请发送：补充 {number} 内容。"

ATTACHED = "已将{kind}附到问题 {number}。"
ATTACHED_PENDING = "已收到{kind}，将附到您接下来提交的问题。请用文字描述问题；如是补充已有问题，请发送：补充 编号 说明。"
ATTACH_KIND = {"image": "照片", "voice": "语音", "file": "文件", "location": "位置"}
ATTACHED_NOTICE = "问题 {number} 的联络员补充了{kind}。发送 查询 {number} 查看。"

CANCELLED_CHOICE = "已取消，本次问题没有提交。"
CANCELLED_AFTER_REPORT = "好的。后续照片不再附到问题 {number}；问题照常办理。"
CANCELLED_REASON = "已取消，问题 {number} 没有变化。"
CANCELLED_COLLECT = "已取消，收到的照片不再保留。"
NOTHING_TO_CANCEL = "当前没有进行中的对话，无需取消。"

SUPPLEMENTED = "已补充到问题 {number}。"
SUPPLEMENT_NOTICE_TITLE = "问题补充：{number}"
SUPPLEMENT_NOTICE = "{who}补充了问题 {number} 的情况：\n{note}"
SUPPLEMENT_ATTACHMENTS = "（另附{count}个附件）"

MY_TICKETS_TITLE = "我的问题（未销号 {count} 件）"
MY_TICKETS_EMPTY = "您目前没有未销号的问题。有新问题请直接发送文字描述。"
LIST_LINE = "{heading} {status}{light}\n   {summary}\n   {unit}{due}"
LIST_DUE = "；{stage} {when}"
LIST_MORE = "……另有 {count} 件未列出。"
LIST_FOOTER = "发送 查询 编号 查看办理经过。"

DETAIL_TITLE = "{heading}（{status}）"
DETAIL_PROJECT = "项目：{project}（{office}）"
DETAIL_PROBLEM = "问题：{text}"
DETAIL_REPORTER = "联络员：{reporter}"
DETAIL_TIER = "类型：{tier}"
DETAIL_UNIT = "承办单位：{unit}；13710联系人：{contact}"
DETAIL_UNIT_NONE = "承办单位：待重点办交办"
DETAIL_DUE = "{stage}：{when}{light}"
DETAIL_PLAN = "书面方案：{text}（时间节点 {due}）"
FLAG_FIVE = "办法 {method}；责任单位 {unit}；责任领导 {leader}；责任人 {person}；期限 {due}"
DETAIL_FLAG = "挂牌督办：{five}"
DETAIL_EXTENSION = "延期申请：{days}天，理由：{reason}（待重点办审批）"
DETAIL_ATTACHMENTS = "附件：{items}"
DETAIL_RESOLUTION = "办结情况：{text}"
DETAIL_TIMELINE = "办理经过："
TIMELINE_LINE = "· {when} {who}{what}{note}"
TIMELINE_TO_UNIT = "{what}给{unit}"
ATTACH_COUNT = "{kind}{count}个"
SYSTEM_ACTOR = "系统"

# -- the unit's card and commands -------------------------------------------------

NEW_TICKET_TITLE = "{badge}新交办问题：{number}"
NEW_TICKET = (
    "项目：{project}（{level}，{office}）\n"
    "问题：{text}\n"
    "类型：{tier}\n"
    "联络员：{reporter}\n"
    "{attachments}"
    "签收期限：{ack}（事不过夜）\n"
    "首次反馈：{feedback}\n"
    "办结期限：{resolve}\n"
    "请点“签收”；如不属于本单位职责，请点“退回”并说明理由。"
)
NEW_TICKET_ATTACHMENTS = "附件：{count}个（发送 查询 {number} 查看）\n"
NEW_TICKET_REASSIGNED = "（由{office}转办，原因：{note}）\n"
ALSO_CONCERNS = "另涉及：{labels}（如需其他单位配合，请在反馈中说明）"
BUTTON_ACK = "签收"
BUTTON_RETURN = "退回"

ACKNOWLEDGED = "已签收 {number}。请在 {feedback} 前反馈进展，在 {resolve} 前办结。"
ACKNOWLEDGED_LATE = "（签收已超过期限 {due}，已记录。）"
FEEDBACK_DONE = "已反馈 {number} 的进展，联络员已收到。办结期限：{resolve}。"
FEEDBACK_FIRST = "（首次反馈，按期完成“3日反馈”。）"
RESOLVED_DONE = "已办结 {number}，已请联络员确认（{due} 前）。联络员不满意时会退回贵单位重新办理。"
RETURNED_DONE = "已退回 {number}，重点办将重新交办。"
EXTENSION_REQUESTED = "已向重点办申请 {number} 延期 {days} 天，审批结果会通知您。审批前请按原期限 {due} 推进。"
PLAN_DONE = "已报送 {number} 的书面方案，办结时间节点调整为 {due}。"

TODO_TITLE = "本单位待办（{count} 件）"
TODO_EMPTY = "本单位目前没有待办问题。"

ASK_REASON = {
    "退回": "请回复退回理由（例如：不属于本单位职责，建议交由某某单位办理）。发送 取消 放弃。",
    "不满意": "请回复不满意的理由，问题将退回承办单位重新办理。发送 取消 放弃。",
    "驳回延期": "请回复驳回延期的理由。发送 取消 放弃。",
}
ASK_REASON_TITLE = "{command} {number}"

# -- the reporter's notices ---------------------------------------------------------

TO_REPORTER_DISPATCHED_TITLE = "问题已交办：{number}"
TO_REPORTER_DISPATCHED = "您反映的问题已交{unit}办理。\n问题：{summary}\n13710联系人：{contact}\n办结期限：{resolve}"
TO_REPORTER_REASSIGNED_TITLE = "问题已转办：{number}"
TO_REPORTER_ACK = "问题 {number} 已由{unit}签收，正在办理。"
TO_REPORTER_FEEDBACK_TITLE = "办理进展：{number}"
TO_REPORTER_FEEDBACK = "{unit}反馈：{note}"
TO_REPORTER_PLAN = "{unit}报送了书面解决方案：{note}\n计划 {due} 前解决。"
TO_REPORTER_RESOLVED_TITLE = "{badge}请确认办结：{number}"
TO_REPORTER_RESOLVED = (
    "{unit}已办结您反映的问题。\n问题：{summary}\n办结情况：{note}\n"
    "请在 {due} 前确认：满意即销号；不满意请说明理由，将退回重新办理。"
)
BUTTON_SATISFIED = "满意"
BUTTON_UNSATISFIED = "不满意"

# -- confirm -----------------------------------------------------------------------

CLOSED_DONE = "问题 {number} 已销号。感谢您的确认！"
CLOSED_TO_UNIT = "问题 {number} 联络员确认满意，已销号。"
CLOSED_TO_UNIT_BY_OFFICE = "问题 {number} 经重点办确认，已销号。"
CLOSED_TO_REPORTER_BY_OFFICE = "您反映的问题 {number} 经重点办确认办结，已销号。"
REOPENED_DONE = "已将问题 {number} 退回{unit}重新办理，新的办结期限 {due}。"
REOPENED_TO_UNIT_TITLE = "{badge}重新办理：{number}"
REOPENED_TO_UNIT = "{who}对办理结果不满意，请重新办理。\n理由：{note}\n新的办结期限：{due}"
REOPENED_WHO_REPORTER = "联络员"
REOPENED_WHO_OFFICE = "重点办"

# -- office ------------------------------------------------------------------------

NEEDS_OFFICE_TITLE = "{badge}待交办：{number}"
NEEDS_OFFICE = (
    "项目：{project}（{level}）\n"
    "问题：{text}\n"
    "联络员：{reporter}\n"
    "类型：{tier}\n"
    "{why}\n"
    "交办期限：{due}\n"
    "{how}"
)
NEEDS_OFFICE_WHY_NONE = "系统未能判断承办单位。"
NEEDS_OFFICE_WHY_SEVERAL = "可能涉及多个单位：{labels}。"
NEEDS_OFFICE_WHY_UNSURE = "系统初判为{label}，把握不大。"
NEEDS_OFFICE_HOW_BUTTONS = "请点选承办单位，或发送：交办 {number} 单位名称"
NEEDS_OFFICE_HOW_TEXT = "请发送：交办 {number} 单位名称"

RETURNED_TITLE = "{badge}单位退回：{number}"
RETURNED_TO_OFFICE = (
    "{unit}退回了问题 {number}，理由：{note}\n"
    "项目：{project}\n问题：{text}\n"
    "请在 {due} 前重新交办。"
)

EXTENSION_TITLE = "{badge}延期申请：{number}"
EXTENSION_TO_OFFICE = (
    "{unit}申请将问题 {number} 延期 {days} 天。\n理由：{note}\n"
    "现办结期限：{due}；批准后延至：{new_due}\n"
    "项目：{project}\n问题：{summary}"
)
BUTTON_GRANT = "批准延期"
BUTTON_REFUSE = "驳回延期"

DISPATCHED_DONE = "已将 {number} 交办给{unit}（联系人：{contact}），签收期限 {ack}。"
REASSIGNED_DONE = "已将 {number} 转办给{unit}（联系人：{contact}），签收期限 {ack}。"
REASSIGNED_TO_OLD_UNIT = "问题 {number} 已由{office}转办给{unit}，贵单位无需继续办理。原因：{note}"
UNIT_NOT_FOUND = "没有找到单位“{text}”。请写单位全称，例如：{example}"
UNIT_AMBIGUOUS = "“{text}”对应多个单位：{names}。请写全称。"
UNIT_MISSING = "请写明承办单位，例如：{example}"
DISPATCH_ALREADY = "问题 {number} 已在{unit}办理（{status}）。如需更换单位，请用：转办 {number} 单位 理由"
REASSIGN_NOT_YET = "问题 {number} 还没有交办。请用：交办 {number} 单位"
NO_CONTACT = "（该单位尚未登记13710联系人）"

FLAG_DONE = "已对 {number} 挂牌督办：\n{detail}"
FLAG_TO_UNIT_TITLE = "【挂牌督办】{number}"
FLAG_TO_UNIT = "{office}对问题 {number} 挂牌督办：\n{detail}\n问题：{summary}\n请按期办结并及时反馈进展。"
FLAG_USAGE = "挂牌须五到位：挂牌 编号 办法 责任领导 责任人 期限\n例如：挂牌 {number} 专班协调用地报批 张副局长 李科长 2026-12-31"
FLAG_NEEDS_UNIT = "问题 {number} 还没有承办单位，请先交办，再挂牌督办（责任单位须明确）。"
UNFLAG_DONE = "已对 {number} 摘牌。"
UNFLAG_TO_UNIT = "问题 {number} 已由{office}摘牌。"

GRANT_DONE = "已批准 {number} 延期 {days} 天，办结期限延至 {due}。"
GRANT_TO_UNIT_TITLE = "延期已批准：{number}"
GRANT_TO_UNIT = "{office}批准问题 {number} 延期 {days} 天，办结期限延至 {due}。"
REFUSE_DONE = "已驳回 {number} 的延期申请，办结期限仍为 {due}。"
REFUSE_TO_UNIT_TITLE = "延期未获批准：{number}"
REFUSE_TO_UNIT = "{office}未批准问题 {number} 的延期申请。\n理由：{note}\n请按原期限 {due} 办结。"

URGE_DONE = "已向{unit}催办 {number}。"
URGE_TO_UNIT_TITLE = "{badge}催办：{number}"
URGE_TO_UNIT = "{office}催办问题 {number}（{status}）。\n问题：{summary}\n{due}\n请抓紧办理并及时反馈。"

QUERY_TITLE = "查询：{what}（未销号 {count} 件）"
QUERY_EMPTY = "“{what}”目前没有未销号问题。"
QUERY_NOTHING = "没有找到与“{text}”对应的问题、单位、项目或县区。可按编号、单位、项目或县区查询。"
QUERY_SCOPE_ALL = "本辖区"
QUERY_LED_PROJECTS = "包联项目"
QUERY_OUT_OF_SCOPE = "“{text}”不在您的辖区（{office}）。"

LEDGER_TITLE = "问题台账（{scope}）"
LEDGER_SUMMARY = (
    "未销号 {open} 件：待交办 {reported}，待签收 {dispatched}，办理中 {working}，待确认 {resolved}，已退回 {returned}\n"
    "其中超期 {overdue} 件，挂牌督办 {flagged} 件，待批延期 {extensions} 件\n"
    "已销号 {closed} 件"
)
LEDGER_FILE_NAME = "问题台账-{office}-{stamp}.xlsx"
LEDGER_EXPORT_FILE = "Excel台账已生成，见附件：{name}"
LEDGER_EXPORT_HOW = "Excel台账：请系统管理员在服务器上运行 kpbot ledger export 导出。"

# -- workflow refusals -------------------------------------------------------------

REFUSED_PREFIX = "未办理："

FORBIDDEN = "问题 {number} 不由您经办，不能{action}。{who}"
FORBIDDEN_WHO = "{action}需由{parties}办理。"

WRONG_STATE = "问题 {number} 当前{status}，不能{action}。{hint}"
WRONG_STATE_HINTS = {
    ("acknowledge", "acknowledged"): "已签收过，请直接反馈进展：反馈 {number} 进展",
    ("acknowledge", "in_progress"): "已在办理中，请直接反馈进展或办结。",
    ("resolve", "dispatched"): "请先签收：签收 {number}",
    ("resolve", "resolved"): "已办结，正等联络员确认。",
    ("confirm", "closed"): "问题已销号，无需再确认。",
    ("reopen", "closed"): "问题已销号。如有新问题，请直接发送文字描述。",
    ("dispatch", "dispatched"): "已交办。如需更换单位，请用：转办 {number} 单位 理由",
    ("dispatch", "acknowledged"): "已交办。如需更换单位，请用：转办 {number} 单位 理由",
    ("dispatch", "in_progress"): "已交办。如需更换单位，请用：转办 {number} 单位 理由",
}
WRONG_STATE_BY_MOVE = {
    "confirm": "承办单位办结后才能确认。",
    "reopen": "承办单位办结后才能提出不满意。",
    "resolve": "问题须在承办单位签收后、办结前才能办结。",
    "acknowledge": "只有新交办、尚未签收的问题需要签收。",
    "feedback": "问题须在本单位办理中才能反馈。",
    "submit_plan": "问题须在本单位办理中才能报送方案。",
    "return": "问题须在本单位办理中才能退回。",
    "request_extension": "问题须在本单位办理中才能申请延期。",
    "grant_extension": "问题须在承办单位办理中才能审批延期。",
    "refuse_extension": "问题须在承办单位办理中才能审批延期。",
    "urge": "只能催办在承办单位办理中的问题。",
    "reassign": "已销号的问题不能转办。",
    "flag": "已销号的问题不能挂牌。",
    "unflag": "已销号的问题不能摘牌。",
    "supplement": "已销号的问题不能补充。如有新问题，请直接发送文字描述。",
}

UNIT_REQUIRED = "请指定承办单位，例如：交办 {number} 尧都区自然资源局"
SAME_UNIT = "问题 {number} 已在该单位办理，无需转办。"
NOT_MAJOR = "书面方案适用于重大复杂问题；问题 {number} 为{tier}，请在办结期限内办结，确需更多时间请用：延期 {number} 天数 理由"
BAD_DATE = "时间节点须是今天以后的日期，格式如 2026-12-31 或 2026年12月31日。"
DATE_MISSING = "请在最后写明截止日期，例如：{example}"
NOTE_REQUIRED = {
    "feedback": "请写明进展，例如：反馈 {number} 已现场踏勘，正在协调",
    "submit_plan": "请写明方案内容和截止日期，例如：方案 {number} 分三步完成报批 2026-12-31",
    "resolve": "请写明办结情况，例如：办结 {number} 规划许可证已核发",
    "reopen": "请写明不满意的理由，例如：不满意 {number} 证件仍未拿到",
    "return": "请写明退回理由，例如：退回 {number} 不属于本单位职责",
    "request_extension": "请写明延期理由，例如：延期 {number} 5 需等待专家评审",
    "refuse_extension": "请写明驳回理由，例如：驳回延期 {number} 理由不充分，请按期办结",
    "reassign": "请写明转办理由，例如：转办 {number} 市规划和自然资源局 涉及市级审批权限",
    "supplement": "请写明补充内容，例如：补充 {number} 现场已停工两天",
}
EXTENSION_PENDING = "问题 {number} 已有一项延期申请等待重点办审批，请等待审批结果。"
BAD_DAYS = "延期天数应为 1 到 {max_days} 之间的整数，例如：延期 {number} 5 需等待专家评审"
NO_PENDING_EXTENSION = "问题 {number} 没有待审批的延期申请。"
FLAG_INCOMPLETE = "挂牌督办须五到位，还缺：{missing}。"
NOT_FLAGGED = "问题 {number} 没有挂牌，无需摘牌。"
REFUSED_UNKNOWN = "问题 {number} 暂时不能{action}（{code}）。请联系重点办。"


def numbered(lines: Sequence[str]) -> str:
    return "\n".join(f"{i}. {line}" for i, line in enumerate(lines, start=1))
