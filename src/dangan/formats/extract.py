"""Text extraction from stored files, page by page, for full-text search.

``extract_text`` returns the text of a file as pages (``PageText``, numbered from 1) with a status:

- ``ok``: some text was found (``message`` may carry a note, e.g. pages that could not be read);
- ``empty``: the file opens but holds no text (a 0-byte file, a scanned PDF without a text layer: OCR needed);
- ``unreadable``: encrypted, damaged, or refused for safety (ZIP bomb, XML entity declarations);
- ``unsupported``: images, audio, video, legacy binary Office formats, archives, unknown formats.

What each format gives:

- PDF: the text layer of every page (PDFium through pypdfium2). PDFium is not thread-safe, so one lock
  serialises all PDF extraction in the process.
- OFD (GB/T 33190): the TextCode strings of every page in Document.xml's page order, template pages included,
  placed in reading order by their position (lines top to bottom, left to right within a line), so that an
  e-invoice's template labels ("名称：") come out next to the page's values. The package is read through
  ofd.py's bounded ZIP reader with its path rules (case-insensitive and non-standard paths).
- DOCX (body, tables, headers, footers, foot- and endnotes), PPTX (one page per slide), XLSX (one page per
  sheet, through openpyxl in read-only mode), ODT/ODP/ODS (content.xml; one page per slide or sheet).
- Plain text, CSV, Markdown: decoded with ``text.decode_text`` (UTF-8, GB18030, Big5); HTML: tags stripped
  with lxml's HTML parser; XML: the text of its elements; e-mail (.eml): headers, body, attachment names.

Every result is whitespace-normalised the same way: lines separated by "\\n", runs of spaces (including the
ideographic space U+3000) collapsed into one space, empty lines dropped, control characters, NULs, lone
surrogates and non-characters removed. The text stops at ``max_chars`` (``truncated`` is then True).

Safety and bounds: ZIP parts are inflated in chunks under a per-part and a total budget, and a part whose
declared size or compression ratio is that of a ZIP bomb is refused before it is inflated; XML is parsed
without DTDs, entity expansion or network access (OOXML/ODF/OFD parts with a DOCTYPE are refused; a stand-alone
XML file has its DOCTYPE removed before parsing, so no declared entity can be expanded); large office parts
are streamed, never held as a whole tree; text files are read only as far as ``max_chars`` needs; and
extraction stops after ``max_seconds``. ``extract_text`` never raises.
"""

from __future__ import annotations

import codecs
import os
import re
import time
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as dtime
from typing import Any

from lxml import etree

from dangan.formats.pdfium_lock import PDFIUM
from dangan.formats.results import Identification, Validation

# -- results ---------------------------------------------------------------------------------------------------


@dataclass
class PageText:
    page: int          # from 1; a sheet's or slide's number for spreadsheets and presentations
    text: str


@dataclass
class Extraction:
    status: str                                   # ok | empty | unreadable | unsupported
    pages: list[PageText] = field(default_factory=list)
    encoding: str | None = None                   # the detected encoding of a text file (Python codec name)
    message: str = ""                             # Chinese: why there is no text, or a note about what is missing
    truncated: bool = False                       # stopped at max_chars, max_pages or max_seconds
    chars: int = 0                                # characters in all pages' text

    @property
    def text(self) -> str:
        return "\n".join(p.text for p in self.pages)


# -- limits ----------------------------------------------------------------------------------------------------

MAX_PART_BYTES = 256 * 1024 * 1024      # inflated size of one ZIP part (streamed, never held whole)
MAX_HELD_BYTES = 32 * 1024 * 1024       # a part that is parsed as a whole (an OFD page, a slide, a workbook part)
MAX_TOTAL_BYTES = 1024 * 1024 * 1024    # inflated bytes of one package
MAX_RATIO = 200                         # compression ratio refused for parts larger than RATIO_FLOOR
RATIO_FLOOR = 8 * 1024 * 1024
MAX_MARKUP_BYTES = 64 * 1024 * 1024     # an XML/HTML file is parsed as a whole up to this size
MAX_EMAIL_BYTES = 64 * 1024 * 1024
_CHUNK = 256 * 1024

_PDFIUM_LOCK = PDFIUM  # shared with every other user of PDFium (formats.pdfium_lock)


