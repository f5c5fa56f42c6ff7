"""Rendering one page of an OFD (GB/T 33190-2016) file to a PIL image, for the page viewer.

``ofd_page_count(path)`` counts the pages of every document in the package (in Document.xml order, the
same numbering as text extraction); ``render_ofd_page(path, page_index, dpi=..., max_side=...)`` draws one
page (``page_index`` from 0) as an RGB image. Both raise ``ValidationFailed`` with a stable code:
``OFD_UNREADABLE`` (not an OFD, damaged, refused for safety, or the page content cannot be read) and
``PAGE_OUT_OF_RANGE``.

What is drawn, in this order: the page's background templates, its layers (Background, Body, Foreground
types in that order), foreground templates, annotations (``Annotations.xml`` appearances: watermarks,
stamps drawn as annotations) and the appearance of electronic seals (``Signatures.xml`` → ``StampAnnot``,
the seal picture taken from the SES signature value: PNG/JPEG/GIF/BMP pictures or a small OFD package,
whose first page is drawn into the stamp's box).

Objects: ``TextObject`` (embedded TrueType/OpenType fonts through their outlines, CGTransform glyph
indices, otherwise the family name mapped to an installed CJK font: 黑体 and the sans families to Noto Sans
CJK SC, 宋体/仿宋/楷体/小标宋 and anything else to Noto Serif CJK SC; DeltaX/DeltaY with the ``g n w``
form, HScale, Weight, Italic, CharDirection, CTM), ``PathObject`` (AbbreviatedData M/S/L/Q/B/A/C/Z, fill
rules, stroke width, dashes), ``ImageObject`` (PNG, JPEG, BMP, GIF, TIFF through Pillow; JBIG2 through
PDFium), ``CompositeObject`` and ``PageBlock`` nesting, ``Clips`` (paths), draw parameters (``DrawParam``
with ``Relative``), colours in RGB/Gray/CMYK colour spaces (palettes, ``#hex`` components, alpha; shadings
and patterns are drawn with their first colour). Blend modes, text clips, image masks and the exact shapes
of line caps and joins are approximated or ignored; anything unknown is skipped, never an error.

Safety and bounds: the package is read through ofd.py's bounded ZIP reader (per-part and total inflate
budgets, refusal of ZIP-bomb ratios) and ofd.py's path rules; XML is parsed without DTDs, entities or
network, and a part that declares a DOCTYPE is refused; the output is at most ``max_side`` pixels on its
long side; a page draws at most ``MAX_OBJECTS`` objects and ``MAX_POINTS`` path points and stops drawing
after ``MAX_SECONDS`` (what was drawn so far is returned); images above ``MAX_IMAGE_PIXELS`` are skipped.
"""

from __future__ import annotations

import contextlib
import io
import math
import posixpath
import shutil
import struct
import subprocess
import time
import unicodedata
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from lxml import etree
from PIL import Image, ImageChops, ImageDraw, ImageFont

from dangan.errors import ValidationFailed
from dangan.formats import extract, ofd, ses
from dangan.formats.results import Validation

# -- limits (module constants so that a deployment, or a test, can tighten them) --------------------------------

MAX_OBJECTS = 200_000          # graphic objects drawn on one page (templates, annotations and seals included)
MAX_POINTS = 4_000_000         # flattened path points on one page
MAX_GLYPHS = 400_000           # characters drawn on one page
MAX_DEPTH = 32                 # nesting of PageBlock/CompositeObject
MAX_SECONDS = 30.0             # drawing stops after this (the image drawn so far is returned)
MAX_IMAGE_BYTES = 64 * 1024 * 1024
MAX_IMAGE_PIXELS = 60_000_000  # an embedded picture with more pixels is not drawn
MAX_FONT_BYTES = 32 * 1024 * 1024
MAX_SEAL_BYTES = 16 * 1024 * 1024
MAX_BOX_MM = 5000.0            # a page larger than 5 m is treated as damaged (A4 is used instead)
_IMAGE_CACHE_PIXELS = 24_000_000  # decoded pictures kept for re-use within one page
_GLYPH_CACHE_BYTES = 64 * 1024 * 1024
SUPERSAMPLE_PIXELS = 16_000_000  # paths are drawn at 2x and reduced when the 2x canvas stays under this

_DEFAULT_BOX = (0.0, 0.0, 210.0, 297.0)
_N = ofd._N
_LAYER_ORDER = {"Background": 0, "Body": 1, "Custom": 1, "Foreground": 2}

Mat = tuple[float, float, float, float, float, float]
_IDENT: Mat = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
RGBA = tuple[int, int, int, int]


class _Stop(Exception):
    """A page budget (objects, points, glyphs, time) is used up: stop drawing, keep what is drawn."""


def _unreadable(message: str) -> ValidationFailed:
    return ValidationFailed(message, code="OFD_UNREADABLE")


# -- public API -------------------------------------------------------------------------------------------------


def ofd_page_count(path: str) -> int:
    """The number of pages of all documents of the OFD package at ``path``."""
    zf, pkg = _open(path)
    with zf:
        return len(_page_list(pkg))


def render_ofd_page(path: str, page_index: int, *, dpi: float = 110, max_side: int = 2400) -> Image.Image:
    """Render page ``page_index`` (from 0) of the OFD file at ``path`` as an RGB image.

    The page's PhysicalBox (mm) is drawn at ``dpi``; when its long side would exceed ``max_side`` pixels the
    image is scaled down to fit.
    """
    zf, pkg = _open(path)
    with zf:
        pages = _page_list(pkg)
        if not isinstance(page_index, int) or page_index < 0 or page_index >= len(pages):
            raise ValidationFailed(
                f"页码超出范围：该 OFD 共 {len(pages)} 页，请求的是第 {page_index + 1 if isinstance(page_index, int) else page_index} 页",
                code="PAGE_OUT_OF_RANGE", detail={"pages": len(pages), "page_index": page_index})
        ref = pages[page_index]
        page_root = _page_xml(ref, page_index + 1)
        box = _page_box(page_root, ref.doc)
        dpi = min(max(float(dpi) if dpi and dpi > 0 else 110.0, 5.0), 1200.0)
        max_side = min(max(int(max_side), 16), 20_000)
        k = dpi / 25.4
        w_mm, h_mm = box[2], box[3]
        if max(w_mm, h_mm) * k > max_side:
            k = max_side / max(w_mm, h_mm)
        width, height = max(1, round(w_mm * k)), max(1, round(h_mm * k))
        ss = 2 if width * height * 4 <= SUPERSAMPLE_PIXELS else 1
        painter = _Painter(width * ss, height * ss, ss)
        base: Mat = (k * ss, 0.0, 0.0, k * ss, -box[0] * k * ss, -box[1] * k * ss)
        with contextlib.suppress(_Stop):  # a budget ran out: show what was drawn
            painter.page(ref, page_root, base, decorations=True)
        img = painter.img
        if ss > 1:
            img = img.reduce(ss)
        if img.size != (width, height):
            img = img.resize((width, height), Image.Resampling.BILINEAR)
        return img


# -- package, documents, pages ----------------------------------------------------------------------------------


def _open(path: Any) -> tuple[zipfile.ZipFile, Any]:
    try:
        return extract._open_package(path, "OFD 文件")
    except extract._Fail as f:
        raise _unreadable(f.message) from None


