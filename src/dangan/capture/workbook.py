"""Reading an Excel catalogue (归档文件目录) a clerk fills in, streamed, and writing the dry-run report.

`open_catalogue(path, fields)` checks the container first and refuses a bad workbook before any row:

- XLSX_ENCRYPTED       an OLE compound file holding an encrypted OOXML package (Excel's 打开密码)
- XLS_LEGACY           an OLE compound file holding an Excel 97–2003 workbook (.xls)
                       (an OLE file that is neither gets XLSX_ENCRYPTED with a message covering both)
- XLSX_MALFORMED       not a ZIP, truncated, not a workbook, or an XML part with a DOCTYPE
- XLSX_TOO_LARGE       declared uncompressed size above 2 GB, too many parts, or a suspicious compression
                       ratio (zip bomb); parts are read with Python's zipfile, which never returns more than
                       an entry's declared size (and only stored/deflate entries are accepted), so checking
                       the declared sizes is enough
- CATALOGUE_NO_SHEET   `sheet=` names a sheet that is not there
- CATALOGUE_EMPTY      no cell with content in any worksheet
- CATALOGUE_NO_HEADER  no row among the first 10 that has the 题名 column (the message lists the columns)

It then finds the header row (the one of the first 10 with the most recognised column names), maps the
columns to field codes, reads the merged ranges from the sheet XML and streams the rows with
`Catalogue.rows()`: one pass over the sheet XML with lxml iterparse, flat memory (the shared string table,
which Excel keeps for the whole workbook, is the only thing held). openpyxl's read-only loader is not used
for reading: it spends seconds on a shared string table of 100,000 distinct titles; openpyxl provides the
date-format rules and writes the report.

`write_report(rows, columns, out)` writes the dry-run validation report (校验结果) as it consumes the rows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import posixpath
import re
import unicodedata
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from lxml import etree

from dangan.capture.dates import parse_date, parse_int
from dangan.errors import FieldProblem, ValidationFailed

__all__ = [
    "Catalogue",
    "CatalogueRow",
    "ReportSummary",
    "open_catalogue",
    "write_report",
    "EXTRA_COLUMNS",
]

HEADER_SEARCH_ROWS = 10
XLSX_MAX_TOTAL = 2 * 2**30  # declared uncompressed size of all parts
XLSX_MAX_ENTRIES = 10_000
XLSX_MAX_RATIO = 300  # for parts above XLSX_RATIO_MIN_SIZE; real sheet XML compresses 5–50:1
XLSX_RATIO_MIN_SIZE = 10 * 2**20
MAX_MERGED_RANGES = 1_000_000
MAX_MERGE_FILL_COLUMNS = 256  # a range merged over the whole width of the sheet is filled only this far

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

# standard columns that are not metadata fields of a category: label → pseudo code
EXTRA_COLUMNS: dict[str, str] = {
    "序号": "_seq",
    "顺序号": "_seq",
    "档号": "archival_code",
    "机构": "department",
    "机构(问题)": "department",
    "机构或问题": "department",
    "部门": "department",
    "文件名": "_files",
    "电子文件名": "_files",
    "计算机文件名": "_files",
    "文件": "_files",
    "件号": "_item_no",
    "室编件号": "_item_no",
}
# other names clerks use for standard fields; used only when the category has that field
ALIASES: dict[str, str] = {
    "文件题名": "title",
    "文件编号": "doc_number",
    "发文字号": "doc_number",
    "发文号": "doc_number",
    "成文日期": "date",
    "形成日期": "date",
    "文件日期": "date",
    "发文日期": "date",
    "归档年度": "year",
    "年份": "year",
    "期限": "retention_period",
    "关键词": "keywords",
    "主题词": "keywords",
    "附注": "remarks",
}
_FILES_SPLIT = re.compile(r"[;；、\r\n]+")
_REPEAT_SPLIT = re.compile(r"[;；、,，\s]+")
_LABEL_SPACES = re.compile(r"[\s\u200b\ufeff]+")
_LABEL_SUFFIX = re.compile(r"\([^()]*\)$")
_STRIP = " \t\r\n\u3000\u00a0\u200b\ufeff"
_ILLEGAL_XML = re.compile(r"[\000-\010\013\014\016-\037]")


# -- rows ------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class CatalogueRow:
    """One catalogue row. `values` maps field codes (and `_seq`, `_item_no`, `archival_code`, `department`)
    to normalised values: text stripped, dates as ISO strings, integers for integer/year fields, lists for
    repeatable fields. `files` are the names from the 文件名 column. `cells` are the row's raw cell values
    (merged cells filled; index 0 is column A), kept for the report."""

    row_number: int
    values: dict[str, Any]
    files: list[str] = field(default_factory=list)
    problems: list[FieldProblem] = field(default_factory=list)
    cells: tuple[Any, ...] = ()


@dataclass(frozen=True)
class _Col:
    index: int  # 1-based, as in Excel (A = 1)
    label: str
    code: str
    kind: str  # text, date, integer, year, repeat, files, seq, item_no


def _label_key(label: str) -> tuple[str, str]:
    """(cleaned label, cleaned label without a trailing （…） note): NFKC, no spaces, no * markers."""
    s = _LABEL_SPACES.sub("", unicodedata.normalize("NFKC", label)).strip("*")
    return s, _LABEL_SUFFIX.sub("", s).strip("*")


class _Labels:
    """Header text → field code, for one category's fields."""

    def __init__(self, fields: Sequence[dict[str, Any]]) -> None:
        self.specs = {f["code"]: f for f in fields}
        self.exact: dict[str, str] = {}
        self.loose: dict[str, str] = {}
        for f in fields:
            self.exact.setdefault(str(f["label"]).strip(), f["code"])
        for f in fields:
            full, short = _label_key(str(f["label"]))
            self.loose.setdefault(full, f["code"])
            self.loose.setdefault(short, f["code"])
        for f in fields:
            self.loose.setdefault(f["code"].casefold(), f["code"])
        for label, code in EXTRA_COLUMNS.items():
            self.loose.setdefault(label, code)
        for label, code in ALIASES.items():
            if code in self.specs:
                self.loose.setdefault(label, code)

    def code_for(self, value: Any) -> str | None:
        if value is None:
            return None
        s = str(value).strip(_STRIP)
        if not s:
            return None
        if s in self.exact:
            return self.exact[s]
        full, short = _label_key(s)
        return self.loose.get(full) or self.loose.get(short) or self.loose.get(full.casefold())

    def kind(self, code: str) -> str:
        if code == "_files":
            return "files"
        if code in ("_seq", "_item_no"):
            return "seq"
        spec = self.specs.get(code, {})
        t = spec.get("type", "text")
        if t in ("date", "integer", "year"):
            return t
        if spec.get("repeatable"):
            return "repeat"
        return "text"


