"""用户与权限 pages: 用户管理 (系统管理员), 角色与密级 (安全保密管理员), 权限矩阵, 安全设置, 机构管理, 接口令牌.

Every change goes through the identity and fonds services, which check the right and audit the change; the
pages only gather the form and show the outcome. A password typed or generated here is shown once, in the
answer to the request that set it, never in a URL.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from dangan.domain.access import ACTION_LABELS, ROLE_LABELS, SCOPE_LABELS, THREE_ADMINS
from dangan.errors import DanganError, PermissionDenied
from dangan.services import categories, fonds, identity
from dangan.services.browse import security_levels
from dangan.services.context import BOOTSTRAP_ADMIN, Actor, Dangan
from dangan.services.setup import initial_password
from dangan.web.deps import can, current_actor, get_dangan, require_any
from dangan.web.ui.render import csrf_guard, render

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_guard)])

NO_STORE = {"Cache-Control": "no-store"}
# the actions a business system's token may be given on this page (administration is never done by a token)
TOKEN_ACTIONS = ["record.create", "file.add", "record.submit", "record.read", "file.download", "record.update", "record.file"]


async def form_data(request: Request) -> FormData:
    return await request.form()


def _text(form: FormData, key: str, limit: int = 200) -> str:
    v = form.get(key)
    return v.strip()[:limit] if isinstance(v, str) else ""


def _list(form: FormData, key: str) -> list[str]:
    return [v.strip() for v in form.getlist(key) if isinstance(v, str) and v.strip()]


def _all_departments(dangan: Dangan, actor: Actor) -> list[dict[str, Any]]:
    out = []
    for f in fonds.list_fonds(dangan, actor):
        for d in fonds.list_departments(dangan, actor, f["code"]):
            out.append({**d, "fonds_code": f["code"], "fonds_name": f["name"]})
    return out


def _dept_args(dangan: Dangan, actor: Actor, chosen: list[str]) -> tuple[list[str], str | None]:
    """Checkbox values are FONDS/CODE; the services take codes (and one fonds when all are in the same one)."""
    codes, fonds_codes = [], set()
    for v in chosen:
        f, _, code = v.partition("/")
        if code:
            fonds_codes.add(f)
            codes.append(code)
        else:
            codes.append(f)
    return codes, (fonds_codes.pop() if len(fonds_codes) == 1 else None)


def _reraise_denied(e: DanganError) -> None:
    """A refusal is the service's answer (already audited): the error page, not the form again."""
    if isinstance(e, PermissionDenied):
        raise e


def _state(u: dict[str, Any]) -> tuple[str, str]:
    if u["username"] == BOOTSTRAP_ADMIN and not u["roles"]:
        return "system", "内置（仅命令行）"
    if not u["is_active"]:
        return "off", "已停用"
    if u["locked"]:
        return "locked", "已锁定"
    if u["is_system_account"]:
        return "system", "业务系统"
    if u["must_change_password"]:
        return "must", "待改密码"
    return "on", "正常"


# ---------------------------------------------------------------- 用户管理 (系统管理员)


def _users_page(request: Request, dangan: Dangan, actor: Actor, *, notice: str = "", secret: dict[str, str] | None = None,
                error: DanganError | None = None, values: dict[str, Any] | None = None, status: int = 200) -> Response:
    require_any(request, actor, "user.manage")
    users = identity.list_users(dangan, actor)
    for u in users:
        u["state"], u["state_label"] = _state(u)
    return render(request, "users.html", {
        "users": users, "departments": _all_departments(dangan, actor), "notice": notice, "secret": secret,
        "error": error, "values": values or {}, "crumbs": [("首页", "/"), ("用户管理", None)],
    }, status=status, active="users", headers=NO_STORE)


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    return _users_page(request, dangan, actor)


