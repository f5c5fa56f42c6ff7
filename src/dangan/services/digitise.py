"""数字化 (DA/T 31-2017): scan batches of paper records, from intake to 挂接.

- **Intake** (`import_batch`): page images (TIFF incl. multi-page and CCITT, JPEG, JPEG 2000, PNG) or scanned PDFs
  named by 档号 plus 页号 (`<档号>-<页号>.jpg`, a folder per 档号 with `<页号>.jpg` inside, or `<档号>.tif` holding
  every page), from a folder (names in UTF-8 or GBK), a ZIP (through capture.zipsafe) or uploaded files. Every
  master is stored write-once in the blob store at once (SHA-256 + SM3), before any row; each page is linked to
  the record of its 档号 within the fonds. `issues` lists, before anything is accepted, what does not match:
  images without a record, records of the batch's scope without images, page count ≠ 页数, duplicate and
  missing page numbers, unreadable files and pages, failing pages, the 抽检 not passed.
- **QC** (`run_qc`, a job): per page digitise.qc.measure, then mark_duplicates within each record; the DA/T 46
  数字化属性 (扫描分辨率, 色彩模式, 压缩方案, 扫描设备, 扫描软件, 数字化时间) per page. Failing pages are 待返工:
  `rescan_page` adds a new master for the page and keeps the old one (superseded, never deleted).
  `draw_sample` / `mark_sample`: 抽检 with a rate (default 5 %, at least one page) and a pass mark (合格率 ≥ 95 %).
- **OCR** (`run_ocr`, a job): digitise.ocr over the access images (deskewed, borders cropped; the master is
  never altered), pages in parallel; per page text and line boxes; per record a searchable PDF/A access copy.
- **Accept** (`accept_batch`): only when nothing is outstanding, or the archivist overrides the listed problems
  with a reason: the masters become the records' 扫描件 files, the PDF/A their 版式文件, the OCR text their full
  text (file_texts / file_text_pages) so search finds it with the page; one audited unit of work.
- **公文 suggestions** (`page_detail`, `confirm_metadata`): digitise.suggest on a record's first page; nothing is
  written until a person confirms, and then through records.update_record (validation, audit, editability).

Derived images (access copies for the viewer and OCR, thumbnails) are cached under <data>/scan-cache and may be
deleted at any time: they are made again from the masters.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import io
import math
import os
import random
import re
import shutil
import tempfile
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from dangan.db.models import (
    CaptureJob,
    File,
    FileText,
    FileTextPage,
    Record,
    ScanBatch,
    ScanFile,
    ScanOutput,
    ScanPage,
    utcnow,
)
from dangan.domain.access import ACTION_LABELS
from dangan.domain.states import EDITABLE, RecordState
from dangan.errors import (
    Conflict,
    DanganError,
    FieldProblem,
    NotFound,
    PermissionDenied,
    StateError,
    ValidationFailed,
)
from dangan.services import jobs
from dangan.services.access import get_visible_record, require, visible
from dangan.services.categories import get_category
from dangan.services.context import Actor, Dangan, audited
from dangan.services.files import NewFile, add_rows, identify
from dangan.services.fonds import get_fonds
from dangan.services.views import iso
from dangan.storage import BlobInfo

SCAN_ACTIONS = ("scan.import", "scan.qc", "ocr.run", "scan.accept")
IMAGE_EXTS = {".tif", ".tiff", ".jpg", ".jpeg", ".jpe", ".jp2", ".j2k", ".jpf", ".jpx", ".png", ".pdf"}
IGNORED_NAMES = {"thumbs.db", "desktop.ini", ".ds_store"}
STATUS_LABELS = {"importing": "导入中", "open": "待验收", "accepted": "已挂接", "failed": "导入失败"}
QC_LABELS = {"pending": "待检查", "ok": "合格", "warn": "有提示", "fail": "不合格"}
FLAG_LABELS = {"LOW_DPI": "分辨率不足", "BLANK": "空白页", "SKEW": "倾斜", "DARK_BORDER": "黑边", "DUPLICATE": "重复页",
               "UNREADABLE": "无法读取", "TINY": "尺寸过小", "REJECTED": "抽检不合格"}
VERDICTS = {"合格": "合格", "pass": "合格", "ok": "合格", "不合格": "不合格", "fail": "不合格"}
DEFAULT_SAMPLE_RATE = 0.05
DEFAULT_PASS_MARK = 0.95
# the fields digitise.suggest proposes, as the record schema names them
SUGGEST_FIELDS = {"responsible": "责任者（发文机关）", "doc_number": "文号", "title": "题名", "date": "日期",
                  "security_level": "密级", "secrecy_period": "保密期限", "urgency": "紧急程度", "main_recipient": "主送"}
# problems an archivist may not override at acceptance
NOT_OVERRIDABLE = {"qc_pending", "record_state"}
OCR_CHUNK = 8  # pages handed to the OCR workers at once (bounded memory, visible progress)

for _kind, _label in (("scan_import", "导入扫描件"), ("scan_qc", "图像质量检查"), ("scan_ocr", "OCR 文字识别")):
    jobs.KIND_LABELS.setdefault(_kind, _label)


# ---------------------------------------------------------------- sources and names


@dataclass
class ScanSource:
    """One scan file to take in: its relative name (decoded, "/" separated) and how to read it."""

    name: str
    opener: Callable[[], BinaryIO]
    encoding: str = "utf-8"
    modified: dt.datetime | None = None
    size: int | None = None


@dataclass
class Skipped:
    name: str
    reason: str
    code: str = "NOT_AN_IMAGE"
    blocking: bool = False


def decode_name(raw: bytes) -> tuple[str, str]:
    """A file name as the scanning PC wrote it: UTF-8, else GBK (GB18030); undecodable bytes are marked."""
    for enc in ("utf-8", "gb18030"):
        try:
            return unicodedata.normalize("NFC", raw.decode(enc)), enc
        except UnicodeDecodeError:
            continue
    return unicodedata.normalize("NFC", raw.decode("utf-8", "replace")), "unknown"


def _is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_EXTS


def _ignored(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.startswith(".") or base.lower() in IGNORED_NAMES or base.startswith("~$")


def sources_from_dir(root: Path) -> tuple[list[ScanSource], list[Skipped]]:
    """Every scan file under a folder (sorted by name), names decoded from their bytes (UTF-8 or GBK)."""
    if not root.is_dir():
        raise ValidationFailed(f"文件夹“{root}”不存在或不是文件夹", code="FOLDER_MISSING")
    broot = os.fsencode(root)
    found: list[tuple[str, bytes, str]] = []
    for dirpath, dirnames, filenames in os.walk(broot):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(b"."))
        rel_dir = os.path.relpath(dirpath, broot)
        parts = [] if rel_dir == b"." else rel_dir.split(os.sep.encode())
        for fn in sorted(filenames):
            full = os.path.join(dirpath, fn)
            if not os.path.isfile(full):
                continue
            names = [decode_name(p) for p in [*parts, fn]]
            name = "/".join(n for n, _ in names)
            enc = next((e for _, e in names if e != "utf-8"), "utf-8")
            found.append((name, full, enc))
    sources, skipped = [], []
    for name, full, enc in sorted(found):
        if _ignored(name):
            continue
        if not _is_image_name(name):
            skipped.append(Skipped(name, "不是扫描图像（TIFF、JPEG、JPEG 2000、PNG 或扫描 PDF），未导入"))
            continue
        st = os.stat(full)
        sources.append(ScanSource(name, _file_opener(full), enc, dt.datetime.fromtimestamp(st.st_mtime, dt.UTC),
                                  st.st_size))
    return sources, skipped


def _file_opener(path: bytes | str) -> Callable[[], BinaryIO]:
    return lambda: open(path, "rb")  # noqa: SIM115 - the caller closes it


def sources_from_zip(zf: Any) -> tuple[list[ScanSource], list[Skipped]]:
    """The scan files of a ZIP opened with capture.zipsafe.SafeZip (already checked: paths, bombs, encryption)."""
    sources, skipped = [], []
    for e in sorted(zf.files(), key=lambda e: e.name):
        if _ignored(e.name) or e.name.startswith("__MACOSX/"):
            continue
        if not _is_image_name(e.name):
            skipped.append(Skipped(e.name, "不是扫描图像（TIFF、JPEG、JPEG 2000、PNG 或扫描 PDF），未导入"))
            continue
        try:
            modified = dt.datetime(*e.date_time, tzinfo=dt.UTC)
        except ValueError:
            modified = None
        sources.append(ScanSource(e.name, (lambda e=e: zf.open(e)), e.encoding, modified, e.size))
    return sources, skipped


def clean_upload_name(name: str) -> str | None:
    """A relative name from a browser upload ("folder/0001.jpg" for a folder upload), or None when unsafe."""
    s = unicodedata.normalize("NFC", (name or "").replace("\\", "/")).strip()
    if not s or "\x00" in s or any(unicodedata.category(c) == "Cc" for c in s):
        return None
    parts = [p for p in s.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts) or re.match(r"^[A-Za-z]:", s):
        return None
    return "/".join(parts)[-500:]


@dataclass(frozen=True)
class ParsedName:
    """What a file name says: which 档号 (candidates in order of preference) and from which 页号."""

    candidates: tuple[tuple[str, int | None, str], ...]  # (档号, first page number or None, layout)

    @property
    def best(self) -> tuple[str, int | None, str]:
        return self.candidates[0]


_PAGE_SUFFIX = re.compile(r"^(.+?)[-_](\d{3,4})$")
_DIGITS = re.compile(r"^\d{1,4}$")


def parse_name(name: str) -> ParsedName:
    """`<档号>-<页号>.ext` (页号 = the last group of 3–4 digits), `<档号>/<页号>.ext`, or `<档号>.ext` (all pages).

    The candidates are tried against the catalogue in order; the first one that is a record's 档号 wins."""
    parts = name.split("/")
    stem = Path(parts[-1]).stem.strip()
    folder = parts[-2].strip() if len(parts) > 1 else ""
    out: list[tuple[str, int | None, str]] = []
    if folder and _DIGITS.match(stem):
        out.append((folder, int(stem), "folder"))
    out.append((stem, None, "multi"))
    m = _PAGE_SUFFIX.match(stem)
    if m:
        out.append((m.group(1), int(m.group(2)), "page"))
    return ParsedName(tuple(out))


def _display(parsed: ParsedName) -> tuple[str, int | None, str]:
    for layout in ("folder", "page", "multi"):
        for c in parsed.candidates:
            if c[2] == layout:
                return c
    return parsed.best


# ---------------------------------------------------------------- helpers


def _require_scan(actor: Actor) -> None:
    if any(actor.scope_for(a) for a in SCAN_ACTIONS):
        return
    err = PermissionDenied(f"没有数字化工作的权限（{ACTION_LABELS['scan.import']}等），请联系安全保密管理员",
                           code="PERMISSION_DENIED")
    err.audit_outcome = "denied"  # type: ignore[attr-defined]
    raise err


def _batch(s: Session, batch_id: int, *, lock: bool = False) -> ScanBatch:
    q = select(ScanBatch).where(ScanBatch.id == batch_id)
    b = s.scalar(q.with_for_update() if lock else q)
    if b is None:
        raise NotFound(f"数字化批次 {batch_id} 不存在", code="BATCH_NOT_FOUND")
    return b


def _check_open(b: ScanBatch) -> None:
    if b.status == "accepted":
        raise StateError(f"数字化批次 #{b.id} 已于 {_local(b.accepted_at)} 挂接，不能再修改", code="BATCH_ACCEPTED")
    if b.status != "open":
        raise StateError(f"数字化批次 #{b.id} 处于“{STATUS_LABELS.get(b.status, b.status)}”状态", code="BATCH_NOT_OPEN")


def _local(t: dt.datetime | None) -> str:
    if t is None:
        return ""
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M")


def _visible_ids(s: Session, actor: Actor, ids: set[int], action: str = "record.read") -> set[int]:
    out: set[int] = set()
    ids_l = sorted(i for i in ids if i is not None)
    for i in range(0, len(ids_l), 500):
        out |= set(s.scalars(select(Record.id).where(Record.id.in_(ids_l[i:i + 500]), visible(s, actor, action))))
    return out


