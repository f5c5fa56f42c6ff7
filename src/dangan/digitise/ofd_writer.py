"""Searchable OFD (GB/T 33190-2016) access copies of scanned pages: the page image with an invisible OCR text layer.

The OFD counterpart of pdfa.searchable_pdf, written directly (zipfile + lxml), so every part is under our control:

- the package: ``OFD.xml`` (DocBody with DocInfo: Title, Author, Subject, CreationDate, ModDate, Creator "dangan")
  → ``Doc_0/Document.xml`` (CommonData: MaxUnitID, PageArea/PhysicalBox, PublicRes, DocumentRes; Pages) →
  ``Doc_0/Pages/Page_N/Content.xml``; ``PublicRes.xml`` holds the font, ``DocumentRes.xml`` the page images as
  MultiMedia resources, the files themselves under ``Doc_0/Res/``; every ZIP entry Deflate-compressed;
- each page is its access image (JPEG for colour and grey, PNG for black-and-white; a JPEG file opened and not
  yet decoded, like the cached access images, is embedded byte for byte) as an ImageObject filling a page
  whose size in millimetres comes from the image's pixels and dpi (Area/PhysicalBox on the page, the first
  page's size as the document's PageArea);
- over it, in a Foreground layer, one TextObject per OcrLine with ``Fill="false" Stroke="false"``: drawn by no
  reader, but selected, searched and copied as the characters of its TextCode. The object's Boundary is the
  line's box (mm); Size comes from the box height (the font's ascent-to-descent span fills it, as in the PDF/A)
  and the baseline sits at the font's ascent below the top; DeltaX spreads the characters across the box width
  in proportion to their advance widths, so that the last one ends at the box's right edge and a selection
  covers the words on the image. A vertical column (taller than 1.5x its width, more than one character) keeps
  its characters upright and stacks them down the box with DeltaY, the em as wide as the column;
- the font: a subset of WenQuanYi Zen Hei (fonts-wqy-zenhei, the font the PDF/A embeds) with only the
  characters used, made with fontTools through pdfa's subsetter and given back the original's name table (so
  that a reader which loads the file as a system font finds its family name), embedded as ``FontFile``; when
  the font is not installed (or ``embed_font=False``) the Font resource is the named 宋体, which is enough for
  text that is never drawn (selection and extraction use the TextCode characters and the DeltaX positions).

Bad input: no pages, a page that is not an image, a dpi that is not positive: ValidationFailed OFD_BAD_INPUT,
and nothing is written. A page without lines is an image-only page; a line with no printable text, or a box that
is empty, inverted, not finite or outside the page, is left out (the rest of the page is kept). The OCR boxes are
scaled to the image when the OCR ran on a differently sized copy of it (OcrPage.width/height), as in the PDF/A.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import math
import os
import tempfile
import unicodedata
import uuid
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from lxml import etree
from PIL import Image, ImageFile

import dangan
from dangan.digitise import pdfa
from dangan.errors import ValidationFailed

if TYPE_CHECKING:
    from dangan.digitise.ocr import OcrPage

OFD_NS = "http://www.ofdspec.org/2016"
_Q = f"{{{OFD_NS}}}"
NAMED_FONT = "宋体"  # the font named when no font program is embedded
CREATOR = "dangan"
# Without the font's metrics (not installed): the conventional CJK em box, 0.88 em above the baseline, 0.12 below.
_ASCENT, _DESCENT = 0.88, -0.12
_IDEO_ASCENT = 0.88  # where an upright ideograph's em box top lies above its baseline (vertical columns)
_DOC = "Doc_0"


def _bad(message: str, en: str) -> ValidationFailed:
    return ValidationFailed(message, code="OFD_BAD_INPUT", message_en=en)


def _num(v: float) -> str:
    s = f"{v:.3f}".rstrip("0").rstrip(".")
    return s if s not in ("-0", "") else "0"


def _deltas(values: list[float]) -> str:
    """DeltaX/DeltaY with runs of equal values written as "g n d" (GB/T 33190 §11.3)."""
    out: list[str] = []
    i = 0
    texts = [_num(v) for v in values]
    while i < len(texts):
        j = i
        while j < len(texts) and texts[j] == texts[i]:
            j += 1
        n = j - i
        out += ["g", str(n), texts[i]] if n > 2 else [texts[i]] * n
        i = j
    return " ".join(out)


def _clean_text(s: str) -> str:
    """Characters that XML 1.0 and a reader accept: non-printable ones become spaces, the ends are trimmed."""
    return "".join(ch if ch.isprintable() else " " for ch in str(s or "")).strip()


# ---------------------------------------------------------------- font


@dataclass
class _Font:
    path: str | None  # the WenQuanYi Zen Hei file whose metrics place the text (None: not installed)
    embed: bool
    chars: dict[str, None] = field(default_factory=dict)  # characters used, in order of first use

    @property
    def ascent(self) -> float:
        if self.path is None:
            return _ASCENT
        m = pdfa._metrics(self.path)
        return float(m["ascent"]) / m["upem"]

    @property
    def descent(self) -> float:
        if self.path is None:
            return _DESCENT
        m = pdfa._metrics(self.path)
        return float(m["descent"]) / m["upem"]

    def advance(self, ch: str) -> float:
        """Advance width of `ch` in em."""
        if self.path is not None:
            return pdfa._width_units(self.path, ch) / 1000.0
        return 1.0 if unicodedata.east_asian_width(ch) in ("W", "F") else 0.5

    def use(self, text: str) -> None:
        for ch in text:
            self.chars.setdefault(ch, None)

    def program(self) -> bytes | None:
        """The TrueType subset of the characters used, with the original's name table; None when not embedded."""
        if not self.embed or self.path is None or not self.chars:
            return None
        from fontTools.ttLib import TTFont, newTable

        data, _gids, _adv = pdfa._subset_font(self.path, self.chars)
        with TTFont(io.BytesIO(data)) as sub:
            name = newTable("name")
            name.decompile(_name_table(self.path), sub)
            name.names = [n for n in name.names if n.nameID <= 6]
            sub["name"] = name
            buf = io.BytesIO()
            sub.save(buf)
        return buf.getvalue()


