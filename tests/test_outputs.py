"""Printed outputs: 归档文件目录 (xlsx/PDF), 归档章 (PNG/PDF/stamped copy), 案卷封面, 卷内目录, 备考表.

Renders are saved to tests/artifacts/ (PDF + PNG of the first pages) for a human look.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pikepdf
import pypdfium2 as pdfium
import pytest
from openpyxl import load_workbook
from PIL import Image, ImageChops

from dangan.errors import ValidationFailed
from dangan.outputs import OutputError, fonts
from dangan.outputs import catalogue as catalogue_module
from dangan.outputs._render import date_span, ymd
from dangan.outputs.catalogue import DEFAULT_COLUMNS, catalogue_pdf, catalogue_xlsx
from dangan.outputs.stamp import stamp_pdf, stamp_pdf_copy, stamp_png
from dangan.outputs.volume import page_numbers, volume_contents_pdf, volume_cover_pdf, volume_notes_pdf

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
if not CORPUS.is_dir():  # CI clones the repo with shared/ beside it
    CORPUS = Path(os.environ.get("DANGAN_CORPUS", "../shared/corpus")).resolve()
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
MM = 72 / 25.4

HEADING = {
    "fonds_code": "Z109",
    "fonds_name": "示范市人民政府办公室",
    "category": "文书",
    "year": "2024",
    "retention": "永久",
    "department": "办公室",
}
NASTY = "关于<script>alert(1)</script> & 《档案法》学习情况的报告"
TITLES = [
    "关于印发《示范市2024年度档案工作要点》的通知",
    "示范市人民政府办公室关于做好2024年春节期间安全生产工作的紧急通知",
    "2024年第一次常务会议纪要",
    NASTY,
]
STAMP = {"fonds_code": "Z109", "year": 2024, "seq": 7, "department": "办公室", "retention": "永久", "pages": 12}


def catalogue_rows(n: int) -> Iterator[dict[str, Any]]:
    for i in range(1, n + 1):
        yield {
            "seq": i,
            "archival_code": f"Z109-WS·2024-Y-BGS-{i:04d}",
            "doc_number": f"示府办发〔2024〕{i}号",
            "responsible": "示范市人民政府办公室",
            "title": TITLES[i % 4],
            # date objects and ISO strings alike are printed as 8 digits
            "date": dt.date(2024, 3, 5) if i % 2 else "2024-03-05",
            "security_level": "",
            "pages": 1 + i % 9,
            "remarks": "",
        }


# ------------------------------------------------------------------------------------------- helpers


def page_texts(pdf: bytes) -> list[str]:
    doc = pdfium.PdfDocument(pdf)
    try:
        return [doc[i].get_textpage().get_text_range() for i in range(len(doc))]
    finally:
        doc.close()


def page_sizes(pdf: bytes) -> list[tuple[float, float]]:
    doc = pdfium.PdfDocument(pdf)
    try:
        return [doc[i].get_size() for i in range(len(doc))]
    finally:
        doc.close()


def render(pdf: bytes, page: int = 0, scale: float = 1.0) -> Image.Image:
    doc = pdfium.PdfDocument(pdf)
    try:
        return doc[page].render(scale=scale).to_pil().convert("RGB")
    finally:
        doc.close()


def save_artifact(name: str, pdf: bytes, pages: int = 2) -> None:
    """Keep the PDF and PNGs of its first pages for a human look (tests/artifacts is git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"{name}.pdf").write_bytes(pdf)
    doc = pdfium.PdfDocument(pdf)
    try:
        for i in range(min(pages, len(doc))):
            doc[i].render(scale=1.5).to_pil().save(ARTIFACTS / f"{name}-{i + 1}.png")
    finally:
        doc.close()


