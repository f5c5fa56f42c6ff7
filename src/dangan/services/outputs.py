"""Printed outputs from the archive: 归档文件目录 (Excel, PDF), 归档章 (image, PDF, stamped copy of a PDF),
and for volumes 案卷封面, 卷内目录 and 备考表. Every output is trimmed to what the actor may see and audited."""

from __future__ import annotations

import io
import tempfile
from typing import Any, BinaryIO

from sqlalchemy import func, select

from dangan.db.models import Record
from dangan.domain.states import IN_HOLDINGS
from dangan.errors import StateError, ValidationFailed
from dangan.services.access import get_visible_record, visible
from dangan.services.context import Actor, Dangan
from dangan.services.files import visible_file
from dangan.services.records import RecordFilter, _filtered
from dangan.services.views import retention_label

CATALOGUE_COLUMNS = [("seq", "序号"), ("archival_code", "档号"), ("doc_number", "文号"), ("responsible", "责任者"),
                     ("title", "题名"), ("date", "日期"), ("security_level", "密级"), ("pages", "页数"),
                     ("remarks", "备注")]
MAX_PDF_ROWS = 3_000  # WeasyPrint lays out ~150 rows/s: a larger catalogue is exported as Excel
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _heading(s: Any, flt: RecordFilter, first: Record | None) -> dict[str, Any]:
    h: dict[str, Any] = {}
    if first is not None:
        h["fonds_code"], h["fonds_name"] = first.fonds.code, first.fonds.name
        if flt.category:
            h["category"] = first.category.name
    if flt.year is not None:
        h["year"] = flt.year
    if flt.retention_period:
        h["retention"] = retention_label(flt.retention_period)
    if flt.department and first is not None and first.department is not None:
        h["department"] = first.department.name
    return h


def _row(n: int, r: Record) -> dict[str, Any]:
    return {"seq": n, "archival_code": r.archival_code, "doc_number": r.doc_number, "responsible": r.responsible,
            "title": r.title, "date": r.date, "security_level": r.security_level, "pages": r.meta.get("pages"),
            "remarks": r.meta.get("remarks")}


def catalogue(app: Dangan, actor: Actor, flt: RecordFilter, fmt: str = "xlsx") -> tuple[BinaryIO, str, str]:
    """归档文件目录 of the filed records matching the filter, in 档号 order: (stream, media type, file name)."""
    from dangan.outputs.catalogue import catalogue_pdf, catalogue_xlsx

    if fmt not in ("xlsx", "pdf"):
        raise ValidationFailed("格式应为 xlsx 或 pdf", code="BAD_FORMAT")
    in_holdings = not flt.state  # 已归档, with the records whose paper original is out on loan
    with app.uow(actor, "catalogue.export", "record") as uow:
        s = uow.session
        q = _filtered(s, flt, actor).where(Record.archival_code.is_not(None))
        if in_holdings:
            q = q.where(Record.state.in_([st.value for st in IN_HOLDINGS]))
        total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
        if fmt == "pdf" and total > MAX_PDF_ROWS:
            raise ValidationFailed(f"共 {total} 条，超过 PDF 目录的上限 {MAX_PDF_ROWS} 条；请按年度、保管期限或机构筛选后再打印（每次最多 {MAX_PDF_ROWS} 条），"
                                   "或导出 Excel", code="CATALOGUE_TOO_LARGE")
        ordered = q.order_by(Record.archival_code)
        first = s.scalars(ordered.limit(1)).first()
        heading = _heading(s, flt, first)
        rows = (_row(n, r) for n, r in enumerate(s.scalars(ordered.execution_options(yield_per=1000)), 1))
        name = "归档文件目录" + "".join(f"-{v}" for v in heading.values() if v not in (None, ""))[:80]
        if fmt == "xlsx":
            out: BinaryIO = tempfile.SpooledTemporaryFile(max_size=16 * 2**20)  # noqa: SIM115
            catalogue_xlsx(out, heading=heading, columns=CATALOGUE_COLUMNS, rows=rows)
            media = XLSX
        else:
            out = io.BytesIO(catalogue_pdf(heading=heading, columns=CATALOGUE_COLUMNS, rows=rows))
            media = "application/pdf"
        uow.audit("catalogue.export", "record", "", format=fmt, rows=total,
                  filter={k: v for k, v in vars(flt).items() if v})
    out.seek(0)
    return out, media, f"{name}.{fmt}"


def _stamp_values(rec: Record) -> dict[str, Any]:
    if not rec.archival_code or rec.seq is None:
        raise StateError("档案尚未归档、没有件号，不能生成归档章", code="RECORD_NOT_FILED")
    return {"fonds_code": rec.fonds.code, "year": rec.year, "seq": rec.seq,
            "department": rec.department.name if rec.department else "",
            "retention": retention_label(rec.retention_period), "pages": rec.meta.get("pages")}