class _Fail(Exception):
    """Stop with a status other than ok/empty and a Chinese message."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# -- normalisation ---------------------------------------------------------------------------------------------

_NEWLINES = re.compile(r"\r\n?|[\x0b\x0c\x85\u2028\u2029]")
_DROP = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u00ad\u200b\ufeff\ufffe\uffff\ud800-\udfff]")
_SPACES = re.compile(r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")


def normalize(text: str) -> str:
    """Lines separated by \\n, one space for any run of spaces, no empty lines, no control characters."""
    text = _NEWLINES.sub("\n", text)
    text = _DROP.sub("", text)
    text = _SPACES.sub(" ", text)
    return "\n".join(s for s in (line.strip() for line in text.split("\n")) if s)


class _Out:
    """Pages gathered under the character, page and time budgets."""

    def __init__(self, max_chars: int, max_pages: int, max_seconds: float) -> None:
        self.max_chars = max(0, max_chars)
        self.max_pages = max(0, max_pages)
        self.deadline = time.monotonic() + max_seconds
        self.parts: dict[int, list[str]] = {}
        self.chars = 0
        self.truncated = False
        self.notes: list[str] = []
        self.encoding: str | None = None
        self.out_of_time = False

    @property
    def full(self) -> bool:
        return self.chars >= self.max_chars

    def add(self, page: int, text: str) -> bool:
        """Add (normalised) text to a page; False when no more text is wanted."""
        if self.full:
            self.truncated = True
            return False
        text = normalize(text)
        if not text:
            return True
        parts = self.parts.get(page)
        sep = 1 if parts else 0
        if parts is None:
            if len(self.parts) >= self.max_pages:
                self.truncated = True
                return False
            parts = self.parts[page] = []
        room = self.max_chars - self.chars - sep
        if len(text) > room:
            text = text[:room] if room > 0 else ""
            self.truncated = True
        if text:
            parts.append(text)
            self.chars += len(text) + sep
        return not self.full

    def timed_out(self) -> bool:
        if time.monotonic() > self.deadline:
            if not self.out_of_time:
                self.notes.append("提取超时，只取得了前面部分的文本")
            self.out_of_time = self.truncated = True
            return True
        return False

    def pages(self) -> list[PageText]:
        return [PageText(p, "\n".join(parts)) for p, parts in sorted(self.parts.items()) if parts]


# -- entry point -----------------------------------------------------------------------------------------------


def extract_text(path: str, name: str = "", ident: Identification | None = None, *, max_chars: int = 2_000_000,
                 max_pages: int = 5000, max_seconds: float = 300.0) -> Extraction:
    """The text of a stored file, page by page; never raises (failures are a status and a Chinese message)."""
    out = _Out(max_chars, max_pages, max_seconds)
    try:
        try:
            size = os.path.getsize(path)
        except OSError as e:
            raise _Fail("unreadable", f"无法读取文件：{e.strerror or e}") from None
        if size == 0:
            return Extraction(status="empty", message="文件为空（0 字节），没有可提取的文本")
        if ident is None:
            from dangan.formats.identify import identify_file

            ident = identify_file(path, name or os.path.basename(path))
        empty_message = _dispatch(path, name or os.path.basename(path), ident, size, out)
    except _Fail as f:
        return Extraction(status=f.status, message=f.message, encoding=out.encoding)
    except MemoryError:
        return Extraction(status="unreadable", message="提取文本时内存不足，文件可能经过恶意构造")
    except Exception as e:  # noqa: BLE001 - the contract is "never raises"
        return Extraction(status="unreadable", message=f"提取文本时发生意外错误：{type(e).__name__}: {e}"[:500])
    pages = out.pages()
    notes = list(dict.fromkeys(out.notes))
    if out.full and out.truncated:
        notes.append(f"文本过长，只保留了前 {out.chars} 个字符")
    elif out.truncated and not notes:
        notes.append("页数过多，只提取了前面的页")
    if not pages and out.out_of_time:
        return Extraction(status="unreadable", message="提取超时，未取得任何文本", encoding=out.encoding,
                          truncated=True)
    if not pages:
        return Extraction(status="empty", message="；".join([empty_message or "文件中没有可提取的文字", *notes]),
                          encoding=out.encoding, truncated=out.truncated)
    return Extraction(status="ok", pages=pages, encoding=out.encoding, message="；".join(notes),
                      truncated=out.truncated, chars=sum(len(p.text) for p in pages))


def _dispatch(path: str, name: str, ident: Identification, size: int, out: _Out) -> str | None:
    from dangan.formats.identify import family_of

    family = family_of(ident)
    mime = ident.mime
    label = ident.format_name
    if family == "empty":
        return "文件为空（0 字节），没有可提取的文本"
    if family == "pdf":
        return _pdf(path, out)
    if family == "ofd":
        return _ofd(path, out)
    if family == "zip":
        if "opendocument" in mime:
            return _odf(path, out, mime)
        if "wordprocessingml" in mime or "ms-word" in mime:
            return _docx(path, out)
        if "spreadsheetml" in mime or "ms-excel" in mime:
            return _xlsx(path, out)
        if "presentationml" in mime or "ms-powerpoint" in mime:
            return _pptx(path, out)
        if mime == "application/epub+zip":
            raise _Fail("unsupported", "暂不支持从 EPUB 电子书提取文本")
        raise _Fail("unsupported", f"{label}不提取文本：请解包后对其中的文件逐个提取")
    if family == "ole":
        if "加密" in label or "口令" in label:
            raise _Fail("unreadable", "文件已加密（受口令保护），无法提取文本；请提供未加密的版本")
        raise _Fail("unsupported", f"暂不支持从 {label} 提取文本；请转换为 DOCX、XLSX、PDF 或 OFD 后再提取")
    if family == "text":
        if mime == "message/rfc822":
            return _eml(path, size, out)
        return _text(path, size, out)
    if family == "xml":
        return _xml(path, size, out)
    if family == "html":
        return _html(path, size, out)
    if family in ("image", "heif"):
        raise _Fail("unsupported", f"{label}是图像，没有文本层；需要 OCR 识别后才能全文检索")
    if family in ("wav", "mp4") or mime.startswith(("audio/", "video/")):
        raise _Fail("unsupported", f"{label}是音视频文件，不提取文本")
    if family == "rtf":
        raise _Fail("unsupported", "暂不支持从 RTF 文档提取文本；请转换为 DOCX、PDF 或 OFD 后再提取")
    if family == "nonpublic_archive":
        raise _Fail("unsupported", f"{label}不提取文本")
    raise _Fail("unsupported", f"无法识别的格式（{label}），不提取文本")


# -- PDF -------------------------------------------------------------------------------------------------------

_PDF_ERRORS = {
    2: "无法读取文件，或文件不是 PDF",
    3: "PDF 文件已损坏（格式错误），无法打开",
    4: "PDF 已加密（需要打开口令），无法提取文本；请提供未加密的版本",
    5: "PDF 使用了不支持的加密或安全处理程序（已加密），无法提取文本",
    6: "PDF 的页面无法读取",
}


def _pdf(path: str, out: _Out) -> str | None:
    import pypdfium2 as pdfium

    with _PDFIUM_LOCK:
        try:
            doc = pdfium.PdfDocument(path)
        except pdfium.PdfiumError as e:
            code = getattr(e, "err_code", None)
            message = _PDF_ERRORS.get(code, f"PDF 无法打开：{e}")
            if code == 3 and not _pdf_has_eof(path):
                message = "PDF 文件不完整（缺少文件尾 %%EOF，可能传输中断或被截断），无法打开"
            raise _Fail("unreadable", message) from None
        try:
            n = len(doc)
            if n == 0:
                raise _Fail("unreadable", "PDF 没有页面（页面树为空或已损坏）")
            failed: list[int] = []
            blank: list[int] = []
            for i in range(min(n, out.max_pages)):
                if out.timed_out():
                    break
                try:
                    page = doc[i]
                    try:
                        textpage = page.get_textpage()
                        try:
                            text = textpage.get_text_range()
                        finally:
                            textpage.close()
                    finally:
                        page.close()
                except pdfium.PdfiumError:
                    failed.append(i + 1)
                    continue
                before = out.chars
                if not out.add(i + 1, text):
                    break
                if out.chars == before:
                    blank.append(i + 1)
            if n > out.max_pages:
                out.truncated = True
                out.notes.append(f"PDF 共 {n} 页，只提取了前 {out.max_pages} 页")
        finally:
            doc.close()
    if failed and len(failed) >= min(n, out.max_pages):
        raise _Fail("unreadable", f"PDF 已损坏，页面无法读取（{_page_list(failed)}）")
    if failed:
        out.notes.append(f"{_page_list(failed)}已损坏，无法读取")
    if blank and out.parts:
        out.notes.append(f"{_page_list(blank)}没有文本层（可能是扫描页），需要 OCR 识别")
    return f"PDF 的 {n} 页都没有文本层（可能是扫描件或纯图像），需要 OCR 识别后才能全文检索"


def _pdf_has_eof(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            end = fh.tell()
            fh.seek(max(0, end - 2048))
            return b"%%EOF" in fh.read()
    except OSError:
        return False


def _page_list(pages: list[int]) -> str:
    shown = "、".join(str(p) for p in pages[:10])
    return f"第 {shown} 页" + (f" 等 {len(pages)} 页" if len(pages) > 10 else "")


# -- ZIP packages (through ofd.py's bounded reader) ------------------------------------------------------------


def _open_package(path: str, what: str):  # -> (zipfile.ZipFile, ofd._Package)
    from dangan.formats import ofd

    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
        raise _Fail("unreadable", f"{what}已损坏，不是可以打开的 ZIP 包：{e}") from None
    try:
        pkg = ofd._Package(zf, Validation())
    except ofd._Refused:
        zf.close()
        raise _Fail("unreadable", f"{what}中的 ZIP 条目过多（上限 {ofd.MAX_ENTRIES} 个），拒绝处理") from None
    except Exception:
        zf.close()
        raise
    declared = sum(e.info.file_size for e in pkg.files.values())
    if declared > MAX_TOTAL_BYTES * 4:
        zf.close()
        raise _Fail("unreadable", f"{what}声明的解压总大小为 {declared} 字节，远超上限，拒绝解压（疑似 ZIP 炸弹）")
    return zf, pkg


def _check_part(pkg: Any, name: str, limit: int) -> None:
    info = pkg.files[name].info
    if info.flag_bits & 0x1:
        raise _Fail("unreadable", f"{name} 已加密，无法提取文本")
    if info.file_size > limit:
        raise _Fail("unreadable", f"{name} 解压后为 {info.file_size} 字节，超过上限 {limit} 字节，拒绝解压（疑似 ZIP 炸弹）")
    if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(1, info.compress_size):
        raise _Fail("unreadable", f"{name} 的压缩比异常（{info.compress_size} 字节解压为 {info.file_size} 字节），"
                                  "拒绝解压（疑似 ZIP 炸弹）")
    if pkg.read_total + info.file_size > MAX_TOTAL_BYTES:
        raise _Fail("unreadable", f"读取 {name} 会使解压总量超过上限 {MAX_TOTAL_BYTES} 字节，拒绝解压（疑似 ZIP 炸弹）")


def _read_errors() -> tuple[type[BaseException], ...]:
    from dangan.formats import ofd

    return ofd._READ_ERRORS


def _problem(pkg: Any, name: str, exc: BaseException) -> str:
    try:
        return pkg.problem_reading(name, exc)
    except Exception:  # noqa: BLE001
        return f"{name} 无法读取：{exc}"


def _has_doctype(data: bytes) -> bool:
    from dangan.formats import ofd

    return ofd._has_doctype(data)


def _parse_part(pkg: Any, name: str, limit: int = MAX_HELD_BYTES) -> etree._Element:
    """Parse a whole (small) XML part; raises _Fail or one of ofd's read errors."""
    from dangan.formats import ofd

    _check_part(pkg, name, limit)
    data = pkg.read(name, limit)
    if _has_doctype(data):
        raise _Fail("unreadable", f"{name} 含有 DOCTYPE/实体声明，出于安全原因不予解析")
    try:
        return etree.fromstring(data, ofd._xml_parser())
    except (etree.XMLSyntaxError, ValueError) as e:
        raise _Fail("unreadable", f"{name} 不是格式正确的 XML：{str(e)[:200]}") from None


