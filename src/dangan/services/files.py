"""Electronic files (components): checked names, content streamed into the blob store before any row."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import unicodedata
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dangan.db.models import File, Record
from dangan.domain.states import EDITABLE, IN_HOLDINGS, RecordState
from dangan.errors import Conflict, NotFound, Problems, StateError, ValidationFailed
from dangan.formats.sniff import sniff, sniff_zip_names
from dangan.services.access import get_visible_record, visible
from dangan.services.context import Actor, Dangan, audited
from dangan.services.views import ROLE_LABELS, file_view
from dangan.storage import BlobInfo, BlobStore

MAX_NAME_BYTES = 255
_ROLE_BY_LABEL = {v: k for k, v in ROLE_LABELS.items()}


@dataclass
class NewFile:
    """A file to be added: a readable binary stream plus what the sender says about it."""

    name: str
    stream: BinaryIO
    role: str = "main"
    media_type: str | None = None
    expected_size: int | None = None
    source_created_at: dt.datetime | None = None


def parse_role(role: str) -> str:
    r = (role or "main").strip()
    r = _ROLE_BY_LABEL.get(r, r)
    if r not in ROLE_LABELS:
        raise ValueError(f"文件类型“{role}”无效，可选：{'、'.join(f'{k}（{v}）' for k, v in ROLE_LABELS.items())}")
    return r


def check_name(name: Any) -> str | None:
    """Return a Chinese problem description, or None when the name is acceptable."""
    if not isinstance(name, str) or not name.strip():
        return "文件名不能为空"
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return "文件名不是有效的 UTF-8 编码（可能来自 GBK 系统），请改用 UTF-8 文件名或重新命名后上传"
    if "\ufffd" in name:
        return "文件名含有无法识别的字符（编码错误），请重新命名后上传"
    if "/" in name or "\\" in name or name in (".", "..") or name.startswith(".."):
        return "文件名不能包含路径（“/”“\\”或“..”），请只给出文件名本身"
    if any(unicodedata.category(c) == "Cc" for c in name):
        return "文件名不能包含控制字符"
    if len(encoded) > MAX_NAME_BYTES:
        return f"文件名过长（{len(encoded)} 字节，上限 {MAX_NAME_BYTES}），请缩短"
    return None


def check_new_files(files: list[NewFile], problems: Problems, prefix: str = "files") -> None:
    for i, nf in enumerate(files):
        msg = check_name(nf.name)
        if msg:
            problems.add(f"{prefix}[{i}].name", "INVALID_FILE_NAME", msg, "文件名", None)
        try:
            nf.role = parse_role(nf.role)
        except ValueError as e:
            problems.add(f"{prefix}[{i}].role", "NOT_IN_DOMAIN", str(e), "文件类型", nf.role)


def identify(name: str, head: bytes, declared: str | None, open_blob: Callable[[], BinaryIO] | None = None) -> tuple[str, str]:
    """Media type and format name from the content itself; the sender's declaration only when content says nothing.

    A ZIP whose first entries do not tell (OFD writers often put OFD.xml last) is looked at through its central
    directory when the store gives a seekable stream.
    """
    media_type, format_name = sniff(head, name)
    if media_type == "application/zip" and open_blob is not None:
        with contextlib.suppress(Exception), open_blob() as fh, zipfile.ZipFile(fh) as zf:
            media_type, format_name = sniff_zip_names(zf.namelist(), name.rsplit(".", 1)[-1].lower())
    if media_type == "application/octet-stream" and declared and "/" in declared and len(declared) <= 100:
        media_type = declared
    return media_type, format_name


def identify_stored(store: BlobStore, key: str, name: str, head: bytes, declared: str | None) -> dict[str, Any]:
    """PRONOM-style identification of stored content, recorded on the file row at capture.

    On a local store the blob itself is read (its end too: PDF versions, ZIP central directory); otherwise the
    first bytes, with the central directory of a ZIP read through the store. The sender's declaration is used
    only when the content says nothing."""
    from dangan.formats.identify import identify_file, identify_head

    local = getattr(store, "_path", None)
    ident = None
    if local is not None:
        with contextlib.suppress(Exception):
            ident = identify_file(str(local(key)), name)
    if ident is None:
        ident = identify_head(head, name)
    media_type, format_name = ident.mime, ident.format_name
    if media_type == "application/zip" and local is None:
        media_type, format_name = identify(name, head, declared, functools.partial(store.open, key))
    if media_type == "application/octet-stream" and declared and "/" in declared and len(declared) <= 100:
        media_type = declared
    return {"media_type": media_type[:100], "format_name": format_name[:100], "puid": ident.puid,
            "format_version": (ident.version or None) and ident.version[:32],
            "identification": {"basis": ident.basis, "extension_matches": ident.extension_matches, "pdfa": ident.pdfa,
                               "warnings": list(ident.warnings)[:5]}}


def store_blobs(app: Dangan, files: list[NewFile]) -> list[BlobInfo]:
    """Write every content to the store first (idempotent by SHA-256). Rows come after, in one transaction."""
    return [app.store.put(nf.stream, expected_size=nf.expected_size) for nf in files]


def add_rows(session: Session, store: BlobStore, record: Record, files: list[NewFile], blobs: list[BlobInfo],
             actor: Actor, reason: str = "") -> list[File]:
    existing = {f.sha256: f for f in session.scalars(select(File).where(File.record_id == record.id, File.is_current))}
    seq = (session.scalar(select(func.max(File.sequence)).where(File.record_id == record.id)) or 0)
    rows = []
    seen: set[str] = set()
    for nf, b in zip(files, blobs, strict=True):
        if b.sha256 in existing or b.sha256 in seen:
            other = existing.get(b.sha256)
            raise Conflict(
                f"文件“{nf.name}”与本件已有文件“{other.name if other else nf.name}”内容相同（SHA-256 {b.sha256[:12]}…），不能重复添加",
                code="DUPLICATE_FILE", detail={"sha256": b.sha256},
            )
        seen.add(b.sha256)
        seq += 1
        ident = identify_stored(store, b.key, nf.name, b.head, nf.media_type)
        f = File(record_id=record.id, role=nf.role, name=unicodedata.normalize("NFC", nf.name.strip()), size=b.size,
                 **ident, sha256=b.sha256, sm3=b.sm3,
                 storage_key=b.key, sequence=seq, reason=reason, source_created_at=nf.source_created_at,
                 created_by=actor.username)
        session.add(f)
        rows.append(f)
    session.flush()
    return rows


@audited("file.add", "record")
def add_files(app: Dangan, actor: Actor, record_id: int, files: list[NewFile], reason: str = "") -> list[dict[str, Any]]:
    """Add components to a record. Before filing this is free; after filing a reason is required (a new version)."""
    p = Problems()
    if not files:
        raise ValidationFailed("没有选择要添加的文件", code="NO_FILES")
    check_new_files(files, p)
    p.raise_if_any("文件有误，未保存任何内容")
    with app.read_sessions() as s:
        _check_can_add(get_visible_record(s, actor, record_id, "file.add"), reason)
    blobs = store_blobs(app, files)
    with app.uow(actor, "file.add", "record", str(record_id)) as uow:
        rec = get_visible_record(uow.session, actor, record_id, "file.add", lock=True)
        _check_can_add(rec, reason)
        rows = add_rows(uow.session, app.store, rec, files, blobs, actor, reason)
        for f in rows:
            uow.audit("file.add", "file", f.id, record_id=rec.id, name=f.name, size=f.size, sha256=f.sha256, sm3=f.sm3,
                      reason=reason)
        return [file_view(f) for f in rows]


def _check_can_add(rec: Record, reason: str) -> None:
    state = RecordState(rec.state)
    if state in EDITABLE:
        return
    if state not in IN_HOLDINGS:
        raise StateError(f"档案处于“{state.label}”状态，不能添加文件", code="RECORD_NOT_EDITABLE")
    if not reason.strip():
        raise ValidationFailed("已归档的档案只能追加新版本文件，必须写明原因（--reason）", code="REASON_REQUIRED",
                               problems=[])


def remove_file(app: Dangan, actor: Actor, file_id: int) -> None:
    """Remove a component before filing. Filed content is never removed (only by approved disposition)."""
    with app.uow(actor, "file.remove", "file", str(file_id)) as uow:
        f = visible_file(uow.session, actor, file_id, "file.add")
        state = RecordState(f.record.state)
        if state not in EDITABLE:
            raise StateError(f"档案已{state.label}，其电子文件不可删除（只能经鉴定销毁程序处置）", code="FILE_WRITE_ONCE")
        uow.audit("file.remove", "file", f.id, record_id=f.record_id, name=f.name, sha256=f.sha256)
        uow.session.delete(f)


def get_file(app: Dangan, actor: Actor, file_id: int) -> dict[str, Any]:
    with app.read_sessions() as s:
        return file_view(visible_file(s, actor, file_id, "record.read"))


def open_file(app: Dangan, actor: Actor, file_id: int, *, now: dt.datetime | None = None) -> tuple[dict[str, Any], BinaryIO]:
    """Open a file's content for streaming, after auditing the download.

    The original goes to those who manage the record, or with a grant to copy or certify (services.viewer)."""
    from dangan.services.viewer import authorize

    acc = authorize(app, actor, file_id, "download", action="file.download", now=now)
    with app.uow(actor, "file.download", "file", str(file_id)) as uow:
        f = visible_file(uow.session, actor, file_id, "record.read")
        view = file_view(f)
        fh = app.store.open(view["storage_key"])  # a missing blob fails here and is audited as a failure
        uow.audit("file.download", "file", f.id, record_id=f.record_id, name=f.name, basis=acc.basis,
                  grant_id=acc.grant_id)
    return view, fh


def list_files(app: Dangan, actor: Actor, record_id: int) -> list[dict[str, Any]]:
    with app.read_sessions() as s:
        get_visible_record(s, actor, record_id, "record.read")
        return [file_view(f) for f in s.scalars(select(File).where(File.record_id == record_id).order_by(File.sequence))]


def visible_file(session: Session, actor: Actor, file_id: int, action: str) -> File:
    """A file whose record the actor may act on; a hidden file answers exactly like a missing one."""
    f = session.scalar(select(File).join(Record, Record.id == File.record_id)
                       .where(File.id == file_id, visible(session, actor, action)))
    if f is None:
        err = NotFound(f"电子文件 {file_id} 不存在", code="FILE_NOT_FOUND")
        if session.scalar(select(File.id).where(File.id == file_id)) is not None:
            err.audit_outcome = "denied"  # type: ignore[attr-defined]
        raise err
    return f


def guess_media_type(name: str, declared: str | None, head: bytes = b"") -> str:
    """Media type only (see identify)."""
    return identify(name, head, declared)[0]
