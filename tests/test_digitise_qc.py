"""digitise.qc: resolution, blank pages, skew, dark borders, duplicates and the access copy of scanned pages."""

from __future__ import annotations

import hashlib
import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from conftest import CORPUS, IN_CI
from dangan.digitise.images import PageImage, iter_pages
from dangan.digitise.qc import QcSettings, access_image, hamming, mark_duplicates, measure

FONT = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
if not FONT.exists() and not IN_CI:
    pytest.skip(f"CJK font not found at {FONT} (Debian fonts-noto-cjk)", allow_module_level=True)
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir() and not IN_CI, reason=f"test corpus not found at {CORPUS}")

TEXT = (
    "为了加强档案管理，规范档案收集、整理工作，有效保护和利用档案，提高档案信息化建设水平，推进国家治理体系和治理能力"
    "现代化，为中国特色社会主义事业服务，制定本法。从事档案收集、整理、保护、利用及其监督管理活动，适用本法。本法所称"
    "档案，是指过去和现在的机关、团体、企业事业单位和其他组织以及个人从事经济、政治、文化、社会、生态文明、军事、外事、"
    "科技等方面活动直接形成的对国家和社会具有保存价值的各种文字、图表、声像等不同形式的历史记录。各级人民政府应当加强"
    "档案工作，把档案事业纳入国民经济和社会发展规划，将档案事业发展经费列入政府预算，确保档案事业发展与国民经济和社会"
    "发展水平相适应。国家档案馆馆藏的永久保管档案分一级、二级、三级管理，分级的具体标准和管理办法由国家档案主管部门制定。"
) * 6


def text_page(dpi: int = 300, pt: float = 12, offset: int = 0, lines: int | None = None) -> Image.Image:
    """An A4 page of Chinese text lines in Noto Sans CJK, grey, white paper."""
    w, h = round(8.27 * dpi), round(11.69 * dpi)
    im = Image.new("L", (w, h), 255)
    d = ImageDraw.Draw(im)
    size = round(pt / 72 * dpi)
    font = ImageFont.truetype(str(FONT), size)
    margin = dpi
    per_line = (w - 2 * margin) // size
    y, i, n = margin, offset, 0
    while y < h - margin and (lines is None or n < lines):
        d.text((margin, y), TEXT[i : i + per_line], font=font, fill=0)
        i, y, n = i + per_line, y + round(size * 1.6), n + 1
    return im


def page_of(img: Image.Image, dpi: float | None = 300.0, scale: float = 1.0) -> PageImage:
    w, h = round(img.width / scale), round(img.height / scale)
    return PageImage(0, w, h, (dpi, dpi) if dpi else None, "灰度", "无压缩", 1, img, scale)


def codes(qc: object) -> dict[str, str]:
    return {f["code"]: f["severity"] for f in qc.flags}  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def straight() -> Image.Image:
    return text_page(dpi=200)


def page200(img: Image.Image, scale: float = 1.0) -> PageImage:
    return page_of(img, dpi=200.0, scale=scale)


# ------------------------------------------------------------------------------------------- skew


@pytest.mark.parametrize("angle", [3.0, -3.0, 0.8, -7.5])
def test_skew_is_measured_within_a_fifth_of_a_degree(straight: Image.Image, angle: float) -> None:
    turned = straight.rotate(-angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)  # + = clockwise
    qc = measure(page200(turned))
    assert qc.skew == pytest.approx(angle, abs=0.2)
    assert codes(qc).get("SKEW") == "warn"
    assert ("顺时针" if angle > 0 else "逆时针") in next(f["message"] for f in qc.flags if f["code"] == "SKEW")
    assert not qc.blank and qc.ink_ratio > 0.02 and qc.phash and len(qc.phash) == 16


def test_skew_of_an_a4_page_at_300_dpi_in_under_a_third_of_a_second() -> None:
    turned = text_page(dpi=300).rotate(-3, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=255)
    page = page_of(turned)
    t = time.process_time()
    qc = measure(page)
    cpu = time.process_time() - t
    assert qc.skew == pytest.approx(3.0, abs=0.2)
    assert cpu < 0.3, f"{cpu:.3f} s CPU for one A4 page at 300 dpi"
    print(f"QC of one A4 page at 300 dpi: {cpu:.3f} s CPU")


