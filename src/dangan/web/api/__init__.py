"""The REST API, mounted at /api/v1: JSON in and out, one error shape, OpenAPI at /api/v1/openapi.json."""

from __future__ import annotations

from fastapi import FastAPI

from dangan.services.context import Dangan
from dangan.web.api import (
    audit,
    capture,
    checks,
    errors,
    files,
    fonds,
    identity,
    records,
    requests,
    search,
    viewer,
)
from dangan.web.api import digitise as digitise_api
from dangan.web.jobs import JobRunner

DESCRIPTION = """\
dangan 电子档案管理系统的 REST 接口。业务系统可在文件形成时通过本接口推送档案和电子文件（前端控制）。

- 身份：业务系统在请求头中携带接口令牌 `Authorization: Bearer dgn_…`（由系统管理员签发，只显示一次，
  可限定操作、门类和机构，到期或吊销后返回 401 `TOKEN_INVALID`）；浏览器中已登录的会话也可调用，
  此时修改类请求须在请求头 `X-CSRF-Token` 中携带 `GET /api/v1/me` 返回的 `csrf_token`。
  未登录返回 401 `NOT_AUTHENTICATED`，无权操作返回 403 `PERMISSION_DENIED`；无权查看的档案和电子文件与不存在的一样返回 404。
- 所有错误的形式都是 `{"error": {"code": …, "message": …, "problems": [...]}}`：`code` 稳定，`message` 为中文，
  `problems` 逐项列出有问题的字段。
- 上传的电子文件以流的方式写入存储，记录 SHA-256 与 SM3；下载时响应头给出 `ETag`、`Digest` 与 `X-Checksum-SM3`。
- 列表采用游标分页：把上一页返回的 `next_cursor` 作为 `cursor` 传入。
"""


def create_api(dangan: Dangan, jobs: JobRunner) -> FastAPI:
    api = FastAPI(
        title="dangan 电子档案管理系统 API", version="1", description=DESCRIPTION,
        openapi_url="/openapi.json", docs_url=None, redoc_url=None, responses=errors.ERROR_RESPONSES,
    )
    api.state.dangan = dangan
    api.state.jobs = jobs
    errors.install(api)
    for r in (identity.router, fonds.router, records.router, files.router, audit.router, capture.router, checks.router,
              search.router, requests.router, viewer.router):
        api.include_router(r)
    api.include_router(digitise_api.router)
    return api