def assert_fonts_embedded(pdf: bytes) -> None:
    """Every font on every page carries its font program: otherwise Chinese prints as empty boxes."""
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        seen = 0
        for page in doc.pages:
            for font in _fonts(page.obj.get("/Resources")):
                seen += 1
                desc_fonts = font.get("/DescendantFonts")
                target = desc_fonts[0] if desc_fonts is not None else font
                descriptor = target.get("/FontDescriptor")
                assert descriptor is not None, f"font {font.get('/BaseFont')} has no descriptor"
                assert any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")), (
                    f"font {font.get('/BaseFont')} is not embedded"
                )
        assert seen > 0


def _fonts(resources: Any, depth: int = 0) -> Iterator[Any]:
    if resources is None or depth > 5:
        return
    yield from (resources.get("/Font") or {}).values()
    for xobj in (resources.get("/XObject") or {}).values():
        if xobj.get("/Subtype") == "/Form":
            yield from _fonts(xobj.get("/Resources"), depth + 1)


def red_mask(img: Image.Image) -> Image.Image:
    """255 where a pixel is the stamp's red (#C00000, opaque), 0 elsewhere."""
    rgba = img.convert("RGBA")
    r, g, b, a = rgba.split()
    masks = [
        r.point(lambda v: 255 if v > 140 else 0),
        g.point(lambda v: 255 if v < 90 else 0),
        b.point(lambda v: 255 if v < 90 else 0),
        a.point(lambda v: 255 if v > 200 else 0),
    ]
    out = masks[0]
    for m in masks[1:]:
        out = ImageChops.multiply(out, m)
    return out


def red_bbox(img: Image.Image) -> tuple[int, int, int, int] | None:
    """Bounding box of the stamp's red pixels."""
    return red_mask(img).getbbox()


def red_pixels(img: Image.Image) -> int:
    return red_mask(img).histogram()[255]


def corpus(name: str) -> Path:
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"corpus file {name} not available")
    return path


# --------------------------------------------------------------------------------------------- fonts


def test_cjk_font_found_and_cached() -> None:
    font = fonts.cjk_font()
    assert "CJK" in font.body.family or "WenQuanYi" in font.body.family or "AR PL" in font.body.family
    assert Path(font.body.file).is_file()
    assert fonts.cjk_font() is font


def test_font_preference_order() -> None:
    listing = (
        "/f/wqy-zenhei.ttc\t0\t文泉驿正黑,WenQuanYi Zen Hei\tRegular\n"
        "/f/NotoSansCJK-Regular.ttc\t2\tNoto Sans CJK SC\tRegular\n"
        "/f/NotoSerifCJK-Bold.ttc\t2\tNoto Serif CJK SC\tBold\n"
        "/f/NotoSerifCJK-Regular.ttc\t2\tNoto Serif CJK SC\tRegular\n"
    )
    font = fonts.pick_font(listing)
    assert font is not None
    assert (font.body.family, font.body.file, font.body.index) == (
        "Noto Serif CJK SC", "/f/NotoSerifCJK-Regular.ttc", 2)
    assert font.bold.file == "/f/NotoSerifCJK-Bold.ttc"
    assert font.heading.family == "Noto Sans CJK SC"
    only_wqy = fonts.pick_font(listing.splitlines()[0])
    assert only_wqy is not None and only_wqy.body.family == "WenQuanYi Zen Hei"
    assert fonts.pick_font("") is None


