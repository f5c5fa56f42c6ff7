"""Templates (autoescaped), display filters, CSRF token handling and the error pages of the web UI."""

from __future__ import annotations

import datetime as dt
import hmac
import json
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from starlette.datastructures import FormData

from dangan.domain.access import ROLE_LABELS
from dangan.domain.presets import LEVEL_LABELS
from dangan.domain.states import STATE_LABELS
from dangan.errors import DanganError, FieldProblem, ValidationFailed
from dangan.web.deps import SAFE_METHODS, CsrfFailed, can, identify, is_https, optional_actor

HERE = Path(__file__).resolve().parent
CSRF_COOKIE = "dangan_csrf"
CSRF_FIELD = "csrf_token"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,64}")
BEIJING = dt.timezone(dt.timedelta(hours=8), "北京时间")

# key, label, href, icon, actions that show it (any of them; empty: everyone logged in), group heading
NAV = [
    ("home", "首页", "/", "home", (), "档案工作"),
    ("browse", "档案浏览", "/records", "folder", ("record.read",), "档案工作"),
    ("search", "检索", "/search", "list", ("record.read",), "档案工作"),
    ("new", "新建档案", "/records/new", "plus", ("record.create",), "档案工作"),
    ("catalogue", "归档文件目录", "/catalogue", "list", ("record.read",), "档案工作"),
    ("my_requests", "我的申请", "/requests", "file", ("request.create",), "档案利用"),
    ("approvals", "待我审批", "/approvals", "check", ("request.approve",), "档案利用"),
    ("lending", "借阅登记台", "/lending", "inbox", ("loan.manage",), "档案利用"),
    ("register", "利用登记", "/register", "calendar", ("request.register",), "档案利用"),
    ("import", "批量导入", "/import", "upload", ("record.import",), "收集与整理"),
    ("review", "接收归档", "/review", "inbox", ("record.file",), "收集与整理"),
    ("plans", "归档计划", "/plans", "calendar", ("plan.manage", "record.create"), "收集与整理"),
    ("package_import", "接收数据包", "/packages/import", "inbox", ("record.import",), "收集与整理"),
    ("scan", "数字化", "/scan", "layers", ("scan.import", "scan.qc", "ocr.run", "scan.accept"), "收集与整理"),
    ("fonds", "全宗与门类", "/fonds", "layers", ("fonds.manage", "record.read"), "配置"),
    ("schedule", "保管期限表", "/schedule", "clock", ("schedule.manage", "record.create"), "配置"),
    ("departments", "机构管理", "/admin/departments", "org", ("user.manage", "fonds.manage"), "配置"),
    ("users", "用户管理", "/admin/users", "users", ("user.manage",), "用户与权限"),
    ("roles", "角色与密级", "/admin/roles", "key", ("role.assign",), "用户与权限"),
    ("matrix", "权限矩阵", "/admin/matrix", "grid", ("user.manage", "role.assign", "audit.read"), "用户与权限"),
    ("security", "安全设置", "/admin/security", "lock", ("user.manage", "role.assign", "audit.read"), "用户与权限"),
    ("tokens", "接口令牌", "/admin/tokens", "token", ("token.manage",), "用户与权限"),
    ("audit", "审计日志", "/audit", "shield", ("audit.read",), "安全与保存"),
    ("fixity", "固化检测", "/fixity", "check", ("fixity.run",), "安全与保存"),
    ("checks", "四性检测", "/checks", "shield", ("check.run",), "安全与保存"),
    ("schemes", "检测方案", "/check-schemes", "grid", ("check.run",), "安全与保存"),
    ("preservation", "长期保存", "/preservation", "clock", ("fixity.run",), "安全与保存"),
    ("search_index", "检索索引", "/search/index", "list", ("search.reindex",), "安全与保存"),
    ("api", "接口文档", "/api/v1/docs", "code", (), "集成"),
]


def nav_for(actor: Any) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """The navigation groups and entries this user may use (nothing for an anonymous visitor)."""
    if actor is None:
        return []
    groups: list[tuple[str, list[tuple[str, str, str, str]]]] = []
    for key, label, href, ic, actions, group in NAV:
        if actions and not can(actor, *actions):
            continue
        if not groups or groups[-1][0] != group:
            groups.append((group, []))
        groups[-1][1].append((key, label, href, ic))
    return groups


def filesize(n: Any) -> str:
    try:
        v = float(n)
    except (TypeError, ValueError):
        return ""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if v < 1024 or unit == "TB":
            return f"{int(v)} B" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    return ""


