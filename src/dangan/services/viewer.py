"""在线阅览: pages of PDF, OFD and image files rendered as images at screen resolution, watermarked on the server
with who is reading (姓名, 部门), when (北京时间), from where (IP address) and the record's 档号; who may view and
who may download the original.

The rule (docs/access-guide.md, 在线阅览):
  - those who manage the record view and download it without a grant: they may change it (``record.update`` or
    ``file.add`` covers it), i.e. the 专职档案员 and the 档案部门负责人 for every record they can see, and a
    department's 兼职档案员 for its records before filing. Downloading also needs ``file.download``.
  - everyone else uses the record through an approved, unexpired 利用申请 (services.requests.check_grant, which
    audits the use and marks a lapsed grant 已过期): any approved kind lets them view pages; the original (and the
    copy with the 归档章) only a grant to copy (复制) or certify (出具证明).
  - a destroyed record is never shown; for non-managers the record must also be filed and not transferred.

The original is never sent by the viewer, never altered, and nothing unwatermarked is written to disk: pages are
rendered in memory (an object store's stream is spooled to an anonymous temporary file only when the format
needs random access and the content is large). Every page shown is audited as ``file.view_page``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import io
import math
import shutil
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from dangan.db.models import AccessRequest, Department, File, Record, utcnow
from dangan.domain.access_rules import KINDS
from dangan.domain.states import RecordState
from dangan.errors import ConfigError, DanganError, NotFound, PermissionDenied, StateError, ValidationFailed
from dangan.formats.extract import _PDFIUM_LOCK
from dangan.services.access import visible
from dangan.services.context import Actor, Dangan, record_failure
from dangan.services.requests import in_force

# ---------------------------------------------------------------- the rule

MANAGE_ACTIONS = ("record.update", "file.add")
VIEW_KINDS = ("view", "copy", "certify", "borrow")  # any approved use lets one read the pages
DOWNLOAD_KINDS = ("copy", "certify")  # the original only for a copy or a certificate
ACTIVE = ("approved", "lent")

# ---------------------------------------------------------------- rendering limits

DPI = 130  # screen resolution: an A4 page is about 1075 x 1520 pixels
MAX_SIDE = 2400  # the long side of a page image, whatever the page size
MAX_DECODE_BYTES = 256 * 2**20  # an image whose decoded pixels would take more is refused, never loaded
SPOOL_BYTES = 64 * 2**20  # a non-seekable stream (object store) is kept in memory up to this size
PDF_TYPES = {"application/pdf"}
OFD_TYPES = {"application/ofd"}
IMAGE_TYPES = {"image/jpeg", "image/png", "image/tiff", "image/gif", "image/webp", "image/bmp", "image/jp2",
               "image/x-ms-bmp"}
try:
    from zoneinfo import ZoneInfo

    SHANGHAI: dt.tzinfo = ZoneInfo("Asia/Shanghai")
except Exception:  # no tz database: China has kept UTC+8 without daylight saving since 1991
    SHANGHAI = dt.timezone(dt.timedelta(hours=8), "CST")

# PDFium is not thread-safe: one lock for the process, shared with text extraction (the search indexer's thread)
_PDFIUM = _PDFIUM_LOCK
_DECODE = threading.BoundedSemaphore(2)  # at most two large image decodes at once (MAX_DECODE_BYTES each)


@dataclass(frozen=True)
class Access:
    """Why the actor may use this file now: as one who manages the record, or by the grant `grant_id`."""

    file_id: int
    record_id: int
    archival_code: str | None
    name: str
    media_type: str
    storage_key: str
    size: int
    basis: str  # "manage" | "grant"
    grant_id: int | None = None
    grant_kind: str | None = None
    expires_at: str | None = None


def _aware(v: dt.datetime | None) -> dt.datetime | None:
    if v is not None and v.tzinfo is None:  # SQLite hands back naive UTC
        return v.replace(tzinfo=dt.UTC)
    return v


def _covers(s: Session, actor: Actor, record_id: int, action: str) -> bool:
    return s.scalar(select(Record.id).where(Record.id == record_id, visible(s, actor, action))) is not None


def manages(s: Session, actor: Actor, record_id: int) -> bool:
    """Whether the actor manages the record (may change its description or files): no grant needed."""
    return any(_covers(s, actor, record_id, a) for a in MANAGE_ACTIONS)


def apply_url(record_id: int, kind: str = "view") -> str:
    return f"/requests/new?record={record_id}&kind={kind}"


def _fail(app: Dangan, actor: Actor, action: str, file_id: int, err: DanganError) -> DanganError:
    record_failure(app, actor, action, "file", str(file_id), err)
    return err


def _active_kinds(s: Session, actor: Actor, record_id: int, kinds: tuple[str, ...],
                  now: dt.datetime) -> list[AccessRequest]:
    rows = s.scalars(select(AccessRequest).where(
        AccessRequest.requester == actor.username, AccessRequest.record_id == record_id,
        AccessRequest.kind.in_(kinds), AccessRequest.status.in_((*ACTIVE, "expired")))).all()
    return list(rows)


def authorize(app: Dangan, actor: Actor, file_id: int, use: str, *, action: str,
              now: dt.datetime | None = None) -> Access:
    """May the actor view ("view") or download ("download") this file now? Raises otherwise.

    A file of a record the actor cannot see answers exactly like a missing file (404 FILE_NOT_FOUND). Without a
    grant the answer is 403 NO_GRANT, after its end GRANT_EXPIRED, both with the address to apply at in
    ``detail.apply_url``. Refusals are audited under `action`."""
    now = now or utcnow()
    with app.read_sessions() as s:
        f = s.scalar(select(File).join(Record, Record.id == File.record_id)
                     .where(File.id == file_id, visible(s, actor, "record.read")))
        if f is None:
            err = NotFound(f"电子文件 {file_id} 不存在", code="FILE_NOT_FOUND")
            if s.scalar(select(File.id).where(File.id == file_id)) is not None:
                err.audit_outcome = "denied"  # type: ignore[attr-defined]
            raise _fail(app, actor, action, file_id, err)
        rec = f.record
        base = {"file_id": f.id, "record_id": rec.id, "archival_code": rec.archival_code, "name": f.name,
                "media_type": f.media_type or "application/octet-stream", "storage_key": f.storage_key,
                "size": f.size}
        if rec.state == RecordState.DESTROYED.value:
            raise _fail(app, actor, action, file_id, StateError(
                f"档案 {rec.archival_code or rec.id} 已销毁，不能再提供利用", code="RECORD_DESTROYED"))
        if manages(s, actor, rec.id) and (use == "view" or _covers(s, actor, rec.id, "file.download")):
            return Access(**base, basis="manage")
        kinds = VIEW_KINDS if use == "view" else DOWNLOAD_KINDS
        rows = _active_kinds(s, actor, rec.id, kinds, now)
    active = [r for r in rows if in_force(r, now)]
    if active:
        kind = min(active, key=lambda r: kinds.index(r.kind)).kind
    elif rows:  # a lapsed grant: check_grant answers GRANT_EXPIRED and marks it 已过期
        kind = max(rows, key=lambda r: _aware(r.expires_at) or now).kind
    else:
        kind = kinds[0]
    from dangan.services.requests import check_grant

    try:
        g = check_grant(app, actor, rec.id, kind, now=now)
    except PermissionDenied as e:
        if e.code in ("NO_GRANT", "GRANT_EXPIRED", "GRANT_NOT_YET"):
            want = "view" if use == "view" else "copy"
            what = "在线阅览" if use == "view" else "下载电子文件原件"
            need = "任一经准予的利用申请" if use == "view" else "经准予的复制或出具证明申请"
            e.message = f"{e.message}。{what}需要{need}（申请地址 {apply_url(rec.id, want)}）"
            e.detail = {**e.detail, "record_id": rec.id, "apply_url": apply_url(rec.id, want),
                        "kinds": list(kinds)}
        raise
    return Access(**base, basis="grant", grant_id=g["id"], grant_kind=g["kind"], expires_at=g["expires_at"])


def may_download(app: Dangan, actor: Actor, record_id: int, *, now: dt.datetime | None = None) -> bool:
    """Whether the original may be downloaded now (no audit: this only decides what a page offers)."""
    now = now or utcnow()
    with app.read_sessions() as s:
        rec = s.scalar(select(Record).where(Record.id == record_id, visible(s, actor, "record.read")))
        if rec is None or rec.state == RecordState.DESTROYED.value:
            return False
        if manages(s, actor, record_id) and _covers(s, actor, record_id, "file.download"):
            return True
        if rec.state in (RecordState.PRE_FILING.value, RecordState.PENDING.value, RecordState.TRANSFERRED.value):
            return False
        rows = _active_kinds(s, actor, record_id, DOWNLOAD_KINDS, now)
    return any(in_force(r, now) for r in rows)


def may_view(app: Dangan, actor: Actor, record_id: int, *, now: dt.datetime | None = None) -> bool:
    """Whether the pages may be viewed now (no audit: for the record page's 阅览 / 申请阅览 buttons)."""
    now = now or utcnow()
    with app.read_sessions() as s:
        rec = s.scalar(select(Record).where(Record.id == record_id, visible(s, actor, "record.read")))
        if rec is None or rec.state == RecordState.DESTROYED.value:
            return False
        if manages(s, actor, record_id):
            return True
        if rec.state in (RecordState.PRE_FILING.value, RecordState.PENDING.value, RecordState.TRANSFERRED.value):
            return False
        rows = _active_kinds(s, actor, record_id, VIEW_KINDS, now)
    return any(in_force(r, now) for r in rows)


# ---------------------------------------------------------------- reading the stored content


def viewable_kind(media_type: str) -> str | None:
    """"pdf", "ofd", "image" or None (the format cannot be shown as pages)."""
    if media_type in PDF_TYPES:
        return "pdf"
    if media_type in OFD_TYPES:
        return "ofd"
    if media_type in IMAGE_TYPES:
        return "image"
    return None


def _not_viewable(a: Access) -> StateError:
    return StateError(f"“{a.name}”的格式（{a.media_type}）暂不支持在线阅览，只能阅览 PDF、OFD 和图像文件；"
                      "如需查看，请申请复制后下载原件，或请档案人员转换为版式文件", code="NOT_VIEWABLE")


def _unreadable(a: Access, why: str = "") -> StateError:
    extra = f"（{why}）" if why else ""
    return StateError(f"“{a.name}”已损坏或无法解析{extra}，不能在线阅览；请联系档案人员检查该文件",
                      code="FILE_UNREADABLE")


@contextlib.contextmanager
def _content(app: Dangan, a: Access) -> Iterator[BinaryIO]:
    """The stored content as a seekable binary stream (a local file is read in place)."""
    fh = app.store.open(a.storage_key)
    try:
        if fh.seekable():
            yield fh
            return
        spool: BinaryIO = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (anonymous, unlinked)
        with spool:
            shutil.copyfileobj(fh, spool, 1024 * 1024)
            spool.seek(0)
            yield spool
    finally:
        fh.close()


@contextlib.contextmanager
def _content_path(app: Dangan, a: Access) -> Iterator[str]:
    """A path to the content, for readers that want one: the store's own file, or an unlinked-on-close copy."""
    local = getattr(app.store, "_path", None)
    if local is not None:
        p = local(a.storage_key)
        if Path(p).is_file():
            yield str(p)
            return
    with tempfile.NamedTemporaryFile(prefix="dangan-view-", suffix=Path(a.name).suffix[:10]) as tmp, \
            app.store.open(a.storage_key) as fh:
        shutil.copyfileobj(fh, tmp, 1024 * 1024)
        tmp.flush()
        yield tmp.name


def _ofd_render() -> Any:
    try:
        from dangan.formats import ofd_render
    except ImportError:
        return None
    return ofd_render


def _pdf_open(fh: BinaryIO, a: Access) -> Any:
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(fh)
    except pdfium.PdfiumError as e:
        msg = str(e)
        if "password" in msg.lower():
            raise StateError(f"“{a.name}”已加密（需要密码），不能在线阅览；请联系档案人员", code="FILE_ENCRYPTED") from e
        raise _unreadable(a, msg[:80]) from e


MAX_SIZES = 2000  # page sizes are given for the first pages only (a placeholder keeps the layout for the rest)


def _count(app: Dangan, a: Access, sizes: list[list[int]] | None = None) -> int:
    """The number of pages; `sizes` receives each page's image size in pixels where it is cheap to know."""
    kind = viewable_kind(a.media_type)
    if kind == "pdf":
        with _content(app, a) as fh, _PDFIUM:
            doc = _pdf_open(fh, a)
            try:
                n = len(doc)
                if sizes is not None:
                    for i in range(min(n, MAX_SIZES)):
                        w, h = doc.get_page_size(i)
                        k = _fit(w, h, DPI, MAX_SIDE)
                        sizes.append([max(1, math.ceil(w * k)), max(1, math.ceil(h * k))])  # as PDFium
                return n
            finally:
                doc.close()
    if kind == "ofd":
        mod = _ofd_render()
        if mod is None:
            raise StateError("OFD 文件的在线阅览暂不支持（版式渲染组件尚未安装），请稍后再试或申请复制",
                             code="OFD_NOT_SUPPORTED")
        with _content_path(app, a) as path:
            try:
                return int(mod.ofd_page_count(path))
            except DanganError as e:  # the reader's own words for what is wrong with the package
                raise _unreadable(a, e.message[:80]) from e
            except Exception as e:
                raise _unreadable(a, type(e).__name__) from e
    if kind == "image":
        from PIL import Image

        with _content(app, a) as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # damaged files make Pillow warn once per bad tag
            try:
                with Image.open(fh) as im:
                    n = int(getattr(im, "n_frames", 1)) if im.format == "TIFF" else 1
                    if sizes is not None and n == 1:
                        w, h = im.size
                        k = min(1.0, MAX_SIDE / max(w, h, 1))
                        sizes.append([max(1, round(w * k)), max(1, round(h * k))])
                    return n
            except Image.DecompressionBombError as e:
                raise StateError(f"“{a.name}”的图像过大，不能在线阅览", code="IMAGE_TOO_LARGE") from e
            except Exception as e:  # Pillow reports damage with many exception types
                raise _unreadable(a, type(e).__name__) from e
    raise _not_viewable(a)


def _check_page(page: int, count: int) -> int:
    if page < 1 or page > count:
        raise ValidationFailed(f"第 {page} 页不存在：本文件共 {count} 页，页码应在 1 至 {count} 之间",
                               code="PAGE_OUT_OF_RANGE", detail={"page": page, "pages": count})
    return page - 1


def _fit(w: float, h: float, dpi: int, max_side: int) -> float:
    """Scale from PDF points to pixels: `dpi`, but never a long side above max_side."""
    scale = dpi / 72.0
    return min(scale, max_side / max(w, h, 1.0))


def _render_pdf(app: Dangan, a: Access, page: int, dpi: int, max_side: int) -> tuple[Any, int]:
    import pypdfium2 as pdfium

    with _content(app, a) as fh, _PDFIUM:
        doc = _pdf_open(fh, a)
        try:
            n = len(doc)
            idx = _check_page(page, n)
            try:
                pg = doc[idx]
                w, h = pg.get_size()
                bitmap = pg.render(scale=_fit(w, h, dpi, max_side), rotation=0, draw_annots=True,
                                   fill_color=(255, 255, 255, 255))
                im = bitmap.to_pil().convert("RGB")
                bitmap.close()
                pg.close()
            except pdfium.PdfiumError as e:
                raise _unreadable(a, f"第 {page} 页：{str(e)[:60]}") from e
            return im, n
        finally:
            doc.close()


def _render_ofd(app: Dangan, a: Access, page: int, dpi: int, max_side: int) -> tuple[Any, int]:
    mod = _ofd_render()
    if mod is None:
        raise StateError("OFD 文件的在线阅览暂不支持（版式渲染组件尚未安装），请稍后再试或申请复制",
                         code="OFD_NOT_SUPPORTED")
    with _content_path(app, a) as path:
        try:
            n = int(mod.ofd_page_count(path))
        except DanganError as e:
            raise _unreadable(a, e.message[:80]) from e
        except Exception as e:
            raise _unreadable(a, type(e).__name__) from e
        idx = _check_page(page, n)
        try:
            im = mod.render_ofd_page(path, idx, dpi=dpi, max_side=max_side)
        except DanganError as e:
            raise _unreadable(a, f"第 {page} 页：{e.message[:60]}") from e
        except Exception as e:
            raise _unreadable(a, type(e).__name__) from e
    return im.convert("RGB"), n


def _bytes_per_pixel(mode: str) -> int:
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def _to_rgb(im: Any) -> Any:
    from PIL import Image

    if im.mode == "RGB":
        return im
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGB", rgba.size, (255, 255, 255))
        bg.paste(rgba, mask=rgba.getchannel("A"))
        return bg
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        return im.point(lambda v: v / 256).convert("L").convert("RGB")  # 16-bit scans
    return im.convert("RGB")


def _render_image(app: Dangan, a: Access, page: int, max_side: int) -> tuple[Any, int]:
    from PIL import Image, ImageOps

    with _content(app, a) as fh, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # damaged files make Pillow warn once per bad tag
        try:
            im = Image.open(fh)
        except Image.DecompressionBombError as e:  # Pillow's own bound: twice MAX_IMAGE_PIXELS
            raise StateError(f"“{a.name}”的图像过大，不能在线阅览；请申请复制后下载原件", code="IMAGE_TOO_LARGE") from e
        except Exception as e:  # Pillow reports damage with many exception types
            raise _unreadable(a, type(e).__name__) from e
        with im:
            n = int(getattr(im, "n_frames", 1)) if im.format == "TIFF" else 1
            idx = _check_page(page, n)
            try:
                if idx:
                    im.seek(idx)
                if im.format == "JPEG":  # decode at 1/2, 1/4 or 1/8 scale straight from the DCT data
                    im.draft("RGB", (max_side, max_side))
                r = 0
                if im.format == "JPEG2000":
                    w0, h0 = im.size
                    while max(w0, h0) >> (r + 1) >= max_side and r < 5:
                        r += 1
                    im.reduce = r  # type: ignore[assignment,method-assign]  # decode at a lower resolution level
                w, h = im.size
                if im.format == "JPEG2000" and r:
                    w, h = -(-w // (1 << r)), -(-h // (1 << r))  # the size it decodes to
                need = w * h * _bytes_per_pixel(im.mode)
                if need > MAX_DECODE_BYTES:
                    raise StateError(f"“{a.name}”的图像过大（{w}×{h} 像素），不能在线阅览；请申请复制后下载原件",
                                     code="IMAGE_TOO_LARGE", detail={"width": w, "height": h})
                with _DECODE:
                    im.load()
                out = ImageOps.exif_transpose(im) if im.format == "JPEG" else im
                if max(out.size) > max_side:
                    out = out.copy()
                    out.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
                return _to_rgb(out), n
            except DanganError:
                raise
            except Exception as e:
                raise _unreadable(a, type(e).__name__) from e


# ---------------------------------------------------------------- the watermark


@functools.cache
def cjk_font_path() -> str:
    """A font with Chinese glyphs for the watermark: Noto Sans CJK (fc-match), else known paths."""
    candidates: list[str] = []
    with contextlib.suppress(Exception):
        out = subprocess.run(["fc-match", "-f", "%{file}", "Noto Sans CJK SC:lang=zh-cn"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
        if out:
            candidates.append(out)
    candidates += ["/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
                   "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
                   "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
                   "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", "/usr/share/fonts/wqy-zenhei/wqy-zenhei.ttc"]
    from PIL import ImageFont

    for p in candidates:
        if not Path(p).is_file():
            continue
        try:
            f = ImageFont.truetype(p, 20, index=_sc_index(p))
            if f.getbbox("档")[2] > 0:
                return p
        except OSError:
            continue
    return ""


def _sc_index(path: str) -> int:
    """The Simplified Chinese face of a Noto CJK collection (JP, KR, SC, TC, HK); the first face otherwise."""
    return 2 if "NotoSansCJK" in path and path.endswith(".ttc") else 0


@functools.lru_cache(maxsize=16)
def _font(size: int) -> Any:
    from PIL import ImageFont

    path = cjk_font_path()
    if not path:
        raise ConfigError("服务器上没有中文字体，无法生成阅览水印（请安装 fonts-noto-cjk）；为安全起见不显示页面",
                          code="NO_CJK_FONT")
    return ImageFont.truetype(path, size, index=_sc_index(path))


def watermark_lines(name: str, departments: list[str], when: dt.datetime, addr: str, archival_code: str | None
                    ) -> list[str]:
    local = when.astimezone(SHANGHAI)
    who = name + ("  " + "、".join(departments) if departments else "")
    return [who, f"{local:%Y-%m-%d %H:%M} 北京时间  {addr or '地址不明'}", f"档号 {archival_code or '（未归档）'}"]


WATERMARK_RGB = (36, 62, 120)  # slate blue: never taken for a red seal or for the black text itself
WATERMARK_ALPHA = 0.26  # the page's text stays readable through it
ANGLE = 30


def watermark(im: Any, lines: list[str]) -> Any:
    """Tile `lines` diagonally over the page, semi-transparent (an RGB image is changed and returned).

    The text block is drawn and rotated once, then laid in a rotated grid over the page: a large page costs
    pastes, not a rotation of a page-sized mask."""
    from PIL import Image, ImageChops, ImageDraw

    w, h = im.size
    size = max(14, round(max(w, h) / 64))
    font = _font(size)
    gap = round(size * 0.45)
    text = "\n".join(lines)
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    box = probe.multiline_textbbox((0, 0), text, font=font, spacing=gap, align="center")
    tw, th = int(box[2] - box[0]) + 2, int(box[3] - box[1]) + 2
    tile = Image.new("L", (tw, th), 0)
    ImageDraw.Draw(tile).multiline_text((-box[0] + 1, -box[1] + 1), text, font=font,
                                        fill=round(255 * WATERMARK_ALPHA), spacing=gap, align="center")
    tile = tile.rotate(ANGLE, resample=Image.Resampling.BICUBIC, expand=True)
    step_x, step_y = tw + size * 4, th + size * 4  # along and across the text direction
    cos, sin = math.cos(math.radians(ANGLE)), math.sin(math.radians(ANGLE))
    reach = int(math.hypot(w, h) / 2) + max(step_x, step_y)
    mask = Image.new("L", (w, h), 0)
    for row, gy in enumerate(range(-reach, reach + 1, step_y)):
        for gx in range(-reach + (step_x // 2 if row % 2 else 0), reach + 1, step_x):
            # the grid point, turned like the text (counter-clockwise on screen; y grows downwards)
            cx, cy = w / 2 + gx * cos + gy * sin, h / 2 - gx * sin + gy * cos
            x0, y0 = int(cx - tile.width / 2), int(cy - tile.height / 2)
            left, top = max(x0, 0), max(y0, 0)
            right, bottom = min(x0 + tile.width, w), min(y0 + tile.height, h)
            if left >= right or top >= bottom:
                continue
            part = tile.crop((left - x0, top - y0, right - x0, bottom - y0))
            mask.paste(ImageChops.lighter(mask.crop((left, top, right, bottom)), part), (left, top))
    im.paste(WATERMARK_RGB, (0, 0, w, h), mask)
    return im


def _encode(im: Any, source_media_type: str) -> tuple[bytes, str]:
    from PIL import Image

    buf = io.BytesIO()
    if source_media_type in ("image/jpeg", "image/jp2", "image/webp"):  # photographs
        im.save(buf, "JPEG", quality=85, optimize=True)
        return buf.getvalue(), "image/jpeg"
    # 128 colours keep text and scans crisp at a quarter of the size of a full-colour PNG
    im.quantize(128, method=Image.Quantize.FASTOCTREE).save(buf, "PNG", compress_level=6)
    return buf.getvalue(), "image/png"


def page_media_type(media_type: str) -> str:
    return "image/jpeg" if media_type in ("image/jpeg", "image/jp2", "image/webp") else "image/png"


# ---------------------------------------------------------------- the service


def _department_names(app: Dangan, actor: Actor) -> list[str]:
    if not actor.department_ids:
        return []
    with app.read_sessions() as s:
        return list(s.scalars(select(Department.name).where(Department.id.in_(sorted(actor.department_ids)))
                              .order_by(Department.sort_order, Department.id)))


def page_info(app: Dangan, actor: Actor, file_id: int, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """What the viewer needs to open a file: the number of pages, their image type, whether the original may be
    downloaded, and on what basis the actor reads it (grant use is audited by check_grant)."""
    now = now or utcnow()
    a = authorize(app, actor, file_id, "view", action="file.view_page", now=now)
    if viewable_kind(a.media_type) is None:
        raise _fail(app, actor, "file.view_page", file_id, _not_viewable(a))
    sizes: list[list[int]] = []
    try:
        n = _count(app, a, sizes)
    except DanganError as e:
        raise _fail(app, actor, "file.view_page", file_id, e) from None
    return {"file_id": a.file_id, "record_id": a.record_id, "archival_code": a.archival_code, "name": a.name,
            "media_type": a.media_type, "pages": n, "page_media_type": page_media_type(a.media_type),
            "sizes": sizes,  # [width, height] of the first pages' images, where cheap to know
            "may_download": may_download(app, actor, a.record_id, now=now), "basis": a.basis,
            "grant": None if a.grant_id is None else {"id": a.grant_id, "kind": a.grant_kind,
                                                       "kind_label": KINDS.get(a.grant_kind or "", ""),
                                                       "expires_at": a.expires_at}}


def page_count(app: Dangan, actor: Actor, file_id: int, *, now: dt.datetime | None = None) -> int:
    return int(page_info(app, actor, file_id, now=now)["pages"])


def render_page(app: Dangan, actor: Actor, file_id: int, page: int, *, client_addr: str = "",
                now: dt.datetime | None = None, dpi: int = DPI, max_side: int = MAX_SIDE) -> tuple[bytes, str]:
    """Page `page` (from 1) as a watermarked PNG (JPEG for photographs): (bytes, media type). Audited."""
    now = now or utcnow()
    a = authorize(app, actor, file_id, "view", action="file.view_page", now=now)
    kind = viewable_kind(a.media_type)
    addr = client_addr or actor.client_addr
    try:
        if kind is None:
            raise _not_viewable(a)
        if kind == "pdf":
            im, n = _render_pdf(app, a, page, dpi, max_side)
        elif kind == "ofd":
            im, n = _render_ofd(app, a, page, dpi, max_side)
        else:
            im, n = _render_image(app, a, page, max_side)
        lines = watermark_lines(actor.display_name or actor.username, _department_names(app, actor), now, addr,
                                a.archival_code)
        data, media = _encode(watermark(im, lines), a.media_type)
    except DanganError as e:
        raise _fail(app, actor, "file.view_page", file_id, e) from None
    with app.uow(actor, "file.view_page", "file", str(file_id)) as uow:
        uow.audit("file.view_page", "file", a.file_id, record_id=a.record_id, archival_code=a.archival_code,
                  name=a.name, page=page, pages=n, basis=a.basis, grant_id=a.grant_id, grant_kind=a.grant_kind,
                  client_addr=addr)
    return data, media
