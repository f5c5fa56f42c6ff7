"""检索 page: a search box that answers as you type (after a short pause), facets, highlighted snippets with the page
of the hit, keyset pages. The page works without JavaScript; with it, the results part is fetched and replaced."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from dangan.errors import DanganError
from dangan.services import fonds as fonds_svc
from dangan.services import search as search_svc
from dangan.services.context import Actor, Dangan
from dangan.web.api.search import search_filter
from dangan.web.deps import current_actor, get_dangan, require_any
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
