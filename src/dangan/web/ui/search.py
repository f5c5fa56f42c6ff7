"""检索 page: a search box that answers as you type (after a short pause), facets, highlighted snippets with the page
of the hit, keyset pages. The page works without JavaScript; with it, the results part is fetched and replaced."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from dangan.errors import DanganError, NotFound
from dangan.services import fonds as fonds_svc
from dangan.services import jobs
from dangan.services import search as search_svc
from dangan.services.context import Actor, Dangan
from dangan.web.api.search import search_filter, start_reindex
from dangan.web.deps import current_actor, get_dangan, require_any
from dangan.web.ui.capture import form_data
from dangan.web.ui.render import csrf_guard, render

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_guard)])

FACET_LABELS = {"category": "门类", "year": "年度", "retention_period": "保管期限", "department": "机构",
                "security_level": "密级", "state": "状态"}
FILTER_KEYS = {"category": "category", "year": "year", "retention_period": "retention_period",
               "department": "department", "security_level": "security_level", "state": "state"}


@router.get("/search", response_class=HTMLResponse)
def search_page(request: Request, q: str = Query("", max_length=10_000), partial: bool = Query(False),
                flt: search_svc.SearchFilter = Depends(search_filter), sort: str = Query("relevance", max_length=16),
                cursor: str | None = Query(None, max_length=500), dangan: Dangan = Depends(get_dangan),
                actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "record.read")
    error: DanganError | None = None
    res: dict[str, Any] | None = None
    try:
        res = search_svc.search(dangan, actor, q, flt, sort=sort, cursor=cursor, limit=20) if q.strip() else None
    except DanganError as e:
        if e.status in (401, 403):
            raise
        error = e
    active = {k: v for k, v in vars(flt).items() if v not in (None, "")}
    ctx = {"q": q, "res": res, "error": error, "sort": sort, "active": active, "facet_labels": FACET_LABELS,
           "fonds_list": fonds_svc.list_fonds(dangan, actor), "filter_keys": FILTER_KEYS, "cursor": cursor}
    return render(request, "search_results.html" if partial else "search.html", ctx, active="search",
                  status=error.status if error else 200)


# ---------------------------------------------------------------- 检索索引: completeness, unreadable files, reindex


def _index_page(request: Request, dangan: Dangan, actor: Actor, job: dict[str, Any] | None = None) -> Response:
    require_any(request, actor, "search.reindex")
    st = search_svc.index_status(dangan, actor)
    recent = [j for j in jobs.list_jobs(dangan, actor, limit=50) if j["kind"] == "reindex"][:5]
    running = next((j for j in recent if not j["finished"]), None)
    return render(request, "search_index.html", {"st": st, "problems": search_svc.text_problems(dangan, actor),
                                                 "job": job or running, "recent": recent}, active="search_index")


@router.get("/search/index", response_class=HTMLResponse)
def search_index_page(request: Request, dangan: Dangan = Depends(get_dangan),
                      actor: Actor = Depends(current_actor)) -> Response:
    return _index_page(request, dangan, actor)


@router.get("/search/index/jobs/{job_id}", response_class=HTMLResponse)
def search_index_job(request: Request, job_id: str, dangan: Dangan = Depends(get_dangan),
                     actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "search.reindex")
    job = jobs.get_job(dangan, actor, job_id[:32])
    if job["kind"] != "reindex":
        raise NotFound(f"索引任务 {job_id[:32]} 不存在", code="JOB_NOT_FOUND")
    return _index_page(request, dangan, actor, job)


@router.post("/search/index/reindex")
def search_index_reindex(request: Request, form: FormData = Depends(form_data), dangan: Dangan = Depends(get_dangan),
                         actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "search.reindex")
    jid = start_reindex(request, dangan, actor, form.get("full") == "1")
    return RedirectResponse(f"/search/index/jobs/{jid}", status_code=303)
