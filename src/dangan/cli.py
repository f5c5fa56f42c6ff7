"""The `dangan` command line: thin commands over the services, Chinese output, `--json` on every query."""

from __future__ import annotations

import functools
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from dangan.config import load_settings
from dangan.domain.schema import FIELD_TYPES
from dangan.errors import DanganError, ValidationFailed
from dangan.services import audit as audit_svc
from dangan.services import categories as cat_svc
from dangan.services import files as file_svc
from dangan.services import fixity as fixity_svc
from dangan.services import fonds as fonds_svc
from dangan.services import records as rec_svc
from dangan.services import storage_ops
from dangan.services.context import Actor, Dangan

app = typer.Typer(help="dangan 电子档案管理系统", no_args_is_help=True, add_completion=False,
                  context_settings={"help_option_names": ["-h", "--help"]})
fonds_app = typer.Typer(help="全宗与机构", no_args_is_help=True)
category_app = typer.Typer(help="门类（元数据方案与档号规则）", no_args_is_help=True)
record_app = typer.Typer(help="档案（件、案卷、项目、组）：著录、提交、归档、浏览", no_args_is_help=True)
file_app = typer.Typer(help="电子文件：添加、列出、导出", no_args_is_help=True)
fixity_app = typer.Typer(help="固化信息检测（SHA-256 与 SM3 复核）", no_args_is_help=True)
audit_app = typer.Typer(help="审计日志：查看与校验（SM3 哈希链）", no_args_is_help=True)
storage_app = typer.Typer(help="存储维护", no_args_is_help=True)
user_app = typer.Typer(help="用户账号（系统管理员）与本人密码", no_args_is_help=True)
dept_app = typer.Typer(help="机构（内设机构）", no_args_is_help=True)
role_app = typer.Typer(help="角色、密级与权限矩阵（安全保密管理员）", no_args_is_help=True)
token_app = typer.Typer(help="业务系统接口令牌（系统管理员）", no_args_is_help=True)
for sub, name in ((fonds_app, "fonds"), (category_app, "category"), (record_app, "record"), (file_app, "file"),
                  (fixity_app, "fixity"), (audit_app, "audit"), (storage_app, "storage"), (user_app, "user"),
                  (dept_app, "dept"), (role_app, "role"), (token_app, "token")):
    app.add_typer(sub, name=name)

out = Console()
err = Console(stderr=True)
STATE: dict[str, Any] = {"data": None}
DataOpt = Annotated[str | None, typer.Option("--data", help="数据目录（默认 ./dangan-data，或环境变量 DANGAN_DATA）")]
JsonOpt = Annotated[bool, typer.Option("--json", help="以 JSON 输出")]
F = TypeVar("F", bound=Callable[..., Any])


UserOpt = Annotated[str | None, typer.Option("--user", "-u", envvar="DANGAN_USER",
                                            help="以哪个用户身份操作（密码取自环境变量 DANGAN_PASSWORD，或交互输入）")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="DANGAN_TOKEN", help="以接口令牌身份操作")]


@app.callback()
def _main(data: DataOpt = None, user: UserOpt = None, token: TokenOpt = None) -> None:
    STATE["data"] = data
    STATE["user"] = user
    STATE["token"] = token
    STATE["actor"] = None
    STATE["app"] = None


def _open() -> Dangan:
    if STATE.get("app") is not None:
        return STATE["app"]
    settings = load_settings(STATE["data"])
    if not settings.data_dir.exists() and not settings.database_url:
        raise DanganError(f"数据目录 {settings.data_dir} 不存在：请先运行 dangan init（或用 --data 指定数据目录）",
                          code="NOT_INITIALISED")
    STATE["app"] = Dangan(settings)
    return STATE["app"]


def _client() -> str:
    return f"cli:{getpass.getuser()}"


def _actor(a: Dangan | None = None) -> Actor:
    """The person acting: the CLI has no back door — records, files, audit and accounts need a login."""
    from dangan.services import identity

    if STATE.get("actor") is not None:
        return STATE["actor"]
    a = a or _open()
    if STATE.get("token"):
        actor = identity.authenticate_token(a, STATE["token"], _client())
    elif STATE.get("user"):
        password = os.environ.get("DANGAN_PASSWORD")
        if password is None:
            if not sys.stdin.isatty():
                raise DanganError("请通过环境变量 DANGAN_PASSWORD 提供密码，或在终端中运行以输入密码", code="NOT_AUTHENTICATED")
            password = getpass.getpass(f"{STATE['user']} 的密码：")
        actor = identity.login(a, STATE["user"], password, _client(), start_session=False).actor
    else:
        raise DanganError("请用 --user 用户名 登录（密码取自环境变量 DANGAN_PASSWORD 或交互输入），或用 --token 接口令牌",
                          code="NOT_AUTHENTICATED")
    STATE["actor"] = actor
    return actor


def _operator() -> Actor:
    """Server maintenance run from the server's own shell (init, serve, storage, fixity): audited as the system."""
    if STATE.get("user") or STATE.get("token"):
        return _actor()
    return Actor.system(_client())


