"""Searchable PDF/A-2b access copies of scanned pages: the page image with an invisible OCR text layer.

Written directly with pikepdf (qpdf), so every object is under our control:

- each page is the access image (JPEG for colour and grey, Flate 1-bit for black-and-white) filling a page
  whose size comes from the image's dpi;
- over it an invisible text layer (text render mode 3): each OcrLine in its box, its font size fitted to
  the box height and its horizontal scaling (Tz) to the box width, so that selecting and searching in a
  viewer highlights the words on the image; vertical columns are single runs turned to read downwards;
- the font is a subset of WenQuanYi Zen Hei (TrueType, fonts-wqy-zenhei) embedded as a CIDFontType2 with
  Identity-H, a CIDToGIDMap, widths matching the font program and a ToUnicode CMap, so pdftotext and
  PDFium extract the Chinese text; a character the font lacks is drawn with a stand-in glyph (never
  .notdef, which PDF/A forbids) and still extracts as itself;
- PDF/A-2b: uncompressed XMP with pdfaid part 2 / conformance B and Chinese dc:title/dc:creator/dc:description
  matching the document information dictionary, an sRGB OutputIntent, no encryption, no transparency.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import os
import shutil
import subprocess
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from xml.sax.saxutils import escape

import pikepdf
from PIL import Image

import dangan
from dangan.errors import ConfigError, ValidationFailed

if TYPE_CHECKING:
    from dangan.digitise.ocr import OcrPage

FONT_FAMILY = "WenQuanYi Zen Hei"
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/wqy-zenhei/wqy-zenhei.ttc",
)
FONT_MISSING = ("未安装中文 TrueType 字体“文泉驿正黑”（WenQuanYi Zen Hei），无法生成可检索的 PDF/A 文字层。"
                "请安装：apt-get install fonts-wqy-zenhei")
JPEG_QUALITY = 80
STAND_IN = ("\u3013", "\u25a1", "?")  # 〓 (the typesetter's mark for a missing character), □, ?
PRODUCER = f"dangan {dangan.__version__} (pikepdf {pikepdf.__version__})"


# ---------------------------------------------------------------- font

@functools.cache
def _font_file() -> str | None:
    env = os.environ.get("DANGAN_PDFA_FONT")
    if env:
        return env if Path(env).is_file() else None
    for p in FONT_CANDIDATES:
        if Path(p).is_file():
            return p
    exe = shutil.which("fc-list")
    if exe:
        try:
            out = subprocess.run([exe, f"{FONT_FAMILY}:fontformat=TrueType", "--format", "%{file}\n"],
                                 capture_output=True, text=True, timeout=30, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        for line in out.splitlines():
            if line.strip() and Path(line.strip()).is_file():
                return line.strip()
    return None


def font_path() -> str:
    """The WenQuanYi Zen Hei file; ConfigError FONT_MISSING when it is not installed."""
    p = _font_file()
    if p is None:
        _font_file.cache_clear()  # installing the font later must not need a restart
        raise ConfigError(FONT_MISSING, code="FONT_MISSING", message_en="fonts-wqy-zenhei is not installed")
    return p


@dataclass
class _FontUse:
    """The characters used so far, each with its CID (1, 2, ... in order of first use)."""

    cids: dict[str, int] = field(default_factory=dict)

    def encode(self, text: str) -> bytes:
        out = bytearray()
        for ch in text:
            cid = self.cids.get(ch)
            if cid is None:
                cid = self.cids[ch] = len(self.cids) + 1
            out += cid.to_bytes(2, "big")
        return bytes(out)


@functools.cache
def _metrics(path: str) -> dict[str, Any]:
    """cmap (code point -> glyph id), advance widths by glyph id and vertical metrics (read once per process)."""
    from fontTools.ttLib import TTFont

    with TTFont(path, fontNumber=0, lazy=True) as f:
        upem = f["head"].unitsPerEm
        hmtx = f["hmtx"]
        names = dict(f.getBestCmap())
        cmap = {cp: f.getGlyphID(name) for cp, name in names.items()}
        adv = {cmap[cp]: hmtx[name][0] for cp, name in names.items()}
        stand = next((cmap[ord(ch)] for ch in STAND_IN if ord(ch) in cmap), next(iter(cmap.values())))
        head = f["head"]
        return {
            "upem": upem, "cmap": cmap, "adv": adv, "stand_in": stand,
            "ascent": f["hhea"].ascent, "descent": f["hhea"].descent,
            "bbox": (head.xMin, head.yMin, head.xMax, head.yMax),
            "psname": (f["name"].getDebugName(6) or "WenQuanYiZenHei").replace(" ", ""),
        }


def _glyph(m: dict[str, Any], ch: str) -> int:
    """Glyph id of `ch` in the full font; the stand-in glyph when the font lacks it (never .notdef)."""
    gid = m["cmap"].get(ord(ch), 0)
    return gid if gid else m["stand_in"]


def _width_units(path: str, ch: str) -> float:
    """Advance width of `ch` in text-space units of 1/1000 em (the stand-in's when the font lacks it)."""
    m = _metrics(path)
    return m["adv"].get(_glyph(m, ch), m["upem"]) * 1000.0 / m["upem"]


_DROP_TABLES = ("BDF ", "FFTM", "EBDT", "EBLC", "EBSC", "GSUB", "GPOS", "GDEF", "gasp", "DSIG", "vhea", "vmtx",
                "cmap", "hdmx", "LTSH", "VDMX", "kern", "PCLT")


def _subset_font(path: str, chars: Iterable[str]) -> tuple[bytes, dict[str, int], dict[int, int]]:
    """(TrueType subset, {char: glyph id in the subset}, {glyph id in the subset: advance}).

    The subset is made from glyph ids (looked up once per process in _metrics), with the font's own cmap,
    glyph names and layout tables left unread: that makes a subset ~4x faster (~0.1 s for a page of text).
    A small cmap for the characters used is written back so that the font program stays self-describing.
    """
    from fontTools import subset
    from fontTools.ttLib import newTable
    from fontTools.ttLib.tables._c_m_a_p import CmapSubtable

    m = _metrics(path)
    chars = list(chars)
    old = {c: _glyph(m, c) for c in chars}
    opts = subset.Options()
    opts.font_number = 0
    opts.hinting = False
    opts.layout_features = []
    opts.name_IDs = []
    opts.notdef_outline = True
    opts.glyph_names = False
    opts.recalc_bounds = True
    opts.prune_unicode_ranges = False
    opts.prune_codepage_ranges = False
    with subset.load_font(path, opts, dontLoadGlyphNames=True, lazy=True) as f:
        for tag in _DROP_TABLES:
            if tag in f:
                del f[tag]
        before = f.getGlyphOrder()
        sub = subset.Subsetter(opts)
        sub.populate(gids=sorted(set(old.values())))
        sub.subset(f)
        new_id = {name: i for i, name in enumerate(f.getGlyphOrder())}
        gids = {c: new_id[before[g]] for c, g in old.items()}
        hmtx = f["hmtx"]
        order = f.getGlyphOrder()
        advances = {gid: hmtx[order[gid]][0] for gid in set(gids.values())}
        cmap = newTable("cmap")
        cmap.tableVersion = 0
        cmap.tables = []
        mapping = {ord(c): order[gids[c]] for c in chars if ord(c) in m["cmap"]}
        for fmt, (plat, enc), pick in ((4, (3, 1), lambda cp: cp <= 0xFFFF), (12, (3, 10), lambda cp: True)):
            part = {cp: g for cp, g in mapping.items() if pick(cp)}
            if fmt == 12 and all(cp <= 0xFFFF for cp in mapping):
                continue
            table = CmapSubtable.newSubtable(fmt)
            table.platformID, table.platEncID, table.language, table.cmap = plat, enc, 0, part
            cmap.tables.append(table)
        f["cmap"] = cmap
        buf = io.BytesIO()
        f.save(buf)
    return buf.getvalue(), gids, advances


def _to_unicode(cids: dict[str, int]) -> bytes:
    def utf16(ch: str) -> str:
        return ch.encode("utf-16-be").hex().upper()

    pairs = sorted((cid, ch) for ch, cid in cids.items())
    chunks = []
    for i in range(0, len(pairs), 100):
        part = pairs[i:i + 100]
        body = "\n".join(f"<{cid:04X}> <{utf16(ch)}>" for cid, ch in part)
        chunks.append(f"{len(part)} beginbfchar\n{body}\nendbfchar")
    return ("/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
            "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
            "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
            "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
            + "\n".join(chunks) +
            "\nendcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n").encode("ascii")


def _flate(pdf: pikepdf.Pdf, data: bytes, **entries: Any) -> pikepdf.Stream:
    s = pikepdf.Stream(pdf, zlib.compress(data, 6))
    s[pikepdf.Name.Filter] = pikepdf.Name.FlateDecode
    for k, v in entries.items():
        s[pikepdf.Name("/" + k)] = v
    return s


def _font_object(pdf: pikepdf.Pdf, path: str, use: _FontUse) -> pikepdf.Object:
    m = _metrics(path)
    program, gids, advances = _subset_font(path, use.cids)
    tag = "".join(chr(65 + b % 26) for b in hashlib.sha256("".join(sorted(use.cids)).encode()).digest()[:6])
    base = pikepdf.Name(f"/{tag}+{m['psname']}")
    scale = 1000.0 / m["upem"]
    x0, y0, x1, y1 = m["bbox"]
    descriptor = pdf.make_indirect(pikepdf.Dictionary(
        Type=pikepdf.Name.FontDescriptor, FontName=base, Flags=4,
        FontBBox=[round(x0 * scale), round(y0 * scale), round(x1 * scale), round(y1 * scale)],
        ItalicAngle=0, Ascent=round(m["ascent"] * scale), Descent=round(m["descent"] * scale),
        CapHeight=round(m["ascent"] * scale), StemV=80,
        FontFile2=pdf.make_indirect(_flate(pdf, program, Length1=len(program))),
    ))
    by_cid = sorted((cid, ch) for ch, cid in use.cids.items())
    c2g = bytearray(2 * (len(by_cid) + 1))
    widths: list[Any] = []
    for cid, ch in by_cid:
        gid = gids[ch]
        c2g[2 * cid:2 * cid + 2] = gid.to_bytes(2, "big")
        widths += [cid, [round(advances[gid] * scale)]]
    cidfont = pdf.make_indirect(pikepdf.Dictionary(
        Type=pikepdf.Name.Font, Subtype=pikepdf.Name.CIDFontType2, BaseFont=base,
        CIDSystemInfo=pikepdf.Dictionary(Registry=pikepdf.String("Adobe"), Ordering=pikepdf.String("Identity"),
                                         Supplement=0),
        FontDescriptor=descriptor, DW=1000, W=widths,
        CIDToGIDMap=pdf.make_indirect(_flate(pdf, bytes(c2g))),
    ))
    return pdf.make_indirect(pikepdf.Dictionary(
        Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type0, BaseFont=base, Encoding=pikepdf.Name("/Identity-H"),
        DescendantFonts=[cidfont], ToUnicode=pdf.make_indirect(_flate(pdf, _to_unicode(use.cids))),
    ))


# ---------------------------------------------------------------- page content

def _num(v: float) -> str:
    s = f"{v:.3f}".rstrip("0").rstrip(".")
    return s if s not in ("-0", "") else "0"


def _image_object(pdf: pikepdf.Pdf, img: Image.Image) -> pikepdf.Stream:
    """The access image as an XObject: JPEG (DCT) for colour and grey, Flate 1-bit for black-and-white."""
    if img.mode == "1":
        data = img.tobytes()  # packed rows, 1 = white, as DeviceGray 1-bit reads them
        return _flate(pdf, data, Type=pikepdf.Name.XObject, Subtype=pikepdf.Name.Image, Width=img.width,
                      Height=img.height, ColorSpace=pikepdf.Name.DeviceGray, BitsPerComponent=1)
    if img.mode in ("RGBA", "LA", "PA", "P", "RGBa", "La") and (img.mode != "P" or "transparency" in img.info):
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))  # PDF/A-2b here: no soft masks, white paper behind
        img = flat
    elif img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        img = img.convert("F").convert("L")
    elif img.mode not in ("L", "RGB"):
        img = img.convert("RGB")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=JPEG_QUALITY)
    s = pikepdf.Stream(pdf, buf.getvalue())
    s[pikepdf.Name.Filter] = pikepdf.Name.DCTDecode
    s[pikepdf.Name.Type] = pikepdf.Name.XObject
    s[pikepdf.Name.Subtype] = pikepdf.Name.Image
    s[pikepdf.Name.Width] = img.width
    s[pikepdf.Name.Height] = img.height
    s[pikepdf.Name.ColorSpace] = pikepdf.Name.DeviceGray if img.mode == "L" else pikepdf.Name.DeviceRGB
    s[pikepdf.Name.BitsPerComponent] = 8
    return s


