"""Validation: does a file open, and is it what it claims to be? Dispatches to the format modules; never raises.

    validate(path)                      # identifies first
    validate(path, ident, name="x.pdf") # with an identification already made

PDF -> formats.pdf, images -> formats.images, OOXML/ODF/EPUB/ZIP and OLE2 -> formats.office, OFD ->
formats.ofd (written alongside; "unchecked" until it exists), text and XML -> formats.text. WAVE (RIFF chunk
walk) and MP4/QuickTime/HEIF (ISO BMFF box walk) are checked here. RAR and 7z are marked
nonpublic_compression and not opened. Every validator bounds memory (streams, size limits) and time.
"""

from __future__ import annotations

import os
import re
import struct
from typing import Any

from dangan.formats.identify import family_of, identify_file
from dangan.formats.results import Identification, Validation

_PRINTABLE_ID = re.compile(rb"[\x20-\x7e]{4}")
MAX_CHUNKS = 100_000


def validate(path: str, ident: Identification | None = None, name: str = "") -> Validation:
    try:
        if ident is None:
            ident = identify_file(path, name or None)
        v = _dispatch(path, ident)
    except Exception as e:  # noqa: BLE001 - a validator bug must not fail the caller; say what happened
        v = Validation(status="unchecked", warnings=[f"校验程序出错，未能完成校验：{type(e).__name__}: {e}"])
    if ident is not None and not ident.extension_matches:
        v.warnings = [*v.warnings, *[w for w in ident.warnings if "扩展名" in w and w not in v.warnings]]
    v.details.setdefault("format", ident.format_name if ident else "")
    return v


def _dispatch(path: str, ident: Identification) -> Validation:
    fam = family_of(ident)
    if fam == "empty":
        return Validation(status="invalid", problems=["文件为空（0 字节），没有任何内容"])
    if fam == "pdf":
        from dangan.formats.pdf import validate_pdf

        return validate_pdf(path, ident)
    if fam in ("image", "heif"):
        from dangan.formats.images import validate_image

        return validate_image(path, ident)
    if fam == "ofd":
        try:
            from dangan.formats import ofd

            return ofd.validate_ofd(path)
        except (ImportError, AttributeError):
            return Validation(status="unchecked", warnings=["OFD 校验模块尚未提供，未校验"])
    if fam == "zip":
        from dangan.formats.office import validate_zip

        return validate_zip(path, ident)
    if fam == "ole":
        from dangan.formats.office import validate_ole

        return validate_ole(path, ident)
    if fam == "nonpublic_archive":
        return Validation(status="unchecked", nonpublic_compression=True,
                          warnings=[f"{ident.format_name}不是归档推荐的公开压缩格式，未解压校验；建议改用 ZIP 或解压后归档"])
    if fam == "xml":
        from dangan.formats.text import validate_xml

        return validate_xml(path, ident)
    if fam in ("text", "html", "rtf"):
        from dangan.formats.text import validate_text

        v = validate_text(path, ident)
        if fam == "rtf" and v.status == "valid":
            return _rtf(path, v)
        if fam == "html" and v.status == "valid":
            v.warnings.append("只检查了文本编码，未检查 HTML 结构")
        return v
    if fam == "wav":
        return validate_wav(path)
    if fam == "mp4":
        problems, boxes = walk_bmff(path, require_moov=True)
        v = Validation(status="invalid" if problems else "valid", problems=problems, details={"boxes": boxes[:50]})
        if not problems:
            v.warnings.append("只检查了顶层盒结构，未解码音视频数据")
        return v
    return Validation(status="unchecked", warnings=[f"没有适用于“{ident.format_name}”的校验程序，未校验"])


def _rtf(path: str, v: Validation) -> Validation:
    depth = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            prev = 0
            for m in re.finditer(rb"\\.|[{}]", chunk, re.S):
                tok = m.group(0)
                if tok == b"{":
                    depth += 1
                elif tok == b"}":
                    depth -= 1
                    if depth < 0:
                        break
                prev = m.end()
            del prev
            if depth < 0:
                break
    if depth != 0:
        v.status = "invalid"
        v.problems.append("RTF 的花括号不配对，文件不完整或已损坏")
    return v


# -- WAVE -------------------------------------------------------------------------------------------------------

