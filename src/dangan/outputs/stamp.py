"""归档章 (DA/T 22-2015 §9.2, 附录 A 图 A.1): the red filing stamp put on a document's first page.

Two rows of three cells, each 15 mm × 8 mm (45 mm × 16 mm overall)::

    ┌────────────┬──────────┬──────┐
    │ 全宗号      │ 年度      │ 件号  │
    ├────────────┼──────────┼──────┤
    │ 机构（问题） │ 保管期限  │ 页数  │
    └────────────┴──────────┴──────┘

The stamp shows the values only; `with_labels=True` adds a small label at the top of each cell (with empty
values this is the blank stamp to print and fill in by hand).

values keys: fonds_code 全宗号, year 年度, seq 件号 (an int is printed with 4 digits: 7 → 0007),
department 机构（问题）(name or code), retention 保管期限 (永久 / 30年 / 10年), pages 页数.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from dangan.errors import ValidationFailed
from dangan.outputs._render import render_pdf, text
from dangan.outputs.fonts import cjk_font

RED = "#C00000"
CELL_W_MM = 15.0
CELL_H_MM = 8.0
WIDTH_MM = 3 * CELL_W_MM
HEIGHT_MM = 2 * CELL_H_MM
OUTER_LINE_MM = 0.45
INNER_LINE_MM = 0.3
MARGIN_MM = 5.0  # distance from the top and right edges of the page in stamp_pdf_copy
PT_PER_MM = 72 / 25.4

# (key, label) in reading order: top row then bottom row.
CELLS: tuple[tuple[str, str], ...] = (
    ("fonds_code", "全宗号"),
    ("year", "年度"),
    ("seq", "件号"),
    ("department", "机构（问题）"),
    ("retention", "保管期限"),
    ("pages", "页数"),
)

_VALUE_MAX_MM = 3.7  # cap height of a value (≈ 10.5 pt)
_VALUE_MAX_LABELLED_MM = 3.0
_LABEL_MM = 1.75
_PAD_MM = 0.8  # left/right padding inside a cell
_LABEL_TOP_MM = 0.75  # from the cell's top edge to the top of its label


@dataclass(frozen=True)
class CellLayout:
    """Where and how big one cell's text is drawn (millimetres from the stamp's top-left corner)."""

    x: float
    y: float
    label: str
    lines: tuple[str, ...]
    size: float  # font size of the value, mm
    label_size: float  # 0 when labels are not drawn


def stamp_values(values: Mapping[str, Any]) -> dict[str, str]:
    """The six printed strings; 件号 given as an int is zero-padded to 4 digits as in the 档号."""
    out = {}
    for key, _ in CELLS:
        v = values.get(key)
        if key == "seq" and isinstance(v, int) and not isinstance(v, bool):
            out[key] = f"{v:04d}"
        else:
            out[key] = text(v).strip()
    return out


@functools.cache
def _measure_font() -> Any:
    from PIL import ImageFont

    f = cjk_font().body
    return ImageFont.truetype(f.file, 100, index=f.index)


def _text_mm(s: str, size_mm: float) -> float:
    """Advance width of `s` in mm at font size `size_mm`, measured with the real font."""
    return _measure_font().getlength(s) / 100 * size_mm


def _fit(value: str, max_mm: float, avail_h: float) -> tuple[tuple[str, ...], float]:
    """Lines and font size so the value fits the cell: shrink first, break into two lines if it gets small."""
    if not value:
        return (), max_mm
    avail_w = CELL_W_MM - 2 * _PAD_MM
    one = min(max_mm, avail_w / max(_text_mm(value, 1), 1e-6))
    if one >= 2.4 or len(value) < 4:
        return (value,), max(one, 1.2)
    half = (len(value) + 1) // 2
    lines = (value[:half], value[half:])
    widest = max(_text_mm(line, 1) for line in lines)
    two = min(max_mm * 0.85, avail_h / 2 / 1.15, avail_w / max(widest, 1e-6))
    return (lines, two) if two > one else ((value,), one)


def stamp_layout(values: Mapping[str, Any], *, with_labels: bool = False) -> list[CellLayout]:
    """The layout shared by the PNG and the PDF stamp."""
    printed = stamp_values(values)
    cells = []
    for i, (key, label) in enumerate(CELLS):
        x, y = (i % 3) * CELL_W_MM, (i // 3) * CELL_H_MM
        if with_labels:
            lines, size = _fit(printed[key], _VALUE_MAX_LABELLED_MM, CELL_H_MM - _LABEL_MM - 1.2)
            cells.append(CellLayout(x, y, label, lines, size, _LABEL_MM))
        else:
            lines, size = _fit(printed[key], _VALUE_MAX_MM, CELL_H_MM - 1)
            cells.append(CellLayout(x, y, label, lines, size, 0.0))
    return cells


def _value_centre_y(c: CellLayout) -> float:
    """Vertical centre of the value: the cell's middle, or the middle of the space under the label."""
    if c.label_size:
        top = c.y + _LABEL_TOP_MM + c.label_size * 1.2
        return (top + c.y + CELL_H_MM) / 2
    return c.y + CELL_H_MM / 2