def _stream(pkg: Any, name: str, blocks: frozenset[str], pages: frozenset[str] = frozenset(),
            out: _Out | None = None) -> Iterator[tuple[str, etree._Element]]:
    """Stream an XML part: ("page", el) at the start of a page element, ("block", el) at the end of an outermost
    block element (the element is cleared after the caller has used it, so memory stays bounded)."""
    _check_part(pkg, name, MAX_PART_BYTES)
    parser = etree.XMLPullParser(events=("start", "end"), resolve_entities=False, no_network=True, load_dtd=False,
                                 huge_tree=False, remove_comments=True, remove_pis=True)
    inside = 0
    first = True
    for chunk in pkg.open_chunks(name):
        if first:
            first = False
            if _has_doctype(chunk[:65536]):
                raise _Fail("unreadable", f"{name} 含有 DOCTYPE/实体声明，出于安全原因不予解析")
        if out is not None and out.timed_out():
            return
        try:
            parser.feed(chunk)
            events = list(parser.read_events())
        except etree.XMLSyntaxError as e:
            raise _Fail("unreadable", f"{name} 不是格式正确的 XML：{str(e)[:200]}") from None
        for event, el in events:
            tag = el.tag
            if event == "start":
                if tag in blocks:
                    inside += 1
                elif inside == 0 and tag in pages:
                    yield "page", el
            elif tag in blocks:
                inside -= 1
                if inside == 0:
                    yield "block", el
                    el.clear(keep_tail=False)
                    parent = el.getparent()
                    if parent is not None:
                        while el.getprevious() is not None:
                            del parent[0]
    try:
        parser.close()
    except etree.XMLSyntaxError as e:
        raise _Fail("unreadable", f"{name} 不完整或不是格式正确的 XML：{str(e)[:200]}") from None


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _rels(pkg: Any, part: str) -> dict[str, tuple[str, str]]:
    """A part's relationships: Id -> (Type, resolved target name in the package)."""
    import posixpath

    base = posixpath.dirname(part)
    rels_name = pkg._lookup(posixpath.join(base, "_rels", posixpath.basename(part) + ".rels"), True)
    if rels_name is None:
        return {}
    try:
        root = _parse_part(pkg, rels_name)
    except (_Fail, *_read_errors()):
        return {}
    out: dict[str, tuple[str, str]] = {}
    for rel in root:
        if _local(rel.tag) != "Relationship" or rel.get("TargetMode") == "External":
            continue
        target = rel.get("Target", "")
        resolved = target[1:] if target.startswith("/") else posixpath.normpath(posixpath.join(base, target))
        found = pkg._lookup(resolved, True)
        if found:
            out[rel.get("Id", "")] = (rel.get("Type", ""), found)
    return out