def stamp(app: Dangan, actor: Actor, record_id: int, fmt: str = "png") -> tuple[bytes, str]:
    """归档章 of a filed record, to print on paper (PNG or PDF)."""
    from dangan.outputs.stamp import stamp_pdf, stamp_png

    if fmt not in ("png", "pdf"):
        raise ValidationFailed("格式应为 png 或 pdf", code="BAD_FORMAT")
    with app.uow(actor, "record.stamp", "record", str(record_id)) as uow:
        rec = get_visible_record(uow.session, actor, record_id, "record.read")
        values = _stamp_values(rec)
        uow.audit("record.stamp", "record", rec.id, archival_code=rec.archival_code, format=fmt)
    return (stamp_png(values), "image/png") if fmt == "png" else (stamp_pdf(values), "application/pdf")


def stamped_copy(app: Dangan, actor: Actor, file_id: int) -> tuple[BinaryIO, str]:
    """A copy of a PDF file with the 归档章 drawn on its first page; the stored original is not touched."""
    from dangan.outputs.stamp import stamp_pdf_copy
    from dangan.services.viewer import authorize

    acc = authorize(app, actor, file_id, "download", action="file.stamped_copy")  # as the original itself
    with app.uow(actor, "file.stamped_copy", "file", str(file_id)) as uow:
        f = visible_file(uow.session, actor, file_id, "record.read")
        if f.media_type != "application/pdf":
            raise ValidationFailed(f"“{f.name}”不是 PDF 文件，只能在 PDF 版式文件上加盖归档章", code="NOT_A_PDF")
        values = _stamp_values(f.record)
        name, key, rid = f.name, f.storage_key, f.record_id
        uow.audit("file.stamped_copy", "file", f.id, record_id=rid, name=name, basis=acc.basis, grant_id=acc.grant_id)
    out: BinaryIO = tempfile.SpooledTemporaryFile(max_size=32 * 2**20)  # noqa: SIM115
    with app.store.open(key) as src:
        stamp_pdf_copy(src, values, out)
    out.seek(0)
    stem = name.rsplit(".", 1)[0]
    return out, f"{stem}（归档章）.pdf"


def volume_pdf(app: Dangan, actor: Actor, record_id: int, kind: str) -> tuple[bytes, str]:
    """案卷封面 (cover), 卷内目录 (contents) or 备考表 (notes) of a volume."""
    from dangan.outputs.volume import volume_contents_pdf, volume_cover_pdf, volume_notes_pdf

    if kind not in ("cover", "contents", "notes"):
        raise ValidationFailed("应为 cover（案卷封面）、contents（卷内目录）或 notes（备考表）", code="BAD_FORMAT")
    with app.uow(actor, f"volume.{kind}", "record", str(record_id)) as uow:
        s = uow.session
        vol = get_visible_record(s, actor, record_id, "record.read")
        if vol.level not in ("volume", "project", "group"):
            raise ValidationFailed("只有案卷（或项目、组）有封面、卷内目录和备考表", code="NOT_A_VOLUME")
        items = s.scalars(select(Record).where(Record.parent_id == vol.id, visible(s, actor))
                          .order_by(func.coalesce(Record.seq, 10**9), Record.position, Record.date, Record.id)).all()
        hidden = s.scalar(select(func.count()).where(Record.parent_id == vol.id)) - len(items)
        pages = sum(int(i.meta.get("pages") or 0) for i in items)
        dates = sorted(d for d in (i.date for i in items) if d)
        v = {"fonds_name": vol.fonds.name, "fonds_code": vol.fonds.code, "category_name": vol.category.name,
             "title": vol.title, "archival_code": vol.archival_code or "（未归档）",
             "start_date": vol.meta.get("start_date") or (dates[0] if dates else None),
             "end_date": vol.meta.get("end_date") or (dates[-1] if dates else None),
             "retention": retention_label(vol.retention_period), "security_level": vol.security_level,
             "items": len(items) + hidden, "pages": vol.meta.get("pages") or pages, "year": vol.year,
             "compiler": vol.meta.get("compiler") or vol.created_by, "compiled_on": vol.meta.get("compiled_on"),
             "checker": vol.meta.get("checker") or vol.filed_by or "", "checked_on": vol.meta.get("checked_on")
             or (vol.filed_at.date() if vol.filed_at else None),
             "notes": vol.meta.get("remarks") or f"本卷共 {len(items) + hidden} 件，{vol.meta.get('pages') or pages} 页。"}
        rows = [{"seq": n, "doc_number": i.doc_number, "responsible": i.responsible, "title": i.title, "date": i.date,
                 "pages": i.meta.get("pages"), "remarks": i.meta.get("remarks")} for n, i in enumerate(items, 1)]
        uow.audit(f"volume.{kind}", "record", vol.id, archival_code=vol.archival_code)
    label = {"cover": "案卷封面", "contents": "卷内目录", "notes": "备考表"}[kind]
    data = (volume_cover_pdf(v) if kind == "cover" else volume_contents_pdf(v, rows) if kind == "contents"
            else volume_notes_pdf(v))
    return data, f"{label}-{vol.archival_code or vol.id}.pdf"