def _text_ops(path: str, use: _FontUse, text: str, x: float, y_top: float, w: float, h: float) -> list[str]:
    """Operators for one run of text filling the box (PDF units, y_top measured from the page bottom)."""
    m = _metrics(path)
    span = (m["ascent"] - m["descent"]) / m["upem"]  # ascent-to-descent of the font, in em
    size = h / span
    baseline = y_top - h - m["descent"] / m["upem"] * size
    natural = sum(_width_units(path, c) for c in text) / 1000.0 * size
    tz = 100.0 * w / natural if natural > 0 else 100.0
    tz = max(1.0, min(tz, 10000.0))
    return [f"/F1 {_num(size)} Tf {_num(tz)} Tz 1 0 0 1 {_num(x)} {_num(baseline)} Tm <{use.encode(text).hex()}> Tj"]


def _column_ops(path: str, use: _FontUse, text: str, x: float, y_top: float, w: float, h: float) -> list[str]:
    """One vertical column as a single run turned by -90° (advancing downwards), filling the box.

    Extraction then keeps the column's characters together in order (pdftotext handles turned runs as their
    own flow; a run of one-character lines side by side would be read across the columns instead).
    """
    m = _metrics(path)
    span = (m["ascent"] - m["descent"]) / m["upem"]
    size = w / span
    baseline_x = x - m["descent"] / m["upem"] * size  # glyph tops point right: descent on the left side
    natural = sum(_width_units(path, c) for c in text) / 1000.0 * size
    tz = max(1.0, min(100.0 * h / natural if natural > 0 else 100.0, 10000.0))
    return [f"/F1 {_num(size)} Tf {_num(tz)} Tz 0 -1 1 0 {_num(baseline_x)} {_num(y_top)} Tm "
            f"<{use.encode(text).hex()}> Tj"]