def _main_part(pkg: Any, default: str) -> str | None:
    for _id, (kind, target) in _rels(pkg, "").items():
        if kind.endswith("/officeDocument"):
            return target
    return pkg._lookup(default, True)


# -- OOXML: DOCX, PPTX ----------------------------------------------------------------------------------------

_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_A = "http://schemas.openxmlformats.org/drawingml/2006/main"
_P = "http://schemas.openxmlformats.org/presentationml/2006/main"
_R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_OOXML_SKIP = {"delText", "instrText", "rPr", "pPr", "tblPr", "trPr", "tcPr", "sectPr", "fldData", "bodyPr",
               "lstStyle", "drawingPr", "nvSpPr", "spPr", "style", "extLst"}


def _ooxml_collect(el: etree._Element, out: list[str]) -> None:
    """Text of WordprocessingML / DrawingML: t runs, tabs and breaks, paragraphs as lines, tables as rows."""
    for child in el:
        tag = child.tag
        if not isinstance(tag, str) or tag == _MC_FALLBACK:
            continue
        local = _local(tag)
        if local == "t":
            out.append(child.text or "")
        elif local in ("tab", "ptab"):
            out.append(" ")
        elif local in ("br", "cr"):
            out.append("\n")
        elif local == "noBreakHyphen":
            out.append("-")
        elif local in _OOXML_SKIP:
            continue
        elif local == "p":
            _ooxml_collect(child, out)
            out.append("\n")
        elif local == "tbl":
            _ooxml_table(child, out)
        else:
            _ooxml_collect(child, out)


def _ooxml_table(tbl: etree._Element, out: list[str]) -> None:
    for row in tbl:
        if _local(row.tag) != "tr":
            continue
        cells: list[str] = []
        for cell in row:
            if _local(cell.tag) != "tc":
                continue
            parts: list[str] = []
            _ooxml_collect(cell, parts)
            text = " ".join("".join(parts).split())
            if text:
                cells.append(text)
        if cells:
            out.append(" ".join(cells) + "\n")
    out.append("\n")


def _block_text(el: etree._Element) -> str:
    parts: list[str] = []
    if _local(el.tag) == "tbl":
        _ooxml_table(el, parts)
    else:
        _ooxml_collect(el, parts)
    return "".join(parts)


_DOCX_BLOCKS = frozenset({f"{{{_W}}}p", f"{{{_W}}}tbl"})
_PPTX_BLOCKS = frozenset({f"{{{_A}}}p", f"{{{_A}}}tbl"})


def _docx(path: str, out: _Out) -> str | None:
    zf, pkg = _open_package(path, "Word 文档")
    with zf:
        main = _main_part(pkg, "word/document.xml")
        if main is None:
            raise _Fail("unreadable", "Word 文档中没有正文部件（word/document.xml），文件可能已损坏")
        parts = [main]
        rels = _rels(pkg, main)
        for suffix in ("/header", "/footer", "/footnotes", "/endnotes"):
            parts += sorted(t for k, t in rels.values() if k.endswith(suffix))
        for n, part in enumerate(parts):
            try:
                for _kind, el in _stream(pkg, part, _DOCX_BLOCKS, out=out):
                    if not out.add(1, _block_text(el)):
                        return None
            except _Fail:
                if n == 0:
                    raise
                out.notes.append(f"{part} 无法解析，已跳过")
            except _read_errors() as e:
                if n == 0:
                    raise _Fail("unreadable", _problem(pkg, part, e)) from None
                out.notes.append(_problem(pkg, part, e))
    return "Word 文档中没有文字"


