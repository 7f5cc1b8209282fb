"""The routing table: every handler of the bot, in the order they are tried.

First match wins. Predicates only look at who is speaking, the conversation
state and the command word; the handlers check roles (with a clear refusal)
and everything about the ticket.
"""

from __future__ import annotations

from functools import partial


def setup_routes(router) -> None:
    from handlers import common, confirm, office, report, unit
    from handlers.common import command_of, in_state, is_plain_text

    def cmd(*words):
        return lambda ctx: command_of(ctx) in words

    def unknown(ctx):
        return ctx.person is None

    def media(ctx):
        return ctx.message.kind in report.MEDIA_KINDS

    def liaison_text(ctx):
        return is_plain_text(ctx) and ctx.has_role("liaison")

    def office_query(ctx):
        return command_of(ctx) == "查询" and ctx.has_role("office")

    choosing, waiting_reason = in_state(common.CHOOSE_PROJECT), in_state(common.AWAIT_REASON)
    reasons = {"退回": unit.return_ticket, "不满意": confirm.unsatisfied, "驳回延期": office.refuse_extension}

    table = [
        # who is speaking, and what they are in the middle of
        ("unknown person", unknown, common.unknown_person),
        ("取消", cmd("取消"), report.cancel),
        ("帮助", cmd("帮助"), common.show_help),
        ("选择项目 (button)", cmd("选择项目"), report.choose_project),
        ("project choice typed", lambda c: choosing(c) and is_plain_text(c), report.choose_project),
        ("reason for 退回/不满意/驳回延期", lambda c: waiting_reason(c) and is_plain_text(c),
         partial(common.give_reason, reasons)),
        ("photo / voice / file / location", media, report.attach),
        # liaison
        ("我的问题", cmd("我的问题"), report.my_tickets),
        ("补充", cmd("补充"), report.supplement),
        ("满意", cmd("满意"), confirm.satisfied),
        ("不满意", cmd("不满意"), confirm.unsatisfied),
        # handling unit
        ("签收", cmd("签收"), unit.acknowledge),
        ("反馈", cmd("反馈"), unit.feedback),
        ("办结", cmd("办结"), unit.resolve),
        ("退回", cmd("退回"), unit.return_ticket),
        ("延期", cmd("延期"), unit.request_extension),
        ("方案", cmd("方案"), unit.submit_plan),
        ("待办", cmd("待办"), unit.todo),
        # office
        ("交办", cmd("交办"), office.dispatch),
        ("转办", cmd("转办"), office.reassign),
        ("挂牌", cmd("挂牌"), office.flag),
        ("摘牌", cmd("摘牌"), office.unflag),
        ("批准延期", cmd("批准延期"), office.grant_extension),
        ("驳回延期", cmd("驳回延期"), office.refuse_extension),
        ("催办", cmd("催办"), office.urge),
        ("台账", cmd("台账"), office.ledger),
        ("查询 (office: number, unit, project, county)", office_query, office.query),
        ("查询 (a ticket one may see)", cmd("查询"), report.query),
        # anything else
        ("new report (liaison's free text)", liaison_text, report.new_report),
        ("unknown command", lambda c: True, common.unknown_command),
    ]
    for name, predicate, handler in table:
        router.add(name, predicate, handler)
