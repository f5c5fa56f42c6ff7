"""Format identification: PRONOM PUIDs for the formats an archive holds, fast enough for every file at ingest.

How a file is identified, and what each path can honestly tell:

1. magic numbers (basis "magic"): the first bytes say which family a file belongs to (PDF, JPEG, TIFF ...).
   The version inside the family is then decided by the PRONOM signatures themselves: the regular
   expressions of fido's bundled formats-v109.xml for that family's PUIDs only, evaluated on the first and
   last 128 KB (what fido and DROID read). When no signature of the family matches (typically a file cut
   short: no end-of-file marker), the family's generic PUID is given with a warning saying so.
2. containers (basis "container"): a ZIP is told apart by its central directory and [Content_Types].xml or
   mimetype (DOCX, XLSX, PPTX, ODF, EPUB), an OLE2 file by its directory (Word, Excel, PowerPoint, Outlook,
   password-protected OOXML).
3. OFD (basis "ofd"): no tool and no PUID know OFD; a ZIP whose root holds OFD.xml is OFD (GB/T 33190).
4. PDF/A: the claim is read from the XMP (pdfaid:part/conformance) in the raw bytes when the XMP is stored
   uncompressed; only when it may be compressed or hidden in an object stream is pikepdf opened.
5. fido (basis "fido"): the whole PRONOM signature file, in-process, only when the fast path cannot tell.
6. libmagic: a MIME type for what PRONOM does not know.

Every PUID, PRONOM name and version comes from fido's formats-v109.xml, read once per process.
identify_file never raises.
"""

from __future__ import annotations

import mimetypes
import os
import re
import threading
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

from dangan.formats.results import Identification

BUF = 128 * 1024            # bytes from the start and from the end (fido/DROID's default buffer)
FULL_SCAN = 1024 * 1024     # PDFs up to this size are scanned whole for pdfaid
ZIP_MEMBER_LIMIT = 1 << 20  # read at most this much of a package's [Content_Types].xml, mimetype, manifest

# -- PRONOM signatures (fido's bundled copy) -------------------------------------------------------------------


@dataclass
class PronomFormat:
    puid: str
    name: str
    version: str
    mime: str
    extensions: tuple[str, ...]
    signatures: list[list[tuple[str, str]]]     # [(position, regex)] per signature
    priority_over: frozenset[str]
    _compiled: list[list[tuple[str, re.Pattern[bytes]]]] | None = None

    def compiled(self) -> list[list[tuple[str, re.Pattern[bytes]]]]:
        if self._compiled is None:
            self._compiled = [[(pos, re.compile(rx.encode("utf-8"))) for pos, rx in sig] for sig in self.signatures]
        return self._compiled

    def matches(self, bof: bytes, eof: bytes | None) -> bool:
        """Any signature matches; EOF patterns are skipped when the end of the file is not known (eof None)."""
        for sig in self.compiled():
            ok = True
            for pos, rx in sig:
                if pos == "BOF":
                    ok = rx.match(bof) is not None
                elif pos == "EOF":
                    ok = eof is None or rx.search(eof) is not None
                else:  # VAR / IFB
                    ok = rx.search(bof) is not None
                if not ok:
                    break
            if ok and sig:
                return True
        return False


def signature_file() -> str:
    import fido

    return os.path.join(os.path.dirname(fido.__file__), "conf", "formats-v109.xml")


@lru_cache(maxsize=1)
def pronom() -> dict[str, PronomFormat]:
    """PUID -> format, from fido's formats-v109.xml (parsed once; about 0.1 s)."""
    import xml.etree.ElementTree as ET

    out: dict[str, PronomFormat] = {}
    try:
        root = ET.parse(signature_file()).getroot()
    except (OSError, ET.ParseError, ImportError):
        return out
    for f in root.findall("format"):
        puid = f.findtext("puid") or ""
        sigs = []
        for s in f.findall("signature"):
            pats = [(p.findtext("position") or "", p.findtext("regex") or "") for p in s.findall("pattern")]
            if pats and all(rx for _, rx in pats):
                sigs.append(pats)
        out[puid] = PronomFormat(
            puid, (f.findtext("name") or "").strip(), (f.findtext("version") or "").strip(),
            (f.findtext("mime") or "").strip(), tuple(e.text.lower() for e in f.findall("extension") if e.text),
            sigs, frozenset(e.text for e in f.findall("has_priority_over") if e.text))
    return out


def pronom_format(puid: str | None) -> PronomFormat | None:
    return pronom().get(puid or "")


_lock = threading.Lock()


def match_family(puids: Iterable[str], bof: bytes, eof: bytes | None) -> list[str]:
    """The PUIDs among `puids` whose PRONOM signatures match, inferior ones (has_priority_over) removed."""
    table = pronom()
    hits = []
    for p in puids:
        f = table.get(p)
        if f is None:
            continue
        try:
            if f.matches(bof, eof):
                hits.append(p)
        except re.error:
            continue
    beaten = set()
    for p in hits:
        beaten |= table[p].priority_over
    return [p for p in hits if p not in beaten]


# -- families ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Family:
    key: str
    label: str                    # Chinese, for format_name
    mime: str
    candidates: tuple[str, ...]   # PUIDs whose PRONOM signatures decide the version
    default: str | None           # PUID when the file starts right but no signature matches
    extensions: tuple[str, ...] = ()


