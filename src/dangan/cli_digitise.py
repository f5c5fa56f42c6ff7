"""CLI of 数字化: `dangan scan import|list|show|qc|sample|rescan|blank|accept|report` and `dangan ocr`.

`dangan ocr FILE` reads one image or scanned PDF and touches no archive: it needs neither a login nor a data
folder; with --pdf/--ofd it also writes that file's searchable PDF/A and/or OFD access copy. Everything else acts on the archive as the logged-in user (--user / --token), like `dangan import`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from dangan.cli import JsonOpt, _actor, _open, _print_json, _table, app, command, err, out
from dangan.errors import DanganError, ValidationFailed
from dangan.services import digitise as dg
from dangan.services import jobs

scan_app = typer.Typer(help="数字化（DA/T 31）：导入扫描件、质量检查、返工、抽检、挂接", no_args_is_help=True)
app.add_typer(scan_app, name="scan")

BatchArg = Annotated[int, typer.Argument(help="数字化批次编号")]


def _progress(label: str, as_json: bool) -> tuple[Progress, Any]:
    prog = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=err, disable=as_json or not err.is_terminal)
    task = prog.add_task(label, total=None)

    def step(n: int, total: int) -> None:
        prog.update(task, completed=n, total=total or None)

    return prog, step


def _run_job(a: Any, jid: str, work: Any) -> dict[str, Any]:
    view = jobs.run(a, jid, work)
    if view["status"] != "done":
        e = view.get("error") or {}
        raise DanganError(e.get("message", "任务失败"), code=e.get("code", "JOB_FAILED"))
    return view["result"]


def print_issues(v: dict[str, Any]) -> None:
    issues = v.get("issues") or []
    block = [i for i in issues if i["severity"] == "block"]
    warn = [i for i in issues if i["severity"] != "block"]
    if not issues:
        out.print("[green]✓[/] 没有待解决的问题，可以挂接")
        return
    if block:
        _table(f"阻止挂接的问题（{len(block)} 个；可放行的用 --override 键 并写明 --reason）", ["键", "问题", "可放行"],
               [[i["key"], i["message"], "是" if i["overridable"] else "否"] for i in block[:200]])
    if warn:
        _table(f"提示（{len(warn)} 个，不阻止挂接）", ["键", "说明"], [[i["key"], i["message"]] for i in warn[:50]])


def print_batch(v: dict[str, Any]) -> None:
    c = v["counts"]
    scope = " / ".join(str(x) for x in (v["fonds_code"], v["category_code"], v["year"]) if x)
    out.print(f"[bold]数字化批次 #{v['id']}[/] {v['name']}  [{v['status_label']}]  范围：{scope}", highlight=False)
    out.print(f"文件 {v['summary'].get('files', 0)} 个，当前 {c['pages']} 页，挂接 {c['records']} 件；"
              f"未检查 {c['pending']} 页，待返工 {c['failing']} 页，已返工替换 {c['replaced']} 页，已 OCR {c['ocr']} 页",
              highlight=False)
    ins = v.get("inspection_state") or {}
    if ins.get("drawn"):
        rate = f"{ins['rate']:.1%}" if ins["rate"] is not None else "—"
        out.print(f"抽检第 {ins['round']} 轮：抽 {ins['sampled']} 页，已判定 {ins['checked']} 页，合格率 {rate}"
                  f"（要求 ≥ {ins['pass_mark']:.0%}），结论：{ins['verdict'] or '未完成'}", highlight=False)
    if v.get("summary", {}).get("skipped"):
        out.print(f"[yellow]未导入的文件 {v['summary']['skipped_count']} 个，如："
                  + "、".join(s["name"] for s in v["summary"]["skipped"][:5]) + "[/]", highlight=False)


@scan_app.command("import")
@command
def scan_import(
    source: Annotated[Path, typer.Argument(help="扫描件所在的文件夹或 ZIP：<档号>-<页号>.jpg、<档号>/<页号>.tif 或 <档号>.tif")],
    fonds: Annotated[str, typer.Option("--fonds", help="全宗号（按档号在该全宗内挂接）")] = "Z109",
    category: Annotated[str | None, typer.Option("--category", help="门类代码：本批次的范围（列出著录了页数却没有扫描件的档案）")] = None,
    year: Annotated[int | None, typer.Option("--year", help="年度：本批次的范围")] = None,
    device: Annotated[str, typer.Option("--device", help="扫描设备（DA/T 46 数字化属性），如 Fujitsu fi-7160")] = "",
    software: Annotated[str, typer.Option("--software", help="扫描软件，如 PaperStream Capture 3.0")] = "",
    name: Annotated[str, typer.Option("--name", help="批次名称")] = "",
    as_json: JsonOpt = False,
) -> None:
    """导入一批扫描件：原件即时写入存储（SHA-256 与 SM3），按档号挂接到档案，并列出不一致之处。"""
    a = _open()
    actor = _actor(a)
    if not source.exists():
        raise ValidationFailed(f"“{source}”不存在", code="FILE_MISSING")
    prog, step = _progress("写入原件", as_json)
    with prog, contextlib.ExitStack() as stack:
        if source.is_file():
            from dangan.capture.zipsafe import SafeZip

            zf = stack.enter_context(SafeZip(source))
            sources, skipped = dg.sources_from_zip(zf)
        else:
            sources, skipped = dg.sources_from_dir(source)
        v = dg.import_batch(a, actor, sources, fonds=fonds, category=category, year=year, device=device,
                            software=software, name=name or source.name, skipped=skipped, progress=step)
    if as_json:
        return _print_json(v)
    print_batch(v)
    print_issues(v)
    out.print(f"下一步：dangan scan qc {v['id']}（图像质量检查）")


@scan_app.command("list")
@command
def scan_list(as_json: JsonOpt = False, limit: Annotated[int, typer.Option("--limit")] = 50) -> None:
    """列出数字化批次（最新在前）。"""
    rows = dg.list_batches(_open(), _actor(), limit=limit)
    if as_json:
        return _print_json(rows)
    _table("数字化批次", ["编号", "名称", "全宗", "状态", "页数", "挂接档案", "待返工", "未检查", "已 OCR", "导入人", "导入时间"],
           [[b["id"], b["name"], b["fonds_code"], b["status_label"], b["counts"]["pages"], b["counts"]["records"],
             b["counts"]["failing"], b["counts"]["pending"], b["counts"]["ocr"], b["created_by"],
             (b["created_at"] or "")[:16]] for b in rows])


@scan_app.command("show")
@command
def scan_show(batch: BatchArg, pages: Annotated[bool, typer.Option("--pages", help="列出每一页")] = False,
              as_json: JsonOpt = False) -> None:
    """查看批次：计数、待解决的问题（挂接前必须解决或放行）、待返工的页、抽检。"""
    v = dg.get_batch(_open(), _actor(), batch)
    if as_json:
        return _print_json(v)
    print_batch(v)
    print_issues(v)
    if v["outstanding"]:
        _table("待返工的页（dangan scan rescan 批次 页面编号 新扫描件）", ["页面编号", "档号", "页号", "文件", "问题"],
               [[p["id"], p["archival_code"], p["page_no"], p["file_name"],
                 "；".join(f["message"] for f in p["flags"] if f["severity"] == "fail") or
                 (f"抽检不合格：{p['sample_note']}" if p["sample_verdict"] == "不合格" else "")]
                for p in v["outstanding"]])
    if pages:
        _table("页面", ["页面编号", "档号", "页号", "文件", "分辨率", "色彩", "压缩", "质检", "抽检", "OCR"],
               [[p["id"], g["archival_code"], p["page_no"], p["file_name"], p["dpi"] or "", p["colour"],
                 p["compression"], p["qc_label"], p["sample_verdict"] or ("待判定" if p["sampled"] else ""),
                 "✓" if p["ocr_done"] else ""] for g in v["groups"] for p in g["pages"]])


@scan_app.command("qc")
@command
def scan_qc(batch: BatchArg, redo: Annotated[bool, typer.Option("--all", help="按当前阈值重新检查全部页面")] = False,
            report: Annotated[Path | None, typer.Option("--report", help="把质量检查报告写到 .xlsx 文件")] = None,
            as_json: JsonOpt = False) -> None:
    """图像质量检查：分辨率、空白页、倾斜、黑边、重复页、无法读取；记录每页的数字化属性。"""
    a = _open()
    actor = _actor(a)
    jid = dg.prepare_qc(a, actor, batch, redo=redo)
    prog, step = _progress("质量检查", as_json)
    with prog:
        res = _run_job(a, jid, dg.qc_work(a, actor, batch, redo=redo, on_step=step))
    v = dg.get_batch(a, actor, batch)
    if report is not None:
        report.write_bytes(dg.report_xlsx(a, actor, batch))
    if as_json:
        return _print_json({"result": res, "batch": v})
    out.print(f"[green]✓[/] 检查 {res['checked']} 页：待返工 {res['failing']} 页，重复页 {res['duplicates']} 页")
    print_batch(v)
    print_issues(v)
    if report is not None:
        out.print(f"质量检查报告：{report}")


@scan_app.command("sample")
@command
def scan_sample(
    batch: BatchArg,
    rate: Annotated[str | None, typer.Option("--rate", help="抽检比例，如 5%（默认 5%，至少 1 页）")] = None,
    pass_mark: Annotated[str | None, typer.Option("--pass-mark", help="合格率要求，如 95%")] = None,
    page: Annotated[int | None, typer.Option("--page", help="判定一页：页面编号")] = None,
    verdict: Annotated[str | None, typer.Option("--verdict", help="合格 或 不合格")] = None,
    note: Annotated[str, typer.Option("--note", help="不合格的原因")] = "",
    seed: Annotated[int | None, typer.Option("--seed", hidden=True)] = None,
    as_json: JsonOpt = False,
) -> None:
    """抽检：不带 --page 时按比例抽取页面（新一轮）；带 --page 和 --verdict 时判定一页。"""
    a = _open()
    actor = _actor(a)
    if page is not None:
        if not verdict:
            raise ValidationFailed("判定一页时请用 --verdict 合格 或 --verdict 不合格", code="BAD_VERDICT")
        v = dg.mark_sample(a, actor, batch, page, verdict, note)
    else:
        v = dg.draw_sample(a, actor, batch, rate=rate, pass_mark=pass_mark, seed=seed)
    if as_json:
        return _print_json(v)
    print_batch(v)
    _table("抽检样本", ["页面编号", "档号", "页号", "文件", "结论", "说明"],
           [[p["id"], p["archival_code"], p["page_no"], p["file_name"], p["sample_verdict"] or "待判定",
             p["sample_note"]] for p in v["sample"]])


@scan_app.command("rescan")
@command
def scan_rescan(batch: BatchArg, page: Annotated[int, typer.Argument(help="要替换的页面编号")],
                file: Annotated[Path, typer.Argument(help="重新扫描的图像（1 页）")], as_json: JsonOpt = False) -> None:
    """返工：用重新扫描的图像替换一页（原来的原件保留，标为已替换，不会删除）。"""
    if not file.is_file():
        raise ValidationFailed(f"文件“{file}”不存在", code="FILE_MISSING")
    a = _open()
    p = dg.rescan_page(a, _actor(a), batch, page, dg.ScanSource(file.name, lambda: file.open("rb")))
    if as_json:
        return _print_json(p)
    out.print(f"[green]✓[/] 第 {p['page_no']} 页（{p['archival_code']}）已替换为页面 #{p['id']}：质检 {p['qc_label']}"
              + ("，" + "；".join(f["message"] for f in p["flags"]) if p["flags"] else ""), highlight=False)


@scan_app.command("blank")
@command
def scan_blank(batch: BatchArg, page: Annotated[int, typer.Argument(help="页面编号")],
               undo: Annotated[bool, typer.Option("--undo", help="取消空白页标记")] = False,
               note: Annotated[str, typer.Option("--note", help="说明")] = "") -> None:
    """标记原件确为空白的页（如空白背面）：不再作为“空白页”返工。"""
    p = dg.declare_blank(_open(), _actor(), batch, page, not undo, note)
    out.print(f"[green]✓[/] 页面 #{p['id']} {'已标记为空白页' if p['declared_blank'] else '已取消空白页标记'}，质检 {p['qc_label']}")


@scan_app.command("accept")
@command
def scan_accept(
    batch: BatchArg,
    override: Annotated[list[str] | None, typer.Option("--override", help="放行一个问题（其键见 dangan scan show），可重复")] = None,
    reason: Annotated[str, typer.Option("--reason", help="放行的原因（放行时必填）")] = "",
    as_json: JsonOpt = False,
) -> None:
    """挂接：扫描件作为档案的“扫描件”文件、PDF/A 作为“版式文件”、OCR 全文进入检索。有未解决的问题时拒绝。"""
    a = _open()
    res = dg.accept_batch(a, _actor(a), batch, overrides=override or [], reason=reason)
    if as_json:
        return _print_json(res)
    out.print(f"[green]✓[/] 数字化批次 #{batch} 已挂接：{res['records']} 件档案，新增电子文件 {res['files']} 个"
              + (f"；放行 {len(res['batch']['overrides'])} 个问题" if res["batch"]["overrides"] else ""))


@scan_app.command("report")
@command
def scan_report(batch: BatchArg, path: Annotated[Path, typer.Argument(help="报告文件（.xlsx）")]) -> None:
    """导出质量检查报告（Excel）：概况、待解决问题、每页的质检结论与数字化属性。"""
    if path.suffix.lower() != ".xlsx":
        raise ValidationFailed("报告文件的扩展名应为 .xlsx", code="BAD_REPORT_NAME")
    a = _open()
    path.write_bytes(dg.report_xlsx(a, _actor(a), batch))
    out.print(f"质量检查报告：{path}")


@app.command("ocr")
@command
def ocr_cmd(
    file: Annotated[Path | None, typer.Argument(help="一个图像或扫描 PDF：打印其文字（不需要登录，不改动档案）")] = None,
    batch: Annotated[int | None, typer.Option("--batch", help="识别一个数字化批次，并生成每件档案的 PDF/A 利用副本")] = None,
    redo: Annotated[bool, typer.Option("--all", help="重新识别批次的全部页面")] = False,
    workers: Annotated[int | None, typer.Option("--workers", help="并行的进程数（默认为 CPU 核数）")] = None,
    pdf: Annotated[Path | None, typer.Option("--pdf", help="把该文件的可检索 PDF/A 利用副本写到此文件（.pdf）")] = None,
    ofd: Annotated[Path | None, typer.Option("--ofd", help="把该文件的可检索 OFD 利用副本写到此文件（.ofd）")] = None,
    as_json: JsonOpt = False,
) -> None:
    """OCR 文字识别（离线，rapidocr）。--json 给出每行文字及其位置（像素，左上角为原点）。"""
    if (file is None) == (batch is None):
        raise ValidationFailed("请给出一个文件，或用 --batch 指定数字化批次", code="BAD_ARGUMENT")
    if batch is not None and (pdf is not None or ofd is not None):
        raise ValidationFailed("--pdf、--ofd 只用于单个文件；批次的利用副本在挂接时加入档案", code="BAD_ARGUMENT")
    if file is not None and (pdf is not None or ofd is not None):
        pages = dg.access_copies(file, pdf=pdf, ofd=ofd)
        if as_json:
            return _print_json(pages)
        for p in pages:
            if len(pages) > 1:
                out.print(f"[dim]—— 第 {p['page']} 页 ——[/]")
            print(p["text"])
        for target, label in ((pdf, "PDF/A"), (ofd, "OFD")):
            if target is not None:
                out.print(f"[green]✓[/] 可检索的 {label} 利用副本：{target}")
        return
    if file is not None:
        pages = dg.ocr_file(file)
        if as_json:
            return _print_json(pages)
        for p in pages:
            if len(pages) > 1:
                out.print(f"[dim]—— 第 {p['page']} 页 ——[/]")
            print(p["text"])
        return
    assert batch is not None
    a = _open()
    actor = _actor(a)
    jid = dg.prepare_ocr(a, actor, batch, redo=redo)
    prog, step = _progress("OCR 识别", as_json)
    with prog:
        res = _run_job(a, jid, dg.ocr_work(a, actor, batch, redo=redo, workers=workers, on_step=step))
    if as_json:
        return _print_json(res)
    per = f"，平均 {res['seconds_per_page']} 秒/页" if res["seconds_per_page"] else ""
    ofds = f"，OFD 利用副本 {res['ofds']} 份" if res.get("ofds") else ""
    out.print(f"[green]✓[/] 识别 {res['pages']} 页（{res['workers']} 个进程{per}），共 {res['chars']} 字；"
              f"生成 PDF/A 利用副本 {res['pdfs']} 份{ofds}")