# ----------------------------------------------------------------------------------------------- PNG


def stamp_png(values: Mapping[str, Any], dpi: int = 300, *, with_labels: bool = False,
              transparent: bool = True) -> bytes:
    """The 归档章 as a PNG of 45 mm × 16 mm at `dpi` (531 × 189 pixels at 300 dpi), red #C00000 lines and
    text on a transparent (or white) background; the PNG records its dpi so it prints at true size."""
    from PIL import Image, ImageDraw, ImageFont

    if not 50 <= dpi <= 2400:
        raise ValidationFailed("分辨率应在 50 到 2400 dpi 之间", code="STAMP_DPI_INVALID")
    font_face, label_face = cjk_font().body, cjk_font().heading
    px = dpi / 25.4
    w, h = round(WIDTH_MM * px), round(HEIGHT_MM * px)
    img = Image.new("RGBA", (w, h), (255, 255, 255, 0 if transparent else 255))
    draw = ImageDraw.Draw(img)
    red = (0xC0, 0x00, 0x00, 255)
    outer = max(1, round(OUTER_LINE_MM * px))
    inner = max(1, round(INNER_LINE_MM * px))
    draw.rectangle([0, 0, w - 1, h - 1], outline=red, width=outer)
    for k in (1, 2):
        x = round(k * CELL_W_MM * px) - inner // 2
        draw.rectangle([x, 0, x + inner - 1, h - 1], fill=red)
    y = round(CELL_H_MM * px) - inner // 2
    draw.rectangle([0, y, w - 1, y + inner - 1], fill=red)

    @functools.cache
    def font(size_mm: float, label: bool = False) -> Any:
        face = label_face if label else font_face
        return ImageFont.truetype(face.file, max(1, round(size_mm * px)), index=face.index)

    for c in stamp_layout(values, with_labels=with_labels):
        cx = (c.x + CELL_W_MM / 2) * px
        if c.label_size:
            label_font = font(c.label_size, True)
            draw.text((cx, (c.y + _LABEL_TOP_MM) * px), c.label, font=label_font, fill=red, anchor="mt")
        if c.lines:
            line_h = c.size * 1.15
            top = _value_centre_y(c) - line_h * len(c.lines) / 2
            for n, line in enumerate(c.lines):
                cy = (top + line_h * (n + 0.5)) * px
                draw.text((cx, cy), line, font=font(c.size), fill=red, anchor="mm")
    buf = io.BytesIO()
    img.save(buf, format="PNG", dpi=(dpi, dpi))
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------- PDF

STAMP_HTML = """{% extends "base.html" %}
{% block css %}
body { color: {{ red }}; }
.stamp { position: relative; width: {{ w }}mm; height: {{ h }}mm; }
.rule { position: absolute; background: {{ red }}; }
.frame { position: absolute; left: 0; top: 0; width: {{ w }}mm; height: {{ h }}mm;
         box-sizing: border-box; border: {{ outer }}mm solid {{ red }}; }
.label, .value { position: absolute; width: {{ cw }}mm; text-align: center; white-space: nowrap; }
.label { font-family: {{ css_heading }}; }
{% endblock %}
{% block body %}
<div class="stamp">
<div class="frame"></div>
{% for x, y, w, h in rules %}
<div class="rule" style="left: {{ x }}mm; top: {{ y }}mm; width: {{ w }}mm; height: {{ h }}mm"></div>
{% endfor %}
{% for c in cells %}
{% if c.label_size %}
<div class="label" style="left: {{ c.x }}mm; top: {{ c.label_top }}mm;
  font-size: {{ c.label_size }}mm; line-height: {{ c.label_size * 1.2 }}mm">{{ c.label }}</div>
{% endif %}
{% for line in c.lines %}
<div class="value" style="left: {{ c.x }}mm; top: {{ c.tops[loop.index0] }}mm;
  font-size: {{ c.size }}mm; line-height: {{ c.line_h }}mm">{{ line }}</div>
{% endfor %}
{% endfor %}
</div>
{% endblock %}
"""