FAMILIES: dict[str, Family] = {f.key: f for f in (
    Family("pdf", "PDF", "application/pdf", (), None, ("pdf",)),
    Family("jpeg", "JPEG 图像", "image/jpeg",
           ("fmt/41", "fmt/42", "fmt/43", "fmt/44", "x-fmt/398", "x-fmt/390", "x-fmt/391", "fmt/645", "fmt/1507"),
           "fmt/41", ("jpg", "jpeg", "jpe", "jfif")),
    Family("png", "PNG 图像", "image/png", ("fmt/11", "fmt/12", "fmt/13", "fmt/935"), "fmt/11", ("png",)),
    Family("gif", "GIF 图像", "image/gif", ("fmt/3", "fmt/4"), None, ("gif",)),
    Family("tiff", "TIFF 图像", "image/tiff",
           ("fmt/353", "x-fmt/387", "x-fmt/388", "x-fmt/399", "fmt/154", "fmt/155"), "fmt/353", ("tif", "tiff")),
    Family("bmp", "BMP 图像", "image/bmp", ("fmt/114", "fmt/115", "fmt/116", "fmt/117", "fmt/118", "fmt/119"),
           None, ("bmp", "dib")),
    Family("jp2", "JPEG 2000 图像", "image/jp2", ("x-fmt/392", "fmt/151", "fmt/463", "fmt/337"), "x-fmt/392",
           ("jp2", "jpx", "jpf", "j2k", "jpm", "mj2")),
    Family("heif", "HEIF/HEIC 图像", "image/heic", ("fmt/1101",), "fmt/1101", ("heic", "heif", "hif")),
    Family("webp", "WebP 图像", "image/webp", ("fmt/566", "fmt/567", "fmt/568"), None, ("webp",)),
    Family("wav", "WAVE 音频", "audio/wav",
           ("fmt/6", "fmt/141", "fmt/142", "fmt/143", "fmt/1", "fmt/2", "fmt/527", "fmt/703", "fmt/704", "fmt/705",
            "fmt/706", "fmt/707", "fmt/708", "fmt/709", "fmt/710", "fmt/711"), "fmt/6", ("wav", "wave", "bwf")),
    Family("mp3", "MP3 音频", "audio/mpeg", ("fmt/134",), "fmt/134", ("mp3",)),
    Family("mp4", "MPEG-4 音视频", "video/mp4", ("fmt/199",), "fmt/199", ("mp4", "m4v", "m4a", "f4v", "mov")),
    Family("mov", "QuickTime 视频", "video/quicktime", ("x-fmt/384",), "x-fmt/384", ("mov", "qt")),
    Family("xml", "XML", "application/xml", ("fmt/101", "fmt/1776", "x-fmt/280"), "fmt/101", ("xml", "xsd")),
    Family("html", "HTML 网页", "text/html",
           ("fmt/96", "fmt/97", "fmt/98", "fmt/99", "fmt/100", "fmt/471", "fmt/102", "fmt/103"), "fmt/96",
           ("html", "htm", "xhtml")),
    Family("rtf", "RTF 文档", "application/rtf", ("fmt/969", "fmt/45", "fmt/50", "fmt/52", "fmt/53", "fmt/355"),
           "fmt/45", ("rtf",)),
    Family("eml", "电子邮件（MIME）", "message/rfc822", ("fmt/950", "fmt/278"), None, ("eml", "mht", "mhtml", "msg")),
    Family("text", "纯文本", "text/plain", (), "x-fmt/111", ()),
    Family("zip", "ZIP 压缩包", "application/zip", ("x-fmt/263",), "x-fmt/263", ("zip",)),
    Family("rar", "RAR 压缩包", "application/vnd.rar", ("x-fmt/264", "fmt/411", "fmt/613"), "x-fmt/264", ("rar",)),
    Family("7z", "7z 压缩包", "application/x-7z-compressed", ("fmt/484",), "fmt/484", ("7z",)),
    Family("gzip", "GZIP 压缩文件", "application/gzip", ("x-fmt/266",), "x-fmt/266", ("gz", "tgz", "z")),
    Family("ole", "OLE2 复合文档", "application/x-ole-storage",
           ("fmt/111", "fmt/40", "fmt/39", "fmt/61", "fmt/62", "fmt/126", "x-fmt/430"), "fmt/111", ()),
)}

PDF_VERSIONS = {"1.0": "fmt/14", "1.1": "fmt/15", "1.2": "fmt/16", "1.3": "fmt/17", "1.4": "fmt/18",
                "1.5": "fmt/19", "1.6": "fmt/20", "1.7": "fmt/276", "2.0": "fmt/1129"}
PDFA_PUIDS = {"1A": "fmt/95", "1B": "fmt/354", "2A": "fmt/476", "2B": "fmt/477", "2U": "fmt/478",
              "3A": "fmt/479", "3B": "fmt/480", "3U": "fmt/481"}