def _open_bytes(data: bytes) -> tuple[zipfile.ZipFile, Any] | None:
    """A package held in memory (an OFD seal picture); None when it cannot be opened."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, struct.error):
        return None
    try:
        return zf, ofd._Package(zf, Validation())
    except Exception:  # noqa: BLE001 - an unreadable seal picture is simply not drawn
        zf.close()
        return None


def _xml(pkg: Any, name: str | None) -> etree._Element | None:
    """Parse an optional XML part (template, resources, annotations); None when missing or refused."""
    if not name:
        return None
    try:
        return extract._parse_part(pkg, name)
    except (extract._Fail, *extract._read_errors()):
        return None


def _read(pkg: Any, name: str | None, limit: int) -> bytes | None:
    if not name:
        return None
    try:
        extract._check_part(pkg, name, limit)
        return pkg.read(name, limit)
    except (extract._Fail, *extract._read_errors()):
        return None


@dataclass
class _PageRef:
    doc: _Document
    page_id: str
    part: str | None     # resolved from base_loc when the page is drawn
    base_loc: str


@dataclass
class _Document:
    pkg: Any
    part: str
    dir: str
    root: etree._Element
    signatures_loc: str = ""
    templates: dict[str, tuple[str | None, str]] = field(default_factory=dict)   # ID -> (part, ZOrder)
    _res: _Resources | None = None
    _annots: dict[str, list[str]] | None = None
    _stamps: list[_Stamp] | None = None

    @property
    def res(self) -> _Resources:
        if self._res is None:
            self._res = _Resources(self.pkg, self.dir)
            common = ofd._child(self.root, "CommonData")
            if common is not None:
                for name in ("PublicRes", "DocumentRes"):
                    for el in ofd._children(common, name):
                        self._res.load(ofd._text(el), self.dir)
        return self._res

    def page_area(self) -> tuple[float, float, float, float] | None:
        common = ofd._child(self.root, "CommonData")
        return _box_of(ofd._child(common, "PageArea"))

    def annotations(self, page_id: str) -> list[str]:
        if self._annots is None:
            self._annots = {}
            loc = ofd._text(ofd._child(self.root, "Annotations"))
            part = self.pkg.resolve(loc, self.dir, "Annotations", self.dir, problem_if_missing=False) if loc else None
            root = _xml(self.pkg, part)
            if root is not None and part:
                base = posixpath.dirname(part)
                for page in ofd._children(root, "Page"):
                    file_loc = ofd._text(ofd._child(page, "FileLoc"))
                    target = self.pkg.resolve(file_loc, base, "Annotations", self.dir, problem_if_missing=False)
                    if target:
                        self._annots.setdefault(page.get("PageID", ""), []).append(target)
        return self._annots.get(page_id, [])

    def stamps(self) -> list[_Stamp]:
        if self._stamps is None:
            self._stamps = _read_stamps(self)
        return self._stamps


@dataclass
class _Stamp:
    page_id: str
    box: tuple[float, float, float, float]
    picture_type: str
    picture: bytes


def _documents(pkg: Any) -> list[_Document]:
    entry = pkg._lookup("OFD.xml", True)
    if entry is None:
        raise _unreadable("包根目录下没有 OFD.xml，不是 OFD 文件")
    try:
        root = extract._parse_part(pkg, entry)
    except extract._Fail as f:
        raise _unreadable(f.message) from None
    except extract._read_errors() as e:
        raise _unreadable(extract._problem(pkg, entry, e)) from None
    if ofd._local(root.tag) != "OFD" or ofd._ns(root.tag) != ofd.OFD_NS:
        raise _unreadable(f"{entry} 的根元素不是 ofd:OFD，不是 OFD 文件")
    docs: list[_Document] = []
    for body in ofd._children(root, "DocBody"):
        loc = ofd._text(ofd._child(body, "DocRoot"))
        part = pkg.resolve(loc, "", "DocRoot", problem_if_missing=False) if loc else None
        doc_root = _xml(pkg, part)
        if doc_root is None or part is None:
            continue
        doc = _Document(pkg, part, posixpath.dirname(part), doc_root,
                        signatures_loc=ofd._text(ofd._child(body, "Signatures")))
        common = ofd._child(doc_root, "CommonData")
        for tpl in ofd._children(common, "TemplatePage") if common is not None else []:
            tpart = pkg.resolve(tpl.get("BaseLoc", ""), doc.dir, "TemplatePage", doc.dir, problem_if_missing=False)
            doc.templates[tpl.get("ID", "")] = (tpart, tpl.get("ZOrder") or "Background")
        docs.append(doc)
    return docs


def _page_list(pkg: Any) -> list[_PageRef]:
    pages: list[_PageRef] = []
    docs = _documents(pkg)
    for doc in docs:
        pages_el = ofd._child(doc.root, "Pages")
        for page in ofd._children(pages_el, "Page") if pages_el is not None else []:
            pages.append(_PageRef(doc, page.get("ID", "").strip(), None, page.get("BaseLoc", "")))
    if not pages:
        encrypted = any(posixpath.basename(n).lower() in ("encryptions.xml", "encrypt.xml") for n in pkg.files)
        if encrypted:
            raise _unreadable("OFD 的内容已加密（含 Encryptions.xml），无法显示")
        if not docs:
            raise _unreadable("OFD.xml 的 DocRoot 指向的 Document.xml 不存在或无法读取")
        raise _unreadable("OFD 中没有可以读取的页面")
    return pages


def _page_xml(ref: _PageRef, number: int) -> etree._Element:
    if ref.part is None and ref.base_loc:
        ref.part = ref.doc.pkg.resolve(ref.base_loc, ref.doc.dir, "Page", ref.doc.dir, problem_if_missing=False)
    if ref.part is None:
        raise _unreadable(f"第 {number} 页的内容文件 {ref.base_loc or '（未指定）'} 在包中不存在")
    try:
        root = extract._parse_part(ref.doc.pkg, ref.part)
    except extract._Fail as f:
        raise _unreadable(f"第 {number} 页无法显示：{f.message}") from None
    except extract._read_errors() as e:
        raise _unreadable(f"第 {number} 页无法显示：{extract._problem(ref.doc.pkg, ref.part, e)}") from None
    return root


def _box_of(area: etree._Element | None) -> tuple[float, float, float, float] | None:
    if area is None:
        return None
    for name in ("PhysicalBox", "ApplicationBox"):
        el = ofd._child(area, name)
        if el is None:  # WPS writes the box without the OFD namespace
            el = next((c for c in area if ofd._local(c.tag) == name), None)
        vals = _floats(ofd._text(el))
        if len(vals) >= 4 and 0 < vals[2] <= MAX_BOX_MM and 0 < vals[3] <= MAX_BOX_MM \
                and all(math.isfinite(v) and abs(v) <= MAX_BOX_MM for v in vals[:4]):
            return vals[0], vals[1], vals[2], vals[3]
    return None


def _page_box(page_root: etree._Element, doc: _Document) -> tuple[float, float, float, float]:
    return _box_of(ofd._child(page_root, "Area")) or doc.page_area() or _DEFAULT_BOX


# -- resources --------------------------------------------------------------------------------------------------


@dataclass
class _FontSpec:
    name: str
    family: str
    bold: bool
    italic: bool
    file: str | None


class _Resources:
    """Resources by ID (colour spaces, draw parameters, fonts, multimedia, composite units), with a parent."""

    def __init__(self, pkg: Any, doc_dir: str, parent: _Resources | None = None) -> None:
        self.pkg = pkg
        self.doc_dir = doc_dir
        self.parent = parent
        self.colorspaces: dict[str, etree._Element] = {}
        self.drawparams: dict[str, etree._Element] = {}
        self.fonts: dict[str, _FontSpec] = {}
        self.media: dict[str, tuple[str | None, str]] = {}
        self.composites: dict[str, etree._Element] = {}
        self.loaded: set[str] = set()

    def load(self, loc: str, base_dir: str) -> None:
        if not loc:
            return
        part = self.pkg.resolve(loc, base_dir, "Res", self.doc_dir, problem_if_missing=False)
        if part is None or part in self.loaded:
            return
        self.loaded.add(part)
        root = _xml(self.pkg, part)
        if root is None:
            return
        res_dir = posixpath.dirname(part)
        base = root.get("BaseLoc", "")
        files_dir = (self.pkg._join(res_dir, base) or "") if base and not base.startswith("/") else \
            (base.lstrip("/") if base else res_dir)

        def locate(loc: str) -> str | None:
            loc = (loc or "").strip()
            if not loc:
                return None
            hit = self.pkg.resolve(loc, files_dir, "Res", self.doc_dir, problem_if_missing=False, mark_used=False)
            return hit or self.pkg.resolve(loc, res_dir, "Res", self.doc_dir, problem_if_missing=False,
                                           mark_used=False)

        for group in root:
            for item in group:
                rid = item.get("ID", "") if isinstance(item.tag, str) else ""
                if not rid:
                    continue
                kind = ofd._local(item.tag)
                if kind == "ColorSpace":
                    self.colorspaces[rid] = item
                elif kind == "DrawParam":
                    self.drawparams[rid] = item
                elif kind == "Font":
                    file_loc = ofd._text(ofd._child(item, "FontFile"))
                    self.fonts[rid] = _FontSpec(
                        name=item.get("FontName", ""), family=item.get("FamilyName", ""),
                        bold=item.get("Bold") == "true", italic=item.get("Italic") == "true",
                        file=locate(file_loc) if file_loc else None)
                elif kind == "MultiMedia":
                    media_loc = ofd._text(ofd._child(item, "MediaFile"))
                    self.media[rid] = (locate(media_loc), (item.get("Format") or "").upper())
                elif kind == "CompositeGraphicUnit":
                    self.composites[rid] = item

    def get(self, table: str, rid: str | None) -> Any:
        if not rid:
            return None
        res: _Resources | None = self
        while res is not None:
            found = getattr(res, table).get(rid.strip())
            if found is not None:
                return found
            res = res.parent
        return None


# -- geometry ---------------------------------------------------------------------------------------------------


def _mul(m: Mat, n: Mat) -> Mat:
    """m applied first, then n."""
    a, b, c, d, e, f = m
    A, B, C, D, E, F = n
    return (a * A + b * C, a * B + b * D, c * A + d * C, c * B + d * D, e * A + f * C + E, e * B + f * D + F)


def _apply(m: Mat, x: float, y: float) -> tuple[float, float]:
    return m[0] * x + m[2] * y + m[4], m[1] * x + m[3] * y + m[5]


def _inverse(m: Mat) -> Mat | None:
    a, b, c, d, e, f = m
    det = a * d - b * c
    if abs(det) < 1e-12:
        return None
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    return (ia, ib, ic, id_, -(e * ia + f * ic), -(e * ib + f * id_))


def _scale_of(m: Mat) -> float:
    return math.sqrt(abs(m[0] * m[3] - m[1] * m[2]))


def _floats(s: str | None) -> list[float]:
    if not s:
        return []
    out: list[float] = []
    for tok in s.replace(",", " ").split():
        try:
            v = float(tok)
        except ValueError:
            return out
        if not math.isfinite(v):
            return out
        out.append(v)
    return out


def _num(s: str | None, default: float) -> float:
    try:
        v = float(s) if s is not None else default
    except ValueError:
        return default
    return v if math.isfinite(v) else default


def _ctm(el: etree._Element) -> Mat:
    vals = _floats(el.get("CTM"))
    if len(vals) >= 6 and all(abs(v) < 1e7 for v in vals[:6]):
        return vals[0], vals[1], vals[2], vals[3], vals[4], vals[5]
    return _IDENT


def _object_matrix(el: etree._Element, parent: Mat) -> Mat:
    box = _floats(el.get("Boundary"))
    bx, by = (box[0], box[1]) if len(box) >= 2 else (0.0, 0.0)
    return _mul(_ctm(el), _mul((1.0, 0.0, 0.0, 1.0, bx, by), parent))


def _deltas(spec: str | None, limit: int) -> list[float]:
    """DeltaX/DeltaY: numbers, with "g n d" meaning n times d."""
    if not spec:
        return []
    tokens = spec.split()
    vals: list[float] = []
    i = 0
    try:
        while i < len(tokens) and len(vals) < limit:
            if tokens[i] == "g" and i + 2 < len(tokens):
                vals += [float(tokens[i + 2])] * max(0, min(int(float(tokens[i + 1])), limit - len(vals)))
                i += 3
            else:
                vals.append(float(tokens[i]))
                i += 1
    except ValueError:
        pass
    return [v if math.isfinite(v) else 0.0 for v in vals]


Poly = list[tuple[float, float]]


class _PathBuilder:
    """AbbreviatedData → device-space polylines (curves flattened after the transform)."""

    def __init__(self, m: Mat, budget: _Painter) -> None:
        self.m = m
        self.budget = budget
        self.polys: list[tuple[Poly, bool]] = []
        self.cur: Poly = []
        self.start = (0.0, 0.0)
        self.pos = (0.0, 0.0)   # current point in object space

    def _dev(self, x: float, y: float) -> tuple[float, float]:
        px, py = _apply(self.m, x, y)
        return max(-1e6, min(1e6, px)), max(-1e6, min(1e6, py))

    def _add(self, pts: Iterable[tuple[float, float]]) -> None:
        before = len(self.cur)
        self.cur.extend(pts)
        self.budget.points += len(self.cur) - before
        if self.budget.points > MAX_POINTS:
            raise _Stop
        if self.budget.points - self.budget.points_checked > 65_536:
            self.budget.points_checked = self.budget.points
            if time.monotonic() > self.budget.deadline:
                raise _Stop

    def move(self, x: float, y: float) -> None:
        self.flush(False)
        self.cur = [self._dev(x, y)]
        self.start = self.pos = (x, y)

    def line(self, x: float, y: float) -> None:
        if not self.cur:
            self.cur = [self._dev(*self.pos)]
        self._add([self._dev(x, y)])
        self.pos = (x, y)

    def _steps(self, pts: list[tuple[float, float]]) -> int:
        length = sum(math.dist(pts[i], pts[i + 1]) for i in range(len(pts) - 1))
        return max(2, min(64, int(length / 3) + 2))

    def quad(self, x1: float, y1: float, x: float, y: float) -> None:
        if not self.cur:
            self.cur = [self._dev(*self.pos)]
        p0, p1, p2 = self._dev(*self.pos), self._dev(x1, y1), self._dev(x, y)
        n = self._steps([p0, p1, p2])
        self._add(((1 - t) ** 2 * p0[0] + 2 * (1 - t) * t * p1[0] + t * t * p2[0],
                   (1 - t) ** 2 * p0[1] + 2 * (1 - t) * t * p1[1] + t * t * p2[1])
                  for t in (i / n for i in range(1, n + 1)))
        self.pos = (x, y)

    def cubic(self, x1: float, y1: float, x2: float, y2: float, x: float, y: float) -> None:
        if not self.cur:
            self.cur = [self._dev(*self.pos)]
        p0, p1, p2, p3 = self._dev(*self.pos), self._dev(x1, y1), self._dev(x2, y2), self._dev(x, y)
        n = self._steps([p0, p1, p2, p3])
        pts = []
        for i in range(1, n + 1):
            t = i / n
            u = 1 - t
            pts.append((u ** 3 * p0[0] + 3 * u * u * t * p1[0] + 3 * u * t * t * p2[0] + t ** 3 * p3[0],
                        u ** 3 * p0[1] + 3 * u * u * t * p1[1] + 3 * u * t * t * p2[1] + t ** 3 * p3[1]))
        self._add(pts)
        self.pos = (x, y)

    def arc(self, rx: float, ry: float, angle: float, large: bool, sweep: bool, x: float, y: float) -> None:
        """An elliptical arc in the SVG endpoint form, flattened in object space."""
        x0, y0 = self.pos
        if not self.cur:
            self.cur = [self._dev(x0, y0)]
        rx, ry = abs(rx), abs(ry)
        if rx < 1e-9 or ry < 1e-9 or (abs(x - x0) < 1e-12 and abs(y - y0) < 1e-12):
            self.line(x, y)
            return
        phi = math.radians(angle)
        cos_p, sin_p = math.cos(phi), math.sin(phi)
        dx, dy = (x0 - x) / 2, (y0 - y) / 2
        x1p, y1p = cos_p * dx + sin_p * dy, -sin_p * dx + cos_p * dy
        lam = (x1p / rx) ** 2 + (y1p / ry) ** 2
        if lam > 1:
            rx, ry = rx * math.sqrt(lam), ry * math.sqrt(lam)
        num = rx * rx * ry * ry - rx * rx * y1p * y1p - ry * ry * x1p * x1p
        den = rx * rx * y1p * y1p + ry * ry * x1p * x1p
        coef = math.sqrt(max(0.0, num / den)) if den else 0.0
        if large == sweep:
            coef = -coef
        cxp, cyp = coef * rx * y1p / ry, -coef * ry * x1p / rx
        cx, cy = cos_p * cxp - sin_p * cyp + (x0 + x) / 2, sin_p * cxp + cos_p * cyp + (y0 + y) / 2

        def ang(ux: float, uy: float, vx: float, vy: float) -> float:
            return math.atan2(ux * vy - uy * vx, ux * vx + uy * vy)

        t1 = ang(1, 0, (x1p - cxp) / rx, (y1p - cyp) / ry)
        dt = ang((x1p - cxp) / rx, (y1p - cyp) / ry, (-x1p - cxp) / rx, (-y1p - cyp) / ry)
        if not sweep and dt > 0:
            dt -= 2 * math.pi
        elif sweep and dt < 0:
            dt += 2 * math.pi
        radius = max(rx, ry) * _scale_of(self.m)
        n = max(4, min(180, int(abs(dt) * radius / 3) + 4))
        pts = []
        for i in range(1, n + 1):
            t = t1 + dt * i / n
            ex, ey = rx * math.cos(t), ry * math.sin(t)
            pts.append(self._dev(cos_p * ex - sin_p * ey + cx, sin_p * ex + cos_p * ey + cy))
        self._add(pts)
        self.pos = (x, y)

    def close(self) -> None:
        if self.cur:
            self.flush(True)
        self.pos = self.start

    def flush(self, closed: bool) -> None:
        if len(self.cur) >= 2 or (self.cur and closed):
            self.polys.append((self.cur, closed))
        self.cur = []


def _build_path(data: str, m: Mat, budget: _Painter) -> list[tuple[Poly, bool]]:
    tokens = data.replace(",", " ").split()
    pb = _PathBuilder(m, budget)
    arity = {"M": 2, "S": 2, "L": 2, "Q": 4, "B": 6, "A": 7, "C": 0, "Z": 0}
    i = 0
    cmd = ""
    while i < len(tokens):
        tok = tokens[i]
        if tok in arity:
            cmd = tok
            i += 1
        elif not cmd:
            i += 1
            continue
        n = arity[cmd]
        if n == 0:
            pb.close()
            cmd = ""
            continue
        args = _floats(" ".join(tokens[i:i + n]))
        if len(args) < n:
            break
        i += n
        if cmd in ("M", "S"):
            pb.move(args[0], args[1])
            cmd = "L"  # further pairs are lines
        elif cmd == "L":
            pb.line(args[0], args[1])
        elif cmd == "Q":
            pb.quad(*args)
        elif cmd == "B":
            pb.cubic(*args)
        elif cmd == "A":
            pb.arc(args[0], args[1], args[2], args[3] != 0, args[4] != 0, args[5], args[6])
    pb.flush(False)
    return pb.polys


def _signed_area(pts: Poly) -> float:
    return 0.5 * sum(pts[i][0] * pts[i - 1][1] - pts[i - 1][0] * pts[i][1] for i in range(len(pts)))


def _raster(polys: list[Poly], w: int, h: int, even_odd: bool) -> Image.Image:
    """Fill polygons (already in mask coordinates) into an L mask: even-odd exactly, non-zero approximated
    (the contours are drawn from the largest down, those turning against the largest one cut holes)."""
    mask = Image.new("L", (w, h), 0)
    polys = [p for p in polys if len(p) >= 3]
    if not polys:
        return mask
    if len(polys) == 1:
        ImageDraw.Draw(mask).polygon(polys[0], fill=255)
        return mask
    if even_odd:
        for p in polys:
            one = Image.new("L", (w, h), 0)
            ImageDraw.Draw(one).polygon(p, fill=255)
            mask = ImageChops.difference(mask, one)
        return mask
    areas = [(_signed_area(p), p) for p in polys]
    areas.sort(key=lambda a: -abs(a[0]))
    main = areas[0][0] >= 0
    draw = ImageDraw.Draw(mask)
    for area, p in areas:
        draw.polygon(p, fill=255 if (area >= 0) == main else 0)
    return mask


# -- colours ----------------------------------------------------------------------------------------------------


def _components(value: str) -> list[float]:
    out: list[float] = []
    for tok in value.split():
        try:
            out.append(float(int(tok[1:], 16)) if tok.startswith("#") else float(tok))
        except ValueError:
            return out
    return out


def _color(el: etree._Element | None, res: _Resources) -> RGBA | None:
    """A CT_Color as RGBA; None for no colour (a pattern we do not draw, an unreadable value)."""
    if el is None:
        return None
    alpha = int(min(255, max(0, _num(el.get("Alpha"), 255))))
    for shading in ("AxialShd", "RadialShd", "GouraudShd", "LaGouraudShd"):
        shd = ofd._child(el, shading)
        if shd is not None:
            inner = next(iter(shd.iter(_N + "Color")), None)
            got = _color(inner, res) if inner is not None else None
            return (got[0], got[1], got[2], got[3] * alpha // 255) if got else None
    cs_el = res.get("colorspaces", el.get("ColorSpace"))
    cs_type = (cs_el.get("Type") if cs_el is not None else "RGB") or "RGB"
    bpc = int(_num(cs_el.get("BitsPerComponent") if cs_el is not None else None, 8))
    top = float((1 << max(1, min(bpc, 16))) - 1)
    value = el.get("Value")
    index = el.get("Index")
    if value is None and index is not None and cs_el is not None:
        palette = ofd._child(cs_el, "Palette")
        cvs = ofd._children(palette, "CV") if palette is not None else []
        try:
            value = ofd._text(cvs[int(index)])
        except (ValueError, IndexError):
            value = None
    if value is None:
        return None if ofd._child(el, "Pattern") is not None or index is not None else (0, 0, 0, alpha)
    comps = [max(0.0, min(1.0, c / top)) for c in _components(value)]
    kind = cs_type.upper()
    if kind == "GRAY" or len(comps) in (1, 2):
        g = comps[0] if comps else 0.0
        return (round(g * 255),) * 3 + (alpha,)  # type: ignore[return-value]
    if kind == "CMYK" or len(comps) == 4:
        if len(comps) < 4:
            return None
        c, m, y, k = comps[:4]
        return round(255 * (1 - c) * (1 - k)), round(255 * (1 - m) * (1 - k)), round(255 * (1 - y) * (1 - k)), alpha
    if len(comps) < 3:
        return None
    return round(comps[0] * 255), round(comps[1] * 255), round(comps[2] * 255), alpha


# -- fonts ------------------------------------------------------------------------------------------------------

_SANS_WORDS = ("黑", "hei", "yahei", "雅黑", "等线", "dengxian", "arial", "helvetica", "verdana", "tahoma",
               "sans", "gothic", "圆", "yuan", "calibri", "segoe")
_MONO_WORDS = ("courier", "mono", "consolas", "ocr", "fixed")
_FAMILIES = {
    ("serif", False): ("Noto Serif CJK SC", "Regular"), ("serif", True): ("Noto Serif CJK SC", "Bold"),
    ("sans", False): ("Noto Sans CJK SC", "Regular"), ("sans", True): ("Noto Sans CJK SC", "Bold"),
    ("mono", False): ("Noto Sans Mono CJK SC", "Regular"), ("mono", True): ("Noto Sans Mono CJK SC", "Bold"),
}
_KNOWN_FILES = {
    "Noto Serif CJK SC": ["/usr/share/fonts/opentype/noto/NotoSerifCJK-{style}.ttc"],
    "Noto Sans CJK SC": ["/usr/share/fonts/opentype/noto/NotoSansCJK-{style}.ttc"],
    "Noto Sans Mono CJK SC": ["/usr/share/fonts/opentype/noto/NotoSansCJK-{style}.ttc"],
}
_LAST_RESORT = ["/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"]


def _style_of(name: str) -> str:
    low = name.lower()
    if any(w in low for w in _MONO_WORDS):
        return "mono"
    if any(w in low for w in _SANS_WORDS):
        return "sans"
    return "serif"  # 宋体, 仿宋, 楷体, 小标宋, Times and unknown names: documents are mostly set in serif faces


@lru_cache(maxsize=16)
def _system_face(style: str, bold: bool) -> tuple[str, int] | None:
    """(file, face index) of the installed font for a style: fc-match first, then the Debian paths."""
    family, weight = _FAMILIES[(style, bold)]
    candidates: list[str] = []
    if shutil.which("fc-match"):
        try:
            out = subprocess.run(["fc-match", "-f", "%{file}", f"{family}:style={weight}"], capture_output=True,
                                 text=True, timeout=10, check=False).stdout.strip()
            if out:
                candidates.append(out)
        except (OSError, subprocess.SubprocessError):
            pass
    candidates += [p.format(style=weight) for p in _KNOWN_FILES.get(family, [])]
    for path in candidates:
        for index in range(12):
            try:
                got = ImageFont.truetype(path, 10, index=index).getname()
            except OSError:
                break
            if got[0] == family:
                return path, index
    for path in candidates + _LAST_RESORT:
        try:
            ImageFont.truetype(path, 10)
            return path, 0
        except OSError:
            continue
    return None


class _SystemFont:
    """An installed font; its FreeType faces belong to one rendering (FreeType faces are not thread-safe)."""

    def __init__(self, style: str, bold: bool) -> None:
        self.face = _system_face(style, bold) or _system_face(style, False)
        self.key = ("sys", style, bold)
        self.sizes: dict[float, ImageFont.FreeTypeFont] = {}
        self.advances: dict[str, float] = {}

    def _font(self, px: float) -> ImageFont.FreeTypeFont:
        assert self.face is not None
        font = self.sizes.get(px)
        if font is None:
            if len(self.sizes) > 256:
                self.sizes.clear()
            font = self.sizes[px] = ImageFont.truetype(self.face[0], px, index=self.face[1])
        return font

    def glyph(self, ch: str, px: float) -> tuple[Image.Image | None, int, int]:
        """Mask of one character at px pixels per em, and its offset from the origin (baseline, y down)."""
        if self.face is None:
            return None, 0, 0
        font = self._font(px)
        left, top, right, bottom = font.getbbox(ch, anchor="ls")
        if right <= left or bottom <= top:
            return None, 0, 0
        mask = Image.new("L", (int(right - left), int(bottom - top)), 0)
        ImageDraw.Draw(mask).text((-left, -top), ch, font=font, fill=255, anchor="ls")
        return mask, int(left), int(top)

    def advance(self, ch: str) -> float:
        """Advance width in em."""
        if self.face is None:
            return 1.0 if unicodedata.east_asian_width(ch) in ("W", "F") else 0.5
        if ch not in self.advances:
            self.advances[ch] = float(self._font(100.0).getlength(ch)) / 100.0
        return self.advances[ch]


class _EmbeddedFont:
    """A TrueType/OpenType font file from the package, drawn from its outlines (fontTools)."""

    def __init__(self, data: bytes, key: str) -> None:
        from fontTools.ttLib import TTCollection, TTFont

        if data[:4] == b"ttcf":
            self.tt = TTCollection(io.BytesIO(data), lazy=True).fonts[0]
        else:
            self.tt = TTFont(io.BytesIO(data), lazy=True)
        self.key = ("emb", key)
        self.glyphs = self.tt.getGlyphSet()
        self.order = self.tt.getGlyphOrder()
        self.upm = float(self.tt["head"].unitsPerEm or 1000)
        self.cmap = self.tt.getBestCmap() or {}
        self.symbol: dict[int, str] = {}
        if "cmap" in self.tt:
            for table in self.tt["cmap"].tables:
                if table.platformID == 3 and table.platEncID == 0:
                    self.symbol.update(table.cmap)
        self.outlines: dict[str, list[Poly]] = {}

    def glyph_name(self, ch: str | None, gid: int | None) -> str | None:
        if gid is not None:
            return self.order[gid] if 0 <= gid < len(self.order) else None
        if ch is None:
            return None
        code = ord(ch)
        name = self.cmap.get(code) or self.symbol.get(code) or self.symbol.get(0xF000 + code)
        if name is None and code < 256 and len(self.order) > code and not self.cmap and not self.symbol:
            return None
        return name

    def _outline(self, name: str) -> list[Poly]:
        if name not in self.outlines:
            from fontTools.pens.basePen import BasePen

            contours: list[Poly] = []

            class Flatten(BasePen):
                def _moveTo(self, p: tuple[float, float]) -> None:
                    contours.append([p])

                def _lineTo(self, p: tuple[float, float]) -> None:
                    contours[-1].append(p)

                def _curveToOne(self, p1: Any, p2: Any, p3: Any) -> None:
                    p0 = contours[-1][-1]
                    for i in range(1, 9):
                        t = i / 8
                        u = 1 - t
                        contours[-1].append((u ** 3 * p0[0] + 3 * u * u * t * p1[0] + 3 * u * t * t * p2[0] + t ** 3 * p3[0],
                                             u ** 3 * p0[1] + 3 * u * u * t * p1[1] + 3 * u * t * t * p2[1] + t ** 3 * p3[1]))

                def _qCurveToOne(self, p1: Any, p2: Any) -> None:
                    p0 = contours[-1][-1]
                    for i in range(1, 7):
                        t = i / 6
                        u = 1 - t
                        contours[-1].append((u * u * p0[0] + 2 * u * t * p1[0] + t * t * p2[0],
                                             u * u * p0[1] + 2 * u * t * p1[1] + t * t * p2[1]))

            try:
                self.glyphs[name].draw(Flatten(self.glyphs))
            except Exception:  # noqa: BLE001 - a damaged glyph is not drawn
                contours = []
            if len(self.outlines) > 4096:
                self.outlines.clear()
            self.outlines[name] = contours
        return self.outlines[name]

    def glyph(self, name: str, px: float) -> tuple[Image.Image | None, int, int]:
        contours = [c for c in self._outline(name) if len(c) >= 3]
        if not contours:
            return None, 0, 0
        sc = px / self.upm
        xs = [p[0] * sc for c in contours for p in c]
        ys = [-p[1] * sc for c in contours for p in c]
        ox, oy = math.floor(min(xs)), math.floor(min(ys))
        w, h = math.ceil(max(xs)) - ox + 1, math.ceil(max(ys)) - oy + 1
        if w <= 0 or h <= 0 or w * h > 16_000_000:
            return None, 0, 0
        q = 4 if px < 48 else 2 if px < 200 else 1
        polys = [[((x * sc - ox) * q, (-y * sc - oy) * q) for x, y in c] for c in contours]
        mask = _raster(polys, w * q, h * q, even_odd=False)
        if q > 1:
            mask = mask.reduce(q)
        return mask, ox, oy

    def advance(self, name: str | None) -> float | None:
        if name is None:
            return None
        try:
            return float(self.tt["hmtx"][name][0]) / self.upm
        except (KeyError, TypeError, IndexError):
            return None


# -- JBIG2 through PDFium ----------------------------------------------------------------------------------------


def _jbig2_image(data: bytes) -> Image.Image | None:
    """Decode a JBIG2 file (sequential organisation) by wrapping its segments as a PDF image for PDFium."""
    if data[:8] != b"\x97JB2\r\n\x1a\n" or len(data) < 13:
        return None
    flags = data[8]
    if not flags & 1:
        return None  # random-access organisation: not supported
    pos = 9 if flags & 2 else 13
    keep: list[bytes] = []
    width = height = 0
    try:
        while pos + 11 <= len(data):
            start = pos
            number = struct.unpack(">I", data[pos:pos + 4])[0]
            seg_flags = data[pos + 4]
            pos += 5
            count = data[pos] >> 5
            if count == 7:
                count = struct.unpack(">I", data[pos:pos + 4])[0] & 0x1FFFFFFF
                pos += 4 + (count + 8) // 8
            else:
                pos += 1
            pos += count * (1 if number <= 256 else 2 if number <= 65536 else 4)
            pos += 4 if seg_flags & 0x40 else 1
            length = struct.unpack(">I", data[pos:pos + 4])[0]
            pos += 4
            if length == 0xFFFFFFFF:
                return None
            kind = seg_flags & 0x3F
            if kind == 48 and length >= 8:
                width, height = struct.unpack(">II", data[pos:pos + 8])
            pos += length
            if kind not in (49, 51):  # end of page, end of file: not allowed inside a PDF stream
                keep.append(data[start:pos])
    except struct.error:
        return None
    if not (0 < width <= 20_000 and 0 < height <= 20_000) or width * height > MAX_IMAGE_PIXELS:
        return None
    stream = b"".join(keep)
    content = b"q %d 0 0 %d 0 0 cm /Im0 Do Q" % (width, height)
    objs = [
        b"<</Type/Catalog/Pages 2 0 R>>",
        b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
        b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 %d %d]/Resources<</XObject<</Im0 4 0 R>>>>/Contents 5 0 R>>"
        % (width, height),
        b"<</Type/XObject/Subtype/Image/Width %d/Height %d/ColorSpace/DeviceGray/BitsPerComponent 1"
        b"/Filter/JBIG2Decode/Length %d>>\nstream\n" % (width, height, len(stream)) + stream + b"\nendstream",
        b"<</Length %d>>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    pdf = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objs):
        offsets.append(len(pdf))
        pdf += b"%d 0 obj\n" % (i + 1) + obj + b"\nendobj\n"
    xref = len(pdf)
    pdf += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        pdf += b"%010d 00000 n \n" % off
    pdf += b"trailer\n<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    try:
        import pypdfium2 as pdfium

        with extract._PDFIUM_LOCK:
            doc = pdfium.PdfDocument(bytes(pdf))
            try:
                return doc[0].render(scale=1.0, grayscale=True).to_pil().convert("L")
            finally:
                doc.close()
    except Exception:  # noqa: BLE001 - an undecodable picture is not drawn
        return None


def _decode_image(data: bytes, target: tuple[int, int] | None = None) -> Image.Image | None:
    """A picture as RGBA (PNG, JPEG, BMP, GIF, TIFF, JBIG2); None when it cannot (or may not) be decoded."""
    if data[:4] == b"\x97JB2":
        img = _jbig2_image(data)
        return img.convert("RGBA") if img is not None else None
    try:
        img = Image.open(io.BytesIO(data))
        if img.format not in ("PNG", "JPEG", "BMP", "GIF", "TIFF", "MPO", "DIB", "WEBP", "PPM"):
            return None
        if img.width * img.height > MAX_IMAGE_PIXELS or img.width <= 0 or img.height <= 0:
            return None
        if target is not None and img.format in ("JPEG", "MPO"):
            img.draft("RGB", (max(1, target[0]), max(1, target[1])))
        img.load()
        if img.mode == "CMYK" and img.format == "JPEG" and "adobe" in img.info:
            img = ImageChops.invert(img)
        # shrink a picture much larger than where it goes before widening it to RGBA (bounded memory)
        if img.mode not in ("L", "RGB", "RGBA", "LA", "CMYK"):
            img = img.convert("RGBA" if "transparency" in img.info or img.mode in ("PA",) else
                              "L" if img.mode in ("1", "I", "I;16", "F") else "RGB")
        if target is not None:
            factor = min(img.width // max(1, 2 * target[0]), img.height // max(1, 2 * target[1]))
            if factor >= 2:
                img = img.reduce(factor)
        return img.convert("RGBA")
    except (OSError, ValueError, SyntaxError, struct.error, Image.DecompressionBombError, EOFError, MemoryError,
            ZeroDivisionError, IndexError, TypeError):
        return None


# -- seals ------------------------------------------------------------------------------------------------------


def _seal_picture(signed_value: bytes) -> tuple[str, bytes] | None:
    """(type, data) of the seal picture inside an SES_Signature (GM/T 0031 v1 or GB/T 38540 v4)."""
    try:
        top = ses.parse_der(signed_value)
        tbs = top.children()[0]
        seal = tbs.children()[1]
        info = seal.children()[0]
        picture = info.children()[3].children()
        kind = ses._text(picture[0]).strip().lower()
        data = ses._octets(picture[1])
    except (ses.SesError, IndexError, ValueError, AttributeError, TypeError):
        return None
    return (kind, data) if data else None


def _read_stamps(doc: _Document) -> list[_Stamp]:
    pkg = doc.pkg
    stamps: list[_Stamp] = []
    if not doc.signatures_loc:
        return stamps
    part = pkg.resolve(doc.signatures_loc, "", "Signatures", doc.dir, problem_if_missing=False)
    root = _xml(pkg, part)
    if root is None or part is None:
        return stamps
    base = posixpath.dirname(part)
    for entry in ofd._children(root, "Signature")[:64]:
        spart = pkg.resolve(entry.get("BaseLoc", ""), base, "Signature", doc.dir, problem_if_missing=False)
        sx = _xml(pkg, spart)
        if sx is None or spart is None:
            continue
        info = ofd._child(sx, "SignedInfo")
        annots = ofd._children(info, "StampAnnot") if info is not None else []
        if not annots:
            continue
        sbase = posixpath.dirname(spart)
        sv_loc = ofd._text(ofd._child(sx, "SignedValue"))
        sv_part = pkg.resolve(sv_loc, sbase, "SignedValue", doc.dir, problem_if_missing=False) if sv_loc else None
        data = _read(pkg, sv_part, MAX_SEAL_BYTES)
        picture = _seal_picture(data) if data else None
        if picture is None:
            seal = ofd._child(info, "Seal") if info is not None else None
            seal_loc = ofd._text(ofd._child(seal, "BaseLoc")) if seal is not None else ""
            seal_part = pkg.resolve(seal_loc, sbase, "Seal", doc.dir, problem_if_missing=False) if seal_loc else None
            esl = _read(pkg, seal_part, MAX_SEAL_BYTES)
            if esl:
                picture = _esl_picture(esl)
        if picture is None:
            continue
        for annot in annots:
            box = _floats(annot.get("Boundary"))
            if len(box) >= 4 and box[2] > 0 and box[3] > 0:
                stamps.append(_Stamp(annot.get("PageRef", "").strip(), (box[0], box[1], box[2], box[3]),
                                     picture[0], picture[1]))
    return stamps


def _esl_picture(esl: bytes) -> tuple[str, bytes] | None:
    """The picture of a stand-alone seal file (SESeal)."""
    try:
        info = ses.parse_der(esl).children()[0]
        picture = info.children()[3].children()
        return ses._text(picture[0]).strip().lower(), ses._octets(picture[1])
    except (ses.SesError, IndexError, ValueError, AttributeError, TypeError):
        return None


# -- drawing ----------------------------------------------------------------------------------------------------


@dataclass
class _Clip:
    x0: int
    y0: int
    mask: Image.Image


@dataclass
class _Ctx:
    res: _Resources
    dps: tuple[etree._Element, ...] = ()   # inherited draw parameters (nearest first)
    clip: _Clip | None = None
    alpha: int = 255
    depth: int = 0


class _Painter:
    def __init__(self, width: int, height: int, ss: int) -> None:
        self.img = Image.new("RGB", (width, height), (255, 255, 255))
        self.w, self.h = width, height
        self.ss = ss
        self.objects = 0
        self.points = 0
        self.points_checked = 0
        self.chars = 0
        self.deadline = time.monotonic() + MAX_SECONDS
        self.fonts: dict[Any, Any] = {}
        self.glyph_cache: dict[Any, tuple[Image.Image | None, int, int]] = {}
        self.glyph_bytes = 0
        self.images: dict[str, Image.Image | None] = {}

    # -- budgets -----------------------------------------------------------------------------------------------
    def tick(self) -> None:
        self.objects += 1
        if self.objects > MAX_OBJECTS or time.monotonic() > self.deadline:
            raise _Stop

    # -- compositing -------------------------------------------------------------------------------------------
    def _region(self, x0: int, y0: int, w: int, h: int, clip: _Clip | None) -> tuple[int, int, int, int] | None:
        left, top, right, bottom = max(0, x0), max(0, y0), min(self.w, x0 + w), min(self.h, y0 + h)
        if clip is not None:
            left, top = max(left, clip.x0), max(top, clip.y0)
            right, bottom = min(right, clip.x0 + clip.mask.width), min(bottom, clip.y0 + clip.mask.height)
        if right <= left or bottom <= top:
            return None
        return left, top, right, bottom

    def _mask_in(self, mask: Image.Image, x0: int, y0: int, region: tuple[int, int, int, int], alpha: int,
                 clip: _Clip | None) -> Image.Image:
        left, top, right, bottom = region
        m = mask.crop((left - x0, top - y0, right - x0, bottom - y0))
        if clip is not None:
            m = ImageChops.multiply(m, clip.mask.crop((left - clip.x0, top - clip.y0, right - clip.x0,
                                                       bottom - clip.y0)))
        if alpha < 255:
            m = m.point([v * alpha // 255 for v in range(256)])
        return m

    def paint(self, mask: Image.Image, x0: int, y0: int, color: RGBA, ctx: _Ctx) -> None:
        alpha = color[3] * ctx.alpha // 255
        if alpha <= 0:
            return
        region = self._region(x0, y0, mask.width, mask.height, ctx.clip)
        if region is None:
            return
        self.img.paste(color[:3], region, self._mask_in(mask, x0, y0, region, alpha, ctx.clip))

    def paint_image(self, rgba: Image.Image, x0: int, y0: int, alpha: int, ctx: _Ctx) -> None:
        alpha = alpha * ctx.alpha // 255
        region = self._region(x0, y0, rgba.width, rgba.height, ctx.clip)
        if region is None or alpha <= 0:
            return
        left, top, right, bottom = region
        part = rgba.crop((left - x0, top - y0, right - x0, bottom - y0))
        mask = self._mask_in(rgba.getchannel("A"), x0, y0, region, alpha, ctx.clip) if rgba.mode == "RGBA" else \
            self._mask_in(Image.new("L", rgba.size, 255), x0, y0, region, alpha, ctx.clip)
        self.img.paste(part.convert("RGB"), region, mask)

    def fill_polys(self, polys: list[Poly], even_odd: bool, color: RGBA, ctx: _Ctx) -> None:
        pts = [p for poly in polys for p in poly]
        if not pts:
            return
        x0, y0 = math.floor(min(p[0] for p in pts)), math.floor(min(p[1] for p in pts))
        x1, y1 = math.ceil(max(p[0] for p in pts)) + 1, math.ceil(max(p[1] for p in pts)) + 1
        region = self._region(x0, y0, x1 - x0, y1 - y0, ctx.clip)
        if region is None:
            return
        left, top, right, bottom = region
        shifted = [[(x - left, y - top) for x, y in poly] for poly in polys]
        self.paint(_raster(shifted, right - left, bottom - top, even_odd), left, top, color, ctx)

    def stroke_polys(self, polys: list[tuple[Poly, bool]], width: float, color: RGBA, ctx: _Ctx,
                     dash: list[float] | None = None, dash_offset: float = 0.0, round_cap: bool = False) -> None:
        lines: list[Poly] = []
        for poly, closed in polys:
            pts = poly + [poly[0]] if closed and len(poly) > 1 else poly
            if dash:
                lines += _dashed(pts, dash, dash_offset)
            else:
                lines.append(pts)
        pts_all = [p for line in lines for p in line]
        if not pts_all:
            return
        w = max(float(self.ss), width)
        pad = int(w) + 2
        x0, y0 = math.floor(min(p[0] for p in pts_all)) - pad, math.floor(min(p[1] for p in pts_all)) - pad
        x1, y1 = math.ceil(max(p[0] for p in pts_all)) + pad, math.ceil(max(p[1] for p in pts_all)) + pad
        region = self._region(x0, y0, x1 - x0, y1 - y0, ctx.clip)
        if region is None:
            return
        left, top, right, bottom = region
        mask = Image.new("L", (right - left, bottom - top), 0)
        draw = ImageDraw.Draw(mask)
        iw = max(1, round(w))
        for line in lines:
            shifted = [(x - left, y - top) for x, y in line]
            if len(shifted) == 1:
                shifted = shifted * 2
            draw.line(shifted, fill=255, width=iw, joint="curve" if iw > 2 else None)
            if round_cap and iw > 2:
                r = w / 2
                for x, y in (shifted[0], shifted[-1]):
                    draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
        self.paint(mask, left, top, color, ctx)

    # -- pages ---------------------------------------------------------------------------------------------------
    def page(self, ref: _PageRef, page_root: etree._Element, m: Mat, decorations: bool) -> None:
        """Templates, content, annotations and seals of one page; a part that fails is skipped."""
        doc = ref.doc
        res = self._page_res(doc, page_root, doc.res, posixpath.dirname(ref.part or doc.part))
        background: list[tuple[etree._Element, str]] = []
        foreground: list[tuple[etree._Element, str]] = []
        for tpl in ofd._children(page_root, "Template")[:16]:
            tpart, zorder = doc.templates.get(tpl.get("TemplateID", "").strip(), (None, "Background"))
            troot = _xml(doc.pkg, tpart)
            if troot is None or tpart is None:
                continue
            (foreground if (tpl.get("ZOrder") or zorder) == "Foreground" else background).append((troot, tpart))
        for troot, tpart in background:
            self.guarded(lambda troot=troot, tpart=tpart: self.content(
                troot, m, _Ctx(self._page_res(doc, troot, res, posixpath.dirname(tpart)))))
        self.content(page_root, m, _Ctx(res))
        for troot, tpart in foreground:
            self.guarded(lambda troot=troot, tpart=tpart: self.content(
                troot, m, _Ctx(self._page_res(doc, troot, res, posixpath.dirname(tpart)))))
        if not decorations:
            return
        for apart in doc.annotations(ref.page_id):
            aroot = _xml(doc.pkg, apart)
            for annot in ofd._children(aroot, "Annot") if aroot is not None else []:
                if annot.get("Visible") == "false":
                    continue
                for app in ofd._children(annot, "Appearance"):
                    self.tick()
                    self.guarded(lambda app=app: self.block(app, _object_matrix(app, m), _Ctx(res, depth=1)))
        for stamp in doc.stamps():
            if stamp.page_id == ref.page_id:
                self.tick()
                self.guarded(lambda stamp=stamp: self.stamp(stamp, m, res))

    @staticmethod
    def guarded(draw: Callable[[], None]) -> None:
        """Draw a template, an annotation or a seal; one that fails is skipped (budgets still stop the page)."""
        try:
            draw()
        except _Stop:
            raise
        except Exception:  # noqa: BLE001 - a damaged part is skipped, the page still renders
            return

    def _page_res(self, doc: _Document, root: etree._Element, res: _Resources, base_dir: str) -> _Resources:
        """A page's (or template's) own PageRes on top of the document's resources."""
        extra = ofd._children(root, "PageRes")
        if not extra:
            return res
        out = _Resources(doc.pkg, doc.dir, parent=res)
        for pr in extra[:16]:
            out.load(ofd._text(pr), base_dir)
        return out

    def content(self, page_root: etree._Element, m: Mat, ctx: _Ctx) -> None:
        content = ofd._child(page_root, "Content")
        if content is None:
            return
        layers = ofd._children(content, "Layer")
        layers.sort(key=lambda layer: _LAYER_ORDER.get(layer.get("Type") or "Body", 1))
        for layer in layers:
            dp = ctx.res.get("drawparams", layer.get("DrawParam"))
            sub = _Ctx(ctx.res, _dp_chain(ctx.res, dp) + ctx.dps, ctx.clip, ctx.alpha, ctx.depth)
            self.block(layer, m, sub)

    def block(self, container: etree._Element, m: Mat, ctx: _Ctx) -> None:
        if ctx.depth > MAX_DEPTH:
            return
        for el in container:
            if not isinstance(el.tag, str):
                continue
            kind = ofd._local(el.tag)
            if kind not in ("TextObject", "PathObject", "ImageObject", "CompositeObject", "PageBlock"):
                continue
            self.tick()
            try:
                self.object(el, kind, m, ctx)
            except _Stop:
                raise
            except Exception:  # noqa: BLE001 - one damaged object is skipped, the page still renders
                continue

    def object(self, el: etree._Element, kind: str, m: Mat, ctx: _Ctx) -> None:
        if kind == "PageBlock":
            self.block(el, m, _Ctx(ctx.res, ctx.dps, ctx.clip, ctx.alpha, ctx.depth + 1))
            return
        if el.get("Visible") == "false":
            return
        om = _object_matrix(el, m)
        dp = ctx.res.get("drawparams", el.get("DrawParam"))
        dps = _dp_chain(ctx.res, dp) + ctx.dps
        alpha = ctx.alpha * int(min(255, max(0, _num(el.get("Alpha"), 255)))) // 255
        clip = self.clips(el, m, om, ctx)
        sub = _Ctx(ctx.res, dps, clip, alpha, ctx.depth + 1)
        if kind == "PathObject":
            self.path(el, om, sub)
        elif kind == "TextObject":
            self.text(el, om, sub)
        elif kind == "ImageObject":
            self.image(el, om, sub)
        elif kind == "CompositeObject":
            unit = ctx.res.get("composites", el.get("ResourceID"))
            inner = ofd._child(unit, "Content") if unit is not None else None
            if inner is not None:
                self.block(inner, om, sub)

    # -- clips -------------------------------------------------------------------------------------------------
    def clips(self, el: etree._Element, parent: Mat, om: Mat, ctx: _Ctx) -> _Clip | None:
        clips_el = ofd._child(el, "Clips")
        if clips_el is None:
            return ctx.clip
        box = _floats(el.get("Boundary"))
        origin = (1.0, 0.0, 0.0, 1.0, box[0], box[1]) if len(box) >= 2 else _IDENT
        space = om if clips_el.get("TransFlag") == "true" else _mul(origin, parent)
        clip = ctx.clip
        for c in ofd._children(clips_el, "Clip"):
            polys: list[Poly] = []
            for area in ofd._children(c, "Area"):
                am = _mul(_ctm(area), space)
                path = ofd._child(area, "Path")
                if path is None:
                    return clip  # a text clip: not supported, draw unclipped
                data = ofd._text(ofd._child(path, "AbbreviatedData"))
                polys += [p for p, _closed in _build_path(data, _object_matrix(path, am), self)]
            if not polys:
                continue
            pts = [p for poly in polys for p in poly]
            x0 = max(0, math.floor(min(p[0] for p in pts)))
            y0 = max(0, math.floor(min(p[1] for p in pts)))
            x1 = min(self.w, math.ceil(max(p[0] for p in pts)) + 1)
            y1 = min(self.h, math.ceil(max(p[1] for p in pts)) + 1)
            if x1 <= x0 or y1 <= y0:
                return _Clip(0, 0, Image.new("L", (1, 1), 0))
            mask = _raster([[(x - x0, y - y0) for x, y in poly] for poly in polys], x1 - x0, y1 - y0, False)
            new = _Clip(x0, y0, mask)
            clip = new if clip is None else _intersect(clip, new)
        return clip

    # -- paths ---------------------------------------------------------------------------------------------------
    def path(self, el: etree._Element, om: Mat, ctx: _Ctx) -> None:
        data = ofd._text(ofd._child(el, "AbbreviatedData"))
        if not data:
            return
        polys = _build_path(data, om, self)
        if not polys:
            return
        if el.get("Fill") == "true":
            color = _color(_param_el(el, "FillColor", ctx.dps), ctx.res)
            if color is not None:
                self.fill_polys([p for p, _ in polys], (el.get("Rule") or "").lower() == "even-odd", color, ctx)
        if el.get("Stroke") != "false":
            color = _color(_param_el(el, "StrokeColor", ctx.dps), ctx.res) or (0, 0, 0, 255)
            width = _num(_param(el, "LineWidth", ctx.dps), 0.353)
            dash_spec = _floats(_param(el, "DashPattern", ctx.dps))
            scale = _scale_of(om)
            dash = [max(0.5, d * scale) for d in dash_spec] if dash_spec and any(d > 0 for d in dash_spec) else None
            self.stroke_polys(polys, abs(width) * scale, color, ctx, dash,
                              _num(_param(el, "DashOffset", ctx.dps), 0.0) * scale,
                              round_cap=_param(el, "Cap", ctx.dps) == "Round")

    # -- images --------------------------------------------------------------------------------------------------
    def image(self, el: etree._Element, om: Mat, ctx: _Ctx) -> None:
        media = ctx.res.get("media", el.get("ResourceID"))
        if media is None or media[0] is None:
            return
        part = media[0]
        corners = [_apply(om, x, y) for x, y in ((0, 0), (1, 0), (0, 1), (1, 1))]
        tw = max(1, round(max(math.dist(corners[0], corners[1]), math.dist(corners[2], corners[3]))))
        th = max(1, round(max(math.dist(corners[0], corners[2]), math.dist(corners[1], corners[3]))))
        key = f"{id(ctx.res.pkg)}:{part}:{tw}x{th}"
        if key in self.images:
            img = self.images[key]
        else:
            data = _read(ctx.res.pkg, part, MAX_IMAGE_BYTES)
            img = _decode_image(data, (tw, th)) if data else None
            held = sum(i.width * i.height for i in self.images.values() if i is not None)
            if img is None or held + img.width * img.height <= _IMAGE_CACHE_PIXELS:
                self.images[key] = img
        if img is not None:
            self.draw_image(img, om, 255, ctx)

    def draw_image(self, img: Image.Image, unit: Mat, alpha: int, ctx: _Ctx) -> None:
        """Draw an RGBA picture into the unit square mapped to the device by ``unit``."""
        corners = [_apply(unit, x, y) for x, y in ((0, 0), (1, 0), (0, 1), (1, 1))]
        xs, ys = [c[0] for c in corners], [c[1] for c in corners]
        x0, y0 = math.floor(min(xs)), math.floor(min(ys))
        x1, y1 = math.ceil(max(xs)), math.ceil(max(ys))
        region = self._region(x0, y0, x1 - x0, y1 - y0, ctx.clip)
        if region is None:
            return
        tw = max(1, round(math.dist(corners[0], corners[1])))
        th = max(1, round(math.dist(corners[0], corners[2])))
        a, b, c, d, e, f = unit
        if abs(b) < 1e-9 and abs(c) < 1e-9 and a > 0 and d > 0:
            # axis-aligned, not flipped: resize and paste
            out_w, out_h = max(1, round(x1 - x0)), max(1, round(y1 - y0))
            if out_w * out_h > self.w * self.h * 4:
                return
            scaled = img.resize((out_w, out_h), Image.Resampling.LANCZOS if out_w < img.width else
                                Image.Resampling.BILINEAR, reducing_gap=3.0)
            self.paint_image(scaled, x0, y0, alpha, ctx)
            return
        # general case: shrink a large picture first, then one affine transform over the visible region
        src = img
        if img.width > 2 * tw or img.height > 2 * th:
            src = img.resize((max(1, min(img.width, 2 * tw)), max(1, min(img.height, 2 * th))),
                             Image.Resampling.LANCZOS, reducing_gap=3.0)
        left, top, right, bottom = region
        # device (left + u, top + v) -> picture pixel: inverse of picture px -> unit square -> device
        to_dev = _mul((1.0 / src.width, 0.0, 0.0, 1.0 / src.height, 0.0, 0.0), unit)
        inv = _inverse(_mul(to_dev, (1.0, 0.0, 0.0, 1.0, -left, -top)))
        if inv is None:
            return
        ia, ib, ic, id_, ie, if_ = inv
        out = src.transform((right - left, bottom - top), Image.Transform.AFFINE, (ia, ic, ie, ib, id_, if_),
                            resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0, 0))
        self.paint_image(out, left, top, alpha, ctx)

    # -- seals ---------------------------------------------------------------------------------------------------
    def stamp(self, stamp: _Stamp, m: Mat, res: _Resources) -> None:
        bx, by, bw, bh = stamp.box
        ctx = _Ctx(res, depth=1)
        if stamp.picture_type == "ofd" or stamp.picture[:2] == b"PK":
            opened = _open_bytes(stamp.picture)
            if opened is None:
                return
            zf, pkg = opened
            with zf:
                try:
                    pages = _page_list(pkg)
                    ref = pages[0]
                    root = _page_xml(ref, 1)
                except ValidationFailed:
                    return
                px, py, pw, ph = _page_box(root, ref.doc)
                scale = min(bw / pw, bh / ph)
                ox, oy = bx + (bw - pw * scale) / 2, by + (bh - ph * scale) / 2
                inner = _mul((scale, 0.0, 0.0, scale, ox - px * scale, oy - py * scale), m)
                self.page(ref, root, inner, decorations=False)
            return
        img = _decode_image(stamp.picture)
        if img is not None:
            self.draw_image(img, _mul((bw, 0.0, 0.0, bh, bx, by), m), 255, ctx)

    # -- text ----------------------------------------------------------------------------------------------------
    def font_for(self, spec: _FontSpec | None, bold: bool, res: _Resources) -> tuple[_EmbeddedFont | None,
                                                                                        _SystemFont]:
        name = f"{spec.name} {spec.family}" if spec is not None else ""
        key = (id(res.pkg), spec.file if spec is not None else None, name, bold)
        if key not in self.fonts:
            embedded: _EmbeddedFont | None = None
            if spec is not None and spec.file:
                data = _read(res.pkg, spec.file, MAX_FONT_BYTES)
                if data:
                    try:
                        embedded = _EmbeddedFont(data, f"{id(res.pkg)}:{spec.file}")
                    except Exception:  # noqa: BLE001 - an unusable embedded font falls back to an installed one
                        embedded = None
            self.fonts[key] = (embedded, _SystemFont(_style_of(name), bold))
        return self.fonts[key]  # type: ignore[no-any-return]

    def text(self, el: etree._Element, om: Mat, ctx: _Ctx) -> None:
        fill = el.get("Fill") != "false"
        stroke = el.get("Stroke") == "true"
        if not fill and not stroke:
            return  # invisible text (the text layer of a scan)
        if fill:
            color = _color(_param_el(el, "FillColor", ctx.dps), ctx.res) or (0, 0, 0, 255)
        else:
            color = _color(_param_el(el, "StrokeColor", ctx.dps), ctx.res) or (0, 0, 0, 255)
        size = _num(el.get("Size"), 0.0)
        if not (0 < size < 10_000):
            return
        spec = ctx.res.get("fonts", el.get("Font"))
        bold = _num(el.get("Weight"), 400) >= 600 or (spec is not None and spec.bold)
        embedded, system = self.font_for(spec, bold, ctx.res)
        hscale = _num(el.get("HScale"), 1.0) or 1.0
        italic = el.get("Italic") == "true" or (spec is not None and spec.italic)
        char_dir = int(_num(el.get("CharDirection"), 0)) % 360
        px = size * _scale_of(om)
        if px < 0.6 * self.ss:
            return
        glyph_px = min(px, 1500.0)
        glyph_px = round(glyph_px * 4) / 4 if glyph_px < 64 else float(round(glyph_px))
        # glyph space (mask pixels, y down, origin at the pen position) -> object space, before the pen offset
        shear = 0.21 if italic else 0.0
        g: Mat = (size * hscale / glyph_px, 0.0, -shear * size * hscale / glyph_px, size / glyph_px, 0.0, 0.0)
        if char_dir:
            r = math.radians(char_dir)
            g = _mul(g, (math.cos(r), math.sin(r), -math.sin(r), math.cos(r), 0.0, 0.0))
        cg = _cg_transforms(el)
        index = 0
        x = y = 0.0
        for code in ofd._children(el, "TextCode"):
            text = code.text or ""
            x = _num(code.get("X"), x)
            y = _num(code.get("Y"), y)
            if not text:
                continue
            dx = _deltas(code.get("DeltaX"), len(text))
            dy = _deltas(code.get("DeltaY"), len(text))
            skip_until = -1
            for i, ch in enumerate(text):
                self.chars += 1
                if self.chars > MAX_GLYPHS or (self.chars & 1023 == 0 and time.monotonic() > self.deadline):
                    raise _Stop
                gid: int | None = None
                pos = index + i
                hit = cg.get(pos)
                if hit is not None:
                    gid, span = hit
                    skip_until = pos + span - 1
                elif pos <= skip_until:
                    gid = -1  # covered by a CGTransform that maps several characters to one glyph run
                step = dx[i] if i < len(dx) else (dx[-1] if dx and i == len(text) - 1 else None)
                room = step / (size * hscale) if step is not None else None
                advance = self.draw_glyph(ch, gid, embedded, system, x, y, g, glyph_px, om, color, ctx, room)
                adv = advance * size * hscale
                if i < len(text) - 1:
                    x += dx[i] if i < len(dx) else (0.0 if dy and i < len(dy) and not dx else adv)
                    y += dy[i] if i < len(dy) else 0.0
                else:
                    x += adv
            index += len(text)

    def draw_glyph(self, ch: str, gid: int | None, embedded: _EmbeddedFont | None, system: _SystemFont,
                   x: float, y: float, g: Mat, glyph_px: float, om: Mat, color: RGBA, ctx: _Ctx,
                   room: float | None = None) -> float:
        """Draw one character (or CGTransform glyph) at pen position (x, y); return its advance in em.

        ``room`` is the distance to the next character (in em) when the file says it: a narrow character of a
        substituted font that is wider than its room (a proportional Latin letter where the original font had
        half-width ones) is squeezed horizontally so that it does not run into its neighbour."""
        if gid == -1:
            return 0.0
        name = None
        if embedded is not None:
            name = embedded.glyph_name(None if gid is not None else ch, gid)
        if name is None and (ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zs")):
            return system.advance(ch) if embedded is None else (embedded.advance(embedded.glyph_name(ch, None))
                                                                 or system.advance(ch))
        if name is not None and embedded is not None:
            key: Any = (embedded.key, name, glyph_px)
            advance = embedded.advance(name) or system.advance(ch)
        else:
            key = (system.key, ch, glyph_px)
            advance = system.advance(ch)
            if room is not None and 0 < room < advance * 0.95 and unicodedata.east_asian_width(ch) not in ("W", "F"):
                g = _mul((max(0.45, room / advance), 0.0, 0.0, 1.0, 0.0, 0.0), g)
        entry = self.glyph_cache.get(key)
        if entry is None:
            entry = embedded.glyph(name, glyph_px) if name is not None and embedded is not None else \
                system.glyph(ch, glyph_px)
            size = entry[0].width * entry[0].height if entry[0] is not None else 0
            if self.glyph_bytes + size > _GLYPH_CACHE_BYTES or len(self.glyph_cache) >= 20_000:
                self.glyph_cache.clear()
                self.glyph_bytes = 0
            self.glyph_cache[key] = entry
            self.glyph_bytes += size
        mask, ox, oy = entry
        if mask is None:
            return advance
        # mask pixel -> glyph px (offset) -> object (scale, pen position) -> device
        full = _mul(_mul((1.0, 0.0, 0.0, 1.0, float(ox), float(oy)), g), _mul((1.0, 0.0, 0.0, 1.0, x, y), om))
        a, b, c, d, e, f = full
        if abs(b) < 1e-6 and abs(c) < 1e-6 and abs(a - 1) < 0.04 and abs(d - 1) < 0.04:
            self.paint(mask, round(e), round(f), color, ctx)
            return advance
        corners = [_apply(full, u, v) for u, v in ((0, 0), (mask.width, 0), (0, mask.height),
                                                   (mask.width, mask.height))]
        x0, y0 = math.floor(min(p[0] for p in corners)), math.floor(min(p[1] for p in corners))
        x1, y1 = math.ceil(max(p[0] for p in corners)), math.ceil(max(p[1] for p in corners))
        region = self._region(x0, y0, x1 - x0, y1 - y0, ctx.clip)
        if region is None:
            return advance
        left, top, right, bottom = region
        inv = _inverse(_mul(full, (1.0, 0.0, 0.0, 1.0, -left, -top)))
        if inv is None:
            return advance
        ia, ib, ic, id_, ie, if_ = inv
        out = mask.transform((right - left, bottom - top), Image.Transform.AFFINE, (ia, ic, ie, ib, id_, if_),
                             resample=Image.Resampling.BILINEAR)
        self.paint(out, left, top, color, ctx)
        return advance


def _dashed(pts: Poly, pattern: list[float], offset: float) -> list[Poly]:
    """Split a polyline into dashes (device units); at most 20 000 dashes."""
    if len(pattern) % 2:
        pattern = pattern * 2
    total = sum(pattern)
    if total <= 0:
        return [pts]
    out: list[Poly] = []
    index, left = 0, pattern[0]
    offset %= total
    while offset > 0:
        step = min(offset, left)
        offset -= step
        left -= step
        if left <= 0:
            index = (index + 1) % len(pattern)
            left = pattern[index]
    current: Poly = [pts[0]] if index % 2 == 0 else []
    for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
        seg = math.dist((x0, y0), (x1, y1))
        done = 0.0
        while seg - done > left:
            done += left
            t = done / seg
            p = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t)
            if index % 2 == 0:
                current.append(p)
                out.append(current)
                if len(out) > 20_000:
                    return out
            current = [p]
            index = (index + 1) % len(pattern)
            left = pattern[index]
        left -= seg - done
        if index % 2 == 0:
            current.append((x1, y1))
    if index % 2 == 0 and len(current) > 1:
        out.append(current)
    return out


