"""Raster images: Pillow opens, verifies and decodes every frame, with bounds on pixels, memory and time.

- absurd pixel counts (a decompression bomb: more than ABSURD_PIXELS) are refused with a problem before any
  decoding; images above Pillow's own bomb limit but below ABSURD_PIXELS are "unchecked" with the reason;
- verify() checks what the plugin can check without decoding (PNG chunk CRCs ...), then each frame is decoded:
  big JPEGs through draft() (DCT scaling: 1/8 of the pixels), big JPEG 2000 through reduce, other formats only
  while the decoded frame fits DECODE_BUDGET bytes;
- every frame of a multi-page TIFF (fax G3/G4 scans) or an animated GIF is decoded;
- HEIC/HEIF: Pillow has no decoder here (no pillow-heif); the ISO BMFF box structure is checked and the
  status stays "unchecked" with that reason.
"""

from __future__ import annotations

import re
import time
import warnings

from dangan.formats.results import Identification, Validation

ABSURD_PIXELS = 1_000_000_000          # refuse outright (≈ 31,623 × 31,623)
DECODE_BUDGET = 600 * 1024 * 1024      # bytes of one decoded frame
MAX_FRAMES = 10_000
TIME_BUDGET_S = 60.0
_BANDS = {"1": 1 / 8, "L": 1, "P": 1, "LA": 2, "PA": 2, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3, "RGBA": 4,
          "CMYK": 4, "RGBX": 4, "I": 4, "F": 4, "I;16": 2, "I;16B": 2, "I;16L": 2}


def _frame_bytes(size: tuple[int, int], mode: str) -> float:
    return size[0] * size[1] * _BANDS.get(mode, 4)


def validate_image(path: str, ident: Identification | None = None) -> Validation:
    try:
        from PIL import Image, ImageFile, UnidentifiedImageError
    except ImportError:
        return Validation(status="unchecked", warnings=["未安装 Pillow，无法校验图像"])
    # WeasyPrint sets this process-wide when it is imported (for the PDF outputs); a truncated image must fail
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    label = ident.format_name if ident else "图像"
    v = Validation(status="valid")
    caught: list[str] = []
    with warnings.catch_warnings(record=True) as wlist:
        warnings.simplefilter("always")
        try:
            with Image.open(path) as im:
                fmt, size, mode = im.format, im.size, im.mode
                frames = int(getattr(im, "n_frames", 1) or 1)
                v.details.update({"format": fmt, "width": size[0], "height": size[1], "mode": mode, "frames": frames})
                comp = im.info.get("compression")
                if comp:
                    v.details["compression"] = str(comp)
                dpi = im.info.get("dpi")
                if dpi:
                    v.details["dpi"] = [round(float(d), 2) for d in dpi][:2]
                if size[0] * size[1] > ABSURD_PIXELS:
                    return _bomb(v, size)
                im.verify()
        except Image.DecompressionBombError as e:
            m = re.search(r"\((\d+) pixels\)", str(e))
            px = int(m.group(1)) if m else 0
            if px > ABSURD_PIXELS or not px:
                v.status = "invalid"
                v.problems.append(f"图像像素数异常（{px:,} 像素），疑似解压炸弹，拒绝解码")
            else:
                v.status = "unchecked"
                v.warnings.append(f"图像有 {px:,} 像素，超过解码安全上限，未解码校验；如为超大扫描件请人工核验")
            return v
        except UnidentifiedImageError:
            if ident is not None and ident.mime in ("image/heic", "image/heif"):
                return _heif(path, v)
            return Validation(status="invalid", details=v.details,
                              problems=[f"无法解析“{label}”的文件结构（文件头或标记段已损坏）"])
        except (OSError, SyntaxError, ValueError, TypeError, IndexError, KeyError, EOFError,
                ZeroDivisionError, MemoryError) as e:
            return Validation(status="invalid", details=v.details, problems=[f"“{label}”结构损坏：{_msg(e)}"])
        try:
            _decode_all(path, v, frames, label)
        except Image.DecompressionBombError as e:
            v.status = "unchecked"
            v.warnings.append(f"图像超过解码安全上限，未完整解码：{e}")
        caught = [str(w.message) for w in wlist]
    if caught:
        uniq = list(dict.fromkeys(_plain_warning(c) for c in caught))
        v.warnings.extend(uniq[:5])
        if any("Corrupt EXIF" in c or "Truncated File Read" in c for c in caught):
            v.warnings.append("元数据（EXIF/TIFF 标签）有损坏")
    if v.problems:
        v.status = "invalid"
    return v


