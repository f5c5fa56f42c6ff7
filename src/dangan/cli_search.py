"""CLI of 检索: `dangan search "…"` and `dangan reindex`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dangan.cli import JsonOpt, _actor, _open, _operator, _print_json, _table, app, command, err, out
from dangan.services import search as search_svc


@app.command("search")
@command
def search(
    q: Annotated[str, typer.Argument(help="检索式：词语、\"短语\"、OR、-排除、题名:/文号:/责任者:/档号:/主题词:/全文:")],
    fonds: Annotated[str | None, typer.Option("--fonds", help="全宗号")] = None,
    category: Annotated[str | None, typer.Option("--category", help="门类代码")] = None,
    year: Annotated[int | None, typer.Option("--year", help="年度")] = None,
    retention: Annotated[str | None, typer.Option("--retention", help="保管期限")] = None,
    dept: Annotated[str | None, typer.Option("--dept", help="机构代码")] = None,
    date_from: Annotated[str | None, typer.Option("--from", help="日期起，如 2024-01-01")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="日期止")] = None,
    sort: Annotated[str, typer.Option("--sort", help="relevance 相关度 / date 日期新在前 / date_asc")] = "relevance",
    limit: Annotated[int, typer.Option("--limit", help="每页条数")] = 20,
    cursor: Annotated[str | None, typer.Option("--cursor", help="上一页给出的 next_cursor")] = None,
    as_json: JsonOpt = False,
) -> None:
    """检索档案（题名、文号、责任者、档号、主题词与全文），只含您有权查看的档案。"""
    flt = search_svc.SearchFilter(fonds=fonds, category=category, year=year, retention_period=retention,
                                  department=dept, date_from=date_from, date_to=date_to)
    res = search_svc.search(_open(), _actor(), q, flt, sort=sort, cursor=cursor, limit=limit)
    if as_json:
        _print_json(res)
        return
    for n in res["notices"]:
        out.print(f"[yellow]提示：{n}[/]")
    _table(f"共 {res['total']} 件（{res['took_ms']} 毫秒）", ["档号", "题名", "文号", "日期", "命中"],
           [[i["archival_code"] or f"#{i['id']}", i["title"], i["doc_number"] or "", i["date"] or "",
             f"{i['snippet']['file_name']} 第 {i['snippet']['page']} 页" if i["snippet"] else ""] for i in res["items"]])
    if res["next_cursor"]:
        out.print(f"下一页：--cursor {res['next_cursor']}")


@app.command("reindex")
@command
def reindex(
    full: Annotated[bool, typer.Option("--full", help="重新提取全部文件的全文并重建全部索引")] = False,
    workers: Annotated[int | None, typer.Option("--workers", help="并行提取的线程数")] = None,
    as_json: JsonOpt = False,
) -> None:
    """重建检索索引：提取尚无全文的文件，更新缺失或过期的索引条目；中断后再次运行会从中断处继续。"""
    a = _open()
    with Progress(TextColumn("{task.fields[phase]}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, disable=as_json or not err.is_terminal) as prog:
        task = prog.add_task("reindex", total=None, phase="提取全文")

        def step(phase: str, n: int, total: int) -> None:
            prog.update(task, completed=n, total=total or None, phase={"text": "提取全文", "index": "建立索引"}.get(phase, "重建 tantivy 索引"))

        res = search_svc.reindex(a, _operator(), full=full, workers=workers, progress=step)
    if as_json:
        _print_json(res)
    else:
        out.print(f"[green]✓[/] 提取全文 {res['files_extracted']} 个文件，更新索引 {res['records_indexed']} 件，"
                  f"用时 {res['seconds']} 秒" + (f"；tantivy 索引重建 {res['tantivy_docs']} 件"
                                                 if res.get("tantivy_docs") is not None else ""))