# Containers: (PUID, Chinese name, mime, extensions)
CONTAINERS: dict[str, tuple[str | None, str, str, tuple[str, ...]]] = {
    "docx": ("fmt/412", "Word 文档（OOXML）",
             "application/vnd.openxmlformats-officedocument.wordprocessingml.document", ("docx",)),
    "docm": ("fmt/523", "启用宏的 Word 文档（OOXML）", "application/vnd.ms-word.document.macroEnabled.12", ("docm",)),
    "dotx": ("fmt/597", "Word 模板（OOXML）",
             "application/vnd.openxmlformats-officedocument.wordprocessingml.template", ("dotx",)),
    "dotm": ("fmt/599", "启用宏的 Word 模板（OOXML）", "application/vnd.ms-word.template.macroEnabled.12", ("dotm",)),
    "xlsx": ("fmt/214", "Excel 工作簿（OOXML）",
             "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ("xlsx",)),
    "xlsm": ("fmt/445", "启用宏的 Excel 工作簿（OOXML）", "application/vnd.ms-excel.sheet.macroEnabled.12", ("xlsm",)),
    "xltx": ("fmt/598", "Excel 模板（OOXML）",
             "application/vnd.openxmlformats-officedocument.spreadsheetml.template", ("xltx",)),
    "xlsb": ("fmt/595", "Excel 二进制工作簿", "application/vnd.ms-excel.sheet.binary.macroEnabled.12", ("xlsb",)),
    "pptx": ("fmt/215", "PowerPoint 演示文稿（OOXML）",
             "application/vnd.openxmlformats-officedocument.presentationml.presentation", ("pptx",)),
    "pptm": ("fmt/487", "启用宏的 PowerPoint 演示文稿（OOXML）",
             "application/vnd.ms-powerpoint.presentation.macroEnabled.12", ("pptm",)),
    "ppsx": ("fmt/629", "PowerPoint 放映文件（OOXML）",
             "application/vnd.openxmlformats-officedocument.presentationml.slideshow", ("ppsx",)),
    "potx": ("fmt/631", "PowerPoint 模板（OOXML）",
             "application/vnd.openxmlformats-officedocument.presentationml.template", ("potx",)),
    "ooxml": ("fmt/189", "Office Open XML 文档", "application/vnd.openxmlformats-officedocument", ("docx", "xlsx", "pptx")),
    "epub": ("fmt/483", "EPUB 电子书", "application/epub+zip", ("epub",)),
    "ofd": (None, "OFD（GB/T 33190）", "application/ofd", ("ofd",)),
    "doc": ("fmt/40", "Word 97-2003 文档", "application/msword", ("doc", "dot", "wbk")),
    "doc95": ("fmt/39", "Word 6.0/95 文档", "application/msword", ("doc",)),
    "doc_encrypted": ("fmt/754", "Word 97-2003 文档（受口令保护）", "application/msword", ("doc",)),
    "xls": ("fmt/61", "Excel 97-2003 工作簿", "application/vnd.ms-excel", ("xls", "xlt", "xlw")),
    "xls5": ("fmt/59", "Excel 5.0/95 工作簿", "application/vnd.ms-excel", ("xls", "xlw")),
    "ppt": ("fmt/126", "PowerPoint 97-2003 演示文稿", "application/vnd.ms-powerpoint", ("ppt", "pps", "pot")),
    "msg": ("x-fmt/430", "Outlook 邮件（.msg）", "application/vnd.ms-outlook", ("msg", "oft")),
    "encrypted_ooxml": ("fmt/494", "受口令保护的 Office 文档（加密的 OOXML）", "application/x-ole-storage",
                        ("docx", "xlsx", "pptx", "docm", "xlsm", "pptm")),
    "ole": ("fmt/111", "OLE2 复合文档", "application/x-ole-storage", ()),
}
ODF_KINDS = {  # mimetype suffix -> (label, ext, {version: PUID})
    "text": ("OpenDocument 文本", "odt", {"1.0": "fmt/136", "1.1": "fmt/290", "1.2": "fmt/291", "1.3": "fmt/1756"}),
    "spreadsheet": ("OpenDocument 电子表格", "ods",
                    {"1.0": "fmt/137", "1.1": "fmt/294", "1.2": "fmt/295", "1.3": "fmt/1755"}),
    "presentation": ("OpenDocument 演示文稿", "odp",
                     {"1.0": "fmt/138", "1.1": "fmt/292", "1.2": "fmt/293", "1.3": "fmt/1754"}),
    "graphics": ("OpenDocument 图形", "odg", {"1.0": "fmt/139", "1.1": "fmt/296", "1.2": "fmt/297", "1.3": "fmt/1753"}),
}
_OOXML_MAIN = [  # (content type fragment of the main part, container key)
    (b"wordprocessingml.document.main+xml", "docx"), (b"ms-word.document.macroEnabled.main+xml", "docm"),
    (b"wordprocessingml.template.main+xml", "dotx"), (b"ms-word.template.macroEnabledTemplate.main+xml", "dotm"),
    (b"spreadsheetml.sheet.main+xml", "xlsx"), (b"ms-excel.sheet.macroEnabled.main+xml", "xlsm"),
    (b"spreadsheetml.template.main+xml", "xltx"), (b"ms-excel.sheet.binary.macroEnabled.main", "xlsb"),
    (b"presentationml.presentation.main+xml", "pptx"), (b"ms-powerpoint.presentation.macroEnabled.main+xml", "pptm"),
    (b"presentationml.slideshow.main+xml", "ppsx"), (b"presentationml.template.main+xml", "potx"),
]
TEXT_EXTENSIONS = {"txt", "text", "md", "markdown", "csv", "tsv", "log", "ini", "cfg", "conf", "json", "yaml",
                   "yml", "toml", "sql", "py", "js", "css", "sh", "bat", "properties", "srt", "vtt", "tex", "bib",
                   "xml", "xsd", "xsl", "xslt", "html", "htm", "svg", "rst", "nfo", "me", "asc", "eml", "ofd.txt"}

EMPTY = Identification(mime="application/x-empty", format_name="空文件（0 字节）", puid=None, basis="none")


# -- magic numbers ----------------------------------------------------------------------------------------------

_PDF_HEADER = re.compile(rb"%PDF-(\d\.\d)")
_EMAIL_HEADER = re.compile(rb"\A(?:[\x21-\x39\x3b-\x7e]+:[^\r\n]*\r?\n(?:[ \t][^\r\n]*\r?\n)*){2,}")
_XML_START = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*<\?xml[\s?]")
_HTML_START = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>]|head[\s>]|body[\s>])",
                         re.I | re.S)
_MARKUP_START = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*<[A-Za-z_][\w.:-]*[\s>/]")