def _intersect(a: _Clip, b: _Clip) -> _Clip:
    left, top = max(a.x0, b.x0), max(a.y0, b.y0)
    right, bottom = min(a.x0 + a.mask.width, b.x0 + b.mask.width), min(a.y0 + a.mask.height, b.y0 + b.mask.height)
    if right <= left or bottom <= top:
        return _Clip(0, 0, Image.new("L", (1, 1), 0))
    ma = a.mask.crop((left - a.x0, top - a.y0, right - a.x0, bottom - a.y0))
    mb = b.mask.crop((left - b.x0, top - b.y0, right - b.x0, bottom - b.y0))
    return _Clip(left, top, ImageChops.multiply(ma, mb))


def _dp_chain(res: _Resources, dp: etree._Element | None) -> tuple[etree._Element, ...]:
    chain: list[etree._Element] = []
    while dp is not None and len(chain) < 16 and dp not in chain:
        chain.append(dp)
        dp = res.get("drawparams", dp.get("Relative"))
    return tuple(chain)


def _param(el: etree._Element, name: str, dps: tuple[etree._Element, ...]) -> str | None:
    value = el.get(name)
    if value is not None:
        return value
    for dp in dps:
        value = dp.get(name)
        if value is not None:
            return value
    return None


def _param_el(el: etree._Element, name: str, dps: tuple[etree._Element, ...]) -> etree._Element | None:
    found = ofd._child(el, name)
    if found is not None:
        return found
    for dp in dps:
        found = ofd._child(dp, name)
        if found is not None:
            return found
    return None


def _cg_transforms(el: etree._Element) -> dict[int, tuple[int, int]]:
    """CGTransform: character position (across the object's TextCodes) -> (glyph index, characters covered).

    When several glyphs replace one run of characters, the glyphs go to successive positions of the run."""
    out: dict[int, tuple[int, int]] = {}
    for cg in ofd._children(el, "CGTransform")[:10_000]:
        try:
            pos = int(cg.get("CodePosition", "0"))
            count = max(1, int(cg.get("CodeCount", "1")))
        except ValueError:
            continue
        glyphs = [int(v) for v in _floats(ofd._text(ofd._child(cg, "Glyphs")))][:10_000]
        if not glyphs or pos < 0:
            continue
        if len(glyphs) == count:
            for i, gid in enumerate(glyphs):
                out[pos + i] = (gid, 1)
        else:
            out[pos] = (glyphs[0], count)
    return out