def test_missing_cjk_font_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a Chinese font WeasyPrint would print empty boxes: every PDF output refuses instead."""
    monkeypatch.setattr(fonts, "_run_fc_list", lambda: "")
    fonts._cached.cache_clear()
    try:
        with pytest.raises(OutputError) as e:
            catalogue_pdf(heading=HEADING, columns=DEFAULT_COLUMNS, rows=[])
        assert e.value.code == "CJK_FONT_MISSING"
        assert e.value.status == 500
        assert "apt-get install fonts-noto-cjk" in e.value.message
        for fn in (lambda: volume_cover_pdf({}), lambda: stamp_png(STAMP), lambda: stamp_pdf(STAMP)):
            with pytest.raises(OutputError):
                fn()
    finally:
        monkeypatch.undo()
        fonts._cached.cache_clear()
    assert fonts.cjk_font()


# ---------------------------------------------------------------------------------------- formatting


def test_dates_print_as_eight_digits() -> None:
    assert ymd(dt.date(2024, 3, 5)) == "20240305"
    assert ymd(dt.datetime(2024, 3, 5, 14, 30)) == "20240305"
    assert ymd("2024-03-05") == "20240305"
    assert ymd("2024-03-05T09:00:00+08:00") == "20240305"
    assert ymd("20240305") == "20240305"
    assert ymd("2024-03") == "202403"
    assert ymd("2024") == "2024"
    assert ymd(None) == ""
    assert date_span("2024-01-05", dt.date(2024, 12, 20)) == "20240105—20241220"
    assert date_span("2024-01-05", None) == "20240105"


# ------------------------------------------------------------------------------------ catalogue PDF

CATALOGUE_ROWS = 120  # WeasyPrint lays out ~150 rows/s: 2,000 rows would take ~15 s on their own


@pytest.fixture(scope="module")
def catalogue() -> bytes:
    pdf = catalogue_pdf(heading=HEADING, columns=DEFAULT_COLUMNS, rows=catalogue_rows(CATALOGUE_ROWS))
    save_artifact("catalogue", pdf)
    return pdf


def test_catalogue_pdf_is_a4_landscape_with_embedded_font(catalogue: bytes) -> None:
    sizes = page_sizes(catalogue)
    for w, h in sizes:
        assert abs(w - 842) <= 1 and abs(h - 595) <= 1
    assert_fonts_embedded(catalogue)


def test_catalogue_pdf_every_page_has_title_heading_header_row_and_footer(catalogue: bytes) -> None:
    texts = page_texts(catalogue)
    assert len(texts) >= 5, "a few hundred documents span several pages"
    for i, t in enumerate(texts, 1):
        assert "归档文件目录" in t
        assert "全宗号：Z109" in t and "全宗名称：示范市人民政府办公室" in t and "保管期限：永久" in t
        header = "序号 档号 文号 责任者 题名 日期 密级 页数 备注"
        assert header in t, f"page {i} lacks the column header row"
        assert f"第 {i} 页 共 {len(texts)} 页" in t


def test_catalogue_pdf_rows_values_and_escaping(catalogue: bytes) -> None:
    texts = page_texts(catalogue)
    everything = "\n".join(texts)
    assert "Z109-WS·2024-Y-BGS-0001" in texts[0]
    assert "示府办发〔2024〕1号" in texts[0]
    assert "20240305" in texts[0] and "2024-03-05" not in everything
    for i in range(1, CATALOGUE_ROWS + 1):  # every row printed exactly once, none lost at page breaks
        assert everything.count(f"Z109-WS·2024-Y-BGS-{i:04d}") == 1
    assert "<script>alert(1)</script> & 《档案法》" in everything.replace("\r\n", "")
    assert "&amp;" not in everything and "&lt;" not in everything


def test_large_catalogue_pdf_is_laid_out_in_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above CHUNK_ROWS rows the parts are joined and numbered afterwards: same header, footer and rows."""
    monkeypatch.setattr(catalogue_module, "CHUNK_ROWS", 40)
    pdf = catalogue_pdf(heading=HEADING, columns=DEFAULT_COLUMNS, rows=catalogue_rows(90))
    save_artifact("catalogue-in-parts", pdf, pages=0)
    texts = page_texts(pdf)
    assert len(texts) >= 6
    for i, t in enumerate(texts, 1):
        assert "归档文件目录" in t and "序号 档号 文号 责任者 题名 日期 密级 页数 备注" in t
        assert t.count("第 ") == 1 and f"第 {i} 页 共 {len(texts)} 页" in t
    everything = "\n".join(texts)
    for i in range(1, 91):
        assert everything.count(f"Z109-WS·2024-Y-BGS-{i:04d}") == 1
    for w, h in page_sizes(pdf):
        assert abs(w - 842) <= 1 and abs(h - 595) <= 1
    assert_fonts_embedded(pdf)
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        assert str(doc.docinfo["/Title"]) == "归档文件目录"