def _page_text(path: str, use: _FontUse, page: OcrPage, sx: float, sy: float, height_pt: float) -> str:
    """The invisible text layer of one page; sx, sy convert OCR pixels to PDF units."""
    ops: list[str] = []
    for line in page.lines:
        text = "".join(ch if ch.isprintable() else " " for ch in line.text).strip()
        if not text:
            continue
        x0, y0, x1, y1 = line.box
        if x1 <= x0 or y1 <= y0:
            continue
        bx, bw, bh = x0 * sx, (x1 - x0) * sx, (y1 - y0) * sy
        top = height_pt - y0 * sy
        if len(text) > 1 and bh > 1.5 * bw:  # a vertical column: the run turned to read top to bottom
            ops += _column_ops(path, use, text, bx, top, bw, bh)
        else:
            ops += _text_ops(path, use, text, bx, top, bw, bh)
    if not ops:
        return ""
    return "BT\n3 Tr\n" + "\n".join(ops) + "\nET\n"


# ---------------------------------------------------------------- metadata

def _xmp(title: str, author: str, subject: str, created: dt.datetime) -> bytes:
    when = created.isoformat(timespec="seconds")

    def alt(tag: str, value: str) -> str:
        return (f"<{tag}><rdf:Alt><rdf:li xml:lang=\"x-default\">{escape(value)}</rdf:li></rdf:Alt></{tag}>"
                if value else "")

    creator = f"<dc:creator><rdf:Seq><rdf:li>{escape(author)}</rdf:li></rdf:Seq></dc:creator>" if author else ""
    body = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '<rdf:Description rdf:about="" xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/">'
        "<pdfaid:part>2</pdfaid:part><pdfaid:conformance>B</pdfaid:conformance></rdf:Description>\n"
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<dc:format>application/pdf</dc:format>{alt('dc:title', title)}{creator}{alt('dc:description', subject)}"
        "<dc:language><rdf:Bag><rdf:li>zh-CN</rdf:li></rdf:Bag></dc:language></rdf:Description>\n"
        '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/">'
        f"<xmp:CreateDate>{when}</xmp:CreateDate><xmp:ModifyDate>{when}</xmp:ModifyDate>"
        f"<xmp:MetadataDate>{when}</xmp:MetadataDate><xmp:CreatorTool>{escape(PRODUCER)}</xmp:CreatorTool>"
        "</rdf:Description>\n"
        '<rdf:Description rdf:about="" xmlns:pdf="http://ns.adobe.com/pdf/1.3/">'
        f"<pdf:Producer>{escape(PRODUCER)}</pdf:Producer></rdf:Description>\n"
        "</rdf:RDF>\n</x:xmpmeta>\n"
        + (" " * 99 + "\n") * 20
        + '<?xpacket end="w"?>'
    )
    return body.encode("utf-8")


