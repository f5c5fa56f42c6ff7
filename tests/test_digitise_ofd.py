"""Searchable OFD access copies (digitise.ofd_writer): checked with our own OFD validator, text extraction and
renderer. Pages are drawn with Pillow and their OcrPages built by hand over the ink of each line (no OCR call);
the CLI test makes one real OCR call, the service test none (the OCR engine is replaced by a stand-in)."""

from __future__ import annotations

import io
import math
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from PIL import Image, ImageChops, ImageDraw, ImageFont, ImageOps

from dangan.digitise import ofd_writer, pdfa
from dangan.digitise.ocr import OcrLine, OcrPage
from dangan.digitise.ofd_writer import searchable_ofd
from dangan.errors import ValidationFailed
from dangan.formats.extract import extract_text
from dangan.formats.identify import identify_file
from dangan.formats.ofd import validate_ofd
from dangan.formats.ofd_render import ofd_page_count, render_ofd_page

NS = {"ofd": ofd_writer.OFD_NS}
TITLE = "关于做好2024年度档案归档工作的通知"
LINES = ["关于做好2024年度档案归档工作的通知", "各县区人民政府，市政府各部门：", "二〇二四年三月五日"]
FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"


def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(FONT, size)


def drawn_page(lines: list[str], size: tuple[int, int] = (1200, 500), mode: str = "L",
               font_size: int = 44) -> tuple[Image.Image, OcrPage]:
    """A page image with the lines drawn on it and an OcrPage whose boxes are the ink of each line."""
    img = Image.new(mode, size, "white" if mode != "1" else 1)
    ocr_lines = []
    f = font(font_size)
    for i, text in enumerate(lines):
        one = Image.new("L", size, 255)
        xy = (50, 40 + i * 120)
        ImageDraw.Draw(one).text(xy, text, font=f, fill=0)
        ImageDraw.Draw(img).text(xy, text, font=f, fill="black" if mode != "1" else 0)
        box = ImageOps.invert(one).getbbox()
        assert box
        ocr_lines.append(OcrLine(text, tuple(float(v) for v in box), 0.99))  # type: ignore[arg-type]
    return img, OcrPage("\n".join(lines), ocr_lines, size[0], size[1], 0.0)


def column_page(columns: list[str], size: tuple[int, int] = (600, 700), font_size: int = 40) -> tuple[Image.Image,
                                                                                                          OcrPage]:
    """Vertical typesetting: columns of upright characters, read top to bottom, the first column on the right."""
    img = Image.new("L", size, 255)
    f = font(font_size)
    lines = []
    for c, text in enumerate(columns):
        one = Image.new("L", size, 255)
        x = size[0] - 100 - c * 90
        for i, ch in enumerate(text):
            for target in (img, one):
                ImageDraw.Draw(target).text((x, 60 + i * (font_size + 8)), ch, font=f, fill=0)
        box = ImageOps.invert(one).getbbox()
        assert box
        lines.append(OcrLine(text, tuple(float(v) for v in box), 0.95))  # type: ignore[arg-type]
    return img, OcrPage("\n".join(columns), lines, size[0], size[1], 0.0)


def norm(text: str) -> str:
    """The extractor's whitespace rules: lines without blank ones, runs of spaces as one."""
    return "\n".join(re.sub(r"[ \u3000]+", " ", ln).strip() for ln in text.splitlines() if ln.strip())


