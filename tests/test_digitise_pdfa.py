"""Searchable PDF/A-2b access copies (digitise.pdfa): image per page sized by dpi, invisible text layer over
the OCR boxes that pypdfium2 and pdftotext extract, embedded CJK font subset, PDF/A-2b metadata and sRGB
output intent, bad input. No OCR runs here: the OcrPages are built by hand over text drawn with Pillow."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import pikepdf
import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageDraw, ImageFont, ImageOps

from conftest import IN_CI
from dangan.digitise import pdfa
from dangan.digitise.ocr import OcrLine, OcrPage
from dangan.digitise.pdfa import searchable_pdf
from dangan.errors import ConfigError, ValidationFailed
from dangan.formats.identify import identify_file

TITLE = "关于做好2024年度档案归档工作的通知"
LINES = ["关于做好2024年度档案归档工作的通知", "各县区人民政府，市政府各部门：", "二〇二四年三月五日"]


def squash(s: str) -> str:
    return re.sub(r"\s+", "", s)


def font(size: int) -> ImageFont.FreeTypeFont:
    from dangan.outputs.fonts import cjk_font

    face = cjk_font().body
    return ImageFont.truetype(face.file, size, index=face.index)


def drawn_page(lines: list[str], size=(1200, 500), mode="L", font_size=44) -> tuple[Image.Image, OcrPage]:
    """A page image with the lines drawn on it and an OcrPage whose boxes are the ink of each line."""
    img = Image.new(mode, size, "white")
    ocr_lines = []
    f = font(font_size)
    for i, text in enumerate(lines):
        one = Image.new("L", size, 255)
        xy = (50, 40 + i * 120)
        ImageDraw.Draw(one).text(xy, text, font=f, fill=0)
        ImageDraw.Draw(img).text(xy, text, font=f, fill="black")
        box = ImageOps.invert(one).getbbox()
        assert box
        ocr_lines.append(OcrLine(text, tuple(float(v) for v in box), 0.99))  # type: ignore[arg-type]
    return img, OcrPage("\n".join(lines), ocr_lines, size[0], size[1], 0.0)


def pdftotext(path: Path, page: int | None = None) -> str:
    exe = shutil.which("pdftotext")
    if not exe:
        if IN_CI:
            pytest.fail("pdftotext (poppler-utils) is required under CI=true")
        pytest.skip("pdftotext not installed (poppler-utils)")
    args = [exe, "-enc", "UTF-8"] + (["-f", str(page), "-l", str(page)] if page else []) + [str(path), "-"]
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout


@pytest.fixture(scope="module")
def doc(tmp_path_factory) -> tuple[Path, list[tuple[Image.Image, OcrPage, float]]]:
    """Three pages: grey 300 dpi, colour 200 dpi with a vertical column, black-and-white 300 dpi."""
    grey = drawn_page(LINES)
    colour_img, colour = drawn_page(["彩色扫描页", "第二行文字"], size=(900, 600), mode="RGB")
    col_font = font(40)
    for j, ch in enumerate("竖排文字"):  # a vertical column, one character under the other
        ImageDraw.Draw(colour_img).text((800, 40 + 45 * j), ch, font=col_font, fill="black")
    colour.lines.append(OcrLine("竖排文字", (800.0, 40.0, 842.0, 220.0), 0.9))
    colour.text += "\n竖排文字"
    bw_img, bw = drawn_page(["黑白扫描页"], size=(800, 300))
    pages = [(grey[0], grey[1], 300.0), (colour_img, colour, 200.0), (bw_img.convert("1"), bw, 300.0)]
    out = tmp_path_factory.mktemp("pdfa") / "access.pdf"
    searchable_pdf(pages, str(out), title=TITLE, author="示范市档案馆", subject="数字化副本")
    return out, pages


def test_pdfa_2b_metadata_output_intent_and_identification(doc):
    path, _ = doc
    with pikepdf.open(path) as pdf:
        assert not pdf.is_encrypted
        meta = pdf.Root.Metadata
        assert "/Filter" not in meta  # uncompressed XMP: PDF/A readers and fido see it
        xmp = meta.read_raw_bytes().decode("utf-8")
        assert "<pdfaid:part>2</pdfaid:part>" in xmp and "<pdfaid:conformance>B</pdfaid:conformance>" in xmp
        assert TITLE in xmp and "示范市档案馆" in xmp and "数字化副本" in xmp
        with pdf.open_metadata() as m:
            assert m["dc:title"] == TITLE and m["pdfaid:part"] == "2"
            assert m["pdf:Producer"] == str(pdf.docinfo["/Producer"])
        assert str(pdf.docinfo["/Title"]) == TITLE and str(pdf.docinfo["/Author"]) == "示范市档案馆"
        intent = pdf.Root.OutputIntents[0]
        assert intent.S == "/GTS_PDFA1" and intent.DestOutputProfile.N == 3
        icc = intent.DestOutputProfile.read_bytes()
        assert icc[36:40] == b"acsp" and icc[16:20] == b"RGB "
        for page in pdf.pages:  # no transparency anywhere
            assert "/Group" not in page.obj
            for _, xobj in page.Resources.XObject.items():
                assert "/SMask" not in xobj and "/Mask" not in xobj
    ident = identify_file(str(path))
    assert ident.puid == "fmt/477" and ident.pdfa == "2B", ident


def test_page_size_follows_dpi_and_images_are_encoded_by_colour(doc):
    path, pages = doc
    with pikepdf.open(path) as pdf:
        sizes = [tuple(float(v) for v in p.MediaBox) for p in pdf.pages]
        assert sizes[0] == pytest.approx((0, 0, 1200 * 72 / 300, 500 * 72 / 300), abs=0.01)
        assert sizes[1] == pytest.approx((0, 0, 900 * 72 / 200, 600 * 72 / 200), abs=0.01)
        images = [next(iter(p.Resources.XObject.values())) for p in pdf.pages]
        assert [(i.Filter, i.ColorSpace, int(i.BitsPerComponent)) for i in images] == [
            ("/DCTDecode", "/DeviceGray", 8), ("/DCTDecode", "/DeviceRGB", 8), ("/FlateDecode", "/DeviceGray", 1)]
        assert [(int(i.Width), int(i.Height)) for i in images] == [im.size for im, _, _ in pages]


def test_text_layer_is_invisible_and_extracted_by_pdfium_and_pdftotext(doc):
    path, pages = doc
    with pikepdf.open(path) as pdf:
        content = pdf.pages[0].Contents.read_bytes().decode("ascii")
        assert "3 Tr" in content and " Tz " in content
    text = pdftotext(path)
    for _, ocr, _ in pages:
        for line in ocr.lines:
            assert squash(line.text) in squash(text), line.text
    assert squash(pdftotext(path, 1)) == squash("".join(LINES))
    d = pdfium.PdfDocument(str(path))
    try:
        for i, (_, ocr, _) in enumerate(pages):
            assert squash(d[i].get_textpage().get_text_range()) == squash(ocr.text)
    finally:
        d.close()


def test_text_sits_over_its_box_so_selection_matches(doc):
    path, pages = doc
    img, ocr, dpi = pages[0]
    k = 72 / dpi
    height_pt = img.height * k
    d = pdfium.PdfDocument(str(path))
    try:
        tp = d[0].get_textpage()
        text = tp.get_text_range()
        for line in ocr.lines:
            start = text.index(line.text)
            first = tp.get_charbox(start, loose=True)  # (left, bottom, right, top) in PDF units
            last = tp.get_charbox(start + len(line.text) - 1, loose=True)
            x0, y0, x1, y1 = line.box
            assert first[0] == pytest.approx(x0 * k, abs=1.5)
            assert last[2] == pytest.approx(x1 * k, abs=1.5)  # Tz stretches the run to the box width
            assert first[3] == pytest.approx(height_pt - y0 * k, abs=1.5)
            assert first[1] == pytest.approx(height_pt - y1 * k, abs=1.5)
        # the vertical column on page 2: one character per cell, top to bottom
        tp2 = d[1].get_textpage()
        t2 = tp2.get_text_range()
        i = t2.index("竖")
        tops = [tp2.get_charbox(i + j, loose=True)[3] for j, ch in enumerate("竖排文字")]
        assert tops == sorted(tops, reverse=True)
    finally:
        d.close()


def test_the_text_layer_draws_nothing(tmp_path: Path):
    white = Image.new("L", (600, 200), 255)
    ocr = OcrPage("看不见的文字", [OcrLine("看不见的文字", (20.0, 20.0, 500.0, 120.0), 0.9)], 600, 200, 0.0)
    out = tmp_path / "w.pdf"
    searchable_pdf([(white, ocr, 150.0)], str(out))
    d = pdfium.PdfDocument(str(out))
    try:
        rendered = d[0].render(scale=150 / 72).to_pil().convert("L")
        assert rendered.getextrema()[0] >= 250  # still a white page: text render mode 3
        assert squash(d[0].get_textpage().get_text_range()) == "看不见的文字"
    finally:
        d.close()


def test_embedded_subset_font_with_tounicode_and_no_notdef(tmp_path: Path):
    # 𠀀 (U+20000) is not in WenQuanYi Zen Hei: drawn with a stand-in glyph, still extracted as itself
    text = "档案𠀀馆"
    img = Image.new("RGB", (400, 100), "white")
    ocr = OcrPage(text, [OcrLine(text, (10.0, 10.0, 390.0, 90.0), 0.8)], 400, 100, 0.0)
    buf = io.BytesIO()
    searchable_pdf([(img, ocr, 100.0)], buf)
    data = buf.getvalue()
    (tmp_path / "f.pdf").write_bytes(data)
    with pikepdf.open(io.BytesIO(data)) as pdf:
        f0 = pdf.pages[0].Resources.Font.F1
        assert f0.Subtype == "/Type0" and f0.Encoding == "/Identity-H" and "/ToUnicode" in f0
        cid = f0.DescendantFonts[0]
        assert cid.Subtype == "/CIDFontType2" and re.fullmatch(r"/[A-Z]{6}\+WenQuanYiZenHei", str(cid.BaseFont))
        program = cid.FontDescriptor.FontFile2.read_bytes()
        assert 1000 < len(program) < 200_000  # a subset, not the 17 MB font
        c2g = cid.CIDToGIDMap.read_bytes()
        gids = [int.from_bytes(c2g[i:i + 2], "big") for i in range(2, len(c2g), 2)]
        assert len(gids) == 4 and 0 not in gids  # PDF/A: .notdef is never shown
        widths = list(cid.W)
        assert [int(widths[i]) for i in range(0, len(widths), 2)] == [1, 2, 3, 4]
    assert squash(pdftotext(tmp_path / "f.pdf")) == text


def test_ocr_boxes_are_scaled_when_the_image_was_resized(tmp_path: Path):
    img, ocr = drawn_page(["缩放后的图像"], size=(1200, 300))
    small = img.resize((600, 150))
    out = tmp_path / "s.pdf"
    searchable_pdf([(small, ocr, 150.0)], str(out))  # OCR boxes in 1200-px units, image 600 px
    d = pdfium.PdfDocument(str(out))
    try:
        tp = d[0].get_textpage()
        first = tp.get_charbox(0, loose=True)
        assert first[0] == pytest.approx(ocr.lines[0].box[0] / 2 * 72 / 150, abs=1.5)
    finally:
        d.close()


def test_transparent_image_is_flattened_and_an_empty_page_has_no_font(tmp_path: Path):
    rgba = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    out = tmp_path / "t.pdf"
    searchable_pdf([(rgba, OcrPage("", [], 300, 300, 0.0), (300.0, 300.0))], str(out))  # type: ignore[list-item]
    with pikepdf.open(out) as pdf:
        page = pdf.pages[0]
        assert "/Font" not in page.Resources
        im = page.Resources.XObject.Im0
        assert "/SMask" not in im and im.ColorSpace == "/DeviceRGB"
    d = pdfium.PdfDocument(str(out))
    try:
        assert d[0].render(scale=0.5).to_pil().convert("L").getextrema()[0] >= 250  # white paper, not black
    finally:
        d.close()


def test_bad_input_is_refused_with_codes(tmp_path: Path):
    ok = Image.new("L", (100, 100), 255)
    empty = OcrPage("", [], 100, 100, 0.0)
    cases = [([], "PDFA_BAD_INPUT"), ([(ok, empty, 0.0)], "PDFA_BAD_INPUT"), ([(ok, empty, -3)], "PDFA_BAD_INPUT"),
             ([("x.png", empty, 300.0)], "PDFA_BAD_INPUT"), ([(ok, empty)], "PDFA_BAD_INPUT"),
             ([(ok, empty, "abc")], "PDFA_BAD_INPUT")]
    for pages, code in cases:
        out = tmp_path / "bad.pdf"
        with pytest.raises(ValidationFailed) as e:
            searchable_pdf(pages, str(out))  # type: ignore[arg-type]
        assert e.value.code == code and e.value.message
        assert not out.exists()


def test_missing_font_is_a_clear_error(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("DANGAN_PDFA_FONT", str(tmp_path / "nope.ttc"))
    pdfa._font_file.cache_clear()
    try:
        with pytest.raises(ConfigError) as e:
            searchable_pdf([(Image.new("L", (10, 10), 255), OcrPage("", [], 10, 10, 0.0), 300.0)],
                           str(tmp_path / "x.pdf"))
        assert e.value.code == "FONT_MISSING" and "fonts-wqy-zenhei" in e.value.message
        assert "文泉驿正黑" in e.value.message
    finally:
        monkeypatch.delenv("DANGAN_PDFA_FONT")
        pdfa._font_file.cache_clear()
    assert pdfa.font_path().endswith(".ttc")


def test_tiny_page_is_at_least_three_units(tmp_path: Path):
    out = tmp_path / "one.pdf"
    searchable_pdf([(Image.new("L", (1, 1), 255), OcrPage("", [], 1, 1, 0.0), 300.0)], str(out))
    with pikepdf.open(out) as pdf:
        box = [float(v) for v in pdf.pages[0].MediaBox]
        assert box[2] >= 3 and box[3] >= 3


def test_vertical_columns_extract_column_by_column(tmp_path: Path):
    cols = ["有評是是非非之士師也", "是非不得問之人要取之", "已取之時不參一人見而"]  # right to left
    img = Image.new("L", (840, 2040), 255)
    lines = [OcrLine(t, (560.0 - 270 * i, 50.0, 790.0 - 270 * i, 2015.0), 0.95) for i, t in enumerate(cols)]
    ocr = OcrPage("\n".join(cols), lines, 840, 2040, 0.0)
    out = tmp_path / "v.pdf"
    searchable_pdf([(img, ocr, 300.0)], str(out))
    text = squash(pdftotext(out))
    for col in cols:
        assert col in text, (col, text)
    d = pdfium.PdfDocument(str(out))
    try:
        tp = d[0].get_textpage()
        full = tp.get_text_range()
        for col in cols:  # PDFium orders turned runs left to right itself; each column stays whole
            assert col in squash(full)
        k = 72 / 300
        start = full.index(cols[0])
        left, bottom, right, top = tp.get_charbox(start, loose=True)
        assert left == pytest.approx(560 * k, abs=1.5) and right == pytest.approx(790 * k, abs=1.5)
        assert top == pytest.approx((2040 - 50) * k, abs=1.5)
        last = tp.get_charbox(start + len(cols[0]) - 1, loose=True)
        assert last[1] == pytest.approx((2040 - 2015) * k, abs=1.5)
    finally:
        d.close()
