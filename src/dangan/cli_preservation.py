"""CLI of long-term preservation: `dangan fixity audit` (scheduled, bounded batches, repair from the replica)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from dangan.cli import JsonOpt, _open, _operator, _print_json, _table, command, err, fixity_app, out
from dangan.services import fixity_audit as audit_svc


def _short(d: dict[str, Any]) -> str:
    if d.get("size") is None:
        return "不存在"
    return f"{d['size']} 字节 SHA-256 {str(d.get('sha256', ''))[:12]}…"


def _progress(label: str, as_json: bool) -> Progress:
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), DownloadColumn(), TimeRemainingColumn(),
                    console=err, disable=as_json or not err.is_terminal)


@fixity_app.command("audit")
@command
def fixity_audit(
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="本批检测的文件数（默认按周期自动计算）")] = None,
    as_json: JsonOpt = False,
) -> None:
    """固化信息巡检：复核最久未检的一批文件，有备份存储时自动修复；仍有未修复的问题时退出码为 1。"""
    a = _open()
    with _progress("固化信息巡检", as_json) as prog:
        task = prog.add_task("audit", total=None)

        def progress(done: int, total: int, nbytes: int) -> None:
            prog.update(task, completed=done, total=total)

        rep = audit_svc.audit_batch(a, _operator(), limit=limit, progress=progress)
    if as_json:
        _print_json(rep)
    else:
        out.print(f"巡检 {rep['checked']} 个文件（共 {rep['total_files']} 个，本批 {rep['batch_size']} 个），"
                  f"读取 {rep['bytes_read'] / 1e6:.1f} MB；问题 {rep['drift']} 个，已修复 {rep['repaired']} 个，"
                  f"未修复 {rep['unrepaired']} 个（巡检批次 {rep['run_id']}）")
        if rep["findings"]:
            _table("有问题的文件", ["文件 ID", "档号", "文件名", "问题", "登记", "实际", "修复"],
                   [[f["file_id"], f["archival_code"], f["name"], f["outcome_label"], _short(f["expected"]),
                     _short(f["found"]), ("✓ " if f["repaired"] else "✗ ") + f["repair_note"]] for f in rep["findings"]])
        if rep["error"]:
            out.print(f"[bold red]✗ {rep['error']}[/]")
        if rep["unrepaired"]:
            out.print("[bold red]✗ 仍有未修复的问题[/]：请从其他备份恢复，或配置备份存储（DANGAN_REPLICA_STORAGE_URL）后再巡检")
        elif rep["drift"]:
            out.print("[green]✓ 发现的问题均已从备份存储修复并复核通过[/]")
        elif not rep["error"]:
            out.print("[green]✓ 本批文件全部完好[/]")
    if not rep["ok"]:
        raise typer.Exit(1)


@fixity_app.command("status")
@command
def fixity_status(as_json: JsonOpt = False) -> None:
    """固化信息巡检的进度：周期内已复核、逾期、从未复核的文件数，最近的检测批次，尚未解决的问题。"""
    st = audit_svc.audit_status(_open(), _operator())
    if as_json:
        return _print_json(st)
    out.print(f"电子文件 {st['files_total']} 个（{st['bytes_total'] / 1e6:.1f} MB）："
              f"周期内已复核 {st['verified_within_cycle']} 个，逾期 {st['overdue']} 个，从未复核 {st['never_verified']} 个"
              f"（复核周期 {st['cycle_days']} 天）")
    if st["scheduler_enabled"]:
        out.print(f"自动巡检：每 {st['interval_minutes']} 分钟一批，每批 {st['batch_size']} 个文件")
    else:
        out.print("自动巡检：已关闭（DANGAN_FIXITY_AUDIT_INTERVAL_MINUTES=0），可手动运行 dangan fixity audit")
    out.print(f"备份存储：{st['replica']['url'] or '未配置（发现问题时无法自动修复）'}")
    if st["last_runs"]:
        _table("最近的检测批次", ["批次", "类型", "开始（UTC）", "操作人", "检测", "问题", "已修复"],
               [[r["id"], "巡检" if r["kind"] == "audit" else "全面检测", (r["started_at"] or "")[:19], r["actor"],
                 r["checked"], r["failed"], r["repaired"]] for r in st["last_runs"]])
    if st["drift_outstanding"]:
        out.print(f"[bold red]尚未解决的问题 {st['drift_outstanding']} 个[/]")
        _table("尚未解决的问题", ["文件 ID", "档号", "文件名", "问题", "最近复核（UTC）", "说明"],
               [[d["file_id"], d["archival_code"], d["name"], d["outcome_label"], (d["last_fixity_at"] or "")[:19],
                 d["repair_note"]] for d in st["drift"]])
    else:
        out.print("[green]✓ 没有尚未解决的问题[/]")


@fixity_app.command("replicate")
@command
def fixity_replicate(as_json: JsonOpt = False) -> None:
    """把备份存储缺少的内容复制过去（首次建立第二份副本，或补齐）；主存储中已损坏的内容不会被复制。"""
    a = _open()
    with _progress("复制到备份存储", as_json) as prog:
        task = prog.add_task("replicate", total=None)

        def progress(done: int, total: int, nbytes: int) -> None:
            prog.update(task, completed=done, total=total)

        rep = audit_svc.replicate(a, _operator(), progress=progress)
    if as_json:
        _print_json(rep)
    else:
        out.print(f"备份存储 {rep['replica']}：共 {rep['total']} 份内容，已有 {rep['present']} 个，新复制 {rep['copied']} 个，"
                  f"替换损坏副本 {rep['replaced']} 个，复制 {rep['bytes_copied'] / 1e6:.1f} MB")
        if rep["source_bad"]:
            _table("主存储中已损坏、未复制的内容（请运行 dangan fixity audit）", ["存储键", "原因"],
                   [[b["key"], b["message"]] for b in rep["source_bad"]])
        if rep["failed"]:
            _table("复制失败", ["存储键", "原因"], [[b["key"], b["message"]] for b in rep["failed"]])
    if not rep["ok"]:
        raise typer.Exit(1)