def _text(v: Any) -> str | None:
    if isinstance(v, str):
        s = v.strip(_STRIP)
        return s or None
    if isinstance(v, bool):
        return "是" if v else "否"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, dt.datetime):
        return v.date().isoformat() if v.time() == dt.time() else v.isoformat(sep=" ")
    if isinstance(v, dt.date | dt.time):
        return v.isoformat()
    return str(v)


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip(_STRIP))


# -- merged cells ----------------------------------------------------------------------------------------

_ROOT_START = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?worksheet\b[^>]*>")
_MERGE_START = re.compile(rb"<((?:[A-Za-z_][\w.-]*:)?)mergeCells\b")
_SAFE_PARSE = dict(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _read_merged_ranges(zf: zipfile.ZipFile, member: str) -> list[tuple[int, int, int, int]]:
    """(min_row, min_col, max_row, max_col) of every `<mergeCell ref="A5:A9"/>` in the sheet XML.

    `<mergeCells>` comes after `<sheetData>`, so the decompressed stream is scanned for it (bytes.find is
    fast) and only that fragment, wrapped in the sheet's own root start tag for its namespaces, is parsed
    with lxml iterparse (no DTD, no entities, no network)."""
    from openpyxl.utils.cell import range_boundaries

    with zf.open(member) as f:
        head = f.read(65536)
        m = _ROOT_START.search(head)
        if m is None:
            return []
        root_start = m.group(0)
        buf = head
        found = _MERGE_START.search(buf)
        while found is None:
            chunk = f.read(1 << 20)
            if not chunk:
                return []
            buf = buf[-64:] + chunk
            found = _MERGE_START.search(buf)
        prefix = found.group(1)
        end_tag = b"</" + prefix + b"mergeCells>"
        frag = bytearray(buf[found.start():])
        while end_tag not in frag and not re.match(rb"<[^>]*/>", bytes(frag[:200])):
            chunk = f.read(1 << 20)
            if not chunk:
                break
            frag += chunk
            if len(frag) > 128 * 2**20:
                raise _too_large("合并单元格过多")
        end = frag.find(end_tag)
        frag = frag[: end + len(end_tag)] if end >= 0 else frag
    root_name = re.match(rb"<([^\s>/]+)", root_start)
    assert root_name is not None
    doc = root_start + bytes(frag) + b"</" + root_name.group(1) + b">"
    ranges: list[tuple[int, int, int, int]] = []
    try:
        for _, el in etree.iterparse(io.BytesIO(doc), events=("end",), tag="{*}mergeCell", **_SAFE_PARSE):
            ref = el.get("ref", "")
            el.clear()
            if ":" not in ref:
                continue
            try:
                min_col, min_row, max_col, max_row = range_boundaries(ref)
            except (ValueError, TypeError):
                continue
            ranges.append((min_row, min_col, max_row, max_col))
            if len(ranges) > MAX_MERGED_RANGES:
                raise _too_large("合并单元格过多")
    except etree.XMLSyntaxError:
        return ranges
    ranges.sort()
    return ranges


class _MergeFiller:
    """Fills the cells of merged ranges with the top-left value as rows stream by (rows in order)."""

    def __init__(self, ranges: list[tuple[int, int, int, int]], max_cols: int) -> None:
        self.ranges = ranges
        self.max_cols = max_cols
        self.next = 0
        self.active: list[list[Any]] = []  # [min_row, min_col, max_row, max_col, value]

    def apply(self, r: int, row: Sequence[Any]) -> Sequence[Any]:
        ranges = self.ranges
        while self.next < len(ranges) and ranges[self.next][0] <= r:
            min_row, min_col, max_row, max_col = ranges[self.next]
            self.next += 1
            if max_row < r:
                continue
            value = row[min_col - 1] if min_row == r and min_col - 1 < len(row) else None
            self.active.append([min_row, min_col, max_row, min(max_col, self.max_cols), value])
        if not self.active:
            return row
        self.active = [a for a in self.active if a[2] >= r]
        if not self.active:
            return row
        out = list(row)
        for min_row, min_col, _max_row, max_col, value in self.active:
            if value is None:
                continue
            if len(out) < max_col:
                out.extend([None] * (max_col - len(out)))
            for c in range(min_col, max_col + 1):
                if (r, c) != (min_row, min_col) and out[c - 1] is None:
                    out[c - 1] = value
        return tuple(out)


# -- container checks ------------------------------------------------------------------------------------


def _too_large(why: str) -> ValidationFailed:
    return ValidationFailed(
        f"工作簿过大或结构异常（{why}），疑似“压缩炸弹”，已拒收；请删除多余的工作表和格式后另存为 .xlsx 再导入",
        code="XLSX_TOO_LARGE", message_en=f"workbook too large: {why}",
    )


def _malformed(why: str = "") -> ValidationFailed:
    return ValidationFailed(
        "文件不是有效的 Excel 工作簿（.xlsx），请用 Excel 另存为 .xlsx 后重试" + (f"（{why}）" if why else ""),
        code="XLSX_MALFORMED", message_en=f"not a valid .xlsx workbook {why}".strip(),
    )


def _ole_kind(f: IO[bytes], limit: int = 64 * 2**20) -> str:
    """'encrypted' (EncryptionInfo stream), 'xls' (Workbook/Book stream) or '' — a scan for the UTF-16
    directory entry names, which is enough to tell the two apart without an OLE parser."""
    enc = "EncryptionInfo".encode("utf-16-le")
    wb = "Workbook".encode("utf-16-le")
    book = b"B\x00o\x00o\x00k\x00\x00\x00"
    f.seek(0)
    tail = b""
    seen = 0
    found_xls = False
    while seen < limit:
        chunk = f.read(1 << 20)
        if not chunk:
            break
        seen += len(chunk)
        buf = tail + chunk
        if enc in buf or "EncryptedPackage".encode("utf-16-le") in buf:
            return "encrypted"
        if wb in buf or book in buf:
            found_xls = True
        tail = buf[-40:]
    return "xls" if found_xls else ""


def _check_container(f: IO[bytes]) -> None:
    f.seek(0)
    head = f.read(8)
    if head == OLE_MAGIC:
        kind = _ole_kind(f)
        if kind == "xls":
            raise ValidationFailed(
                "这是旧版 Excel 97-2003 工作簿（.xls），请在 Excel 中“另存为” Excel 工作簿（.xlsx）后再导入",
                code="XLS_LEGACY", message_en="legacy .xls workbook; save as .xlsx",
            )
        if kind == "encrypted":
            msg = "工作簿设置了打开密码，请在 Excel 中取消密码后另存为 .xlsx 再导入"
        else:
            msg = ("工作簿设置了打开密码，或是旧版 .xls 格式：请在 Excel 中取消密码（文件→信息→保护工作簿→用密码进行加密，"
                   "清空密码），再“另存为” Excel 工作簿（.xlsx）后导入")
        raise ValidationFailed(msg, code="XLSX_ENCRYPTED", message_en="encrypted workbook (or legacy .xls)")
    if not head.startswith(b"PK"):
        raise _malformed()
    f.seek(0)
    try:
        with zipfile.ZipFile(f) as zf:
            infos = zf.infolist()
            if len(infos) > XLSX_MAX_ENTRIES:
                raise _too_large(f"包含 {len(infos)} 个部件")
            total = 0
            for info in infos:
                total += info.file_size
                if info.flag_bits & 0x41:
                    raise _malformed("部件已加密")
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise _malformed("使用了不支持的压缩方式")
                ratio = info.file_size / max(info.compress_size, 1)
                if info.file_size > XLSX_RATIO_MIN_SIZE and ratio > XLSX_MAX_RATIO:
                    raise _too_large(f"部件 {info.filename} 压缩比异常")
            if total > XLSX_MAX_TOTAL:
                raise _too_large(f"解压后 {total / 2**30:.1f} GB，超过 2 GB")
            names = {i.filename for i in infos}
            if "[Content_Types].xml" not in names or not any(n.startswith("xl/") for n in names):
                raise _malformed("缺少工作簿部件")
            for info in infos:
                if info.filename.endswith((".xml", ".rels")) and info.file_size:
                    with zf.open(info) as part:
                        prolog = part.read(65536)
                    root = re.search(rb"<[A-Za-z_]", prolog)
                    before = prolog[: root.start()] if root else prolog
                    if b"<!DOCTYPE" in before.upper() or b"<!ENTITY" in before.upper():
                        raise _malformed("XML 部件含 DOCTYPE 声明")
    except ValidationFailed:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, KeyError,
            NotImplementedError) as e:
        raise _malformed() from e


