"""在线阅览 API: the pages of a PDF, OFD or image file as watermarked images; every page shown is audited.

Who may view: those who manage the record, and everyone else with an approved, unexpired 利用申请 (403 NO_GRANT
or GRANT_EXPIRED otherwise, with `detail.apply_url`). The original itself is never sent here."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from dangan.services import viewer
from dangan.services.context import Actor, Dangan
from dangan.web.deps import client_addr, current_actor, get_dangan

router = APIRouter(tags=["在线阅览"])


@router.get("/files/{file_id}/pages", summary="在线阅览：页数、页面图像格式、是否可下载原件")
def pages(file_id: int, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return viewer.page_info(dangan, actor, file_id)


@router.get("/files/{file_id}/pages/{page}", summary="在线阅览：第 page 页（从 1 起）的带水印图像",
            response_class=Response, responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}})
def page_image(file_id: int, page: int, request: Request, dangan: Dangan = Depends(get_dangan),
               actor: Actor = Depends(current_actor)) -> Response:
    data, media = viewer.render_page(dangan, actor, file_id, page, client_addr=client_addr(request))
    return Response(data, media_type=media, headers={
        "Cache-Control": "no-store, private", "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f'inline; filename="page-{file_id}-{page}.{"jpg" if media == "image/jpeg" else "png"}"'})
