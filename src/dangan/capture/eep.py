"""DA/T 48-2009 electronic record encapsulation packages (EEP, 电子文件封装包): safe parsing and mapping.

Security. The XML is never given a chance to define entities: any `<!DOCTYPE`/`<!ENTITY` (any `<!` that is
not a comment or CDATA) refuses the package with EEP_DTD_FORBIDDEN before the parser sees it, which covers
billion laughs and XXE; the lxml parser also runs with resolve_entities=False, no_network, load_dtd=False
and huge_tree=False (libxml2's default limits on depth and text size stay on).

Size. An EEP carries its files as base64 inside `编码数据` elements, often megabytes each, which a tree
parser with huge_tree=False refuses (text nodes above 10 MB) and would otherwise hold in memory. So the
bytes are read in chunks through a small lexer that sends the text of every `编码数据` element to a
streaming base64 decoder (into a SpooledTemporaryFile: one copy, on disk above `spool_size`) and gives the
parser only the newlines of that text, so the parsed tree is small and its line numbers are those of the
original document. The XSD then validates this tree (an empty `编码数据` is valid base64Binary); the
decoder checks the base64 itself.

Validation. With `xsd_path` (deployment configuration — the schema is not shipped) every schema error is
reported with its line and element path (EEP_INVALID). DA/T 48 packages carry the namespace
http://www.saac.gov.cn/standards/ERM/encapsulation; a package without it does not conform and fails
validation, unless `allow_missing_namespace=True`, which validates a copy with the namespace added. Without
`xsd_path`, the structural minimum is checked (电子文件封装包 / 被签名对象 / 封装内容 / 文件实体块 /
文件实体 / 内容描述 / 题名). Lookups are by local name, so both forms are read the same way.
"""

from __future__ import annotations

import binascii
import contextlib
import copy
import functools
import hashlib
import re
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

from lxml import etree

from dangan.capture.dates import parse_date, parse_int
from dangan.domain.retention import parse_retention
from dangan.errors import ConfigError, FieldProblem, ValidationFailed

__all__ = ["EEP_NAMESPACE", "EepFile", "EepPackage", "parse_eep", "map_retention"]

EEP_NAMESPACE = "http://www.saac.gov.cn/standards/ERM/encapsulation"
ROOT = "电子文件封装包"
DATA_ELEMENT = "编码数据"
_CHUNK = 1 << 20
_MAX_MARKUP = 4 << 20  # one tag, comment or PI; libxml2 refuses more than 10 MB anyway
_MAX_PROBLEMS = 500
_PARSER_OPTIONS = dict(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True,
    remove_pis=True,
)


# -- results ---------------------------------------------------------------------------------------------


@dataclass
class EepFile:
    """One computer file (编码) of the package. `data_stream` is positioned at 0; `size` and `sha256` are
    of the decoded bytes. `name` is 计算机文件名 reduced to a safe base name (with the extension from
    反编码关键字 when it had none); `format` is 格式信息; `role` is 文档主从声明 (主文档/附属文档)."""

    name: str
    format: str
    data_stream: BinaryIO
    size: int = 0
    sha256: str = ""
    role: str = ""
    document_id: str = ""
    declared_size: str = ""
    extension: str = ""

    def read(self) -> bytes:
        self.data_stream.seek(0)
        data = self.data_stream.read()
        self.data_stream.seek(0)
        return data


@dataclass
class EepPackage:
    """What an EEP says, mapped to our field codes (see `parse_eep`). Close it (or use `with`) to drop the
    spooled file data."""

    sender_ref: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    department: str = ""
    fonds_code: str = ""
    files: list[EepFile] = field(default_factory=list)
    signatures_present: bool = False
    raw_problems: list[FieldProblem] = field(default_factory=list)
    package_type: str = ""  # 原始型 / 修改型
    created_at: str = ""  # 封装包创建时间
    created_by: str = ""  # 封装包创建单位
    namespaced: bool = True
    extra: dict[str, str] = field(default_factory=dict)  # other elements of the 文件实体, by element name

    def close(self) -> None:
        for f in self.files:
            f.data_stream.close()

    def __enter__(self) -> EepPackage:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# -- streaming base64 ------------------------------------------------------------------------------------