def _pptx(path: str, out: _Out) -> str | None:
    zf, pkg = _open_package(path, "PowerPoint 演示文稿")
    with zf:
        main = _main_part(pkg, "ppt/presentation.xml")
        if main is None:
            raise _Fail("unreadable", "演示文稿中没有 presentation.xml，文件可能已损坏")
        rels = _rels(pkg, main)
        slides: list[str] = []
        try:
            pres = _parse_part(pkg, main)
            for sid in pres.iter(f"{{{_P}}}sldId"):
                hit = rels.get(sid.get(f"{{{_R}}}id", ""))
                if hit:
                    slides.append(hit[1])
        except _read_errors() as e:
            out.notes.append(_problem(pkg, main, e))
        if not slides:  # no usable slide list: the slide parts in name order
            slides = sorted((n for n in pkg.files if re.fullmatch(r"ppt/slides/slide\d+\.xml", n, re.I)),
                            key=lambda n: int(re.sub(r"\D", "", n.rsplit("/", 1)[-1]) or 0))
        for number, slide in enumerate(slides, 1):
            if number > out.max_pages:
                out.truncated = True
                break
            try:
                for _kind, el in _stream(pkg, slide, _PPTX_BLOCKS, out=out):
                    if not out.add(number, _block_text(el)):
                        return None
            except _Fail as f:
                out.notes.append(f"第 {number} 张幻灯片无法读取（{f.message}）")
            except _read_errors() as e:
                out.notes.append(f"第 {number} 张幻灯片无法读取（{_problem(pkg, slide, e)}）")
    return "演示文稿中没有文字"


# -- XLSX (openpyxl, read-only) --------------------------------------------------------------------------------


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == dtime(0) else value.isoformat(sep=" ")
    if isinstance(value, (date, dtime)):
        return value.isoformat()
    return str(value)


def _xlsx(path: str, out: _Out) -> str | None:
    import warnings

    zf, pkg = _open_package(path, "Excel 工作簿")
    with zf:
        for name in pkg.files:  # openpyxl inflates parts itself: refuse a bomb before it starts
            if name.lower().endswith(".xml"):
                _check_part(pkg, name, MAX_PART_BYTES)
        big = [n for n in pkg.files if n.lower().endswith("sharedstrings.xml")
               and pkg.files[n].info.file_size > MAX_MARKUP_BYTES]
        if big:
            raise _Fail("unreadable", f"{big[0]} 过大（超过 {MAX_MARKUP_BYTES} 字节），拒绝读取")
        for name in pkg.files:  # openpyxl's parser would expand declared entities: refuse a DOCTYPE
            if name.lower().endswith((".xml", ".rels")):
                chunks = pkg.open_chunks(name)
                try:
                    head = next(chunks, b"")
                except _read_errors():
                    continue
                finally:
                    chunks.close()
                if _has_doctype(head):
                    raise _Fail("unreadable", f"{name} 含有 DOCTYPE/实体声明，出于安全原因不予解析")
    import openpyxl

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wb = openpyxl.load_workbook(path, read_only=True, data_only=True, keep_links=False)
    except Exception as e:  # noqa: BLE001 - openpyxl raises many kinds for a damaged workbook
        raise _Fail("unreadable", f"Excel 工作簿无法打开，文件可能已损坏：{type(e).__name__}: {str(e)[:200]}") from None
    try:
        for number, ws in enumerate(wb.worksheets, 1):
            if number > out.max_pages:
                out.truncated = True
                break
            title = ws.title  # the sheet's name comes first, when the sheet has content
            try:
                ws.reset_dimensions()  # a wrong <dimension> would pad every row with empty cells
                for i, row in enumerate(ws.iter_rows(values_only=True)):
                    if i % 1000 == 0 and out.timed_out():
                        return None
                    line = " ".join(t for t in (_cell_text(v) for v in row) if t)
                    if line and title:
                        line, title = f"{title}\n{line}", ""
                    if line and not out.add(number, line):
                        return None
            except Exception as e:  # noqa: BLE001
                out.notes.append(f"工作表“{ws.title}”未能完整读取（{type(e).__name__}）")
    finally:
        wb.close()
    return "工作簿中没有文字"


# -- ODF: ODT, ODS, ODP ---------------------------------------------------------------------------------------

_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
_DRAW = "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0"
_ODF_BLOCKS = frozenset({f"{{{_TEXT}}}p", f"{{{_TEXT}}}h", f"{{{_TABLE}}}table-row"})
_ODF_SHEETS = frozenset({f"{{{_TABLE}}}table"})
_ODF_SLIDES = frozenset({f"{{{_DRAW}}}page"})
_ODF_SKIP = {"annotation", "tracked-changes", "note-citation", "sequence-decls", "table-columns", "table-column"}


def _odf_collect(el: etree._Element, out: list[str]) -> None:
    if el.text:
        out.append(el.text)
    for child in el:
        if isinstance(child.tag, str):
            local = _local(child.tag)
            if local in ("s", "tab"):
                out.append(" ")
            elif local == "line-break":
                out.append("\n")
            elif local in _ODF_SKIP:
                pass
            elif local in ("p", "h"):
                _odf_collect(child, out)
                out.append("\n")
            elif local in ("table-cell", "covered-table-cell"):
                parts: list[str] = []
                _odf_collect(child, parts)
                out.append(" " + " ".join("".join(parts).split()) + " ")
            elif local == "table-row":
                _odf_collect(child, out)
                out.append("\n")
            else:
                _odf_collect(child, out)
        if child.tail:
            out.append(child.tail)