# ----------------------------------------------------------------------------------- catalogue xlsx


def test_catalogue_xlsx_round_trip_10000_rows() -> None:
    buf = io.BytesIO()
    n = catalogue_xlsx(buf, heading=HEADING, columns=DEFAULT_COLUMNS, rows=catalogue_rows(10_000))
    assert n == 10_000
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "catalogue.xlsx").write_bytes(buf.getvalue())
    wb = load_workbook(io.BytesIO(buf.getvalue()), read_only=True)
    assert wb.sheetnames == ["归档文件目录"]
    rows = list(wb["归档文件目录"].iter_rows(values_only=True))
    assert rows[0][0] == "归档文件目录"
    assert "全宗号：Z109" in rows[1][0] and "机构（问题）：办公室" in rows[1][0]
    assert list(rows[2]) == [label for _, label in DEFAULT_COLUMNS]
    assert len(rows) == 3 + 10_000
    first = dict(zip([code for code, _ in DEFAULT_COLUMNS], rows[3], strict=True))
    assert first["seq"] == 1 and first["pages"] == 2
    assert first["archival_code"] == "Z109-WS·2024-Y-BGS-0001"
    assert first["date"] == "20240305"  # text, as printed catalogues write it
    assert rows[4][5] == "20240305"  # an ISO string too
    assert rows[-1][1] == "Z109-WS·2024-Y-BGS-10000"
    assert rows[3 + 2][4] == NASTY  # the third document, escaped nowhere


def test_catalogue_xlsx_layout_and_safety() -> None:
    buf = io.BytesIO()
    rows = [
        {"seq": 1, "title": '=HYPERLINK("http://evil","点我")', "date": "2024-03-05", "remarks": "a\x00b\x07c"},
        {"seq": 2, "title": "会议纪要", "date": None, "pages": None},
    ]
    assert catalogue_xlsx(buf, heading={"全宗号": "Z109", "年度": "2024"}, columns=DEFAULT_COLUMNS, rows=rows) == 2
    wb = load_workbook(io.BytesIO(buf.getvalue()))
    ws = wb["归档文件目录"]
    assert ws["A2"].value == "全宗号：Z109\u3000\u3000年度：2024"  # ready labels are used as given
    formula = ws["E4"]
    assert formula.data_type == "s" and formula.value.startswith("=HYPERLINK")  # text, not a formula
    assert ws["I4"].value == "abc"  # control characters Excel rejects are dropped
    assert ws.freeze_panes == "A4"
    assert ws.print_title_rows == "$1:$3"
    assert ws.page_setup.orientation == "landscape"
    assert "A1:I1" in {str(r) for r in ws.merged_cells.ranges}
    assert ws.column_dimensions["E"].width > max(ws.column_dimensions[c].width for c in "ACDFGHI")
    assert ws["E4"].alignment.wrap_text and ws["B4"].border.left.style == "thin"


# ---------------------------------------------------------------------------------------------- stamp


def test_stamp_png_size_and_colour() -> None:
    png = stamp_png(STAMP)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "stamp.png").write_bytes(png)
    (ARTIFACTS / "stamp-blank.png").write_bytes(stamp_png({}, with_labels=True, transparent=False))
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG"
    assert img.size == (531, 189)  # 45 mm × 16 mm at 300 dpi
    assert round(img.info["dpi"][0]) == 300
    rgba = img.convert("RGBA")
    assert rgba.getpixel((1, 1)) == (0xC0, 0, 0, 255)  # the red frame
    assert rgba.getpixel((40, 12))[3] == 0  # transparent inside a cell, away from text
    assert red_bbox(rgba.convert("RGB")) is not None
    assert red_pixels(rgba) > 5000
    assert Image.open(io.BytesIO(stamp_png(STAMP, dpi=600))).size == (1063, 378)
    with pytest.raises(ValidationFailed) as e:
        stamp_png(STAMP, dpi=5)
    assert e.value.code == "STAMP_DPI_INVALID"