def command(fn: F) -> F:
    """Turn a user's mistake into a clear Chinese message and exit status 1 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DanganError as e:
            if kwargs.get("as_json"):
                print(json.dumps({"error": e.as_dict()}, ensure_ascii=False, indent=2))
            else:
                err.print(f"[bold red]错误[/] [{e.code}] {e.message}", highlight=False)
                for p in e.problems:
                    err.print(f"  · {p.label or p.field}（{p.field}）：{p.message}  [dim]{p.code}[/]", highlight=False)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    t = Table(title=title, title_justify="left", header_style="bold")
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*["" if v is None else str(v) for v in r])
    out.print(t)


# ---------------------------------------------------------------- init / serve


@app.command()
@command
def init(
    demo: Annotated[bool, typer.Option("--demo", help="同时生成示例全宗 Z109（数百件带电子文件的档案）")] = False,
    fonds: Annotated[str | None, typer.Option("--fonds", help="新建全宗号，如 Z109；会同时建好五个预置门类")] = None,
    fonds_name: Annotated[str | None, typer.Option("--fonds-name", help="全宗名称")] = None,
    database_url: Annotated[str | None, typer.Option("--database-url", help="数据库地址（默认数据目录内的 SQLite）")] = None,
    storage_url: Annotated[str | None, typer.Option("--storage-url", help="存储地址 file://… 或 s3://桶/前缀")] = None,
    demo_size: Annotated[int, typer.Option("--demo-size", help="示例档案数量")] = 300,
    as_json: JsonOpt = False,
) -> None:
    """初始化数据目录：建库（迁移）、系统管理员、预置门类；--demo 生成示例数据。"""
    from dangan.services.setup import init as do_init

    settings = load_settings(STATE["data"], database_url=database_url, storage_url=storage_url)
    with out.status("正在初始化……"):
        res = do_init(settings, fonds_code=fonds, fonds_name=fonds_name, demo=demo, demo_size=demo_size)
    if as_json:
        _print_json(res)
        return
    out.print(f"[green]✓[/] 数据目录：{res['data']}")
    out.print(f"  数据库：{res['database']}")
    out.print(f"  存储：{res['storage']}")
    if res.get("fonds"):
        out.print(f"  新建全宗 {res['fonds']}（含预置门类 WS、KU、KJ、ZP、LX）")
    if res.get("admins"):
        out.print("[bold yellow]三员账号的初始密码（只显示这一次，首次登录须修改）：[/]")
        for a in res["admins"]:
            out.print(f"  {a['role']}  用户名 [bold]{a['username']}[/]  初始密码 [bold]{a['initial_password']}[/]")
    if res.get("demo"):
        d = res["demo"]
        out.print("  示例数据：" + (d.get("skipped") or "、".join(f"{k} {v} 件" for k, v in d["records"].items())))
        if d.get("users"):
            out.print(f"  演示账号（密码均为 {d['password']}）：" + "、".join(f"{u['username']}（{u['name']}）" for u in d["users"]))
    out.print("下一步：dangan serve 启动网页（http://127.0.0.1:8000）")


@app.command()
@command
def serve(
    host: Annotated[str | None, typer.Option(help="监听地址（默认 127.0.0.1）")] = None,
    port: Annotated[int | None, typer.Option(help="端口（默认 8000）")] = None,
) -> None:
    """启动网页界面与 REST API（/api/v1）。"""
    import uvicorn

    from dangan.web.app import create_app

    a = _open()
    a.migrate()
    from dangan.services.jobs import mark_interrupted

    if n := mark_interrupted(a):
        out.print(f"[yellow]{n} 个导入任务在上次运行中被中断，可在“批量导入”页面继续[/]")
    h, p = host or a.settings.host, port or a.settings.port
    from dangan.services.fixity_audit import start_scheduler

    sched = start_scheduler(a)  # 长期保存: one bounded fixity-audit batch every fixity_audit_interval_minutes
    from dangan.services.search import start_reindexer, start_tantivy_build

    reindexer = start_reindexer(a)  # 检索: the text of bulk loads, every search_reindex_interval_minutes
    if a.tantivy is not None and not a.tantivy.built():
        start_tantivy_build(a)  # searches are answered by FTS5 until it is ready
    out.print(f"dangan 已启动：http://{h}:{p}  （API 文档：http://{h}:{p}/api/v1/docs）")
    try:
        uvicorn.run(create_app(a), host=h, port=p, log_level="warning")
    finally:
        sched.stop()
        if reindexer is not None:
            reindexer.stop()


# ---------------------------------------------------------------- fonds


@fonds_app.command("list")
@command
def fonds_list(as_json: JsonOpt = False) -> None:
    """列出全宗。"""
    rows = fonds_svc.list_fonds(_open(), _actor())
    if as_json:
        return _print_json(rows)
    _table("全宗", ["全宗号", "全宗名称", "立档单位"], [[f["code"], f["name"], f["unit"]] for f in rows])


@fonds_app.command("create")
@command
def fonds_create(
    code: Annotated[str, typer.Argument(help="全宗号，4 位，如 Z109")],
    name: Annotated[str, typer.Argument(help="全宗名称")],
    unit: Annotated[str, typer.Option(help="立档单位名称（默认同全宗名称）")] = "",
    presets: Annotated[str, typer.Option(help="同时建立的预置门类，逗号分隔；空字符串表示不建")] = "WS,KU,KJ,ZP,LX",
    as_json: JsonOpt = False,
) -> None:
    """新建全宗，并按预置建立门类。"""
    a = _open()
    f = fonds_svc.create_fonds(a, _actor(), code, name, unit)
    cats = [cat_svc.create_category(a, _actor(), f["code"], p.strip()) for p in presets.split(",") if p.strip()]
    if as_json:
        return _print_json({**f, "categories": cats})
    out.print(f"[green]✓[/] 已新建全宗 {f['code']} {f['name']}，门类：{'、'.join(c['code'] + c['name'] for c in cats) or '无'}")


@fonds_app.command("departments")
@command
def fonds_departments(fonds: Annotated[str, typer.Argument(help="全宗号")], as_json: JsonOpt = False) -> None:
    """列出全宗的机构（问题）。"""
    rows = fonds_svc.list_departments(_open(), _actor(), fonds)
    if as_json:
        return _print_json(rows)
    _table(f"全宗 {fonds.upper()} 的机构", ["代码", "名称"], [[d["code"], d["name"]] for d in rows])


@fonds_app.command("add-department")
@command
def fonds_add_department(
    fonds: Annotated[str, typer.Argument(help="全宗号")],
    code: Annotated[str, typer.Argument(help="机构代码，如 BGS")],
    name: Annotated[str, typer.Argument(help="机构名称，如 办公室")],
    as_json: JsonOpt = False,
) -> None:
    """为全宗新建机构（问题）。"""
    d = fonds_svc.create_department(_open(), _actor(), fonds, code, name)
    if as_json:
        return _print_json(d)
    out.print(f"[green]✓[/] 已新建机构 {d['code']} {d['name']}")


# ---------------------------------------------------------------- category


@category_app.command("list")
@command
def category_list(fonds: Annotated[str, typer.Option("--fonds", help="全宗号")] = "Z109", as_json: JsonOpt = False) -> None:
    """列出门类及其整理方式、档号规则。"""
    rows = cat_svc.list_categories(_open(), _actor(), fonds)
    if as_json:
        return _print_json(rows)
    _table("门类", ["代码", "名称", "整理方式", "档号规则"],
           [[c["code"], c["name"], c["arrangement_label"], "\n".join(f"{c['level_labels'][lv]}：{p}" for lv, p in c["code_patterns"].items())]
            for c in rows])


@category_app.command("show")
@command
def category_show(
    code: Annotated[str, typer.Argument(help="门类代码，如 WS")],
    fonds: Annotated[str, typer.Option("--fonds", help="全宗号")] = "Z109",
    as_json: JsonOpt = False,
) -> None:
    """显示门类的元数据方案（字段、类型、约束性、值域、DA/T 46 编号）。"""
    c = cat_svc.show_category(_open(), _actor(), fonds, code)
    if as_json:
        return _print_json(c)
    out.print(f"[bold]{c['code']} {c['name']}[/]  整理方式：{c['arrangement_label']}  依据：{c['basis']}")
    for lvl in c["levels"]:
        out.print(f"\n[bold]{c['level_labels'][lvl]}[/]  档号：{c['code_patterns'][lvl]}")
        _table("", ["代码", "中文名称", "类型", "约束性", "长度", "值域", "DA/T 46"],
               [[f["code"], f["label"], FIELD_TYPES.get(f.get("type", "text")), {"required": "必选", "conditional": "条件选", "optional": "可选"}[f.get("obligation", "optional")],
                 f.get("max_length"), "、".join(f.get("domain", [])), f.get("dat46")] for f in c["schemas"][lvl]["fields"]])


@category_app.command("create")
@command
def category_create(
    preset: Annotated[str, typer.Option("--preset", help="预置门类：WS 文书、KU 会计、KJ 科技·基建、ZP 照片、LX 录像")],
    fonds: Annotated[str, typer.Option("--fonds", help="全宗号")] = "Z109",
    code_preset: Annotated[str | None, typer.Option("--code-rule", help="档号规则预设，如“DA/T 13-2022 文书（机构名称）”")] = None,
    as_json: JsonOpt = False,
) -> None:
    """按预置新建门类。"""
    c = cat_svc.create_category(_open(), _actor(), fonds, preset, code_preset=code_preset)
    if as_json:
        return _print_json(c)
    out.print(f"[green]✓[/] 已新建门类 {c['code']} {c['name']}")


# ---------------------------------------------------------------- record


def _parse_sets(values: list[str]) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for item in values:
        if "=" not in item:
            raise ValidationFailed(f"参数“{item}”应写成 字段=值，如 title=关于……的通知", code="BAD_ARGUMENT")
        k, v = item.split("=", 1)
        k = k.strip()
        if k in meta:
            meta[k] = (meta[k] if isinstance(meta[k], list) else [meta[k]]) + [v]
        else:
            meta[k] = v
    return meta


def _new_files(paths: list[str]) -> list[file_svc.NewFile]:
    result = []
    for spec in paths:
        role = "main"
        path = spec
        if "::" in spec:
            path, role = spec.rsplit("::", 1)
        p = Path(path)
        if not p.is_file():
            raise ValidationFailed(f"找不到文件 {path}", code="FILE_NOT_FOUND_LOCAL")
        # a name that is not valid UTF-8 arrives with lone surrogates; the service rejects it with a clear message
        result.append(file_svc.NewFile(p.name, p.open("rb"), role=role, expected_size=p.stat().st_size))
    return result


def _record_line(r: dict[str, Any]) -> list[Any]:
    return [r["id"], r["archival_code"] or "—", r["title"], r.get("doc_number"), r.get("date"), r["retention_label"],
            r.get("department_name"), r["security_level"], r["state_label"]]


RECORD_COLUMNS = ["ID", "档号", "题名", "文号", "日期", "保管期限", "机构", "密级", "状态"]


@record_app.command("list")
@command
def record_list(
    fonds: Annotated[str | None, typer.Option("--fonds", help="全宗号")] = None,
    category: Annotated[str | None, typer.Option("--category", help="门类代码")] = None,
    year: Annotated[int | None, typer.Option("--year", help="年度")] = None,
    retention: Annotated[str | None, typer.Option("--retention", help="保管期限 Y/D30/D10")] = None,
    dept: Annotated[str | None, typer.Option("--dept", help="机构代码")] = None,
    state: Annotated[str | None, typer.Option("--state", help="状态：预归档/待归档/已归档")] = None,
    level: Annotated[str | None, typer.Option("--level", help="层级 item/volume/project/group")] = None,
    parent: Annotated[int | None, typer.Option("--parent", help="上级 ID（列出卷内文件）")] = None,
    q: Annotated[str | None, typer.Option("-q", "--query", help="题名、档号或文号包含的文字")] = None,
    limit: Annotated[int, typer.Option("--limit", help="每页条数")] = 50,
    cursor: Annotated[str | None, typer.Option("--cursor", help="下一页游标（上次输出的 next_cursor）")] = None,
    as_json: JsonOpt = False,
) -> None:
    """浏览档案（按档号排序，游标分页）。"""
    flt = rec_svc.RecordFilter(fonds=fonds, category=category, year=year, retention_period=retention, department=dept,
                               state=state, level=level, parent_id=parent, q=q)
    page = rec_svc.list_records(_open(), _actor(), flt, limit=limit, cursor=cursor)
    if as_json:
        return _print_json(page)
    _table(f"档案（共 {page['total']} 件）", RECORD_COLUMNS, [_record_line(r) for r in page["items"]])
    if page["next_cursor"]:
        out.print(f"下一页：--cursor {page['next_cursor']}")


def _resolve_id(a: Dangan, ref: str) -> int:
    if ref.isdigit():
        return int(ref)
    return rec_svc.find_by_code(a, _actor(), ref)["id"]


@record_app.command("show")
@command
def record_show(ref: Annotated[str, typer.Argument(help="档案 ID 或档号")], as_json: JsonOpt = False) -> None:
    """显示一件档案的著录项与电子文件。"""
    a = _open()
    r = rec_svc.get_record(a, _actor(), _resolve_id(a, ref))
    if as_json:
        return _print_json(r)
    out.print(f"[bold]{r['title']}[/]")
    out.print(f"档号：{r['archival_code'] or '（未归档）'}  状态：{r['state_label']}  层级：{r['level_label']}  "
              f"保管期限：{r['retention_label']}  到期：{r['expiry_date'] or '—'}")
    _table("著录项", ["字段", "值"], [[k, v if not isinstance(v, list) else "、".join(map(str, v))] for k, v in r["metadata"].items()])
    _table("电子文件", ["ID", "类型", "文件名", "大小", "SHA-256", "SM3"],
           [[f["id"], f["role_label"], f["name"], f["size"], f["sha256"][:16] + "…", f["sm3"][:16] + "…"] for f in r["files"]])


@record_app.command("create")
@command
def record_create(
    fonds: Annotated[str, typer.Option("--fonds", help="全宗号")],
    category: Annotated[str, typer.Option("--category", help="门类代码，如 WS")],
    sets: Annotated[list[str] | None, typer.Option("--set", help="著录项 字段=值，可重复；如 --set title=关于……")] = None,
    metadata_json: Annotated[Path | None, typer.Option("--metadata", help="著录项 JSON 文件")] = None,
    dept: Annotated[str | None, typer.Option("--dept", help="机构代码")] = None,
    level: Annotated[str, typer.Option("--level", help="层级 item/volume/project/group")] = "item",
    parent: Annotated[int | None, typer.Option("--parent", help="上级 ID（卷内文件所属案卷）")] = None,
    state: Annotated[str, typer.Option("--state", help="预归档/待归档/已归档（已归档即分配档号）")] = "pre_filing",
    files: Annotated[list[str] | None, typer.Option("--file", help="电子文件路径，可重复；可写 路径::attachment 指定类型")] = None,
    as_json: JsonOpt = False,
) -> None:
    """著录一件档案（可同时附电子文件）。"""
    meta: dict[str, Any] = {}
    if metadata_json:
        try:
            meta = json.loads(metadata_json.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValidationFailed(f"无法读取著录 JSON 文件 {metadata_json}：{e}", code="BAD_METADATA_FILE") from e
        if not isinstance(meta, dict):
            raise ValidationFailed("著录 JSON 文件的内容应为对象 {\"字段\": 值}", code="BAD_METADATA_FILE")
    meta.update(_parse_sets(sets or []))
    nfs = _new_files(files or [])
    try:
        r = rec_svc.create_record(_open(), _actor(), rec_svc.RecordInput(fonds, category, meta, level=level, department=dept,
                                  parent_id=parent, state=state), nfs)
    finally:
        for nf in nfs:
            nf.stream.close()
    if as_json:
        return _print_json(r)
    out.print(f"[green]✓[/] 已著录 ID {r['id']}  {r['title']}  档号：{r['archival_code'] or '（未归档）'}  "
              f"状态：{r['state_label']}  电子文件 {len(r['files'])} 个")


@record_app.command("update")
@command
def record_update(
    ref: Annotated[str, typer.Argument(help="档案 ID 或档号")],
    sets: Annotated[list[str], typer.Option("--set", help="要修改的著录项 字段=值；字段= 表示清空")],
    reason: Annotated[str, typer.Option("--reason", help="修改原因（已归档档案必填）")] = "",
    as_json: JsonOpt = False,
) -> None:
    """修改著录项。"""
    a = _open()
    changes = {k: (v if v != "" else None) for k, v in _parse_sets(sets).items()}
    r = rec_svc.update_record(a, _actor(), _resolve_id(a, ref), changes, reason)
    if as_json:
        return _print_json(r)
    out.print(f"[green]✓[/] 已修改 ID {r['id']}（第 {r['row_version']} 版）")


def _transition(ref: str, to: str, reason: str, as_json: bool) -> None:
    a = _open()
    r = rec_svc.transition(a, _actor(), _resolve_id(a, ref), to, reason)
    if as_json:
        return _print_json(r)
    out.print(f"[green]✓[/] ID {r['id']} 现为“{r['state_label']}”" + (f"，档号 {r['archival_code']}" if r["archival_code"] else ""))


@record_app.command("submit")
@command
def record_submit(ref: Annotated[str, typer.Argument(help="档案 ID 或档号")], as_json: JsonOpt = False) -> None:
    """提交归档（预归档 → 待归档）。"""
    _transition(ref, "pending", "", as_json)


@record_app.command("return")
@command
def record_return(
    ref: Annotated[str, typer.Argument(help="档案 ID")],
    reason: Annotated[str, typer.Option("--reason", help="退回原因")],
    as_json: JsonOpt = False,
) -> None:
    """退回（待归档 → 预归档），须写明原因。"""
    _transition(ref, "pre_filing", reason, as_json)


@record_app.command("file")
@command
def record_file(ref: Annotated[str, typer.Argument(help="档案 ID")], as_json: JsonOpt = False) -> None:
    """归档：分配档号（件号在最低一级类目内连续不重复），状态变为已归档。"""
    _transition(ref, "filed", "", as_json)


# ---------------------------------------------------------------- file


@file_app.command("add")
@command
def file_add(
    ref: Annotated[str, typer.Argument(help="档案 ID 或档号")],
    paths: Annotated[list[str], typer.Argument(help="文件路径；可写 路径::attachment 指定类型")],
    reason: Annotated[str, typer.Option("--reason", help="原因（已归档档案追加新版本时必填）")] = "",
    as_json: JsonOpt = False,
) -> None:
    """为档案添加电子文件（流式写入，同时计算 SHA-256 与 SM3）。"""
    a = _open()
    nfs = _new_files(paths)
    try:
        rows = file_svc.add_files(a, _actor(), _resolve_id(a, ref), nfs, reason)
    finally:
        for nf in nfs:
            nf.stream.close()
    if as_json:
        return _print_json(rows)
    for f in rows:
        out.print(f"[green]✓[/] {f['name']}  {f['size']} 字节  SM3 {f['sm3']}")


@file_app.command("list")
@command
def file_list(ref: Annotated[str, typer.Argument(help="档案 ID 或档号")], as_json: JsonOpt = False) -> None:
    """列出档案的电子文件。"""
    a = _open()
    rows = file_svc.list_files(a, _actor(), _resolve_id(a, ref))
    if as_json:
        return _print_json(rows)
    _table("电子文件", ["ID", "类型", "文件名", "大小", "格式", "SHA-256", "SM3"],
           [[f["id"], f["role_label"], f["name"], f["size"], f["media_type"], f["sha256"], f["sm3"]] for f in rows])


@file_app.command("get")
@command
def file_get(
    file_id: Annotated[int, typer.Argument(help="电子文件 ID")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="保存路径（默认当前目录下原文件名）；- 表示标准输出")] = None,
) -> None:
    """导出电子文件（导出时复核 SHA-256）。"""
    a = _open()
    view, fh = file_svc.open_file(a, _actor(), file_id)
    from dangan.storage.hashing import DualDigest

    d = DualDigest()
    target = None if str(output) == "-" else (output or Path(view["name"]))
    with fh:
        sink = sys.stdout.buffer if target is None else open(target, "xb")  # noqa: SIM115 - closed below
        try:
            while chunk := fh.read(1024 * 1024):
                d.update(chunk)
                sink.write(chunk)
        finally:
            if target is not None:
                sink.close()
    if d.sha256 != view["sha256"]:
        raise DanganError("导出的内容与登记的 SHA-256 不符，文件可能已损坏：请运行 dangan fixity check", code="FIXITY_MISMATCH")
    if target is not None:
        err.print(f"[green]✓[/] 已导出到 {target}（SHA-256 已复核）")


# ---------------------------------------------------------------- fixity / audit / storage


@fixity_app.command("check")
@command
def fixity_check(
    record: Annotated[int | None, typer.Option("--record", help="只检测这件档案")] = None,
    as_json: JsonOpt = False,
) -> None:
    """重新计算每个电子文件的 SHA-256 与 SM3，报告缺失、截断、被篡改的文件；有问题时退出码为 1。"""
    a = _open()
    with Progress(TextColumn("固化信息检测"), BarColumn(), MofNCompleteColumn(), DownloadColumn(), TimeRemainingColumn(),
                  console=err, disable=as_json or not err.is_terminal) as prog:
        task = prog.add_task("check", total=None)

        def progress(done: int, total: int, nbytes: int) -> None:
            prog.update(task, completed=done, total=total)

        rep = fixity_svc.check(a, _operator(), record_id=record, progress=progress)
    if as_json:
        _print_json(rep.as_dict())
    else:
        out.print(f"检测 {rep.checked} 个文件，读取 {rep.bytes_read / 1e6:.1f} MB，问题 {len(rep.findings)} 个（检测批次 {rep.run_id}）")
        if rep.findings:
            _table("有问题的文件", ["文件 ID", "档号", "文件名", "问题", "登记", "实际"],
                   [[f.file_id, f.archival_code, f.name, fixity_svc.OUTCOME_LABELS[f.outcome],
                     f"{f.expected['size']} 字节 SHA-256 {f.expected['sha256'][:12]}…",
                     (f"{f.found.get('size')} 字节 SHA-256 {str(f.found.get('sha256', ''))[:12]}…" if f.found.get("size") is not None else "不存在")]
                    for f in rep.findings])
        else:
            out.print("[green]✓ 全部文件完好[/]")
    if not rep.ok:
        raise typer.Exit(1)


@audit_app.command("verify")
@command
def audit_verify(
    anchors: Annotated[Path | None, typer.Option("--checkpoints", help="外部存证文件（dangan audit checkpoint 的输出）")] = None,
    as_json: JsonOpt = False,
) -> None:
    """校验审计日志哈希链：指出被修改、删除、插入、调换顺序或被整体改写的条目；有问题时退出码为 1。"""
    marks = None
    if anchors is not None:
        try:
            marks = audit_svc.parse_checkpoints(anchors.read_text(encoding="utf-8"))
        except OSError as e:
            raise ValidationFailed(f"无法读取存证文件 {anchors}：{e}", code="BAD_CHECKPOINT_FILE") from e
        if not marks:
            raise ValidationFailed(f"存证文件 {anchors} 中没有 dangan-audit-checkpoint 记录", code="BAD_CHECKPOINT_FILE")
    rep = audit_svc.verify(_open(), _actor(), marks)
    if as_json:
        _print_json(rep.as_dict())
    elif rep.ok:
        out.print(f"[green]✓ 审计日志完整[/]：共 {rep.checked} 条，哈希链（SM3）逐条校验通过")
    else:
        out.print(f"[bold red]✗ 审计日志被篡改[/]：共 {rep.checked} 条，发现 {len(rep.problems)} 处问题")
        for p in rep.problems:
            out.print(f"  · {p.message}")
    if not rep.ok:
        raise typer.Exit(1)


@audit_app.command("checkpoint")
@command
def audit_checkpoint(as_json: JsonOpt = False) -> None:
    """输出审计日志链头的外部存证（序号与 SM3），请追加保存到数据库以外的地方，供 verify --checkpoints 比对。"""
    cp = audit_svc.checkpoint(_open(), _actor())
    if as_json:
        return _print_json(cp)
    print(cp["line"])


@audit_app.command("list")
@command
def audit_list(
    object_type: Annotated[str | None, typer.Option("--type", help="对象类型，如 record、file")] = None,
    object_id: Annotated[str | None, typer.Option("--id", help="对象 ID")] = None,
    user: Annotated[str | None, typer.Option("--by", help="操作人")] = None,
    action: Annotated[str | None, typer.Option("--action", help="操作，如 record.file")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """查看审计日志（最新在前）。"""
    rows = audit_svc.list_events(_open(), _actor(), object_type=object_type, object_id=object_id, actor_name=user,
                                 action=action, limit=limit)
    if as_json:
        return _print_json(rows)
    _table("审计日志", ["序号", "时间（UTC）", "操作人", "操作", "对象", "结果", "来源"],
           [[e["seq"], e["occurred_at"][:19], e["actor"], e["action_label"], f"{e['object_type']} {e['object_id']}".strip(),
             e["outcome_label"], e["client_addr"]] for e in rows])


@storage_app.command("sweep")
@command
def storage_sweep(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="只列出，不删除")] = False,
    grace: Annotated[int | None, typer.Option("--grace", help="只清理早于此秒数的内容（默认 3600）")] = None,
    as_json: JsonOpt = False,
) -> None:
    """清理没有任何电子文件引用的存储内容（崩溃后遗留），已登记的内容永不删除。"""
    rep = storage_ops.sweep(_open(), _operator(), dry_run=dry_run, grace_seconds=grace)
    if as_json:
        return _print_json(rep.as_dict())
    verb = "可清理" if dry_run else "已清理"
    out.print(f"扫描 {rep.scanned} 个存储对象；无引用 {len(rep.unreferenced)} 个，{verb} {rep.deleted if not dry_run else len(rep.unreferenced)} 个；"
              f"近期写入暂不清理 {rep.kept_recent} 个；临时文件清理 {rep.temporary_removed} 个")


@storage_app.command("info")
@command
def storage_info(as_json: JsonOpt = False) -> None:
    """显示数据目录、数据库与存储的位置。"""
    from dangan.db.engine import current_revision
    from dangan.services.setup import _redact

    a = _open()
    info = {"data": str(a.settings.data_dir), "database": _redact(a.settings.effective_database_url),
            "storage": _redact(a.settings.effective_storage_url), "schema_revision": current_revision(a.engine)}
    if as_json:
        return _print_json(info)
    for k, label in (("data", "数据目录"), ("database", "数据库"), ("storage", "存储"), ("schema_revision", "数据库版本")):
        out.print(f"{label}：{info[k]}")


# ---------------------------------------------------------------- identity: user / dept / role / token


def _user_rows(rows: list[dict[str, Any]]) -> None:
    _table("用户", ["用户名", "姓名", "角色", "密级", "机构", "状态"],
           [[u["username"], u["display_name"], "、".join(u["role_labels"]), u["clearance"],
             "、".join(d["name"] for d in u["departments"]),
             "停用" if not u["is_active"] else ("锁定" if u["locked"] else ("须改密码" if u["must_change_password"] else "正常"))]
            for u in rows])


def _new_password(prompt: str) -> str:
    pw = os.environ.get("DANGAN_NEW_PASSWORD")
    if pw is None:
        if not sys.stdin.isatty():
            raise DanganError("请通过环境变量 DANGAN_NEW_PASSWORD 提供新密码，或在终端中运行以输入", code="PASSWORD_REQUIRED")
        pw = getpass.getpass(prompt)
        if getpass.getpass("再输入一次：") != pw:
            raise DanganError("两次输入的密码不一致", code="PASSWORD_MISMATCH")
    return pw


@user_app.command("list")
@command
def user_list(as_json: JsonOpt = False) -> None:
    """列出用户（系统管理员、安全保密管理员）。"""
    from dangan.services import identity

    rows = identity.list_users(_open(), _actor())
    if as_json:
        return _print_json(rows)
    _user_rows(rows)


@user_app.command("create")
@command
def user_create(
    username: Annotated[str, typer.Argument(help="用户名")],
    name: Annotated[str, typer.Argument(help="姓名")],
    dept: Annotated[list[str] | None, typer.Option("--dept", help="所属机构代码，可重复")] = None,
    system_account: Annotated[bool, typer.Option("--system-account", help="业务系统账号（只用接口令牌，不能登录网页）")] = False,
    as_json: JsonOpt = False,
) -> None:
    """新建用户（系统管理员）。初始密码取自 DANGAN_NEW_PASSWORD 或交互输入，首次登录须修改。"""
    from dangan.services import identity

    u = identity.create_user(_open(), _actor(), username, name, _new_password("初始密码："), departments=dept or [],
                             system_account=system_account)
    if as_json:
        return _print_json(u)
    out.print(f"[green]✓[/] 已新建用户 {u['username']}（{u['display_name']}）；角色与密级由安全保密管理员授予")


@user_app.command("passwd")
@command
def user_passwd() -> None:
    """修改本人密码（旧密码取自 DANGAN_PASSWORD，新密码取自 DANGAN_NEW_PASSWORD 或交互输入）。"""
    from dangan.services import identity

    a = _open()
    actor = _actor(a)
    identity.change_password(a, actor, os.environ.get("DANGAN_PASSWORD") or getpass.getpass("原密码："),
                             _new_password("新密码："))
    out.print("[green]✓[/] 密码已修改")


@user_app.command("reset-password")
@command
def user_reset_password(username: Annotated[str, typer.Argument(help="用户名")]) -> None:
    """重置用户密码并解除锁定（系统管理员）；用户下次登录须修改。"""
    from dangan.services import identity

    identity.reset_password(_open(), _actor(), username, _new_password("临时密码："))
    out.print(f"[green]✓[/] 已重置 {username} 的密码，下次登录须修改")


@user_app.command("disable")
@command
def user_disable(username: Annotated[str, typer.Argument(help="用户名")]) -> None:
    """停用账号（系统管理员）。"""
    from dangan.services import identity

    identity.set_active(_open(), _actor(), username, False)
    out.print(f"[green]✓[/] 已停用 {username}")


@user_app.command("enable")
@command
def user_enable(username: Annotated[str, typer.Argument(help="用户名")]) -> None:
    """启用账号（系统管理员）。"""
    from dangan.services import identity

    identity.set_active(_open(), _actor(), username, True)
    out.print(f"[green]✓[/] 已启用 {username}")


@user_app.command("departments")
@command
def user_departments(username: Annotated[str, typer.Argument(help="用户名")],
                     dept: Annotated[list[str], typer.Argument(help="机构代码（一个或多个）")]) -> None:
    """设置用户所属机构（系统管理员）。"""
    from dangan.services import identity

    identity.set_departments(_open(), _actor(), username, dept)
    out.print(f"[green]✓[/] {username} 现属于：{'、'.join(dept)}")


@user_app.command("rescue")
@command
def user_rescue(username: Annotated[str, typer.Argument(help="三员账号用户名：sysadmin、secadmin 或 auditor")]) -> None:
    """应急：在服务器本机重置三员账号的密码（需能访问数据目录；记入审计日志）。"""
    from dangan.domain.access import THREE_ADMINS
    from dangan.services import identity

    if username not in THREE_ADMINS:
        raise DanganError("应急重置只适用于三员账号 sysadmin、secadmin、auditor", code="NOT_ALLOWED")
    identity.reset_password(_open(), Actor.system(_client()), username, _new_password("临时密码："))
    out.print(f"[green]✓[/] 已重置 {username} 的密码（已记入审计日志），登录后须立即修改")


@dept_app.command("list")
@command
def dept_list(fonds: Annotated[str, typer.Option("--fonds", help="全宗号")] = "Z109", as_json: JsonOpt = False) -> None:
    """列出机构。"""
    fonds_departments(fonds, as_json=as_json)


@dept_app.command("create")
@command
def dept_create(
    code: Annotated[str, typer.Argument(help="机构代码，如 BGS")],
    name: Annotated[str, typer.Argument(help="机构名称，如 办公室")],
    fonds: Annotated[str, typer.Option("--fonds", help="全宗号")] = "Z109",
    parent: Annotated[str | None, typer.Option("--parent", help="上级机构代码")] = None,
    as_json: JsonOpt = False,
) -> None:
    """新建机构（可指定上级，构成机构树）。"""
    d = fonds_svc.create_department(_open(), _actor(), fonds, code, name, parent=parent)
    if as_json:
        return _print_json(d)
    out.print(f"[green]✓[/] 已新建机构 {d['code']} {d['name']}")


@role_app.command("matrix")
@command
def role_matrix(as_json: JsonOpt = False) -> None:
    """权限矩阵：角色 × 操作 × 范围。"""
    from dangan.domain.access import SCOPE_LABELS
    from dangan.services import identity

    m = identity.permission_matrix(_open(), _actor())
    if as_json:
        return _print_json(m)
    roles = m["roles"]
    _table("权限矩阵（三员互斥：" + "、".join(r["name"] for r in roles if r["code"] in m["three_admins"]) + "）",
           ["操作"] + [r["name"] for r in roles],
           [[label] + [SCOPE_LABELS.get(r["grants"].get(action, ""), "—") for r in roles] for action, label in m["actions"].items()])


@role_app.command("assign")
@command
def role_assign(
    username: Annotated[str, typer.Argument(help="用户名")],
    roles: Annotated[list[str], typer.Argument(help="角色代码：sysadmin secadmin auditor records_head archivist clerk leader reader")],
    as_json: JsonOpt = False,
) -> None:
    """设置用户的角色（安全保密管理员；三员不可兼任）。"""
    from dangan.services import identity

    u = identity.assign_roles(_open(), _actor(), username, roles)
    if as_json:
        return _print_json(u)
    out.print(f"[green]✓[/] {username} 的角色：{'、'.join(u['role_labels']) or '无'}")


@role_app.command("clearance")
@command
def role_clearance(username: Annotated[str, typer.Argument(help="用户名")],
                   level: Annotated[str, typer.Argument(help="密级：公开 内部 秘密 机密 绝密")]) -> None:
    """设置用户的密级（安全保密管理员；不超过本系统的最高密级）。"""
    from dangan.services import identity

    u = identity.set_clearance(_open(), _actor(), username, level)
    out.print(f"[green]✓[/] {username} 的密级：{u['clearance']}")


@role_app.command("security")
@command
def role_security(
    ceiling: Annotated[str | None, typer.Option("--ceiling", help="设置本系统的最高密级（如 机密）")] = None,
    policy: Annotated[list[str] | None, typer.Option("--policy", help="密码与会话策略 项=值，如 min_length=12，可重复")] = None,
    as_json: JsonOpt = False,
) -> None:
    """查看或修改安全设置：密级列表、最高密级、密码与会话策略（安全保密管理员）。"""
    from dangan.services import identity

    a = _open()
    if ceiling:
        identity.set_ceiling(a, _actor(a), ceiling)
    if policy:
        changes: dict[str, Any] = {}
        for k, v in _parse_sets(policy).items():
            try:
                changes[k] = int(v)
            except (TypeError, ValueError):
                raise ValidationFailed(f"策略项 {k} 的值应为整数", code="BAD_ARGUMENT") from None
        identity.set_password_policy(a, _actor(a), **changes)
    info = identity.security_overview(a, _actor(a))
    if as_json:
        return _print_json(info)
    out.print(f"密级（由低到高）：{'、'.join(info['levels'])}；本系统最高密级：[bold]{info['ceiling']}[/]")
    labels = {"min_length": "密码最短长度", "min_classes": "字符类别至少", "expiry_days": "密码有效期（天，0 为不过期）",
              "history": "不得重复最近几次密码", "max_failures": "连续失败几次锁定", "lockout_minutes": "锁定时长（分钟）",
              "idle_timeout_minutes": "无操作自动退出（分钟）"}
    _table("密码与会话策略", ["项", "代码", "值"], [[labels[k], k, v] for k, v in info["password_policy"].items()])


@token_app.command("create")
@command
def token_create(
    name: Annotated[str, typer.Argument(help="令牌名称，如 OA 系统")],
    username: Annotated[str, typer.Option("--for", help="令牌代表的业务系统账号")],
    actions: Annotated[list[str], typer.Option("--allow", help="允许的操作，如 record.create、file.add，可重复")],
    category: Annotated[list[str] | None, typer.Option("--category", help="限定门类，可重复")] = None,
    dept: Annotated[list[str] | None, typer.Option("--dept", help="限定机构，可重复")] = None,
    days: Annotated[int, typer.Option("--days", help="有效天数")] = 365,
    as_json: JsonOpt = False,
) -> None:
    """签发接口令牌（系统管理员）。令牌只显示这一次。"""
    from dangan.services import identity

    t = identity.create_token(_open(), _actor(), name, username, actions=actions, categories=category or [],
                              departments=dept or [], expires_days=days)
    if as_json:
        return _print_json(t)
    out.print(f"[green]✓[/] 已签发令牌 #{t['id']} {t['name']}（到期 {t['expires_at'][:10]}）")
    out.print(f"[bold yellow]令牌（只显示这一次，请妥善保存）：[/]{t['token']}")


@token_app.command("list")
@command
def token_list(as_json: JsonOpt = False) -> None:
    """列出接口令牌（不显示令牌本身）。"""
    from dangan.services import identity

    rows = identity.list_tokens(_open(), _actor())
    if as_json:
        return _print_json(rows)
    _table("接口令牌", ["ID", "名称", "前缀", "账号", "允许的操作", "门类", "机构", "到期", "状态"],
           [[t["id"], t["name"], t["prefix"] + "…", t["username"], "、".join(t["scope"].get("actions", [])),
             "、".join(t["scope"].get("categories", [])) or "不限", "、".join(t["scope"].get("departments", [])) or "不限",
             (t["expires_at"] or "")[:10], t["state_label"]] for t in rows])


@token_app.command("revoke")
@command
def token_revoke(token_id: Annotated[int, typer.Argument(help="令牌 ID")]) -> None:
    """吊销接口令牌（立即失效）。"""
    from dangan.services import identity

    identity.revoke_token(_open(), _actor(), token_id)
    out.print(f"[green]✓[/] 已吊销令牌 #{token_id}")


import dangan.cli_access  # noqa: E402, F401  (registers request)
import dangan.cli_capture  # noqa: E402, F401  (registers import, submit, accept, catalogue, plan, schedule, stamp)
import dangan.cli_checks  # noqa: E402, F401  (registers check, package)
import dangan.cli_digitise  # noqa: E402, F401  (registers scan, ocr)
import dangan.cli_preservation  # noqa: E402, F401  (registers fixity audit)
import dangan.cli_search  # noqa: E402, F401  (registers search, reindex)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