_CHAR_REF = re.compile(rb"&#(x[0-9A-Fa-f]{1,6}|[0-9]{1,7});")
_WS = b" \t\r\n"


class _Base64Sink:
    """Decodes base64 text as it arrives into a spooled temporary file, hashing it on the way."""

    def __init__(self, line: int, spool_size: int, tmp_dir: str | None) -> None:
        self.line = line
        spooled = tempfile.SpooledTemporaryFile(max_size=spool_size, dir=tmp_dir)  # noqa: SIM115
        self.file: BinaryIO = spooled  # type: ignore[assignment]
        self.sha = hashlib.sha256()
        self.size = 0
        self.carry = b""
        self.amp = b""
        self.padded = False
        self.error = ""

    def feed_text(self, data: bytes) -> None:
        """Element text as it appears in the document: character references allowed for whitespace."""
        if self.amp:
            data = self.amp + data
            self.amp = b""
        if b"&" in data:
            k = data.rfind(b"&")
            if b";" not in data[k:]:
                self.amp, data = data[k:], data[:k]
                if len(self.amp) > 12:
                    self.error = self.error or "含无效的字符引用"
                    self.amp = b""
            data = _CHAR_REF.sub(self._ref, data)
            if b"&" in data:
                self.error = self.error or "含实体引用或无效字符"
                return
        self.feed_raw(data)

    def _ref(self, m: re.Match[bytes]) -> bytes:
        g = m.group(1)
        cp = int(g[1:], 16) if g[:1] == b"x" else int(g)
        if cp in (9, 10, 13, 32):
            return b""
        self.error = self.error or "含非 Base64 字符"
        return b""

    def feed_raw(self, data: bytes) -> None:
        if self.error:
            return
        data = data.translate(None, _WS)
        if not data:
            return
        data = self.carry + data
        n = len(data) // 4 * 4
        chunk, self.carry = data[:n], data[n:]
        if not chunk:
            return
        if self.padded:
            self.error = "Base64 填充符“=”之后还有数据"
            return
        try:
            out = binascii.a2b_base64(chunk, strict_mode=True)
        except binascii.Error:
            self.error = "不是有效的 Base64 编码"
            return
        if chunk.endswith(b"="):
            self.padded = True
        self._write(out)

    def _write(self, out: bytes) -> None:
        if out:
            self.file.write(out)
            self.sha.update(out)
            self.size += len(out)

    def finish(self) -> None:
        if self.amp:
            self.error = self.error or "含未结束的字符引用"
        if self.carry and not self.error:
            if self.padded:
                self.error = "Base64 填充符“=”之后还有数据"
            else:  # missing padding: accept it, as most decoders do
                try:
                    padded = self.carry + b"=" * (-len(self.carry) % 4)
                    self._write(binascii.a2b_base64(padded, strict_mode=True))
                except binascii.Error:
                    self.error = "不是有效的 Base64 编码（长度不对）"
        self.carry = b""
        self.file.seek(0)


# -- the lexer that feeds the parser ---------------------------------------------------------------------

_START_TAG = re.compile(rb"<([^\s/>!?]+)(?:[^>\"']|\"[^\"]*\"|'[^']*')*>")
_END_TAG = re.compile(rb"</([^\s>]+)\s*>")
_XML_DECL_ENC = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")


class _DoctypeFound(Exception):
    pass