# -- the workbook reader ---------------------------------------------------------------------------------
#
# openpyxl's read-only loader parses every shared string through its descriptor machinery, which takes
# seconds for a catalogue of 100,000 distinct titles, and its row parser is slow for inline strings. So the
# few parts a catalogue needs (workbook, relationships, shared strings, cell styles, the sheet) are read
# here with lxml iterparse and the safe options; openpyxl supplies the date-format rules and conversions.

_REL_NS_SUFFIX = "}id"


@dataclass(frozen=True)
class _Sheet:
    name: str
    path: str  # member of the zip
    state: str  # visible, hidden, veryHidden


def _resolve(base: str, target: str) -> str:
    if target.startswith("/"):
        return target.lstrip("/")
    return posixpath.normpath(posixpath.join(posixpath.dirname(base), target))


def _unescape_ooxml(text: str) -> str:
    """Excel writes control characters as _xHHHH_ (and a literal "_x" sequence as _x005F_x…)."""
    if "_x" not in text:
        return text
    return _OOXML_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


_OOXML_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


class _XlsxReader:
    def __init__(self, fp: IO[bytes]) -> None:
        from openpyxl.utils.datetime import MAC_EPOCH, WINDOWS_EPOCH

        self.zip = zipfile.ZipFile(fp)
        self.names = set(self.zip.namelist())
        wb_path = "xl/workbook.xml"
        for _, target, kind in self._rels("_rels/.rels", ""):
            if kind.endswith("/officeDocument"):
                wb_path = target
        if wb_path not in self.names:
            raise _malformed("缺少 workbook.xml")
        wb = self._xml(wb_path)
        rels = {rid: (target, kind) for rid, target, kind in self._rels(self._rels_path(wb_path), wb_path)}
        self.sheets: list[_Sheet] = []
        active_tab = 0
        epoch = WINDOWS_EPOCH
        all_sheets = 0
        active: _Sheet | None = None
        for el in wb.iter():
            name = _local_tag(el.tag)
            if name == "workbookPr" and el.get("date1904") in ("1", "true"):
                epoch = MAC_EPOCH
            elif name == "workbookView" and el.get("activeTab"):
                with contextlib.suppress(ValueError):
                    active_tab = int(el.get("activeTab", "0"))
            elif name == "sheet":
                rid = next((v for k, v in el.attrib.items() if k.endswith(_REL_NS_SUFFIX)), None)
                target, kind = rels.get(rid or "", ("", ""))
                if kind.endswith("/worksheet") and target in self.names:
                    sheet = _Sheet(str(el.get("name", "")), target, str(el.get("state", "visible")))
                    self.sheets.append(sheet)
                    if all_sheets == active_tab:
                        active = sheet
                all_sheets += 1
        if not self.sheets:
            raise _malformed("没有工作表")
        self.active = active or self.sheets[0]
        self.epoch = epoch
        self.strings: list[str] = []
        self.date_styles: set[int] = set()
        self.td_styles: set[int] = set()
        for target, kind in rels.values():
            if kind.endswith("/sharedStrings") and target in self.names:
                self.strings = self._read_strings(target)
            elif kind.endswith("/styles") and target in self.names:
                self._read_styles(target)

    @staticmethod
    def _rels_path(part: str) -> str:
        d, _, f = part.rpartition("/")
        return f"{d}/_rels/{f}.rels" if d else f"_rels/{f}.rels"

    def _xml(self, member: str) -> Any:
        with self.zip.open(member) as f:
            data = f.read(64 * 2**20 + 1)
        if len(data) > 64 * 2**20:
            raise _too_large(f"部件 {member} 过大")
        return etree.fromstring(data, etree.XMLParser(**_SAFE_PARSE))

    def _rels(self, rels_path: str, base: str) -> list[tuple[str, str, str]]:
        if rels_path not in self.names:
            return []
        out = []
        for el in self._xml(rels_path):
            if _local_tag(el.tag) != "Relationship" or el.get("TargetMode") == "External":
                continue
            target = _resolve(base, str(el.get("Target", "")))
            out.append((str(el.get("Id", "")), target, str(el.get("Type", ""))))
        return out

    def _read_strings(self, member: str) -> list[str]:
        strings: list[str] = []
        tag_t = tag_r = ""
        with self.zip.open(member) as f:
            for _, si in etree.iterparse(f, events=("end",), tag="{*}si", **_SAFE_PARSE):
                if not tag_t:
                    ns = si.tag[: -len("si")]
                    tag_t, tag_r = ns + "t", ns + "r"
                t = si.find(tag_t)
                if t is not None:
                    text = t.text or ""
                else:  # rich text runs; phonetic runs (rPh) are left out
                    text = "".join(run.findtext(tag_t) or "" for run in si.iterfind(tag_r))
                strings.append(_unescape_ooxml(text))
                si.clear()
                while si.getprevious() is not None:
                    del si.getparent()[0]
        return strings

    def _read_styles(self, member: str) -> None:
        from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format, is_timedelta_format

        root = self._xml(member)
        custom: dict[int, str] = {}
        xfs: list[int] = []
        for el in root:
            name = _local_tag(el.tag)
            if name == "numFmts":
                for nf in el:
                    with contextlib.suppress(TypeError, ValueError):
                        custom[int(nf.get("numFmtId", ""))] = str(nf.get("formatCode", ""))
            elif name == "cellXfs":
                for xf in el:
                    try:
                        xfs.append(int(xf.get("numFmtId", "0")))
                    except ValueError:
                        xfs.append(0)
        for i, fmt_id in enumerate(xfs):
            code = custom.get(fmt_id) or BUILTIN_FORMATS.get(fmt_id)
            if code and is_date_format(code):
                self.date_styles.add(i)
                if is_timedelta_format(code):
                    self.td_styles.add(i)

    def rows(self, sheet: _Sheet) -> Iterator[tuple[int, list[Any]]]:
        try:
            yield from _parse_rows(
                self.zip, sheet.path, self.strings, self.date_styles, self.td_styles, self.epoch
            )
        except (etree.XMLSyntaxError, zipfile.BadZipFile, zlib.error, EOFError, IndexError, KeyError) as e:
            raise _malformed(f"工作表“{sheet.name}”的数据已损坏") from e

    def close(self) -> None:
        self.zip.close()