def magic_family(head: bytes) -> str | None:
    """The family the first bytes belong to, from magic numbers alone (None: no binary magic)."""
    h = head
    if h[:1024].find(b"%PDF-") >= 0 and (h.startswith(b"%PDF-") or _PDF_HEADER.search(h[:1024])):
        return "pdf"
    if h.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if h.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if h.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if h.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if h.startswith(b"BM") and len(h) >= 18 and int.from_bytes(h[14:18], "little") in (12, 40, 52, 56, 64, 108, 124):
        return "bmp"
    if h.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n") or h.startswith(b"\xff\x4f\xff\x51"):
        return "jp2"
    if h.startswith(b"RIFF") and h[8:12] == b"WEBP":
        return "webp"
    if h.startswith((b"RIFF", b"RF64")) and h[8:12] == b"WAVE":
        return "wav"
    if h[4:8] == b"ftyp":
        brands = {h[i:i + 4] for i in range(8, min(len(h), 8 + 4 * 16), 4)}
        if brands & {b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"heim", b"heis", b"avif"}:
            return "heif"
        if h[8:12] == b"qt  ":
            return "mov"
        return "mp4"
    if h[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot") and len(h) >= 8:
        return "mov"
    if h.startswith(b"ID3") or (len(h) > 2 and h[0] == 0xFF and h[1] in (0xFB, 0xF3, 0xF2, 0xFA, 0xE3)):
        return "mp3"
    if h.startswith((b"PK\x03\x04", b"PK\x05\x06")) or (h[:4].find(b"PK\x03\x04") >= 0):
        return "zip"
    if h.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "ole"
    if h.startswith(b"Rar!\x1a\x07"):
        return "rar"
    if h.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    if h.startswith(b"\x1f\x8b"):
        return "gzip"
    if h.startswith(b"{\\rtf"):
        return "rtf"
    return None


def _ext(name: str) -> str:
    base = os.path.basename(name or "")
    return base.rsplit(".", 1)[-1].lower() if "." in base.strip(".") else ""


# -- building results -------------------------------------------------------------------------------------------

def _expected_exts(puid: str | None, family: Family | None, extra: Iterable[str] = ()) -> set[str]:
    exts = set(extra)
    f = pronom_format(puid)
    if f:
        exts |= set(f.extensions)
    if family:
        exts |= set(family.extensions)
    return exts


def _ext_check(name: str, format_name: str, expected: set[str], *, text: bool = False) -> tuple[bool, list[str]]:
    if not name:
        return True, []
    ext = _ext(name)
    want = "、".join(f".{e}" for e in sorted(expected)[:4]) if expected else ""
    if not ext:
        hint = f"（通常为 {want}）" if want else ""
        return False, [f"文件名没有扩展名，按内容识别为“{format_name}”{hint}"]
    if not expected or ext in expected:
        return True, []
    if text:
        guess = mimetypes.guess_type("x." + ext)[0] or ""
        textual = guess.startswith("text/") or guess.endswith(("json", "xml", "javascript", "x-sh")) or not guess
        if ext in TEXT_EXTENSIONS or (textual and ext not in _BINARY_EXTS):
            return True, []
    hint = f"，应为 {want}" if want else ""
    return False, [f"扩展名 .{ext} 与内容不符：内容是“{format_name}”{hint}"]


_BINARY_EXTS = {"pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "jpg", "jpeg", "png", "gif", "tif", "tiff",
                "bmp", "jp2", "zip", "rar", "7z", "gz", "ofd", "wav", "mp3", "mp4", "mov", "avi", "heic", "odt", "ods",
                "odp", "epub", "exe", "dll", "bin", "iso", "dwg", "wps", "et", "dps", "ceb", "caj", "msg", "webp"}


def _finish(name: str, ident: Identification, expected: set[str], *, text: bool = False,
            extra_warnings: Iterable[str] = ()) -> Identification:
    ok, warn = _ext_check(name, ident.format_name, expected, text=text)
    return Identification(mime=ident.mime, format_name=ident.format_name, puid=ident.puid, version=ident.version,
                          basis=ident.basis, extension_matches=ok, pdfa=ident.pdfa,
                          warnings=tuple([*ident.warnings, *extra_warnings, *warn]))


def _family_ident(fam: Family, bof: bytes, eof: bytes | None) -> tuple[Identification, set[str]]:
    hits = match_family(fam.candidates, bof, eof)
    warnings: list[str] = []
    puid = hits[0] if hits else None
    if len(hits) > 1:
        warnings.append("PRONOM 签名同时符合 " + "、".join(hits) + f"，取 {hits[0]}")
    if puid is None:
        puid = _default_puid(fam, bof)
        if fam.candidates and puid:
            warnings.append(f"文件以{fam.label}的文件头开始，但不完全符合 PRONOM 签名（常见原因：文件被截断、"
                            "缺少结束标记或结构损坏），PUID 按文件头推定")
    f = pronom_format(puid)
    version = f.version if f and f.version else None
    mime = fam.mime
    if fam.key == "jp2" and puid == "fmt/151":
        mime = "image/jpx"
    return Identification(mime=mime, format_name=_display_name(fam, f), puid=puid, version=version,
                          basis="magic", warnings=tuple(warnings)), _expected_exts(puid, fam)


def _default_puid(fam: Family, bof: bytes) -> str | None:
    if fam.key == "gif":
        return "fmt/3" if bof.startswith(b"GIF87a") else "fmt/4"
    if fam.key == "bmp" and len(bof) >= 18:
        return {12: "fmt/115", 40: "fmt/116", 108: "fmt/118", 124: "fmt/119"}.get(
            int.from_bytes(bof[14:18], "little"))
    if fam.key == "webp":
        return None
    return fam.default


def _display_name(fam: Family, f: PronomFormat | None) -> str:
    if f is None:
        return fam.label
    if fam.key == "jpeg":
        if f.name.startswith("JPEG File Interchange"):
            return f"JPEG 图像（JFIF {f.version}）"
        if f.name.startswith("Exchangeable Image"):
            return f"JPEG 图像（Exif {f.version}）"
        return fam.label
    if fam.key == "tiff" and f.name.startswith("Exchangeable Image"):
        return f"TIFF 图像（Exif {f.version}）"
    if fam.key == "tiff" and "(" in f.name:
        return f"TIFF 图像（{f.name.split('(', 1)[1].rstrip(')')}）"
    if fam.key == "jp2":
        return {"fmt/151": "JPEG 2000 图像（JPX）", "fmt/463": "JPEG 2000 复合图像（JPM）",
                "fmt/337": "Motion JPEG 2000 视频"}.get(f.puid, fam.label)
    if fam.key == "wav" and f.name.startswith("Broadcast WAVE"):
        return f"广播级 WAVE 音频（BWF {f.version}）"
    if fam.key == "html" and f.version:
        return f"HTML {f.version} 网页" if "Extensible" not in f.name else f"XHTML {f.version} 网页"
    if fam.key in ("png", "gif", "rtf", "bmp", "xml", "rar") and f.version:
        return f"{fam.label}（{f.version}）" if fam.key != "xml" else f"XML {f.version}"
    if fam.key == "xml" and f.puid == "x-fmt/280":
        return "XML Schema（XSD）"
    return fam.label


# -- PDF --------------------------------------------------------------------------------------------------------

_PDFAID_PART = re.compile(rb"pdfaid:part\s*(?:=\s*[\"']|>)\s*(\d)")
_PDFAID_CONF = re.compile(rb"pdfaid:conformance\s*(?:=\s*[\"']|>)\s*([A-Za-z])")
_XMP_VISIBLE = re.compile(rb"<x:xmpmeta|<\?xpacket|<rdf:RDF")


def pdfa_from_bytes(data: bytes) -> str | None:
    """The last PDF/A claim (e.g. "2B") visible in raw bytes of uncompressed XMP, or None."""
    last = None
    for m in _PDFAID_PART.finditer(data):
        last = m
    if last is None:
        return None
    window = data[max(0, last.start() - 2000):last.end() + 2000]
    c = _PDFAID_CONF.search(window)
    return last.group(1).decode() + (c.group(1).decode().upper() if c else "")


def pdfa_from_pikepdf(path: str) -> tuple[str | None, list[str]]:
    """The PDF/A claim from the XMP read by pikepdf (compressed streams and object streams too)."""
    try:
        import pikepdf
    except ImportError:
        return None, ["未安装 pikepdf，无法读取压缩的 XMP 元数据"]
    try:
        with pikepdf.open(path) as pdf:
            if "/Metadata" not in pdf.Root:
                return None, []
            meta = pdf.open_metadata()
            part = meta.get("pdfaid:part")
            if not part:
                return None, []
            conf = meta.get("pdfaid:conformance") or ""
            return f"{part}{conf.upper()}", []
    except pikepdf.PasswordError:
        return None, ["PDF 已加密，无法读取 XMP 中的 PDF/A 声明"]
    except Exception as e:  # noqa: BLE001 - damaged files: identification still stands
        return None, [f"无法读取 XMP 元数据（{type(e).__name__}），未确认 PDF/A 声明"]


def _pdf_ident(head: bytes, tail: bytes | None, *, whole: bytes | None, path: str | None, deep: bool) -> Identification:
    m = _PDF_HEADER.search(head[:1024])
    version = m.group(1).decode() if m else None
    warnings: list[str] = []
    puid = PDF_VERSIONS.get(version or "")
    if version and puid is None:
        warnings.append(f"PDF 版本号 {version} 不在 PRONOM 的 PDF 版本中")
    if m and m.start() > 0:
        warnings.append(f"%PDF 文件头不在文件开头（前有 {m.start()} 字节）")
    if tail is not None and b"%%EOF" not in tail[-1024:]:
        warnings.append("PDF 文件末尾没有 %%EOF 标记，文件可能被截断")
    scanned = whole if whole is not None else head + (tail or b"")
    pdfa = pdfa_from_bytes(scanned)
    if pdfa is None and path is not None:
        xmp_visible = _XMP_VISIBLE.search(scanned) is not None
        maybe_hidden = whole is None or b"/ObjStm" in scanned or (b"/Metadata" in scanned and not xmp_visible)
        if deep or maybe_hidden:
            pdfa, w = pdfa_from_pikepdf(path)
            warnings.extend(w)
    if pdfa is not None:
        ap = PDFA_PUIDS.get(pdfa.upper())
        if ap:
            puid = ap
        else:
            warnings.append(f"PDF/A-{pdfa} 在 PRONOM v109 中没有对应的 PUID，按 PDF 版本给出")
    f = pronom_format(puid)
    name = f"PDF {version}" if version else "PDF"
    if pdfa:
        name += f"（PDF/A-{pdfa}）"
    return Identification(mime="application/pdf", format_name=name, puid=puid,
                          version=version or (f.version if f else None), basis="magic", pdfa=pdfa,
                          warnings=tuple(warnings))


# -- containers -------------------------------------------------------------------------------------------------

def _container_ident(key: str, *, version: str | None = None, basis: str = "container",
                     warnings: Iterable[str] = ()) -> tuple[Identification, set[str]]:
    puid, label, mime, exts = CONTAINERS[key]
    f = pronom_format(puid)
    return (Identification(mime=mime, format_name=label, puid=puid, version=version or (f.version if f and f.version
                                                                                       else None),
                           basis=basis, warnings=tuple(warnings)), _expected_exts(puid, None, exts))


def _is_ofd(names: list[str], read: Callable[[str], bytes]) -> tuple[bool, list[str]]:
    root = [n for n in names if n.lower() == "ofd.xml"]
    if not root:
        return False, []
    try:
        head = read(root[0])
    except Exception:  # noqa: BLE001 - only the first bytes are known (identify_head): the name decides
        return True, ["OFD.xml 未能读取（只有文件开头的字节），按包结构推定为 OFD"]
    try:
        from dangan.formats import ofd  # written alongside this module: the namespace and root element rule

        if ofd.looks_like_ofd(names, lambda n: head if n == root[0] else read(n)):
            return True, []
        return True, ["OFD.xml 的根元素不是 http://www.ofdspec.org/2016 命名空间中的 ofd:OFD，按包结构推定为 OFD"]
    except (ImportError, AttributeError):
        pass
    if b"ofdspec.org" not in head[:4096]:
        return True, ["OFD.xml 中没有 http://www.ofdspec.org/2016 命名空间"]
    return True, []


def _zip_kind(names: list[str], read: Callable[[str], bytes]) -> tuple[Identification, set[str]] | None:
    """Identify a ZIP package from its entry names and a reader for small members (None: a plain ZIP)."""
    nameset = set(names)
    ofd, w = _is_ofd(names, read)
    if ofd:
        puid, label, mime, exts = CONTAINERS["ofd"]
        return Identification(mime=mime, format_name=label, puid=None, basis="ofd", warnings=tuple(w)), set(exts)
    if "[Content_Types].xml" in nameset:
        try:
            ct = read("[Content_Types].xml")
        except Exception:  # noqa: BLE001
            ct = b""
        for frag, key in _OOXML_MAIN:
            if frag in ct:
                return _container_ident(key)
        for prefix, key in (("word/", "docx"), ("xl/", "xlsx"), ("ppt/", "pptx")):
            if any(n.startswith(prefix) for n in names):
                return _container_ident(key, warnings=["[Content_Types].xml 未声明主文档部件，按目录结构推定"])
        return _container_ident("ooxml")
    if "mimetype" in nameset:
        try:
            mt = read("mimetype")[:200].strip()
        except Exception:  # noqa: BLE001
            mt = b""
        if mt == b"application/epub+zip":
            return _container_ident("epub")
        if mt.startswith(b"application/vnd.oasis.opendocument."):
            sub = mt.rsplit(b".", 1)[-1].decode("ascii", "replace")
            kind = ODF_KINDS.get(sub)
            if kind is None:
                return (Identification(mime=mt.decode("ascii", "replace"), format_name="OpenDocument 文档",
                                       puid="fmt/135", version=None, basis="container"),
                        _expected_exts("fmt/135", None))
            version = None
            for member in ("META-INF/manifest.xml", "content.xml"):
                if member in nameset:
                    try:
                        vm = re.search(rb'(?:manifest|office):version="([0-9.]+)"', read(member)[:8192])
                    except Exception:  # noqa: BLE001
                        vm = None
                    if vm:
                        version = vm.group(1).decode()
                        break
            label, ext, puids = kind
            puid = puids.get(version or "1.1", puids["1.1"])  # no version attribute: ODF 1.0/1.1 (as PRONOM says)
            f = pronom_format(puid)
            return (Identification(mime=mt.decode("ascii", "replace"), format_name=f"{label}（ODF {f.version if f else version}）",
                                   puid=puid, version=f.version if f else version, basis="container"),
                    _expected_exts(puid, None, (ext,)))
    return None


def _zip_ident_file(path: str, head: bytes) -> tuple[Identification, set[str]]:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()

            def read(n: str) -> bytes:
                with zf.open(n) as fh:
                    return fh.read(ZIP_MEMBER_LIMIT)

            got = _zip_kind(names, read)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError, NotImplementedError) as e:
        return _zip_ident_head(head, [f"ZIP 中央目录无法读取（{e}），只按开头的条目识别"])
    if got is not None:
        return got
    fam = FAMILIES["zip"]
    return (Identification(mime=fam.mime, format_name=fam.label, puid="x-fmt/263", basis="container"),
            _expected_exts("x-fmt/263", fam))