class _Feeder:
    """Reads the source in chunks and feeds an lxml feed parser (see the module docstring)."""

    def __init__(self, src: IO[bytes], parser: etree.XMLParser, max_bytes: int, spool_size: int,
                 tmp_dir: str | None) -> None:
        self.src = src
        self.parser = parser
        self.max_bytes = max_bytes
        self.spool_size = spool_size
        self.tmp_dir = tmp_dir
        self.read_bytes = 0
        self.sinks: list[_Base64Sink] = []
        self.bulk: _Base64Sink | None = None
        self.name = DATA_ELEMENT.encode("utf-8")
        self.lines = 1  # lines handed to the parser so far, for the sinks' line numbers
        self.passthrough = False
        self.in_cdata = False
        self.tail = b""  # end of the last passed-through piece, to find a DOCTYPE cut in two

    def _read(self) -> bytes:
        chunk = self.src.read(_CHUNK)
        self.read_bytes += len(chunk)
        if self.read_bytes > self.max_bytes:
            raise ValidationFailed(
                f"封装包超过 {self.max_bytes // 2**20} MB 的上限，已拒收；请拆分后重新封装",
                code="EEP_TOO_LARGE", message_en="package too large",
            )
        return chunk

    def run(self) -> None:
        buf = bytearray(self._read())
        while 0 < len(buf) < 512:  # enough for the BOM and the XML declaration
            chunk = self._read()
            if not chunk:
                break
            buf += chunk
        if buf[:2] in (b"\xff\xfe", b"\xfe\xff") or buf[:2] in (b"<\x00", b"\x00<"):
            raise ValidationFailed(
                "封装包使用了 UTF-16 编码，请发送方以 UTF-8 编码重新生成", code="EEP_MALFORMED", message_en="UTF-16"
            )
        m = _XML_DECL_ENC.match(buf)
        if m:
            with contextlib.suppress(LookupError, UnicodeError):
                self.name = DATA_ELEMENT.encode(m.group(1).decode("ascii"))
        eof = not buf
        i = 0
        while True:
            out = bytearray()
            i, need_more = self._step(buf, i, out, eof)
            if out:
                self.lines += out.count(b"\n")
                self.parser.feed(bytes(out))
            if eof and (not need_more or i >= len(buf)):
                if i < len(buf):
                    self._feed_rest(buf[i:])
                break
            if need_more:
                del buf[:i]
                i = 0
                chunk = self._read()
                if chunk:
                    buf += chunk
                else:
                    eof = True
        if self.bulk is not None:
            self.bulk.finish()
            self.bulk = None

    def _feed_rest(self, rest: bytes | bytearray) -> None:
        """Hand the rest to the parser as it is (it will report the error), still refusing a DOCTYPE."""
        up = (self.tail + bytes(rest)).upper()
        if b"<!DOCTYPE" in up or b"<!ENTITY" in up:
            raise _DoctypeFound()
        self.parser.feed(bytes(rest))

    def _step(self, buf: bytearray, i: int, out: bytearray, eof: bool) -> tuple[int, bool]:
        """Process buf from i; return (new position, whether more input is needed to go on)."""
        n = len(buf)
        while i < n:
            if self.passthrough:
                rest = bytes(buf[i:])
                up = (self.tail + rest).upper()
                if b"<!DOCTYPE" in up or b"<!ENTITY" in up:
                    raise _DoctypeFound()
                self.tail = rest[-16:]
                out += rest
                return n, True
            if self.in_cdata:  # base64 in a CDATA section of 编码数据, streamed like text
                k = buf.find(b"]]>", i)
                end = k if k >= 0 else max(i, n - 2)
                seg = bytes(buf[i:end])
                if self.bulk is not None:
                    self.bulk.feed_raw(seg)
                out += b"\n" * seg.count(b"\n")
                if k < 0:
                    if eof:
                        self.in_cdata = False
                        self.passthrough = True
                        return end, False
                    return end, True
                self.in_cdata = False
                i = k + 3
                continue
            if buf[i] != 0x3C:  # text up to the next "<"
                j = buf.find(b"<", i)
                end = n if j < 0 else j
                if self.bulk is not None:
                    seg = bytes(buf[i:end])
                    self.bulk.feed_text(seg)
                    out += b"\n" * seg.count(b"\n")
                else:
                    out += buf[i:end]
                i = end
                continue
            # markup at i
            if n - i < 9 and not eof:
                return i, True
            if buf.startswith(b"<!--", i):
                k = buf.find(b"-->", i + 4)
                if k < 0:
                    return self._incomplete(buf, i, eof)
                out += buf[i : k + 3]
                i = k + 3
            elif buf.startswith(b"<![CDATA[", i):
                if self.bulk is not None:
                    self.in_cdata = True
                    i += 9
                    continue
                k = buf.find(b"]]>", i + 9)
                if k < 0:
                    return self._incomplete(buf, i, eof)
                out += buf[i : k + 3]
                i = k + 3
            elif buf.startswith(b"<!", i):
                head = bytes(buf[i : i + 9])
                if len(head) < 9 and (b"<!--".startswith(head) or b"<![CDATA[".startswith(head)):
                    return self._incomplete(buf, i, eof)  # cut off at the end of the data
                raise _DoctypeFound()
            elif buf.startswith(b"<?", i):
                k = buf.find(b"?>", i + 2)
                if k < 0:
                    return self._incomplete(buf, i, eof)
                out += buf[i : k + 2]
                i = k + 2
            elif buf.startswith(b"</", i):
                m = _END_TAG.match(buf, i)
                if m is None:
                    if buf.find(b">", i) < 0:
                        return self._incomplete(buf, i, eof)
                    self.passthrough = True
                    continue
                if self.bulk is not None and m.group(1).rsplit(b":", 1)[-1] == self.name:
                    self.bulk.finish()
                    self.bulk = None
                out += m.group(0)
                i = m.end()
            else:
                m = _START_TAG.match(buf, i)
                if m is None:
                    if not eof and n - i < _MAX_MARKUP:
                        return i, True
                    self.passthrough = True
                    continue
                tag = m.group(0)
                out += tag
                i = m.end()
                if m.group(1).rsplit(b":", 1)[-1] == self.name:
                    if self.bulk is not None:  # nested: not valid EEP; let the parser and schema judge
                        self.passthrough = True
                        continue
                    sink = _Base64Sink(self.lines + out.count(b"\n"), self.spool_size, self.tmp_dir)
                    self.sinks.append(sink)
                    if tag.endswith(b"/>"):
                        sink.finish()
                    else:
                        self.bulk = sink
        return i, True

    def _incomplete(self, buf: bytearray, i: int, eof: bool) -> tuple[int, bool]:
        if eof or len(buf) - i > _MAX_MARKUP:
            self.passthrough = True
            return i, False
        return i, True


