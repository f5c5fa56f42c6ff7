"""检索 API: full-text and metadata search (trimmed to what the caller may see), index status, reindex."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from dangan.services import jobs
from dangan.services import search as search_svc
from dangan.services.access import require
from dangan.services.context import Actor, Dangan
from dangan.web.deps import current_actor, get_dangan

router = APIRouter(tags=["检索"])


def search_filter(
    fonds: str | None = Query(None, max_length=16), category: str | None = Query(None, max_length=16),
    year: int | None = Query(None, ge=1900, le=2999), year_from: int | None = Query(None, ge=1900, le=2999),
    year_to: int | None = Query(None, ge=1900, le=2999), retention_period: str | None = Query(None, max_length=16),
    department: str | None = Query(None, max_length=100), security_level: str | None = Query(None, max_length=16),
    state: str | None = Query(None, max_length=16), date_from: str | None = Query(None, max_length=20),
    date_to: str | None = Query(None, max_length=20),
) -> search_svc.SearchFilter:
    return search_svc.SearchFilter(fonds=fonds, category=category, year=year, year_from=year_from, year_to=year_to,
                                   retention_period=retention_period, department=department,
                                   security_level=security_level, state=state, date_from=date_from, date_to=date_to)


@router.get("/search", summary="检索：题名、文号、责任者、档号、主题词与全文；分面计数与高亮摘要（只含您有权查看的档案）")
def search(q: str = Query("", max_length=10_000, description="检索式：词语、\"短语\"、OR、-排除、题名:… 等字段"),
           flt: search_svc.SearchFilter = Depends(search_filter),
           sort: str = Query("relevance", max_length=16, description="relevance / date / date_asc"),
           cursor: str | None = Query(None, max_length=500), limit: int = Query(20, ge=1, le=100),
           facets: bool = Query(True), dangan: Dangan = Depends(get_dangan),
           actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return search_svc.search(dangan, actor, q, flt, sort=sort, cursor=cursor, limit=limit, facets=facets)


@router.get("/search/status", summary="检索索引的完整程度：已索引件数、全文提取情况")
def search_status(dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return search_svc.index_status(dangan, actor)


@router.post("/search/reindex", status_code=202, summary="在后台重建检索索引（可轮询任务进度；中断后可再次发起，从中断处继续）")
def search_reindex(request: Request, full: bool = Query(False), dangan: Dangan = Depends(get_dangan),
                   actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    require(actor, "search.reindex")
    jid = start_reindex(request, dangan, actor, full)
    return {"job": jobs.get_job(dangan, actor, jid), "poll": f"/api/v1/jobs/{jid}"}


def start_reindex(request: Request, dangan: Dangan, actor: Actor, full: bool) -> str:
    """A reindex as a background job whose progress is polled (the API and the 检索索引 page start it)."""
    jid = jobs.create_job(dangan, actor, "reindex", {"full": full})

    def work(prog: jobs.Progress) -> dict[str, Any]:
        def step(phase: str, n: int, total: int) -> None:
            prog.update(total=total, processed=n)

        return search_svc.reindex(dangan, actor, full=full, progress=step)

    request.app.state.jobs.capture.start(dangan, jid, work)
    return jid
