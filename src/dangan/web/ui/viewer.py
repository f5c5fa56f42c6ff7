"""在线阅览 page: the pages of a file as watermarked images, one under the other, loaded as they come into view;
previous/next, page n / N, zoom, keyboard arrows. Without a grant the page says so and links to the request form."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from dangan.errors import DanganError, NotFound, PermissionDenied
from dangan.services import browse, viewer
from dangan.services.context import Actor, Dangan
from dangan.web.deps import current_actor, get_dangan, require_any
from dangan.web.ui.render import csrf_guard, render

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_guard)])


@router.get("/files/{file_id}/view", response_class=HTMLResponse)
def view_page(file_id: int, request: Request, dangan: Dangan = Depends(get_dangan),
              actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "record.read")
    info: dict[str, Any] | None = None
    denied: DanganError | None = None
    problem: DanganError | None = None
    try:
        info = viewer.page_info(dangan, actor, file_id)
    except NotFound:
        raise
    except PermissionDenied as e:
        if e.code not in ("NO_GRANT", "GRANT_EXPIRED"):
            raise
        denied = e
    except DanganError as e:  # a format that cannot be shown, a damaged file, a destroyed record
        problem = e
    err = denied or problem
    record_id = info["record_id"] if info else int((err.detail if err else {}).get("record_id") or 0)
    f = None
    if info is None:
        f = _file(dangan, actor, file_id)
        record_id = f["record_id"]
    rec = browse.record_brief(dangan, actor, record_id)
    name = info["name"] if info else (f or {}).get("name", "")
    crumbs: list[tuple[str, str | None]] = [("首页", "/"), ("档案浏览", "/records")]
    if rec:
        crumbs.append((rec["archival_code"] or rec["title"][:24], f"/records/{rec['id']}"))
    crumbs.append((f"阅览：{name}", None))
    ctx = {"info": info, "denied": denied, "problem": problem, "rec": rec, "file_id": file_id, "name": name,
           "apply_url": viewer.apply_url(record_id, "view"), "crumbs": crumbs}
    status = err.status if err else 200
    return render(request, "viewer.html", ctx, status=status, active="browse")


def _file(dangan: Dangan, actor: Actor, file_id: int) -> dict[str, Any]:
    from dangan.services.files import get_file

    return get_file(dangan, actor, file_id)