def _local_tag(tag: Any) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _parse_rows(archive: zipfile.ZipFile, member: str, strings: Sequence[str], date_styles: set[int],
                td_styles: set[int], epoch: Any) -> Iterator[tuple[int, list[Any]]]:
    """(Excel row number, cell values from column A) for every row present in the sheet XML, in order;
    each row element is cleared once read, so memory stays flat."""
    from openpyxl.utils.cell import column_index_from_string
    from openpyxl.utils.datetime import from_excel, from_ISO8601

    col_cache: dict[str, int] = {}
    prev = 0
    tag_c = tag_v = tag_is = tag_t = tag_r = ""
    with archive.open(member) as f:
        for _, row in etree.iterparse(f, events=("end",), tag="{*}row", **_SAFE_PARSE):
            if not tag_c:  # the namespace of this sheet (transitional or strict OOXML)
                ns = row.tag[: -len("row")]
                tag_c, tag_v, tag_is, tag_t, tag_r = (ns + x for x in ("c", "v", "is", "t", "r"))
            r_attr = row.get("r")
            try:
                r = int(r_attr) if r_attr else prev + 1
            except ValueError:
                r = prev + 1
            prev = r
            values: list[Any] = []
            col = 0
            for c in row:
                if c.tag != tag_c:
                    continue
                ref = c.get("r")
                if ref:
                    letters = ref.rstrip("0123456789")
                    col = col_cache.get(letters) or 0
                    if not col:
                        col = col_cache[letters] = column_index_from_string(letters)
                else:
                    col += 1
                t = c.get("t", "n")
                v: Any = None
                inline: Any = None
                for ch in c:
                    if ch.tag == tag_v:
                        v = ch.text
                    elif ch.tag == tag_is:
                        inline = ch
                if t == "inlineStr":
                    if inline is None:
                        continue
                    te = inline.find(tag_t)
                    if te is not None:
                        v = te.text or ""
                    else:  # rich text runs
                        v = "".join(run.findtext(tag_t) or "" for run in inline.iterfind(tag_r))
                    v = _unescape_ooxml(v)
                elif v is None or v == "":
                    continue
                elif t == "n":
                    v = _number(v)
                    s = c.get("s")
                    if s and int(s) in date_styles and not isinstance(v, str):
                        with contextlib.suppress(OverflowError, ValueError):
                            v = from_excel(v, epoch, timedelta=int(s) in td_styles)
                elif t == "s":
                    v = strings[int(v)]
                elif t == "b":
                    v = v.strip() in ("1", "true")
                elif t == "d":
                    with contextlib.suppress(ValueError):
                        v = from_ISO8601(v)
                if col > len(values):
                    values.extend([None] * (col - len(values)))
                values[col - 1] = v
            row.clear()
            parent = row.getparent()
            if parent is not None:
                while row.getprevious() is not None:
                    del parent[0]
            yield r, values


