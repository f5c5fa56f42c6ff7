"""The REST API, mounted at /api/v1: JSON in and out, one error shape, OpenAPI at /api/v1/openapi.json."""

from __future__ import annotations

from fastapi import FastAPI

from dangan.services.context import Dangan
from dangan.web.api import audit, errors, files, fonds, records
from dangan.web.jobs import JobRunner

DESCRIPTION = """\
dangan 电子档案管理系统的 REST 接口。业务系统可在文件形成时通过本接口推送档案和电子文件（前端控制）。

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
    for r in (fonds.router, records.router, files.router, audit.router):
        api.include_router(r)
    return api