def test_stamp_png_long_values_stay_inside_their_cell() -> None:
    long = {**STAMP, "department": "人力资源和社会保障科", "retention": "定期30年"}
    img = Image.open(io.BytesIO(stamp_png(long, transparent=False))).convert("RGB")
    (ARTIFACTS / "stamp-long.png").write_bytes(stamp_png(long, transparent=False))
    # the 机构（问题）cell is x 0-177, y 94-189: text must leave a white gap before the first inner line
    column = [img.getpixel((171, y)) for y in range(100, 180)]
    assert all(p == (255, 255, 255) for p in column)


def test_stamp_pdf_is_45_by_16_mm_vector_with_text() -> None:
    pdf = stamp_pdf(STAMP)
    save_artifact("stamp", pdf, pages=1)
    (w, h), = page_sizes(pdf)
    assert abs(w - 45 * MM) < 0.5 and abs(h - 16 * MM) < 0.5
    text = page_texts(pdf)[0]
    for value in ("Z109", "2024", "0007", "办公室", "永久", "12"):
        assert value in text
    assert_fonts_embedded(pdf)
    labelled = page_texts(stamp_pdf({}, with_labels=True))[0]
    for label in ("全宗号", "年度", "件号", "机构（问题）", "保管期限", "页数"):
        assert label in labelled


def _stamp(path: Path, values: dict[str, Any] = STAMP) -> bytes:
    out = io.BytesIO()
    with path.open("rb") as f:
        stamp_pdf_copy(f, values, out)
    return out.getvalue()


def test_stamp_copy_of_word_pdf_leaves_original_untouched() -> None:
    src = corpus("pdf/chinese-word-contract-simsun.pdf")
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    with src.open("rb") as f:
        out = io.BytesIO()
        stamp_pdf_copy(f, STAMP, out)
    copy = out.getvalue()
    save_artifact("stamped-word-contract", copy, pages=1)
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before
    assert len(page_texts(copy)) == 1
    text = page_texts(copy)[0]
    assert "甲方：中国饮料有限公司" in text  # the document's own text is still there
    for value in ("Z109", "2024", "0007", "办公室", "永久"):
        assert value in text
    assert_fonts_embedded(copy)


def test_stamp_copy_only_changes_the_first_page() -> None:
    src = corpus("pdf/signed-acrobat-sign-restricted.pdf")  # 2 pages, owner-restricted, signed
    original = src.read_bytes()
    copy = _stamp(src)
    save_artifact("stamped-signed", copy, pages=1)
    before, after = page_texts(original), page_texts(copy)
    assert len(after) == len(before) == 2
    assert "0007" in after[0] and "0007" not in before[0]
    assert after[1] == before[1]
    with pikepdf.open(io.BytesIO(original)) as a, pikepdf.open(io.BytesIO(copy)) as b:
        assert a.pages[1].obj.Contents.read_bytes() == b.pages[1].obj.Contents.read_bytes()
    assert render(copy, 1).tobytes() == render(original, 1).tobytes()


def _blank_pdf(rotate: int, size: tuple[float, float] = (595.28, 841.89)) -> bytes:
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=size)
    if rotate:
        pdf.pages[0].obj.Rotate = rotate
    buf = io.BytesIO()
    pdf.save(buf)
    return buf.getvalue()


