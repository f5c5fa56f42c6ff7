"""digitise.images: every scan format page by page, orientation, transparency, bounded memory, bad input."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, features

from conftest import CORPUS, IN_CI
from dangan.digitise import images
from dangan.digitise.images import PageImage, iter_pages, page_count, scan_properties
from dangan.errors import ValidationFailed

SCANS = CORPUS / "scans"
FORMATS = CORPUS / "formats"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir() and not IN_CI, reason=f"test corpus not found at {CORPUS}")


def _pages(path: str | Path | bytes, **kw: object) -> list[PageImage]:
    return list(iter_pages(path, **kw))  # type: ignore[arg-type]


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _text_page(size: tuple[int, int] = (600, 400), mode: str = "RGB", label: str = "") -> Image.Image:
    im = Image.new(mode, size, "white" if mode != "1" else 1)
    d = ImageDraw.Draw(im)
    for y in range(30, size[1] - 30, 40):
        d.rectangle([30, y, size[0] - 30, y + 12], fill="black" if mode != "1" else 0)
    if label:
        d.text((5, 5), label, fill="black" if mode != "1" else 0)
    return im


# ------------------------------------------------------------------------------------------- formats


@needs_corpus
def test_tiff_g3_and_g4_from_the_corpus() -> None:
    g3 = FORMATS / "tiff-g3-fax-scan.tif"
    before = _sha(g3)
    [p] = _pages(g3)
    assert (p.width, p.height, p.dpi, p.colour, p.compression) == (2464, 3248, (300.0, 300.0), "黑白", "CCITT G3")
    assert p.image is not None and p.image.mode == "L" and p.image.size == (2464, 3248) and p.scale == 1.0
    assert p.error is None and p.format == "TIFF"
    assert _sha(g3) == before  # never altered

    [g4] = _pages(FORMATS / "tiff-g4-valid-jhove.tif")
    assert (g4.width, g4.height, g4.dpi, g4.compression) == (2948, 4620, (600.0, 600.0), "CCITT G4")
    assert g4.image is not None and max(g4.image.size) == 3508  # capped at max_side
    assert g4.scale == pytest.approx(3508 / 4620, abs=1e-3)
    props = scan_properties(FORMATS / "tiff-g4-valid-jhove.tif")
    assert props["扫描分辨率"] == "600 dpi" and props["扫描色彩模式"] == "黑白" and props["图像压缩方案"] == "CCITT G4"
    assert "PIXTIFF" in props["software"]


def test_multipage_tiff_lzw_g4_jpeg_with_device_metadata(tmp_path: Path) -> None:
    rgb = [_text_page(label=f"p{i}") for i in range(3)]
    f = tmp_path / "Z109-WS·2024-Y-BGS-0001.tif"
    rgb[0].save(
        f, "TIFF", save_all=True, append_images=rgb[1:], compression="tiff_lzw", dpi=(300, 300),
        tiffinfo={271: "PFU", 272: "fi-7160", 305: "PaperStream Capture 2.1"},
    )  # fmt: skip
    pages = _pages(f)
    assert [p.index for p in pages] == [0, 1, 2]
    assert all(p.compression == "LZW" and p.colour == "彩色" and p.image and p.image.mode == "RGB" for p in pages)
    assert page_count(f) == 3
    props = scan_properties(f)
    assert props["pages"] == 3 and props["device"] == "PFU fi-7160" and props["software"].startswith("PaperStream")
    assert _pages(f)[0].info["device"] == "PFU fi-7160"

    g4 = tmp_path / "g4.tif"
    bw = [_text_page(mode="1") for _ in range(2)]
    bw[0].save(g4, "TIFF", save_all=True, append_images=bw[1:], compression="group4", dpi=(200, 200))
    pages = _pages(g4)
    assert [(p.compression, p.colour, p.dpi) for p in pages] == [("CCITT G4", "黑白", (200.0, 200.0))] * 2
    assert pages[1].image is not None and pages[1].image.getpixel((40, 35)) == 0  # black bar, white = 255

    jt = tmp_path / "jpeg-in-tiff.tif"
    _text_page().save(jt, "TIFF", compression="jpeg", dpi=(300, 300))
    [p] = _pages(jt)
    assert p.compression == "JPEG" and p.image is not None


def test_multipage_tiff_with_one_broken_page(tmp_path: Path) -> None:
    pages = [_text_page(label=f"page {i}") for i in range(3)]
    buf = io.BytesIO()
    pages[0].save(buf, "TIFF", save_all=True, append_images=pages[1:], compression="tiff_lzw", dpi=(300, 300))
    data = bytearray(buf.getvalue())
    with Image.open(io.BytesIO(bytes(data))) as src:
        src.seek(1)
        for off, cnt in zip(src.tag_v2[273], src.tag_v2[279], strict=True):
            data[off : off + cnt] = bytes((x * 37 + 11) % 256 for x in range(cnt))  # garbage LZW for page 2
    f = tmp_path / "broken.tif"
    f.write_bytes(bytes(data))
    out = _pages(f)
    assert [p.index for p in out] == [0, 1, 2]
    assert out[0].image is not None and out[2].image is not None and out[0].error is None
    assert out[1].image is None and out[1].error_code == "IMAGE_CORRUPT" and "重新扫描" in (out[1].error or "")
    assert out[1].width == 600 and out[1].compression == "LZW"  # what is known of the page is still there


def _rotated_jpeg(path: Path, orientation: int) -> Image.Image:
    upright = Image.new("RGB", (300, 200), "white")
    ImageDraw.Draw(upright).rectangle([0, 0, 60, 40], fill="black")  # black block at the top-left
    stored = {1: upright, 3: upright.rotate(180), 6: upright.rotate(90, expand=True), 8: upright.rotate(270, expand=True)}[orientation]
    exif = Image.Exif()
    exif[274] = orientation
    stored.save(path, "JPEG", exif=exif, dpi=(300, 300), quality=95)
    return upright


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_jpeg_exif_orientation_is_honoured(tmp_path: Path, orientation: int) -> None:
    f = tmp_path / f"o{orientation}.jpg"
    _rotated_jpeg(f, orientation)
    [p] = _pages(f)
    assert p.orientation_applied == orientation
    assert (p.width, p.height) == (300, 200)  # as the page is seen, not as stored
    assert p.image is not None and p.image.size == (300, 200)
    assert p.image.convert("L").getpixel((10, 10)) < 60 and p.image.convert("L").getpixel((290, 190)) > 200


@needs_corpus
def test_corpus_exif_rotated_jpeg_comes_out_upright() -> None:
    f = SCANS / "rapidocr-exif-rotated.jpg"
    [p] = _pages(f)
    assert p.orientation_applied == 3 and p.image is not None
    with Image.open(f) as raw:
        stored = np.asarray(raw.convert("L"), dtype=np.int16)
    got = np.asarray(p.image.convert("L"), dtype=np.int16)
    assert np.abs(got - stored[::-1, ::-1]).mean() < 2  # = the stored pixels turned 180°
    assert np.abs(got - stored).mean() > 5


@needs_corpus
def test_transparent_png_is_composited_on_white() -> None:
    [p] = _pages(SCANS / "rapidocr-transparent-black-text.png")
    assert p.image is not None and p.image.mode in ("L", "RGB") and p.compression == "PNG"
    a = np.asarray(p.image.convert("L"))
    ink = (a < 128).mean()
    assert 0.01 < ink < 0.3  # black text on white, not an all-black page
    assert a[0, 0] == 255


@needs_corpus
def test_jpeg2000() -> None:
    if not features.check("jpg_2000"):
        [p] = _pages(FORMATS / "jpeg2000-photo.jp2")
        assert p.error_code == "JPEG2000_UNSUPPORTED" and "OpenJPEG" in (p.error or "")
        return
    [p] = _pages(FORMATS / "jpeg2000-photo.jp2")
    assert p.compression == "JPEG 2000" and p.image is not None and p.image.size == (906, 582)
    [p] = _pages(FORMATS / "jpeg2000-photo.jp2", max_side=300)  # decoded at a lower resolution level
    assert p.image is not None and max(p.image.size) == 300 and (p.width, p.height) == (906, 582)
    [bad] = _pages(FORMATS / "jpeg2000-damaged-header.jp2")
    assert bad.image is None and bad.error_code in ("IMAGE_CORRUPT", "IMAGE_TRUNCATED") and bad.error


@needs_corpus
def test_scanned_pdf_dpi_from_the_embedded_image() -> None:
    [p] = _pages(CORPUS / "pdf" / "ocr-sandwich-scanned-page.pdf")
    assert p.format == "PDF" and p.dpi == (300.0, 300.0) and p.colour == "黑白" and p.compression == "CCITT G4"
    assert (p.width, p.height) == (2550, 3300) and p.image is not None and p.image.size == (2550, 3300)


def test_pdf_made_of_page_images(tmp_path: Path) -> None:
    f = tmp_path / "scan.pdf"
    a, b = _text_page((1654, 2339)), _text_page((1654, 2339), mode="L")  # A4 at 200 dpi
    a.save(f, "PDF", save_all=True, append_images=[b], resolution=200)
    pages = _pages(f, max_side=1000)
    assert [p.index for p in pages] == [0, 1]
    assert pages[0].dpi == pytest.approx((200.0, 200.0), abs=0.5) and pages[0].colour == "彩色"
    assert pages[1].colour == "灰度" and pages[1].image is not None and pages[1].image.mode == "L"
    assert (pages[0].width, pages[0].height) == (1654, 2339)
    assert pages[0].image is not None and max(pages[0].image.size) == 1000
    assert page_count(f) == 2


def test_bilevel_pdf_and_other_modes(tmp_path: Path) -> None:
    f = tmp_path / "bw.pdf"
    _text_page((1240, 1754), mode="1").save(f, "PDF", resolution=150)
    [p] = _pages(f)
    assert p.colour == "黑白" and p.compression == "CCITT G4" and p.dpi == pytest.approx((150.0, 150.0), abs=0.5)
    assert scan_properties(f)["图像压缩方案"] == "CCITT G4"

    cmyk = tmp_path / "cmyk.jpg"
    _text_page().convert("CMYK").save(cmyk, "JPEG", dpi=(300, 300))
    [p] = _pages(cmyk)
    assert p.image is not None and p.image.mode == "RGB" and p.image.getpixel((5, 390)) == pytest.approx((255, 255, 255), abs=8)

    pal = tmp_path / "pal.png"
    im = _text_page().convert("P")
    im.info["transparency"] = im.getpixel((0, 0))  # the paper colour transparent
    im.save(pal, transparency=im.getpixel((0, 0)))
    [p] = _pages(pal)
    assert p.image is not None and p.image.getpixel((0, 0)) in (255, (255, 255, 255))

    g16 = tmp_path / "g16.png"
    Image.fromarray(np.asarray(_text_page(mode="L"), dtype=np.uint16) * 257).save(g16)
    [p] = _pages(g16)
    assert p.colour == "灰度" and p.image is not None and p.image.mode == "L" and p.image.getpixel((0, 0)) == 255


@pytest.mark.parametrize("banded", [False, True])
@pytest.mark.parametrize("compression", [None, "tiff_lzw"])
def test_tiff_orientation_tag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, banded: bool, compression: str | None) -> None:
    upright = Image.new("L", (300, 200), 255)
    ImageDraw.Draw(upright).rectangle([0, 0, 60, 40], fill=0)
    f = tmp_path / "o6.tif"
    kw: dict[str, object] = {"compression": compression, "strip_size": 1200} if compression else {}
    upright.rotate(90, expand=True).save(f, "TIFF", tiffinfo={274: 6}, **kw)  # stored turned, tag says turn back
    if banded:
        monkeypatch.setattr(images, "FULL_DECODE_BYTES", 5000)
    [p] = _pages(f)
    assert p.error is None and p.orientation_applied == 6 and (p.width, p.height) == (300, 200)
    assert p.image is not None and p.image.size == (300, 200)
    assert p.image.getpixel((10, 10)) == 0 and p.image.getpixel((290, 190)) == 255


# ------------------------------------------------------------------------------------------- bad input


@needs_corpus
@pytest.mark.parametrize(
    "rel, why",
    [
        ("formats/jpeg-corrupt-bytes-removed.jpg", "损坏"),
        ("formats/zero-byte-with-pdf-extension.pdf", "文件为空"),
        ("formats/not-a-pdf-text-named.pdf", "不是可识别的扫描图像"),
        ("formats/gif-corrupt-bytes-removed.gif", "不是可识别的扫描图像"),
        ("pdf/truncated-chinese-word-contract.pdf", "PDF"),
        ("pdf/encrypted-userpw-user.pdf", "加密"),
    ],
)
def test_unreadable_files_raise_image_unreadable(rel: str, why: str) -> None:
    with pytest.raises(ValidationFailed) as e:
        iter_pages(CORPUS / rel)
    assert e.value.code == "IMAGE_UNREADABLE" and why in e.value.message
    assert Path(rel).name in e.value.message
    with pytest.raises(ValidationFailed):
        page_count(CORPUS / rel)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    for p, why in ((tmp_path / "nope.tif", "不存在"), (tmp_path, "目录")):
        with pytest.raises(ValidationFailed) as e:
            iter_pages(p)
        assert e.value.code == "IMAGE_UNREADABLE" and why in e.value.message


@needs_corpus
def test_invalid_tiff_gives_page_errors_not_a_crash() -> None:
    pages = _pages(FORMATS / "tiff-invalid-jhove.tif")
    assert pages and all(p.image is None and p.error and p.error_code for p in pages)
    assert page_count(FORMATS / "tiff-invalid-jhove.tif") == len(pages)


@pytest.mark.parametrize("lenient_pillow", [False, True])
def test_truncated_jpeg_png_and_tiff(tmp_path: Path, lenient_pillow: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import ImageFile

    # WeasyPrint, imported for the PDF outputs, turns LOAD_TRUNCATED_IMAGES on process-wide: a broken scan must
    # still be refused, not padded with grey
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", lenient_pillow)
    src = _text_page((800, 600))
    for ext, kw in (("jpg", {"quality": 90}), ("png", {}), ("tif", {})):  # Pillow's raw TIFF: directory first
        whole = io.BytesIO()
        src.save(whole, {"jpg": "JPEG", "png": "PNG", "tif": "TIFF"}[ext], **kw)
        f = tmp_path / f"cut.{ext}"
        f.write_bytes(whole.getvalue()[: len(whole.getvalue()) * 2 // 3])
        [p] = _pages(f)
        assert p.image is None, ext
        assert p.error_code in ("IMAGE_TRUNCATED", "IMAGE_CORRUPT"), (ext, p.error_code, p.error)
        assert p.width == 800 and p.height == 600
    whole = io.BytesIO()
    src.save(whole, "TIFF", compression="tiff_lzw")  # libtiff writes the directory after the data
    f = tmp_path / "cut-lzw.tif"
    f.write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    with pytest.raises(ValidationFailed) as e:
        iter_pages(f)
    assert e.value.code == "IMAGE_UNREADABLE" and "cut-lzw.tif" in e.value.message


def test_one_pixel_image(tmp_path: Path) -> None:
    f = tmp_path / "dot.png"
    Image.new("L", (1, 1), 0).save(f)
    [p] = _pages(f)
    assert (p.width, p.height) == (1, 1) and p.image is not None and p.image.size == (1, 1) and p.error is None


def test_files_named_in_gbk(tmp_path: Path) -> None:
    raw_name = "扫描件第1页.tif".encode("gbk")
    raw_path = os.fsencode(tmp_path) + b"/" + raw_name
    buf = io.BytesIO()
    _text_page(mode="1").save(buf, "TIFF", compression="group4", dpi=(300, 300))
    with open(raw_path, "wb") as fh:
        fh.write(buf.getvalue())
    for path in (raw_path, os.fsdecode(raw_path)):  # bytes, and str with surrogate escapes
        [p] = _pages(path)
        assert p.image is not None and p.compression == "CCITT G4"
        assert page_count(path) == 1 and scan_properties(path)["pages"] == 1
    bad_path = os.fsencode(tmp_path) + b"/" + "损坏的扫描件.jpg".encode("gbk")
    with open(bad_path, "wb") as fh:
        fh.write(b"\xff\xd8\xff\xe0garbage")
    with pytest.raises(ValidationFailed) as e:
        iter_pages(os.fsdecode(bad_path))
    assert "损坏的扫描件.jpg" in e.value.message  # the GBK name shown readably
    e.value.message.encode("utf-8")  # and printable (no lone surrogates)


def _tiff_header_only(path: Path, w: int, h: int) -> None:
    """A TIFF whose directory claims w×h uncompressed 8-bit pixels, with 16 bytes of data."""
    entries = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8 + 2 + 9 * 12 + 4), (277, 3, 1, 1), (278, 4, 1, h), (279, 4, 1, w * h % 2**32)]  # fmt: skip
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\0" * 4
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x80" * 16)


def _png_header_only(path: Path, w: int, h: int) -> None:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_decompression_bomb_is_a_clear_page_error(tmp_path: Path) -> None:
    f = tmp_path / "bomb.tif"
    _tiff_header_only(f, 100_000, 100_000)
    t = time.perf_counter()
    [p] = _pages(f)
    assert time.perf_counter() - t < 1
    assert p.image is None and p.error_code == "IMAGE_TOO_LARGE" and "超过上限" in (p.error or "")
    assert (p.width, p.height) == (100_000, 100_000)
    png = tmp_path / "huge.png"
    _png_header_only(png, 20_000, 20_000)  # within max_pixels, but PNG cannot be decoded in bands
    [p] = _pages(png)
    assert p.error_code == "IMAGE_TOO_LARGE" and "TIFF 或 JPEG" in (p.error or "")


# ------------------------------------------------------------------------------------------- memory


def make_big_g4(path: Path, w: int = 20_000, h: int = 20_000, band: int = 500, rps: int = 25) -> None:
    """A w×h bilevel CCITT G4 TIFF with horizontal bars, built from the strips of one small band."""
    img = Image.new("1", (w, band), 1)
    d = ImageDraw.Draw(img)
    for y in range(20, band, 60):
        d.rectangle([1000, y, w - 1000, y + 20], fill=0)
    buf = io.BytesIO()
    img.save(buf, "TIFF", compression="group4", strip_size=(w + 7) // 8 * rps)
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as src:
        assert src.tag_v2[278] == rps
        photometric = src.tag_v2[262]
        strips = [data[o : o + c] for o, c in zip(src.tag_v2[273], src.tag_v2[279], strict=True)]
    strips = strips * (h // band)
    n = len(strips)
    ntags = 10
    offs_at = 8 + 2 + ntags * 12 + 4
    cnts_at = offs_at + 4 * n
    res_at = cnts_at + 4 * n
    pos = res_at + 16
    offsets = []
    for s in strips:
        offsets.append(pos)
        pos += len(s)
    tags = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 1), (259, 3, 1, 4), (262, 3, 1, photometric), (273, 4, n, offs_at),
            (278, 4, 1, rps), (279, 4, n, cnts_at), (282, 5, 1, res_at), (283, 5, 1, res_at + 8)]  # fmt: skip
    out = b"II*\x00" + struct.pack("<IH", 8, ntags) + b"".join(struct.pack("<HHII", *t) for t in tags) + b"\0" * 4
    out += struct.pack(f"<{n}I", *offsets) + struct.pack(f"<{n}I", *(len(s) for s in strips))
    out += struct.pack("<IIII", 600, 1, 600, 1) + b"".join(strips)
    path.write_bytes(out)


def make_big_jpeg(path: Path, w: int = 20_000, h: int = 20_000) -> None:
    """A w×h baseline grey JPEG of uniform mid-grey: the headers of a small Pillow JPEG with the size changed and
    the entropy-coded data written directly (every 8×8 block: DC difference 0, end of block)."""
    buf = io.BytesIO()
    Image.new("L", (16, 16), 128).save(buf, "JPEG", quality=75, dpi=(400, 400))
    d = bytearray(buf.getvalue())
    i = d.index(b"\xff\xc0")
    d[i + 5 : i + 9] = struct.pack(">HH", h, w)
    j = d.index(b"\xff\xda")
    header = bytes(d[: j + 2 + struct.unpack(">H", d[j + 2 : j + 4])[0]])
    assert d[len(header) : -2] == b"\x28\xa2\x8a"  # the 4 blocks of the small image: 4 × "00 1010"
    path.write_bytes(header + b"\x28\xa2\x8a" * (w // 8 * h // 8 // 4) + b"\xff\xd9")


# Peak RSS of the child itself: VmHWM starts afresh at exec, while ru_maxrss would carry pytest's own peak over.
_MEASURE = """
import json, resource, sys, time
import numpy as np
from dangan.digitise.images import iter_pages
def peak_kb():
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
r0 = peak_kb()
t = time.perf_counter()
[p] = list(iter_pages(sys.argv[1]))
dt = time.perf_counter() - t
r1 = peak_kb()
a = np.asarray(p.image)
print(json.dumps(dict(w=p.width, h=p.height, size=p.image.size, scale=p.scale, err=p.error, dpi=p.dpi,
                      grow_mb=(r1 - r0) / 1024, seconds=dt, col_dark=float((a[:, 1000] < 128).mean()),
                      edge_min=int(a[:, 50].min()), mean=float(a.mean()))))
