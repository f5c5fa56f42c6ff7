"""电子文件: upload to a record (streamed to the blob store), list, metadata, streamed download with digests."""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any, BinaryIO
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import Response, StreamingResponse

from dangan.services import files as file_service
from dangan.services.context import Actor, Dangan
from dangan.services.viewer import may_download
from dangan.web.api.records import uploads_to_new_files
from dangan.web.deps import current_actor, get_dangan

router = APIRouter(tags=["电子文件"])

CHUNK = 1024 * 1024
# media types a browser may show in place; anything else is always downloaded (no stored HTML/SVG runs here)
INLINE_SAFE = {"application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp", "image/tiff", "text/plain"}


@router.post("/records/{record_id}/files", status_code=201, summary="向档案添加电子文件（multipart）")
def upload_files(
    record_id: int,
    files: list[UploadFile] = File(description="电子文件，可多个"),
    role: str = Form("main", max_length=32, description="文件类型：main 正文、attachment 附件、processing_sheet 处理单…"),
    roles: list[str] = Form(default=[], description="与 files 一一对应的文件类型（可选，优先于 role）"),
    reason: str = Form("", max_length=1000, description="原因（已归档档案追加新版本时必填）"),
    dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor),
) -> list[dict[str, Any]]:
    return file_service.add_files(dangan, actor, record_id, uploads_to_new_files(files, roles, role), reason)


@router.get("/records/{record_id}/files", summary="档案的电子文件列表")
def list_files(record_id: int, dangan: Dangan = Depends(get_dangan),
               actor: Actor = Depends(current_actor)) -> list[dict[str, Any]]:
    return file_service.list_files(dangan, actor, record_id)


@router.get("/files/{file_id}", summary="电子文件信息（大小、格式、SHA-256、SM3）")
def get_file(file_id: int, dangan: Dangan = Depends(get_dangan),
             actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return file_service.get_file(dangan, actor, file_id)


def ascii_fallback(name: str, file_id: int) -> str:
    """A plain ASCII name for old clients; the real name goes in filename* (RFC 5987/6266)."""
    suffix = PurePosixPath(name).suffix
    suffix = suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,10}", suffix) else ""
    stem = unicodedata.normalize("NFKD", name[: len(name) - len(suffix)] if suffix else name)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem.encode("ascii", "ignore").decode()).strip("._")
    return (stem if re.search(r"[A-Za-z0-9]", stem) else f"file-{file_id}") + suffix


def content_disposition(name: str, file_id: int, inline: bool = False) -> str:
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{ascii_fallback(name, file_id)}\"; filename*=UTF-8''{quote(name, safe='')}"


def digest_headers(view: dict[str, Any]) -> dict[str, str]:
    b64 = base64.b64encode(bytes.fromhex(view["sha256"])).decode()
    return {
        "ETag": f'"{view["sha256"]}"',
        "Digest": f"sha-256={b64}",  # RFC 3230
        "Repr-Digest": f"sha-256=:{b64}:",  # RFC 9530
        "X-Checksum-SHA256": view["sha256"],
        "X-Checksum-SM3": view["sm3"],
    }


def _chunks(fh: BinaryIO) -> Iterator[bytes]:
    try:
        while True:
            b = fh.read(CHUNK)
            if not b:
                return
            yield b
    finally:
        fh.close()


def _etag_matches(header: str | None, sha256: str) -> bool:
    if not header:
        return False
    tags = {t.strip().removeprefix("W/").strip('"') for t in header.split(",")}
    return "*" in tags or sha256 in tags


@router.get("/files/{file_id}/content", summary="下载电子文件（流式，附 SHA-256 与 SM3）",
            response_class=StreamingResponse, responses={200: {"content": {"application/octet-stream": {}}}})
def download(file_id: int, request: Request, inline: bool = Query(False, description="在浏览器中直接打开（仅 PDF、图片、纯文本）"),
             dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    etag = request.headers.get("if-none-match")
    if etag:
        known = file_service.get_file(dangan, actor, file_id)
        # a 304 only to whoever may have the content
        if _etag_matches(etag, known["sha256"]) and may_download(dangan, actor, known["record_id"]):
            return Response(status_code=304, headers={"ETag": f'"{known["sha256"]}"'})
    view, fh = file_service.open_file(dangan, actor, file_id)
    media = view["media_type"] or "application/octet-stream"
    show_inline = inline and media in INLINE_SAFE
    headers = {
        **digest_headers(view),
        "Content-Length": str(view["size"]),
        "Content-Disposition": content_disposition(view["name"], file_id, show_inline),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'",
        "Cache-Control": "private, no-cache",
    }
    return StreamingResponse(_chunks(fh), media_type=media, headers=headers)