@pytest.mark.parametrize("rotate", [0, 90, 180, 270])
def test_stamp_sits_upright_in_the_top_right_corner(rotate: int) -> None:
    out = io.BytesIO()
    stamp_pdf_copy(io.BytesIO(_blank_pdf(rotate)), STAMP, out)
    img = render(out.getvalue(), scale=2.0)
    if rotate == 90:
        img.save(ARTIFACTS / "stamped-rotated-90.png")
    box = red_bbox(img)
    assert box is not None
    px = 2.0 * MM  # pixels per mm
    left, top, right, bottom = box
    assert abs((right - left) / px - 45) < 0.6 and abs((bottom - top) / px - 16) < 0.6  # upright, true size
    assert abs((img.width - right) / px - 5) < 0.6 and abs(top / px - 5) < 0.6  # 5 mm from top and right
    text = page_texts(out.getvalue())[0]
    assert "Z109" in text


def test_stamp_avoids_ink_in_the_top_right_corner() -> None:
    """The rotated listing prints "Printed by" in the corner: the stamp moves into blank space below it."""
    src = corpus("pdf/corrupted-zen-of-python.pdf")
    copy = _stamp(src)
    save_artifact("stamped-rotated-listing", copy, pages=1)
    original, stamped = render(src.read_bytes()), render(copy)
    box = red_bbox(stamped)
    assert box is not None
    left, top, right, bottom = box
    assert right > stamped.width * 0.8 and bottom < stamped.height * 0.2  # still top right
    # where the stamp is, the original page was blank
    region = original.crop((left - 2, top - 2, right + 2, bottom + 2)).convert("L")
    assert region.getextrema()[0] > 200


def test_stamp_survives_broken_content_syntax() -> None:
    """Page 1 ends with an unclosed array: appended content would be swallowed, so the stamp must show."""
    src = corpus("pdf/content-stream-errors.pdf")
    copy = _stamp(src)
    texts = page_texts(copy)
    assert len(texts) == 4
    assert "Z109" in texts[0] and "Potato" in texts[0]
    assert red_bbox(render(copy)) is not None


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("pdf/truncated-chinese-word-contract.pdf", "PDF_UNREADABLE"),
        ("pdf/fuzz-malformed.pdf", "PDF_UNREADABLE"),
        ("formats/not-a-pdf-text-named.pdf", "PDF_UNREADABLE"),
        ("formats/zero-byte-with-pdf-extension.pdf", "PDF_UNREADABLE"),
        ("pdf/encrypted-userpw-user.pdf", "PDF_ENCRYPTED"),
        ("pdf/encrypted-aes256-r6.pdf", "PDF_ENCRYPTED"),
    ],
)
def test_stamp_copy_rejects_bad_pdfs(name: str, code: str) -> None:
    src = corpus(name)
    before = src.read_bytes()
    out = io.BytesIO()
    with pytest.raises(ValidationFailed) as e, src.open("rb") as f:
        stamp_pdf_copy(f, STAMP, out)
    assert e.value.code == code
    assert e.value.status == 422
    assert out.getvalue() == b""  # nothing half-written
    assert src.read_bytes() == before
    if code == "PDF_ENCRYPTED":
        assert e.value.message == "PDF 文件已加密，无法加盖归档章；请提供未加密的版式文件"
    else:
        assert "无法读取该 PDF" in e.value.message


def test_stamp_copy_rejects_non_pdf_bytes() -> None:
    for data in (b"", b"PK\x03\x04 not a pdf", b"\x89PNG\r\n\x1a\n" + b"\0" * 100, b"%PDF-1.7\n garbage"):
        with pytest.raises(ValidationFailed) as e:
            stamp_pdf_copy(io.BytesIO(data), STAMP, io.BytesIO())
        assert e.value.code == "PDF_UNREADABLE"


# --------------------------------------------------------------------------------------------- volume

VOLUME = {
    "archival_code": "Z109-WS·2024-Y-001",
    "fonds_code": "Z109",
    "fonds_name": "示范市人民政府办公室",
    "category_name": "文书·办公室",
    "title": "示范市人民政府办公室2024年关于安全生产工作的通知、会议纪要、请示与批复",
    "start_date": "2024-01-05",
    "end_date": dt.date(2024, 12, 20),
    "retention": "永久",
    "items": 12,
    "pages": 112,
    "security_level": "内部",
    "notes": "本卷文件齐全完整。\n第 3 件附件为彩色图表，已另行扫描。",
    "compiler": "张晓梅",
    "compiled_on": "2025-03-05",
    "checker": "李建国",
    "checked_on": dt.date(2025, 3, 10),
    "cross_reference": "Z109-ZP·2024-Y-003",
}


