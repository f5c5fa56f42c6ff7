"""审计日志 and 固化信息检测."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from dangan.errors import NotFound
from dangan.services import audit, browse, fixity
from dangan.services.context import Actor, Dangan
from dangan.web.deps import current_actor, get_dangan, require_any
from dangan.web.exports import audit_export_response

router = APIRouter()


@router.get("/audit/events", tags=["审计"], summary="审计事件（最新在前，可按对象、操作者、操作筛选）")
def list_events(
    object_type: str | None = Query(None, max_length=32, description="record、file、fonds、category…"),
    object_id: str | None = Query(None, max_length=64),
    actor_name: str | None = Query(None, alias="actor", max_length=64),
    action: str | None = Query(None, max_length=64, description="如 record.file"),
    before_seq: int | None = Query(None, ge=1, description="翻页：只列出序号小于此值的事件"),
    limit: int = Query(100, ge=1, le=1000),
    dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor),
) -> dict[str, Any]:
    items = browse.list_audit_events(dangan, actor, object_type=object_type, object_id=object_id, actor_name=actor_name,
                              action=action, before_seq=before_seq, limit=limit)
    return {"items": items, "next_before_seq": items[-1]["seq"] if len(items) == limit else None}


@router.get("/audit/export", tags=["审计"], summary="导出审计事件（CSV 或 JSON，最早在前；导出本身记入审计日志）",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}, "application/json": {}}}})
def export_events(
    fmt: str = Query("json", alias="format", pattern="^(csv|json)$", description="csv 或 json"),
    object_type: str | None = Query(None, max_length=32), object_id: str | None = Query(None, max_length=64),
    actor_name: str | None = Query(None, alias="actor", max_length=64), action: str | None = Query(None, max_length=64),
    dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor),
) -> StreamingResponse:
    filters = {"object_type": object_type, "object_id": object_id, "actor": actor_name, "action": action}
    return audit_export_response(dangan, actor, filters, fmt)


@router.post("/audit/verify", tags=["审计"], summary="校验审计日志的 SM3 哈希链")
def verify(dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return audit.verify(dangan, actor).as_dict()


class FixityCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")
    record_id: int | None = Field(None, description="只检测此档案的电子文件；不填则检测全部")


@router.post("/fixity/check", tags=["固化检测"], summary="固化信息检测（同步，检测完成后返回报告）")
def fixity_check(body: FixityCheck | None = None, dangan: Dangan = Depends(get_dangan),
                 actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return fixity.check(dangan, actor, record_id=body.record_id if body else None).as_dict()


@router.post("/fixity/jobs", tags=["固化检测"], status_code=202, summary="在后台开始固化信息检测（返回任务，可轮询进度）")
def fixity_start(request: Request, body: FixityCheck | None = None, dangan: Dangan = Depends(get_dangan),
                 actor: Actor = Depends(current_actor)) -> JSONResponse:
    require_any(request, actor, "fixity.run")  # the job runs in the background: refuse before it starts
    job, started = request.app.state.jobs.start_fixity(dangan, actor, body.record_id if body else None)
    return JSONResponse({**job.as_dict(), "started": started}, status_code=202 if started else 200)


@router.get("/fixity/jobs/{job_id}", tags=["固化检测"], summary="后台检测任务的进度与结果")
def fixity_job(job_id: str, request: Request, actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    require_any(request, actor, "fixity.run")
    job = request.app.state.jobs.get(job_id)
    if job is None:
        raise NotFound(f"检测任务 {job_id} 不存在（服务重启后任务记录不保留，请查看检测记录）", code="JOB_NOT_FOUND")
    return job.as_dict()


@router.get("/fixity/runs", tags=["固化检测"], summary="最近的检测记录")
def fixity_runs(limit: int = Query(20, ge=1, le=200), dangan: Dangan = Depends(get_dangan),
                actor: Actor = Depends(current_actor)) -> list[dict[str, Any]]:
    return browse.fixity_runs(dangan, actor, limit=limit)


@router.get("/fixity/runs/{run_id}/failures", tags=["固化检测"], summary="一次检测中未通过的文件")
def fixity_failures(run_id: int, dangan: Dangan = Depends(get_dangan),
                    actor: Actor = Depends(current_actor)) -> list[dict[str, Any]]:
    return browse.fixity_failures(dangan, actor, run_id)
