"""CLI of the 四性检测 and packages: `dangan check`, `dangan check-scheme`, `dangan package export|import`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dangan.cli import JsonOpt, _open, _operator, _print_json, _table, app, command, err, out
from dangan.errors import ValidationFailed
from dangan.services import checks as check_svc

package_app = typer.Typer(help="封装包：导出 DA/T 48 封装包与 BagIt 包，导入（先做移交与接收检测）", no_args_is_help=True)
scheme_app = typer.Typer(help="四性检测方案", no_args_is_help=True)
app.add_typer(package_app, name="package")
app.add_typer(scheme_app, name="check-scheme")

StageOpt = Annotated[str, typer.Option("--stage", help="检测环节：归档、移交（移交与接收）、长期保存")]


def _progress(as_json: bool) -> tuple[Progress, Any]:
    prog = Progress(TextColumn("{task.fields[phase]}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, disable=as_json or not err.is_terminal)
    task = prog.add_task("check", total=None, phase="读取电子文件")

    def step(phase: str, n: int, total: int) -> None:
        prog.update(task, completed=n, total=total or None, phase="读取电子文件" if phase == "files" else "检测项")

    return prog, step


def print_run(run: dict[str, Any]) -> None:
    """The verdict, the summary per dimension, and each failing item with the records and files it concerns."""
    s = run.get("summary") or {}
    colour = "green" if run["verdict"] == "通过" else "red"
    out.print(f"[bold]{run['stage']}环节四性检测[/] #{run['id']}  {run['target_kind_label']}：{run['target_label']}")
    out.print(f"检测 {s.get('records', 0)} 件、{s.get('files', 0)} 个电子文件，"
              f"{(s.get('bytes_read') or 0) / 2**20:.1f} MB，用时 {s.get('seconds', 0)} 秒")
    _table("检测结果汇总", ["类别", "项数", "通过", "不通过", "警告", "不适用", "结论"],
           [[d["label"], d["items"], d["counts"]["通过"], d["counts"]["不通过"], d["counts"]["警告"],
             d["counts"]["不适用"], d["outcome"]] for _, d in sorted((s.get("dimensions") or {}).items())])
    for it in run["items"]:
        if it["outcome"] not in ("不通过", "警告"):
            continue
        advisory = "建议项" in (it.get("note") or "")
        mark = "[red]✗ 不通过[/]" if it["outcome"] == "不通过" and not advisory else (
            "[yellow]! 不通过（建议项）[/]" if it["outcome"] == "不通过" else "[yellow]! 警告[/]")
        out.print(f"{mark} [bold]{it['code']}[/] {it['title']}{'（否决项）' if it['veto'] else ''}："
                  f"{it['evidence_count']} 处", highlight=False)
        for e in it["evidence"][:10]:
            detail = ""
            if e.get("expected") is not None:
                detail = f"  [dim]应为 {e.get('expected')}，实际 {e.get('found')}[/]"
            out.print(f"    · {e.get('subject') or ''}：{e['message']}{detail}", highlight=False)
        if it["evidence_count"] > 10:
            out.print(f"    … 另有 {it['evidence_count'] - 10} 处，见完整报告", highlight=False)
    out.print(f"检测结论：[bold {colour}]{run['verdict']}[/]")


def write_report(run: dict[str, Any], path: Path) -> None:
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(run, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    elif path.suffix.lower() == ".pdf":
        from dangan.outputs.check_report import report_pdf

        path.write_bytes(report_pdf(run))
    else:
        raise ValidationFailed("报告文件的扩展名应为 .pdf 或 .json", code="BAD_REPORT_NAME")


@app.command("check")
@command
def check(
    path: Annotated[Path | None, typer.Argument(help="要检测的数据包（BagIt 文件夹或 ZIP、DA/T 48 封装包 .xml、数据包 ZIP）")] = None,
    stage: StageOpt = "",
    batch: Annotated[str | None, typer.Option("--batch", help="按批次检测：导入或接收任务编号")] = None,
    record: Annotated[list[int] | None, typer.Option("--record", help="按档案 ID 检测（可重复）")] = None,
    fonds: Annotated[str | None, typer.Option("--fonds", help="全宗号")] = None,
    category: Annotated[str | None, typer.Option("--category", help="门类代码，如 WS")] = None,
    year: Annotated[int | None, typer.Option("--year", help="年度")] = None,
    state: Annotated[str | None, typer.Option("--state", help="状态：filed 已归档、pending 待归档…")] = None,
    scheme: Annotated[int | None, typer.Option("--scheme", help="检测方案编号（默认用该环节的方案）")] = None,
    sm3: Annotated[str | None, typer.Option("--sm3", help="发送方告知的整包 SM3 摘要（核对数据包一致性）")] = None,
    sha256: Annotated[str | None, typer.Option("--sha256", help="发送方告知的整包 SHA-256 摘要")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="把检测报告写到文件（.pdf 人读报告，.json 机读报告）")] = None,
    as_json: JsonOpt = False,
) -> None:
    """四性检测（DA/T 70）：检测数据包，或已入库的档案（按批次、档案 ID 或条件）。有检测项不通过时退出码为 1。"""
    a = _open()
    actor = _operator()
    prog, step = _progress(as_json)
    with prog:
        if path is not None:
            if not path.exists():
                raise ValidationFailed(f"数据包“{path}”不存在", code="FILE_MISSING")
            digests = {k: v for k, v in (("sm3", sm3), ("sha256", sha256)) if v}
            run = check_svc.run_package(a, actor, path, stage=stage or "移交与接收", fonds=fonds, category=category,
                                        scheme_id=scheme, progress=step, sent_digest=digests or None)
        else:
            if not (batch or record or fonds or category or year or state):
                raise ValidationFailed("请指定要检测的数据包路径，或 --batch、--record、--fonds/--category/--year 等条件",
                                       code="NOTHING_TO_CHECK")
            run = check_svc.run_records(a, actor, stage=stage or "长期保存", record_ids=record or None, job_id=batch,
                                        fonds=fonds, category=category, year=year, state=state, scheme_id=scheme,
                                        progress=step)
    if report is not None:
        write_report(run, report)
    if as_json:
        _print_json(run)
    else:
        print_run(run)
        if report is not None:
            out.print(f"检测报告：{report}")
    if run["verdict"] != "通过":
        raise typer.Exit(1)


@app.command("check-runs")
@command
def check_runs(
    stage: Annotated[str | None, typer.Option("--stage", help="检测环节")] = None,
    record: Annotated[int | None, typer.Option("--record", help="只列出涉及该档案的检测")] = None,
    limit: Annotated[int, typer.Option("--limit", help="最多列出多少条")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """列出检测记录（最新在前）。"""
    res = check_svc.list_runs(_open(), _operator(), stage=stage, record_id=record, limit=limit)
    if as_json:
        _print_json(res)
        return
    _table(f"检测记录（共 {res['total']} 次）", ["编号", "环节", "对象", "结论", "检测人", "时间"],
           [[r["id"], r["stage"], r["target_label"], r["verdict"] or r["status_label"], r["actor"],
             (r["started_at"] or "")[:19]] for r in res["runs"]])


@app.command("check-report")
@command
def check_report(
    run_id: Annotated[int, typer.Argument(help="检测编号")],
    report: Annotated[Path | None, typer.Option("--report", help="写到文件（.pdf 或 .json）")] = None,
    compare: Annotated[bool, typer.Option("--compare", help="与同一对象的上一次检测比较")] = False,
    as_json: JsonOpt = False,
) -> None:
    """显示一次检测的报告，或与上一次检测比较。"""
    a, actor = _open(), _operator()
    if compare:
        diff = check_svc.compare_runs(a, actor, run_id)
        if as_json:
            _print_json(diff)
            return
        out.print(f"检测 #{run_id} 与 #{diff['other_id']} 比较：结论 {diff['verdict']['before']} → {diff['verdict']['after']}")
        _table("有变化的检测项", ["编号", "检测项", "之前", "现在", "新问题", "已解决"],
               [[c["code"], c["title"], c["before"], c["after"], len(c["new_findings"]), len(c["resolved_findings"])]
                for c in diff["changes"]])
        return
    run = check_svc.get_run(a, actor, run_id)
    if report is not None:
        write_report(run, report)
    if as_json:
        _print_json(run)
    else:
        print_run(run)


@scheme_app.command("list")
@command
def scheme_list(as_json: JsonOpt = False) -> None:
    """列出检测方案。"""
    res = check_svc.list_schemes(_open(), _operator())
    if as_json:
        _print_json(res)
        return
    _table("检测方案", ["编号", "名称", "环节", "门类", "启用项", "否决项"],
           [[x["id"], x["name"], x["stage"], x["category_code"] or "全部",
             sum(1 for i in x["items"] if i["enabled"]), "、".join(i["code"] for i in x["items"] if i["veto"])]
            for x in res])


@scheme_app.command("set")
@command
def scheme_set(
    scheme_id: Annotated[int, typer.Argument(help="方案编号")],
    item: Annotated[str, typer.Argument(help="检测项（键名，如 format_allowed）")],
    enabled: Annotated[bool | None, typer.Option("--enabled/--disabled", help="启用或停用")] = None,
    veto: Annotated[bool | None, typer.Option("--veto/--no-veto", help="一票否决")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", help="参数 名称=值（值可为 JSON）")] = None,
    as_json: JsonOpt = False,
) -> None:
    """修改检测方案中一个检测项的设置。"""
    a, actor = _open(), _operator()
    current = check_svc.get_scheme(a, actor, scheme_id)
    setting: dict[str, Any] = {}
    if enabled is not None:
        setting["enabled"] = enabled
    if veto is not None:
        setting["veto"] = veto
    params: dict[str, Any] = {}
    for p in param or []:
        if "=" not in p:
            raise ValidationFailed(f"参数“{p}”应写成 名称=值", code="BAD_PARAM")
        k, v = p.split("=", 1)
        try:
            params[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            params[k.strip()] = v
    if params:
        setting["params"] = params
    res = check_svc.save_scheme(a, actor, stage=current["stage"], scheme_id=scheme_id, items={item: setting})
    if as_json:
        _print_json(res)
    else:
        out.print(f"[green]✓[/] 已更新检测方案“{res['name']}”的 {item}")


@package_app.command("export")
@command
def package_export(
    record: Annotated[list[int], typer.Option("--record", help="档案 ID（可重复）")],
    fmt: Annotated[str, typer.Option("--format", help="eep（DA/T 48，SM2 签名）或 bagit（含 METS/PREMIS）")] = "eep",
    output: Annotated[Path, typer.Option("--output", "-o", help="输出文件（不含扩展名时自动加 .xml/.zip）")] = Path("dangan-package"),
    as_json: JsonOpt = False,
) -> None:
    """导出封装包：一件为 DA/T 48 封装包（.xml），多件为 ZIP；BagIt 为 ZIP（可用 bagit 工具校验）。"""
    from dangan.services import packages

    a, actor = _open(), _operator()
    with Progress(TextColumn("导出"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err,
                  disable=as_json or not err.is_terminal) as prog:
        task = prog.add_task("export", total=len(record))
        res = packages.export_records(a, actor, record, fmt, output,
                                      progress=lambda n, total: prog.update(task, completed=n, total=total))
    if as_json:
        _print_json(res)
        return
    out.print(f"[green]✓[/] 已导出 {res['records']} 件（{res['format_label']}）：{res['path']}")
    out.print(f"  大小 {res['size']} 字节  SHA-256 {res['sha256']}")
    out.print(f"  SM3 {res['sm3']}")


@package_app.command("import")
@command
def package_import(
    path: Annotated[Path, typer.Argument(help="数据包（BagIt 文件夹或 ZIP、DA/T 48 封装包 .xml、数据包 ZIP）")],
    fonds: Annotated[str, typer.Option("--fonds", help="接收到哪个全宗")] = "Z109",
    category: Annotated[str, typer.Option("--category", help="接收到哪个门类")] = "WS",
    department: Annotated[str | None, typer.Option("--department", help="机构代码（数据包中没有时使用）")] = None,
    sm3: Annotated[str | None, typer.Option("--sm3", help="移交方告知的整包 SM3 摘要")] = None,
    sha256: Annotated[str | None, typer.Option("--sha256", help="移交方告知的整包 SHA-256 摘要")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="把移交与接收检测报告写到文件（.pdf 或 .json）")] = None,
    as_json: JsonOpt = False,
) -> None:
    """接收数据包：先做移交与接收环节的四性检测，全部通过后才接收（档案为待归档）；不通过则什么也不保存。"""
    from dangan.errors import DanganError
    from dangan.services import packages

    a, actor = _open(), _operator()
    digests = {k: v for k, v in (("sm3", sm3), ("sha256", sha256)) if v}
    prog, step = _progress(as_json)
    try:
        with prog:
            res = packages.import_package(a, actor, path, fonds=fonds, category=category, department=department,
                                          sent_digest=digests or None, progress=step)
    except DanganError as e:
        run = getattr(e, "check_run", None)
        if run is not None:
            if report is not None:
                write_report(run, report)
            if not as_json:
                print_run(run)
        raise
    run = check_svc.get_run(a, actor, res["check_run"]["id"])
    if report is not None:
        write_report(run, report)
    if as_json:
        _print_json(res)
    else:
        out.print(f"[green]✓[/] 移交与接收检测通过（检测 #{run['id']}）；接收 {res['records']} 件："
                  f"新增 {res['created']}，已存在（未重复接收）{res['existing']}，有问题 {res['failed']}")
        for f in res.get("failures", [])[:20]:
            out.print(f"  · 第 {f.get('index', 0) + 1} 件：{f.get('message')}", highlight=False)
    if res.get("failed"):
        raise typer.Exit(1)