def _odf(path: str, out: _Out, mime: str = "") -> str | None:
    zf, pkg = _open_package(path, "OpenDocument 文档")
    with zf:
        content = pkg._lookup("content.xml", True)
        if content is None:
            raise _Fail("unreadable", "OpenDocument 文档中没有 content.xml，文件可能已损坏")
        page = 1
        seen_page = False
        title = ""
        # one page per sheet or slide; a text document's tables are not pages
        page_tags = (_ODF_SHEETS if "spreadsheet" in mime else
                     _ODF_SLIDES if "presentation" in mime or "graphics" in mime else frozenset())
        try:
            for kind, el in _stream(pkg, content, _ODF_BLOCKS, page_tags, out=out):
                if kind == "page":
                    if seen_page:
                        page += 1
                    seen_page = True
                    if page > out.max_pages:
                        out.truncated = True
                        return None
                    title = (el.get(f"{{{_TABLE}}}name") or "") if _local(el.tag) == "table" else ""
                    continue
                parts: list[str] = [title + "\n"] if title else []
                _odf_collect(el, parts)
                text = "".join(parts)
                if text.strip() != title:
                    title = ""
                    if not out.add(page, text):
                        return None
        except _read_errors() as e:
            raise _Fail("unreadable", _problem(pkg, content, e)) from None
    return "文档中没有文字"


# -- OFD -------------------------------------------------------------------------------------------------------


@dataclass
class _Glyphs:
    x: float
    y: float          # baseline, in page coordinates (mm, y downward)
    size: float
    width: float
    text: str
    order: int


def _floats(s: str | None, n: int) -> list[float] | None:
    if not s:
        return None
    try:
        vals = [float(v) for v in s.split()]
    except ValueError:
        return None
    return vals if len(vals) >= n else None


def _deltas(spec: str | None) -> list[float]:
    """OFD DeltaX/DeltaY: numbers, with "g n d" meaning n times d."""
    if not spec:
        return []
    tokens = spec.split()
    vals: list[float] = []
    i = 0
    try:
        while i < len(tokens) and len(vals) < 100_000:
            if tokens[i] == "g" and i + 2 < len(tokens):
                vals += [float(tokens[i + 2])] * min(int(tokens[i + 1]), 100_000)
                i += 3
            else:
                vals.append(float(tokens[i]))
                i += 1
    except ValueError:
        pass
    return vals


def _advance(ch: str, size: float) -> float:
    return size if unicodedata.east_asian_width(ch) in ("W", "F") else size * 0.5


def _ofd_glyphs(root: etree._Element, order: list[int]) -> list[_Glyphs]:
    from dangan.formats.ofd import _N

    found: list[_Glyphs] = []
    for obj in root.iter(_N + "TextObject"):
        box = _floats(obj.get("Boundary"), 4) or [0.0, 0.0, 0.0, 0.0]
        try:
            size = float(obj.get("Size") or 3.5) or 3.5
        except ValueError:
            size = 3.5
        ctm = _floats(obj.get("CTM"), 6)
        scale = abs(ctm[0]) if ctm and ctm[0] else 1.0
        x = y = 0.0
        for code in obj.iter(_N + "TextCode"):
            text = code.text or ""
            try:
                x = float(code.get("X")) if code.get("X") is not None else x
                y = float(code.get("Y")) if code.get("Y") is not None else y
            except ValueError:
                pass
            if not text:
                continue
            dx = _deltas(code.get("DeltaX"))
            advances = [dx[i] if i < len(dx) else _advance(ch, size) for i, ch in enumerate(text[:-1])]
            width = sum(advances) + _advance(text[-1], size)
            px, py = (ctm[0] * x + ctm[2] * y + ctm[4], ctm[1] * x + ctm[3] * y + ctm[5]) if ctm else (x, y)
            order[0] += 1
            found.append(_Glyphs(box[0] + px, box[1] + py, size * scale, width * scale, text, order[0]))
            x += sum(advances) + _advance(text[-1], size)
            if code.get("DeltaY") and not code.get("DeltaX"):
                x -= width  # vertical text: the next code starts below, not to the right
    return found


def _ofd_lines(glyphs: list[_Glyphs]) -> str:
    """Glyph runs in reading order: lines by baseline from the top, runs left to right within a line."""
    lines: list[list[_Glyphs]] = []
    for g in sorted(glyphs, key=lambda g: (g.y, g.x, g.order)):
        if lines:
            ref = lines[-1][0]
            if abs(g.y - ref.y) <= 0.5 * min(g.size, ref.size):
                lines[-1].append(g)
                continue
        lines.append([g])
    text: list[str] = []
    for line in lines:
        line.sort(key=lambda g: (g.x, g.order))
        parts: list[str] = []
        prev: _Glyphs | None = None
        for g in line:
            if prev is not None:
                if g.text == prev.text and abs(g.x - prev.x) < 0.3 * g.size:
                    continue  # the same run drawn twice (simulated bold, shadow)
                if g.x > prev.x + prev.width + 0.8 * min(g.size, prev.size):
                    parts.append(" ")
            parts.append(g.text)
            prev = g
        text.append("".join(parts))
    return "\n".join(text)


