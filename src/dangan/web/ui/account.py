"""登录、退出、修改密码: the pages that a visitor or a user who must change their password may open."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from dangan.errors import DanganError
from dangan.services import browse, identity
from dangan.services.context import Actor, Dangan
from dangan.web.deps import (
    clear_session_cookie,
    client_addr,
    get_dangan,
    identify,
    optional_actor,
    pending_actor,
    safe_next,
    set_session_cookie,
)
from dangan.web.ui.render import check_csrf, check_form_text, render

router = APIRouter(include_in_schema=False)


async def form_data(request: Request) -> FormData:
    return await request.form()


def _text(form: FormData, key: str, limit: int = 200) -> str:
    v = form.get(key)
    return v[:limit] if isinstance(v, str) else ""


def policy_text(app: Dangan) -> list[str]:
    pol = browse.password_policy(app)
    return [f"至少 {pol.min_length} 位，包含大写字母、小写字母、数字、符号中的至少 {pol.min_classes} 类",
            "不能包含用户名",
            f"不能与最近 {pol.history} 次使用过的密码相同",
            f"有效期 {pol.expiry_days} 天，到期后登录时须修改" if pol.expiry_days else "长期有效"]


def _login_page(request: Request, dangan: Dangan, *, next_url: str, error: str = "", username: str = "",
                notice: str = "", notice_kind: str = "info", status: int = 200) -> Response:
    pol = browse.password_policy(dangan)
    return render(request, "login.html", {
        "next": next_url, "error": error, "username": username, "notice": notice, "notice_kind": notice_kind,
        "demo": browse.demo_login_hint(dangan), "policy": pol, "crumbs": [],
    }, status=status, active="login")


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next_url: str | None = Query(None, alias="next", max_length=2000),
               bye: int | None = Query(None), expired: int | None = Query(None),
               dangan: Dangan = Depends(get_dangan)) -> Response:
    nxt = safe_next(next_url)
    actor = optional_actor(request)
    if actor is not None:
        return RedirectResponse("/password" if actor.must_change_password else nxt, status_code=303)
    stale = bool(request.scope.get("dangan.stale_cookie"))
    if bye:
        notice, kind = "已安全退出。", "ok"
    elif stale or expired:
        minutes = browse.password_policy(dangan).idle_timeout_minutes
        notice, kind = f"登录已超时（{minutes} 分钟无操作会自动退出），请重新登录。", "info"
    else:
        notice, kind = ("请先登录，登录后将回到您要访问的页面。" if next_url else ""), "info"
    resp = _login_page(request, dangan, next_url=nxt, notice=notice, notice_kind=kind)
    if request.scope.get("dangan.stale_cookie"):
        clear_session_cookie(resp, request)
    return resp


@router.post("/login", response_class=HTMLResponse)
def login_submit(request: Request, form: FormData = Depends(form_data), dangan: Dangan = Depends(get_dangan)) -> Response:
    check_csrf(request, form)
    check_form_text(form)
    username = _text(form, "username", 64).strip()
    password = _text(form, "password", 256)
    nxt = safe_next(_text(form, "next", 2000))
    if not username or not password:
        return _login_page(request, dangan, next_url=nxt, username=username, error="请输入用户名和密码")
    try:
        res = identity.login(dangan, username, password, client_addr(request))
    except identity.AuthFailed as e:
        return _login_page(request, dangan, next_url=nxt, username=username, error=e.message)
    old = request.cookies.get("dangan_session")
    if old:  # a new login replaces whatever session this browser had
        identity.logout(dangan, old, res.actor)
    resp = RedirectResponse("/password" if res.actor.must_change_password else nxt, status_code=303)
    set_session_cookie(resp, request, res.session_token)
    return resp


@router.post("/logout")
def logout(request: Request, form: FormData = Depends(form_data), dangan: Dangan = Depends(get_dangan)) -> Response:
    ident = identify(request)
    resp = RedirectResponse("/login?bye=1", status_code=303)
    if ident.via == "session" and ident.actor is not None:
        check_csrf(request, form)
        identity.logout(dangan, ident.session_token, ident.actor)
    clear_session_cookie(resp, request)
    return resp


def _password_page(request: Request, dangan: Dangan, actor: Actor, *, error: DanganError | str | None = None,
                   done: bool = False, status: int = 200) -> Response:
    ctx: dict[str, Any] = {"policy_lines": policy_text(dangan), "error": error, "done": done,
                           "must": actor.must_change_password and not done, "crumbs": [("首页", "/"), ("修改密码", None)]}
    return render(request, "password.html", ctx, status=status, active="password")


@router.get("/password", response_class=HTMLResponse)
def password_form(request: Request, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(pending_actor)) -> Response:
    return _password_page(request, dangan, actor)


@router.post("/password", response_class=HTMLResponse)
def password_submit(request: Request, form: FormData = Depends(form_data), dangan: Dangan = Depends(get_dangan),
                    actor: Actor = Depends(pending_actor)) -> Response:
    check_csrf(request, form)
    check_form_text(form)
    old, new, again = _text(form, "old_password", 256), _text(form, "new_password", 256), _text(form, "confirm", 256)
    if new != again:
        return _password_page(request, dangan, actor, error="两次输入的新密码不一致", status=422)
    try:
        identity.change_password(dangan, actor, old, new)
    except DanganError as e:
        return _password_page(request, dangan, actor, error=e, status=e.status)
    # the header and the check on every page read the account afresh on the next request
    request.scope.pop("dangan.identity", None)
    return _password_page(request, dangan, identify(request).actor or actor, done=True)