# -- helpers ---------------------------------------------------------------------------------------------


def _local(el: Any) -> str:
    tag = el.tag
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def _child(el: Any, name: str) -> Any:
    if el is None:
        return None
    for c in el:
        if _local(c) == name:
            return c
    return None


def _children(el: Any, name: str) -> list[Any]:
    return [] if el is None else [c for c in el if _local(c) == name]


def _find(el: Any, *names: str) -> Any:
    for n in names:
        el = _child(el, n)
        if el is None:
            return None
    return el


def _text(el: Any) -> str:
    if el is None or el.text is None:
        return ""
    return el.text.strip(" \t\r\n\u3000\u00a0")


def _show(v: str, n: int = 40) -> str:
    return v if len(v) <= n else v[:n] + "…"


def map_retention(raw: str) -> str | None:
    """永久→Y, 定期30年/30年→D30, 定期10年/10年→D10, 长期→D30, 短期→D10, codes as they are; None if unknown.

    长期/短期 are the pre-2006 periods; 国家档案局令第8号 replaced them, and archives conventionally carry
    长期 over as 定期30年 and 短期 as 定期10年."""
    s = re.sub(r"\s+", "", unicodedata.normalize("NFKC", raw or ""))
    if s in ("长期",):
        return "D30"
    if s in ("短期",):
        return "D10"
    m = re.fullmatch(r"(?:定期)?(\d{1,3})年", s)
    if m and int(m.group(1)) > 0:
        return f"D{int(m.group(1))}"
    try:
        return parse_retention(s).code
    except ValueError:
        return None


_XSD_HINTS = [
    (re.compile(r"This element is not expected\. Expected is (?:one of )?\( ?(.+?) ?\)"), "此处不应出现该元素，应为：{0}"),
    (re.compile(r"This element is not expected"), "此处不应出现该元素"),
    (re.compile(r"Missing child element\(s\)\. Expected is (?:one of )?\( ?(.+?) ?\)"), "缺少子元素：{0}"),
    (re.compile(r"No matching global declaration available for the validation root"),
     "根元素不是 DA/T 48-2009 封装包的根元素（检查根元素名称和命名空间声明）"),
    (re.compile(r"atomic type 'xs:gYear'"), "值无效，应为四位年份，如 2024"),
    (re.compile(r"atomic type 'xs:positiveInteger'"), "值无效，应为正整数"),
    (re.compile(r"atomic type 'xs:dateTime'"), "值无效，应为日期时间，如 2024-03-05T10:00:00"),
    (re.compile(r"atomic type 'xs:base64Binary'"), "值无效，应为 Base64 编码"),
    (re.compile(r"atomic type 'xs:ID'"), "值无效，应为以字母开头的标识符"),
    (re.compile(r"is not an element of the set|facet 'enumeration'"), "值不在允许的取值范围内"),
    (re.compile(r"The attribute '(.+?)' is required but missing"), "缺少必需的属性：{0}"),
    (re.compile(r"The attribute '(.+?)' is not allowed"), "不允许的属性：{0}"),
    (re.compile(r"does not match the fixed value constraint '(.+?)'"), "值必须为“{0}”"),
    (re.compile(r"Duplicate key-sequence|is not unique|Duplicate ID"), "标识符重复"),
]
_NS_BRACES = re.compile(r"\{[^}]*\}")


