"""`create_app(dangan)`: the web server's application: pages at /, the REST API at /api/v1, assets at /static."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dangan.errors import DanganError
from dangan.services.context import Dangan
from dangan.web.api import create_api
from dangan.web.api.errors import translate_validation
from dangan.web.deps import NotAuthenticated, PasswordChangeRequired, clear_session_cookie, safe_next
from dangan.web.jobs import JobRunner
from dangan.web.ui import access, account, admin, capture, checks, pages, search, viewer
from dangan.web.ui import digitise as digitise_ui
from dangan.web.ui.render import HERE, error_page

log = logging.getLogger("dangan.web")

PAGE_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# answers about who may see what must not linger in a shared browser cache (the back button after logout)
NO_STORE = (b"cache-control", b"no-store")


class GuardMiddleware:
    """Security headers on every response, and refusal of state-changing requests sent from another site.

    Browsers mark cross-site requests (Sec-Fetch-Site, Origin); API clients such as business systems send
    neither, so they pass. The pages additionally check a CSRF token in every form.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if _has_nul(scope):
            # a NUL cuts a C string short (SQLite LIKE would match everything; PostgreSQL refuses it)
            body = {"error": {"code": "BAD_REQUEST", "message": "请求地址或查询参数中含有不允许的控制字符（NUL），未执行任何操作"}}
            await JSONResponse(body, status_code=400)(scope, receive, send)
            return
        if scope["method"] not in SAFE_METHODS and _cross_site(headers):
            body = {"error": {"code": "CROSS_SITE_REQUEST",
                              "message": "拒绝来自其他网站的提交请求（可能是跨站请求伪造），未执行任何操作"}}
            await JSONResponse(body, status_code=403)(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", []))
                present = {k.lower() for k, _ in raw}
                for k, v in (("x-content-type-options", "nosniff"), ("x-frame-options", "DENY"),
                             ("referrer-policy", "same-origin"), ("content-security-policy", PAGE_CSP)):
                    if k.encode() not in present:
                        raw.append((k.encode(), v.encode()))
                if NO_STORE[0] not in present and not scope["path"].startswith("/static/"):
                    raw.append(NO_STORE)
                message["headers"] = raw
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _has_nul(scope: Scope) -> bool:
    qs = scope.get("query_string", b"").lower()
    return b"%00" in qs or b"\x00" in qs or "\x00" in scope.get("path", "")


def _cross_site(headers: dict[str, str]) -> bool:
    if headers.get("sec-fetch-site") == "cross-site":
        return True
    origin = headers.get("origin")
    if origin and origin != "null":
        return urlsplit(origin).netloc.lower() != headers.get("host", "").lower()
    return origin == "null"


def create_app(app: Dangan) -> FastAPI:
    """The ASGI application for one archive. The CLI's `dangan serve` runs it with uvicorn."""
    jobs = JobRunner()
    web = FastAPI(title=app.settings.site_name, docs_url=None, redoc_url=None, openapi_url=None)
    api = create_api(app, jobs)
    web.state.dangan, web.state.jobs, web.state.api = app, jobs, api
    web.include_router(account.router)
    web.include_router(admin.router)
    web.include_router(pages.router)
    web.include_router(capture.router)
    web.include_router(checks.router)
    web.include_router(search.router)
    web.include_router(access.router)
    web.include_router(viewer.router)
    web.include_router(digitise_ui.router)
    web.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    web.mount("/api/v1", api)
    web.add_middleware(GuardMiddleware)

    @web.exception_handler(DanganError)
    async def dangan_error(request: Request, err: DanganError) -> Response:
        if isinstance(err, NotAuthenticated):
            return login_redirect(request)
        if isinstance(err, PasswordChangeRequired):
            return RedirectResponse("/password", status_code=303)
        if err.status >= 500:
            log.error("%s %s -> %s", request.method, request.url.path, err)
        title = {404: "未找到", 403: "操作被拒绝", 409: "操作无法执行", 422: "输入有误"}.get(err.status, "出错了")
        return error_page(request, err.status, title, err.message, [p.as_dict() for p in err.problems], err.code)

    @web.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> Response:
        problems: list[dict[str, Any]] = translate_validation(list(err.errors()))
        return error_page(request, 422, "地址参数有误", "页面地址中的参数有误，请从导航重新进入", problems, "VALIDATION_FAILED")

    @web.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> Response:
        if err.status_code == 404:
            return error_page(request, 404, "页面不存在", "您访问的页面不存在，请从左侧导航进入", code="NOT_FOUND")
        if err.status_code == 405:
            return error_page(request, 405, "不支持的操作", "该页面不支持此操作", code="METHOD_NOT_ALLOWED")
        return error_page(request, err.status_code, "请求有误",
                          "请求内容不完整或格式有误（上传可能被中断），未保存任何内容，请重新提交", code="BAD_REQUEST")

    return web


def login_redirect(request: Request) -> Response:
    """Pages answer a missing login with the login page, which returns here afterwards (local paths only)."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    nxt = safe_next(target) if request.method == "GET" else "/"
    params = [f"next={quote(nxt, safe='/')}"] if nxt != "/" else []
    stale = bool(request.scope.get("dangan.stale_cookie"))
    if stale:
        params.append("expired=1")
    resp = RedirectResponse("/login" + ("?" + "&".join(params) if params else ""), status_code=303)
    if stale:
        clear_session_cookie(resp, request)
    return resp