def _number(v: str) -> int | float | str:
    try:
        return float(v) if ("." in v or "E" in v or "e" in v) else int(v)
    except ValueError:
        return v


# -- catalogue -------------------------------------------------------------------------------------------


class Catalogue:
    """An opened catalogue. Attributes:

    - `sheet_name`, `header_row` (Excel row number of the header)
    - `columns`: [(column index, header label, field code)] of the recognised columns, column A = 1
    - `unknown_columns`: [(column index, header label)] not recognised (or a second column for a field
      that is not repeatable) — their values are ignored; not an error
    - `header`: [(column index, header label)] of every non-empty header cell, for the report
    - `missing_fields`: [(code, label)] of required fields (obligation "required") with no column

    `rows()` streams the data rows (a new pass each call). Close with `close()` or use as a context manager.
    """

    def __init__(self, fp: IO[bytes], reader: _XlsxReader, sheet: _Sheet, header_row: int,
                 header_cells: Sequence[Any], labels: _Labels) -> None:
        self._fp = fp
        self._reader = reader
        self._sheet = sheet
        self.sheet_name: str = sheet.name
        self.header_row = header_row
        self.columns: list[tuple[int, str, str]] = []
        self.unknown_columns: list[tuple[int, str]] = []
        self.header: list[tuple[int, str]] = []
        self._cols: list[_Col] = []
        seen: dict[str, _Col] = {}
        for i, v in enumerate(header_cells, start=1):
            if _blank(v):
                continue
            label = str(v).strip(_STRIP)
            self.header.append((i, label))
            code = labels.code_for(v)
            if code is None:
                self.unknown_columns.append((i, label))
                continue
            kind = labels.kind(code)
            if code in seen and kind != "repeat" and code != "_files":
                self.unknown_columns.append((i, label))
                continue
            col = _Col(i, label, code, kind)
            seen.setdefault(code, col)
            self._cols.append(col)
            self.columns.append((i, label, code))
        self.missing_fields = [
            (code, str(spec.get("label", code))) for code, spec in labels.specs.items()
            if spec.get("obligation") == "required" and code not in seen
        ]
        self._title_col = seen.get("title")
        self._seq_cols = {c.index for c in self._cols if c.code == "_seq"}
        self._width = max((i for i, _ in self.header), default=1)
        self._merges: list[tuple[int, int, int, int]] | None = None

    def _merged_ranges(self) -> list[tuple[int, int, int, int]]:
        if self._merges is None:
            try:
                self._merges = _read_merged_ranges(self._reader.zip, self._sheet.path)
            except (zipfile.BadZipFile, zlib.error, EOFError) as e:
                raise _malformed(f"工作表“{self.sheet_name}”的数据已损坏") from e
        return self._merges

    def estimated_rows(self) -> int:
        """Data rows below the header, from the sheet's <dimension> (Excel and WPS write it); 0 when absent."""
        try:
            with self._reader.zip.open(self._sheet.path) as f:
                head = f.read(4096).decode("utf-8", "replace")
        except (KeyError, OSError, zipfile.BadZipFile):
            return 0
        m = re.search(r'<(?:\w+:)?dimension\s+ref="[A-Z]+\d+:[A-Z]+(\d+)"', head)
        return max(0, int(m.group(1)) - self.header_row) if m else 0

    def rows(self) -> Iterator[CatalogueRow]:
        """The data rows below the header, in order. Fully empty rows (apart from 序号) and repeated header
        rows (题名 cell reading 题名) are skipped. A value that cannot be read (a bad date, a non-number in
        页数) becomes a FieldProblem of the row and is left out of `values`."""
        filler = _MergeFiller(self._merged_ranges(), max(self._width, 1))
        header_row = self.header_row
        cols = self._cols
        seq_cols = self._seq_cols
        title_col = self._title_col
        for r, raw in self._reader.rows(self._sheet):
            row = filler.apply(r, raw)
            if r <= header_row:
                continue
            if not any(not _blank(v) for i, v in enumerate(raw, start=1) if i not in seq_cols):
                continue
            if title_col is not None and title_col.index <= len(row):
                t = row[title_col.index - 1]
                if isinstance(t, str) and t.strip(_STRIP) == title_col.label:
                    continue
            yield self._make_row(r, row, cols)

    @staticmethod
    def _make_row(r: int, row: Sequence[Any], cols: list[_Col]) -> CatalogueRow:
        values: dict[str, Any] = {}
        files: list[str] = []
        problems: list[FieldProblem] = []
        n = len(row)
        for col in cols:
            if col.index > n:
                continue
            v = row[col.index - 1]
            if _blank(v):
                continue
            kind = col.kind
            if kind == "text":
                values[col.code] = _text(v)
            elif kind == "date":
                try:
                    values[col.code] = parse_date(v).isoformat()
                except ValueError as e:
                    problems.append(FieldProblem(col.code, "INVALID_DATE", str(e), col.label, v))
            elif kind in ("integer", "year"):
                try:
                    iv = parse_int(v)
                except ValueError as e:
                    problems.append(FieldProblem(col.code, "INVALID_INTEGER", str(e), col.label, v))
                    continue
                if kind == "year" and not 1000 <= iv <= 2999:
                    problems.append(FieldProblem(
                        col.code, "INVALID_INTEGER", f"年度“{v}”无效，应为四位年份，如 2024", col.label, v
                    ))
                    continue
                values[col.code] = iv
            elif kind == "files":
                files.extend(p for p in (s.strip(_STRIP) for s in _FILES_SPLIT.split(_text(v) or "")) if p)
            elif kind == "repeat":
                parts = [p for p in _REPEAT_SPLIT.split(_text(v) or "") if p]
                values.setdefault(col.code, []).extend(parts)
            else:  # _seq, _item_no: a number when it is one
                try:
                    values[col.code] = parse_int(v)
                except ValueError:
                    values[col.code] = _text(v)
        return CatalogueRow(r, values, files, problems, tuple(row))

    def close(self) -> None:
        try:
            self._reader.close()
        finally:
            self._fp.close()

    def __enter__(self) -> Catalogue:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _find_header(rows: list[Sequence[Any]], labels: _Labels) -> tuple[int, int] | None:
    """(row number, recognised count) of the best header among the rows, which must include 题名."""
    best: tuple[int, int] | None = None
    for r, row in enumerate(rows, start=1):
        codes = {labels.code_for(v) for v in row} - {None}
        if "title" not in codes:
            continue
        if best is None or len(codes) > best[1]:
            best = (r, len(codes))
    return best


