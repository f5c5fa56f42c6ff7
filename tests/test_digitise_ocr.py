"""Offline OCR (digitise.ocr): text and boxes in reading order, blank pages, bad input, no download ever
(run with the network cut), pages in parallel with progress, every page of a file.

OCR calls are costly (~1-3 s): one engine for the module, one rendered page read once, and four more small
pages (network-cut subprocess, two in the pool, one through ocr_file). Blank pages cost only detection.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import unicodedata
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont, ImageOps

from conftest import IN_CI
from dangan.digitise import ocr
from dangan.digitise.ocr import OcrLine, OcrPage, OcrTask, reading_order
from dangan.errors import ValidationFailed

ROOT = Path(__file__).resolve().parents[1]
LINES = ["关于做好档案归档工作的通知", "各县区人民政府，市政府各部门：", "二〇二四年三月五日"]
ORIGINS = [(60, 40), (60, 170), (420, 300)]  # where each line is drawn (left, top) in the test page
SIZE = 48


def norm(s: str) -> str:
    return "".join(unicodedata.normalize("NFKC", s).split())


def cjk_font(size: int) -> ImageFont.FreeTypeFont:
    from dangan.outputs.fonts import cjk_font as find

    face = find().body
    return ImageFont.truetype(face.file, size, index=face.index)


def draw_page(lines: list[str], origins: list[tuple[int, int]], size: tuple[int, int] = (1000, 400),
              font_size: int = SIZE, mode: str = "L") -> Image.Image:
    img = Image.new(mode, size, 255 if mode in ("L", "1") else (255, 255, 255))
    d = ImageDraw.Draw(img)
    font = cjk_font(font_size)
    for text, xy in zip(lines, origins, strict=True):
        d.text(xy, text, font=font, fill=0 if mode in ("L", "1") else (20, 20, 20))
    return img


@pytest.fixture(scope="module", autouse=True)
def need_engine():
    if not ocr.engine_available():
        if IN_CI:
            pytest.fail("rapidocr/onnxruntime with their packaged models are required under CI=true")
        pytest.skip("OCR engine not installed (runs under CI=true)")


@pytest.fixture(scope="module")
def page_img() -> Image.Image:
    # a slight skew (0.7°): the rows must still come out whole and in order
    return draw_page(LINES, ORIGINS).rotate(-0.7, resample=Image.Resampling.BICUBIC, fillcolor=255)


@pytest.fixture(scope="module")
def page(page_img: Image.Image) -> OcrPage:
    return ocr.ocr_image(page_img)  # OCR call 1 (also loads the module's engine)


def test_text_lines_in_reading_order_with_boxes_on_the_page(page: OcrPage, page_img: Image.Image):
    assert [norm(ln.text) for ln in page.lines] == [norm(t) for t in LINES]
    assert norm(page.text) == norm("".join(LINES))
    assert page.text.count("\n") == len(LINES) - 1
    assert (page.width, page.height) == page_img.size
    assert page.engine == "rapidocr 3.10.0 PP-OCRv6"
    assert page.seconds > 0 and page.error is None
    for line, text, xy in zip(page.lines, LINES, ORIGINS, strict=True):
        x0, y0, x1, y1 = line.box
        assert 0 <= x0 < x1 <= page.width and 0 <= y0 < y1 <= page.height
        # the ink of this line alone (before the 0.7° turn, which moves it by at most ~6 px)
        ink = ImageOps.invert(draw_page([text], [xy])).getbbox()
        assert ink is not None
        # the box is the axis-aligned bound of the detected quadrilateral: within a few px of the ink
        assert abs(x0 - ink[0]) < 15 and abs(x1 - ink[2]) < 15, (line.box, ink)
        assert abs((y0 + y1) / 2 - (ink[1] + ink[3]) / 2) < 15, (line.box, ink)
        assert 0.5 < line.score <= 1.0


def test_searchable_pdf_of_the_ocr_extracts_the_same_text(page: OcrPage, page_img: Image.Image, tmp_path: Path):
    from dangan.digitise.pdfa import searchable_pdf

    out = tmp_path / "p.pdf"
    searchable_pdf([(page_img, page, 200.0)], str(out), title="关于做好档案归档工作的通知")
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(out))
    assert norm(doc[0].get_textpage().get_text_range()) == norm(page.text)
    doc.close()


def test_blank_and_tiny_pages_give_empty_text_not_an_error():
    blank = ocr.ocr_image(Image.new("RGB", (800, 600), (255, 255, 255)))
    assert blank.text == "" and blank.lines == [] and (blank.width, blank.height) == (800, 600)
    assert blank.error is None
    one = ocr.ocr_image(Image.new("L", (1, 1), 255))
    assert one.text == "" and (one.width, one.height) == (1, 1)


def test_bad_input_is_refused_with_a_code():
    with pytest.raises(ValidationFailed) as e:
        ocr.ocr_image(b"not an image")  # type: ignore[arg-type]
    assert e.value.code == "OCR_BAD_INPUT"


def test_model_outside_the_package_is_refused(tmp_path: Path):
    foreign = tmp_path / "PP-OCRv5_server_det.onnx"
    foreign.write_bytes(b"x")
    with pytest.raises(ValidationFailed) as e:
        ocr.check_model_path(foreign)
    assert e.value.code == "OCR_UNAVAILABLE" and "不在 rapidocr 安装包内" in e.value.message
    for name in ocr.MODEL_FILES.values():  # the packaged defaults are accepted
        assert ocr.check_model_path(ocr._package_dir() / "models" / name).is_file()


def test_missing_model_makes_the_engine_unavailable(monkeypatch):
    monkeypatch.setattr(ocr, "MODEL_FILES", {**ocr.MODEL_FILES, "Rec": "PP-OCRv6_rec_server.onnx"})
    monkeypatch.setattr(ocr, "_engine", None)
    assert ocr.engine_available() is False
    with pytest.raises(ValidationFailed) as e:
        ocr.ocr_image(Image.new("L", (64, 64), 255))
    assert e.value.code == "OCR_UNAVAILABLE" and "rapidocr==3.10.0" in e.value.message


def test_rapidocr_downloader_refuses(page: OcrPage, tmp_path: Path):
    from rapidocr.utils.download_file import DownloadFile, DownloadFileInput
    from rapidocr.utils.log import logger

    target = tmp_path / "model.onnx"
    with pytest.raises(ValidationFailed) as e:
        DownloadFile.run(DownloadFileInput(file_url="https://www.modelscope.cn/x.onnx", save_path=target,
                                           logger=logger, sha256=None))
    assert e.value.code == "OCR_UNAVAILABLE" and not target.exists()


def _unshare_works() -> bool:
    exe = shutil.which("unshare")
    if not exe:
        return False
    try:
        return subprocess.run([exe, "-n", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


NET_CUT_SCRIPT = textwrap.dedent("""
    import os, socket, sys
    if os.environ.get("CUT_SOCKETS"):
        def refuse(self, *a, **k):
            raise OSError("network cut by the test")
        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
    try:
        socket.create_connection(("1.1.1.1", 443), timeout=3).close()
        sys.exit("the network is reachable: the test would prove nothing")
    except OSError:
        pass
    from PIL import Image
    from dangan.digitise.ocr import ocr_image
    print("TEXT=" + ocr_image(Image.open(sys.argv[1])).text.replace("\\n", "|"))