def _ofd(path: str, out: _Out) -> str | None:
    import posixpath

    from dangan.formats import ofd

    zf, pkg = _open_package(path, "OFD 文件")
    errors = _read_errors()
    with zf:
        encrypted = any(posixpath.basename(n).lower() in ("encryptions.xml", "encrypt.xml") for n in pkg.files)
        entry = pkg._lookup("OFD.xml", True)
        if entry is None:
            raise _Fail("unreadable", "包根目录下没有 OFD.xml，不是 OFD 文件")
        try:
            root = _parse_part(pkg, entry)
        except errors as e:
            raise _Fail("unreadable", _problem(pkg, entry, e)) from None
        number = 0
        failed: list[int] = []
        template_cache: dict[str, list[_Glyphs]] = {}
        for body in ofd._children(root, "DocBody"):
            doc_root = ofd._text(ofd._child(body, "DocRoot"))
            doc_part = pkg.resolve(doc_root, "", "DocRoot") if doc_root else None
            if doc_part is None:
                out.notes.append("OFD.xml 的 DocRoot 指向的 Document.xml 不存在")
                continue
            doc_dir = posixpath.dirname(doc_part)
            try:
                doc = _parse_part(pkg, doc_part)
            except errors as e:
                out.notes.append(_problem(pkg, doc_part, e))
                continue
            except _Fail as f:
                out.notes.append(f.message)
                continue
            templates: dict[str, str] = {}
            common = ofd._child(doc, "CommonData")
            for tpl in ofd._children(common, "TemplatePage") if common is not None else []:
                part = pkg.resolve(tpl.get("BaseLoc", ""), doc_dir, "TemplatePage", doc_dir, problem_if_missing=False)
                if part:
                    templates[tpl.get("ID", "")] = part
            pages_el = ofd._child(doc, "Pages")
            for page in ofd._children(pages_el, "Page") if pages_el is not None else []:
                number += 1
                if number > out.max_pages:
                    out.truncated = True
                    out.notes.append(f"OFD 页数超过 {out.max_pages}，只提取了前 {out.max_pages} 页")
                    return None
                if out.timed_out():
                    return None
                part = pkg.resolve(page.get("BaseLoc", ""), doc_dir, "Page", doc_dir, problem_if_missing=False)
                if part is None:
                    failed.append(number)
                    continue
                try:
                    page_root = _parse_part(pkg, part)
                except (_Fail, *errors):
                    failed.append(number)
                    continue
                order = [0]
                glyphs: list[_Glyphs] = []
                for tpl in ofd._children(page_root, "Template"):
                    tpart = templates.get(tpl.get("TemplateID", ""))
                    if tpart is None:
                        continue
                    if tpart not in template_cache:
                        try:
                            template_cache[tpart] = _ofd_glyphs(_parse_part(pkg, tpart), [0])
                        except (_Fail, *errors):
                            template_cache[tpart] = []
                            out.notes.append(f"第 {number} 页的模板 {tpart} 无法读取")
                    glyphs += template_cache[tpart]
                content = ofd._child(page_root, "Content")
                if content is not None:
                    glyphs += _ofd_glyphs(content, order)
                if not out.add(number, _ofd_lines(glyphs)):
                    return None
        if failed:
            if len(failed) == number and not out.parts:
                raise _Fail("unreadable", f"OFD 的页面内容无法读取（{_page_list(failed)}）")
            out.notes.append(f"{_page_list(failed)}的内容无法读取")
        if encrypted and not out.parts:
            raise _Fail("unreadable", "OFD 的内容已加密（含 Encryptions.xml），无法提取文本")
        if number == 0:
            raise _Fail("unreadable", "OFD 中没有可以读取的页面")
    return "OFD 的页面中没有文字（可能是扫描件或纯图像），需要 OCR 识别后才能全文检索"


# -- plain text, XML, HTML, e-mail ----------------------------------------------------------------------------

_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")
_DECL_ENCODING = re.compile(rb"""^(?:\xef\xbb\xbf)?\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9._-]+)""", re.I)


def _read_head(path: str, limit: int) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(limit)


def _decode(data: bytes, partial: bool, declared: str | None, out: _Out) -> str:
    from dangan.formats.text import decode_text

    if declared:
        try:
            codec = codecs.lookup(declared).name
        except LookupError:
            codec = None
        if codec in ("gb2312", "gbk", "euc_cn", "cp936", "hz"):
            codec = "gb18030"
        if codec and codec not in ("utf-8", "gb18030", "big5", "utf-16", "utf-32"):
            try:
                text = data.decode(codec, errors="ignore" if partial else "strict")
                out.encoding = codec
                return text
            except UnicodeDecodeError:
                pass
    text, enc = decode_text(data, partial=partial)
    out.encoding = enc
    if enc == "unknown":
        out.encoding = None
        out.notes.append("文本编码无法确定（不是 UTF-8、GB18030 或 Big5），按 UTF-8 解码，部分字符可能错误")
    return text


def _text(path: str, size: int, out: _Out) -> str | None:
    limit = max(4096, out.max_chars * 4 + 4)
    data = _read_head(path, limit)
    partial = size > len(data)
    text = _decode(data, partial, None, out)
    if partial:
        out.truncated = True
        out.notes.append(f"文件较大，只读取了前 {len(data)} 字节")
    out.add(1, text)
    return "文本文件中没有文字（只有空白或控制字符）"


def strip_doctype(s: str) -> tuple[str, bool]:
    """Remove the DOCTYPE declaration (with its internal subset) from an XML text: (text, removed)."""
    m = re.search(r"<!DOCTYPE", s, re.I)
    if not m:
        return s, False
    i, n, depth, quote = m.end(), len(s), 0, ""
    while i < n:
        c = s[i]
        if quote:
            if c == quote:
                quote = ""
        elif s.startswith("<!--", i):
            end = s.find("-->", i + 4)
            if end < 0:
                break
            i = end + 3
            continue
        elif c in "\"'":
            quote = c
        elif c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
        elif c == ">" and depth <= 0:
            return s[:m.start()] + s[i + 1:], True
        i += 1
    return s[:m.start()], True


_BASE64ISH = re.compile(r"[A-Za-z0-9+/=\s]+")


def _markup_bytes(path: str, size: int, out: _Out) -> tuple[bytes, bool]:
    limit = min(MAX_MARKUP_BYTES, max(1 << 20, out.max_chars * 8))
    data = _read_head(path, limit)
    partial = size > len(data)
    if partial:
        out.truncated = True
        out.notes.append(f"文件较大，只解析了前 {len(data)} 字节")
    return data, partial


