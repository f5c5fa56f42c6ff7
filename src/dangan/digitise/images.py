"""Scanned page images, page by page, in bounded memory.

`iter_pages` reads TIFF (multi-page, CCITT G3/G4, LZW, Deflate, JPEG-in-TIFF, PackBits, uncompressed), JPEG,
JPEG 2000, PNG and scanned PDF (rendered with pypdfium2) and yields one `PageImage` per page: the page as
an 8-bit grey or RGB Pillow image whose long side is at most `max_side`, after EXIF/TIFF orientation, with
transparency composited on white, plus the scan properties DA/T 46 asks for (扫描分辨率, 色彩模式, 图像压缩方案).

Memory stays bounded whatever the pixel size of the original: JPEG is decoded reduced by libjpeg
(`Image.draft`), JPEG 2000 at a lower resolution level (OpenJPEG `reduce`), TIFF strip by strip (or tile row by
tile row) with each band box-filtered down before the next one is read, PDF pages are rendered at the reduced
size. A format that can only be decoded whole (PNG) is refused with a clear page error above a decode budget.
The input file is only ever opened for reading.

A page that cannot be decoded gives `PageImage(image=None, error=<Chinese text>, error_code=...)` and the
iteration goes on with the next page; a file that cannot be opened at all raises
`ValidationFailed(code="IMAGE_UNREADABLE")`.
"""

from __future__ import annotations

import io
import math
import os
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import (
    Image,
    ImageFile,
    Jpeg2KImagePlugin,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    features,
)

from dangan.errors import ValidationFailed
from dangan.formats.pdfium_lock import PDFIUM

COLOUR = "彩色"
GREY = "灰度"
BILEVEL = "黑白"

#: decoded size (bytes, as Pillow stores it) above which a page is never decoded whole
FULL_DECODE_BYTES = 256 * 2**20
#: DPI used to render a PDF page that is not a single scanned image
PDF_DEFAULT_DPI = 300.0

_TIFF_COMPRESSION = {
    "raw": "无压缩",
    "tiff_ccitt": "CCITT RLE",
    "group3": "CCITT G3",
    "group4": "CCITT G4",
    "tiff_lzw": "LZW",
    "tiff_jpeg": "JPEG",
    "jpeg": "JPEG",
    "tiff_adobe_deflate": "Deflate",
    "tiff_deflate": "Deflate",
    "packbits": "PackBits",
    "tiff_raw_16": "无压缩",
    "lzma": "LZMA",
    "zstd": "ZSTD",
    "webp": "WebP",
    "tiff_thunderscan": "ThunderScan",
    "tiff_sgilog": "SGILog",
    "tiff_sgilog24": "SGILog24",
}
_PDF_FILTERS = {
    "DCTDecode": "JPEG",
    "JPXDecode": "JPEG 2000",
    "CCITTFaxDecode": "CCITT",
    "JBIG2Decode": "JBIG2",
    "FlateDecode": "Deflate",
    "LZWDecode": "LZW",
    "RunLengthDecode": "PackBits",
}
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_FORMAT_LABEL = {"TIFF": "TIFF", "JPEG": "JPEG", "JPEG2000": "JPEG 2000", "PNG": "PNG", "PDF": "PDF"}
SUPPORTED = "TIFF、JPEG、JPEG 2000、PNG 或扫描 PDF"


@dataclass
class PageImage:
    """One page of a scan file, decoded (reduced) for quality control and OCR."""

    index: int  # 0-based page within the source file
    width: int  # pixel size of the original page (after orientation, before any downscale)
    height: int
    dpi: tuple[float, float] | None  # from TIFF/JPEG/PNG metadata or PDF page size; None if unknown
    colour: str  # "彩色" | "灰度" | "黑白" (DA/T 46 色彩模式)
    compression: str  # "CCITT G4", "CCITT G3", "JPEG", "JPEG 2000", "LZW", "Deflate", "无压缩", "PNG" ...
    orientation_applied: int  # EXIF/TIFF orientation value that was honoured (1 = none)
    image: Image.Image | None  # long side capped at max_side, mode "L" or "RGB"
    scale: float  # image.size / original size (1.0 when not downscaled)
    error: str | None = None  # Chinese message when this page could not be read (image is None then)
    error_code: str | None = None  # IMAGE_TRUNCATED, IMAGE_CORRUPT, IMAGE_TOO_LARGE, JPEG2000_UNSUPPORTED ...
    format: str = ""  # "TIFF", "JPEG", "JPEG 2000", "PNG", "PDF"
    bits: int | None = None  # bits per sample of the original, when known
    info: dict[str, Any] = field(default_factory=dict)  # device/software metadata of this page, when found

    @property
    def ok(self) -> bool:
        return self.image is not None and self.error is None