def _zip_ident_head(head: bytes, warnings: list[str] | None = None) -> tuple[Identification, set[str]]:
    from dangan.formats.sniff import zip_names_from_head

    names = zip_names_from_head(head)
    local = {}
    for m in re.finditer(rb"PK\x03\x04", head):
        p = m.start()
        if p + 30 > len(head):
            break
        method = int.from_bytes(head[p + 8:p + 10], "little")
        csize = int.from_bytes(head[p + 18:p + 22], "little")
        nlen = int.from_bytes(head[p + 26:p + 28], "little")
        xlen = int.from_bytes(head[p + 28:p + 30], "little")
        nm = head[p + 30:p + 30 + nlen].decode("utf-8", "replace")
        if method == 0:
            local[nm] = head[p + 30 + nlen + xlen:p + 30 + nlen + xlen + min(csize, 4096)]

    def read(n: str) -> bytes:
        if n in local:
            return local[n]
        raise KeyError(n)

    got = _zip_kind(names, read)
    if got is not None:
        ident, exts = got
        return Identification(**{**ident.as_dict(), "warnings": tuple([*ident.warnings, *(warnings or [])])}), exts
    fam = FAMILIES["zip"]
    return Identification(mime=fam.mime, format_name=fam.label, puid="x-fmt/263", basis="magic",
                          warnings=tuple(warnings or [])), set(fam.extensions)