""")


def test_ocr_runs_with_the_network_cut(tmp_path: Path):
    img = draw_page(["数字化档案"], [(20, 20)], size=(320, 100))
    path = tmp_path / "p.png"
    img.save(path)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-c", NET_CUT_SCRIPT, str(path)]
    if _unshare_works():
        cmd = ["unshare", "-n", *cmd]  # a network namespace with no interface at all
    else:
        env["CUT_SOCKETS"] = "1"
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "TEXT=数字化档案" in proc.stdout
    assert "download" not in proc.stderr.lower() and "[INFO]" not in proc.stderr


def test_ocr_many_in_parallel_with_progress(tmp_path: Path):
    tif = tmp_path / "scan.tif"
    first = draw_page(["第一页"], [(20, 20)], size=(240, 100))
    second = Image.new("L", (240, 100), 255)
    first.save(tif, save_all=True, append_images=[second], dpi=(200, 200))
    seen: list[tuple[int, int]] = []
    items = [OcrTask(str(tif), "scan.tif", 1), draw_page(["第二件"], [(20, 20)], size=(240, 100)),
             OcrTask(str(tif), "scan.tif", 7)]
    pages = ocr.ocr_many(items, workers=8, progress=lambda d, t: seen.append((d, t)))
    assert [norm(p.text) for p in pages] == ["", "第二件", ""]
    assert pages[0].index == 1 and pages[0].error is None
    assert pages[2].error_code == "PAGE_NOT_FOUND" and "第 8 页" in (pages[2].error or "")
    assert seen[0] == (0, 3) and seen[-1] == (3, 3) and len(seen) == 4
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_ocr_file_reads_every_page(tmp_path: Path):
    tif = tmp_path / "two.tif"
    draw_page(["档案"], [(20, 20)], size=(200, 100)).convert("1").save(
        tif, save_all=True, append_images=[Image.new("1", (200, 100), 1)], compression="group4", dpi=(300, 300))
    pages = ocr.ocr_file(tif, "two.tif")
    assert [p.index for p in pages] == [0, 1]
    assert norm(pages[0].text) == "档案" and pages[1].text == ""
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"II*\x00" + b"\x00" * 20)
    with pytest.raises(ValidationFailed) as e:
        ocr.ocr_file(broken, "broken.tif")
    assert e.value.code == "IMAGE_UNREADABLE"


def test_reading_order_rows_tolerate_skew_and_columns_read_right_to_left():
    def ln(text, x0, y0, x1, y1):
        return OcrLine(text, (x0, y0, x1, y1), 0.9)

    # two text blocks on one skewed row (the right one sits 12 px lower), then the next row
    lines = [ln("乙", 520, 112, 900, 160), ln("丙", 40, 200, 500, 250), ln("甲", 40, 100, 480, 148)]
    assert [x.text for x in reading_order(lines)] == ["甲", "乙", "丙"]
    cols = [ln("左列文字", 100, 50, 150, 400), ln("右列文字", 300, 50, 350, 400), ln("中列文字", 200, 60, 250, 380)]
    assert [x.text for x in reading_order(cols)] == ["右列文字", "中列文字", "左列文字"]
    assert reading_order([ln("", 0, 0, 1, 1)]) == []


def test_page_round_trips_through_a_dict(page: OcrPage):
    again = OcrPage.from_dict(page.as_dict())
    assert again == page


def test_upside_down_line_strip_is_read(page: OcrPage, monkeypatch):
    # a cut-out text line stored turned by 180° (PaddleOCR's word_4.jpg): a strip of one line, which the line
    # classifier turns (read as one line when detection finds nothing on it)
    from conftest import CORPUS

    path = CORPUS / "scans" / "paddleocr-line-shilihuoli.jpg"
    if not path.is_file():
        if IN_CI:
            pytest.fail(f"corpus file missing under CI=true: {path}")
        pytest.skip("corpus not available")
    got = ocr.ocr_image(Image.open(path).convert("RGB"))
    assert norm(got.text) == "实力活力"
    x0, y0, x1, y1 = got.lines[0].box
    assert x0 < 10 and y0 < 10 and x1 > got.width - 10 and y1 > got.height - 10
    monkeypatch.setattr(ocr, "_lines", lambda res, w, h: [])  # as if detection had found nothing on the strip
    again = ocr.ocr_image(Image.open(path).convert("RGB"))
    assert norm(again.text) == "实力活力" and again.lines[0].box == (0.0, 0.0, float(got.width), float(got.height))


def test_page_orientation_turns_lines_only_with_the_page():
    import numpy as np

    class FakeCls:
        cls_thresh = 0.9

        def __init__(self, labels):
            self.labels = labels

        def __call__(self, imgs):
            from types import SimpleNamespace

            return SimpleNamespace(img_list=["turned"] * len(imgs), cls_res=self.labels)

    crops = [np.arange(6, dtype=np.uint8).reshape(2, 3) for _ in range(4)]
    one_of_four = ocr._PageOrientation(FakeCls([("180", 0.99), ("0", 0.99), ("0", 0.9), ("0", 0.95)]))
    out = one_of_four(crops)
    assert all(o is c for o, c in zip(out.img_list, crops, strict=True))  # an upright page: nothing turned
    three_of_four = ocr._PageOrientation(FakeCls([("180", 0.99), ("180", 0.95), ("0", 0.9), ("180", 0.97)]))
    out = three_of_four(crops)
    assert all((o == c[::-1, ::-1]).all() for o, c in zip(out.img_list, crops, strict=True))  # the page turns
    strip = ocr._PageOrientation(FakeCls([("180", 0.99)]))
    assert strip(crops[:1]).img_list == ["turned"]  # one line: the classifier's own decision