"""


def _decode_in_child(f: Path) -> dict[str, object]:
    res = subprocess.run([sys.executable, "-c", _MEASURE, str(f)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    import json

    return json.loads(res.stdout.strip().splitlines()[-1])


def test_20000_square_g4_tiff_is_decoded_reduced_in_bounded_memory(tmp_path: Path) -> None:
    f = tmp_path / "big.tif"
    make_big_g4(f)
    assert f.stat().st_size < 200_000
    r = _decode_in_child(f)
    assert r["err"] is None and (r["w"], r["h"]) == (20_000, 20_000) and r["dpi"] == [600.0, 600.0]
    assert r["size"] == [3508, 3508] and r["scale"] == pytest.approx(3508 / 20_000)
    # decoding it whole would take 400 MB (Pillow keeps 1 byte per bilevel pixel)
    assert r["grow_mb"] < 120, r
    assert 0.2 < r["col_dark"] < 0.5 and r["edge_min"] > 240  # the bars survived the reduction
    print(f"20k×20k G4 TIFF: {r['seconds']:.2f} s, peak RSS growth {r['grow_mb']:.0f} MB")


def test_20000_square_jpeg_is_decoded_reduced_in_bounded_memory(tmp_path: Path) -> None:
    f = tmp_path / "big.jpg"
    make_big_jpeg(f)
    r = _decode_in_child(f)
    assert r["err"] is None and (r["w"], r["h"]) == (20_000, 20_000) and r["dpi"] == [400.0, 400.0]
    assert r["size"] == [3508, 3508] and r["mean"] == pytest.approx(128, abs=2)
    assert r["grow_mb"] < 120, r  # whole: 400 MB grey
    print(f"20k×20k JPEG: {r['seconds']:.2f} s, peak RSS growth {r['grow_mb']:.0f} MB")


def test_pillow_limits_become_page_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "page.tif"
    _text_page((300, 200)).save(f, "TIFF", compression="tiff_lzw", strip_size=3000)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20_000)  # a page above Pillow's limit is read band by band
    [p] = _pages(f)
    assert p.error is None and p.image is not None and p.image.size == (300, 200)

    def bomb(*_a: object, **_k: object) -> None:
        raise Image.DecompressionBombError("Image size (1 pixels) exceeds limit")

    monkeypatch.setattr(images, "_decode", bomb)
    [p] = _pages(f)
    assert p.image is None and p.error_code == "IMAGE_TOO_LARGE" and "像素过多" in (p.error or "")


def test_large_jpeg_is_decoded_with_draft(tmp_path: Path) -> None:
    f = tmp_path / "big.jpg"
    _text_page((6000, 4000), mode="L").save(f, "JPEG", quality=70, dpi=(400, 400))
    [p] = _pages(f, max_side=1000)
    assert (p.width, p.height) == (6000, 4000) and p.image is not None and p.image.size == (1000, 667)
    assert p.scale == pytest.approx(1000 / 6000, abs=1e-3) and p.colour == "灰度"


def test_banded_tiff_matches_whole_decode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Force the strip-by-strip path on small files and compare with Pillow decoding them whole."""
    cases = {
        "g4.tif": (_text_page((1300, 1700), mode="1"), {"compression": "group4", "strip_size": 163 * 7}),
        "lzw.tif": (_text_page((1300, 1700)), {"compression": "tiff_lzw", "strip_size": 1300 * 3 * 9}),
        "raw.tif": (_text_page((1300, 1700), mode="L"), {"strip_size": 1300 * 11}),
    }
    whole: dict[str, Image.Image] = {}
    for name, (im, kw) in cases.items():
        im.save(tmp_path / name, "TIFF", dpi=(300, 300), **kw)
        [p] = _pages(tmp_path / name, max_side=400)
        assert p.image is not None
        whole[name] = p.image
    _tiled_tiff(tmp_path / "tiled.tif", _text_page((1300, 1700), mode="L"))
    [p] = _pages(tmp_path / "tiled.tif", max_side=400)
    assert p.image is not None
    whole["tiled.tif"] = p.image
    monkeypatch.setattr(images, "FULL_DECODE_BYTES", 50_000)
    for name, ref in whole.items():
        [p] = _pages(tmp_path / name, max_side=400)
        assert p.error is None and p.image is not None, (name, p.error)
        assert p.image.size == ref.size and p.width == 1300 and p.height == 1700
        diff = np.abs(np.asarray(p.image, dtype=np.int16) - np.asarray(ref, dtype=np.int16)).mean()
        assert diff < 8, (name, diff)