def test_straight_page_passes(straight: Image.Image) -> None:
    qc = measure(page200(straight))
    assert abs(qc.skew) < 0.15 and qc.flags == [] and qc.border is None and not qc.failed
    assert qc.line_height_mm == pytest.approx(12 * 0.3528, abs=0.6)  # 12 pt type
    acc = access_image(page200(straight), qc)
    assert acc.size == straight.size  # nothing to correct


def test_access_copy_is_deskewed_with_white_fill_and_the_page_untouched(straight: Image.Image) -> None:
    turned = straight.rotate(-3, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    page = page200(turned)
    before = hashlib.sha256(turned.tobytes()).hexdigest()
    qc = measure(page)
    acc = access_image(page, qc)
    assert hashlib.sha256(turned.tobytes()).hexdigest() == before and page.image is turned
    assert acc.width > turned.width and acc.height > turned.height  # expanded, nothing cut off
    a = np.asarray(acc)
    assert a[0, 0] == 255 and a[-1, -1] == 255  # white corners, not black
    again = measure(page200(acc))
    assert abs(again.skew) < 0.2 and "SKEW" not in codes(again)


def test_rotated_g4_tiff_end_to_end(tmp_path: Path, straight: Image.Image) -> None:
    f = tmp_path / "Z109-WS·2024-Y-BGS-0007-0001.tif"
    turned = straight.rotate(-3, expand=True, fillcolor=255).point(lambda v: 255 if v > 128 else 0).convert("1")
    turned.save(f, "TIFF", compression="group4", dpi=(200, 200))
    before = f.read_bytes()
    [page] = list(iter_pages(f))
    qc = measure(page)
    assert qc.skew == pytest.approx(3.0, abs=0.2) and not qc.failed and qc.dpi == 200
    acc = access_image(page, qc)
    assert abs(measure(page200(acc, scale=page.scale)).skew) < 0.2
    assert f.read_bytes() == before  # the master is never altered


@pytest.mark.parametrize("angle", [2.0, -2.0])
def test_skew_of_vertical_text(angle: float) -> None:
    font = ImageFont.truetype(str(FONT), 60)
    im = Image.new("L", (1654, 2338), 255)
    d = ImageDraw.Draw(im)
    for c in range(12):  # right to left columns, characters top to bottom
        for r in range(28):
            d.text((1400 - c * 110, 150 + r * 72), TEXT[c * 28 + r], font=font, fill=0)
    turned = im.rotate(-angle, expand=True, fillcolor=255)
    qc = measure(page200(turned))
    assert qc.skew == pytest.approx(angle, abs=0.2)


@needs_corpus
def test_a_photograph_has_no_skew() -> None:
    [photo] = list(iter_pages(CORPUS / "formats" / "jpeg2000-photo.jp2"))
    if photo.image is None and not IN_CI:
        pytest.skip(f"JPEG 2000 not decodable here: {photo.error}")
    assert photo.image is not None, photo.error
    qc = measure(photo)
    assert qc.skew == 0.0 and "SKEW" not in codes(qc) and not qc.blank
    assert access_image(photo, qc).size == photo.image.size  # not turned on a guess


@needs_corpus
def test_corpus_pages() -> None:
    [vertical] = list(iter_pages(CORPUS / "scans" / "rapidocr-vertical-classical-scan.png"))
    qc = measure(vertical)
    assert abs(qc.skew) < 0.5 and not qc.blank
    [g3] = list(iter_pages(CORPUS / "formats" / "tiff-g3-fax-scan.tif"))
    qc = measure(g3)
    assert qc.dpi == 300 and not qc.failed and abs(qc.skew) < 0.5
    [photo] = list(iter_pages(CORPUS / "scans" / "rapidocr-exif-rotated.jpg"))
    qc = measure(photo)
    assert codes(qc)["LOW_DPI"] == "fail" and "72 dpi" in qc.flags[0]["message"]  # a phone photo, not a scan


# ------------------------------------------------------------------------------------------- resolution


def test_low_dpi_fails_and_dense_pages_need_300(straight: Image.Image) -> None:
    normal = text_page(dpi=240, pt=12)
    qc = measure(page_of(normal, dpi=240))
    assert not qc.dense and "LOW_DPI" not in codes(qc)
    qc = measure(page_of(text_page(dpi=150), dpi=150))
    assert codes(qc)["LOW_DPI"] == "fail"
    assert "150 dpi" in qc.flags[0]["message"] and "200 dpi" in qc.flags[0]["message"]

    small = text_page(dpi=240, pt=6.5)  # 小六号-size type: small and dense
    qc = measure(page_of(small, dpi=240))
    assert qc.dense and codes(qc)["LOW_DPI"] == "fail" and "300 dpi" in qc.flags[0]["message"]
    assert "细小或密集" in qc.flags[0]["message"]
    assert "LOW_DPI" not in codes(measure(page_of(text_page(dpi=300, pt=6.5), dpi=300)))

    relaxed = QcSettings(min_dpi=150, dense_min_dpi=200)
    assert "LOW_DPI" not in codes(measure(page_of(small, dpi=240), relaxed))
    qc = measure(page_of(straight, dpi=None))
    assert codes(qc)["LOW_DPI"] == "warn" and "未记录" in qc.flags[0]["message"]


# ------------------------------------------------------------------------------------------- blank pages


def _noisy_blank(rng: np.random.Generator, size: tuple[int, int] = (1654, 2338)) -> np.ndarray:
    a = np.clip(rng.normal(232, 8, size[::-1]), 0, 255).astype(np.uint8)  # paper texture
    a[rng.random(a.shape) < 0.0008] = 0  # dust specks
    return a


def test_blank_page_with_noise_specks_and_borders() -> None:
    rng = np.random.default_rng(7)
    a = _noisy_blank(rng)
    qc = measure(page200(Image.fromarray(a)))
    assert qc.blank and codes(qc)["BLANK"] == "fail" and qc.ink_ratio < 0.002
    assert "空白页" in next(f["message"] for f in qc.flags if f["code"] == "BLANK")
    a[:, :100] = 15  # the scanner lid beside a narrow sheet
    a[-80:, :] = 25
    qc = measure(page200(Image.fromarray(a)))
    assert qc.blank and codes(qc) == {"BLANK": "fail", "DARK_BORDER": "warn"}
    assert qc.skew == 0.0


def test_pages_with_little_text_are_not_blank(straight: Image.Image) -> None:
    rng = np.random.default_rng(8)
    one_line = np.minimum(np.asarray(text_page(dpi=200, lines=1)), _noisy_blank(rng))
    qc = measure(page200(Image.fromarray(one_line)))
    assert not qc.blank
    note = Image.new("L", (1654, 2338), 255)
    ImageDraw.Draw(note).text((270, 270), "此页无正文", font=ImageFont.truetype(str(FONT), 33), fill=0)
    qc = measure(page200(note))
    assert not qc.blank and "SKEW" not in codes(qc)  # five characters are too short to tell an angle
    assert not measure(page200(straight)).blank


# ------------------------------------------------------------------------------------------- borders


def test_dark_borders_give_a_crop_box_in_page_pixels_and_are_cropped(straight: Image.Image) -> None:
    img = straight.copy()
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, 119, img.height - 1], fill=10)  # left, 120 px
    d.rectangle([0, 0, img.width - 1, 79], fill=30)  # top, 80 px
    reduced = img.resize((img.width // 2, img.height // 2))  # as iter_pages gives a page scanned at 400 dpi
    page = page_of(reduced, dpi=400, scale=0.5)
    qc = measure(page)
    assert codes(qc)["DARK_BORDER"] == "warn" and abs(qc.skew) < 0.2
    assert qc.border is not None
    left, top, right, bottom = qc.border
    assert left == pytest.approx(120, abs=8) and top == pytest.approx(80, abs=8)  # original page px
    assert right == pytest.approx(page.width, abs=4) and bottom == pytest.approx(page.height, abs=4)
    acc = np.asarray(access_image(page, qc))
    assert acc.shape[1] == pytest.approx(reduced.width - 60, abs=6)
    assert (acc[:, :3] < 80).mean() < 0.05 and (acc[:3, :] < 80).mean() < 0.05  # no black edge left


def test_table_rules_are_not_borders() -> None:
    img = text_page(dpi=200)
    d = ImageDraw.Draw(img)
    d.rectangle([160, 160, img.width - 160, img.height - 160], outline=0, width=4)  # a frame inside the margins
    qc = measure(page200(img))
    assert qc.border is None and "DARK_BORDER" not in codes(qc)


# ------------------------------------------------------------------------------------------- duplicates


def test_duplicates_are_rescans_not_pages_of_the_same_layout(straight: Image.Image) -> None:
    pages = [straight] + [text_page(dpi=200, offset=900 * i) for i in range(1, 4)]
    pages += [text_page(dpi=200, lines=10), text_page(dpi=200, offset=3000, lines=10)]
    buf = io.BytesIO()
    straight.save(buf, "JPEG", quality=60)
    jpeg = Image.open(buf).convert("L")
    shifted = straight.transform(straight.size, Image.Transform.AFFINE, (1, 0, -27, 0, 1, -20), fillcolor=255)
    turned = straight.rotate(0.7, expand=True, fillcolor=255)
    rescans = [jpeg, shifted, turned]
    blank = Image.new("L", straight.size, 255)
    results = [measure(page200(p)) for p in pages + rescans + [blank, blank]]
    assert all(hamming(results[0].phash, r.phash) <= 4 for r in results[6:9])
    labels = [f"Z109-WS·2024-Y-BGS-0001 第 {i + 1} 页" for i in range(len(results))]
    t = time.perf_counter()
    mark_duplicates(results, QcSettings(), labels=labels)
    assert time.perf_counter() - t < 0.1
    dup = {i: r.duplicate_of for i, r in enumerate(results) if r.duplicate_of is not None}
    assert dup == {6: 0, 7: 0, 8: 0}
    msg = next(f for f in results[6].flags if f["code"] == "DUPLICATE")
    assert msg["severity"] == "fail" and "第 1 页" in msg["message"]
    assert all("DUPLICATE" not in codes(r) for r in results[:6] + results[9:])  # blank pages have BLANK instead
    mark_duplicates(results)  # idempotent
    assert sum("DUPLICATE" in codes(r) for r in results) == 3


# ------------------------------------------------------------------------------------------- bad pages


def test_unreadable_and_tiny_pages(tmp_path: Path) -> None:
    pages = [text_page(dpi=100).convert("RGB") for _ in range(3)]
    buf = io.BytesIO()
    pages[0].save(buf, "TIFF", save_all=True, append_images=pages[1:], compression="tiff_lzw", dpi=(300, 300))
    data = bytearray(buf.getvalue())
    with Image.open(io.BytesIO(bytes(data))) as src:
        src.seek(1)
        for off, cnt in zip(src.tag_v2[273], src.tag_v2[279], strict=True):
            data[off : off + cnt] = bytes((x * 37 + 11) % 256 for x in range(cnt))
    f = tmp_path / "broken.tif"
    f.write_bytes(bytes(data))
    results = [measure(p) for p in iter_pages(f)]
    assert [codes(r).get("UNREADABLE") for r in results] == [None, "fail", None]
    assert "第 2 页无法读取" in results[1].flags[0]["message"]
    mark_duplicates(results)
    assert results[2].duplicate_of is None or results[2].duplicate_of == 0  # identical pages 1 and 3
    assert "DUPLICATE" not in codes(results[1])

    dot = tmp_path / "dot.png"
    Image.new("L", (1, 1), 0).save(dot)
    [p] = list(iter_pages(dot))
    qc = measure(p)
    assert codes(qc) == {"LOW_DPI": "warn", "TINY": "fail"} and qc.skew == 0.0
    assert access_image(p, qc).size == (1, 1)
    white = tmp_path / "white.png"
    Image.new("L", (1, 1), 255).save(white, dpi=(300, 300))
    [p] = list(iter_pages(white))
    assert set(codes(measure(p))) == {"TINY", "BLANK"}


def test_a_failing_measurement_is_a_flag_not_a_crash(monkeypatch: pytest.MonkeyPatch, straight: Image.Image) -> None:
    from dangan.digitise import qc as qc_mod

    def broken(_a: object) -> int:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(qc_mod, "_otsu", broken)
    qc = measure(page200(straight))
    assert codes(qc) == {"UNREADABLE": "fail"} and "无法完成图像质量检查" in qc.flags[0]["message"]


def test_access_image_refuses_a_page_without_image() -> None:
    page = PageImage(0, 0, 0, None, "", "", 1, None, 0.0, error="坏页", error_code="IMAGE_CORRUPT")
    qc = measure(page)
    assert codes(qc) == {"UNREADABLE": "fail"}
    with pytest.raises(ValueError):
        access_image(page, qc)