class _PageError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ---------------------------------------------------------------------------------------------- opening


def display_name(path: str | Path | bytes, name: str = "") -> str:
    """A printable file name for messages: `name` if given, else the base name decoded as UTF-8, then GB18030."""
    if name:
        raw = os.fsencode(name) if isinstance(name, str) else name
    else:
        raw = os.path.basename(os.fsencode(path))
    for enc in ("utf-8", "gb18030"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    return raw.decode("utf-8", "replace")


def _unreadable(label: str, why: str) -> ValidationFailed:
    return ValidationFailed(
        f"无法读取扫描文件“{label}”：{why}。请提交 {SUPPORTED} 格式的完好文件。",
        code="IMAGE_UNREADABLE",
        message_en=f"cannot read scan file {label!r}",
        detail={"file": label},
    )


def _sniff(head: bytes) -> str | None:
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "TIFF"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
        return "JPEG2000"
    if b"%PDF-" in head[:1024]:
        return "PDF"
    return None


def _open_file(path: str | Path | bytes, label: str) -> tuple[IO[bytes], str]:
    try:
        fp = open(os.fspath(path), "rb")  # noqa: SIM115 - closed by the page iterator
    except FileNotFoundError as e:
        raise _unreadable(label, "文件不存在") from e
    except IsADirectoryError as e:
        raise _unreadable(label, "这是一个目录而不是文件") from e
    except OSError as e:
        raise _unreadable(label, f"无法打开（{e.strerror or e}）") from e
    head = fp.read(1024)
    fp.seek(0)
    if not head:
        fp.close()
        raise _unreadable(label, "文件为空（0 字节）")
    kind = _sniff(head)
    if kind is None:
        fp.close()
        raise _unreadable(label, "不是可识别的扫描图像（文件头不符合 TIFF、JPEG、JPEG 2000、PNG 或 PDF）")
    return fp, kind


def _strict() -> None:
    """Pillow must refuse a truncated image: WeasyPrint (imported for the PDF outputs) turns
    LOAD_TRUNCATED_IMAGES on process-wide, which would quietly pad a broken scan with grey."""
    ImageFile.LOAD_TRUNCATED_IMAGES = False


def _open_pil(fp: IO[bytes], kind: str, label: str) -> ImageFile.ImageFile:
    """Open with the format's plugin directly: Pillow's global decompression-bomb limit is replaced by our own
    `max_pixels` check per page, so a large but legitimate scan is read reduced instead of refused."""
    cls: Any = {
        "TIFF": TiffImagePlugin.TiffImageFile,
        "JPEG": JpegImagePlugin.JpegImageFile,
        "PNG": PngImagePlugin.PngImageFile,
        "JPEG2000": Jpeg2KImagePlugin.Jpeg2KImageFile,
    }[kind]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cls(fp)
    except Exception as e:  # every plugin signals a bad header differently (SyntaxError, TypeError, OSError ...)
        raise _unreadable(label, f"文件头或目录损坏（{_short(e)}）") from e


def _short(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text if len(text) <= 120 else text[:117] + "..."


# ---------------------------------------------------------------------------------------------- public API


def iter_pages(
    path: str | Path | bytes,
    name: str = "",
    *,
    max_side: int = 3508,
    max_pixels: int = 400_000_000,
) -> Iterator[PageImage]:
    """Yield every page of a scan file as a `PageImage` (see the module docstring).

    The file is opened and its header checked before this returns, so an unreadable file raises
    `ValidationFailed(code="IMAGE_UNREADABLE")` here, not at the first `next()`."""
    label = display_name(path, name)
    fp, kind = _open_file(path, label)
    if kind == "PDF":
        try:
            import pypdfium2 as pdfium

            with PDFIUM:
                pdf = pdfium.PdfDocument(fp)
        except Exception as e:
            fp.close()
            why = "PDF 已加密，需先解密" if "password" in str(e).lower() else f"PDF 结构损坏（{_short(e)}）"
            raise _unreadable(label, why) from e
        return _pdf_pages(pdf, fp, _CcittKind(path), max_side, max_pixels)
    try:
        im = _open_pil(fp, kind, label)
    except ValidationFailed:
        fp.close()
        raise
    return _pil_pages(im, fp, kind, label, max_side, max_pixels)


def page_count(path: str | Path | bytes, name: str = "") -> int:
    """Number of pages (TIFF frames, PDF pages; 1 for other images) without decoding any pixels."""
    label = display_name(path, name)
    fp, kind = _open_file(path, label)
    try:
        if kind == "PDF":
            import pypdfium2 as pdfium

            with PDFIUM:
                try:
                    pdf = pdfium.PdfDocument(fp)
                except Exception as e:
                    raise _unreadable(label, f"PDF 结构损坏（{_short(e)}）") from e
                try:
                    return len(pdf)
                finally:
                    pdf.close()
        im = _open_pil(fp, kind, label)
        if kind != "TIFF":
            return 1
        return _tiff_frames(im)
    finally:
        fp.close()


def scan_properties(path: str | Path | bytes, name: str = "") -> dict[str, Any]:
    """DA/T 46 数字化属性 of a scan file from its metadata (no pixels decoded beyond the first PDF page's objects).

    Keys: format, pages, width, height, dpi ([x, y] or None), colour, compression, bits, device_make,
    device_model, device, software, created, and the DA/T 46 labels 扫描分辨率, 扫描色彩模式, 图像压缩方案."""
    label = display_name(path, name)
    fp, kind = _open_file(path, label)
    props: dict[str, Any] = {"format": _FORMAT_LABEL[kind]}
    try:
        if kind == "PDF":
            import pypdfium2 as pdfium

            with PDFIUM:
                try:
                    pdf = pdfium.PdfDocument(fp)
                except Exception as e:
                    raise _unreadable(label, f"PDF 结构损坏（{_short(e)}）") from e
                try:
                    props["pages"] = len(pdf)
                    meta = pdf.get_metadata_dict(skip_empty=True)
                    if len(pdf):
                        page = pdf[0]
                        try:
                            w_pt, h_pt = page.get_size()
                            dpi, colour, compression, bits = _pdf_page_info(page)
                            if compression == "CCITT":
                                ck = _CcittKind(path)
                                compression = ck(0)
                                ck.close()
                        finally:
                            page.close()
                        d = dpi or PDF_DEFAULT_DPI
                        props.update(
                            width=round(w_pt / 72 * d),
                            height=round(h_pt / 72 * d),
                            dpi=[dpi, dpi] if dpi else None,
                            colour=colour,
                            compression=compression,
                            bits=bits,
                        )
                    props["software"] = " / ".join(v for k, v in meta.items() if k in ("Creator", "Producer"))
                    props["created"] = meta.get("CreationDate", "")
                finally:
                    pdf.close()
        else:
            im = _open_pil(fp, kind, label)
            props["pages"] = _tiff_frames(im) if kind == "TIFF" else 1
            d = _describe(im, kind)
            props.update(
                width=d["width"],
                height=d["height"],
                dpi=list(d["dpi"]) if d["dpi"] else None,
                colour=d["colour"],
                compression=d["compression"],
                bits=d["bits"],
            )
            props.update(d["info"])
    finally:
        fp.close()
    props.setdefault("dpi", None)
    dpi_v = props.get("dpi")
    props["扫描分辨率"] = _dpi_text(tuple(dpi_v) if dpi_v else None)
    props["扫描色彩模式"] = props.get("colour", "")
    props["图像压缩方案"] = props.get("compression", "")
    props.setdefault("device", "")
    props.setdefault("software", "")
    return props


def _dpi_text(dpi: tuple[float, float] | None) -> str:
    if not dpi:
        return ""
    x, y = (round(v) for v in dpi)
    return f"{x} dpi" if x == y else f"{x}×{y} dpi"


# ---------------------------------------------------------------------------------------------- Pillow formats


def _tiff_frames(im: ImageFile.ImageFile) -> int:
    n = 1
    try:
        while True:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                im.seek(n)
            n += 1
    except EOFError:
        pass
    except Exception:  # a broken IFD chain: iter_pages yields it as one more (error) page
        n += 1
    return n


def _text(v: Any) -> str:
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    return str(v).strip("\x00 ").strip() if v is not None else ""


def _describe(im: ImageFile.ImageFile, kind: str) -> dict[str, Any]:
    """Size, dpi, colour, compression, orientation and device metadata of the current frame, without decoding."""
    w, h = im.size
    info: dict[str, Any] = {}
    orientation = 1
    bits: int | None = None
    if kind == "TIFF":
        tags = im.tag_v2  # type: ignore[attr-defined]
        orientation = int(tags.get(274, 1) or 1)
        bps = tags.get(258)
        if isinstance(bps, tuple):
            bps = bps[0] if bps else None
        bits = int(bps) if bps else (1 if im.mode == "1" else 8)
        for tag, key in ((271, "device_make"), (272, "device_model"), (305, "software"), (306, "created")):
            if tags.get(tag):
                info[key] = _text(tags.get(tag))
        compression = _TIFF_COMPRESSION.get(str(im.info.get("compression", "raw")), str(im.info.get("compression")))
    else:
        try:
            exif = im.getexif()
        except Exception:
            exif = Image.Exif()
        orientation = int(exif.get(274, 1) or 1) if kind != "PNG" else int(exif.get(274, 1) or 1)
        for tag, key in ((271, "device_make"), (272, "device_model"), (305, "software"), (306, "created")):
            if exif.get(tag):
                info[key] = _text(exif.get(tag))
        if kind == "PNG" and not info.get("software") and im.info.get("Software"):
            info["software"] = _text(im.info.get("Software"))
        compression = _FORMAT_LABEL[kind]
        bits = 1 if im.mode == "1" else (16 if im.mode.startswith("I;16") else 8)
    make, model = info.get("device_make", ""), info.get("device_model", "")
    if make or model:
        info["device"] = model if make and model.startswith(make) else " ".join(x for x in (make, model) if x)
    if orientation not in _TRANSPOSE:
        orientation = 1
    if orientation in (5, 6, 7, 8) and kind != "TIFF":  # Pillow already reports a TIFF's size as displayed
        w, h = h, w
    return {
        "width": w,
        "height": h,
        "dpi": _dpi(im),
        "colour": _colour(im),
        "compression": compression,
        "orientation": orientation,
        "bits": bits,
        "info": info,
    }


def _dpi(im: Image.Image) -> tuple[float, float] | None:
    dpi = im.info.get("dpi")
    if dpi and len(dpi) == 2:
        try:
            x, y = float(dpi[0]), float(dpi[1])
        except (TypeError, ValueError):
            return None
        if x > 1 and y > 1 and math.isfinite(x) and math.isfinite(y):
            return (round(x, 2), round(y, 2))
    return None


def _colour(im: Image.Image) -> str:
    mode = im.mode
    if mode == "1":
        return BILEVEL
    if mode in ("L", "LA", "La", "I", "F") or mode.startswith("I;16"):
        return GREY
    if mode in ("P", "PA"):
        try:
            pal = im.getpalette() or []
        except Exception:
            pal = []
        triples = [tuple(pal[i : i + 3]) for i in range(0, len(pal), 3)]
        if triples and all(r == g == b for r, g, b in triples):
            return BILEVEL if set(triples) <= {(0, 0, 0), (255, 255, 255)} else GREY
        return COLOUR
    return COLOUR


def _normalise(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> "L" or "RGB"; transparency composited on white; 16/32-bit grey scaled to 8 bits."""
    mode = img.mode
    if mode in ("L", "RGB"):
        return img
    if mode == "1":
        return img.convert("L")
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(img).astype(np.float64)
        top = 65535.0 if mode.startswith("I;16") else max(float(a.max()), 1.0)
        return Image.fromarray(np.clip(a * (255.0 / top), 0, 255).astype(np.uint8), "L")
    if mode == "P":
        grey = _colour(img) != COLOUR
        if "transparency" in img.info:
            img = img.convert("RGBA")
            mode = "RGBA"
        else:
            return img.convert("L" if grey else "RGB")
    if mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        rgba = img.convert("LA") if mode in ("LA", "La") else img.convert("RGBA")
        base = "L" if mode in ("LA", "La") else "RGB"
        bg = Image.new(base, rgba.size, 255 if base == "L" else (255, 255, 255))
        bg.paste(rgba.convert(base), mask=rgba.getchannel("A"))
        return bg
    return img.convert("RGB")


def _fit(img: Image.Image, max_side: int) -> Image.Image:
    if max(img.size) <= max_side:
        return img
    s = max_side / max(img.size)
    size = (max(1, round(img.width * s)), max(1, round(img.height * s)))
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _decoded_bytes(mode: str, w: int, h: int) -> int:
    per = 1 if mode in ("1", "L", "P") else (2 if mode.startswith("I;16") else 4)
    return w * h * per


def _stored_size(im: ImageFile.ImageFile, kind: str) -> tuple[int, int]:
    """Pixel size as stored in the file (before orientation)."""
    if kind == "TIFF":
        tags = im.tag_v2  # type: ignore[attr-defined]
        try:
            return int(tags[256]), int(tags[257])
        except (KeyError, TypeError, ValueError):
            return im.size
    return im.size


def _page_error(e: BaseException, kind: str) -> _PageError:
    if isinstance(e, _PageError):
        return e
    if isinstance(e, Image.DecompressionBombError | MemoryError):
        return _PageError("IMAGE_TOO_LARGE", "图像像素过多，超出可安全解码的上限，请降低分辨率重新扫描或分拆后提交")
    text = str(e)
    low = text.lower()
    if "truncated" in low or "premature end" in low or isinstance(e, EOFError | struct.error):
        return _PageError("IMAGE_TRUNCATED", "图像数据不完整（文件被截断），请重新扫描或重新导出该页")
    if kind == "JPEG2000" and ("jpeg2k" in low or "openjpeg" in low) and "not available" in low:
        return _PageError("JPEG2000_UNSUPPORTED", "本系统的图像库缺少 JPEG 2000 解码器（OpenJPEG），无法读取该页")
    return _PageError("IMAGE_CORRUPT", f"图像数据损坏，无法解码（{_short(e)}），请重新扫描该页")


def _pil_pages(
    im: ImageFile.ImageFile, fp: IO[bytes], kind: str, label: str, max_side: int, max_pixels: int
) -> Iterator[PageImage]:
    try:
        index = 0
        while True:
            if index:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        im.seek(index)
                except EOFError:
                    return
                except Exception as e:  # the IFD chain itself is broken: nothing after it can be found
                    err = _page_error(e, kind)
                    yield PageImage(
                        index, 0, 0, None, "", "", 1, None, 0.0,
                        error=f"第 {index + 1} 页的图像目录损坏，其后的页无法读取：{err.message}",
                        error_code=err.code, format=_FORMAT_LABEL[kind],
                    )  # fmt: skip
                    return
            yield _pil_page(im, fp, kind, index, max_side, max_pixels)
            if kind != "TIFF":
                return
            index += 1
    finally:
        fp.close()


def _pil_page(
    im: ImageFile.ImageFile, fp: IO[bytes], kind: str, index: int, max_side: int, max_pixels: int
) -> PageImage:
    try:
        d = _describe(im, kind)
    except Exception as e:
        err = _page_error(e, kind)
        return PageImage(index, 0, 0, None, "", "", 1, None, 0.0, err.message, err.code, _FORMAT_LABEL[kind])
    page = PageImage(
        index=index,
        width=d["width"],
        height=d["height"],
        dpi=d["dpi"],
        colour=d["colour"],
        compression=d["compression"],
        orientation_applied=d["orientation"],
        image=None,
        scale=0.0,
        format=_FORMAT_LABEL[kind],
        bits=d["bits"],
        info=d["info"],
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = _decode(im, fp, kind, d, max_side, max_pixels)
    except Exception as e:
        err = _page_error(e, kind)
        page.error, page.error_code = err.message, err.code
        return page
    page.image = img
    page.scale = img.width / page.width if page.width else 1.0
    return page


def _decode(
    im: ImageFile.ImageFile, fp: IO[bytes], kind: str, d: dict[str, Any], max_side: int, max_pixels: int
) -> Image.Image:
    w, h = _stored_size(im, kind)
    if w < 1 or h < 1:
        raise _PageError("IMAGE_CORRUPT", "图像尺寸为 0，无法解码")
    if w * h > max_pixels:
        raise _PageError(
            "IMAGE_TOO_LARGE",
            f"图像像素数 {w}×{h} 超过上限 {max_pixels:,} 像素（可能是解压炸弹或分辨率设置错误），请检查扫描设置后重新扫描",
        )
    s = min(1.0, max_side / max(w, h))
    orientation = d["orientation"]
    if kind == "JPEG":
        if im.info.get("progressive") and w * h > 64_000_000:
            raise _PageError("IMAGE_TOO_LARGE", f"渐进式 JPEG 图像 {w}×{h} 过大，无法在有限内存内解码，请以基线 JPEG 或 TIFF 重新导出")
        if s < 1.0:
            im.draft(None, (math.ceil(w * s), math.ceil(h * s)))
        _strict()
        im.load()
        img: Image.Image = im
    elif kind == "JPEG2000":
        if not features.check("jpg_2000"):
            raise _PageError("JPEG2000_UNSUPPORTED", "本系统的图像库缺少 JPEG 2000 解码器（OpenJPEG），无法读取该页")
        if s < 1.0:
            im.reduce = max(0, min(5, int(math.floor(math.log2(1.0 / s)))))  # type: ignore[method-assign,assignment]
        rw, rh = im.size if s == 1.0 else (math.ceil(w * s), math.ceil(h * s))
        if _decoded_bytes(im.mode, rw * 2, rh * 2) > FULL_DECODE_BYTES * 4:
            raise _PageError("IMAGE_TOO_LARGE", f"JPEG 2000 图像 {w}×{h} 过大，无法在有限内存内解码")
        _strict()
        im.load()
        img = im
    elif kind == "TIFF":
        bomb_limit = Image.MAX_IMAGE_PIXELS  # Pillow refuses to decode whole TIFFs above twice this
        if _decoded_bytes(im.mode, w, h) > FULL_DECODE_BYTES or (bomb_limit and w * h > bomb_limit):
            img = _tiff_banded(im, fp, w, h, max_side)
            if orientation != 1:
                img = img.transpose(_TRANSPOSE[orientation])
            return _fit(img, max_side)
        _strict()
        im.load()  # Pillow applies the TIFF Orientation tag itself on load
        img = im
        orientation = 1
    else:
        if _decoded_bytes(im.mode, w, h) > FULL_DECODE_BYTES:
            raise _PageError(
                "IMAGE_TOO_LARGE",
                f"{_FORMAT_LABEL[kind]} 图像 {w}×{h} 过大，该格式无法分块解码，请以 TIFF 或 JPEG 格式重新导出",
            )
        _strict()
        im.load()
        img = im
    img = _normalise(img)
    if orientation != 1:
        img = img.transpose(_TRANSPOSE[orientation])
    out = _fit(img, max_side)
    if out is im:
        out = im.copy()  # detach from the file object
    return out


# ---------------------------------------------------------------------------------------------- banded TIFF

_TIFF_COPY = (
    256, 258, 259, 262, 266, 277, 278, 284, 292, 293, 317, 320, 322, 323, 338, 339, 347, 529, 530, 531, 532,
)  # fmt: skip


#: decoded size of one band of a large TIFF
BAND_BYTES = 4 * 2**20


def _tiff_banded(im: ImageFile.ImageFile, fp: IO[bytes], w: int, h: int, max_side: int) -> Image.Image:
    """Decode a large TIFF page band by band: a band is a run of strips (or one row of tiles, or for
    uncompressed data any run of rows) written out as a small standalone TIFF (same tags, only that band's
    data), decoded by Pillow, converted to 8 bits and box-reduced by an integer factor before the next band is
    read. Peak memory ~ one band + the reduced page."""
    tags = im.tag_v2  # type: ignore[attr-defined]
    if int(tags.get(284, 1) or 1) != 1:
        raise _PageError("IMAGE_TOO_LARGE", f"图像 {w}×{h} 过大且按分平面（Planar）方式存储，无法分块解码，请以常规 TIFF 重新导出")
    compression = int(tags.get(259, 1) or 1)
    if compression == 6:
        raise _PageError("IMAGE_TOO_LARGE", f"图像 {w}×{h} 过大且使用旧式 JPEG 压缩（OJPEG），无法分块解码")
    row_bytes = _decoded_bytes(im.mode, w, 1)
    target_rows = max(1, BAND_BYTES // row_bytes)
    if Image.MAX_IMAGE_PIXELS:  # each band must also pass Pillow's decompression-bomb check
        target_rows = max(1, min(target_rows, int(Image.MAX_IMAGE_PIXELS) // max(1, w)))
    units: list[tuple[int, int, list[tuple[int, int]]]] = []  # (rows, RowsPerStrip, [(offset, count)])
    tiled = 322 in tags and 324 in tags
    if tiled:
        tw, th = int(tags[322]), int(tags[323])
        offsets, counts = _as_tuple(tags[324]), _as_tuple(tags[325])
        across, down = math.ceil(w / tw), math.ceil(h / th)
        if tw < 1 or th < 1 or len(offsets) < across * down or len(counts) < across * down:
            raise _PageError("IMAGE_CORRUPT", "TIFF 的分块（Tile）目录不完整，无法解码")
        for r in range(down):
            ks = range(r * across, (r + 1) * across)
            units.append((min(th, h - r * th), th, [(int(offsets[k]), int(counts[k])) for k in ks]))
    else:
        offsets, counts = _as_tuple(tags.get(273)), _as_tuple(tags.get(279))
        rps = max(1, min(int(tags.get(278, h) or h), h))
        n = math.ceil(h / rps)
        if len(offsets) < n or len(counts) < n:
            raise _PageError("IMAGE_CORRUPT", "TIFF 的条带（Strip）目录不完整，无法解码")
        if compression == 1:  # uncompressed: any run of whole rows can be read on its own
            bps = _as_tuple(tags.get(258)) or (1,)
            stride = math.ceil(w * sum(int(b) for b in bps) / 8)
            for k in range(n):
                strip_rows = min(rps, h - k * rps)
                for c in range(0, strip_rows, target_rows):
                    m = min(target_rows, strip_rows - c)
                    units.append((m, m, [(int(offsets[k]) + c * stride, m * stride)]))
        else:
            if row_bytes * rps > FULL_DECODE_BYTES:
                raise _PageError(
                    "IMAGE_TOO_LARGE",
                    f"图像 {w}×{h} 过大且每个压缩条带有 {rps} 行，无法在内存上限内分块解码，"
                    "请以较小条带（RowsPerStrip）的 TIFF 或 JPEG 重新导出",
                )
            g = max(1, target_rows // rps)
            for k0 in range(0, n, g):
                ks = range(k0, min(k0 + g, n))
                units.append((min(g * rps, h - k0 * rps), rps, [(int(offsets[k]), int(counts[k])) for k in ks]))
    f = max(1, math.floor(max(w, h) / max_side)) if max(w, h) > max_side else 1
    size = os.fstat(fp.fileno()).st_size
    out: np.ndarray | None = None  # the reduced page, filled band by band
    filled = 0
    carry: np.ndarray | None = None

    def put(part: np.ndarray) -> None:
        nonlocal out, filled
        if out is None:
            out = np.empty((math.ceil(h / f), part.shape[1]) + part.shape[2:], np.uint8)
        out[filled : filled + part.shape[0]] = part
        filled += part.shape[0]

    for rows, rps, spans in units:
        parts = []
        for off, cnt in spans:
            if off + cnt > size:
                raise _PageError("IMAGE_TRUNCATED", "图像数据不完整（文件被截断），请重新扫描或重新导出该页")
            fp.seek(off)
            parts.append(fp.read(cnt))
        band = _band_tiff(tags, rows, rps, parts, tiled)
        with TiffImagePlugin.TiffImageFile(io.BytesIO(band)) as b:
            _strict()
            b.load()
            arr = np.asarray(_normalise(b))
        if tiled:
            arr = arr[:rows, :w]
        carry = arr if carry is None else np.concatenate([carry, arr])
        full = carry.shape[0] // f * f
        if full:
            put(_box_reduce(carry[:full], f))
            carry = carry[full:]
    if carry is not None and carry.shape[0]:
        put(_box_reduce(carry, f))
    if out is None:
        raise _PageError("IMAGE_CORRUPT", "TIFF 页面没有图像数据")
    return Image.fromarray(out[:filled])


def _as_tuple(v: Any) -> tuple[int, ...]:
    if v is None:
        return ()
    return tuple(v) if isinstance(v, tuple | list) else (v,)


def _box_reduce(a: np.ndarray, f: int) -> np.ndarray:
    """Average f×f blocks (Pillow's C box reduction); a last partial block row/column is averaged as is."""
    if f == 1:
        return a
    return np.asarray(Image.fromarray(a).reduce(f))


def _band_tiff(tags: Any, rows: int, rps: int, parts: list[bytes], tiled: bool) -> bytes:
    ifd = TiffImagePlugin.ImageFileDirectory_v2()
    for tag in _TIFF_COPY:
        if tag in tags:
            ifd.tagtype[tag] = tags.tagtype[tag]
            ifd[tag] = tags[tag]
    ifd.tagtype[257] = 4
    ifd[257] = rows
    if not tiled:
        ifd.tagtype[278] = 4
        ifd[278] = rps
    lengths = tuple(len(p) for p in parts)
    rel: list[int] = []
    pos = 0
    for n in lengths:
        rel.append(pos)
        pos += n
    if tiled:
        ifd.tagtype[324] = ifd.tagtype[325] = 4
        ifd[324] = tuple(rel)
        ifd[325] = lengths
        base = 8 + len(ifd.tobytes(8))
        ifd[324] = tuple(base + r for r in rel)
    else:
        ifd.tagtype[273] = ifd.tagtype[279] = 4
        ifd[273] = tuple(rel)  # tobytes() shifts StripOffsets past the directory itself
        ifd[279] = lengths
    head = b"II*\x00" + struct.pack("<I", 8)
    return head + ifd.tobytes(8) + b"".join(parts)


# ---------------------------------------------------------------------------------------------- PDF


def _pdf_page_info(page: Any) -> tuple[float | None, str, str, int | None]:
    """(dpi of the single scanned image or None, colour, compression, bits) of a PDF page."""
    import pypdfium2.raw as pdfium_c

    images = list(page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=4))
    if len(images) != 1:
        return None, COLOUR, "", None
    obj = images[0]
    w_pt, h_pt = page.get_size()
    l, b, r, t = obj.get_bounds()  # noqa: E741
    if (r - l) * (t - b) < 0.8 * w_pt * h_pt:
        return None, COLOUR, "", None
    meta = obj.get_metadata()
    bits = int(meta.bits_per_pixel) or None
    cs = int(meta.colorspace)
    if bits == 1:
        colour = BILEVEL
    elif cs in (pdfium_c.FPDF_COLORSPACE_DEVICEGRAY, pdfium_c.FPDF_COLORSPACE_CALGRAY) or (bits == 8):
        colour = GREY if bits == 8 and cs != pdfium_c.FPDF_COLORSPACE_INDEXED else COLOUR
    else:
        colour = COLOUR
    try:
        filters = list(obj.get_filters())
    except Exception:
        filters = []
    names = [_PDF_FILTERS.get(f, f) for f in filters if f]
    compression = names[-1] if names else "无压缩"
    dx, dy = float(meta.horizontal_dpi), float(meta.vertical_dpi)
    dpi = round((dx + dy) / 2, 2) if dx > 1 and dy > 1 else None
    return dpi, colour, compression, bits


class _CcittKind:
    """Tells CCITT G3 from G4 for a page's scanned image (pdfium gives the filter name only): /K of the image's
    /DecodeParms, read with pikepdf, opened once per file on first need."""

    def __init__(self, path: str | Path | bytes) -> None:
        self.path = path
        self.fp: IO[bytes] | None = None
        self.pdf: Any = None
        self.failed = False

    def __call__(self, index: int) -> str:
        try:
            import pikepdf

            if self.pdf is None and not self.failed:
                self.fp = open(os.fspath(self.path), "rb")  # noqa: SIM115 - closed by close()
                self.pdf = pikepdf.open(self.fp)
            if self.pdf is None:
                return "CCITT"
            for _name, raw in self.pdf.pages[index].get_images().items():
                parms = raw.get("/DecodeParms")
                if isinstance(parms, pikepdf.Array):
                    parms = next((p for p in parms if isinstance(p, pikepdf.Dictionary)), None)
                k = int(parms.get("/K", 0)) if isinstance(parms, pikepdf.Dictionary) else 0
                return "CCITT G4" if k < 0 else "CCITT G3"
        except Exception:
            self.failed = True
        return "CCITT"

    def close(self) -> None:
        if self.pdf is not None:
            self.pdf.close()
        if self.fp is not None:
            self.fp.close()


def _pdf_pages(pdf: Any, fp: IO[bytes], ccitt: _CcittKind, max_side: int, max_pixels: int) -> Iterator[PageImage]:
    try:
        with PDFIUM:
            n = len(pdf)
        for index in range(n):
            with PDFIUM:  # one page at a time: other threads may use PDFium between pages
                page = _pdf_page(pdf, index, max_side, max_pixels, ccitt)
            yield page
    finally:
        ccitt.close()
        with PDFIUM:
            pdf.close()
        fp.close()


def _pdf_page(pdf: Any, index: int, max_side: int, max_pixels: int, ccitt: _CcittKind) -> PageImage:
    page = None
    result = PageImage(index, 0, 0, None, COLOUR, "", 1, None, 0.0, format="PDF")
    try:
        page = pdf[index]
        w_pt, h_pt = page.get_size()
        dpi, colour, compression, bits = _pdf_page_info(page)
        if compression == "CCITT":
            compression = ccitt(index)
        d = dpi or PDF_DEFAULT_DPI
        width, height = max(1, round(w_pt / 72 * d)), max(1, round(h_pt / 72 * d))
        result.width, result.height, result.dpi = width, height, (d, d)
        result.colour, result.compression, result.bits = colour, compression or "", bits
        if width * height > max_pixels:
            raise _PageError("IMAGE_TOO_LARGE", f"PDF 第 {index + 1} 页按 {d:g} dpi 为 {width}×{height} 像素，超过上限")
        s = min(1.0, max_side / max(width, height))
        tw, th = max(1, round(width * s)), max(1, round(height * s))
        # pdfium rounds the bitmap size up: aim a hair below the wanted pixel size so 792 pt @300 dpi is 3300 px
        scale = min(tw / w_pt, th / h_pt) * (1 - 1e-7)
        bitmap = page.render(scale=scale, grayscale=colour != COLOUR, fill_color=(255, 255, 255, 255))
        img = _normalise(bitmap.to_pil())
        result.image = _fit(img, max_side)
        result.scale = result.image.width / width
    except Exception as e:
        err = _page_error(e, "PDF")
        if not isinstance(e, _PageError):
            err = _PageError(err.code, f"PDF 第 {index + 1} 页无法渲染（{_short(e)}）")
        result.error, result.error_code = err.message, err.code
    finally:
        if page is not None:
            page.close()
    return result