@router.post("/admin/users", response_class=HTMLResponse)
def users_create(request: Request, form: FormData = Depends(form_data), dangan: Dangan = Depends(get_dangan),
                 actor: Actor = Depends(current_actor)) -> Response:
    username, name = _text(form, "username", 64), _text(form, "display_name", 100)
    password = _text(form, "password", 128)
    generated = not password
    password = password or initial_password()
    depts = _list(form, "departments")
    system = form.get("system_account") == "1"
    values = {"username": username, "display_name": name, "departments": depts, "system_account": system}
    codes, fonds_code = _dept_args(dangan, actor, depts)
    try:
        u = identity.create_user(dangan, actor, username, name, password, departments=codes, fonds=fonds_code,
                                 system_account=system)
    except DanganError as e:
        _reraise_denied(e)
        return _users_page(request, dangan, actor, error=e, values=values, status=e.status)
    note = "（业务系统账号：不能登录页面，请由安全保密管理员分配角色后签发接口令牌）" if system else \
        "。请由安全保密管理员分配角色与密级；首次登录须修改密码"
    return _users_page(request, dangan, actor, notice=f"已新建用户“{u['display_name']}”（{u['username']}）{note}",
                       secret={"label": "初始密码" + ("（系统生成）" if generated else ""), "value": password,
                               "username": u["username"]} if not system or generated else None)