def localtime(v: Any, seconds: bool = False) -> str:
    """ISO timestamps (UTC) shown in Beijing time: 2024-03-05 14:20."""
    if not v:
        return ""
    try:
        t = dt.datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    except ValueError:
        return str(v)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def show_value(v: Any) -> str:
    if v is None or v == "":
        return ""
    if isinstance(v, list):
        return "；".join(str(x) for x in v)
    return str(v)


def short_json(v: Any, limit: int = 140) -> str:
    if not v:
        return ""
    s = json.dumps(v, ensure_ascii=False, default=str)
    return s if len(s) <= limit else s[:limit] + "…"


DETAIL_LABELS = {
    "title": "题名", "archival_code": "档号", "reason": "原因", "name": "文件名", "size": "大小", "category": "门类",
    "level": "层级", "from_state": "原状态", "to_state": "新状态", "checked": "检测文件", "failed": "未通过",
    "code": "错误代码", "message": "说明", "returned": "返回条数", "filter": "条件", "fonds": "全宗", "preset": "预置",
    "record_id": "档案", "ok": "结论", "problems": "问题", "outcome": "结论", "files": "文件数", "after": "修改为",
    "database": "数据库", "storage": "存储", "deleted": "删除", "bytes": "字节",
    "username": "用户", "user": "账号", "roles": "角色", "clearance": "密级", "before": "原为", "departments": "机构",
    "active": "启用", "demo": "演示数据", "minutes": "锁定分钟", "scope": "范围", "expires_at": "有效期至",
    "format": "格式", "filter_action": "筛选·操作", "filter_object_type": "筛选·对象", "filter_object_id": "筛选·编号",
    "filter_actor": "筛选·操作者",
}
REASON_LABELS = {"wrong_password": "密码错误", "unknown_or_inactive": "用户不存在或已停用", "unknown": "令牌不存在",
                 "expired": "令牌已过期", "revoked": "令牌已吊销", "user_inactive": "账号已停用"}
_STATE_TEXT = {s.value: label for s, label in STATE_LABELS.items()}


def audit_detail(detail: Any, limit: int = 6) -> Markup:
    """An audit event's detail as short labelled pairs (digests and raw before-images left to the JSON)."""
    if not isinstance(detail, dict):
        return Markup("")
    out = []
    for k, v in detail.items():
        if k in ("sha256", "sm3", "failures") or v in (None, "", [], {}):
            continue
        if k == "before" and not isinstance(v, list | str):
            continue
        if k in ("roles", "before", "after") and isinstance(v, list) and all(isinstance(x, str) for x in v):
            v = "、".join(ROLE_LABELS.get(x, x) for x in v) or "无"
        elif isinstance(v, bool) and k != "ok":
            v = "是" if v else "否"
        elif k == "reason" and isinstance(v, str):
            v = REASON_LABELS.get(v, v)
        if k == "level":
            v = LEVEL_LABELS.get(v, v)
        elif k in ("from_state", "to_state"):
            v = _STATE_TEXT.get(v, v)
        elif k == "size":
            v = filesize(v)
        elif k == "ok":
            v = "通过" if v else "未通过"
        elif k == "files" and isinstance(v, list):
            v = len(v)
        elif isinstance(v, dict | list):
            v = short_json(v, 80)
        out.append(Markup('<span class="kv"><span class="kv-k">{}</span>{}</span>').format(DETAIL_LABELS.get(k, k), v))
        if len(out) >= limit:
            break
    return Markup("").join(out)


def doc_blocks(text: str) -> list[tuple[str, Markup]]:
    """Plain paragraphs and "- " bullets of an OpenAPI description, with `code` marked; escaped first."""
    blocks: list[tuple[str, Markup]] = []
    for line in text.splitlines():
        line = line.rstrip()
        if not line:
            continue
        esc = str(escape(line.lstrip("- ") if line.startswith("- ") else line))
        html = Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", esc))
        if line.startswith("- "):
            blocks.append(("li", html))
        elif line.startswith("  ") and blocks and blocks[-1][0] == "li":
            blocks[-1] = ("li", blocks[-1][1] + Markup(" ") + Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(line.strip())))))
        else:
            blocks.append(("p", html))
    return blocks


def domain_labels(spec: dict[str, Any]) -> dict[str, str]:
    """Code → name for coded fields whose description reads like “01 会计凭证，02 会计账簿”."""
    out: dict[str, str] = {}
    for part in re.split(r"[，,；;]", spec.get("description") or ""):
        m = re.fullmatch(r"\s*(\S+)\s+(.+?)\s*", part)
        if m and m.group(1) in (spec.get("domain") or []):
            out[m.group(1)] = m.group(2)
    return out


def enum_text(value: Any, spec: dict[str, Any]) -> str:
    label = domain_labels(spec).get(str(value))
    return f"{value} {label}" if label else show_value(value)