def stamp_pdf(values: Mapping[str, Any], *, with_labels: bool = False) -> bytes:
    """The 归档章 as a one-page vector PDF whose page is exactly the stamp, 45 mm × 16 mm (not an A4 sheet):
    print it at 100 % scale, or place it on a page (stamp_pdf_copy does). Text stays searchable."""
    cells = []
    for c in stamp_layout(values, with_labels=with_labels):
        line_h = round(c.size * 1.15, 3)
        top = _value_centre_y(c) - line_h * len(c.lines) / 2
        cells.append({
            "x": c.x,
            "label": c.label,
            "label_size": c.label_size,
            "label_top": round(c.y + _LABEL_TOP_MM - 0.1 * c.label_size, 3),  # less the line box's leading
            "lines": c.lines,
            "size": round(c.size, 3),
            "line_h": line_h,
            "tops": [round(top + line_h * n, 3) for n in range(len(c.lines))],
        })
    half = INNER_LINE_MM / 2
    rules = [(k * CELL_W_MM - half, 0, INNER_LINE_MM, HEIGHT_MM) for k in (1, 2)]
    rules.append((0, CELL_H_MM - half, WIDTH_MM, INNER_LINE_MM))
    return render_pdf(
        STAMP_HTML,
        doc_title="归档章",
        page_size=f"{WIDTH_MM}mm {HEIGHT_MM}mm",
        page_margin="0",
        footer=False,
        red=RED,
        w=WIDTH_MM,
        h=HEIGHT_MM,
        cw=CELL_W_MM,
        outer=OUTER_LINE_MM,
        rules=rules,
        cells=cells,
    )


# ------------------------------------------------------------------------------------ stamping a copy

UNREADABLE = "无法读取该 PDF 文件（文件不是 PDF 或已损坏），无法加盖归档章；请检查文件后重新上传"
ENCRYPTED = "PDF 文件已加密，无法加盖归档章；请提供未加密的版式文件"


def _inherited(page: Any, key: str) -> Any:
    """A page attribute that may be inherited from the page tree (/Rotate, /UserUnit is not inheritable)."""
    node, depth = page, 0
    while node is not None and depth < 64:
        if key in node:
            return node[key]
        node = node.get("/Parent")
        depth += 1
    return None


def _placement(box: tuple[float, float, float, float], rotate: int, u0: float, v0: float,
               ) -> tuple[float, float, float, float, float, float]:
    """The matrix that draws the stamp with its lower-left corner at (u0, v0), measured in points from the
    bottom-left corner of the page as displayed (rotated `rotate` degrees clockwise), reading upright."""
    x0, y0, x1, y1 = box
    if rotate == 90:
        return (0, 1, -1, 0, x1 - v0, y0 + u0)
    if rotate == 180:
        return (-1, 0, 0, -1, x1 - u0, y1 - v0)
    if rotate == 270:
        return (0, -1, 1, 0, x0 + v0, y1 - u0)
    return (1, 0, 0, 1, x0 + u0, y0 + v0)


def _blank_spot(data: bytes, vw: float, vh: float, w: float, h: float, margin: float) -> tuple[float, float]:
    """Where to put the stamp, as (left, top) in points from the displayed page's top-left corner.

    DA/T 22-2015 §9.2 asks for a blank area at the top, centred or on the right. The first page is rendered
    (pdfium) and candidate spots are tried from the top down, right before centre, in 3 mm steps down to
    35 mm; the first without ink wins. When none is blank, or the page cannot be rendered, top right.
    """
    default = (max(vw - margin - w, 0.0), margin)
    try:
        import pypdfium2 as pdfium

        from dangan.formats.pdfium_lock import PDFIUM

        with PDFIUM:
            doc = pdfium.PdfDocument(data)
            try:
                img = doc[0].render(scale=1.0, grayscale=True).to_pil().convert("L")
            finally:
                doc.close()
    except Exception:  # pdfium is stricter than qpdf on some damaged files: keep the default spot
        return default
    sx, sy = img.width / vw, img.height / vh
    step = 3 * PT_PER_MM
    pad = 1.5 * PT_PER_MM  # the stamp must also keep clear of ink just next to it
    lefts = [default[0], max((vw - w) / 2, 0.0)]
    top = margin
    while top + h <= min(35 * PT_PER_MM + h, vh):
        for left in lefts:
            area = img.crop((
                round((left - pad) * sx), round((top - pad) * sy),
                round((left + w + pad) * sx), round((top + h + pad) * sy),
            ))
            hist = area.histogram()
            dark = sum(hist[:200])
            if dark <= max(2, 0.0005 * area.width * area.height):
                return left, top
        top += step
    return default


def _content_is_clean(pdf: Any, page: Any) -> bool:
    """Whether the page's content stream parses without errors (an unclosed array would swallow the stamp)."""
    import pikepdf

    before = len(pdf.get_warnings())
    try:
        pikepdf.parse_content_stream(page)
    except pikepdf.PdfError:
        return False
    return len(pdf.get_warnings()) == before


