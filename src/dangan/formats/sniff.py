"""Fast format sniffing from a file's first bytes (magic numbers), recorded on every file at capture.

Full PRONOM identification and validation come with the preservation issue; this gives the media type and a
readable format name now, and recognises OFD (GB/T 33190), which generic tools call a ZIP.
"""

from __future__ import annotations

import mimetypes
import re


def sniff(head: bytes, name: str) -> tuple[str, str]:
    """Return (media type, format name) from the content's first bytes, falling back to the extension."""
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if head.startswith(b"%PDF-"):
        m = re.match(rb"%PDF-(\d\.\d)", head)
        return "application/pdf", f"PDF {m.group(1).decode()}" if m else "PDF"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png", "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg", "JPEG"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff", "TIFF"
    if head.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n"):
        return "image/jp2", "JPEG 2000"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif", "GIF"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "audio/wav", "WAVE"
    if head[4:8] == b"ftyp":
        return "video/mp4", "MPEG-4"
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(head, ext)
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return mimetypes.guess_type(name)[0] or "application/x-ole-storage", "Microsoft OLE2（doc/xls/ppt）"
    if head.lstrip().startswith(b"<?xml"):
        return "application/xml", "XML"
    guessed = mimetypes.guess_type(name)[0]
    if ext == "ofd":
        return "application/ofd", "OFD（未确认）"
    return guessed or "application/octet-stream", (ext.upper() if ext else "未知")


def zip_names_from_head(head: bytes) -> list[str]:
    """Names of the entries whose local headers fall inside the first bytes (no central directory needed)."""
    names = []
    for m in re.finditer(rb"PK\x03\x04.{22}(..)(..)", head, re.S):
        n = int.from_bytes(m.group(1), "little")
        names.append(head[m.end():m.end() + n].decode("utf-8", "replace"))
    return names


def sniff_zip_names(names: list[str], ext: str = "") -> tuple[str, str]:
    return _zip_kind(names, ext)


def _zip_kind(head_or_names: bytes | list[str], ext: str) -> tuple[str, str]:
    names = zip_names_from_head(head_or_names) if isinstance(head_or_names, bytes) else head_or_names
    if any(n.upper() == "OFD.XML" for n in names) or ext == "ofd":
        return "application/ofd", "OFD（GB/T 33190）"
    if any(n.startswith("word/") for n in names) or ext == "docx":
        return "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "Word 文档（OOXML）"
    if any(n.startswith("xl/") for n in names) or ext == "xlsx":
        return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "Excel 工作簿（OOXML）"
    if any(n.startswith("ppt/") for n in names) or ext == "pptx":
        return "application/vnd.openxmlformats-officedocument.presentationml.presentation", "PowerPoint 演示文稿（OOXML）"
    if "mimetype" in names:
        return "application/vnd.oasis.opendocument", "OpenDocument"
    return "application/zip", "ZIP"