def _tiled_tiff(path: Path, im: Image.Image, tile: int = 256) -> None:
    """An uncompressed 8-bit grey tiled TIFF (Pillow cannot write tiles)."""
    w, h = im.size
    a = np.asarray(im.convert("L"))
    across, down = -(-w // tile), -(-h // tile)
    padded = np.full((down * tile, across * tile), 255, np.uint8)
    padded[:h, :w] = a
    tiles = [padded[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile].tobytes() for r in range(down) for c in range(across)]
    n = len(tiles)
    ntags = 10
    offs_at = 8 + 2 + ntags * 12 + 4
    cnts_at = offs_at + 4 * n
    pos = cnts_at + 4 * n
    offsets = []
    for t in tiles:
        offsets.append(pos)
        pos += len(t)
    tags = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1), (277, 3, 1, 1),
            (322, 3, 1, tile), (323, 3, 1, tile), (324, 4, n, offs_at), (325, 4, n, cnts_at)]  # fmt: skip
    out = b"II*\x00" + struct.pack("<IH", 8, ntags) + b"".join(struct.pack("<HHII", *t) for t in tags) + b"\0" * 4
    out += struct.pack(f"<{n}I", *offsets) + struct.pack(f"<{n}I", *(len(t) for t in tiles)) + b"".join(tiles)
    path.write_bytes(out)