def stamp_pdf_copy(original: BinaryIO, values: Mapping[str, Any], out: BinaryIO) -> None:
    """Write to `out` a copy of the PDF read from `original` with the 归档章 drawn on its first page.

    The stamp goes in the top-right blank area (DA/T 22-2015 §9.2: 首页上端居中或右上方空白处), 5 mm from
    the top and right edges of the visible page (CropBox), upright however the page is rotated. It is a
    vector overlay (a form XObject appended to the page's content), so the page's own content is left as it
    was and the stamp's text is searchable. Other pages are copied unchanged. `original` is only read.
    A digital signature in the original does not cover the stamped copy.

    Raises ValidationFailed PDF_UNREADABLE (not a PDF, damaged beyond repair, no pages) or PDF_ENCRYPTED
    (a password is needed to open it); nothing is written to `out` then.
    """
    import pikepdf

    data = original.read()
    if b"%PDF-" not in data[:1024]:
        raise ValidationFailed(UNREADABLE, code="PDF_UNREADABLE", message_en="not a PDF file")
    try:
        pdf = pikepdf.open(io.BytesIO(data))
    except pikepdf.PasswordError as e:
        raise ValidationFailed(ENCRYPTED, code="PDF_ENCRYPTED", message_en="PDF needs a password") from e
    except (pikepdf.PdfError, ValueError, OSError) as e:
        raise ValidationFailed(UNREADABLE, code="PDF_UNREADABLE", message_en=f"cannot open PDF: {e}") from e
    buf = io.BytesIO()
    with pdf:
        try:
            pages = len(pdf.pages)
        except pikepdf.PdfError:
            pages = 0
        if pages == 0:
            raise ValidationFailed(UNREADABLE, code="PDF_UNREADABLE", message_en="PDF has no pages")
        stamp_bytes = stamp_pdf(values)
        try:
            _overlay_first_page(pdf, stamp_bytes, data)
            pdf.save(buf, encryption=pdf.is_encrypted or False)  # an owner-password file keeps its limits
        except (pikepdf.PdfError, ValueError, KeyError, TypeError, AttributeError) as e:
            msg = f"cannot stamp PDF: {e}"
            raise ValidationFailed(UNREADABLE, code="PDF_UNREADABLE", message_en=msg) from e
    out.write(buf.getvalue())


def _overlay_first_page(pdf: Any, stamp_bytes: bytes, data: bytes) -> None:
    """Draw the one-page stamp PDF `stamp_bytes` on `pdf`'s first page (see stamp_pdf_copy)."""
    import pikepdf

    with pikepdf.open(io.BytesIO(stamp_bytes)) as stamp:
        page = pdf.pages[0]
        form = stamp.pages[0].as_form_xobject()
        bbox = [float(v) for v in form.BBox]
        cb = [float(v) for v in page.cropbox]
        box = (min(cb[0], cb[2]), min(cb[1], cb[3]), max(cb[0], cb[2]), max(cb[1], cb[3]))
        rotate = int(_inherited(page.obj, "/Rotate") or 0) // 90 % 4 * 90
        unit = float(page.obj.get("/UserUnit", 1) or 1)
        k = 1 / unit if unit > 0 else 1.0  # stamp size in the page's user units
        w, h = (bbox[2] - bbox[0]) * k, (bbox[3] - bbox[1]) * k
        vw, vh = box[2] - box[0], box[3] - box[1]
        if rotate in (90, 270):  # displayed sideways
            vw, vh = vh, vw
        left, top = _blank_spot(data, vw, vh, w, h, MARGIN_MM * PT_PER_MM * k)
        a, b, c, d, e, f = _placement(box, rotate, left, vh - top - h)
        cm = " ".join(f"{v:.4f}".rstrip("0").rstrip(".") for v in (a * k, b * k, c * k, d * k, e, f))
        name = page.add_resource(form, pikepdf.Name.XObject, prefix="DanganStamp")
        draw = f"q {cm} cm {name} Do Q\n".encode()
        if _content_is_clean(pdf, page):
            page.contents_add(b"q\n", prepend=True)
            page.contents_add(b"Q\n" + draw, prepend=False)
        else:
            # Broken syntax in the page's content would swallow anything appended to it: move the content
            # into a form XObject of its own, parsed separately, and draw the stamp after it.
            orig = page.as_form_xobject(handle_transformations=False)
            orig.write(orig.read_bytes())  # QPDF reads the page's content lazily: take it now
            orig_name = page.add_resource(orig, pikepdf.Name.XObject, prefix="DanganPage")
            page.obj.Contents = pdf.make_stream(f"q {orig_name} Do Q\n".encode() + draw)