_names: dict[str, bytes] = {}


def _name_table(path: str) -> bytes:
    """The raw name table of the installed font (read once per process)."""
    if path not in _names:
        from fontTools.ttLib import TTFont

        with TTFont(path, fontNumber=0, lazy=True) as f:
            _names[path] = bytes(f.reader["name"])
    return _names[path]


# ---------------------------------------------------------------- pages


@dataclass
class _Page:
    image: Image.Image
    ocr: OcrPage | None
    dpi: float


def _check(pages: Iterable[Any]) -> list[_Page]:
    checked: list[_Page] = []
    for n, item in enumerate(pages, 1):
        try:
            img, ocr, dpi = item
        except (TypeError, ValueError) as e:
            raise _bad(f"第 {n} 页的数据不完整（需要图像、OCR 结果与分辨率）", f"page {n}: not (image, ocr, dpi)") from e
        if isinstance(dpi, tuple | list):
            dpi = dpi[0] if dpi else 0.0
        if not isinstance(img, Image.Image) or not img.width or not img.height:
            raise _bad(f"第 {n} 页不是有效图像", f"page {n}: not an image")
        try:
            dpi = float(dpi)
        except (TypeError, ValueError):
            dpi = 0.0
        if not (math.isfinite(dpi) and dpi > 0):
            raise _bad(f"第 {n} 页的分辨率无效：{dpi}，应为正数（dpi）", f"page {n}: bad dpi")
        if ocr is not None and not hasattr(ocr, "lines"):
            raise _bad(f"第 {n} 页的 OCR 结果无效", f"page {n}: not an OcrPage")
        checked.append(_Page(img, ocr, dpi))
    if not checked:
        raise _bad("没有可写入 OFD 的页面", "no pages")
    return checked


def _jpeg_as_is(img: Image.Image) -> bytes | None:
    """The bytes of a JPEG file opened and not yet decoded (the cached access image): embedded as they are,
    without decoding or a second lossy encoding. None when the pixels may differ from the file's: already
    decoded (and so perhaps drawn on), not grey or RGB, or turned by an EXIF orientation."""
    if not isinstance(img, ImageFile.ImageFile) or img.format != "JPEG" or img.mode not in ("L", "RGB"):
        return None
    name = getattr(img, "filename", "")
    if not img.tile or not name or not isinstance(name, str | os.PathLike):
        return None
    try:
        if img.getexif().get(0x0112, 1) not in (1, None):
            return None
        data = Path(name).read_bytes()
    except (OSError, ValueError, SyntaxError):
        return None
    return data if data[:2] == b"\xff\xd8" else None


def _encode_image(img: Image.Image) -> tuple[bytes, str, str]:
    """(file bytes, extension, OFD Format) of the access image: PNG for black-and-white, JPEG otherwise."""
    same = _jpeg_as_is(img)
    if same is not None:
        return same, "jpg", "JPEG"
    buf = io.BytesIO()
    if img.mode == "1":
        img.save(buf, "PNG", optimize=False)
        return buf.getvalue(), "png", "PNG"
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))  # white paper behind a transparent scan
        img = flat
    elif img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = img.convert("I").point(lambda v: v * (1 / 256)).convert("L")  # 16-bit grey to 8-bit
    elif img.mode == "F":
        img = img.convert("L")
    elif img.mode not in ("L", "RGB"):
        img = img.convert("RGB")
    img.save(buf, "JPEG", quality=pdfa.JPEG_QUALITY)
    return buf.getvalue(), "jpg", "JPEG"