def validate_wav(path: str) -> Validation:
    v = Validation(status="valid")
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            hdr = fh.read(12)
            if len(hdr) < 12 or hdr[:4] not in (b"RIFF", b"RF64") or hdr[8:12] != b"WAVE":
                return Validation(status="invalid", problems=["不是 WAVE 文件：缺少 RIFF/WAVE 文件头"])
            riff_size = struct.unpack("<I", hdr[4:8])[0]
            if hdr[:4] == b"RIFF":
                if riff_size + 8 > size:
                    v.problems.append(f"RIFF 头声明 {riff_size + 8} 字节，文件只有 {size} 字节：文件被截断")
                elif riff_size + 8 < size:
                    v.warnings.append(f"RIFF 数据之后还有 {size - riff_size - 8} 字节多余数据")
            end = min(size, riff_size + 8) if hdr[:4] == b"RIFF" else size
            pos, chunks, fmt = 12, [], None
            while pos + 8 <= end and len(chunks) < MAX_CHUNKS:
                fh.seek(pos)
                ch = fh.read(8)
                cid, clen = ch[:4], struct.unpack("<I", ch[4:8])[0]
                if not _PRINTABLE_ID.fullmatch(cid):
                    v.problems.append(f"第 {pos} 字节处的块标识 {cid!r} 不是有效的 ASCII 块名：文件结构损坏")
                    break
                name = cid.decode("ascii")
                chunks.append(name)
                if pos + 8 + clen > end:
                    v.problems.append(f"“{name.strip()}”块声明 {clen} 字节，超出文件末尾：文件被截断")
                    break
                if name == "fmt ":
                    fmt = fh.read(min(clen, 40))
                pos += 8 + clen + (clen & 1)
            v.details["chunks"] = chunks[:50]
            if fmt is None:
                v.problems.append("缺少 fmt 块（音频格式说明）")
            elif len(fmt) >= 16:
                tag, channels, rate, byte_rate, align, bits = struct.unpack("<HHIIHH", fmt[:16])
                v.details.update({"format_tag": tag, "channels": channels, "sample_rate": rate,
                                  "bits_per_sample": bits})
                if channels == 0 or rate == 0:
                    v.problems.append("fmt 块中的声道数或采样率为 0")
                elif tag == 1 and (align != channels * ((bits + 7) // 8) or byte_rate != rate * align):
                    v.warnings.append("fmt 块中的块对齐或字节率与声道数、位深不一致")
            else:
                v.problems.append("fmt 块过短")
            if "data" not in chunks and not v.problems:
                v.problems.append("缺少 data 块（音频数据）")
    except OSError as e:
        return Validation(status="invalid", problems=[f"无法读取文件：{e.strerror or e}"])
    if v.problems:
        v.status = "invalid"
    return v


# -- ISO base media file format (MP4, QuickTime, HEIF) ----------------------------------------------------------

def walk_bmff(path: str, *, require_moov: bool) -> tuple[list[str], list[str]]:
    """Walk the top-level boxes: sizes consistent with the file, types printable, ftyp first, moov present."""
    problems: list[str] = []
    boxes: list[str] = []
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            pos = 0
            while pos < size and len(boxes) < MAX_CHUNKS:
                fh.seek(pos)
                hdr = fh.read(16)
                if len(hdr) < 8:
                    problems.append(f"第 {pos} 字节处的盒头不完整：文件被截断")
                    break
                bsize, btype = struct.unpack(">I", hdr[:4])[0], hdr[4:8]
                if not _PRINTABLE_ID.fullmatch(btype):
                    problems.append(f"第 {pos} 字节处的盒类型 {btype!r} 无效：文件结构损坏")
                    break
                hlen = 8
                if bsize == 1:
                    if len(hdr) < 16:
                        problems.append("64 位盒长度不完整：文件被截断")
                        break
                    bsize, hlen = struct.unpack(">Q", hdr[8:16])[0], 16
                elif bsize == 0:
                    bsize = size - pos
                if bsize < hlen:
                    problems.append(f"“{btype.decode()}”盒的长度 {bsize} 无效")
                    break
                boxes.append(btype.decode("ascii"))
                if pos + bsize > size:
                    problems.append(f"“{btype.decode()}”盒声明 {bsize} 字节，超出文件末尾：文件被截断")
                    break
                pos += bsize
    except OSError as e:
        return [f"无法读取文件：{e.strerror or e}"], boxes
    if boxes and boxes[0] not in ("ftyp", "moov", "mdat", "free", "skip", "wide", "pnot") and not problems:
        problems.append(f"第一个盒是“{boxes[0]}”，不是 ftyp")
    if require_moov and not problems and "moov" not in boxes:
        problems.append("缺少 moov 盒（影片元数据），文件无法播放")
    return problems, boxes


def summary(v: Validation) -> dict[str, Any]:
    """A short dict for logs and reports."""
    return {"status": v.status, "problems": v.problems[:3], "encrypted": v.encrypted}