@contextlib.contextmanager
def _blob_path(app: Dangan, key: str) -> Iterator[str]:
    """A local path to read a stored blob from (the blob itself on a local store, a temporary copy otherwise)."""
    local = getattr(app.store, "_path", None)
    if local is not None and local(key).is_file():
        yield str(local(key))
        return
    tmp_dir = app.settings.data_dir / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="scan-", dir=str(tmp_dir))
    try:
        with os.fdopen(fd, "wb") as out, app.store.open(key) as fh:
            shutil.copyfileobj(fh, out, 1 << 20)
        yield tmp
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def cache_dir(app: Dangan, batch_id: int) -> Path:
    d = app.settings.data_dir / "scan-cache" / str(int(batch_id))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _flags_status(flags: list[dict[str, Any]], declared_blank: bool, verdict: str | None = None) -> str:
    eff = [f for f in flags if not (declared_blank and f.get("code") == "BLANK")]
    if verdict == "不合格" or any(f.get("severity") == "fail" for f in eff):
        return "fail"
    return "warn" if eff else "ok"


def _unreadable_flag(message: str) -> dict[str, Any]:
    return {"code": "UNREADABLE", "severity": "fail", "message": message[:500]}


def _parse_time(v: Any) -> dt.datetime | None:
    """EXIF "2024:03:05 10:20:00", PDF "D:20240305102000+08'00'" or ISO text, as an aware datetime."""
    if isinstance(v, dt.datetime):
        return v if v.tzinfo else v.replace(tzinfo=dt.UTC)
    if not isinstance(v, str) or not v.strip():
        return None
    t = v.strip()
    m = re.match(r"^(?:D:)?(\d{4})[:\-]?(\d{2})[:\-]?(\d{2})[ T]?(\d{2})?:?(\d{2})?:?(\d{2})?", t)
    if not m:
        return None
    try:
        y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
        hh, mm, ss = (int(m.group(i) or 0) for i in (4, 5, 6))
        return dt.datetime(y, mo, d, hh, mm, ss, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    except ValueError:
        return None


def _dpi_int(dpi: Any) -> int | None:
    try:
        if dpi is None:
            return None
        vals = [float(x) for x in (dpi if isinstance(dpi, list | tuple) else [dpi]) if x]
        return round(min(vals)) if vals else None
    except (TypeError, ValueError):
        return None


def _parse_fraction(v: Any, label: str, code: str) -> float | None:
    """0.05, "0.05", "5%", "5" (a percentage when above 1)."""
    if v is None or v == "":
        return None
    try:
        txt = str(v).strip().rstrip("%％")
        x = float(txt)
        if str(v).strip().endswith(("%", "％")) or x > 1:
            x /= 100
    except ValueError:
        raise ValidationFailed(f"{label}应为 0 到 1 之间的小数或百分数（如 5%）", code=code) from None
    if not 0 < x <= 1:
        raise ValidationFailed(f"{label}应大于 0 且不超过 100%", code=code)
    return x


# ---------------------------------------------------------------- views


def page_view(p: ScanPage, f: ScanFile | None = None, *, shown: bool = True) -> dict[str, Any]:
    f = f or p.scan_file
    flags = list(p.flags or [])
    return {
        "id": p.id, "batch_id": p.batch_id, "file_id": p.file_id, "file_name": f.name if f else "", "index": p.index,
        "archival_code": p.archival_code, "page_no": p.page_no, "record_id": p.record_id, "is_current": p.is_current,
        "superseded_by_id": p.superseded_by_id, "width": p.width, "height": p.height, "dpi": p.dpi,
        "colour": p.colour, "compression": p.compression, "device": p.device, "software": p.software,
        "scanned_at": iso(p.scanned_at), "qc_status": p.qc_status, "qc_label": QC_LABELS.get(p.qc_status, p.qc_status),
        "flags": [{**fl, "label": FLAG_LABELS.get(fl.get("code", ""), fl.get("code", ""))} for fl in flags],
        "skew": (p.qc or {}).get("skew"), "declared_blank": p.declared_blank, "sampled": p.sampled,
        "sample_verdict": p.sample_verdict, "sample_note": p.sample_note, "sample_by": p.sample_by,
        "sample_at": iso(p.sample_at), "ocr_done": p.ocr_at is not None, "ocr_chars": len(p.ocr_text or ""),
        "file_row_id": p.file_row_id, "shown": shown, "sha256": f.sha256 if f else "", "sm3": f.sm3 if f else "",
        "outstanding": p.is_current and p.qc_status == "fail",
    }


def _batch_counts(s: Session, batch_ids: list[int]) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {b: {"pages": 0, "failing": 0, "pending": 0, "ocr": 0, "replaced": 0, "records": 0}
                                      for b in batch_ids}
    if not batch_ids:
        return out
    rows = s.execute(select(ScanPage.batch_id, ScanPage.is_current, ScanPage.qc_status,
                            func.count(), func.count(ScanPage.ocr_at))
                     .where(ScanPage.batch_id.in_(batch_ids))
                     .group_by(ScanPage.batch_id, ScanPage.is_current, ScanPage.qc_status)).all()
    for bid, cur, st, n, nocr in rows:
        c = out[bid]
        if not cur:
            c["replaced"] += n
            continue
        c["pages"] += n
        c["ocr"] += nocr
        if st == "fail":
            c["failing"] += n
        elif st == "pending":
            c["pending"] += n
    for bid, n in s.execute(select(ScanPage.batch_id, func.count(func.distinct(ScanPage.record_id)))
                            .where(ScanPage.batch_id.in_(batch_ids), ScanPage.is_current, ScanPage.record_id.is_not(None))
                            .group_by(ScanPage.batch_id)).all():
        out[bid]["records"] = n
    return out


def _job_view(s: Session, b: ScanBatch) -> dict[str, Any] | None:
    if not b.job_id:
        return None
    j = s.get(CaptureJob, b.job_id)
    return jobs._view(j) if j is not None else None


def batch_summary(b: ScanBatch, counts: dict[str, int], job: dict[str, Any] | None = None) -> dict[str, Any]:
    settings = b.settings or {}
    return {
        "id": b.id, "name": b.name, "fonds_code": b.fonds.code, "fonds_name": b.fonds.name,
        "category_code": b.category.code if b.category else None, "category_name": b.category.name if b.category else None,
        "year": b.year, "status": b.status, "status_label": STATUS_LABELS.get(b.status, b.status),
        "device": b.device, "software": b.software, "settings": settings,
        "sample_rate": settings.get("sample_rate", DEFAULT_SAMPLE_RATE),
        "pass_mark": settings.get("pass_mark", DEFAULT_PASS_MARK), "inspection": b.inspection,
        "overrides": b.overrides or [], "qc_at": iso(b.qc_at), "ocr_at": iso(b.ocr_at), "created_by": b.created_by,
        "created_at": iso(b.created_at), "accepted_by": b.accepted_by, "accepted_at": iso(b.accepted_at),
        "accept_note": b.accept_note, "summary": b.summary or {}, "counts": counts, "job": job,
        "job_running": bool(job and not job["finished"]),
    }


def list_batches(app: Dangan, actor: Actor, *, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
    _require_scan(actor)
    with app.read_sessions() as s:
        q = select(ScanBatch).order_by(ScanBatch.id.desc()).limit(max(1, min(int(limit), 500)))
        if status:
            q = q.where(ScanBatch.status == status)
        rows = list(s.scalars(q))
        counts = _batch_counts(s, [b.id for b in rows])
        return [batch_summary(b, counts[b.id], _job_view(s, b)) for b in rows]


def get_batch(app: Dangan, actor: Actor, batch_id: int, *, pages: bool = True) -> dict[str, Any]:
    """The batch with its counts, what is outstanding (`issues`), the 抽检 and, per record, its pages."""
    _require_scan(actor)
    with app.read_sessions() as s:
        b = _batch(s, batch_id)
        view = batch_summary(b, _batch_counts(s, [b.id])[b.id], _job_view(s, b))
        all_pages = list(s.scalars(select(ScanPage).where(ScanPage.batch_id == b.id).order_by(ScanPage.id)))
        files = {f.id: f for f in s.scalars(select(ScanFile).where(ScanFile.batch_id == b.id))}
        recs = _records(s, actor, {p.record_id for p in all_pages if p.record_id})
        view["issues"] = _issues(s, actor, b, all_pages, files, recs)
        view["counts"]["unreadable"] = sum(1 for p in all_pages if p.is_current and any(
            f.get("code") == "UNREADABLE" for f in p.flags or []))
        view["blocking"] = [i for i in view["issues"] if i["severity"] == "block"]
        view["inspection_state"] = _inspection_state(b, all_pages)
        view["outputs"] = _outputs(s, b.id)
        view["ofd_outputs"] = _outputs(s, b.id, "ofd")
        if pages:
            view["groups"] = _groups(all_pages, files, recs, view["outputs"])
            view["outstanding"] = [page_view(p, files[p.file_id], shown=_shown(p, recs))
                                   for p in all_pages if p.is_current and p.qc_status == "fail"]
            view["sample"] = [page_view(p, files[p.file_id], shown=_shown(p, recs)) for p in all_pages if p.sampled]
            view["files"] = [{"id": f.id, "name": f.name, "name_encoding": f.name_encoding, "size": f.size,
                              "sha256": f.sha256, "sm3": f.sm3, "format_name": f.format_name,
                              "page_count": f.page_count, "error": f.error, "archival_code": f.archival_code}
                             for f in files.values()]
        return view


def _shown(p: ScanPage, recs: dict[int, dict[str, Any]]) -> bool:
    """A page of a record the actor may not read is listed by 档号 only: no image, no text."""
    return p.record_id is None or p.record_id in recs


def _records(s: Session, actor: Actor, ids: set[int]) -> dict[int, dict[str, Any]]:
    ids = {i for i in ids if i}
    vis = _visible_ids(s, actor, ids)
    out: dict[int, dict[str, Any]] = {}
    id_l = sorted(vis)
    for i in range(0, len(id_l), 500):
        for r in s.scalars(select(Record).where(Record.id.in_(id_l[i:i + 500]))):
            pages = (r.meta or {}).get("pages")
            out[r.id] = {"id": r.id, "archival_code": r.archival_code, "title": r.title, "state": r.state,
                         "state_label": RecordState(r.state).label, "pages": pages if isinstance(pages, int) else None,
                         "row_version": r.row_version, "security_level": r.security_level}
    return out


def _outputs(s: Session, batch_id: int, kind: str = "pdfa") -> dict[int, dict[str, Any]]:
    """The latest access copy per record of the batch: the PDF/A (kind "pdfa") or the OFD (kind "ofd")."""
    out: dict[int, dict[str, Any]] = {}
    for o in s.scalars(select(ScanOutput).where(ScanOutput.batch_id == batch_id, ScanOutput.kind == kind)
                       .order_by(ScanOutput.id)):
        out[o.record_id] = {"id": o.id, "pages": o.pages, "page_ids": list(o.page_ids or []), "size": o.size,
                            "sha256": o.sha256, "sm3": o.sm3, "created_at": iso(o.created_at),
                            "file_row_id": o.file_row_id}
    return out


def _group_key(p: ScanPage) -> str:
    return f"r{p.record_id}" if p.record_id else f"c{p.archival_code or ''}"


def _ordered(pages: list[ScanPage]) -> list[ScanPage]:
    return sorted(pages, key=lambda p: (p.page_no if p.page_no is not None else 10**9, p.id))


def _groups(pages: list[ScanPage], files: dict[int, ScanFile], recs: dict[int, dict[str, Any]],
            outputs: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    by: dict[str, list[ScanPage]] = {}
    for p in pages:
        if p.is_current:
            by.setdefault(_group_key(p), []).append(p)
    groups = []
    for key, ps in by.items():
        ps = _ordered(ps)
        rid = ps[0].record_id
        rec = recs.get(rid) if rid else None
        out = outputs.get(rid) if rid else None
        groups.append({
            "key": key, "record_id": rid, "archival_code": ps[0].archival_code, "record": rec,
            "hidden": rid is not None and rec is None, "expected_pages": rec["pages"] if rec else None,
            "pages": [page_view(p, files[p.file_id], shown=_shown(p, recs)) for p in ps],
            "failing": sum(p.qc_status == "fail" for p in ps), "ocr_done": all(p.ocr_at for p in ps),
            "output": out if out and out["page_ids"] == [p.id for p in ps] else None,
        })
    groups.sort(key=lambda g: (g["record_id"] is None, g["archival_code"] or ""))
    return groups


def _inspection_state(b: ScanBatch, pages: list[ScanPage]) -> dict[str, Any]:
    """The 抽检 as it stands: how many sampled, checked, 合格, the rate and the verdict (None until all checked)."""
    settings = b.settings or {}
    sample = [p for p in pages if p.sampled]
    passed = sum(p.sample_verdict == "合格" for p in sample)
    failed = sum(p.sample_verdict == "不合格" for p in sample)
    checked = passed + failed
    mark = float(settings.get("pass_mark", DEFAULT_PASS_MARK))
    rate = passed / checked if checked else None
    verdict = None
    if sample and checked == len(sample):
        verdict = "合格" if rate is not None and rate + 1e-9 >= mark else "不合格"
    return {"drawn": bool(sample), "sampled": len(sample), "checked": checked, "passed": passed, "failed": failed,
            "rate": rate, "pass_mark": mark, "sample_rate": float(settings.get("sample_rate", DEFAULT_SAMPLE_RATE)),
            "verdict": verdict, "round": (b.inspection or {}).get("round", 0)}


def _issues(s: Session, actor: Actor, b: ScanBatch, pages: list[ScanPage], files: dict[int, ScanFile],
            recs: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """Everything that stands between the batch and its acceptance, each with a stable key for an override."""
    out: list[dict[str, Any]] = []

    def add(key: str, kind: str, message: str, severity: str = "block", **extra: Any) -> None:
        out.append({"key": key, "kind": kind, "message": message, "severity": severity,
                    "overridable": severity == "block" and kind not in NOT_OVERRIDABLE, **extra})

    current = [p for p in pages if p.is_current]
    pending = [p for p in current if p.qc_status == "pending"]
    if pending:
        add("qc_pending", "qc_pending", f"还有 {len(pending)} 页未做图像质量检查：请先运行质量检查")
    by: dict[str, list[ScanPage]] = {}
    for p in current:
        by.setdefault(_group_key(p), []).append(p)
    for _key, ps in sorted(by.items()):
        ps = _ordered(ps)
        code = ps[0].archival_code or "（未识别档号）"
        # a record the reader may not see is reported exactly as one that does not exist
        rid = ps[0].record_id if ps[0].record_id in recs else None
        if rid is None:
            names = sorted({files[p.file_id].name for p in ps})
            add(f"no_record:{code}", "no_record",
                f"“{code}”没有对应的档案（在全宗 {b.fonds.code} 中找不到该档号），{len(ps)} 页："
                + "、".join(names[:5]) + (f" 等 {len(names)} 个文件" if len(names) > 5 else ""),
                archival_code=code, page_ids=[p.id for p in ps])
            continue
        rec = recs.get(rid)
        nums = [p.page_no for p in ps if p.page_no is not None]
        seen: dict[int, list[ScanPage]] = {}
        for p in ps:
            if p.page_no is not None:
                seen.setdefault(p.page_no, []).append(p)
        for n, dup in sorted(seen.items()):
            if len(dup) > 1:
                add(f"dup:{rid}:{n}", "duplicate_page_no",
                    f"{code} 第 {n} 页有 {len(dup)} 个图像：" + "、".join(files[p.file_id].name for p in dup),
                    archival_code=code, record_id=rid, page_ids=[p.id for p in dup])
        if nums:
            missing = sorted(set(range(1, max(nums) + 1)) - set(nums))
            if missing:
                add(f"gap:{rid}", "gap", f"{code} 页号不连续：缺第 {_ranges(missing)} 页", archival_code=code,
                    record_id=rid, missing=missing)
        if rec is not None and rec["pages"] is not None and rec["pages"] != len(ps):
            add(f"page_count:{rid}", "page_count",
                f"{code} 著录的页数为 {rec['pages']}，扫描了 {len(ps)} 页", archival_code=code, record_id=rid,
                expected=rec["pages"], found=len(ps))
        if rec is not None:
            state = RecordState(rec["state"])
            if state not in EDITABLE and state != RecordState.FILED:
                add(f"record_state:{rid}", "record_state",
                    f"{code} 处于“{state.label}”状态，不能挂接电子文件", archival_code=code, record_id=rid)
    for key, rid, code in _missing_records(s, actor, b, {p.record_id for p in current if p.record_id}):
        add(key, "no_images", f"{code} 著录了页数，但本批次没有它的扫描图像", archival_code=code, record_id=rid)
    for p in _ordered([p for p in current if p.qc_status == "fail"]):
        f = files[p.file_id]
        where = f"{p.archival_code or f.name} 第 {p.page_no} 页" if p.page_no is not None else f.name
        reasons = [fl.get("message") or FLAG_LABELS.get(fl.get("code", ""), "") for fl in p.flags or []
                   if fl.get("severity") == "fail" and not (p.declared_blank and fl.get("code") == "BLANK")]
        if p.sample_verdict == "不合格":
            reasons.append(f"抽检不合格：{p.sample_note}" if p.sample_note else "抽检不合格")
        kind = "unreadable" if any(fl.get("code") == "UNREADABLE" for fl in p.flags or []) else "qc_fail"
        add(f"page:{p.id}", kind, f"{where}（{f.name}）待返工：" + "；".join(r for r in reasons if r),
            archival_code=p.archival_code, record_id=p.record_id if p.record_id in recs else None, page_ids=[p.id])
    for sk in (b.summary or {}).get("skipped", []):
        if sk.get("blocking"):
            add(f"skipped:{sk['name']}", "unreadable", f"“{sk['name']}”未能读取，没有入库：{sk['reason']}")
    ins = _inspection_state(b, pages)
    if current and not pending:
        if not ins["drawn"]:
            add("inspection", "inspection", "尚未抽检：请按抽检比例抽取页面并逐页判定")
        elif ins["verdict"] is None:
            add("inspection", "inspection", f"抽检未完成：已判定 {ins['checked']} / {ins['sampled']} 页")
        elif ins["verdict"] == "不合格":
            add("inspection", "inspection",
                f"抽检不合格：合格率 {ins['rate']:.1%}，低于 {ins['pass_mark']:.0%}。请返工后重新抽检")
    outputs = _outputs(s, b.id)
    for _key, ps in sorted(by.items()):
        rid = ps[0].record_id
        if rid is None or rid not in recs:
            continue
        o = outputs.get(rid)
        if o is None or o["page_ids"] != [p.id for p in _ordered(ps)]:
            add(f"ocr:{rid}", "ocr", f"{ps[0].archival_code} 尚无与当前页面一致的可检索 PDF/A 利用副本（请运行 OCR）；"
                "挂接时只挂接扫描件", severity="warn", archival_code=ps[0].archival_code, record_id=rid)
    return out


def _ranges(nums: list[int]) -> str:
    parts, start, prev = [], None, None
    for n in nums:
        if start is None:
            start = prev = n
        elif n == prev + 1:  # type: ignore[operator]
            prev = n
        else:
            parts.append(f"{start}" if start == prev else f"{start}–{prev}")
            start = prev = n
    if start is not None:
        parts.append(f"{start}" if start == prev else f"{start}–{prev}")
    return "、".join(parts[:10]) + ("…" if len(parts) > 10 else "")


def _missing_records(s: Session, actor: Actor, b: ScanBatch, linked: set[int]) -> list[tuple[str, int, str]]:
    """Records of the batch's scope (its category and year, when given) that have 页数 but no image and no file."""
    if b.category_id is None and b.year is None:
        return []
    q = select(Record.id, Record.archival_code, Record.meta, Record.parent_id).where(
        Record.fonds_id == b.fonds_id, Record.archival_code.is_not(None), visible(s, actor),
        Record.state != RecordState.DESTROYED.value,
        ~select(File.id).where(File.record_id == Record.id, File.is_current).exists())
    if b.category_id is not None:
        q = q.where(Record.category_id == b.category_id)
    if b.year is not None:
        q = q.where(Record.year == b.year)
    parents = set(s.scalars(select(Record.parent_id).where(Record.id.in_(sorted(linked))))) if linked else set()
    out = []
    for rid, code, meta, parent in s.execute(q.order_by(Record.archival_code).limit(5000)):
        pages = (meta or {}).get("pages")
        if rid in linked or rid in parents or parent in linked or not isinstance(pages, int) or pages <= 0:
            continue
        out.append((f"no_images:{rid}", rid, code))
    return out


# ---------------------------------------------------------------- intake


def _match_records(s: Session, actor: Actor, fonds_id: int, category_id: int | None,
                   codes: set[str]) -> dict[str, tuple[int, str]]:
    """candidate 档号 -> (record id, its 档号) among the records of the fonds the actor may read.

    Exact first; then ignoring separators and case (`·` written as `.` or `_` by scanning software)."""
    from dangan.search.segment import code_key

    out: dict[str, tuple[int, str]] = {}
    codes_l = sorted(c for c in codes if c)
    for i in range(0, len(codes_l), 500):
        for rid, code in s.execute(select(Record.id, Record.archival_code).where(
                Record.fonds_id == fonds_id, Record.archival_code.in_(codes_l[i:i + 500]), visible(s, actor))):
            out[code] = (rid, code)
    rest = {c for c in codes_l if c not in out}
    if rest:
        keys: dict[str, list[str]] = {}
        for c in rest:
            keys.setdefault(code_key(c), []).append(c)
        q = select(Record.id, Record.archival_code).where(Record.fonds_id == fonds_id, Record.archival_code.is_not(None),
                                                          visible(s, actor))
        if category_id is not None:
            q = q.where(Record.category_id == category_id)
        for rid, code in s.execute(q):
            for c in keys.get(code_key(code), []):
                out.setdefault(c, (rid, code))
    return out


@dataclass
class _Stored:
    src: ScanSource
    blob: BlobInfo
    media_type: str
    format_name: str
    pages: int = 0
    props: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def _inspect_blob(app: Dangan, st: _Stored) -> None:
    from dangan.digitise import images

    with _blob_path(app, st.blob.key) as path:
        try:
            st.pages = images.page_count(path, st.src.name)
            st.props = _jsonable(images.scan_properties(path, st.src.name))
            if st.pages <= 0:
                st.error = "文件中没有页面"
        except DanganError as e:
            st.error = e.message
        except Exception as e:  # noqa: BLE001 - a hostile file must not stop the batch
            st.error = f"无法读取：{type(e).__name__}"


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, tuple):
            v = list(v)
        if isinstance(v, dt.datetime | dt.date):
            v = v.isoformat()
        if isinstance(v, str | int | float | bool | list | dict) or v is None:
            out[str(k)] = v
        else:
            out[str(k)] = str(v)
    return out


@audited("scan.import", "scan_batch")
def import_batch(app: Dangan, actor: Actor, sources: list[ScanSource], *, fonds: str, category: str | None = None,
                 year: int | None = None, device: str = "", software: str = "", name: str = "",
                 skipped: list[Skipped] | None = None,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Take in a batch: store every master (blobs first), read its page count and 数字化属性, link by 档号."""
    require(actor, "scan.import")
    skipped = list(skipped or [])
    if year is not None and not 1900 <= int(year) <= 2999:
        raise ValidationFailed("年度应为四位数字，如 2024", code="WRONG_TYPE")
    device, software = (device or "").strip()[:200], (software or "").strip()[:200]
    with app.read_sessions() as s:
        f = get_fonds(s, fonds)
        cat = get_category(s, f.id, category) if category else None
        fonds_id, cat_id = f.id, cat.id if cat else None
    if not sources:
        raise ValidationFailed("没有找到扫描图像（TIFF、JPEG、JPEG 2000、PNG 或扫描 PDF），未建立批次", code="NO_SCANS",
                               detail={"skipped": [dataclasses.asdict(x) for x in skipped[:50]]})
    stored: list[_Stored] = []
    total = len(sources)
    for i, src in enumerate(sources):
        try:
            with src.opener() as fh:
                blob = app.store.put(fh, expected_size=src.size)
        except DanganError as e:
            skipped.append(Skipped(src.name, e.message, e.code, blocking=True))
            continue
        media_type, format_name = identify(src.name, blob.head, None)
        st = _Stored(src, dataclasses.replace(blob, head=b""), media_type, format_name)  # bounded memory
        _inspect_blob(app, st)
        stored.append(st)
        if progress:
            progress(i + 1, total)
    if not stored:
        raise ValidationFailed("没有能够读取的扫描文件，未建立批次", code="NO_SCANS",
                               detail={"skipped": [dataclasses.asdict(x) for x in skipped[:50]]})
    parsed = {id(st): parse_name(st.src.name) for st in stored}
    with app.uow(actor, "scan.import", "scan_batch") as uow:
        s = uow.session
        found = _match_records(s, actor, fonds_id, cat_id, {c[0] for p in parsed.values() for c in p.candidates})
        b = ScanBatch(name=(name or "").strip()[:200] or f"扫描批次 {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}",
                      fonds_id=fonds_id, category_id=cat_id, year=year, status="open", device=device, software=software,
                      settings={"sample_rate": DEFAULT_SAMPLE_RATE, "pass_mark": DEFAULT_PASS_MARK, "qc": {}},
                      summary={}, overrides=[], created_by=actor.username, accept_note="")
        s.add(b)
        s.flush()
        n_pages = linked = 0
        gbk = 0
        for st in stored:
            pn = parsed[id(st)]
            match = next(((c, found[c[0]]) for c in pn.candidates if c[0] in found), None)
            code, first, layout = match[0] if match else _display(pn)
            rid = match[1][0] if match else None
            if match:
                code = match[1][1]
            gbk += st.src.encoding not in ("utf-8",)
            sf = ScanFile(batch_id=b.id, name=st.src.name[:500], name_encoding=st.src.encoding[:16], archival_code=code[:120],
                          first_page=first, layout=layout, size=st.blob.size, sha256=st.blob.sha256, sm3=st.blob.sm3,
                          storage_key=st.blob.key, media_type=st.media_type[:100], format_name=st.format_name[:100],
                          page_count=st.pages, error=st.error, properties=st.props, created_by=actor.username)
            s.add(sf)
            s.flush()
            scanned = _parse_time(st.props.get("created")) or st.src.modified
            start = first if first is not None else 1
            base = {"batch_id": b.id, "file_id": sf.id, "archival_code": code[:120], "record_id": rid,
                    "dpi": _dpi_int(st.props.get("dpi")), "colour": str(st.props.get("colour") or "")[:8],
                    "compression": str(st.props.get("compression") or "")[:32],
                    "device": (device or str(st.props.get("device") or ""))[:200],
                    "software": (software or str(st.props.get("software") or ""))[:200], "scanned_at": scanned}
            if st.error:
                s.add(ScanPage(**base, index=0, page_no=start, flags=[_unreadable_flag(st.error)], qc_status="fail",
                               width=None, height=None))
                n_pages += 1
            else:
                for k in range(st.pages):
                    s.add(ScanPage(**base, index=k, page_no=start + k, flags=[], qc_status="pending",
                                   width=st.props.get("width") if st.pages == 1 else None,
                                   height=st.props.get("height") if st.pages == 1 else None))
                n_pages += st.pages
            linked += rid is not None
        b.summary = {"files": len(stored), "pages": n_pages, "linked_files": linked, "gbk_names": gbk,
                     "skipped": [dataclasses.asdict(x) for x in skipped[:500]], "skipped_count": len(skipped)}
        uow.audit("scan.import", "scan_batch", b.id, name=b.name, fonds=fonds, category=category, year=year,
                  files=len(stored), pages=n_pages, linked_files=linked, skipped=len(skipped), device=device,
                  software=software)
        batch_id = b.id
    return get_batch(app, actor, batch_id, pages=False)


# ---------------------------------------------------------------- jobs of a batch


def claim_job(app: Dangan, actor: Actor, batch_id: int, kind: str, action: str, params: dict[str, Any]) -> str:
    """Create the job row for a batch's QC or OCR; refuse while another job of the batch runs."""
    require(actor, action)
    with app.uow(actor) as uow:
        b = _batch(uow.session, batch_id, lock=True)
        _check_open(b)
        if b.job_id:
            j = uow.session.get(CaptureJob, b.job_id)
            if j is not None and j.status in ("queued", "running"):
                raise Conflict(f"批次 #{batch_id} 正在进行“{jobs.KIND_LABELS.get(j.kind, j.kind)}”，请等它结束后再开始",
                               code="JOB_RUNNING", detail={"job_id": j.id})
        jid = uuid.uuid4().hex[:16]
        uow.session.add(CaptureJob(id=jid, kind=kind, status="queued", actor=actor.username,
                                   params={"batch_id": batch_id, **params}, result={}))
        b.job_id = jid
    return jid


def batch_job(app: Dangan, actor: Actor, batch_id: int) -> dict[str, Any]:
    """The batch's current (or last) job, for the progress shown on its page (whoever started it)."""
    _require_scan(actor)
    with app.read_sessions() as s:
        b = _batch(s, batch_id)
        view = _job_view(s, b)
        if view is None:
            return {"id": None, "status": "none", "status_label": "没有任务", "finished": True, "percent": 100,
                    "processed": 0, "total": 0, "batch_status": b.status}
        return {**view, "batch_status": b.status}


def prepare_qc(app: Dangan, actor: Actor, batch_id: int, *, redo: bool = False) -> str:
    """Check that there is something to check, then claim the batch for a QC job; returns the job id."""
    require(actor, "scan.qc")
    with app.read_sessions() as s:
        b = _batch(s, batch_id)
        _check_open(b)
        pending = s.scalar(select(func.count()).where(ScanPage.batch_id == b.id, ScanPage.is_current,
                                                      ScanPage.qc_status == "pending"))
    if not pending and not redo:
        raise StateError("所有页面都已做过质量检查；如要按新的阈值重新检查全部页面，请选择“全部重新检查”",
                         code="QC_NOTHING_TO_DO")
    return claim_job(app, actor, batch_id, "scan_qc", "scan.qc", {"redo": redo})


def prepare_ocr(app: Dangan, actor: Actor, batch_id: int, *, redo: bool = False) -> str:
    """Check that OCR can run and has something to do, then claim the batch for an OCR job."""
    from dangan.digitise import ocr

    require(actor, "ocr.run")
    with app.read_sessions() as s:
        b = _batch(s, batch_id)
        _check_open(b)
        current = list(s.scalars(select(ScanPage).where(ScanPage.batch_id == b.id, ScanPage.is_current)))
        outputs = _outputs(s, b.id)
        ofds = _outputs(s, b.id, "ofd") if app.settings.scan_ofd else None
    if any(p.qc_status == "pending" for p in current):
        raise StateError("还有页面未做图像质量检查：请先运行质量检查（OCR 使用纠偏、去黑边后的利用图像）", code="QC_REQUIRED")
    readable = [p for p in current if p.qc and not any(f.get("code") == "UNREADABLE" for f in p.flags or [])]
    groups: dict[int, list[int]] = {}
    for p in _ordered(current):
        if p.record_id:
            groups.setdefault(p.record_id, []).append(p.id)
    stale = [rid for rid, ids in groups.items() if (outputs.get(rid) or {}).get("page_ids") != ids
             or (ofds is not None and (ofds.get(rid) or {}).get("page_ids") != ids)]
    if not redo and not any(p.ocr_at is None for p in readable) and not stale:
        raise StateError("所有页面都已识别，PDF/A 利用副本也是最新的；如要重新识别全部页面，请选择“全部重新识别”",
                         code="OCR_NOTHING_TO_DO")
    if not ocr.engine_available():
        raise ValidationFailed("OCR 引擎无法加载（rapidocr 或 onnxruntime 未安装或模型缺失），未识别", code="OCR_UNAVAILABLE")
    return claim_job(app, actor, batch_id, "scan_ocr", "ocr.run", {"redo": redo})


def qc_work(app: Dangan, actor: Actor, batch_id: int, *, redo: bool = False,
            on_step: Callable[[int, int], None] | None = None) -> Callable[[jobs.Progress], dict[str, Any]]:
    def work(prog: jobs.Progress) -> dict[str, Any]:
        def step(n: int, total: int) -> None:
            prog.update(processed=n, total=total)
            if on_step:
                on_step(n, total)

        return run_qc(app, actor, batch_id, redo=redo, progress=step)

    return work


def ocr_work(app: Dangan, actor: Actor, batch_id: int, *, redo: bool = False, workers: int | None = None,
             on_step: Callable[[int, int], None] | None = None) -> Callable[[jobs.Progress], dict[str, Any]]:
    def work(prog: jobs.Progress) -> dict[str, Any]:
        def step(n: int, total: int) -> None:
            prog.update(processed=n, total=total)
            if on_step:
                on_step(n, total)

        return run_ocr(app, actor, batch_id, redo=redo, workers=workers, progress=step)

    return work


def _qc_settings(b: ScanBatch) -> Any:
    from dangan.digitise.qc import QcSettings

    given = (b.settings or {}).get("qc") or {}
    names = {f.name for f in dataclasses.fields(QcSettings)}
    return QcSettings(**{k: v for k, v in given.items() if k in names})


def _qc_from_json(d: dict[str, Any]) -> Any:
    from dangan.digitise.qc import PageQc

    names = {f.name for f in dataclasses.fields(PageQc)}
    kw = {k: v for k, v in d.items() if k in names}
    if isinstance(kw.get("border"), list):
        kw["border"] = tuple(kw["border"])
    kw["flags"] = list(kw.get("flags") or [])
    return PageQc(**kw)


def _qc_to_json(q: Any, pimg: Any) -> dict[str, Any]:
    d = _jsonable(dataclasses.asdict(q))
    dpi = pimg.dpi[0] if pimg.dpi else None
    d["access_dpi"] = round((dpi or 300) * (pimg.scale or 1.0), 2)
    d["orientation_applied"] = pimg.orientation_applied
    return d


def _save_derived(app: Dangan, batch_id: int, page_id: int, access: Any) -> None:
    """The access image (for the viewer and OCR) and a thumbnail, as JPEG in the cache."""
    d = cache_dir(app, batch_id)
    img = access if access.mode in ("L", "RGB") else access.convert("L" if access.mode in ("1", "I;16", "I") else "RGB")
    img.save(d / f"{page_id}-access.jpg", "JPEG", quality=85, optimize=True)
    th = img.copy()
    th.thumbnail((320, 320))
    th.save(d / f"{page_id}-thumb.jpg", "JPEG", quality=80)


def _measure_file(app: Dangan, b: ScanBatch, sf: ScanFile, wanted: dict[int, ScanPage], settings: Any,
                  step: Callable[[], None]) -> dict[int, dict[str, Any]]:
    """QC of the wanted pages of one file: per page id, the columns to update."""
    from dangan.digitise import images, qc

    out: dict[int, dict[str, Any]] = {}
    with _blob_path(app, sf.storage_key) as path:
        try:
            pages = images.iter_pages(path, sf.name)
        except DanganError as e:
            for pg in wanted.values():
                out[pg.id] = {"flags": [_unreadable_flag(e.message)], "qc": None}
                step()
            return out
        try:
            for pimg in pages:
                pg = wanted.get(pimg.index)
                if pg is None:
                    continue
                try:
                    q = qc.measure(pimg, settings)
                    row: dict[str, Any] = {"flags": list(q.flags), "qc": _qc_to_json(q, pimg)}
                    if pimg.image is not None:
                        _save_derived(app, b.id, pg.id, qc.access_image(pimg, q))
                except DanganError as e:
                    row = {"flags": [_unreadable_flag(e.message)], "qc": None}
                if pimg.error:
                    row["flags"] = [f for f in row["flags"] if f.get("code") != "UNREADABLE"] + [_unreadable_flag(pimg.error)]
                row.update(width=pimg.width or None, height=pimg.height or None, colour=(pimg.colour or "")[:8],
                           compression=(pimg.compression or "")[:32])
                if pimg.dpi:
                    row["dpi"] = _dpi_int(pimg.dpi)
                info = pimg.info or {}
                if not b.device and info.get("device"):
                    row["device"] = str(info["device"])[:200]
                if not b.software and info.get("software"):
                    row["software"] = str(info["software"])[:200]
                if info.get("created") and _parse_time(info["created"]):
                    row["scanned_at"] = _parse_time(info["created"])
                out[pg.id] = row
                pimg.image = None
                step()
        except DanganError as e:  # the file broke part way: the pages not reached are unreadable
            for pg in wanted.values():
                if pg.id not in out:
                    out[pg.id] = {"flags": [_unreadable_flag(e.message)], "qc": None}
                    step()
        finally:
            with contextlib.suppress(Exception):
                pages.close()  # type: ignore[union-attr]
    for pg in wanted.values():  # fewer pages in the file than counted at intake
        if pg.id not in out:
            out[pg.id] = {"flags": [_unreadable_flag("文件中找不到该页")], "qc": None}
            step()
    return out


def run_qc(app: Dangan, actor: Actor, batch_id: int, *, redo: bool = False,
           progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """图像质量检查 of the batch's pages not yet checked (all current pages with redo=True), then duplicates."""
    require(actor, "scan.qc")
    with app.read_sessions() as s:
        b = _batch(s, batch_id)
        _check_open(b)
        q = select(ScanPage).where(ScanPage.batch_id == b.id, ScanPage.is_current)
        if not redo:
            q = q.where(ScanPage.qc_status == "pending")
        todo = list(s.scalars(q.order_by(ScanPage.file_id, ScanPage.index)))
        files = {f.id: f for f in s.scalars(select(ScanFile).where(ScanFile.batch_id == b.id))}
        settings = _qc_settings(b)
    by_file: dict[int, dict[int, ScanPage]] = {}
    for p in todo:
        by_file.setdefault(p.file_id, {})[p.index] = p
    done = [0]
    total = len(todo)

    def step() -> None:
        done[0] += 1
        if progress:
            progress(done[0], total)

    if progress:
        progress(0, total)
    for fid, wanted in by_file.items():
        sf = files[fid]
        if sf.error:  # unreadable at intake: stays as it was
            for _ in wanted:
                step()
            continue
        rows = _measure_file(app, b, sf, wanted, settings, step)
        with app.sessions.begin() as s:
            for pid, row in rows.items():
                pg = s.get(ScanPage, pid)
                if pg is None:
                    continue
                for k, v in row.items():
                    setattr(pg, k, v)
                pg.qc_status = _flags_status(pg.flags, pg.declared_blank, pg.sample_verdict)
    dups = _mark_duplicates(app, batch_id, settings)
    with app.uow(actor, "scan.qc", "scan_batch", str(batch_id)) as uow:
        b = _batch(uow.session, batch_id, lock=True)
        b.qc_at = utcnow()
        counts = _batch_counts(uow.session, [b.id])[b.id]
        uow.audit("scan.qc", "scan_batch", b.id, checked=total, redo=redo, failing=counts["failing"], duplicates=dups)
    return {"batch_id": batch_id, "checked": total, "failing": counts["failing"], "duplicates": dups}


def _mark_duplicates(app: Dangan, batch_id: int, settings: Any) -> int:
    """digitise.qc.mark_duplicates within each record (or 档号) of the batch; returns the pages flagged."""
    from dangan.digitise import qc

    n = 0
    with app.sessions.begin() as s:
        pages = list(s.scalars(select(ScanPage).where(ScanPage.batch_id == batch_id, ScanPage.is_current,
                                                      ScanPage.qc.is_not(None))))
        groups: dict[str, list[ScanPage]] = {}
        for p in pages:
            groups.setdefault(_group_key(p), []).append(p)
        for ps in groups.values():
            ps = _ordered(ps)
            results = []
            for p in ps:
                r = _qc_from_json(p.qc or {})
                r.flags = [f for f in r.flags if f.get("code") != "DUPLICATE"]
                r.duplicate_of = None
                results.append(r)
            if len(results) > 1:
                qc.mark_duplicates(results, settings, [f"第 {p.page_no} 页" for p in ps])
            for p, r in zip(ps, results, strict=True):
                others = [f for f in (p.flags or []) if f.get("code") != "DUPLICATE"]
                dup = [{**f, "page_id": ps[r.duplicate_of].id} if r.duplicate_of is not None else dict(f)
                       for f in r.flags if f.get("code") == "DUPLICATE"]
                if dup:
                    n += 1
                new = others + dup
                if new != (p.flags or []) or (p.qc or {}).get("duplicate_of") != r.duplicate_of:
                    p.flags = new
                    p.qc = {**(p.qc or {}), "flags": new, "duplicate_of": r.duplicate_of}
                    p.qc_status = _flags_status(new, p.declared_blank, p.sample_verdict)
    return n


# ---------------------------------------------------------------- rescans, blank pages, 抽检


def _spool(app: Dangan, src: ScanSource) -> Path:
    tmp_dir = app.settings.data_dir / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="rescan-", dir=str(tmp_dir))
    with os.fdopen(fd, "wb") as out, src.opener() as fh:
        shutil.copyfileobj(fh, out, 1 << 20)
    return Path(tmp)


@audited("scan.rescan", "scan_page")
def rescan_page(app: Dangan, actor: Actor, batch_id: int, page_id: int, src: ScanSource) -> dict[str, Any]:
    """Replace one page by a new scan: a new master and page; the old ones stay (superseded, never deleted)."""
    from dangan.digitise import images, qc

    require(actor, "scan.import")
    with app.read_sessions() as s:
        b = _batch(s, batch_id)
        _check_open(b)
        old = _page_in_batch(s, actor, batch_id, page_id)
        if not old.is_current:
            raise StateError(f"该页已被第 {old.superseded_by_id} 号页面替换，请对当前的页面返工", code="PAGE_SUPERSEDED")
        settings = _qc_settings(b)
    if not _is_image_name(src.name):
        raise ValidationFailed("返工的扫描件应为 TIFF、JPEG、JPEG 2000、PNG 或扫描 PDF", code="NOT_AN_IMAGE")
    tmp = _spool(app, src)
    try:
        try:
            n = images.page_count(str(tmp), src.name)
        except DanganError as e:
            raise ValidationFailed(f"返工的扫描件无法读取：{e.message}，未替换", code="IMAGE_UNREADABLE") from e
        if n != 1:
            raise ValidationFailed(f"返工的扫描件应只有 1 页（收到 {n} 页），未替换", code="RESCAN_ONE_PAGE")
        pimg = next(iter(images.iter_pages(str(tmp), src.name)))
        if pimg.image is None:
            raise ValidationFailed(f"返工的扫描件无法读取：{pimg.error}，未替换", code="IMAGE_UNREADABLE")
        q = qc.measure(pimg, settings)
        access = qc.access_image(pimg, q)
        props = _jsonable(images.scan_properties(str(tmp), src.name))
        with open(tmp, "rb") as fh:
            blob = app.store.put(fh)
    finally:
        tmp.unlink(missing_ok=True)
    media_type, format_name = identify(src.name, blob.head, None)
    with app.uow(actor, "scan.rescan", "scan_page", str(page_id)) as uow:
        s = uow.session
        b = _batch(s, batch_id, lock=True)
        _check_open(b)
        old = _page_in_batch(s, actor, batch_id, page_id)
        if not old.is_current:
            raise StateError("该页刚被他人替换，请刷新后再试", code="PAGE_SUPERSEDED")
        sf = ScanFile(batch_id=b.id, name=src.name[:500], name_encoding=src.encoding[:16], archival_code=old.archival_code,
                      first_page=old.page_no, layout="page", size=blob.size, sha256=blob.sha256, sm3=blob.sm3,
                      storage_key=blob.key, media_type=media_type[:100], format_name=format_name[:100], page_count=1,
                      error=None, properties=props, created_by=actor.username)
        s.add(sf)
        s.flush()
        flags = list(q.flags)
        new = ScanPage(batch_id=b.id, file_id=sf.id, index=0, archival_code=old.archival_code, page_no=old.page_no,
                       record_id=old.record_id, width=pimg.width, height=pimg.height, dpi=_dpi_int(pimg.dpi),
                       colour=(pimg.colour or "")[:8], compression=(pimg.compression or "")[:32],
                       device=(b.device or str((pimg.info or {}).get("device") or props.get("device") or ""))[:200],
                       software=(b.software or str((pimg.info or {}).get("software") or props.get("software") or ""))[:200],
                       scanned_at=_parse_time(props.get("created")) or src.modified or utcnow(),
                       qc=_qc_to_json(q, pimg), flags=flags, qc_status=_flags_status(flags, False))
        s.add(new)
        s.flush()
        old.is_current = False
        old.superseded_by_id = new.id
        uow.audit("scan.rescan", "scan_page", new.id, batch_id=b.id, replaces=old.id, archival_code=old.archival_code,
                  page_no=old.page_no, name=sf.name, sha256=sf.sha256, sm3=sf.sm3, size=sf.size, qc=new.qc_status)
        new_id = new.id
    _save_derived(app, batch_id, new_id, access)
    _mark_duplicates(app, batch_id, settings)
    return get_page(app, actor, new_id)


def _page_in_batch(s: Session, actor: Actor, batch_id: int | None, page_id: int) -> ScanPage:
    p = s.get(ScanPage, page_id)
    if p is None or (batch_id is not None and p.batch_id != batch_id):
        raise NotFound(f"扫描页 {page_id} 不存在", code="PAGE_NOT_FOUND")
    if p.record_id is not None and not _visible_ids(s, actor, {p.record_id}):
        err = NotFound(f"扫描页 {page_id} 不存在", code="PAGE_NOT_FOUND")
        err.audit_outcome = "denied"  # type: ignore[attr-defined]
        raise err
    return p


def declare_blank(app: Dangan, actor: Actor, batch_id: int, page_id: int, blank: bool = True,
                  note: str = "") -> dict[str, Any]:
    """A page that is blank on paper too (a blank back side kept for completeness) is not a failing page."""
    require(actor, "scan.qc")
    with app.uow(actor, "scan.blank", "scan_page", str(page_id)) as uow:
        b = _batch(uow.session, batch_id, lock=True)
        _check_open(b)
        p = _page_in_batch(uow.session, actor, batch_id, page_id)
        p.declared_blank = bool(blank)
        p.qc_status = _flags_status(p.flags or [], p.declared_blank, p.sample_verdict) if p.qc_status != "pending" \
            else "pending"
        uow.audit("scan.blank", "scan_page", p.id, batch_id=batch_id, blank=bool(blank), note=note[:500])
    return get_page(app, actor, page_id)


def draw_sample(app: Dangan, actor: Actor, batch_id: int, *, rate: Any = None, pass_mark: Any = None,
                seed: int | None = None) -> dict[str, Any]:
    """抽检: draw max(1, ⌈rate × pages⌉) of the current, readable pages at random. A new draw starts a new round."""
    require(actor, "scan.qc")
    r = _parse_fraction(rate, "抽检比例", "BAD_SAMPLE_RATE")
    m = _parse_fraction(pass_mark, "合格率要求", "BAD_PASS_MARK")
    with app.uow(actor, "scan.sample", "scan_batch", str(batch_id)) as uow:
        s = uow.session
        b = _batch(s, batch_id, lock=True)
        _check_open(b)
        settings = dict(b.settings or {})
        if r is not None:
            settings["sample_rate"] = r
        if m is not None:
            settings["pass_mark"] = m
        rate_v = float(settings.get("sample_rate", DEFAULT_SAMPLE_RATE))
        pending = s.scalar(select(func.count()).where(ScanPage.batch_id == b.id, ScanPage.is_current,
                                                      ScanPage.qc_status == "pending"))
        if pending:
            raise StateError(f"还有 {pending} 页未做图像质量检查，请先运行质量检查再抽检", code="QC_REQUIRED")
        pool = [p for p in s.scalars(select(ScanPage).where(ScanPage.batch_id == b.id, ScanPage.is_current))
                if not any(f.get("code") == "UNREADABLE" for f in p.flags or [])]
        if not pool:
            raise StateError("批次中没有可以抽检的页面", code="NOTHING_TO_SAMPLE")
        n = min(len(pool), max(1, math.ceil(rate_v * len(pool) - 1e-9)))
        rng = random.Random(seed) if seed is not None else random.SystemRandom()
        chosen = {p.id for p in rng.sample(pool, n)}
        s.execute(update(ScanPage).where(ScanPage.batch_id == b.id).values(
            sampled=False, sample_verdict=None, sample_note="", sample_by=None, sample_at=None))
        s.execute(update(ScanPage).where(ScanPage.id.in_(sorted(chosen))).values(sampled=True))
        for p in s.scalars(select(ScanPage).where(ScanPage.batch_id == b.id, ScanPage.is_current)):
            if p.qc_status != "pending":  # a 不合格 mark of the previous round no longer counts
                p.qc_status = _flags_status(p.flags or [], p.declared_blank, None)
        round_no = int((b.inspection or {}).get("round", 0)) + 1
        b.settings = settings
        b.inspection = {"round": round_no, "sampled": n, "of": len(pool), "rate": rate_v,
                        "pass_mark": float(settings.get("pass_mark", DEFAULT_PASS_MARK)), "drawn_by": actor.username,
                        "drawn_at": iso(utcnow()), "verdict": None}
        uow.audit("scan.sample", "scan_batch", b.id, round=round_no, rate=rate_v, sampled=n, of=len(pool),
                  pass_mark=b.inspection["pass_mark"], pages=sorted(chosen))
    return get_batch(app, actor, batch_id)


def mark_sample(app: Dangan, actor: Actor, batch_id: int, page_id: int, verdict: str, note: str = "") -> dict[str, Any]:
    """The inspector's 合格 / 不合格 for one sampled page (不合格 needs a note, and sends the page back for rescan)."""
    require(actor, "scan.qc")
    v = VERDICTS.get((verdict or "").strip().lower()) or VERDICTS.get((verdict or "").strip())
    if v is None:
        raise ValidationFailed("抽检结论应为“合格”或“不合格”", code="BAD_VERDICT")
    note = (note or "").strip()[:1000]
    if v == "不合格" and not note:
        raise ValidationFailed("判为不合格时请写明问题（如 字迹不清、缺角、页序错误），以便返工", code="NOTE_REQUIRED")
    with app.uow(actor, "scan.inspect", "scan_page", str(page_id)) as uow:
        s = uow.session
        b = _batch(s, batch_id, lock=True)
        _check_open(b)
        p = _page_in_batch(s, actor, batch_id, page_id)
        if not p.sampled:
            raise StateError("该页不在本轮抽检的样本中", code="NOT_SAMPLED")
        p.sample_verdict, p.sample_note, p.sample_by, p.sample_at = v, note, actor.username, utcnow()
        if p.is_current and p.qc_status != "pending":
            p.qc_status = _flags_status(p.flags or [], p.declared_blank, v)
        s.flush()
        pages = list(s.scalars(select(ScanPage).where(ScanPage.batch_id == b.id)))
        state = _inspection_state(b, pages)
        b.inspection = {**(b.inspection or {}), "checked": state["checked"], "passed": state["passed"],
                        "failed": state["failed"], "pass_rate": state["rate"], "verdict": state["verdict"]}
        uow.audit("scan.inspect", "scan_page", p.id, batch_id=b.id, verdict=v, note=note,
                  round=(b.inspection or {}).get("round"), batch_verdict=state["verdict"])
    return get_batch(app, actor, batch_id)


# ---------------------------------------------------------------- OCR and PDF/A


def _access_path(app: Dangan, p: ScanPage, sf: ScanFile) -> Path:
    """The cached access image of a page, made again from the master when the cache lost it."""
    path = cache_dir(app, p.batch_id) / f"{p.id}-access.jpg"
    if path.is_file():
        return path
    from dangan.digitise import images, qc

    with _blob_path(app, sf.storage_key) as src:
        for pimg in images.iter_pages(src, sf.name):
            if pimg.index != p.index:
                continue
            if pimg.image is None:
                raise ValidationFailed(f"该页无法读取：{pimg.error}", code="PAGE_UNREADABLE")
            q = _qc_from_json(p.qc) if p.qc else qc.measure(pimg)
            _save_derived(app, p.batch_id, p.id, qc.access_image(pimg, q))
            return path
    raise ValidationFailed("文件中找不到该页", code="PAGE_UNREADABLE")


def _ocr_page_from(p: ScanPage) -> Any:
    from dangan.digitise.ocr import OcrLine, OcrPage

    d = p.ocr or {}
    lines = [OcrLine(text=ln[5], box=(ln[0], ln[1], ln[2], ln[3]), score=ln[4]) for ln in d.get("lines", [])]
    return OcrPage(text=p.ocr_text or "", lines=lines, width=d.get("width", 0), height=d.get("height", 0),
                   seconds=d.get("seconds", 0.0), engine=d.get("engine", ""))


def _ocr_json(res: Any, dpi: float) -> dict[str, Any]:
    return {"lines": [[round(float(ln.box[0]), 1), round(float(ln.box[1]), 1), round(float(ln.box[2]), 1),
                       round(float(ln.box[3]), 1), round(float(ln.score), 3), ln.text] for ln in res.lines],
            "width": res.width, "height": res.height, "dpi": dpi, "engine": res.engine,
            "seconds": round(float(res.seconds), 3), "error": getattr(res, "error", None)}


def run_ocr(app: Dangan, actor: Actor, batch_id: int, *, redo: bool = False, workers: int | None = None,
            progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """OCR of the batch's current pages (not yet recognised, or all with redo=True) over their access images,
    pages in parallel; then a searchable PDF/A access copy per record whose pages are all recognised."""
    from dangan.digitise import ocr

    require(actor, "ocr.run")
    if not ocr.engine_available():
        raise ValidationFailed("OCR 引擎无法加载（rapidocr 或 onnxruntime 未安装或模型缺失），未识别", code="OCR_UNAVAILABLE")
    with app.read_sessions() as s:
        b = _batch(s, batch_id)
        _check_open(b)
        current = list(s.scalars(select(ScanPage).where(ScanPage.batch_id == b.id, ScanPage.is_current)))
        if any(p.qc_status == "pending" for p in current):
            raise StateError("还有页面未做图像质量检查：请先运行质量检查（OCR 使用纠偏、去黑边后的利用图像）",
                             code="QC_REQUIRED")
        files = {f.id: f for f in s.scalars(select(ScanFile).where(ScanFile.batch_id == b.id))}
    readable = [p for p in current if p.qc and not any(f.get("code") == "UNREADABLE" for f in p.flags or [])]
    todo = [p for p in readable if redo or p.ocr_at is None]
    todo.sort(key=lambda p: (_group_key(p), p.page_no or 0, p.id))
    workers = max(1, min(workers or (os.cpu_count() or 1), os.cpu_count() or 1))
    done_before, total = 0, len(todo)
    if progress:
        progress(0, total)
    seconds = 0.0
    for i in range(0, len(todo), max(OCR_CHUNK, 2 * workers)):
        chunk = todo[i:i + max(OCR_CHUNK, 2 * workers)]
        tasks = [ocr.OcrTask(str(_access_path(app, p, files[p.file_id])), f"{p.id}-access.jpg", 0) for p in chunk]

        def step(n: int, _total: int, base: int = done_before) -> None:
            if progress:
                progress(base + n, total)

        results = ocr.ocr_many(tasks, workers=workers, progress=step)
        with app.sessions.begin() as s:
            for p, res in zip(chunk, results, strict=True):
                pg = s.get(ScanPage, p.id)
                if pg is None:
                    continue
                dpi = float((pg.qc or {}).get("access_dpi") or 300)
                pg.ocr_text = res.text if not res.error else ""
                pg.ocr = _ocr_json(res, dpi)
                pg.ocr_at = utcnow()
                seconds += float(res.seconds or 0)
        done_before += len(chunk)
        if progress:
            progress(done_before, total)
    built_ofd: list[int] = []
    built = _build_outputs(app, actor, batch_id, built_ofd)
    chars = 0
    with app.uow(actor, "ocr.run", "scan_batch", str(batch_id)) as uow:
        b = _batch(uow.session, batch_id, lock=True)
        b.ocr_at = utcnow()
        chars = sum(len(t or "") for t in uow.session.scalars(
            select(ScanPage.ocr_text).where(ScanPage.batch_id == batch_id, ScanPage.is_current)))
        uow.audit("ocr.run", "scan_batch", batch_id, pages=total, redo=redo, workers=workers, pdfs=len(built),
                  ofds=len(built_ofd), seconds=round(seconds, 1), chars=chars)
    return {"batch_id": batch_id, "pages": total, "pdfs": len(built), "ofds": len(built_ofd), "seconds": round(seconds, 1),
            "seconds_per_page": round(seconds / total, 2) if total else None, "chars": chars, "workers": workers}


def _build_outputs(app: Dangan, actor: Actor, batch_id: int, built_ofd: list[int] | None = None) -> list[int]:
    """A PDF/A access copy for every record whose current pages are all recognised and differ from its last one;
    with the `scan_ofd` setting also an OFD access copy (its ids appended to `built_ofd`). Returns the PDF/As' ids."""

    with app.read_sessions() as s:
        pages = list(s.scalars(select(ScanPage).where(ScanPage.batch_id == batch_id, ScanPage.is_current,
                                                      ScanPage.record_id.is_not(None))))
        files = {f.id: f for f in s.scalars(select(ScanFile).where(ScanFile.batch_id == batch_id))}
        outputs = _outputs(s, batch_id)
        ofds = _outputs(s, batch_id, "ofd") if app.settings.scan_ofd else None
        recs = {r.id: r for r in s.scalars(select(Record).where(Record.id.in_(sorted({p.record_id for p in pages}))))} \
            if pages else {}
        shown = _visible_ids(s, actor, set(recs))
    groups: dict[int, list[ScanPage]] = {}
    for p in pages:
        groups.setdefault(p.record_id, []).append(p)  # type: ignore[arg-type]
    built = []
    for kind, done, out in (("pdfa", outputs, built), ("ofd", ofds, built_ofd)):
        if done is None:
            continue
        for rid, ps in sorted(groups.items()):
            ps = _ordered(ps)
            if any(p.ocr_at is None for p in ps) or (done.get(rid) or {}).get("page_ids") == [p.id for p in ps]:
                continue
            rec = recs.get(rid)
            oid = _build_output(app, actor, batch_id, kind, rid, ps, files, rec if rec and rid in shown else None,
                                rec.archival_code or "" if rec else "")
            if out is not None:
                out.append(oid)
    return built


def _build_output(app: Dangan, actor: Actor, batch_id: int, kind: str, rid: int, ps: list[ScanPage],
                  files: dict[int, ScanFile], rec: Record | None, code: str) -> int:
    """One record's searchable access copy — PDF/A (kind "pdfa") or OFD ("ofd") — from the cached access images
    of its pages: written to a temporary file, stored as a blob, then its ScanOutput row."""
    from PIL import Image

    from dangan.digitise import ofd_writer, pdfa

    write, suffix = (pdfa.searchable_pdf, ".pdf") if kind == "pdfa" else (ofd_writer.searchable_ofd, ".ofd")
    tmp_dir = app.settings.data_dir / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{kind}-", suffix=suffix, dir=str(tmp_dir))
    os.close(fd)
    opened = []
    try:
        items = []
        for p in ps:
            im = Image.open(_access_path(app, p, files[p.file_id]))
            opened.append(im)
            items.append((im, _ocr_page_from(p), float((p.ocr or {}).get("dpi") or 300)))
        write(items, tmp, title=(rec.title if rec else "") or "", author=(rec.responsible if rec else "") or "",
              subject=code)
        with open(tmp, "rb") as fh:
            blob = app.store.put(fh)
    finally:
        for im in opened:
            im.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    with app.sessions.begin() as s:
        o = ScanOutput(batch_id=batch_id, record_id=rid, kind=kind, size=blob.size, sha256=blob.sha256, sm3=blob.sm3,
                       storage_key=blob.key, pages=len(ps), page_ids=[p.id for p in ps], created_by=actor.username)
        s.add(o)
        s.flush()
        return o.id


# ---------------------------------------------------------------- accept (挂接)


@audited("scan.accept", "scan_batch")
def accept_batch(app: Dangan, actor: Actor, batch_id: int, *, overrides: list[str] | None = None,
                 reason: str = "") -> dict[str, Any]:
    """挂接: masters → 扫描件 files, PDF/A (and OFD, with the scan_ofd setting) → 版式文件, OCR text → the records'
    full text. All or nothing, audited.

    Refused while anything blocking is outstanding, unless each such problem's key is in `overrides` and a
    reason is given (the overrides and the reason are kept on the batch and in the audit log)."""
    require(actor, "scan.accept")
    overrides = sorted({o.strip() for o in (overrides or []) if o and o.strip()})
    reason = (reason or "").strip()[:2000]
    view = get_batch(app, actor, batch_id, pages=False)
    if view["status"] != "open":
        with app.read_sessions() as s:
            _check_open(_batch(s, batch_id))
    issues = {i["key"]: i for i in view["issues"]}
    unknown = [k for k in overrides if k not in issues]
    if unknown:
        raise ValidationFailed("以下放行项不是本批次当前的问题（可能已解决），请刷新后重新选择：" + "、".join(unknown[:10]),
                               code="OVERRIDE_UNKNOWN", problems=[FieldProblem(k, "OVERRIDE_UNKNOWN", "不是当前的问题")
                                                                  for k in unknown[:50]])
    fixed = [k for k in overrides if not issues[k]["overridable"]]
    if fixed:
        raise ValidationFailed("以下问题不能放行，必须先处理：" + "；".join(issues[k]["message"] for k in fixed[:5]),
                               code="NOT_OVERRIDABLE", problems=[FieldProblem(k, "NOT_OVERRIDABLE", issues[k]["message"])
                                                                 for k in fixed[:50]])
    if overrides and not reason:
        raise ValidationFailed("放行未解决的问题必须写明原因", code="REASON_REQUIRED",
                               problems=[FieldProblem("reason", "REQUIRED", "请写明放行的原因", "放行原因")])
    outstanding = [i for i in view["issues"] if i["severity"] == "block" and i["key"] not in overrides]
    if outstanding:
        raise ValidationFailed(
            f"批次 #{batch_id} 还有 {len(outstanding)} 个问题未解决，未挂接。请返工、补扫或抽检后再挂接；"
            "确需放行的，逐项选择并写明原因", code="SCAN_OUTSTANDING",
            problems=[FieldProblem(i["key"], i["kind"].upper(), i["message"], "待解决") for i in outstanding[:200]],
            detail={"outstanding": len(outstanding)})
    files_added = 0
    records_done = 0
    with app.uow(actor, "scan.accept", "scan_batch", str(batch_id)) as uow:
        s = uow.session
        b = _batch(s, batch_id, lock=True)
        _check_open(b)
        job = s.get(CaptureJob, b.job_id) if b.job_id else None
        if job is not None and job.status in ("queued", "running"):
            raise Conflict(f"批次 #{batch_id} 正在进行“{jobs.KIND_LABELS.get(job.kind, job.kind)}”，请等它结束后再挂接",
                           code="JOB_RUNNING", detail={"job_id": job.id})
        pages = list(s.scalars(select(ScanPage).where(ScanPage.batch_id == b.id, ScanPage.is_current,
                                                      ScanPage.record_id.is_not(None))))
        sfiles = {f.id: f for f in s.scalars(select(ScanFile).where(ScanFile.batch_id == b.id))}
        outputs = {o.record_id: o for o in s.scalars(select(ScanOutput).where(ScanOutput.batch_id == b.id,
                                                                              ScanOutput.kind == "pdfa")
                                                     .order_by(ScanOutput.id))}
        ofd_outputs = {o.record_id: o for o in s.scalars(select(ScanOutput).where(ScanOutput.batch_id == b.id,
                                                                                  ScanOutput.kind == "ofd")
                                                         .order_by(ScanOutput.id))}
        groups: dict[int, list[ScanPage]] = {}
        for p in pages:
            if f"no_record:{p.archival_code}" in overrides:
                continue
            groups.setdefault(p.record_id, []).append(p)  # type: ignore[arg-type]
        why = f"纸质档案数字化成果挂接（数字化批次 #{b.id}）"
        for rid, ps in sorted(groups.items()):
            ps = _ordered(ps)
            rec = get_visible_record(s, actor, rid, "file.add", lock=True)
            state = RecordState(rec.state)
            if state not in EDITABLE and state != RecordState.FILED:
                raise StateError(f"{rec.archival_code} 处于“{state.label}”状态，不能挂接", code="RECORD_NOT_EDITABLE")
            have = set(s.scalars(select(File.sha256).where(File.record_id == rid, File.is_current)))
            masters: list[ScanFile] = []
            for p in ps:
                sf = sfiles[p.file_id]
                if sf not in masters:
                    masters.append(sf)
            new_files, blobs, kinds = [], [], []
            names = set(s.scalars(select(File.name).where(File.record_id == rid)))
            for sf in masters:
                if sf.sha256 in have:
                    continue
                have.add(sf.sha256)
                name = _master_name(sf, rec.archival_code, names)
                names.add(name)
                new_files.append(NewFile(name, io.BytesIO(b""), role="scan", media_type=sf.media_type))
                blobs.append(_blob_info(app, sf.storage_key, sf.sha256, sf.sm3, sf.size))
                kinds.append(("scan", sf))
            out = outputs.get(rid)
            pdf_ok = out is not None and list(out.page_ids or []) == [p.id for p in ps] and out.sha256 not in have
            if pdf_ok:
                assert out is not None
                new_files.append(NewFile(f"{rec.archival_code or rid}.pdf", io.BytesIO(b""), role="layout",
                                         media_type="application/pdf"))
                blobs.append(_blob_info(app, out.storage_key, out.sha256, out.sm3, out.size))
                kinds.append(("layout", out))
            ofd_out = ofd_outputs.get(rid)
            if ofd_out is not None and list(ofd_out.page_ids or []) == [p.id for p in ps] and ofd_out.sha256 not in have:
                new_files.append(NewFile(f"{rec.archival_code or rid}.ofd", io.BytesIO(b""), role="layout",
                                         media_type="application/ofd"))
                blobs.append(_blob_info(app, ofd_out.storage_key, ofd_out.sha256, ofd_out.sm3, ofd_out.size))
                kinds.append(("ofd", ofd_out))
            rows = add_rows(s, app.store, rec, new_files, blobs, actor, why if state == RecordState.FILED else "")
            by_file: dict[int, File] = {}
            for f, (kind, src) in zip(rows, kinds, strict=True):
                if kind == "scan":
                    by_file[src.id] = f
                    f.identification = {**(f.identification or {}),
                                        "digitisation": _digitisation_props(b, src, [p for p in ps if p.file_id == src.id])}
                else:
                    src.file_row_id = f.id
                uow.audit("file.add", "file", f.id, record_id=rec.id, name=f.name, size=f.size, sha256=f.sha256,
                          sm3=f.sm3, reason=why, scan_batch=b.id)
            for p in ps:
                if p.file_id in by_file:
                    p.file_row_id = by_file[p.file_id].id
            layout = [(f, k) for f, (k, _) in zip(rows, kinds, strict=True) if k in ("layout", "ofd")]
            _write_text(s, rec.id, ps, by_file, layout[0][0] if layout else None)
            for f, _k in layout[1:]:  # the OFD beside the PDF/A: the same text, kept once (on the PDF/A)
                s.add(FileText(file_id=f.id, record_id=rec.id, status="empty", message="OCR 全文记在同一档案的 PDF/A 利用副本上"
                               "（两者内容相同）", chars=0, pages=0, truncated=False))
            rec.updated_at = utcnow()
            files_added += len(rows)
            records_done += 1
        b.status = "accepted"
        b.accepted_by, b.accepted_at = actor.username, utcnow()
        b.overrides = [{"key": k, "message": issues[k]["message"]} for k in overrides]
        b.accept_note = reason
        uow.audit("scan.accept", "scan_batch", b.id, records=records_done, files=files_added,
                  overrides=[{"key": k, "message": issues[k]["message"][:300]} for k in overrides], reason=reason)
    return {"batch": get_batch(app, actor, batch_id, pages=False), "records": records_done, "files": files_added}


def _master_name(sf: ScanFile, code: str | None, taken: set[str]) -> str:
    """The master's name in the record, per DA/T 31: `<档号>-<页号>.ext` for one page, `<档号>.ext` for a file of
    all pages (the name it came with is kept on the batch). A second image of the same page gets "-2"."""
    base = sf.name.rsplit("/", 1)[-1]
    ext = Path(base).suffix.lower()
    if not code:
        name = base
    elif sf.layout == "multi" or sf.page_count > 1:
        name = f"{code}{ext}"
    else:
        name = f"{code}-{(sf.first_page or 1):04d}{ext}"
    name = name.replace("\\", "_").replace("/", "_")[:240]
    stem, n = name, 2
    while name in taken:
        name = f"{Path(stem).stem}-{n}{Path(stem).suffix}"
        n += 1
    return name


def _blob_info(app: Dangan, key: str, sha256: str, sm3: str, size: int) -> BlobInfo:
    with app.store.open(key) as fh:
        head = fh.read(8192)
    return BlobInfo(key=key, sha256=sha256, sm3=sm3, size=size, existed=True, head=head)


def _digitisation_props(b: ScanBatch, sf: ScanFile, pages: list[ScanPage]) -> dict[str, Any]:
    """DA/T 46 数字化属性 of a master, kept with the record's file (its identification)."""
    first = _ordered(pages)[0] if pages else None
    return {
        "数字化对象形态": "纸质", "扫描分辨率": f"{first.dpi} dpi" if first and first.dpi else "",
        "扫描色彩模式": first.colour if first else "", "图像压缩方案": first.compression if first else "",
        "扫描设备": first.device if first else b.device, "扫描软件": first.software if first else b.software,
        "数字化时间": iso(first.scanned_at) if first else None, "页数": len(pages),
        "页号": [p.page_no for p in _ordered(pages)], "批次": b.id, "批次名称": b.name,
        "质检": [{"页号": p.page_no, "结论": QC_LABELS.get(p.qc_status, p.qc_status),
                  "问题": [fl.get("code") for fl in p.flags or []]} for p in _ordered(pages)][:500],
    }


def _write_text(s: Session, record_id: int, pages: list[ScanPage], masters: dict[int, File], pdf: File | None) -> None:
    """The OCR text becomes the record's full text: on the PDF/A (page = the record's page), else on the images."""
    texts = [(i + 1, p.ocr_text or "") for i, p in enumerate(pages)]
    if pdf is not None:
        chars = sum(len(t) for _, t in texts)
        s.add(FileText(file_id=pdf.id, record_id=record_id, status="ok" if chars else "empty", message="OCR",
                       chars=chars, pages=len(texts), truncated=False))
        s.flush()
        if texts:
            s.execute(FileTextPage.__table__.insert(), [{"file_id": pdf.id, "page": n, "text": t} for n, t in texts])
    for fid, f in masters.items():
        mine = [(p.page_no or i + 1, p.ocr_text or "") for i, p in enumerate(pages) if p.file_id == fid]
        if pdf is None and any(p_ocr for _, p_ocr in mine):
            chars = sum(len(t) for _, t in mine)
            s.add(FileText(file_id=f.id, record_id=record_id, status="ok", message="OCR", chars=chars, pages=len(mine),
                           truncated=False))
            s.flush()
            s.execute(FileTextPage.__table__.insert(), [{"file_id": f.id, "page": n, "text": t} for n, t in mine])
        else:
            msg = "扫描图像（保存原件）：OCR 全文在同一档案的版式文件中" if pdf is not None else "扫描图像，尚未 OCR 识别"
            s.add(FileText(file_id=f.id, record_id=record_id, status="unsupported", message=msg, chars=0, pages=0,
                           truncated=False))
    s.flush()


# ---------------------------------------------------------------- pages, images, suggestions


def get_page(app: Dangan, actor: Actor, page_id: int) -> dict[str, Any]:
    _require_scan(actor)
    with app.read_sessions() as s:
        p = _page_in_batch(s, actor, None, page_id)
        return page_view(p, s.get(ScanFile, p.file_id))


def page_detail(app: Dangan, actor: Actor, page_id: int) -> dict[str, Any]:
    """A page with its OCR lines, its record, its neighbours and (first page of a record) 公文 suggestions."""
    _require_scan(actor)
    with app.read_sessions() as s:
        p = _page_in_batch(s, actor, None, page_id)
        b = _batch(s, p.batch_id)
        sf = s.get(ScanFile, p.file_id)
        view = page_view(p, sf)
        group = _ordered([q for q in s.scalars(select(ScanPage).where(ScanPage.batch_id == p.batch_id,
                                                                      ScanPage.is_current))
                          if _group_key(q) == _group_key(p)])
        ids = [q.id for q in group]
        pos = ids.index(p.id) if p.id in ids else None
        view["prev_id"] = ids[pos - 1] if pos else None
        view["next_id"] = ids[pos + 1] if pos is not None and pos + 1 < len(ids) else None
        view["position"] = (pos + 1) if pos is not None else None
        view["of"] = len(ids)
        view["batch"] = {"id": b.id, "name": b.name, "status": b.status, "status_label": STATUS_LABELS[b.status]}
        view["lines"] = [{"box": ln[:4], "score": ln[4], "text": ln[5]} for ln in (p.ocr or {}).get("lines", [])]
        view["ocr_width"] = (p.ocr or {}).get("width")
        view["ocr_height"] = (p.ocr or {}).get("height")
        view["ocr_engine"] = (p.ocr or {}).get("engine")
        view["ocr_text"] = p.ocr_text
        view["history"] = [page_view(q, s.get(ScanFile, q.file_id)) for q in
                           s.scalars(select(ScanPage).where(ScanPage.superseded_by_id == p.id))]
        rec, fields = None, set()
        if p.record_id is not None:
            r = s.get(Record, p.record_id)
            if r is not None:
                from dangan.services.views import record_view

                rec = record_view(r)
                fields = {f.get("code") for f in (r.category.schemas.get(r.level) or {}).get("fields", [])}
        view["record"] = rec
        view["is_first"] = pos == 0 and p.record_id is not None
        view["suggestions"] = [sg for sg in _suggestions(p, rec) if sg["field"] in fields] \
            if view["is_first"] and p.ocr is not None else []
        return view


def _suggestions(p: ScanPage, rec: dict[str, Any] | None) -> list[dict[str, Any]]:
    from dangan.digitise.ocr import OcrLine
    from dangan.digitise.suggest import suggest

    lines = [OcrLine(text=ln[5], box=(ln[0], ln[1], ln[2], ln[3]), score=ln[4]) for ln in (p.ocr or {}).get("lines", [])]
    if not lines:
        return []
    try:
        found = suggest(lines, page_height=(p.ocr or {}).get("height"))
    except Exception:  # noqa: BLE001 - a suggestion is a help, never a reason for the page to fail
        return []
    meta = (rec or {}).get("metadata") or {}
    out = []
    for sg in found:
        if sg.field not in SUGGEST_FIELDS:
            continue
        cur = meta.get(sg.field)
        out.append({"field": sg.field, "label": SUGGEST_FIELDS[sg.field], "value": sg.value,
                    "confidence": round(float(sg.confidence), 2), "source": sg.source, "line": sg.line,
                    "current": "" if cur is None else str(cur), "same": str(cur or "") == sg.value})
    return out


def confirm_metadata(app: Dangan, actor: Actor, page_id: int, values: dict[str, Any], *, reason: str = "",
                     row_version: int | None = None, suggested: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the clerk confirmed (accepted or corrected) goes to the record through records.update_record."""
    from dangan.services.records import update_record

    _require_scan(actor)
    with app.read_sessions() as s:
        p = _page_in_batch(s, actor, None, page_id)
        rid = p.record_id
    if rid is None:
        raise StateError("该页没有挂接到档案，不能确认著录", code="PAGE_NOT_LINKED")
    changes = {k: str(v).strip() for k, v in values.items() if k in SUGGEST_FIELDS and v is not None and str(v).strip()}
    if not changes:
        raise ValidationFailed("没有要确认的著录项：请勾选或填写至少一项", code="NOTHING_TO_CONFIRM")
    with app.read_sessions() as s:
        cur = get_visible_record(s, actor, rid, "record.update")
        meta = dict(cur.meta or {})
    changes = {k: v for k, v in changes.items() if str(meta.get(k) or "") != v}
    if not changes:
        raise ValidationFailed("确认的著录项与档案现有著录相同，没有需要修改的内容", code="NOTHING_TO_CONFIRM")
    rec = update_record(app, actor, rid, changes, reason=reason, expected_version=row_version)
    with app.uow(actor) as uow:
        sug = suggested or {}
        uow.audit("scan.suggest", "record", rid, page_id=page_id, fields=sorted(changes),
                  accepted=sorted(k for k, v in changes.items() if sug.get(k) == v),
                  corrected=sorted(k for k, v in changes.items() if k in sug and sug.get(k) != v))
    return rec


def page_image(app: Dangan, actor: Actor, page_id: int, kind: str = "access") -> Path:
    """The cached JPEG of a page (access image or thumbnail), made from the master when missing."""
    _require_scan(actor)
    with app.read_sessions() as s:
        p = _page_in_batch(s, actor, None, page_id)
        sf = s.get(ScanFile, p.file_id)
    assert sf is not None
    path = cache_dir(app, p.batch_id) / f"{p.id}-{'thumb' if kind == 'thumb' else 'access'}.jpg"
    if path.is_file():
        return path
    if sf.error or any(f.get("code") == "UNREADABLE" for f in p.flags or []):
        raise NotFound("该页无法读取，没有图像", code="PAGE_UNREADABLE")
    _access_path(app, p, sf)
    if not path.is_file():
        raise NotFound("该页无法读取，没有图像", code="PAGE_UNREADABLE")
    return path


def open_master(app: Dangan, actor: Actor, page_id: int) -> tuple[dict[str, Any], BinaryIO]:
    """The master file of a page, as stored (audited as a download): for those who work on the batch and may
    download originals."""
    _require_scan(actor)
    require(actor, "file.download")
    with app.uow(actor, "scan.download", "scan_page", str(page_id)) as uow:
        p = _page_in_batch(uow.session, actor, None, page_id)
        sf = uow.session.get(ScanFile, p.file_id)
        assert sf is not None
        fh = app.store.open(sf.storage_key)
        uow.audit("scan.download", "scan_page", p.id, name=sf.name, sha256=sf.sha256)
        return {"name": sf.name.rsplit("/", 1)[-1], "media_type": sf.media_type, "size": sf.size, "sha256": sf.sha256,
                "sm3": sf.sm3}, fh


# ---------------------------------------------------------------- QC report


REPORT_COLUMNS = [("档号", 26), ("页号", 6), ("文件", 34), ("宽×高（像素）", 14), ("扫描分辨率（dpi）", 10),
                  ("色彩模式", 8), ("压缩方案", 12), ("扫描设备", 18), ("扫描软件", 18), ("数字化时间", 18),
                  ("质检结论", 8), ("问题", 40), ("倾斜角（度）", 10), ("抽检", 8), ("抽检说明", 24), ("状态", 10),
                  ("SHA-256", 20), ("SM3", 20)]


def report_xlsx(app: Dangan, actor: Actor, batch_id: int) -> bytes:
    """The batch's QC report as an Excel workbook: 概况, 待解决问题, 每页质检与数字化属性, 抽检 (audited export)."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    _require_scan(actor)
    v = get_batch(app, actor, batch_id)
    with app.read_sessions() as s:
        every = list(s.scalars(select(ScanPage).where(ScanPage.batch_id == batch_id).order_by(ScanPage.archival_code,
                                                                                               ScanPage.page_no,
                                                                                               ScanPage.id)))
        files = {f.id: f for f in s.scalars(select(ScanFile).where(ScanFile.batch_id == batch_id))}
        recs = _records(s, actor, {p.record_id for p in every if p.record_id})
    with app.uow(actor) as uow:
        uow.audit("scan.report", "scan_batch", batch_id, format="xlsx", pages=len(every))
    wb = Workbook()
    ws = wb.active
    ws.title = "概况"
    c = v["counts"]
    ins = v["inspection_state"]
    rows = [("数字化批次", f"#{v['id']} {v['name']}"), ("全宗", f"{v['fonds_code']} {v['fonds_name']}"),
            ("门类", v["category_name"] or "—"), ("年度", v["year"] or "—"), ("状态", v["status_label"]),
            ("扫描设备", v["device"] or "（见每页）"), ("扫描软件", v["software"] or "（见每页）"),
            ("文件数", v["summary"].get("files", 0)), ("当前页数", c["pages"]), ("挂接档案（件）", c["records"]),
            ("不合格（待返工）页", c["failing"]), ("未检查页", c["pending"]), ("已返工替换页", c["replaced"]),
            ("已 OCR 页", c["ocr"]), ("抽检比例", f"{ins['sample_rate']:.0%}"), ("合格率要求", f"{ins['pass_mark']:.0%}"),
            ("抽检", f"第 {ins['round']} 轮：抽 {ins['sampled']} 页，判定 {ins['checked']} 页，合格 {ins['passed']} 页"
             if ins["drawn"] else "未抽检"),
            ("抽检结论", ins["verdict"] or "—"), ("导入", f"{v['created_by']} {_local(_parse_iso(v['created_at']))}"),
            ("质量检查", _local(_parse_iso(v["qc_at"])) or "—"), ("OCR", _local(_parse_iso(v["ocr_at"])) or "—"),
            ("挂接", f"{v['accepted_by']} {_local(_parse_iso(v['accepted_at']))}" if v["accepted_at"] else "—")]
    ws.append(["数字化批次质量检查报告（DA/T 31-2017）"])
    ws["A1"].font = Font(bold=True, size=14)
    for k, val in rows:
        ws.append([k, val])
    ws.column_dimensions["A"].width = 20
    ws.column_dimensions["B"].width = 60
    wi = wb.create_sheet("待解决问题")
    wi.append(["问题", "类别", "说明", "可放行", "放行键"])
    for i in v["issues"]:
        wi.append(["阻止挂接" if i["severity"] == "block" else "提示", i["kind"], i["message"],
                   "是" if i["overridable"] else "否", i["key"]])
    for col, w in zip("ABCDE", (10, 16, 80, 8, 30), strict=True):
        wi.column_dimensions[col].width = w
    wp = wb.create_sheet("页面质检")
    wp.append([h for h, _ in REPORT_COLUMNS])
    for i, (_, w) in enumerate(REPORT_COLUMNS, 1):
        wp.cell(row=1, column=i).font = Font(bold=True)
        wp.column_dimensions[get_column_letter(i)].width = w
    for p in every:
        f = files[p.file_id]
        hidden = p.record_id is not None and p.record_id not in recs
        problems = "；".join(fl.get("message") or fl.get("code", "") for fl in p.flags or [])
        wp.append([p.archival_code or "", p.page_no, f.name, f"{p.width}×{p.height}" if p.width else "", p.dpi,
                   p.colour, p.compression, p.device, p.software, _local(p.scanned_at),
                   QC_LABELS.get(p.qc_status, p.qc_status), "" if hidden else problems, (p.qc or {}).get("skew"),
                   p.sample_verdict or ("待判定" if p.sampled else ""), p.sample_note,
                   "当前" if p.is_current else f"已替换（第 {p.superseded_by_id} 号）", f.sha256, f.sm3])
    for row in wp.iter_rows(min_row=2):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    wp.freeze_panes = "A2"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _parse_iso(v: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(v) if v else None


# ---------------------------------------------------------------- one file, no archive


def ocr_file(path: Path) -> list[dict[str, Any]]:
    """The text of one image or scanned PDF, page by page, with its lines and boxes (`dangan ocr FILE`)."""
    from dangan.digitise import ocr

    if not path.is_file():
        raise ValidationFailed(f"文件“{path}”不存在", code="FILE_MISSING")
    pages = ocr.ocr_file(str(path), path.name)
    return [{"page": i + 1, "text": pg.text, "width": pg.width, "height": pg.height, "seconds": round(pg.seconds, 2),
             "engine": pg.engine, "lines": [{"text": ln.text, "box": [round(float(x), 1) for x in ln.box],
                                             "score": round(float(ln.score), 3)} for ln in pg.lines]}
            for i, pg in enumerate(pages)]


def access_copies(path: Path, *, pdf: Path | None = None, ofd: Path | None = None) -> list[dict[str, Any]]:
    """`dangan ocr FILE --pdf OUT.pdf --ofd OUT.ofd`: the access copy of one image or scanned PDF made as a batch
    makes it (borders cropped and skew corrected by QC, OCR of that access image), written as a searchable PDF/A
    and/or OFD titled with the file's name; the pages' text as ocr_file gives it. Touches no archive."""
    from PIL import Image

    from dangan.digitise import images, ocr, ofd_writer, pdfa, qc

    if not path.is_file():
        raise ValidationFailed(f"文件“{path}”不存在", code="FILE_MISSING")
    for target, ext, label in ((pdf, ".pdf", "PDF/A"), (ofd, ".ofd", "OFD")):
        if target is not None and target.suffix.lower() != ext:
            raise ValidationFailed(f"{label} 利用副本的文件名应以 {ext} 结尾：{target.name}", code="BAD_OUTPUT_NAME")
    result: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="dangan-access-") as tmp:
        kept: list[tuple[Path, Any, float]] = []
        for pimg in images.iter_pages(path, path.name):
            if pimg.image is None:
                result.append({"page": pimg.index + 1, "text": "", "width": pimg.width, "height": pimg.height,
                               "seconds": 0.0, "engine": ocr.ENGINE, "lines": [], "error": pimg.error})
                continue
            access = qc.access_image(pimg, qc.measure(pimg))
            if access.mode not in ("L", "RGB"):
                access = access.convert("L" if access.mode in ("1", "I;16", "I") else "RGB")
            img_path = Path(tmp) / f"{pimg.index}-access.jpg"
            access.save(img_path, "JPEG", quality=85, optimize=True)
            pg = ocr.ocr_image(access)
            dpi = (min(pimg.dpi) if pimg.dpi else 300.0) * (pimg.scale or 1.0)
            kept.append((img_path, pg, dpi))
            result.append({"page": pimg.index + 1, "text": pg.text, "width": pg.width, "height": pg.height,
                           "seconds": round(pg.seconds, 2), "engine": pg.engine,
                           "lines": [{"text": ln.text, "box": [round(float(x), 1) for x in ln.box],
                                      "score": round(float(ln.score), 3)} for ln in pg.lines]})
        if not kept:
            raise ValidationFailed(f"“{path.name}”没有可以读取的页面，未生成利用副本", code="PAGE_UNREADABLE")
        for target, write in ((ofd, ofd_writer.searchable_ofd), (pdf, pdfa.searchable_pdf)):
            if target is None:
                continue
            opened = [Image.open(p) for p, _pg, _dpi in kept]
            try:
                part = Path(tmp) / f"out{target.suffix.lower()}"
                write([(im, pg, dpi) for im, (_p, pg, dpi) in zip(opened, kept, strict=True)], str(part),
                      title=path.stem)
                shutil.copyfile(part, target)
            finally:
                for im in opened:
                    im.close()
    return result