def _ole_ident_file(path: str, head: bytes) -> tuple[Identification, set[str]]:
    from dangan.formats import office

    try:
        ole = office.read_ole(path)
        kind = office.ole_kind(ole)
        warnings: list[str] = []
        if kind == "doc":
            nfib, enc = office.word_fib(ole) or (0, False)
            if enc:
                kind = "doc_encrypted"
            elif 0 < nfib < 0x00C1:
                kind = "doc95"
        elif kind == "xls":
            warnings.append("PRONOM 签名无法区分 Excel 97（fmt/61）与 Excel 2000-2003（fmt/62），给出 fmt/61")
        return _container_ident(kind, warnings=warnings)
    except (office.OleError, OSError, struct_error) as e:
        ident, exts = _family_ident(FAMILIES["ole"], head, None)
        return (Identification(**{**ident.as_dict(), "warnings": (*ident.warnings, f"复合文档目录无法读取：{e}")}),
                exts | {"doc", "xls", "ppt", "msg"})


try:
    from struct import error as struct_error
except ImportError:  # pragma: no cover
    struct_error = ValueError  # type: ignore[misc,assignment]


# -- text -------------------------------------------------------------------------------------------------------

def _text_ident(head: bytes, tail: bytes | None, name: str, encoding: str) -> tuple[Identification, set[str], bool]:
    from dangan.formats.text import ENCODING_NAMES

    bof = head
    if encoding in ("utf-16", "utf-32"):  # PRONOM's regexes are written for 8-bit text
        try:
            from dangan.formats.text import decode_text

            bof = decode_text(head, partial=True)[0].encode("utf-8")
        except Exception:  # noqa: BLE001
            bof = head
    if _XML_START.match(bof):
        ident, exts = _family_ident(FAMILIES["xml"], bof, tail if encoding not in ("utf-16", "utf-32") else None)
        return ident, exts, False
    if _HTML_START.match(bof) or re.search(rb"<html[\s>]", bof[:1024], re.I):
        ident, exts = _family_ident(FAMILIES["html"], bof, tail)
        return ident, exts, False
    if _EMAIL_HEADER.match(bof) and re.search(rb"^(?:From|To|Subject|Date|Message-ID|MIME-Version|Received):",
                                              bof[:16384], re.M | re.I):
        hits = match_family(FAMILIES["eml"].candidates, bof, None)
        if hits:
            f = pronom_format(hits[0])
            return (Identification(mime="message/rfc822", format_name="电子邮件（MIME）", puid=hits[0],
                                   version=f.version if f and f.version else None, basis="magic"),
                    _expected_exts(hits[0], FAMILIES["eml"]), False)
    if _MARKUP_START.match(bof) and _ext(name) in ("xml", "xsd", "xsl", "xslt", "svg", "gml", "kml", "rdf", ""):
        ident, exts = _family_ident(FAMILIES["xml"], bof, None)
        return (Identification(**{**ident.as_dict(), "puid": "fmt/101", "format_name": "XML（无 XML 声明）",
                                  "warnings": ("没有 <?xml ?> 声明，按内容推定为 XML",)}), exts, False)
    ext = _ext(name)
    enc_name = ENCODING_NAMES.get(encoding, encoding)
    if ext in ("md", "markdown"):
        puid, label, mime = "fmt/1149", "Markdown 文本", "text/markdown"
    elif ext == "csv":
        puid, label, mime = "x-fmt/18", "CSV 表格文本", "text/csv"
    else:
        puid, label, mime = "x-fmt/111", "纯文本", "text/plain"
    basis = "extension" if puid != "x-fmt/111" else "magic"
    f = pronom_format(puid)
    return (Identification(mime=mime, format_name=f"{label}（{enc_name}）", puid=puid,
                           version=f.version if f and f.version else None, basis=basis),
            _expected_exts(puid, None), True)