def _pdf_date(d: dt.datetime) -> str:
    off = d.utcoffset() or dt.timedelta(0)
    sign = "+" if off >= dt.timedelta(0) else "-"
    mins = abs(int(off.total_seconds())) // 60
    return d.strftime("D:%Y%m%d%H%M%S") + f"{sign}{mins // 60:02d}'{mins % 60:02d}'"


@functools.cache
def _srgb_icc() -> bytes:
    from PIL import ImageCms

    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    # LittleCMS labels it version 4.4; PDF/A-2 (ISO 32000-1) cites ICC.1:2004-10, version 4.2. The profile's tags
    # (desc, cprt, wtpt, chad, r/g/bXYZ, r/g/bTRC, chrm) are all v4.2 tags and its MD5 profile ID is unset
    # (zero), so the version field is the only difference.
    if icc[8:10] == b"\x04\x40" and icc[84:100] == bytes(16):
        icc[8:12] = b"\x04\x20\x00\x00"
    return bytes(icc)


def _clean(s: str) -> str:
    return "".join(ch for ch in str(s or "") if ch.isprintable()).strip()


# ---------------------------------------------------------------- the document

def searchable_pdf(pages: list[tuple[Image.Image, OcrPage, float]], out: BinaryIO | str, *,
                   title: str = "", author: str = "", subject: str = "") -> None:
    """Write a PDF/A-2b of the pages: (access image, its OCR, dpi) each; see the module docstring.

    The OCR boxes are scaled to the image when the OCR ran on a differently sized copy of it. Raises
    ValidationFailed PDFA_BAD_INPUT (no pages, not an image, dpi not positive) and ConfigError FONT_MISSING.
    """
    pages = list(pages)
    if not pages:
        raise ValidationFailed("没有可写入 PDF/A 的页面", code="PDFA_BAD_INPUT", message_en="no pages")
    fpath = font_path()
    title, author, subject = _clean(title), _clean(author), _clean(subject)
    pdf = pikepdf.new()
    use = _FontUse()
    font_ref = pdf.make_indirect(pikepdf.Dictionary())  # filled in once every character is known
    for n, item in enumerate(pages, 1):
        try:
            img, ocr, dpi = item
        except (TypeError, ValueError) as e:
            raise ValidationFailed(f"第 {n} 页的数据不完整（需要图像、OCR 结果与分辨率）", code="PDFA_BAD_INPUT") from e
        if isinstance(dpi, tuple | list):
            dpi = float(dpi[0]) if dpi else 0.0
        if not isinstance(img, Image.Image) or not img.width or not img.height:
            raise ValidationFailed(f"第 {n} 页不是有效图像", code="PDFA_BAD_INPUT", message_en=f"page {n}: not an image")
        try:
            dpi = float(dpi)
        except (TypeError, ValueError):
            dpi = 0.0
        if not dpi > 0:
            raise ValidationFailed(f"第 {n} 页的分辨率无效：{dpi}，应为正数（dpi）", code="PDFA_BAD_INPUT",
                                   message_en=f"page {n}: bad dpi")
        width_pt, height_pt = img.width * 72.0 / dpi, img.height * 72.0 / dpi
        grow = max(1.0, 3.0 / width_pt, 3.0 / height_pt)  # PDF/A: a page is at least 3 units on each side
        width_pt, height_pt = width_pt * grow, height_pt * grow
        image = pdf.make_indirect(_image_object(pdf, img))
        sx = width_pt / (ocr.width or img.width)
        sy = height_pt / (ocr.height or img.height)
        content = f"q\n{_num(width_pt)} 0 0 {_num(height_pt)} 0 0 cm\n/Im0 Do\nQ\n"
        content += _page_text(fpath, use, ocr, sx, sy, height_pt)
        resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image))
        if use.cids:
            resources.Font = pikepdf.Dictionary(F1=font_ref)
        page = pikepdf.Dictionary(
            Type=pikepdf.Name.Page, MediaBox=[0, 0, float(_num(width_pt)), float(_num(height_pt))],
            Resources=resources, Contents=pdf.make_indirect(_flate(pdf, content.encode("ascii"))),
        )
        pdf.pages.append(pikepdf.Page(page))
    if use.cids:
        font = _font_object(pdf, fpath, use)
        for k, v in font.items():
            font_ref[k] = v
    now = dt.datetime.now().astimezone().replace(microsecond=0)
    info = pikepdf.Dictionary(Producer=pikepdf.String(PRODUCER), Creator=pikepdf.String(PRODUCER),
                              CreationDate=pikepdf.String(_pdf_date(now)), ModDate=pikepdf.String(_pdf_date(now)))
    if title:
        info.Title = pikepdf.String(title)
    if author:
        info.Author = pikepdf.String(author)
    if subject:
        info.Subject = pikepdf.String(subject)
    pdf.trailer.Info = pdf.make_indirect(info)
    meta = pikepdf.Stream(pdf, _xmp(title, author, subject, now))  # uncompressed: PDF/A readers and fido see it
    meta.Type = pikepdf.Name.Metadata
    meta.Subtype = pikepdf.Name.XML
    pdf.Root.Metadata = pdf.make_indirect(meta)
    icc = _srgb_icc()
    pdf.Root.OutputIntents = [pdf.make_indirect(pikepdf.Dictionary(
        Type=pikepdf.Name.OutputIntent, S=pikepdf.Name.GTS_PDFA1,
        OutputConditionIdentifier=pikepdf.String("sRGB IEC61966-2.1"), Info=pikepdf.String("sRGB IEC61966-2.1"),
        RegistryName=pikepdf.String("http://www.color.org"),
        DestOutputProfile=pdf.make_indirect(_flate(pdf, icc, N=3)),
    ))]
    pdf.Root.Lang = pikepdf.String("zh-CN")
    pdf.save(out, compress_streams=False, stream_decode_level=pikepdf.StreamDecodeLevel.none,
             object_stream_mode=pikepdf.ObjectStreamMode.disable, min_version="1.7", linearize=False)


__all__ = ["searchable_pdf", "font_path", "FONT_MISSING"]