def _explain(message: str) -> str:
    msg = _NS_BRACES.sub("", message)
    for pat, zh in _XSD_HINTS:
        m = pat.search(msg)
        if m:
            groups = [_NS_BRACES.sub("", g) for g in m.groups()]
            return zh.format(*groups) if groups else zh
    return "不符合 DA/T 48-2009 封装包模式"


@functools.lru_cache(maxsize=4)
def _schema(path: str, mtime_ns: int) -> etree.XMLSchema:
    try:
        doc = etree.parse(path, etree.XMLParser(**_PARSER_OPTIONS))
        return etree.XMLSchema(doc)
    except (OSError, etree.XMLSyntaxError, etree.XMLSchemaParseError) as e:
        raise ConfigError(
            f"无法读取封装包模式文件 {path}（{e}），请检查配置", code="EEP_XSD_UNAVAILABLE", message_en=str(e)
        ) from e


def _load_schema(xsd_path: Path) -> etree.XMLSchema:
    p = Path(xsd_path)
    try:
        mtime = p.stat().st_mtime_ns
    except OSError as e:
        raise ConfigError(
            f"找不到封装包模式文件 {p}，请检查配置", code="EEP_XSD_UNAVAILABLE", message_en=str(e)
        ) from e
    return _schema(str(p), mtime)


def _schema_problems(schema: etree.XMLSchema, root: Any) -> list[FieldProblem]:
    if schema.validate(root):
        return []
    problems = []
    tree = root.getroottree()
    for err in schema.error_log:
        path = _element_path(tree, err.path or "")
        label = path.rsplit("/", 1)[-1] if path else ""
        raw = _NS_BRACES.sub("", err.message)
        problems.append(FieldProblem(
            path or "/", "EEP_SCHEMA", f"第 {err.line} 行 {label}：{_explain(err.message)}（{raw}）", label,
            err.line,
        ))
    return problems


def _element_path(tree: Any, xpath: str) -> str:
    """The element path by local names (/电子文件封装包/被签名对象/…) for libxml2's error path, which is
    positional (/*/*[3]/…) for a default namespace and prefixed (/ns0:…) otherwise."""
    try:
        found = tree.xpath(xpath) if xpath else None
    except (etree.XPathError, ValueError):
        found = None
    if isinstance(found, list) and found and isinstance(found[0], etree._Element):
        el = found[0]
        names = [_local(a) for a in reversed(list(el.iterancestors()))] + [_local(el)]
        return "/" + "/".join(names)
    return re.sub(r"(?<=/)[^/:\[\]]+:", "", xpath)


def _structure_problems(root: Any) -> list[FieldProblem]:
    p: list[FieldProblem] = []

    def miss(path: str, name: str) -> None:
        p.append(FieldProblem(path, "EEP_STRUCTURE", f"缺少元素“{name}”（{path}）", name))

    if _local(root) != ROOT:
        p.append(FieldProblem(
            "/" + _local(root), "EEP_STRUCTURE", f"根元素应为“{ROOT}”，实际为“{_local(root)}”", _local(root)
        ))
        return p
    signed = _child(root, "被签名对象")
    if signed is None:
        miss(f"/{ROOT}/被签名对象", "被签名对象")
        return p
    content = _child(signed, "封装内容")
    base = f"/{ROOT}/被签名对象/封装内容"
    if content is None:
        content = _find(signed, "修改封装内容", "修订内容")
        base = f"/{ROOT}/被签名对象/修改封装内容/修订内容"
    if content is None:
        miss(f"/{ROOT}/被签名对象/封装内容", "封装内容")
        return p
    block = _child(content, "文件实体块")
    if block is None:
        miss(base + "/文件实体块", "文件实体块")
        return p
    entity = _child(block, "文件实体")
    if entity is None:
        miss(base + "/文件实体块/文件实体", "文件实体")
        return p
    if _find(entity, "内容描述", "题名") is None:
        miss(base + "/文件实体块/文件实体/内容描述/题名", "题名")
    return p


