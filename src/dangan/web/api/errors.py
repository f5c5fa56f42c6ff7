"""Every API error has one shape: `{"error": {"code", "message", "problems"?, "detail"?}}`, messages in Chinese."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from dangan.errors import DanganError

log = logging.getLogger("dangan.web")


class FieldProblemOut(BaseModel):
    field: str
    code: str
    message: str
    label: str | None = None


class ErrorBody(BaseModel):
    code: str
    message: str
    message_en: str | None = None
    problems: list[FieldProblemOut] | None = None
    detail: dict[str, Any] | None = None


class ErrorResponse(BaseModel):
    """The shape of every error: a stable code, a Chinese message and, for bad input, the field problems."""

    error: ErrorBody


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "请求有误"},
    401: {"model": ErrorResponse, "description": "未登录、登录已超时，或接口令牌无效、已过期、已吊销"},
    403: {"model": ErrorResponse, "description": "没有执行此操作的权限（或缺少 CSRF 令牌）"},
    404: {"model": ErrorResponse, "description": "对象不存在（无权查看的对象同样回答不存在）"},
    409: {"model": ErrorResponse, "description": "状态或数据冲突"},
    422: {"model": ErrorResponse, "description": "输入校验未通过（逐项列出）"},
}


def error_json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _fmt(template: str, ctx: dict[str, Any]) -> str:
    try:
        return template.format(**ctx)
    except (KeyError, IndexError, ValueError):
        return template


# pydantic error types -> what to fix, in Chinese
_MESSAGES = {
    "missing": "必填项，不能为空",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "int_from_float": "应为整数，不能有小数",
    "float_parsing": "应为数字",
    "float_type": "应为数字",
    "bool_parsing": "应为 true 或 false",
    "bool_type": "应为 true 或 false",
    "string_type": "应为文本",
    "string_too_long": "长度不能超过 {max_length} 个字符",
    "string_too_short": "长度不能少于 {min_length} 个字符",
    "too_long": "最多 {max_length} 项",
    "too_short": "至少 {min_length} 项",
    "greater_than_equal": "不能小于 {ge}",
    "greater_than": "必须大于 {gt}",
    "less_than_equal": "不能大于 {le}",
    "less_than": "必须小于 {lt}",
    "dict_type": "应为 JSON 对象（{{…}}）",
    "model_type": "应为 JSON 对象（{{…}}）",
    "model_attributes_type": "应为 JSON 对象（{{…}}）",
    "list_type": "应为列表（[…]）",
    "json_invalid": "JSON 格式错误：{error}",
    "json_type": "应为 JSON 文本",
    "extra_forbidden": "不认识的字段，请删除或检查拼写",
    "literal_error": "取值无效，可选：{expected}",
    "enum": "取值无效，可选：{expected}",
    "string_pattern_mismatch": "格式不符合要求",
    "value_error": "取值无效：{error}",
    "uuid_parsing": "格式不符合要求",
}

_WHERE = {"body": "请求体", "query": "查询参数", "path": "路径参数", "header": "请求头", "cookie": "Cookie"}


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = list(loc)
    if parts and parts[0] in _WHERE:
        where = parts.pop(0)
        if not parts or (where == "body" and all(isinstance(p, int) for p in parts)):
            return "body"
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def translate_validation(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    problems = []
    for e in errors:
        typ = str(e.get("type", ""))
        ctx = {k: v for k, v in (e.get("ctx") or {}).items()}
        msg = _fmt(_MESSAGES[typ], ctx) if typ in _MESSAGES else f"取值无效（{e.get('msg', typ)}）"
        field = _field_name(tuple(e.get("loc") or ()))
        problems.append({"field": field, "code": typ.upper() or "INVALID", "message": msg})
    return problems


_HTTP = {
    400: ("BAD_REQUEST", "请求内容不完整或格式有误（上传可能被中断），未保存任何内容，请重新提交"),
    401: ("NOT_AUTHENTICATED", "请先登录"),
    403: ("FORBIDDEN", "没有权限执行此操作"),
    404: ("NOT_FOUND", "请求的接口不存在，请对照 /api/v1/docs 检查地址"),
    405: ("METHOD_NOT_ALLOWED", "该接口不支持此请求方法"),
    413: ("TOO_LARGE", "请求内容过大"),
    415: ("UNSUPPORTED_MEDIA_TYPE", "请求的内容类型不受支持"),
}


def install(api: FastAPI) -> None:
    @api.exception_handler(DanganError)
    async def dangan_error(request: Request, err: DanganError) -> JSONResponse:
        if err.status >= 500:
            log.error("%s %s -> %s", request.method, request.url.path, err)
        headers = {"WWW-Authenticate": 'Bearer realm="dangan"'} if err.status == 401 else None
        return error_json(err.status, err.as_dict(), headers)

    @api.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        return error_json(422, {"code": "VALIDATION_FAILED", "message": "请求参数有误，未保存任何内容，请按提示逐项修改",
                                "message_en": "request validation failed",
                                "problems": translate_validation(list(err.errors()))})

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        code, message = _HTTP.get(err.status_code, (f"HTTP_{err.status_code}", "请求未能完成"))
        return error_json(err.status_code, {"code": code, "message": message, "message_en": str(err.detail)},
                          headers=getattr(err, "headers", None))

    @api.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_json(500, {"code": "INTERNAL_ERROR", "message": "服务器内部错误，本次操作未完成；详情已记入服务日志"})