def parts(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def page_xml(path: Path, n: int = 0) -> etree._Element:
    return etree.fromstring(parts(path)[f"Doc_0/Pages/Page_{n}/Content.xml"])


def dark(img: Image.Image) -> int:
    return sum(img.convert("L").point(lambda v: 255 if v < 128 else 0).histogram()[255:])


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A grey JPEG page, a colour page and a black-and-white (PNG) page, each with its OCR."""
    g = drawn_page(LINES)
    c = drawn_page(["第二页 附件：数字化工作方案", "Scan & OCR <test> 2024"], mode="RGB", size=(1000, 700))
    b = drawn_page(["第三页 黑白扫描", "抄送：档案局"], mode="1", size=(900, 400))
    path = tmp_path_factory.mktemp("ofd") / "three.ofd"
    searchable_ofd([(g[0], g[1], 300.0), (c[0], c[1], 200.0), (b[0], b[1], (150.0, 150.0))], str(path),
                   title=TITLE, author="示范市人民政府办公室", subject="Z109-WS·2024-D30-BGS-0001")
    return {"path": path, "pages": [g, c, b], "dpi": [300.0, 200.0, 150.0]}


# ---------------------------------------------------------------- the package


def test_output_is_a_valid_ofd_with_chinese_docinfo(three: dict[str, Any]) -> None:
    path = three["path"]
    v = validate_ofd(str(path))
    assert v.status == "valid" and v.problems == [] and v.warnings == []
    assert v.page_count == 3 and v.details["ofd_version"] == "1.0" and v.details["doc_type"] == "OFD"
    assert v.details["title"] == TITLE and v.details["author"] == "示范市人民政府办公室"
    assert v.details["subject"] == "Z109-WS·2024-D30-BGS-0001" and v.details["creator"] == "dangan"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", v.details["creation_date"]) and len(v.details["doc_id"]) == 32
    ident = identify_file(str(path), path.name)
    assert "OFD" in ident.format_name or ident.mime == "application/ofd"
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_DEFLATED}
        names = zf.namelist()
    assert names[0] == "OFD.xml" and "Doc_0/Document.xml" in names
    assert {"Doc_0/Res/Image_0.jpg", "Doc_0/Res/Image_1.jpg", "Doc_0/Res/Image_2.png", "Doc_0/Res/Font_0.ttf"} \
        <= set(names)
    for name, data in parts(path).items():
        if name.endswith(".xml"):
            assert etree.QName(etree.fromstring(data).tag).namespace == ofd_writer.OFD_NS, name
    doc = etree.fromstring(parts(path)["Doc_0/Document.xml"])
    ids = [int(x) for n, d in parts(path).items() if n.endswith(".xml") for x in re.findall(rb'\sID="(\d+)"', d)]
    assert len(ids) == len(set(ids)) and int(doc.findtext("ofd:CommonData/ofd:MaxUnitID", namespaces=NS)) == max(ids)


def test_page_size_in_mm_from_pixels_and_dpi(three: dict[str, Any]) -> None:
    for n, ((img, _ocr), dpi) in enumerate(zip(three["pages"], three["dpi"], strict=True)):
        box = page_xml(three["path"], n).findtext("ofd:Area/ofd:PhysicalBox", namespaces=NS)
        w, h = (float(v) for v in box.split()[2:])
        assert w == pytest.approx(img.width * 25.4 / dpi, abs=0.001)
        assert h == pytest.approx(img.height * 25.4 / dpi, abs=0.001)
        image = page_xml(three["path"], n).find(".//ofd:ImageObject", NS)
        assert image.get("Boundary") == f"0 0 {box.split()[2]} {box.split()[3]}"
    with Image.open(io.BytesIO(parts(three["path"])["Doc_0/Res/Image_2.png"])) as bw:
        assert bw.mode == "1"  # black-and-white stays 1-bit, losslessly


def test_extracted_text_is_the_ocr_text_page_by_page(three: dict[str, Any]) -> None:
    ex = extract_text(str(three["path"]))
    assert ex.status == "ok", ex.message
    assert [p.page for p in ex.pages] == [1, 2, 3]
    assert [p.text for p in ex.pages] == [norm(ocr.text) for _img, ocr in three["pages"]]
    assert "Scan & OCR <test> 2024" in ex.pages[1].text  # XML special characters survive


def test_text_objects_are_invisible_and_fill_their_boxes(three: dict[str, Any]) -> None:
    img, ocr = three["pages"][0]
    k = 25.4 / 300.0
    objs = page_xml(three["path"], 0).findall(".//ofd:TextObject", NS)
    assert len(objs) == len(ocr.lines)
    m = pdfa._metrics(pdfa.font_path())
    for obj, line in zip(objs, ocr.lines, strict=True):
        assert obj.get("Fill") == "false" and obj.get("Stroke") == "false"
        x, y, w, h = (float(v) for v in obj.get("Boundary").split())
        x0, y0, x1, y1 = line.box
        assert (x, y, w, h) == pytest.approx((x0 * k, y0 * k, (x1 - x0) * k, (y1 - y0) * k), abs=0.002)
        size = float(obj.get("Size"))
        assert size == pytest.approx(h * m["upem"] / (m["ascent"] - m["descent"]), rel=0.01)
        [code] = obj.findall("ofd:TextCode", NS)
        assert code.text == line.text and float(code.get("Y")) == pytest.approx(size * m["ascent"] / m["upem"], rel=0.01)
        steps = [float(v) for v in _expand(code.get("DeltaX"))]
        assert len(steps) == len(line.text) - 1 and all(s > 0 for s in steps)
        last = pdfa._width_units(pdfa.font_path(), line.text[-1]) / 1000 * size
        assert sum(steps) + last == pytest.approx(w, rel=0.01)  # the run ends at the box's right edge


def _expand(spec: str) -> list[str]:
    toks, out, i = spec.split(), [], 0
    while i < len(toks):
        if toks[i] == "g":
            out += [toks[i + 2]] * int(toks[i + 1])
            i += 3
        else:
            out.append(toks[i])
            i += 1
    return out


def test_font_is_an_embedded_subset_of_the_characters_used(three: dict[str, Any]) -> None:
    from fontTools.ttLib import TTFont

    pub = etree.fromstring(parts(three["path"])["Doc_0/PublicRes.xml"])
    [f] = pub.findall(".//ofd:Font", NS)
    assert f.get("FamilyName") == "WenQuanYi Zen Hei" and f.findtext("ofd:FontFile", namespaces=NS) == "Font_0.ttf"
    used = {ch for _img, ocr in three["pages"] for ln in ocr.lines for ch in ln.text}
    full = set(map(chr, pdfa._metrics(pdfa.font_path())["cmap"]))
    with TTFont(io.BytesIO(parts(three["path"])["Doc_0/Res/Font_0.ttf"])) as tt:
        cmap = {chr(cp) for cp in tt.getBestCmap()}
        assert cmap == used & full
        assert tt["name"].getDebugName(1) == "WenQuanYi Zen Hei" and tt["maxp"].numGlyphs <= len(used) + 2
        for ch in "档案〇":
            assert tt["glyf"][tt.getBestCmap()[ord(ch)]].numberOfContours > 0  # real outlines, not empty glyphs
    assert len(parts(three["path"])["Doc_0/Res/Font_0.ttf"]) < 60_000


# ---------------------------------------------------------------- what a reader shows


def test_render_shows_the_image_and_not_the_text(three: dict[str, Any], tmp_path: Path) -> None:
    img, ocr = three["pages"][0]
    shown = render_ofd_page(str(three["path"]), 0, dpi=150)
    assert shown.size == (round(img.width / 2), round(img.height / 2))  # 300 dpi image drawn at 150 dpi
    assert dark(shown) > 2000
    bare = tmp_path / "bare.ofd"
    searchable_ofd([(img, OcrPage("", [], img.width, img.height, 0.0), 300.0)], str(bare))
    assert ImageChops.difference(shown, render_ofd_page(str(bare), 0, dpi=150)).getbbox() is None
    reference = img.convert("RGB").resize(shown.size, Image.Resampling.LANCZOS)
    diff = ImageChops.difference(shown.convert("L"), reference.convert("L"))
    assert sum(diff.point(lambda v: 255 if v > 96 else 0).histogram()[255:]) < 0.01 * shown.width * shown.height
    # the same file with the text made visible draws over the words on the image, inside the OCR boxes
    visible = tmp_path / "visible.ofd"
    with zipfile.ZipFile(three["path"]) as src, zipfile.ZipFile(visible, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, data.replace(b'Fill="false"', b'Fill="true"') if info.filename.endswith("Content.xml")
                         else data)
    drawn = ImageChops.difference(shown, render_ofd_page(str(visible), 0, dpi=150))
    box = drawn.getbbox()
    assert box is not None
    left = min(ln.box[0] for ln in ocr.lines) / 2
    top = min(ln.box[1] for ln in ocr.lines) / 2
    right = max(ln.box[2] for ln in ocr.lines) / 2
    bottom = max(ln.box[3] for ln in ocr.lines) / 2
    assert box[0] >= left - 3 and box[1] >= top - 3 and box[2] <= right + 3 and box[3] <= bottom + 3
    assert box[2] - box[0] > 0.9 * (right - left)  # spread across the width of the line, like the words


def test_render_of_every_page_keeps_the_aspect_ratio(three: dict[str, Any]) -> None:
    assert ofd_page_count(str(three["path"])) == 3
    for n, (img, _ocr) in enumerate(three["pages"]):
        shown = render_ofd_page(str(three["path"]), n, dpi=100)
        assert shown.width / shown.height == pytest.approx(img.width / img.height, rel=0.01)
        assert dark(shown) > 200


def test_vertical_columns_keep_their_characters_together(tmp_path: Path) -> None:
    img, ocr = column_page(["档案数字化", "竖排文字"])
    path = tmp_path / "columns.ofd"
    searchable_ofd([(img, ocr, 200.0)], str(path))
    assert validate_ofd(str(path)).problems == []
    objs = page_xml(path).findall(".//ofd:TextObject", NS)
    for obj, line in zip(objs, ocr.lines, strict=True):
        [code] = obj.findall("ofd:TextCode", NS)
        assert code.get("DeltaX") is None and len(_expand(code.get("DeltaY"))) == len(line.text) - 1
        x, y, w, h = (float(v) for v in obj.get("Boundary").split())
        assert float(obj.get("Size")) == pytest.approx(w, rel=0.01)
        steps = [float(v) for v in _expand(code.get("DeltaY"))]
        assert sum(steps) + float(obj.get("Size")) == pytest.approx(h, rel=0.01)  # stacked down the whole box
    text = extract_text(str(path)).text
    assert "档案数字化" in text and "竖排文字" in text
    assert dark(render_ofd_page(str(path), 0, dpi=200)) == pytest.approx(dark(img), rel=0.05)  # nothing drawn on top


def test_without_the_font_a_named_font_is_used(three: dict[str, Any], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    img, ocr = three["pages"][0]
    for label, patch in (("not embedded", False), ("not installed", True)):
        path = tmp_path / f"{label}.ofd"
        with monkeypatch.context() as mp:
            if patch:
                mp.setattr(pdfa, "_font_file", lambda: None)
            searchable_ofd([(img, ocr, 300.0)], str(path), embed_font=patch)
        assert validate_ofd(str(path)).problems == [], label
        [f] = etree.fromstring(parts(path)["Doc_0/PublicRes.xml"]).findall(".//ofd:Font", NS)
        assert f.get("FontName") == "宋体" and f.find("ofd:FontFile", NS) is None
        assert not any(n.endswith(".ttf") for n in parts(path))
        assert extract_text(str(path)).pages[0].text == norm(ocr.text)
        assert dark(render_ofd_page(str(path), 0, dpi=100)) > 200


# ---------------------------------------------------------------- bad input


def test_no_pages_or_a_bad_page_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    img, ocr = drawn_page(LINES[:1])
    target = tmp_path / "bad.ofd"
    for pages in ([], [(img, ocr)], [("not an image", ocr, 300.0)], [(img, ocr, 0)], [(img, ocr, -72)],
                  [(img, ocr, float("nan"))], [(img, ocr, "abc")], [(img, "no ocr", 300.0)],
                  [(img, ocr, 300.0), (Image.new("L", (0, 0)), ocr, 300.0)]):
        with pytest.raises(ValidationFailed) as e:
            searchable_ofd(pages, str(target))  # type: ignore[arg-type]
        assert e.value.code == "OFD_BAD_INPUT" and e.value.message
        assert not target.exists() and list(tmp_path.iterdir()) == []


def test_a_page_with_no_lines_is_an_image_only_page(tmp_path: Path) -> None:
    img, ocr = drawn_page(LINES)
    blank = OcrPage("", [], img.width, img.height, 0.0)
    path = tmp_path / "mixed.ofd"
    searchable_ofd([(img, blank, 300.0), (img, ocr, 300.0), (img, None, 300.0)], str(path))  # type: ignore[list-item]
    v = validate_ofd(str(path))
    assert v.problems == [] and v.warnings == [] and v.page_count == 3
    ex = extract_text(str(path))
    assert [p.page for p in ex.pages] == [2] and ex.pages[0].text == norm(ocr.text)
    assert page_xml(path, 0).find(".//ofd:TextObject", NS) is None
    only = tmp_path / "only-images.ofd"
    searchable_ofd([(img, blank, 300.0)], str(only))
    assert validate_ofd(str(only)).problems == []
    assert extract_text(str(only)).status == "empty"
    assert etree.fromstring(parts(only)["Doc_0/PublicRes.xml"]).find(".//ofd:Font", NS) is None


def test_lines_with_empty_or_degenerate_boxes_are_left_out(tmp_path: Path) -> None:
    img, ocr = drawn_page(LINES[:2])
    good = ocr.lines
    odd = [OcrLine("", (10, 10, 200, 50), 0.9), OcrLine("   \u3000 ", (10, 10, 200, 50), 0.9),
           OcrLine("零宽", (100, 100, 100, 140), 0.9), OcrLine("倒置", (300, 200, 200, 150), 0.9),
           OcrLine("无穷", (0, 0, math.inf, 40), 0.9), OcrLine("非数", (math.nan, 0, 10, 40), 0.9),
           OcrLine("页外", (5000, 5000, 5100, 5040), 0.9), OcrLine("坏框", ("a", 0, 1, 2), 0.9),  # type: ignore[arg-type]
           OcrLine("控制\x00字符\x1b", (50, 400, 400, 450), 0.9)]
    page = OcrPage("", [good[0], *odd, good[1]], img.width, img.height, 0.0)
    path = tmp_path / "odd.ofd"
    searchable_ofd([(img, page, 300.0)], str(path))
    assert validate_ofd(str(path)).problems == []
    texts = [c.text for c in page_xml(path).iterfind(".//ofd:TextCode", NS)]
    assert texts == [good[0].text, "控制 字符", good[1].text]
    ex = extract_text(str(path))
    assert ex.pages[0].text.splitlines() == [good[0].text, good[1].text, "控制 字符"]  # placed by position


def test_characters_the_font_lacks_are_kept_in_the_text(tmp_path: Path) -> None:
    from fontTools.ttLib import TTFont

    rare = "𠀀𪚥😀"  # CJK Extension B and an emoji: not in WenQuanYi Zen Hei
    assert not any(ord(ch) in pdfa._metrics(pdfa.font_path())["cmap"] for ch in rare)
    img, _ = drawn_page(["x"])
    path = tmp_path / "rare.ofd"
    searchable_ofd([(img, OcrPage("", [OcrLine(f"生僻字{rare}结束", (50, 40, 600, 90), 0.9)], img.width,
                                      img.height, 0.0), 300.0)], str(path))
    assert validate_ofd(str(path)).problems == []
    assert extract_text(str(path)).text == f"生僻字{rare}结束"
    with TTFont(io.BytesIO(parts(path)["Doc_0/Res/Font_0.ttf"])) as tt:
        assert set(map(chr, tt.getBestCmap())) == set("生僻字结束")


def test_a_box_partly_outside_the_page_is_clipped_to_it(tmp_path: Path) -> None:
    img, _ = drawn_page(["边缘"], size=(400, 200))
    page = OcrPage("边缘", [OcrLine("边缘", (-20, 30, 500, 90), 0.9)], 400, 200, 0.0)
    path = tmp_path / "edge.ofd"
    searchable_ofd([(img, page, 100.0)], str(path))
    [obj] = page_xml(path).findall(".//ofd:TextObject", NS)
    x, y, w, h = (float(v) for v in obj.get("Boundary").split())
    assert x == 0 and x + w == pytest.approx(400 * 25.4 / 100, abs=0.001)


def test_ocr_of_a_scaled_copy_is_scaled_to_the_image(tmp_path: Path) -> None:
    img, ocr = drawn_page(LINES[:1])
    small = OcrPage(ocr.text, [OcrLine(ln.text, tuple(v / 2 for v in ln.box), ln.score) for ln in ocr.lines],  # type: ignore[misc]
                    img.width // 2, img.height // 2, 0.0)
    a, b = tmp_path / "a.ofd", tmp_path / "b.ofd"
    searchable_ofd([(img, ocr, 300.0)], str(a))
    searchable_ofd([(img, small, 300.0)], str(b))
    ba = page_xml(a).find(".//ofd:TextObject", NS).get("Boundary").split()
    bb = page_xml(b).find(".//ofd:TextObject", NS).get("Boundary").split()
    assert [float(v) for v in ba] == pytest.approx([float(v) for v in bb], abs=0.01)


def test_a_one_pixel_image_gives_a_valid_file(tmp_path: Path) -> None:
    px = Image.new("L", (1, 1), 0)
    path = tmp_path / "one.ofd"
    searchable_ofd([(px, OcrPage("", [OcrLine("字", (0, 0, 1, 1), 0.5)], 1, 1, 0.0), 300.0)], str(path))
    v = validate_ofd(str(path))
    assert v.problems == [] and v.page_count == 1
    assert render_ofd_page(str(path), 0, dpi=300).size == (1, 1)
    assert extract_text(str(path)).text == "字"


def test_writes_to_a_file_object_and_odd_image_modes(tmp_path: Path) -> None:
    _img, ocr = drawn_page(["模式"], size=(300, 200))
    modes = [Image.new("RGBA", (300, 200), (255, 255, 255, 0)), Image.new("P", (300, 200), 3),
             Image.new("CMYK", (300, 200), (0, 0, 0, 0)), Image.new("I;16", (300, 200), 65535),
             Image.new("LA", (300, 200), (0, 255))]
    buf = io.BytesIO()
    searchable_ofd([(m, ocr, 150.0) for m in modes], buf, title="  多种\x07图像模式  ")
    path = tmp_path / "modes.ofd"
    path.write_bytes(buf.getvalue())
    v = validate_ofd(str(path))
    assert v.problems == [] and v.page_count == 5 and v.details["title"] == "多种图像模式"
    grey16 = render_ofd_page(str(path), 3, dpi=150).convert("L")
    assert grey16.getextrema()[0] > 240  # 16-bit white stays white (scaled, not clipped)
    assert render_ofd_page(str(path), 0, dpi=150).convert("L").getextrema()[0] > 240  # transparent: white paper


def test_a_jpeg_file_not_yet_decoded_is_embedded_as_it_is(tmp_path: Path) -> None:
    img, ocr = drawn_page(LINES[:1], mode="RGB")
    src = tmp_path / "access.jpg"
    img.save(src, "JPEG", quality=85)
    path = tmp_path / "same.ofd"
    with Image.open(src) as lazy:
        searchable_ofd([(lazy, ocr, 300.0)], str(path))
        assert lazy.tile  # never decoded
    assert parts(path)["Doc_0/Res/Image_0.jpg"] == src.read_bytes()
    with Image.open(src) as drawn_on:  # decoded and drawn on: encoded again, the drawing kept
        ImageDraw.Draw(drawn_on).rectangle((0, 0, 200, 200), fill="black")
        searchable_ofd([(drawn_on, ocr, 300.0)], str(path))
    assert parts(path)["Doc_0/Res/Image_0.jpg"] != src.read_bytes()
    assert render_ofd_page(str(path), 0, dpi=300).convert("L").getpixel((50, 50)) < 40


# ---------------------------------------------------------------- `dangan ocr FILE --ofd/--pdf` (one OCR call)


def test_cli_writes_the_access_copies_of_one_file(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dangan.cli import app as cli

    img, _ = drawn_page(["关于做好档案数字化工作的通知", "各单位要加强数字化成果的质量检查和验收。"], size=(1240, 500))
    scan = tmp_path / "扫描件.jpg"
    img.save(scan, "JPEG", dpi=(300, 300))
    runner = CliRunner()
    ofd, pdf = tmp_path / "利用副本.ofd", tmp_path / "利用副本.pdf"
    r = runner.invoke(cli, ["ocr", str(scan), "--ofd", str(ofd), "--pdf", str(pdf)])
    assert r.exit_code == 0, r.output
    assert "数字化" in r.stdout and ofd.name in r.output.replace("\n", "")  # rich wraps long lines
    v = validate_ofd(str(ofd))
    assert v.problems == [] and v.details["title"] == "扫描件"
    text = extract_text(str(ofd)).text
    assert "质量检查" in text and "数字化" in text
    assert pdf.read_bytes().startswith(b"%PDF-") and "质量检查" in extract_text(str(pdf)).text
    shown = render_ofd_page(str(ofd), 0, dpi=300)
    assert shown.width / shown.height == pytest.approx(img.width / img.height, rel=0.02)
    r = runner.invoke(cli, ["ocr", str(scan), "--ofd", str(tmp_path / "x.pdf")])
    assert r.exit_code == 1 and "BAD_OUTPUT_NAME" in r.output and not (tmp_path / "x.pdf").exists()
    r = runner.invoke(cli, ["ocr", "--batch", "1", "--ofd", str(ofd)])
    assert r.exit_code == 1 and "BAD_ARGUMENT" in r.output


# ---------------------------------------------------------------- the OCR job and 挂接 (scan_ofd), no OCR call


def test_ocr_job_builds_the_ofd_and_accept_adds_it_as_a_second_layout_file(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import select

    from conftest import make_app
    from dangan.db.models import FileText, ScanOutput
    from dangan.digitise import ocr
    from dangan.errors import StateError
    from dangan.services import digitise as dg
    from dangan.services import jobs, search
    from dangan.services.records import get_record
    from test_digitise_service import GOV_LINES, filed, person, save, text_page

    def stand_in(tasks: list[Any], workers: int | None = None, progress: Any = None) -> list[OcrPage]:
        """The OCR engine's stand-in: two lines per page, named after the page, inside the access image."""
        pages = []
        for t in tasks:
            with Image.open(t.path) as im:
                w, h = im.size
            pid = t.name.split("-")[0]
            lines = [OcrLine(f"第{pid}号页面的标题", (60, 80, 460, 120), 0.99),
                     OcrLine("各单位要加强数字化成果的质量检查和验收。", (60, 200, 760, 236), 0.97)]
            pages.append(OcrPage("\n".join(ln.text for ln in lines), lines, w, h, 0.01))
        if progress:
            progress(len(tasks), len(tasks))
        return pages

    monkeypatch.setattr(ocr, "engine_available", lambda: True)
    monkeypatch.setattr(ocr, "ocr_many", stand_in)
    app = make_app(tmp_path / "data")
    try:
        arch = person(app, "dangan", ["archivist"])
        rec = filed(app, "关于做好档案数字化工作的通知", 2)
        code = rec["archival_code"]
        folder = tmp_path / "scans"
        folder.mkdir()
        save(text_page(GOV_LINES), folder / f"{code}-0001.jpg")
        save(text_page(["二、工作要求", "各单位要加强数字化成果的质量检查和验收。"]), folder / f"{code}-0002.jpg")
        sources, skipped = dg.sources_from_dir(folder)
        b = dg.import_batch(app, arch, sources, fonds="Z109", name="OFD 利用副本", skipped=skipped)
        dg.run_qc(app, arch, b["id"])
        res = dg.run_ocr(app, arch, b["id"])  # the default: a PDF/A only
        assert res["pages"] == 2 and res["pdfs"] == 1 and res["ofds"] == 0
        assert dg.get_batch(app, arch, b["id"])["ofd_outputs"] == {}
        app.settings.scan_ofd = True  # turned on later: the next OCR job makes the OFD without recognising again
        view = jobs.run(app, dg.prepare_ocr(app, arch, b["id"]), dg.ocr_work(app, arch, b["id"]))
        assert view["status"] == "done", view["error"]
        assert view["result"]["pages"] == 0 and view["result"]["pdfs"] == 0 and view["result"]["ofds"] == 1
        v = dg.get_batch(app, arch, b["id"])
        [pdf_out] = v["outputs"].values()
        [ofd_out] = v["ofd_outputs"].values()
        assert ofd_out["page_ids"] == pdf_out["page_ids"] and ofd_out["pages"] == 2
        with app.read_sessions() as s:
            key = s.scalar(select(ScanOutput.storage_key).where(ScanOutput.id == ofd_out["id"]))
        copy = tmp_path / "copy.ofd"
        with app.store.open(key) as fh:
            copy.write_bytes(fh.read())
        check = validate_ofd(str(copy))
        assert check.problems == [] and check.details["title"] == "关于做好档案数字化工作的通知"
        assert check.details["subject"] == code
        texts = [p.text for p in extract_text(str(copy)).pages]
        assert len(texts) == 2 and all("质量检查和验收" in t for t in texts)
        assert texts[0].startswith(f"第{pdf_out['page_ids'][0]}号页面")
        cached = dg.cache_dir(app, b["id"]) / f"{pdf_out['page_ids'][0]}-access.jpg"
        assert parts(copy)["Doc_0/Res/Image_0.jpg"] == cached.read_bytes()  # the access JPEG, not encoded again
        with pytest.raises(StateError) as e:
            dg.prepare_ocr(app, arch, b["id"])
        assert e.value.code == "OCR_NOTHING_TO_DO"  # both copies are current

        for p in dg.draw_sample(app, arch, b["id"], seed=1)["sample"]:
            dg.mark_sample(app, arch, b["id"], p["id"], "合格")
        out = dg.accept_batch(app, arch, b["id"])
        assert out["records"] == 1 and out["files"] == 4
        files = get_record(app, arch, rec["id"])["files"]
        assert sorted(f["role"] for f in files) == ["layout", "layout", "scan", "scan"]
        pdf = next(f for f in files if f["media_type"] == "application/pdf")
        ofd = next(f for f in files if f["name"].endswith(".ofd"))
        assert ofd["name"] == f"{code}.ofd" and ofd["media_type"] == "application/ofd" and ofd["role"] == "layout"
        with app.read_sessions() as s:
            assert s.get(FileText, pdf["id"]).status == "ok" and s.get(FileText, pdf["id"]).pages == 2
            assert s.get(FileText, ofd["id"]).status == "empty"  # the same text is kept once, on the PDF/A
            assert s.get(ScanOutput, ofd_out["id"]).file_row_id == ofd["id"]
        app.indexer.flush()
        hits = search.search(app, arch, "质量检查和验收", search.SearchFilter())
        assert next(i for i in hits["items"] if i["id"] == rec["id"])["snippet"]["file_id"] == pdf["id"]
    finally:
        app.close()