def _safe_file_name(name: str, ext: str, fallback: str) -> str:
    base = re.split(r"[\\/]", name)[-1]
    base = re.sub(r"[\x00-\x1f\x7f]", "", unicodedata.normalize("NFC", base)).strip().lstrip(".")
    if base in ("", ".", "..") or base == "计算机文件名":
        base = fallback
    ext = ext.strip().lstrip(".")
    if ext and "." not in base and re.fullmatch(r"[A-Za-z0-9]{1,10}", ext):
        base = f"{base}.{ext.lower()}"
    return base[:255]


# -- parse -----------------------------------------------------------------------------------------------


def _dtd_forbidden() -> ValidationFailed:
    return ValidationFailed(
        "封装包含 DOCTYPE/实体声明，出于安全原因拒收", code="EEP_DTD_FORBIDDEN", message_en="DOCTYPE/entity declarations"
    )


def parse_eep(
    source: BinaryIO | Path | str,
    *,
    xsd_path: Path | None = None,
    max_bytes: int = 2 * 2**30,
    allow_missing_namespace: bool = False,
    spool_size: int = 2 * 2**20,
    tmp_dir: Path | None = None,
) -> EepPackage:
    """Parse an EEP (a path or a binary file object, read in chunks and not closed).

    Raises ValidationFailed with code EEP_DTD_FORBIDDEN, EEP_MALFORMED (with the line), EEP_TOO_LARGE
    (above `max_bytes`) or EEP_INVALID (problems: schema errors with lines and element paths, a missing
    namespace, broken base64 data); ConfigError EEP_XSD_UNAVAILABLE when `xsd_path` cannot be read.

    Mapped `metadata` (only what is present): title ← 内容描述/题名, doc_number ← 文件编号, responsible ←
    责任者, date ← 日期 (ISO), year ← 档号/年度, retention_period ← 档号/保管期限 (Y, D30, D10; the raw text
    when unknown), security_level ← 密级, secrecy_period ← 保密期限, doc_type ← 文种, urgency ← 紧急程度,
    main_recipient ← 主送, cc ← 抄送, keywords ← 主题词 and 关键词 (a list), pages ← 形式特征/页数,
    draft_type ← 稿本, remarks ← 附注. Values that do not fit (a date or 年度 that cannot be read, an unknown
    保管期限) are listed in `raw_problems`; the unreadable ones are left out.
    """
    own = isinstance(source, str | Path)
    src: IO[bytes] = open(source, "rb") if own else source  # type: ignore[arg-type]  # noqa: SIM115
    parser = etree.XMLParser(**_PARSER_OPTIONS)
    feeder = _Feeder(src, parser, max_bytes, spool_size, str(tmp_dir) if tmp_dir else None)
    try:
        try:
            feeder.run()
            root = parser.close()
        except _DoctypeFound:
            raise _dtd_forbidden() from None
        except etree.XMLSyntaxError as e:
            line = e.lineno or (e.position[0] if e.position else 0)
            msg = e.msg or str(e)
            if "DOCTYPE" in msg:
                raise _dtd_forbidden() from None
            raise ValidationFailed(
                f"封装包不是格式正确的 XML（第 {line} 行：{msg}），可能传输不完整或生成有误，请发送方重新生成后再提交",
                code="EEP_MALFORMED", message_en=f"not well-formed XML at line {line}: {msg}",
                detail={"line": line},
            ) from None
        finally:
            if own:
                src.close()
        return _build(root, feeder.sinks, xsd_path, allow_missing_namespace)
    except BaseException:
        for s in feeder.sinks:
            s.file.close()
        raise