@router.post("/admin/users/{username}/password", response_class=HTMLResponse)
def users_reset_password(request: Request, username: str, form: FormData = Depends(form_data),
                         dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    password = _text(form, "password", 128)
    generated = not password
    password = password or initial_password()
    try:
        u = identity.reset_password(dangan, actor, username, password)
    except DanganError as e:
        _reraise_denied(e)
        return _users_page(request, dangan, actor, error=e, status=e.status)
    return _users_page(request, dangan, actor,
                       notice=f"已重置“{u['display_name']}”（{u['username']}）的密码并解除锁定；其登录会话已结束，下次登录须修改密码",
                       secret={"label": "临时密码" + ("（系统生成）" if generated else ""), "value": password,
                               "username": u["username"]})


@router.post("/admin/users/{username}/active", response_class=HTMLResponse)
def users_set_active(request: Request, username: str, form: FormData = Depends(form_data),
                     dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    active = _text(form, "active") == "1"
    try:
        u = identity.set_active(dangan, actor, username, active)
    except DanganError as e:
        _reraise_denied(e)
        return _users_page(request, dangan, actor, error=e, status=e.status)
    what = "已启用" if active else "已停用（其登录会话已结束，接口令牌随之失效）"
    return _users_page(request, dangan, actor, notice=f"用户“{u['display_name']}”（{u['username']}）{what}")


@router.post("/admin/users/{username}/departments", response_class=HTMLResponse)
def users_set_departments(request: Request, username: str, form: FormData = Depends(form_data),
                          dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    codes, _ = _dept_args(dangan, actor, _list(form, "departments"))
    try:
        u = identity.set_departments(dangan, actor, username, codes)
    except DanganError as e:
        _reraise_denied(e)
        return _users_page(request, dangan, actor, error=e, status=e.status)
    names = "、".join(d["name"] for d in u["departments"]) or "无"
    return _users_page(request, dangan, actor, notice=f"已设置“{u['display_name']}”的所属机构：{names}")


# ---------------------------------------------------------------- 角色与密级 (安全保密管理员)


def _roles_page(request: Request, dangan: Dangan, actor: Actor, *, notice: str = "", error: DanganError | None = None,
                failed_user: str = "", tried: list[str] | None = None, status: int = 200) -> Response:
    require_any(request, actor, "role.assign")
    users = identity.list_users(dangan, actor)
    for u in users:
        u["state"], u["state_label"] = _state(u)
    return render(request, "roles.html", {
        "users": users, "roles": ROLE_LABELS, "three": THREE_ADMINS, "levels": security_levels(dangan),
        "notice": notice, "error": error, "failed_user": failed_user, "tried": tried or [],
        "crumbs": [("首页", "/"), ("角色与密级", None)],
    }, status=status, active="roles")


@router.get("/admin/roles", response_class=HTMLResponse)
def roles_page(request: Request, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    return _roles_page(request, dangan, actor)


@router.post("/admin/roles/{username}", response_class=HTMLResponse)
def roles_assign(request: Request, username: str, form: FormData = Depends(form_data), dangan: Dangan = Depends(get_dangan),
                 actor: Actor = Depends(current_actor)) -> Response:
    wanted = _list(form, "roles")
    try:
        u = identity.assign_roles(dangan, actor, username, wanted)
    except DanganError as e:
        _reraise_denied(e)
        return _roles_page(request, dangan, actor, error=e, failed_user=username, tried=wanted, status=e.status)
    names = "、".join(u["role_labels"]) or "无"
    return _roles_page(request, dangan, actor, notice=f"已设置“{u['display_name']}”（{u['username']}）的角色：{names}")


@router.post("/admin/roles/{username}/clearance", response_class=HTMLResponse)
def roles_clearance(request: Request, username: str, form: FormData = Depends(form_data),
                    dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    try:
        u = identity.set_clearance(dangan, actor, username, _text(form, "clearance", 16))
    except DanganError as e:
        _reraise_denied(e)
        return _roles_page(request, dangan, actor, error=e, failed_user=username, status=e.status)
    return _roles_page(request, dangan, actor, notice=f"已将“{u['display_name']}”（{u['username']}）的密级设为“{u['clearance']}”")


# ---------------------------------------------------------------- 权限矩阵


@router.get("/admin/matrix", response_class=HTMLResponse)
def matrix_page(request: Request, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "user.manage", "role.assign", "audit.read")
    m = identity.permission_matrix(dangan, actor)
    order = list(ROLE_LABELS)  # 三员 first, then the roles of records work; custom roles last
    m["roles"].sort(key=lambda r: (order.index(r["code"]) if r["code"] in order else len(order), r["code"]))
    return render(request, "matrix.html", {
        "m": m, "actions": ACTION_LABELS, "scopes": SCOPE_LABELS, "three": THREE_ADMINS, "levels": security_levels(dangan),
        "crumbs": [("首页", "/"), ("权限矩阵", None)],
    }, active="matrix")


# ---------------------------------------------------------------- 安全设置 (三员 read; 安全保密管理员 changes)

POLICY_LABELS = {"min_length": "密码最短长度", "min_classes": "字符类别至少", "expiry_days": "密码有效期（天，0 为不过期）",
                 "history": "不得重复最近几次密码", "max_failures": "连续失败几次锁定", "lockout_minutes": "锁定时长（分钟）",
                 "idle_timeout_minutes": "无操作自动退出（分钟）"}
POLICY_UNITS = {"min_length": "位", "min_classes": "类", "expiry_days": "天", "history": "次", "max_failures": "次",
                "lockout_minutes": "分钟", "idle_timeout_minutes": "分钟"}
POLICY_HINTS = {"min_classes": "大写字母、小写字母、数字、符号，共 4 类", "max_failures": "锁定期间输入正确密码也不能登录",
                "idle_timeout_minutes": "超过此时长没有操作，登录会话结束"}


def _security_page(request: Request, dangan: Dangan, actor: Actor, *, notice: str = "", error: DanganError | None = None,
                   form: str = "", values: dict[str, str] | None = None, status: int = 200) -> Response:
    require_any(request, actor, "user.manage", "role.assign", "audit.read")
    info = identity.security_overview(dangan, actor)
    levels, ceiling = info["levels"], info["ceiling"]
    top = levels.index(ceiling) if ceiling in levels else len(levels) - 1
    pol = info["password_policy"]
    field_errors = {p.field: p.message for p in (error.problems or [])} if error and form == "policy" else {}
    policy_rows = [{"key": k, "label": label, "unit": POLICY_UNITS[k], "hint": POLICY_HINTS.get(k, ""), "value": pol[k],
                    "shown": (values or {}).get(k, str(pol[k])) if form == "policy" else str(pol[k]),
                    "min": identity.POLICY_LIMITS[k][0], "max": identity.POLICY_LIMITS[k][1], "error": field_errors.get(k, "")}
                   for k, label in POLICY_LABELS.items()]
    return render(request, "security.html", {
        "levels": [{"name": lv, "rank": i + 1, "ceiling": i == top, "above": i > top} for i, lv in enumerate(levels)],
        "ceiling": ceiling, "policy": policy_rows, "editable": can(actor, "role.assign"), "notice": notice,
        "error": error, "form": form, "chosen": (values or {}).get("level", ceiling) if form == "ceiling" else ceiling,
        "crumbs": [("首页", "/"), ("安全设置", None)],
    }, status=status, active="security", headers=NO_STORE)


@router.get("/admin/security", response_class=HTMLResponse)
def security_page(request: Request, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    return _security_page(request, dangan, actor)


@router.post("/admin/security/ceiling", response_class=HTMLResponse)
def security_ceiling(request: Request, form: FormData = Depends(form_data), dangan: Dangan = Depends(get_dangan),
                     actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "role.assign")
    level = _text(form, "level", 16)
    before = identity.security_overview(dangan, actor)["ceiling"]
    if level == before:
        return _security_page(request, dangan, actor, notice=f"系统最高密级仍为“{level}”，未作修改")
    try:
        identity.set_ceiling(dangan, actor, level)
    except DanganError as e:
        _reraise_denied(e)
        return _security_page(request, dangan, actor, error=e, form="ceiling", values={"level": level}, status=e.status)
    return _security_page(request, dangan, actor, notice=f"已将系统最高密级由“{before}”改为“{level}”")


@router.post("/admin/security/password-policy", response_class=HTMLResponse)
def security_policy(request: Request, form: FormData = Depends(form_data), dangan: Dangan = Depends(get_dangan),
                    actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "role.assign")
    current = identity.security_overview(dangan, actor)["password_policy"]
    values: dict[str, str] = {}
    changes: dict[str, Any] = {}
    for k in POLICY_LABELS:
        if k not in form:  # a field left out of the form keeps its value
            continue
        values[k] = raw = _text(form, k, 12)
        try:
            v: Any = int(raw)
        except ValueError:
            v = raw  # the service answers a non-number with the allowed range
        if v != current[k]:
            changes[k] = v
    if not changes:
        return _security_page(request, dangan, actor, notice="密码与会话策略没有变化，未作修改")
    try:
        identity.set_password_policy(dangan, actor, **changes)
    except DanganError as e:
        _reraise_denied(e)
        return _security_page(request, dangan, actor, error=e, form="policy", values=values, status=e.status)
    what = "；".join(f"{POLICY_LABELS[k]} {current[k]} → {v}" for k, v in changes.items())
    return _security_page(request, dangan, actor, notice=f"已保存密码与会话策略：{what}")


# ---------------------------------------------------------------- 机构管理


def _departments_page(request: Request, dangan: Dangan, actor: Actor, fonds_code: str | None, *, notice: str = "",
                      error: DanganError | None = None, values: dict[str, Any] | None = None, status: int = 200) -> Response:
    require_any(request, actor, "user.manage", "fonds.manage")
    all_fonds = fonds.list_fonds(dangan, actor)
    codes = [f["code"] for f in all_fonds]
    code = fonds_code.upper() if fonds_code and fonds_code.upper() in codes else (codes[0] if codes else None)
    depts = fonds.list_departments(dangan, actor, code) if code else []
    by_id = {d["id"]: d for d in depts}
    for d in depts:
        parent = by_id.get(d.get("parent_id"))
        d["parent_name"] = parent["name"] if parent else ""
    return render(request, "departments.html", {
        "fonds_list": all_fonds, "fonds_code": code, "departments": depts, "notice": notice, "error": error,
        "values": values or {}, "crumbs": [("首页", "/"), ("机构管理", None)],
    }, status=status, active="departments")


@router.get("/admin/departments", response_class=HTMLResponse)
def departments_page(request: Request, fonds_code: str | None = Query(None, alias="fonds", max_length=16),
                     dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    return _departments_page(request, dangan, actor, fonds_code)


@router.post("/admin/departments", response_class=HTMLResponse)
def departments_create(request: Request, form: FormData = Depends(form_data), dangan: Dangan = Depends(get_dangan),
                       actor: Actor = Depends(current_actor)) -> Response:
    fonds_code = _text(form, "fonds", 16)
    values = {"code": _text(form, "code", 16), "name": _text(form, "name", 100), "parent": _text(form, "parent", 16),
              "sort_order": _text(form, "sort_order", 6)}
    try:
        order = int(values["sort_order"] or 0)
    except ValueError:
        order = 0
    try:
        d = fonds.create_department(dangan, actor, fonds_code, values["code"], values["name"], values["parent"] or None, order)
    except DanganError as e:
        _reraise_denied(e)
        return _departments_page(request, dangan, actor, fonds_code, error=e, values=values, status=e.status)
    return _departments_page(request, dangan, actor, fonds_code, notice=f"已新建机构“{d['name']}”（{d['code']}）")


# ---------------------------------------------------------------- 接口令牌


def _tokens_page(request: Request, dangan: Dangan, actor: Actor, *, notice: str = "", created: dict[str, Any] | None = None,
                 error: DanganError | None = None, values: dict[str, Any] | None = None, status: int = 200) -> Response:
    tokens = identity.list_tokens(dangan, actor)
    try:
        users = [u for u in identity.list_users(dangan, actor) if u["is_active"]]
    except PermissionDenied:
        users = []
    users.sort(key=lambda u: (not u["is_system_account"], u["username"]))
    cats: dict[str, str] = {}
    for f in fonds.list_fonds(dangan, actor):
        for c in categories.list_categories(dangan, actor, f["code"]):
            cats.setdefault(c["code"], c["name"])
    depts: dict[str, str] = {}
    for d in _all_departments(dangan, actor):
        depts.setdefault(d["code"], d["name"])
    actions = {a: ACTION_LABELS[a] for a in TOKEN_ACTIONS}
    for t in tokens:
        sc = t.get("scope") or {}
        t["action_labels"] = [ACTION_LABELS.get(a, a) for a in sc.get("actions", [])]
        t["category_labels"] = [f"{c} {cats.get(c, '')}".strip() for c in sc.get("categories", [])]
        t["department_labels"] = [f"{d} {depts.get(d, '')}".strip() for d in sc.get("departments", [])]
    return render(request, "tokens.html", {
        "tokens": tokens, "users": users, "categories": cats, "departments": depts, "actions": actions,
        "notice": notice, "created": created, "error": error,
        "values": values or {"actions": ["record.create", "file.add"], "expires_days": "365"},
        "crumbs": [("首页", "/"), ("接口令牌", None)],
    }, status=status, active="tokens", headers=NO_STORE)


@router.get("/admin/tokens", response_class=HTMLResponse)
def tokens_page(request: Request, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    return _tokens_page(request, dangan, actor)


@router.post("/admin/tokens", response_class=HTMLResponse)
def tokens_create(request: Request, form: FormData = Depends(form_data), dangan: Dangan = Depends(get_dangan),
                  actor: Actor = Depends(current_actor)) -> Response:
    values = {"name": _text(form, "name", 100), "username": _text(form, "username", 64), "actions": _list(form, "actions"),
              "categories": _list(form, "categories"), "departments": _list(form, "departments"),
              "expires_days": _text(form, "expires_days", 6)}
    days: int | None
    if values["expires_days"] in ("", "0"):
        days = None
    else:
        try:
            days = int(values["expires_days"])
        except ValueError:
            days = -1  # the service answers with its own message for an out-of-range value
    try:
        t = identity.create_token(dangan, actor, values["name"], values["username"], actions=values["actions"],
                                  categories=values["categories"], departments=values["departments"], expires_days=days)
    except DanganError as e:
        _reraise_denied(e)
        return _tokens_page(request, dangan, actor, error=e, values=values, status=e.status)
    return _tokens_page(request, dangan, actor, created=t)


@router.post("/admin/tokens/{token_id}/revoke", response_class=HTMLResponse)
def tokens_revoke(request: Request, token_id: int, dangan: Dangan = Depends(get_dangan),
                  actor: Actor = Depends(current_actor)) -> Response:
    try:
        t = identity.revoke_token(dangan, actor, token_id)
    except DanganError as e:
        _reraise_denied(e)
        return _tokens_page(request, dangan, actor, error=e, status=e.status)
    return _tokens_page(request, dangan, actor, notice=f"已吊销令牌“{t['name']}”（{t['prefix']}…），使用它的请求将被拒绝")