def number(v: Any) -> str:
    try:
        return f"{int(v):,}"
    except (TypeError, ValueError):
        return ""


def query(base: dict[str, Any], **changes: Any) -> str:
    """Build a query string from the current parameters with some changed (None removes a key)."""
    d = {k: v for k, v in {**base, **changes}.items() if v not in (None, "")}
    return ("?" + urlencode(d)) if d else ""


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.Undefined)
    env.filters.update(filesize=filesize, localtime=localtime, show=show_value, short_json=short_json, number=number,
                       audit_detail=audit_detail, doc_blocks=doc_blocks, enum_text=enum_text)
    env.globals.update(query=query, NAV=NAV)
    return env


templates = Jinja2Templates(env=_env())


def csrf_token(request: Request) -> str:
    """The token a form must carry: the login session's, or before login a random one kept in a cookie."""
    tok = getattr(request.state, "csrf", None)
    if tok:
        return tok
    try:
        session_csrf = identify(request).csrf
    except DanganError:
        session_csrf = ""
    if session_csrf:
        tok = session_csrf
    else:
        tok = request.cookies.get(CSRF_COOKIE, "")
        if not _TOKEN.fullmatch(tok):
            tok = secrets.token_urlsafe(32)
            request.state.csrf_new = True
    request.state.csrf = tok
    return tok


def _expected_csrf(request: Request) -> str:
    try:
        session_csrf = identify(request).csrf
    except DanganError:
        session_csrf = ""
    return session_csrf or request.cookies.get(CSRF_COOKIE, "")


def check_csrf(request: Request, form: FormData) -> None:
    """The form field (or X-CSRF-Token header) must equal the session's token, compared in constant time.

    Before login (the login form itself) it must equal the random token of the dangan_csrf cookie
    (double submit; SameSite=Strict keeps that cookie home)."""
    sent = form.get(CSRF_FIELD)
    if not isinstance(sent, str) or not sent:
        sent = request.headers.get("x-csrf-token", "")
    expected = _expected_csrf(request)
    if not expected or not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CsrfFailed("表单已失效或来源不明（安全校验未通过），未执行任何操作。请刷新页面后重试")


async def csrf_guard(request: Request) -> None:
    """Every state-changing page request carries the CSRF token (a dependency of the whole pages router).

    The parsed form is cached on the request, so the route reads the same form without parsing twice."""
    if request.method in SAFE_METHODS:
        return
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
    else:
        form = FormData()
    check_csrf(request, form)
    check_form_text(form)


def check_form_text(form: FormData) -> None:
    """No text field may carry a NUL (PostgreSQL refuses it; C strings end there)."""
    bad = [k for k, v in form.multi_items() if isinstance(v, str) and "\x00" in v]
    if bad:
        raise ValidationFailed("提交的内容含有不允许的控制字符（NUL），未保存任何内容，请删除后重试", code="INVALID_CHARACTERS",
                               problems=[FieldProblem(k, "INVALID_CHARACTERS", "不能包含控制字符") for k in bad])


def render(request: Request, name: str, ctx: dict[str, Any] | None = None, status: int = 200,
           active: str = "", headers: dict[str, str] | None = None) -> HTMLResponse:
    ctx = dict(ctx or {})
    ctx.setdefault("active", active)
    ctx.setdefault("crumbs", [])
    ctx["csrf"] = csrf_token(request)
    ctx["site_name"] = request.app.state.dangan.settings.site_name
    actor = optional_actor(request)
    ctx["actor"] = actor
    ctx["nav"] = [] if actor is not None and actor.must_change_password else nav_for(actor)
    ctx["can"] = lambda *actions: can(actor, *actions)
    ctx["role_names"] = [ROLE_LABELS.get(r, r) for r in sorted(actor.roles, key=_role_order)] if actor else []
    resp = templates.TemplateResponse(request, name, ctx, status_code=status, headers=headers)
    if getattr(request.state, "csrf_new", False):
        resp.set_cookie(CSRF_COOKIE, ctx["csrf"], httponly=True, samesite="strict", path="/",
                        secure=is_https(request))
    return resp


def _role_order(code: str) -> int:
    keys = list(ROLE_LABELS)
    return keys.index(code) if code in keys else len(keys)


def error_page(request: Request, status: int, title: str, message: str, problems: list[dict[str, Any]] | None = None,
               code: str = "") -> HTMLResponse:
    return render(request, "error.html", {"status": status, "title": title, "message": message,
                                          "problems": problems or [], "code": code,
                                          "crumbs": [("首页", "/"), (title, None)]}, status=status)