def open_catalogue(path: Path, fields: list[dict[str, Any]], *, sheet: str | None = None) -> Catalogue:
    """Open an .xlsx catalogue for streaming. `fields` are the category's field specs (dicts with at least
    "code" and "label"; "type" date/integer/year and "repeatable" change how values are read).

    The active sheet is tried first, then the other visible ones, then hidden ones, unless `sheet` names
    one. Raises ValidationFailed (see the module docstring) before any row is read."""
    labels = _Labels(fields)
    if not any(f["code"] == "title" for f in fields):
        labels.loose.setdefault("题名", "title")
    fp = open(Path(path), "rb")  # noqa: SIM115 - the Catalogue owns and closes it
    try:
        _check_container(fp)
        fp.seek(0)
        try:
            reader = _XlsxReader(fp)
        except ValidationFailed:
            raise
        except (zipfile.BadZipFile, etree.XMLSyntaxError, KeyError, ValueError, OSError, EOFError,
                zlib.error) as e:
            raise _malformed() from e
    except BaseException:
        fp.close()
        raise
    try:
        return _open_sheet(fp, reader, labels, fields, sheet)
    except BaseException:
        reader.close()
        fp.close()
        raise


def _open_sheet(fp: IO[bytes], reader: _XlsxReader, labels: _Labels, fields: list[dict[str, Any]],
                sheet: str | None) -> Catalogue:
    if sheet is not None:
        candidates = [s for s in reader.sheets if s.name == sheet]
        if not candidates:
            raise ValidationFailed(
                f"工作簿中没有名为“{sheet}”的工作表，现有：{'、'.join(s.name for s in reader.sheets)}",
                code="CATALOGUE_NO_SHEET", message_en="no such sheet",
            )
    else:
        others = [s for s in reader.sheets if s is not reader.active]
        candidates = [reader.active] + [s for s in others if s.state == "visible"]
        candidates += [s for s in others if s.state != "visible"]
    any_content = False
    for ws in candidates:
        first: list[Sequence[Any]] = [()] * HEADER_SEARCH_ROWS
        it = reader.rows(ws)
        content = False
        try:
            for r, row in it:
                has = any(not _blank(v) for v in row)
                if r < 1:
                    continue
                if r > HEADER_SEARCH_ROWS:
                    content = content or has
                    if content:
                        break
                    continue
                first[r - 1] = row
                content = content or has
        finally:
            it.close()  # type: ignore[attr-defined]
        any_content = any_content or content
        found = _find_header(first, labels)
        if found is not None:
            return Catalogue(fp, reader, ws, found[0], first[found[0] - 1], labels)
    if not any_content:
        raise ValidationFailed(
            "工作簿是空的，没有任何内容；请填写归档文件目录后再导入", code="CATALOGUE_EMPTY", message_en="empty workbook"
        )
    expected = "、".join(str(f["label"]) for f in fields) or "题名"
    raise ValidationFailed(
        f"在前 {HEADER_SEARCH_ROWS} 行中没有找到表头：表头行必须有“题名”列。可识别的列名：{expected}，"
        "以及 序号、档号、机构（问题）、件号、文件名。请把表头放在前 10 行内，列名与上面一致",
        code="CATALOGUE_NO_HEADER", message_en="no header row with 题名 in the first 10 rows",
        detail={"expected_columns": [f["label"] for f in fields]},
    )