def _plain_warning(msg: str) -> str:
    if "Tag data larger than file" in msg:
        return "部分 TIFF 标签的数据超出文件范围，已跳过"
    if "Corrupt EXIF" in msg:
        return "EXIF 元数据损坏"
    if "Possibly corrupt" in msg or "premature" in msg.lower():
        return f"图像数据可能有损坏（{msg[:120]}）"
    if "DecompressionBombWarning" in msg or "decompression bomb" in msg:
        return "图像像素数很大（Pillow 解压炸弹提醒）"
    return msg[:160]


def _msg(e: BaseException) -> str:
    s = str(e) or type(e).__name__
    table = {"image file is truncated": "图像数据被截断", "broken data stream": "图像数据流损坏",
             "Missing dimensions": "缺少图像尺寸", "cannot identify image file": "无法识别图像文件",
             "decoder error": "图像数据解码出错，数据已损坏"}
    for k, zh in table.items():
        if k in s:
            return f"{zh}（{s[:160]}）"
    return s[:200]


def _bomb(v: Validation, size: tuple[int, int]) -> Validation:
    v.status = "invalid"
    v.problems.append(f"图像尺寸 {size[0]}×{size[1]}（{size[0] * size[1]:,} 像素）异常，疑似解压炸弹，拒绝解码")
    return v


def _decode_all(path: str, v: Validation, frames: int, label: str) -> None:
    from PIL import Image

    deadline = time.monotonic() + TIME_BUDGET_S
    with Image.open(path) as im:
        for i in range(min(frames, MAX_FRAMES)):
            if time.monotonic() > deadline:
                v.warnings.append(f"解码超时，只检查了前 {i} 帧（共 {frames} 帧）")
                return
            try:
                if i:
                    im.seek(i)
                need = _frame_bytes(im.size, im.mode)
                if need > DECODE_BUDGET:
                    if im.format == "JPEG":
                        im.draft(im.mode if im.mode in ("L", "RGB", "CMYK") else "RGB",
                                 (max(1, im.size[0] // 8), max(1, im.size[1] // 8)))
                    elif im.format == "JPEG2000":
                        factor = 0
                        while need / (4 ** factor) > DECODE_BUDGET and factor < 5:
                            factor += 1
                        im.reduce = factor  # type: ignore[attr-defined]
                    else:
                        v.status = "unchecked"
                        v.warnings.append(f"第 {i + 1} 帧解码需约 {int(need / 1048576)} MB 内存，超过上限，未解码")
                        continue
                    v.warnings.append("图像很大，按缩小比例解码校验（DCT/小波分辨率层），未逐像素解码")
                im.load()
            except (OSError, SyntaxError, ValueError, TypeError, IndexError, KeyError, EOFError,
                    ZeroDivisionError, MemoryError) as e:
                where = f"第 {i + 1} 帧（共 {frames} 帧）" if frames > 1 else ""
                v.problems.append(f"“{label}”{where}无法解码：{_msg(e)}")
                return
        if frames > MAX_FRAMES:
            v.warnings.append(f"帧数 {frames} 超过上限，只检查了前 {MAX_FRAMES} 帧")


def _heif(path: str, v: Validation) -> Validation:
    from dangan.formats.validate import walk_bmff

    problems, boxes = walk_bmff(path, require_moov=False)
    v.details["boxes"] = boxes[:20]
    if problems:
        v.status = "invalid"
        v.problems.extend(problems)
        return v
    if "meta" not in boxes:
        v.status = "invalid"
        v.problems.append("HEIF 文件缺少 meta 盒（图像元数据），结构不完整")
        return v
    v.status = "unchecked"
    v.warnings.append("本机 Pillow 没有 HEIC/HEIF 解码器（未安装 pillow-heif），只检查了 ISO BMFF 盒结构，未解码图像")
    return v