def _build(root: Any, sinks: list[_Base64Sink], xsd_path: Path | None, allow_missing_namespace: bool
           ) -> EepPackage:
    if root.getroottree().docinfo.doctype:
        raise _dtd_forbidden()
    namespaced = isinstance(root.tag, str) and root.tag.startswith("{")
    problems: list[FieldProblem] = []
    if xsd_path is not None:
        schema = _load_schema(xsd_path)
        target = root
        if not namespaced:
            if not allow_missing_namespace:
                problems.append(FieldProblem(
                    "/" + _local(root), "EEP_NAMESPACE",
                    f"第 {root.sourceline} 行：根元素缺少命名空间声明 xmlns=\"{EEP_NAMESPACE}\"，不符合 DA/T 48-2009",
                    _local(root), root.sourceline,
                ))
            target = copy.deepcopy(root)
            for el in target.iter():
                if isinstance(el.tag, str) and not el.tag.startswith("{"):
                    el.tag = f"{{{EEP_NAMESPACE}}}{el.tag}"
        problems += _schema_problems(schema, target)
    else:
        problems += _structure_problems(root)

    data_elements = [el for el in root.iter() if _local(el) == DATA_ELEMENT]
    if len(data_elements) != len(sinks):
        raise ValidationFailed(
            "无法定位封装包中的“编码数据”元素，请发送方检查封装包后重新生成", code="EEP_MALFORMED",
            message_en="编码数据 elements and decoded data do not line up",
        )
    sink_of = dict(zip(data_elements, sinks, strict=True))
    for el, sink in sink_of.items():
        if sink.error:
            problems.append(FieldProblem(
                "编码数据", "EEP_BAD_BASE64", f"第 {el.sourceline} 行 编码数据：{sink.error}，无法还原文件", "编码数据",
                el.sourceline,
            ))
    if problems:
        shown = problems[:_MAX_PROBLEMS]
        raise ValidationFailed(
            f"电子文件封装包不符合 DA/T 48-2009《基于XML的电子文件封装规范》，共 {len(problems)} 处问题，"
            "请发送方按提示修正后重新封装",
            code="EEP_INVALID", message_en="package does not conform to DA/T 48-2009", problems=shown,
            detail={"problem_count": len(problems)},
        )
    return _map(root, sink_of, namespaced)


def _map(root: Any, sink_of: dict[Any, _Base64Sink], namespaced: bool) -> EepPackage:
    pkg = EepPackage(namespaced=namespaced)
    signed = _child(root, "被签名对象")
    pkg.package_type = _text(_child(signed, "封装包类型"))
    pkg.created_at = _text(_child(signed, "封装包创建时间"))
    pkg.created_by = _text(_child(signed, "封装包创建单位"))
    content = _child(signed, "封装内容")
    if content is None:
        content = _find(signed, "修改封装内容", "修订内容")
    entity = _find(content, "文件实体块", "文件实体")
    sig_block = _child(root, "电子签名块")
    pkg.signatures_present = bool(_children(sig_block, "电子签名"))

    md: dict[str, Any] = {}
    problems = pkg.raw_problems
    pkg.sender_ref = _text(_child(entity, "电子文件号"))
    code_el = _child(entity, "档号")
    desc = _child(entity, "内容描述")
    form = _child(entity, "形式特征")

    def put(code: str, el: Any) -> None:
        v = _text(el)
        if v:
            md[code] = v

    put("title", _child(desc, "题名"))
    put("doc_number", _child(desc, "文件编号"))
    put("responsible", _child(desc, "责任者"))
    put("security_level", _child(desc, "密级"))
    put("secrecy_period", _child(desc, "保密期限"))
    put("doc_type", _child(desc, "文种"))
    put("urgency", _child(desc, "紧急程度"))
    put("main_recipient", _child(desc, "主送"))
    put("cc", _child(desc, "抄送"))
    put("draft_type", _child(form, "稿本"))

    date_raw = _text(_child(desc, "日期"))
    if date_raw:
        try:
            md["date"] = parse_date(date_raw).isoformat()
        except ValueError as e:
            problems.append(FieldProblem("date", "INVALID_DATE", str(e), "日期", date_raw))
    year_raw = _text(_child(code_el, "年度"))
    if year_raw:
        try:
            year = parse_int(year_raw)
            if not 1000 <= year <= 2999:
                raise ValueError(f"年度“{_show(year_raw)}”无效，应为四位年份，如 2024")
            md["year"] = year
        except ValueError as e:
            problems.append(FieldProblem("year", "INVALID_INTEGER", str(e), "年度", year_raw))
    ret_raw = _text(_child(code_el, "保管期限"))
    if ret_raw:
        ret = map_retention(ret_raw)
        md["retention_period"] = ret or ret_raw
        if ret is None:
            problems.append(FieldProblem(
                "retention_period", "UNKNOWN_RETENTION",
                f"保管期限“{_show(ret_raw)}”无法识别，应为 永久、定期30年 或 定期10年", "保管期限", ret_raw,
            ))
    pages_raw = _text(_child(form, "页数"))
    if pages_raw:
        try:
            md["pages"] = parse_int(pages_raw)
        except ValueError as e:
            problems.append(FieldProblem("pages", "INVALID_INTEGER", str(e), "页数", pages_raw))
    keywords: list[str] = []
    for el in _children(desc, "主题词"):
        keywords += [k for k in re.split(r"[;；、,，\s]+", _text(el)) if k]
    for el in _children(desc, "关键词"):
        keywords += [k for k in re.split(r"[;；、,，\s]+", _text(el)) if k]
    if keywords:
        md["keywords"] = list(dict.fromkeys(keywords))
    remarks = [t for t in (_text(el) for el in _children(entity, "附注")) if t]
    if remarks:
        md["remarks"] = "；".join(remarks)
    pkg.metadata = md
    pkg.department = _text(_child(code_el, "机构或问题"))
    pkg.fonds_code = _text(_child(code_el, "全宗号"))

    mapped = {"题名", "文件编号", "责任者", "密级", "保密期限", "文种", "紧急程度", "主送", "抄送", "稿本", "日期",
              "年度", "保管期限", "页数", "主题词", "关键词", "机构或问题", "全宗号"}
    for group in ("来源", "档号", "内容描述", "形式特征"):
        parent = _child(entity, group)
        for el in parent if parent is not None else ():
            name = _local(el)
            if name and name not in mapped and _text(el):
                pkg.extra.setdefault(name, _text(el))

    pkg.files = _files(root, entity, sink_of, problems)
    return pkg


