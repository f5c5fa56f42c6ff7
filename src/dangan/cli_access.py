"""CLI of 利用: `dangan request create|list|queue|approve|refuse|withdraw|lend|return|overdue|effect|register|rules`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dangan.cli import JsonOpt, _actor, _open, _print_json, _table, app, command, out
from dangan.services import requests as rq

request_app = typer.Typer(help="利用：查阅、借阅、复制、出证的申请与审批，纸质档案借还，利用登记", no_args_is_help=True)
app.add_typer(request_app, name="request")


def _line(v: dict) -> None:
    steps = "；".join(f"{s['role_label']}{('：' + s['decision_label']) if s['decision_label'] else ''}" for s in v["route"])
    out.print(f"[green]✓[/] 利用申请 #{v['id']}（{v['kind_label']}《{v['title']}》）：[bold]{v['status_label']}[/]"
              + (f"；审批：{steps}" if steps else "")
              + (f"；有效期至 {v['expires_at'][:10]}" if v["expires_at"] and v["status"] == "approved" else ""))


def _rows(items: list[dict]) -> list[list]:
    return [[v["id"], v["requester_name"], v["archival_code"] or f"#{v['record_id']}", v["title"], v["kind_label"],
             v["purpose"], f"{v['period_from']}～{v['period_to']}", v["status_label"],
             v["route"][v["current_step"]]["role_label"] if v["current_step"] is not None and v["route"] else ""]
            for v in items]


COLUMNS = ["编号", "利用者", "档号", "题名", "方式", "目的", "期限", "状态", "待谁审批"]


@request_app.command("create")
@command
def create(
    record_id: Annotated[int, typer.Argument(help="档案编号")],
    kind: Annotated[str, typer.Option("--kind", help="view 查阅 / borrow 借阅（纸质） / copy 复制 / certify 出具档案证明")] = "view",
    purpose: Annotated[str, typer.Option("--purpose", help="工作查考、编史修志、学术研究、经济建设、落实政策、个人取证、其他")] = "工作查考",
    note: Annotated[str, typer.Option("--note", help="目的说明（目的为“其他”时必填）")] = "",
    period_from: Annotated[str | None, typer.Option("--from", help="利用期限起，如 2025-03-01（默认今天）")] = None,
    period_to: Annotated[str | None, typer.Option("--to", help="利用期限止")] = None,
    as_json: JsonOpt = False,
) -> None:
    """提出利用申请。公开档案的查阅即时准予，其他按审批规则逐级审批。"""
    v = rq.create_request(_open(), _actor(), record_id, kind, purpose, note, period_from=period_from, period_to=period_to)
    _print_json(v) if as_json else _line(v)


@request_app.command("list")
@command
def list_(as_json: JsonOpt = False) -> None:
    """我的利用申请。"""
    items = rq.my_requests(_open(), _actor())
    if as_json:
        return _print_json(items)
    _table(f"我的利用申请（{len(items)} 项）", COLUMNS, _rows(items))


@request_app.command("queue")
@command
def queue(as_json: JsonOpt = False) -> None:
    """待我审批的利用申请。"""
    items = rq.approval_queue(_open(), _actor())
    if as_json:
        return _print_json(items)
    _table(f"待我审批（{len(items)} 项）", COLUMNS, _rows(items))


@request_app.command("approve")
@command
def approve(request_id: Annotated[int, typer.Argument(help="利用申请编号")],
            reason: Annotated[str, typer.Option("--reason", help="审批意见")] = "", as_json: JsonOpt = False) -> None:
    """同意当前审批步骤（须持有该步骤的角色，且不是申请人本人）。"""
    v = rq.approve(_open(), _actor(), request_id, reason)
    _print_json(v) if as_json else _line(v)


@request_app.command("refuse")
@command
def refuse(request_id: Annotated[int, typer.Argument(help="利用申请编号")],
           reason: Annotated[str, typer.Option("--reason", help="不同意的理由（必填）")] = "", as_json: JsonOpt = False) -> None:
    """不同意利用申请（须写明理由）。"""
    v = rq.refuse(_open(), _actor(), request_id, reason)
    _print_json(v) if as_json else _line(v)


@request_app.command("withdraw")
@command
def withdraw(request_id: Annotated[int, typer.Argument(help="利用申请编号")], as_json: JsonOpt = False) -> None:
    """撤回本人待审批的申请。"""
    v = rq.withdraw(_open(), _actor(), request_id)
    _print_json(v) if as_json else _line(v)


@request_app.command("lend")
@command
def lend(request_id: Annotated[int, typer.Argument(help="已准予的借阅申请编号")],
         due: Annotated[str | None, typer.Option("--due", help="应还日期（默认为利用期限止）")] = None,
         note: Annotated[str, typer.Option("--note", help="备注")] = "", as_json: JsonOpt = False) -> None:
    """借出纸质档案（专职档案员）。"""
    v = rq.lend(_open(), _actor(), request_id, due, note)
    if as_json:
        return _print_json(v)
    out.print(f"[green]✓[/] 已借出《{v['title']}》给 {v['requester_name']}，应于 {v['loan']['due_date']} 前归还")


@request_app.command("return")
@command
def return_(request_id: Annotated[int, typer.Argument(help="借阅申请编号")],
            note: Annotated[str, typer.Option("--note", help="备注，如 完好")] = "", as_json: JsonOpt = False) -> None:
    """归还纸质档案。"""
    v = rq.return_loan(_open(), _actor(), request_id, note)
    if as_json:
        return _print_json(v)
    out.print(f"[green]✓[/] 《{v['title']}》已归还")


@request_app.command("overdue")
@command
def overdue(soon: Annotated[int, typer.Option("--soon", help="一并列出几天内到期的")] = 0, as_json: JsonOpt = False) -> None:
    """逾期未还的纸质档案（催还）。"""
    items = rq.overdue(_open(), _actor(), soon_days=soon)
    if as_json:
        return _print_json(items)
    _table(f"逾期与将到期（{len(items)} 项）", ["编号", "借阅人", "档号", "题名", "应还", "提醒"],
           [[v["id"], v["requester_name"], v["archival_code"] or "", v["title"], v["loan"]["due_date"], v["reminder"]]
            for v in items])


@request_app.command("effect")
@command
def effect(request_id: Annotated[int, typer.Argument(help="利用申请编号")],
           result: Annotated[str, typer.Argument(help="利用效果：有效、一般、无效")],
           note: Annotated[str, typer.Option("--note", help="效果说明")] = "", as_json: JsonOpt = False) -> None:
    """登记利用效果。"""
    v = rq.record_effect(_open(), _actor(), request_id, result, note)
    _print_json(v) if as_json else out.print(f"[green]✓[/] 利用申请 #{v['id']} 的利用效果：{v['effect']}")


@request_app.command("register")
@command
def register(
    date_from: Annotated[str | None, typer.Option("--from", help="申请日期起")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="申请日期止")] = None,
    xlsx: Annotated[Path | None, typer.Option("--xlsx", help="导出为 Excel 文件")] = None,
    as_json: JsonOpt = False,
) -> None:
    """利用登记：每次利用的目的、期限、审批人与效果；--xlsx 导出登记表。"""
    a = _open()
    if xlsx is not None:
        xlsx.write_bytes(rq.register_xlsx(a, _actor(), date_from, date_to))
        out.print(f"[green]✓[/] 已导出利用登记表：{xlsx}")
        return
    reg = rq.register(a, _actor(), date_from, date_to)
    if as_json:
        return _print_json(reg)
    _table(f"利用登记（{reg['total']} 项）", ["序号", *[c for c, _ in rq.REGISTER_COLUMNS[1:]]],
           [rq.register_row(n, v) for n, v in enumerate(reg["items"], 1)])


@request_app.command("rules")
@command
def rules(as_json: JsonOpt = False) -> None:
    """现行的利用审批规则。"""
    r = rq.get_rules(_open(), _actor())
    if as_json:
        return _print_json(r)
    roles = r["roles"]

    def cond(v: object) -> str:
        return "不限" if v == "any" else "、".join(v)  # type: ignore[arg-type]

    _table("利用审批规则（符合的规则逐条累加审批步骤）", ["利用方式", "密级", "开放状态", "申请人部门", "审批步骤", "说明"],
           [[cond(x["kind"]), cond(x["security_levels"]), cond(x["open_status"]),
             {"same": "本部门", "other": "其他部门"}.get(x["requester_department"], "不限"),
             " → ".join(roles.get(s, s) for s in x["steps"]) or "无需审批", x["note"]] for x in r["rules"]])
    out.print("没有规则适用时：" + " → ".join(roles.get(s, s) for s in r["default_steps"]))