# -- fallbacks --------------------------------------------------------------------------------------------------

_fido_instance = None


def _fido():  # -> fido.fido.Fido | None
    global _fido_instance
    if _fido_instance is None:
        with _lock:
            if _fido_instance is None:
                try:
                    from fido.fido import Fido

                    conf = os.path.dirname(signature_file())
                    _fido_instance = Fido(quiet=True, handle_matches=lambda *a, **k: None, conf_dir=conf,
                                          format_files=["formats-v109.xml", "format_extensions.xml"], nocontainer=True)
                except Exception:  # noqa: BLE001 - fido missing or broken: no fallback
                    _fido_instance = False
    return _fido_instance or None


def fido_match(bof: bytes, eof: bytes) -> list[str]:
    """Every PRONOM signature, through fido in-process (slow: 5-15 ms a file); real PUIDs only."""
    f = _fido()
    if f is None:
        return []
    with _lock:  # fido keeps per-call state on the instance
        try:
            matches = f.match_formats(bof, eof)
        except Exception:  # noqa: BLE001
            return []
    return [f.get_puid(m) for m, _ in matches if not f.get_puid(m).startswith("fido-")]


def libmagic(head: bytes) -> tuple[str, str] | None:
    try:
        import magic

        return magic.from_buffer(head, mime=True), magic.from_buffer(head)
    except Exception:  # noqa: BLE001 - libmagic missing: nothing to add
        return None


def _fallback(head: bytes, tail: bytes, name: str) -> tuple[Identification, set[str]]:
    puids = fido_match(head, tail)
    if puids:
        f = pronom_format(puids[0])
        warnings = ["PRONOM 签名同时符合 " + "、".join(puids) + f"，取 {puids[0]}"] if len(puids) > 1 else []
        mime = (f.mime if f and f.mime else None) or mimetypes.guess_type(name)[0] or "application/octet-stream"
        label = f"{f.name} {f.version}".strip() if f else puids[0]
        return (Identification(mime=mime, format_name=label, puid=puids[0], version=f.version if f and f.version
                               else None, basis="fido", warnings=tuple(warnings)), _expected_exts(puids[0], None))
    lm = libmagic(head)
    if lm and lm[0] not in ("application/octet-stream", "application/x-empty", ""):
        return (Identification(mime=lm[0], format_name=lm[1][:120], puid=None, basis="magic",
                               warnings=("PRONOM 签名未能识别此文件，MIME 类型由 libmagic 推断",)),
                set(filter(None, [(mimetypes.guess_extension(lm[0]) or "").lstrip(".")])))
    ext = _ext(name)
    return (Identification(mime="application/octet-stream", format_name="未知格式", puid=None, basis="none",
                           warnings=(f"无法按内容识别文件格式{f'（扩展名为 .{ext}）' if ext else ''}",)), set())