class _Ids:
    def __init__(self) -> None:
        self.last = 0

    def next(self) -> str:
        self.last += 1
        return str(self.last)


def _el(parent: etree._Element | None, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    el = etree.Element(_Q + tag, nsmap={"ofd": OFD_NS}) if parent is None else etree.SubElement(parent, _Q + tag)
    for k, v in attrs.items():
        el.set(k, v)
    if text is not None:
        el.text = text
    return el


def _xml(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _line_object(layer: etree._Element, ids: _Ids, font: _Font, font_id: str, text: str,
                 box: tuple[float, float, float, float]) -> None:
    """One OCR line as an invisible TextObject filling `box` (x, y, w, h in mm, y downwards)."""
    x, y, w, h = box
    obj = _el(layer, "TextObject", ID=ids.next(), Boundary=" ".join(_num(v) for v in box), Font=font_id,
              Size="0", Fill="false", Stroke="false")
    n = len(text)
    if n > 1 and h > 1.5 * w:  # a vertical column: upright characters stacked down the box
        size = w
        step = (h - size) / (n - 1)
        obj.set("Size", _num(size))
        _el(obj, "TextCode", text, X="0", Y=_num(_IDEO_ASCENT * size), DeltaY=_deltas([step] * (n - 1)))
    else:
        size = h / max(font.ascent - font.descent, 0.1)
        obj.set("Size", _num(size))
        adv = [font.advance(ch) * size for ch in text]
        code = _el(obj, "TextCode", text, X="0", Y=_num(font.ascent * size))
        if n > 1:
            room, natural = w - adv[-1], sum(adv[:-1])
            k = room / natural if room > 0 and natural > 0 else w / max(sum(adv), 1e-9)
            code.set("DeltaX", _deltas([a * k for a in adv[:-1]]))
    font.use(text)


def _page_xml(pg: _Page, ids: _Ids, font: _Font, font_id: str, image_id: str,
              size_mm: tuple[float, float]) -> bytes:
    w_mm, h_mm = size_mm
    root = _el(None, "Page")
    area = _el(root, "Area")
    _el(area, "PhysicalBox", f"0 0 {_num(w_mm)} {_num(h_mm)}")
    content = _el(root, "Content")
    body = _el(content, "Layer", ID=ids.next(), Type="Body")
    _el(body, "ImageObject", ID=ids.next(), ResourceID=image_id, Boundary=f"0 0 {_num(w_mm)} {_num(h_mm)}",
        CTM=f"{_num(w_mm)} 0 0 {_num(h_mm)} 0 0")
    lines = list(getattr(pg.ocr, "lines", None) or [])
    if lines:
        ow = float(getattr(pg.ocr, "width", 0) or 0) or pg.image.width
        oh = float(getattr(pg.ocr, "height", 0) or 0) or pg.image.height
        sx, sy = w_mm / ow, h_mm / oh
        layer: etree._Element | None = None
        for line in lines:
            text = _clean_text(getattr(line, "text", ""))
            try:
                x0, y0, x1, y1 = (float(v) for v in line.box)
            except (TypeError, ValueError, AttributeError):
                continue
            if not text or not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
                continue
            x0, x1 = max(0.0, min(x0, ow)), max(0.0, min(x1, ow))
            y0, y1 = max(0.0, min(y0, oh)), max(0.0, min(y1, oh))
            if x1 - x0 <= 0 or y1 - y0 <= 0:
                continue
            box = (x0 * sx, y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy)
            if box[2] < 0.001 or box[3] < 0.001:  # under a micrometre: nothing a reader can place
                continue
            if layer is None:
                layer = _el(content, "Layer", ID=ids.next(), Type="Foreground")
            _line_object(layer, ids, font, font_id, text, box)
    return _xml(root)


# ---------------------------------------------------------------- the document


def _doc_info(title: str, author: str, subject: str, now: dt.datetime) -> etree._Element:
    root = _el(None, "OFD", Version="1.0", DocType="OFD")
    body = _el(root, "DocBody")
    info = _el(body, "DocInfo")
    _el(info, "DocID", uuid.uuid4().hex)
    if title:
        _el(info, "Title", title)
    if author:
        _el(info, "Author", author)
    if subject:
        _el(info, "Subject", subject)
    _el(info, "CreationDate", now.date().isoformat())
    _el(info, "ModDate", now.date().isoformat())
    _el(info, "Creator", CREATOR)
    _el(info, "CreatorVersion", dangan.__version__)
    _el(body, "DocRoot", f"{_DOC}/Document.xml")
    return root


def searchable_ofd(pages: list[tuple[Image.Image, OcrPage, float]], out: BinaryIO | str | os.PathLike[str], *,
                   title: str = "", author: str = "", subject: str = "", embed_font: bool = True) -> None:
    """Write an OFD of the pages: (access image, its OCR, dpi) each; see the module docstring.

    `out` is a path (written to a temporary file beside it and renamed, so a failure leaves nothing behind) or
    a binary file object. Raises ValidationFailed OFD_BAD_INPUT before anything is written.
    """
    checked = _check(pages)
    title, author, subject = pdfa._clean(title), pdfa._clean(author), pdfa._clean(subject)
    if isinstance(out, str | os.PathLike):
        target = Path(out)
        fd, tmp = tempfile.mkstemp(prefix=".ofd-", suffix=".part", dir=str(target.parent or "."))
        try:
            with os.fdopen(fd, "wb") as fh:
                _write(checked, fh, title, author, subject, embed_font)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return
    _write(checked, out, title, author, subject, embed_font)


def _write(pages: list[_Page], fh: BinaryIO, title: str, author: str, subject: str, embed_font: bool) -> None:
    now = dt.datetime.now().astimezone().replace(microsecond=0)
    stamp = now.timetuple()[:6]
    font_path = pdfa._font_file()
    font = _Font(font_path, embed=embed_font and font_path is not None)
    ids = _Ids()
    font_id = ids.next()
    media: list[tuple[str, str, str]] = []  # (ID, file name, Format)
    page_entries: list[tuple[str, str]] = []  # (ID, BaseLoc)
    first_size: tuple[float, float] | None = None

    def put(zf: zipfile.ZipFile, name: str, data: bytes, level: int = 6) -> None:
        info = zipfile.ZipInfo(name, date_time=stamp)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=level)

    with zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
        put(zf, "OFD.xml", _xml(_doc_info(title, author, subject, now)))
        for i, pg in enumerate(pages):
            size_mm = (pg.image.width * 25.4 / pg.dpi, pg.image.height * 25.4 / pg.dpi)
            first_size = first_size or size_mm
            data, ext, fmt = _encode_image(pg.image)
            image_id = ids.next()
            name = f"Image_{i}.{ext}"
            put(zf, f"{_DOC}/Res/{name}", data, level=1)  # already compressed: Deflate only to keep one method
            media.append((image_id, name, fmt))
            page_id = ids.next()
            loc = f"Pages/Page_{i}/Content.xml"
            put(zf, f"{_DOC}/{loc}", _page_xml(pg, ids, font, font_id, image_id, size_mm))
            page_entries.append((page_id, loc))
        program = font.program()
        font_file = "Font_0.ttf"
        if program is not None:
            put(zf, f"{_DOC}/Res/{font_file}", program)
        # PublicRes: the font (none when no page has text)
        pub = _el(None, "Res", BaseLoc="Res")
        if program is not None:
            f = _el(_el(pub, "Fonts"), "Font", ID=font_id, FontName=pdfa.FONT_FAMILY, FamilyName=pdfa.FONT_FAMILY)
            _el(f, "FontFile", font_file)
        elif font.chars:
            _el(_el(pub, "Fonts"), "Font", ID=font_id, FontName=NAMED_FONT, FamilyName=NAMED_FONT)
        put(zf, f"{_DOC}/PublicRes.xml", _xml(pub))
        # DocumentRes: the page images
        res = _el(None, "Res", BaseLoc="Res")
        mms = _el(res, "MultiMedias")
        for mid, name, fmt in media:
            mm = _el(mms, "MultiMedia", ID=mid, Type="Image", Format=fmt)
            _el(mm, "MediaFile", name)
        put(zf, f"{_DOC}/DocumentRes.xml", _xml(res))
        # Document.xml
        doc = _el(None, "Document")
        common = _el(doc, "CommonData")
        _el(common, "MaxUnitID", str(ids.last))
        area = _el(common, "PageArea")
        assert first_size is not None
        _el(area, "PhysicalBox", f"0 0 {_num(first_size[0])} {_num(first_size[1])}")
        _el(common, "PublicRes", "PublicRes.xml")
        _el(common, "DocumentRes", "DocumentRes.xml")
        pages_el = _el(doc, "Pages")
        for pid, loc in page_entries:
            _el(pages_el, "Page", ID=pid, BaseLoc=loc)
        put(zf, f"{_DOC}/Document.xml", _xml(doc))


__all__ = ["searchable_ofd", "OFD_NS", "NAMED_FONT"]
