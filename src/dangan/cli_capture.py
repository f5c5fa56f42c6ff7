"""CLI for capture and arrangement: `dangan import | submit | accept | catalogue | plan | schedule | stamp`."""

from __future__ import annotations

import shutil
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
from dangan.services import capture, imports, jobs, outputs, prefiling, schedule
from dangan.services.records import RecordFilter

plan_app = typer.Typer(help="年度归档计划", no_args_is_help=True)
schedule_app = typer.Typer(help="归档范围和保管期限表", no_args_is_help=True)
app.add_typer(plan_app, name="plan")
app.add_typer(schedule_app, name="schedule")

FondsOpt = Annotated[str, typer.Option("--fonds", help="全宗号")]
CategoryOpt = Annotated[str, typer.Option("--category", help="门类代码，如 WS")]


@app.command("import")
@command
def import_(
    catalogue: Annotated[Path, typer.Argument(help="归档文件目录（Excel .xlsx）")],
    files: Annotated[Path | None, typer.Option("--files", help="电子文件所在文件夹或 ZIP（按文件名或档号挂接）")] = None,
    fonds: FondsOpt = "Z109",
    category: CategoryOpt = "WS",
    department: Annotated[str | None, typer.Option("--department", help="目录中没有“机构”列时使用的机构代码")] = None,
    state: Annotated[str, typer.Option("--state", help="导入后的状态：pre_filing 预归档、pending 待归档、filed 已归档")] = "pre_filing",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="只校验，生成报告，不入库")] = False,
    report: Annotated[Path | None, typer.Option("--report", help="校验报告（.xlsx）写到哪里")] = None,
    as_json: JsonOpt = False,
) -> None:
    """批量导入档案目录与电子文件。中断后再次运行同一命令即可继续：已导入的行不会重复导入。"""
    a = _open()
    actor = _actor(a)
    if not catalogue.is_file():
        raise ValidationFailed(f"目录文件“{catalogue}”不存在", code="FILE_MISSING")
    if dry_run and report is None:
        report = catalogue.with_name(catalogue.stem + "-校验报告.xlsx")
    spec = imports.ImportSpec(fonds, category, catalogue.resolve(), files.resolve() if files else None,
                              department=department, state=state)
    jid = jobs.create_job(a, actor, "dry_run" if dry_run else "import", spec.as_params())
    with Progress(TextColumn("试导入" if dry_run else "导入"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("新增 {task.fields[created]} 已存在 {task.fields[existing]} 失败 {task.fields[failed]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=err,
                  disable=as_json or not err.is_terminal) as prog:
        task = prog.add_task("import", total=None, created=0, existing=0, failed=0)

        def work(p: jobs.Progress) -> dict[str, Any]:
            def step(v: dict[str, Any]) -> None:
                p.update(**v)
                prog.update(task, completed=v["processed"], total=v["total"] or None, created=v["created"],
                            existing=v["existing"], failed=v["failed"])

            res = imports.run_import(a, actor, spec, dry_run=dry_run, report=report, progress=step)
            return res.as_dict()

        view = jobs.run(a, jid, work)
    if view["status"] != "done":
        e = view["error"] or {}
        raise DanganError(e.get("message", "导入失败"), code=e.get("code", "IMPORT_FAILED"))
    res = view["result"]
    if as_json:
        _print_json({"job": jid, **res})
        if res["failed"]:
            raise typer.Exit(1)
        return
    verb = "校验" if dry_run else "导入"
    out.print(f"{verb} {res['rows']} 行：" + (f"通过 {res['passed']}，" if dry_run else
                                            f"新增 {res['created']}，已存在（跳过）{res['existing']}，")
              + f"有问题 {res['failed']}；电子文件 {res['files']} 个（任务 {jid}）")
    if res["unknown_columns"]:
        out.print(f"[yellow]未识别的列（已忽略）：{'、'.join(res['unknown_columns'])}[/]")
    if res["unlinked_files"]:
        out.print(f"[yellow]没有挂接到任何条目的文件 {res['unlinked_files']} 个，如：{'、'.join(res['unlinked_examples'][:5])}[/]")
    if res["failures"]:
        _table("有问题的行（前 20 行）", ["行号", "问题"], [[f["row"], "；".join(f["problems"])] for f in res["failures"][:20]])
    if res.get("report"):
        out.print(f"校验报告：{res['report']}")
    if res["failed"]:
        raise typer.Exit(1)


@app.command("submit")
@command
def submit(
    package: Annotated[Path, typer.Argument(help="数据包（ZIP，含 manifest.json）或 DA/T 48 封装包（.xml）")],
    category: Annotated[str | None, typer.Option("--category", help="封装包接收到的门类（EEP 必填）")] = None,
    fonds: Annotated[str | None, typer.Option("--fonds", help="全宗号（EEP 默认取包内全宗号）")] = None,
    department: Annotated[str | None, typer.Option("--department", help="机构代码（EEP 默认取包内机构或问题）")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="只校验（ZIP 数据包）")] = False,
    as_json: JsonOpt = False,
) -> None:
    """提交数据包或封装包：整包校验，有任何问题则不接收，并逐项列出；重复提交不会产生第二份。"""
    a = _open()
    actor = _actor(a)
    if not package.is_file():
        raise ValidationFailed(f"“{package}”不存在", code="FILE_MISSING")
    if package.suffix.lower() == ".xml":
        v = capture.submit_eep(a, actor, package, category=category, fonds=fonds, department=department)
        if as_json:
            _print_json(v)
        else:
            out.print(f"[green]✓[/] 已接收：{v['title']}（ID {v['id']}，{v['state_label']}，{len(v.get('files', []))} 个文件）")
        return
    res = capture.submit_package(a, actor, package, dry_run=dry_run)
    if as_json:
        _print_json(res)
    elif dry_run:
        out.print(f"[green]✓[/] 校验通过：{res['records']} 件档案，{res['files']} 个文件（未接收）")
    else:
        out.print(f"[green]✓[/] 新增 {res['created']} 件，已存在 {res['existing']} 件，电子文件 {res['files']} 个")


@app.command("accept")
@command
def accept(
    ids: Annotated[list[int] | None, typer.Argument(help="要接收的档案 ID（可多个）")] = None,
    all_pending: Annotated[bool, typer.Option("--all", help="接收全部待归档档案（可配合 --fonds/--category/--department）")] = False,
    fonds: Annotated[str | None, typer.Option("--fonds")] = None,
    category: Annotated[str | None, typer.Option("--category")] = None,
    department: Annotated[str | None, typer.Option("--department")] = None,
    as_json: JsonOpt = False,
) -> None:
    """接收归档：按整理顺序赋予档号，逐件报告未接收的原因；有未接收的档案时退出码为 1。"""
    a = _open()
    actor = _actor(a)
    record_ids = list(ids or [])
    if all_pending:
        q = prefiling.queue(a, actor, fonds, category, department, limit=prefiling.MAX_BATCH)
        record_ids += [r["id"] for r in q["items"]]
    if not record_ids:
        raise ValidationFailed("请给出档案 ID，或用 --all 接收全部待归档档案", code="NOTHING_SELECTED")
    with Progress(TextColumn("接收归档"), BarColumn(), MofNCompleteColumn(), console=err,
                  disable=as_json or not err.is_terminal) as prog:
        task = prog.add_task("accept", total=len(record_ids))
        res = prefiling.accept(a, actor, record_ids, progress=lambda n, t: prog.update(task, completed=n, total=t))
    if as_json:
        _print_json(res)
    else:
        if res["accepted"]:
            _table(f"已接收 {len(res['accepted'])} 件", ["ID", "档号", "题名"],
                   [[x["id"], x["archival_code"], x["title"]] for x in res["accepted"]])
        if res["refused"]:
            _table(f"未接收 {len(res['refused'])} 件", ["ID", "原因"],
                   [[x["id"], f"[{x['code']}] {x['message']}"] for x in res["refused"]])
    if res["refused"]:
        raise typer.Exit(1)


@app.command("catalogue")
@command
def catalogue(
    output: Annotated[Path, typer.Option("--output", "-o", help="输出文件（.xlsx 或 .pdf）")],
    fonds: FondsOpt = "Z109",
    category: Annotated[str | None, typer.Option("--category")] = None,
    year: Annotated[int | None, typer.Option("--year")] = None,
    retention: Annotated[str | None, typer.Option("--retention", help="保管期限：Y、D30、D10")] = None,
    department: Annotated[str | None, typer.Option("--department")] = None,
) -> None:
    """输出归档文件目录（Excel 或 A4 横向 PDF），按档号排列，只含本人有权查看的已归档档案。"""
    a = _open()
    fmt = output.suffix.lower().lstrip(".")
    flt = RecordFilter(fonds=fonds, category=category, year=year, retention_period=retention, department=department,
                       level="item")
    stream, _, _ = outputs.catalogue(a, _actor(a), flt, fmt)
    with open(output, "wb") as f:
        shutil.copyfileobj(stream, f)
    out.print(f"[green]✓[/] 已输出 {output}")


@app.command("stamp")
@command
def stamp(
    record: Annotated[int, typer.Argument(help="档案 ID")],
    output: Annotated[Path, typer.Option("--output", "-o", help="输出文件：.png / .pdf 为归档章；配合 --file 为加盖归档章的 PDF 副本")],
    file_id: Annotated[int | None, typer.Option("--file", help="在这个 PDF 文件的副本首页加盖归档章（原件不变）")] = None,
) -> None:
    """归档章：打印用的图像/PDF，或加盖在 PDF 副本首页。"""
    a = _open()
    actor = _actor(a)
    if file_id is not None:
        stream, _ = outputs.stamped_copy(a, actor, file_id)
        with open(output, "wb") as f:
            shutil.copyfileobj(stream, f)
    else:
        data, _ = outputs.stamp(a, actor, record, output.suffix.lower().lstrip(".") or "png")
        output.write_bytes(data)
    out.print(f"[green]✓[/] 已输出 {output}")


@plan_app.command("list")
@command
def plan_list(year: Annotated[int | None, typer.Option("--year")] = None, as_json: JsonOpt = False) -> None:
    """归档计划与进度。"""
    a = _open()
    plans = prefiling.list_plans(a, _actor(a), year=year)
    if as_json:
        _print_json(plans)
        return
    _table("年度归档计划", ["ID", "机构", "门类", "年度", "截止", "应归档", "待归档", "已归档", "状态"],
           [[p["id"], p["department_name"], p["category_name"], p["year"], p["deadline"], p["expected_count"] or "",
             p["counts"]["pending"], p["counts"]["filed"], p["status_label"]] for p in plans])


@plan_app.command("create")
@command
def plan_create(
    department: Annotated[str, typer.Option("--department", help="机构代码")],
    year: Annotated[int, typer.Option("--year")],
    deadline: Annotated[str, typer.Option("--deadline", help="截止日期，如 2025-03-31")],
    fonds: FondsOpt = "Z109",
    category: CategoryOpt = "WS",
    expected: Annotated[int | None, typer.Option("--expected", help="应归档件数")] = None,
    note: Annotated[str, typer.Option("--note")] = "",
    as_json: JsonOpt = False,
) -> None:
    """制定年度归档计划。"""
    a = _open()
    p = prefiling.create_plan(a, _actor(a), fonds, department, category, year, deadline, expected, note)
    _print_json(p) if as_json else out.print(f"[green]✓[/] 已制定：{p['department_name']} {p['year']} 年度{p['category_name']}，"
                                             f"截止 {p['deadline']}")


@schedule_app.command("show")
@command
def schedule_show(fonds: FondsOpt = "Z109", category: CategoryOpt = "WS", as_json: JsonOpt = False) -> None:
    """查看门类的归档范围和保管期限表。"""
    a = _open()
    s = schedule.get_schedule(a, _actor(a), fonds, category)
    if as_json:
        _print_json(s)
        return
    _table(f"{s['category_name']} 归档范围和保管期限表", ["#", "条目", "保管期限", "关键词", "依据"],
           [[i, r["item"], r["retention_period"], "、".join(r.get("keywords", [])), r.get("basis", "")]
            for i, r in enumerate(s["rules"], 1)])