def _files(root: Any, entity: Any, sink_of: dict[Any, _Base64Sink], problems: list[FieldProblem]
           ) -> list[EepFile]:
    by_id = {el.get("编码数据ID"): s for el, s in sink_of.items() if el.get("编码数据ID")}
    files: list[EepFile] = []
    used: set[int] = set()
    n = 0
    for doc in _children(_child(entity, "文件数据"), "文档"):
        doc_id = _text(_child(doc, "文档标识符"))
        role = _text(_child(doc, "文档主从声明"))
        for data in _children(doc, "文档数据"):
            for enc in _children(data, "编码"):
                n += 1
                props = _child(enc, "电子属性")
                el = _child(enc, DATA_ELEMENT)
                sink = sink_of.get(el) if el is not None else None
                if sink is None:
                    continue
                if sink.size == 0 and el.get("引用编码数据ID"):
                    ref = by_id.get(el.get("引用编码数据ID"))
                    if ref is None or ref is sink or ref.size == 0:
                        problems.append(FieldProblem(
                            "编码数据", "EEP_MISSING_DATA",
                            f"第 {el.sourceline} 行：编码数据为空，引用的“{el.get('引用编码数据ID')}”不在本封装包中",
                            "编码数据", el.get("引用编码数据ID"),
                        ))
                        continue
                    stream = tempfile.SpooledTemporaryFile(max_size=2 * 2**20)  # noqa: SIM115
                    ref.file.seek(0)
                    while chunk := ref.file.read(_CHUNK):
                        stream.write(chunk)
                    ref.file.seek(0)
                    stream.seek(0)
                    size, digest = ref.size, ref.sha.hexdigest()
                else:
                    stream, size, digest = sink.file, sink.size, sink.sha.hexdigest()
                    used.add(id(sink))
                ext = _text(_child(enc, "反编码关键字"))
                name = _safe_file_name(_text(_child(props, "计算机文件名")), ext, f"{doc_id or 'file'}-{n}")
                files.append(EepFile(
                    name=name, format=_text(_child(props, "格式信息")),
                    data_stream=stream,  # type: ignore[arg-type]
                    size=size, sha256=digest, role=role, document_id=doc_id,
                    declared_size=_text(_child(props, "计算机文件大小")), extension=ext,
                ))
    for s in sink_of.values():  # data outside 文件数据 (e.g. in 原封装包) is not returned
        if id(s) not in used:
            s.file.close()
    return files