# -- public API -------------------------------------------------------------------------------------------------

def _identify(head: bytes, name: str, *, tail: bytes | None, path: str | None, whole: bytes | None,
              deep: bool) -> Identification:
    fam_key = magic_family(head)
    if fam_key == "pdf":
        ident = _pdf_ident(head, tail, whole=whole, path=path, deep=deep)
        return _finish(name, ident, _expected_exts(ident.puid, FAMILIES["pdf"]))
    if fam_key == "zip":
        ident, exts = _zip_ident_file(path, head) if path else _zip_ident_head(head)
        return _finish(name, ident, exts)
    if fam_key == "ole":
        if path:
            ident, exts = _ole_ident_file(path, head)
        else:
            ident, exts = _family_ident(FAMILIES["ole"], head, None)
            exts = exts | {"doc", "xls", "ppt", "msg"}
        return _finish(name, ident, exts)
    if fam_key is not None:
        fam = FAMILIES[fam_key]
        ident, exts = _family_ident(fam, head, tail)
        if fam_key in ("mp4", "mov") and path and ident.warnings and b"moov" not in head:
            # PRONOM's MP4 signature wants "moov" in the first 128 KB; many files put it at the end
            from dangan.formats.validate import walk_bmff

            problems, boxes = walk_bmff(path, require_moov=True)
            if not problems:
                ident = Identification(mime=ident.mime, format_name=ident.format_name, puid=ident.puid,
                                       version=ident.version, basis="magic", warnings=())
        return _finish(name, ident, exts)
    from dangan.formats.text import looks_like_text

    enc = looks_like_text(head, partial=whole is None)
    if enc is not None:
        ident, exts, is_text = _text_ident(head, tail, name, enc)
        return _finish(name, ident, exts, text=is_text)
    ident, exts = _fallback(head, tail if tail is not None else head, name)
    return _finish(name, ident, exts)


def identify_head(head: bytes, name: str) -> Identification:
    """Identify from the first bytes and the file name only (no end of file, no container directory)."""
    try:
        if not head:
            return _finish(name, EMPTY, set()) if _ext(name) else EMPTY
        return _identify(head[:BUF], name, tail=None, path=None, whole=None, deep=False)
    except Exception as e:  # noqa: BLE001 - identification never fails a caller
        return Identification(mime="application/octet-stream", format_name="无法识别", basis="none",
                              warnings=(f"识别出错：{type(e).__name__}: {e}",))


def identify_file(path: str, name: str | None = None, *, deep: bool = False) -> Identification:
    """Identify a stored file; `name` is the name it was submitted under (default: the path's base name).

    deep=True also opens a PDF with pikepdf to read its XMP even when the raw bytes show no sign of hidden XMP.
    """
    name = os.path.basename(path) if name is None else name
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                return _empty(name)
            head = fh.read(BUF if size > BUF else size)
            whole = head if len(head) >= size else None
            tail = head
            if whole is None:
                if head.startswith(b"%PDF-") and size <= FULL_SCAN:
                    whole = head + fh.read()
                    tail = whole[-BUF:]
                else:
                    fh.seek(max(BUF, size - BUF))
                    tail = fh.read(BUF)
            if not head:
                return _empty(name)
        return _identify(head, name, tail=tail, path=path, whole=whole, deep=deep)
    except OSError as e:
        return Identification(mime="application/octet-stream", format_name="无法读取", basis="none",
                              extension_matches=True, warnings=(f"无法读取文件：{e.strerror or e}",))
    except Exception as e:  # noqa: BLE001 - identification never fails a caller
        return Identification(mime="application/octet-stream", format_name="无法识别", basis="none",
                              warnings=(f"识别出错：{type(e).__name__}: {e}",))


def _empty(name: str) -> Identification:
    ext = _ext(name)
    if not ext:
        return EMPTY
    return Identification(mime=EMPTY.mime, format_name=EMPTY.format_name, puid=None, basis="none",
                          extension_matches=False,
                          warnings=(f"文件为空（0 字节），不是扩展名 .{ext} 所示的格式",))


def family_of(ident: Identification) -> str:
    """The validator family for an identification: pdf, image, zip, ofd, ole, text, xml, html, wav, mp4 ..."""
    m = ident.mime
    if ident.basis == "ofd" or m == "application/ofd":
        return "ofd"
    if m == "application/x-empty":
        return "empty"
    if m == "application/pdf":
        return "pdf"
    if m in ("image/heic", "image/heif"):
        return "heif"
    if m.startswith("image/"):
        return "image"
    if m in ("audio/wav", "audio/x-wav", "audio/wave"):
        return "wav"
    if m in ("video/mp4", "video/quicktime", "audio/mp4"):
        return "mp4"
    if m == "application/vnd.rar" or m == "application/x-7z-compressed":
        return "nonpublic_archive"
    if ident.puid == "fmt/494" or m in ("application/x-ole-storage", "application/msword", "application/vnd.ms-excel",
                                        "application/vnd.ms-powerpoint", "application/vnd.ms-outlook"):
        return "ole"
    if m == "application/zip" or "openxmlformats" in m or "opendocument" in m or m == "application/epub+zip" \
            or m.startswith("application/vnd.ms-") and "macroEnabled" in m:
        return "zip"
    if m == "application/xml" or m.endswith("+xml") and not m.startswith("image/"):
        return "xml"
    if m == "text/html":
        return "html"
    if m == "application/rtf":
        return "rtf"
    if m.startswith("text/") or m == "message/rfc822":
        return "text"
    return "other"
