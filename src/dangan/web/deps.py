"""Request dependencies shared by the API and the pages: the archive, and who is acting.

`current_actor` is the one place that decides who a request acts as:

- `Authorization: Bearer dgn_…` on the API (/api/…): an API token, checked by identity.authenticate_token
  (unknown, expired and revoked tokens all answer 401 TOKEN_INVALID). Tokens do not open the pages.
- otherwise the `dangan_session` cookie, checked by identity.resolve_session (idle timeout, disabled
  accounts and logout end it). Unsafe API calls made with the cookie must repeat the session's CSRF token
  in the `X-CSRF-Token` header; the pages check the token of every form (ui/render.csrf_guard).
- nobody: NotAuthenticated (401 JSON on the API; a redirect to /login on the pages).

A session whose user must change their password acts only on the change-password page and /api/v1/me.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request

from dangan.domain.access import ACTION_LABELS
from dangan.errors import DanganError, PermissionDenied
from dangan.services import identity
from dangan.services.context import Actor, Dangan, record_failure

SESSION_COOKIE = "dangan_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class NotAuthenticated(DanganError):
    code = "NOT_AUTHENTICATED"
    status = 401


class PasswordChangeRequired(DanganError):
    code = "PASSWORD_CHANGE_REQUIRED"
    status = 403


class CsrfFailed(DanganError):
    code = "CSRF_FAILED"
    status = 403


@dataclass(frozen=True)
class Identity:
    """Who sent the request and how: via 'session', 'token' or nobody ('')."""

    actor: Actor | None
    via: str = ""
    csrf: str = ""  # the session's CSRF token ("" for tokens and anonymous requests)
    session_token: str = ""


ANONYMOUS = Identity(None)


def get_dangan(request: Request) -> Dangan:
    return request.app.state.dangan


def client_addr(request: Request) -> str:
    return request.client.host if request.client else ""


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def is_https(request: Request) -> bool:
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or proto == "https"


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth is None:
        return None
    scheme, _, value = auth.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise NotAuthenticated("请求头 Authorization 的格式应为“Bearer 接口令牌”", code="TOKEN_INVALID")
    return value.strip()


def identify(request: Request) -> Identity:
    """Resolve the request's identity once (cached on the request; the API is mounted inside the same scope)."""
    cached = request.scope.get("dangan.identity")
    if isinstance(cached, Identity):
        return cached
    dangan = get_dangan(request)
    addr = client_addr(request)
    ident = ANONYMOUS
    raw_token = _bearer(request) if is_api(request) else None
    if raw_token is not None:
        try:
            ident = Identity(identity.authenticate_token(dangan, raw_token, addr), "token")
        except identity.AuthFailed as e:
            raise NotAuthenticated(e.message, code="TOKEN_INVALID") from e
    else:
        raw = request.cookies.get(SESSION_COOKIE, "")
        found = identity.resolve_session(dangan, raw, addr) if raw else None
        if found is not None:
            ident = Identity(found[0], "session", found[1], raw)
        elif raw:
            request.scope["dangan.stale_cookie"] = True
    request.scope["dangan.identity"] = ident
    return ident


def optional_actor(request: Request) -> Actor | None:
    """The acting user, or None; never raises for a missing login (pages use it for the header)."""
    try:
        return identify(request).actor
    except NotAuthenticated:
        return None


def _check_api_csrf(request: Request, ident: Identity) -> None:
    if ident.via != "session" or request.method in SAFE_METHODS or not is_api(request):
        return
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent or not hmac.compare_digest(sent.encode(), ident.csrf.encode()):
        raise CsrfFailed("使用登录会话调用接口时，修改类请求须在请求头 X-CSRF-Token 中携带会话的 CSRF 令牌"
                         "（GET /api/v1/me 返回 csrf_token）；业务系统请改用接口令牌。未执行任何操作")


def _authenticated(request: Request) -> Identity:
    ident = identify(request)
    if ident.actor is None:
        expired = bool(request.scope.get("dangan.stale_cookie"))
        msg = "登录已超时或已退出，请重新登录" if expired else "请先登录"
        if is_api(request):
            msg += "；业务系统请在请求头 Authorization 中提供接口令牌（Bearer dgn_…）"
        raise NotAuthenticated(msg)
    _check_api_csrf(request, ident)
    return ident


def current_actor(request: Request) -> Actor:
    """The logged-in user or token holder; refuses anonymous requests and sessions that must change password."""
    ident = _authenticated(request)
    assert ident.actor is not None
    if ident.via == "session" and ident.actor.must_change_password:
        raise PasswordChangeRequired("请先修改初始密码（或已过期的密码），修改后才能继续使用系统")
    return ident.actor


def pending_actor(request: Request) -> Actor:
    """Like current_actor, but also for a session that must change its password (the change page, logout, /me)."""
    ident = _authenticated(request)
    assert ident.actor is not None
    return ident.actor


def current_identity(request: Request) -> Identity:
    _authenticated(request)
    return identify(request)


def can(actor: Actor | None, *actions: str) -> bool:
    """Whether the actor holds any of the actions (at any scope). For navigation and buttons only."""
    return actor is not None and any(actor.scope_for(a) is not None for a in actions)


def require_any(request: Request, actor: Actor, *actions: str) -> None:
    """Refuse (403, audited as denied) unless the actor holds one of the actions.

    For the few faces that gather reads from services which do not check a right themselves
    (the permission matrix, the department list of the 机构管理 page, background job status)."""
    if can(actor, *actions):
        return
    names = "”或“".join(ACTION_LABELS.get(a, a) for a in actions)
    err = PermissionDenied(f"没有“{names}”的权限，请联系安全保密管理员", code="PERMISSION_DENIED")
    err.audit_outcome = "denied"  # type: ignore[attr-defined]
    record_failure(get_dangan(request), actor, actions[0], "page", request.url.path[:64], err)
    raise err


def safe_next(target: Any, default: str = "/") -> str:
    """A local path to return to after login; anything that could leave the site becomes `default`."""
    if not isinstance(target, str) or not target or len(target) > 2000:
        return default
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    if parts.path.startswith(("/login", "/logout")):
        return default
    return target


def set_session_cookie(response: Any, request: Request, raw: str) -> None:
    response.set_cookie(SESSION_COOKIE, raw, httponly=True, samesite="lax", path="/", secure=is_https(request))


def clear_session_cookie(response: Any, request: Request) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=is_https(request))