def _xml(path: str, size: int, out: _Out) -> str | None:
    data, partial = _markup_bytes(path, size, out)
    m = _DECL_ENCODING.match(data[:1024])
    text = _decode(data, partial, m.group(1).decode("ascii") if m else None, out)
    text = _XML_DECL.sub("", text.lstrip("\ufeff"), count=1)
    text, removed = strip_doctype(text)
    if re.search(r"<!\s*(DOCTYPE|ENTITY)", text, re.I):
        raise _Fail("unreadable", "XML 中有多余的 DOCTYPE/实体声明，出于安全原因不予解析")
    if removed:
        out.notes.append("XML 含有 DOCTYPE 声明，已忽略（不加载 DTD、不展开实体）")
    parser = etree.XMLParser(recover=True, resolve_entities=False, no_network=True, load_dtd=False,
                             dtd_validation=False, huge_tree=False, remove_comments=True, remove_pis=True,
                             encoding="utf-8")
    try:
        root = etree.fromstring(text.encode("utf-8", "replace"), parser)
    except (etree.XMLSyntaxError, ValueError) as e:
        raise _Fail("unreadable", f"XML 无法解析：{str(e)[:200]}") from None
    if root is None:
        raise _Fail("unreadable", "XML 无法解析（不是格式正确的 XML）")
    lines: list[str] = []
    count = 0
    for el in root.iter():
        pieces = [el.tail] if not isinstance(el.tag, str) else [el.text, el.tail]  # an entity reference: its tail
        if el is root:
            pieces = [el.text]
        for piece in pieces:
            if piece and piece.strip():
                piece = piece.strip()
                if len(piece) > 256 and _BASE64ISH.fullmatch(piece):
                    continue  # embedded binary (an EEP's encoded file), not text
                lines.append(piece)
                count += len(piece)
        if count > out.max_chars + 1000:
            break
    out.add(1, "\n".join(lines))
    return "XML 中没有文字内容"


_HTML_BLOCK = {"p", "div", "br", "li", "ul", "ol", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6", "section",
               "article", "header", "footer", "blockquote", "pre", "dd", "dt", "dl", "title", "hr", "form", "nav",
               "aside", "main", "figure", "figcaption", "address", "caption", "tbody", "thead", "tfoot", "body"}
_HTML_SKIP = {"script", "style", "noscript", "template", "meta", "link", "base", "object", "embed", "iframe",
              "svg", "math", "select"}


def _html_collect(el: etree._Element, out: list[str], pre: bool = False) -> None:
    tag = el.tag.lower() if isinstance(el.tag, str) else ""
    if tag and tag not in _HTML_SKIP:
        block = tag in _HTML_BLOCK
        pre = pre or tag in ("pre", "textarea")
        if block:
            out.append("\n")
        if el.text:
            out.append(el.text if pre else el.text.replace("\n", " "))
        for child in el:
            _html_collect(child, out, pre)
        if block:
            out.append("\n")
        elif tag in ("td", "th"):
            out.append(" ")
    if el.tail:
        out.append(el.tail if pre else el.tail.replace("\n", " "))


def _html(path: str, size: int, out: _Out) -> str | None:
    data, partial = _markup_bytes(path, size, out)
    m = _META_CHARSET.search(data[:4096])
    text = _decode(data, partial, m.group(1).decode("ascii") if m else None, out)
    text = _XML_DECL.sub("", text.lstrip("\ufeff"), count=1)
    text, _ = strip_doctype(text)
    parser = etree.HTMLParser(no_network=True, remove_comments=True, remove_pis=True, huge_tree=False,
                              recover=True)
    try:
        root = etree.fromstring(text, parser)
    except (etree.XMLSyntaxError, ValueError) as e:
        raise _Fail("unreadable", f"HTML 无法解析：{str(e)[:200]}") from None
    if root is None:
        return "HTML 中没有文字内容"
    parts: list[str] = []
    _html_collect(root, parts)
    out.add(1, "".join(parts))
    return "HTML 中没有文字内容"


def _eml(path: str, size: int, out: _Out) -> str | None:
    import email
    import email.policy

    if size > MAX_EMAIL_BYTES:
        return _text(path, size, out)
    with open(path, "rb") as fh:
        msg = email.message_from_binary_file(fh, policy=email.policy.default)
    lines: list[str] = []
    for header, label in (("Subject", "主题"), ("From", "发件人"), ("To", "收件人"), ("Cc", "抄送"), ("Date", "日期")):
        try:
            value = msg.get(header)
        except Exception:  # noqa: BLE001 - a malformed header
            value = None
        if value:
            lines.append(f"{label}：{value}")
    body_text = ""
    try:
        body = msg.get_body(preferencelist=("plain", "html"))  # type: ignore[attr-defined]
        if body is not None:
            content = body.get_content()
            if isinstance(content, bytes):
                content = _decode(content, False, body.get_content_charset(), out)
            if body.get_content_subtype() == "html":
                parts: list[str] = []
                root = etree.fromstring(content, etree.HTMLParser(no_network=True, remove_comments=True))
                if root is not None:
                    _html_collect(root, parts)
                content = "".join(parts)
            body_text = content
    except Exception as e:  # noqa: BLE001 - undecodable parts: say so, keep the headers
        out.notes.append(f"邮件正文无法解码（{type(e).__name__}）")
    lines.append(body_text)
    try:
        names = [a.get_filename() for a in msg.iter_attachments()]  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001
        names = []
    names = [n for n in names if n]
    if names:
        lines.append("附件：" + "、".join(names))
    out.encoding = None
    out.add(1, "\n".join(lines))
    return "邮件中没有文字"


__all__ = ["Extraction", "PageText", "extract_text", "normalize", "strip_doctype"]