def volume_items(n: int) -> list[dict[str, Any]]:
    return [
        {
            "doc_number": f"示府办发〔2024〕{i}号",
            "responsible": "示范市人民政府办公室",
            "title": TITLES[i % 4],
            "date": dt.date(2024, 1 + i % 12, 1 + i % 28),
            "pages": 1 + (i * 7) % 9,
        }
        for i in range(1, n + 1)
    ]


def assert_a4_portrait(pdf: bytes) -> None:
    for w, h in page_sizes(pdf):
        assert abs(w - 595) <= 1 and abs(h - 842) <= 1


def test_volume_cover() -> None:
    pdf = volume_cover_pdf({**VOLUME, "title": VOLUME["title"] + NASTY})
    save_artifact("volume-cover", pdf, pages=1)
    assert_a4_portrait(pdf)
    assert_fonts_embedded(pdf)
    texts = page_texts(pdf)
    assert len(texts) == 1
    text = texts[0].replace("\r\n", "")
    for expected in ("Z109-WS·2024-Y-001", "示范市人民政府办公室", "文书·办公室", "安全生产工作的通知",
                     "20240105—20241220", "永久", "内部", "12 件", "112 页", "（案卷题名）", "档号", "全宗号"):
        assert expected in text, expected
    assert "<script>alert(1)</script> & 《档案法》" in text


def test_volume_contents_repeats_header_and_numbers_pages() -> None:
    items = volume_items(45)
    pdf = volume_contents_pdf(VOLUME, items)
    save_artifact("volume-contents", pdf)
    assert_a4_portrait(pdf)
    assert_fonts_embedded(pdf)
    texts = page_texts(pdf)
    assert len(texts) >= 2
    for i, t in enumerate(texts, 1):
        assert "卷内目录" in t and "档号：Z109-WS·2024-Y-001" in t
        assert "序号 文件编号 责任者 题名 日期 页号 备注" in t
        assert f"第 {i} 页 共 {len(texts)} 页" in t
    everything = "\n".join(texts)
    numbers = list(page_numbers(items))
    assert numbers[:3] == ["1-8", "9-14", "15-18"]
    for n in numbers:
        assert n in everything


def test_page_numbers() -> None:
    items = [{"pages": 5}, {"pages": 1}, {"pages": 0}, {"pages": "3"}, {"page_range": "20-22"}, {"pages": 2},
             {"start_page": 30, "pages": 4}, {"pages": 1}]
    assert list(page_numbers(items)) == ["1-5", "6", "", "7-9", "20-22", "23-24", "30-33", "34"]


def test_volume_notes() -> None:
    pdf = volume_notes_pdf(VOLUME)
    save_artifact("volume-notes", pdf, pages=1)
    assert_a4_portrait(pdf)
    assert_fonts_embedded(pdf)
    texts = page_texts(pdf)
    assert len(texts) == 1
    text = texts[0]
    for expected in ("卷内备考表", "本卷情况说明", "本卷共 12 件，112 页。", "本卷文件齐全完整。", "第 3 件附件",
                     "立卷人", "张晓梅", "立卷时间", "20250305", "检查人", "李建国", "检查时间", "20250310",
                     "互见号", "Z109-ZP·2024-Y-003", "Z109-WS·2024-Y-001"):
        assert expected in text, expected
    # the summary is not repeated when the notes already give it
    again = page_texts(volume_notes_pdf({**VOLUME, "notes": "本卷共 12 件，112 页。缺第 5 件。"}))[0]
    assert again.count("本卷共") == 1