# -- dry-run report ---------------------------------------------------------------------------------------


class _RowLike(Protocol):
    row_number: int
    values: dict[str, Any]


@dataclass
class ReportSummary:
    rows: int = 0
    passed: int = 0
    failed: int = 0
    top_problems: list[tuple[str, int]] = field(default_factory=list)


_QUOTED = re.compile(r"“[^”]*”")


def _problem_text(p: str | FieldProblem) -> tuple[str, str]:
    """(text shown in the row, key the summary counts by: the text without quoted values)."""
    if isinstance(p, FieldProblem):
        name = p.label or p.field
        text = p.message if p.message.startswith(name) else f"{name}：{p.message}"
    else:
        text = str(p)
    return text, _QUOTED.sub("“…”", text)


def _cell_value(v: Any) -> Any:
    if isinstance(v, str):
        return _ILLEGAL_XML.sub("", v)
    if isinstance(v, dt.datetime) and v.time() == dt.time() and v.tzinfo is None:
        return v.date()
    if isinstance(v, list):
        return "；".join(str(x) for x in v)
    return v


def write_report(
    rows: Iterable[tuple[_RowLike, Sequence[str | FieldProblem]]],
    columns: Sequence[tuple[Any, ...]],
    out: Path,
    *,
    source_name: str = "",
    top: int = 10,
) -> ReportSummary:
    """Write the dry-run validation report and return its counts.

    - `rows`: an iterable (a generator is best: nothing is kept in memory) of `(row, errors)` where `row` is
      a CatalogueRow (or anything with `row_number` and `values`; with `cells` the raw cell values are
      shown, as the clerk typed them) and `errors` the row's problems — Chinese strings or FieldProblems
      (shown as “label：message”); empty means the row passed.
    - `columns`: the report's columns as `(column index, label[, code])`: pass `catalogue.header` to mirror
      every column of the catalogue, or `catalogue.columns`. Rows without `cells` are shown from
      `values[code]` (and `files` for `_files`), so three-item columns are needed then.
    - `out`: the .xlsx to write (streamed with openpyxl's write-only mode).

    The workbook has a first sheet 汇总 (file, rows read, passed, failed, most frequent problems) and a sheet
    校验结果 with the header labels, the values and a last column 校验结果: 通过, or the errors joined by
    “；”. Failing rows are filled light red. Cell text starting with “=” is written as text, never as a
    formula.
    """
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font, PatternFill

    wb = Workbook(write_only=True)
    summary_ws = wb.create_sheet("汇总")
    ws = wb.create_sheet("校验结果")
    red = PatternFill("solid", fgColor="FFC7CE")
    head_fill = PatternFill("solid", fgColor="DDEBF7")
    bold = Font(bold=True)
    wrap = Alignment(wrap_text=True, vertical="top")
    cols = list(columns)
    for i, c in enumerate(cols, start=1):
        ws.column_dimensions[_letter(i)].width = 40 if len(c) > 2 and c[2] == "title" else 16
    ws.column_dimensions[_letter(len(cols) + 1)].width = 60
    ws.freeze_panes = "A2"

    def cell(value: Any, fill: PatternFill | None = None, font: Font | None = None) -> Any:
        value = _cell_value(value)
        c = WriteOnlyCell(ws, value=value)
        if isinstance(value, str) and value.startswith("="):
            c.data_type = "s"  # never a formula
        if fill is not None:
            c.fill = fill
        if font is not None:
            c.font = font
        return c

    ws.append([cell(c[1], head_fill, bold) for c in cols] + [cell("校验结果", head_fill, bold)])
    summary = ReportSummary()
    counter: Counter[str] = Counter()
    for row, errors in rows:
        summary.rows += 1
        texts = []
        for e in errors:
            text, key = _problem_text(e)
            texts.append(text)
            counter[key] += 1
        cells_raw = getattr(row, "cells", None)
        vals: list[Any] = []
        for c in cols:
            idx = c[0]
            if cells_raw:
                vals.append(cells_raw[idx - 1] if 0 < idx <= len(cells_raw) else None)
            elif len(c) > 2:
                code = c[2]
                vals.append(getattr(row, "files", None) if code == "_files" else row.values.get(code))
            else:
                vals.append(None)
        if texts:
            summary.failed += 1
            r = [cell(v, red) for v in vals] + [cell("；".join(texts), red)]
            r[-1].alignment = wrap
        else:
            summary.passed += 1
            plain = [_cell_value(v) for v in vals]
            if any(isinstance(v, str) and v.startswith("=") for v in plain):
                r = [cell(v) for v in vals] + [cell("通过")]
            else:  # most rows: plain values are written several times faster than styled cells
                r = [*plain, "通过"]
        ws.append(r)

    summary.top_problems = counter.most_common(top)
    sc = summary_ws
    sc.column_dimensions["A"].width = 70
    sc.column_dimensions["B"].width = 14

    def scell(value: Any, font: Font | None = None) -> Any:
        value = _cell_value(value)
        c = WriteOnlyCell(sc, value=value)
        if isinstance(value, str) and value.startswith("="):
            c.data_type = "s"
        if font is not None:
            c.font = font
        return c

    sc.append([scell("归档文件目录校验结果（试导入，未写入系统）", bold)])
    if source_name:
        sc.append([scell("文件"), scell(source_name)])
    sc.append([scell("生成时间"), scell(dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S"))])
    sc.append([scell("读取行数"), scell(summary.rows)])
    sc.append([scell("通过"), scell(summary.passed)])
    sc.append([scell("未通过"), scell(summary.failed)])
    sc.append([])
    if summary.top_problems:
        sc.append([scell("最常见的问题", bold), scell("行数", bold)])
        for text, n in summary.top_problems:
            sc.append([scell(text), scell(n)])
    else:
        sc.append([scell("全部通过，可以正式导入")])
    sc.append([])
    sc.append([scell("未通过的行在“校验结果”工作表中以浅红色标出，最后一列说明应如何修改。")])
    wb.save(out)
    return summary


def _letter(i: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(i)
