"""OFD (GB/T 33190-2016) recognition and validation, with its signatures and seals.

``validate_ofd`` walks the package the way a reader does: OFD.xml → DocBody/DocRoot →
Document.xml → CommonData (PageArea, PublicRes, DocumentRes, TemplatePage) → Pages →
resources, annotations, attachments and custom tags; then the signatures listed in
Signatures.xml (GB/T 33190 §18) with their seals (GM/T 0031 v1, GB/T 38540 v4), and
GM/T 0099 integrity protection (OFDEntries.xml) when present.

Paths (ST_Loc) resolve relative to the directory of the part that refers to them; a
leading "/" means the package root.  Producers get this wrong in a few recurring ways,
so a path that only resolves case-insensitively, against the document or package root,
or with backslashes is accepted with a warning that says which rule found it.

Safety: ZIP entries are inflated in chunks against a per-entry and a total budget, so a
ZIP bomb is refused without being inflated; unsafe entry names (``../``, absolute paths,
drive letters) are problems; XML is parsed with a parser that loads no DTD, expands no
entity and never touches the network, and a part that declares a DOCTYPE is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import posixpath
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lxml import etree

from dangan.formats import ses
from dangan.formats.results import SignatureCheck, Validation

OFD_NS = "http://www.ofdspec.org/2016"
_N = f"{{{OFD_NS}}}"

# Budgets (module constants so that a deployment, or a test, can tighten them).
MAX_ENTRIES = 20_000
MAX_ENTRY_BYTES = 512 * 1024 * 1024        # inflated size of one entry
MAX_TOTAL_BYTES = 2 * 1024 * 1024 * 1024   # inflated bytes read in one validation
MAX_XML_BYTES = 64 * 1024 * 1024           # an XML part is held in memory to be parsed
MAX_SIGNED_VALUE_BYTES = 16 * 1024 * 1024
MAX_LISTED = 8                             # names quoted in one message
_CHUNK = 256 * 1024
_CACHE_BYTES = 32 * 1024 * 1024            # parts kept in memory for re-use within one validation

_DIGESTS: dict[str, str] = {
    ses.SM3: "sm3", ses.SM3_PLAIN: "sm3", "SM3": "sm3",
    "1.3.14.3.2.26": "sha1", "SHA1": "sha1", "SHA-1": "sha1",
    "2.16.840.1.101.3.4.2.1": "sha256", "SHA256": "sha256", "SHA-256": "sha256",
}
_SIG_ALGS: dict[str, str] = {
    ses.SM2_WITH_SM3: "SM2/SM3", ses.SM2_SIGN: "SM2/SM3", "SM3WITHSM2": "SM2/SM3", "SM2": "SM2/SM3",
    "1.2.840.113549.1.1.11": "RSA/SHA-256", "1.2.840.113549.1.1.5": "RSA/SHA-1",
    "1.2.840.10045.4.3.2": "ECDSA/SHA-256",
}


class _Refused(Exception):
    """An entry or the whole package goes over a budget."""


# What reading one damaged entry can raise; the entry is reported and the validation goes on.
_READ_ERRORS = (_Refused, zipfile.BadZipFile, zlib.error, OSError, RuntimeError, EOFError, ValueError,
                NotImplementedError, struct.error)


def _xml_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
        huge_tree=False, remove_comments=False, recover=False,
    )


_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_DOCTYPE_16 = ("<!DOCTYPE".encode("utf-16-le"), "<!DOCTYPE".encode("utf-16-be"),
               "<!ENTITY".encode("utf-16-le"), "<!ENTITY".encode("utf-16-be"))


def _has_doctype(data: bytes) -> bool:
    return bool(_DOCTYPE.search(data)) or any(m in data for m in _DOCTYPE_16)


def _local(tag: Any) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _ns(tag: Any) -> str | None:
    return etree.QName(tag).namespace if isinstance(tag, str) else None


def _children(el: etree._Element, name: str) -> list[etree._Element]:
    return [c for c in el if isinstance(c.tag, str) and etree.QName(c.tag).namespace == OFD_NS
            and etree.QName(c.tag).localname == name]


def _child(el: etree._Element | None, name: str) -> etree._Element | None:
    if el is None:
        return None
    found = _children(el, name)
    return found[0] if found else None


def _text(el: etree._Element | None) -> str:
    return (el.text or "").strip() if el is not None else ""


def _quote(names: list[str]) -> str:
    shown = "、".join(names[:MAX_LISTED])
    return shown + (f" 等 {len(names)} 个" if len(names) > MAX_LISTED else "")


# --------------------------------------------------------------------------- recognition


def looks_like_ofd(names: list[str], read: Callable[[str], bytes]) -> bool:
    """Is this ZIP an OFD package: a root OFD.xml whose root element is ofd:OFD?

    ``names`` are the ZIP entry names, ``read(name)`` returns an entry's bytes; only OFD.xml is read.
    """
    candidates = [n for n in names if n.lower() == "ofd.xml"]
    if not candidates:
        return False
    name = "OFD.xml" if "OFD.xml" in candidates else candidates[0]
    try:
        data = read(name)
    except Exception:  # noqa: BLE001 - a reader that fails means "not recognisable", never an error
        return False
    if not data or len(data) > MAX_XML_BYTES or _has_doctype(data):
        return False
    try:
        root = etree.fromstring(data, _xml_parser())
    except (etree.XMLSyntaxError, ValueError):
        return False
    return _ns(root.tag) == OFD_NS and _local(root.tag) == "OFD"


# --------------------------------------------------------------------------- package access


@dataclass
class _Entry:
    name: str            # normalised name used inside the package
    info: zipfile.ZipInfo


class _Package:
    """A ZIP opened with budgets, safe names and the OFD path rules."""

    def __init__(self, zf: zipfile.ZipFile, result: Validation) -> None:
        self.zf = zf
        self.v = result
        self.files: dict[str, _Entry] = {}
        self.dirs: set[str] = set()
        self.lower: dict[str, list[str]] = {}
        self.used: set[str] = set()
        self.read_total = 0
        self.xml_cache: dict[str, etree._Element | None] = {}
        self.raw_cache: dict[str, bytes] = {}
        self.cached_bytes = 0
        self._index()

    # -- entries -------------------------------------------------------------
    def _index(self) -> None:
        infos = self.zf.infolist()
        if len(infos) > MAX_ENTRIES:
            self.v.problems.append(f"ZIP 条目过多（{len(infos)} 个，上限 {MAX_ENTRIES}），拒绝处理")
            raise _Refused
        declared_total = 0
        for info in infos:
            name = self._decode_name(info)
            if not self._safe_name(name):
                self.v.problems.append(f"ZIP 条目名不安全：{name!r}（含 ../、绝对路径或盘符），已忽略该条目")
                continue
            if info.flag_bits & 0x1:
                self.v.encrypted = True
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                self.v.nonpublic_compression = info.compress_type not in (zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
                self.v.problems.append(
                    f"ZIP 条目 {name} 使用了 OFD 不允许的压缩方法（{info.compress_type}），OFD 只允许存储或 Deflate")
            if name.endswith("/"):
                self.dirs.add(name.rstrip("/"))
                continue
            declared_total += info.file_size
            if name in self.files:
                self.v.problems.append(f"ZIP 中有重复的条目 {name}，不同阅读器可能读到不同内容")
                continue
            self.files[name] = _Entry(name, info)
            self.lower.setdefault(name.lower(), []).append(name)
            parent = posixpath.dirname(name)
            while parent:
                self.dirs.add(parent)
                parent = posixpath.dirname(parent)
        if declared_total > MAX_TOTAL_BYTES:
            self.v.warnings.append(
                f"ZIP 声明的解压总大小为 {declared_total} 字节，超过上限 {MAX_TOTAL_BYTES}，只读取需要检查的部件")

    def _decode_name(self, info: zipfile.ZipInfo) -> str:
        name = info.filename
        if not (info.flag_bits & 0x800) and not name.isascii():
            raw = name.encode("cp437", "replace")
            for enc in ("utf-8", "gb18030"):
                try:
                    fixed = raw.decode(enc)
                except UnicodeDecodeError:
                    continue
                if fixed != name:
                    self.v.warnings.append(
                        f"ZIP 条目名未标明 UTF-8，按 {enc.upper()} 解读为 {fixed}（非标准做法）")
                return fixed
        return name

    @staticmethod
    def _safe_name(name: str) -> bool:
        if not name or "\x00" in name or "\\" in name:
            return False
        if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
            return False
        return ".." not in name.split("/")

    def open_chunks(self, name: str) -> Iterator[bytes]:
        """Inflate an entry in chunks, within the per-entry and total budgets."""
        info = self._check_declared(name)
        got = 0
        with self.zf.open(info) as fh:
            while True:
                chunk = fh.read(_CHUNK)
                if not chunk:
                    break
                got += len(chunk)
                self.read_total += len(chunk)
                if got > MAX_ENTRY_BYTES or got > info.file_size:
                    raise _Refused(f"{name} 解压后超过声明大小或单个部件上限，拒绝继续解压（疑似 ZIP 炸弹）")
                if self.read_total > MAX_TOTAL_BYTES:
                    raise _Refused(f"解压总量超过上限 {MAX_TOTAL_BYTES} 字节，拒绝继续解压（疑似 ZIP 炸弹）")
                yield chunk

    def _check_declared(self, name: str) -> zipfile.ZipInfo:
        info = self.files[name].info
        if info.file_size > MAX_ENTRY_BYTES:
            raise _Refused(f"{name} 声明的解压大小为 {info.file_size} 字节，超过单个部件上限 {MAX_ENTRY_BYTES}，"
                           "拒绝解压（疑似 ZIP 炸弹）")
        if self.read_total + info.file_size > MAX_TOTAL_BYTES:
            raise _Refused(f"读取 {name} 会使解压总量超过上限 {MAX_TOTAL_BYTES} 字节，拒绝解压（疑似 ZIP 炸弹）")
        return info

    def read(self, name: str, limit: int) -> bytes:
        if name in self.raw_cache:
            return self.raw_cache[name]
        size = self._check_declared(name).file_size
        if size > limit:
            raise _Refused(f"{name} 大小为 {size} 字节，超过该类部件的上限 {limit}，拒绝读取")
        data = b"".join(self.open_chunks(name))
        if self.cached_bytes + len(data) <= _CACHE_BYTES:
            self.raw_cache[name] = data
            self.cached_bytes += len(data)
        return data

    def problem_reading(self, name: str, exc: BaseException) -> str:
        if isinstance(exc, _Refused) and exc.args:
            return str(exc.args[0])
        if isinstance(exc, (zipfile.BadZipFile, EOFError, zlib.error, struct.error)):
            return f"{name} 已损坏，解压或 CRC 校验失败（{exc}）"
        if isinstance(exc, RuntimeError) and "encrypted" in str(exc).lower():
            self.v.encrypted = True
            return f"{name} 已加密，无法读取"
        return f"{name} 无法读取：{exc}"

    # -- XML -----------------------------------------------------------------
    def xml(self, name: str, expect: str | None = None, soft: str = "") -> etree._Element | None:
        """Parse an XML part; failures are problems (warnings, with ``soft`` as the reason) and give None."""
        key = f"{name}\x00{expect}"
        if key in self.xml_cache:
            return self.xml_cache[key]
        root: etree._Element | None = None
        complaints: list[str] = []
        try:
            data = self.read(name, MAX_XML_BYTES)
        except _READ_ERRORS as exc:
            complaints.append(self.problem_reading(name, exc))
            data = None
        if data is None:
            pass
        elif _has_doctype(data):
            complaints.append(f"{name} 含有 DOCTYPE/实体声明，OFD 不允许；出于安全原因不予解析")
        else:
            try:
                root = etree.fromstring(data, _xml_parser())
            except (etree.XMLSyntaxError, ValueError) as exc:
                complaints.append(f"{name} 不是格式正确的 XML：{exc}")
        if root is not None and expect is not None and (_local(root.tag) != expect or _ns(root.tag) != OFD_NS):
            complaints.append(f"{name} 的根元素应为 {{{OFD_NS}}}{expect}，实际为 {root.tag}")
            root = None
        for c in complaints:
            if soft:
                self.v.warnings.append(f"{c}（{soft}）")
            else:
                self.v.problems.append(c)
        self.xml_cache[key] = root
        return root

    # -- paths ---------------------------------------------------------------
    @staticmethod
    def _join(base_dir: str, loc: str) -> str | None:
        parts: list[str] = []
        for seg in (base_dir + "/" + loc if base_dir else loc).split("/"):
            if seg in ("", "."):
                continue
            if seg == "..":
                if not parts:
                    return None
                parts.pop()
                continue
            parts.append(seg)
        return "/".join(parts)

    def _lookup(self, name: str | None, nocase: bool) -> str | None:
        if name is None:
            return None
        if name in self.files:
            return name
        if nocase:
            hits = self.lower.get(name.lower())
            if hits:
                return hits[0]
        return None

    def resolve(self, loc: str, base_dir: str, referrer: str, doc_dir: str = "",
                problem_if_missing: bool = True, mark_used: bool = True) -> str | None:
        """Resolve an ST_Loc; mark the part used; warn when only a non-standard rule finds it."""
        loc = (loc or "").strip()
        if not loc:
            if problem_if_missing:
                self.v.problems.append(f"{referrer} 中有空的路径引用")
            return None
        if "://" in loc or loc.startswith("//"):
            self.v.problems.append(f"{referrer} 引用了包外资源 {loc}（OFD 不允许外部引用）")
            return None
        standard = self._join("", loc[1:]) if loc.startswith("/") else self._join(base_dir, loc)
        found = self._lookup(standard, False)
        if found:
            if mark_used:
                self.used.add(found)
            return found
        rules: list[tuple[str | None, bool, str]] = [(standard, True, "只有忽略大小写才能找到")]
        alt = loc.replace("\\", "/")
        if alt != loc:
            std_alt = self._join("", alt[1:]) if alt.startswith("/") else self._join(base_dir, alt)
            rules += [(std_alt, False, "用了反斜杠作路径分隔符"), (std_alt, True, "用了反斜杠且大小写不符")]
        if not alt.startswith("/"):
            if doc_dir and doc_dir != base_dir:
                rules += [(self._join(doc_dir, alt), False, "只有相对文档根目录解析才能找到（规范要求相对引用它的文件所在目录）"),
                          (self._join(doc_dir, alt), True, "只有相对文档根目录并忽略大小写才能找到")]
            if base_dir:
                rules += [(self._join("", alt), False, "只有相对包根目录解析才能找到（规范要求相对引用它的文件所在目录）"),
                          (self._join("", alt), True, "只有相对包根目录并忽略大小写才能找到")]
        for candidate, nocase, why in rules:
            hit = self._lookup(candidate, nocase)
            if hit:
                self.v.warnings.append(f"{referrer} 引用的 {loc} {why}，实际文件为 {hit}")
                if mark_used:
                    self.used.add(hit)
                return hit
        if problem_if_missing:
            self.v.problems.append(f"{referrer} 引用的 {loc} 在包中不存在（按规范应为 {standard or loc}）")
        return None


# --------------------------------------------------------------------------- validation


@dataclass
class _Sig:
    """What one Signature.xml says, gathered before the cryptographic checks."""

    id: str
    type: str
    signature_xml: str
    signed_value: str | None = None
    seal_file: str | None = None
    references: list[tuple[str, str | None, bytes | None]] = field(default_factory=list)  # (FileRef, part, value)
    check_method: str = ""
    method: str = ""
    provider: str = ""
    date_time: str = ""


def validate_ofd(path: str) -> Validation:
    """Validate an OFD file; never raises. Problems and warnings are in Chinese."""
    v = Validation(status="invalid")
    try:
        _validate(path, v)
    except _Refused as exc:
        if exc.args:
            v.problems.append(str(exc.args[0]))
    except MemoryError:
        v.problems.append("校验时内存不足，文件可能经过恶意构造")
    except Exception as exc:  # noqa: BLE001 - the contract is "never raises"
        v.problems.append(f"校验时发生意外错误：{type(exc).__name__}: {exc}")
    v.status = "valid" if not v.problems else "invalid"
    return v


def _validate(path: str, v: Validation) -> None:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, struct.error) as exc:
        v.problems.append(f"不是可以打开的 ZIP 包（OFD 以 ZIP 封装）：{exc}")
        return
    with zf:
        pkg = _Package(zf, v)
        ofd_name = pkg._lookup("OFD.xml", True)
        if ofd_name is None:
            v.problems.append("包根目录下没有 OFD.xml，不是 OFD 文件")
            return
        if ofd_name != "OFD.xml":
            v.warnings.append(f"入口文件名为 {ofd_name}，规范为 OFD.xml")
        pkg.used.add(ofd_name)
        if any(n.lower() in ("encryptions.xml", "encrypt.xml") or n.lower().endswith("/encryptions.xml")
               for n in pkg.files):
            v.encrypted = True
            v.warnings.append("包中有加密描述文件（Encryptions.xml），部分内容已加密，加密部件无法检查")
        root = pkg.xml(ofd_name, None)
        if root is None:
            return
        if _local(root.tag) != "OFD" or _ns(root.tag) != OFD_NS:
            v.problems.append(f"{ofd_name} 的根元素应为 {{{OFD_NS}}}OFD，实际为 {root.tag}")
            return
        version = root.get("Version")
        doc_type = root.get("DocType")
        v.details["ofd_version"] = version
        v.details["doc_type"] = doc_type
        if doc_type not in (None, "OFD"):
            v.warnings.append(f"{ofd_name} 的 DocType 为 {doc_type}，不是 OFD")
        if not version:
            v.warnings.append(f"{ofd_name} 缺少 Version 属性")
        bodies = _children(root, "DocBody")
        if not bodies:
            v.problems.append(f"{ofd_name} 中没有 DocBody")
            return
        documents: list[dict[str, Any]] = []
        pages_total = 0
        sig_lists: list[tuple[str, str]] = []  # (Signatures.xml part, document dir)
        for i, body in enumerate(bodies):
            info = _child(body, "DocInfo")
            if i == 0:
                v.details.update(_docinfo(info))
            if info is None:
                v.warnings.append(f"{ofd_name} 的第 {i + 1} 个 DocBody 缺少 DocInfo")
            doc_root = _child(body, "DocRoot")
            if doc_root is None or not _text(doc_root):
                v.problems.append(f"{ofd_name} 的第 {i + 1} 个 DocBody 缺少 DocRoot")
                continue
            doc_part = pkg.resolve(_text(doc_root), "", f"{ofd_name}（DocRoot）")
            if doc_part is None:
                continue
            doc_dir = posixpath.dirname(doc_part)
            count = _check_document(pkg, doc_part)
            if count is not None:
                pages_total += count
            documents.append({"doc_root": doc_part, "pages": count})
            sigs = _child(body, "Signatures")
            if sigs is not None and _text(sigs):
                sig_part = pkg.resolve(_text(sigs), "", f"{ofd_name}（Signatures）", doc_dir)
                if sig_part:
                    sig_lists.append((sig_part, doc_dir))
        v.details["documents"] = documents
        v.page_count = pages_total if any(d["pages"] is not None for d in documents) else None
        infra: set[str] = set()
        parsed: list[_Sig] = []
        for sig_part, doc_dir in sig_lists:
            infra.add(sig_part)
            parsed += _read_signature_list(pkg, sig_part, doc_dir, infra)
        integrity_files = _integrity_files(pkg)
        infra |= integrity_files
        for sig in parsed:
            v.signatures.append(_check_signature(pkg, sig, infra))
        if integrity_files:
            v.signatures.append(_check_integrity(pkg, integrity_files))
        v.details["signature_count"] = len(v.signatures)
        for s in v.signatures:
            if s.digest_valid is False or s.signature_valid is False:
                v.problems.append(f"签名/签章（{s.signer or '签名者不明'}）验证失败：{s.message}")
            elif s.signature_valid is None or s.digest_valid is None:
                v.warnings.append(f"签名/签章（{s.signer or '签名者不明'}）未能完全验证：{s.message}")
            if s.covers_document is False and s.digest_valid is not False and s.signature_valid is not False:
                v.warnings.append(f"签名/签章（{s.signer or '签名者不明'}）未覆盖整个文档：{s.message}")
        unused = sorted(n for n in pkg.files if n not in pkg.used and n not in infra)
        if unused:
            v.warnings.append(f"包中有未被文档引用的文件：{_quote(unused)}")
            v.details["unreferenced_files"] = unused


def _docinfo(info: etree._Element | None) -> dict[str, Any]:
    out: dict[str, Any] = {"title": "", "author": "", "creation_date": "", "doc_id": ""}
    if info is None:
        return out
    for key, tag in (("title", "Title"), ("author", "Author"), ("creation_date", "CreationDate"),
                     ("doc_id", "DocID"), ("mod_date", "ModDate"), ("subject", "Subject"),
                     ("creator", "Creator"), ("creator_version", "CreatorVersion"), ("doc_usage", "DocUsage")):
        el = _child(info, tag)
        if el is not None:
            out[key] = _text(el)
    custom = _child(info, "CustomDatas")
    if custom is not None:
        out["custom_data"] = {c.get("Name", ""): _text(c) for c in _children(custom, "CustomData")}
    return out


def _check_document(pkg: _Package, doc_part: str) -> int | None:
    v = pkg.v
    doc = pkg.xml(doc_part, "Document")
    if doc is None:
        return None
    doc_dir = posixpath.dirname(doc_part)
    common = _child(doc, "CommonData")
    template_ids: set[str] = set()
    if common is None:
        v.problems.append(f"{doc_part} 缺少 CommonData")
    else:
        area = _child(common, "PageArea")
        if area is None:
            v.warnings.append(f"{doc_part} 的 CommonData 缺少 PageArea（规范要求的文档默认页面区域）")
        elif _child(area, "PhysicalBox") is None:
            stray = [c for c in area if _local(c.tag) == "PhysicalBox"]
            note = "（找到了不在 OFD 命名空间中的 PhysicalBox）" if stray else ""
            v.warnings.append(f"{doc_part} 的 PageArea 缺少 PhysicalBox{note}")
        for tag in ("PublicRes", "DocumentRes"):
            for res in _children(common, tag):
                part = pkg.resolve(_text(res), doc_dir, f"{doc_part}（{tag}）", doc_dir)
                if part:
                    _check_res(pkg, part, doc_dir)
        for tpl in _children(common, "TemplatePage"):
            template_ids.add(tpl.get("ID", ""))
            loc = tpl.get("BaseLoc", "")
            part = pkg.resolve(loc, doc_dir, f"{doc_part}（TemplatePage {tpl.get('ID', '')}）", doc_dir)
            if part:
                _check_page(pkg, part, doc_dir, "Page", None)
    pages_el = _child(doc, "Pages")
    pages = _children(pages_el, "Page") if pages_el is not None else []
    if pages_el is None or not pages:
        v.problems.append(f"{doc_part} 没有页面（缺少 Pages/Page）")
    for i, page in enumerate(pages):
        loc = page.get("BaseLoc", "")
        part = pkg.resolve(loc, doc_dir, f"{doc_part}（第 {i + 1} 页）", doc_dir)
        if part:
            _check_page(pkg, part, doc_dir, "Page", template_ids)
    for tag, fn in (("Annotations", _check_annotations), ("Attachments", _check_attachments),
                    ("CustomTags", _check_custom_tags)):
        el = _child(doc, tag)
        if el is not None and _text(el):
            part = pkg.resolve(_text(el), doc_dir, f"{doc_part}（{tag}）", doc_dir)
            if part:
                fn(pkg, part, doc_dir)
    ext = _child(doc, "Extensions")
    if ext is not None and _text(ext):
        part = pkg.resolve(_text(ext), doc_dir, f"{doc_part}（Extensions）", doc_dir)
        if part:
            pkg.xml(part, "Extensions")
    return len(pages)


def _check_page(pkg: _Package, part: str, doc_dir: str, expect: str, template_ids: set[str] | None) -> None:
    page = pkg.xml(part, expect)
    if page is None:
        return
    base = posixpath.dirname(part)
    if template_ids is not None:
        for tpl in _children(page, "Template"):
            tid = tpl.get("TemplateID", "")
            if tid not in template_ids:
                pkg.v.problems.append(f"{part} 引用的模板 {tid} 在 Document.xml 中没有定义")
    for res in _children(page, "PageRes"):
        res_part = pkg.resolve(_text(res), base, f"{part}（PageRes）", doc_dir)
        if res_part:
            _check_res(pkg, res_part, doc_dir)


def _check_res(pkg: _Package, part: str, doc_dir: str) -> None:
    res = pkg.xml(part, "Res")
    if res is None:
        return
    base = posixpath.dirname(part)
    base_loc = res.get("BaseLoc")
    if base_loc:
        joined = pkg._join("", base_loc.lstrip("/")) if base_loc.startswith("/") else pkg._join(base, base_loc)
        res_dir = joined if joined is not None else base
    else:
        res_dir = base
    for el in res.iter(_N + "MediaFile", _N + "FontFile"):
        owner = el.getparent()
        label = f"{part}（{_local(owner.tag) if owner is not None else ''} {owner.get('ID', '') if owner is not None else ''}）"
        pkg.resolve(_text(el), res_dir, label, doc_dir)


def _check_annotations(pkg: _Package, part: str, doc_dir: str) -> None:
    ann = pkg.xml(part, "Annotations")
    if ann is None:
        return
    base = posixpath.dirname(part)
    for page in _children(ann, "Page"):
        loc = _child(page, "FileLoc")
        if loc is not None:
            target = pkg.resolve(_text(loc), base, f"{part}（页面 {page.get('PageID', '')} 的注释）", doc_dir)
            if target:
                pkg.xml(target, "PageAnnot")


def _check_attachments(pkg: _Package, part: str, doc_dir: str) -> None:
    att = pkg.xml(part, "Attachments")
    if att is None:
        return
    base = posixpath.dirname(part)
    for a in _children(att, "Attachment"):
        loc = _child(a, "FileLoc")
        if loc is not None:
            pkg.resolve(_text(loc), base, f"{part}（附件 {a.get('Name', '') or a.get('ID', '')}）", doc_dir)


def _check_custom_tags(pkg: _Package, part: str, doc_dir: str) -> None:
    tags = pkg.xml(part, "CustomTags")
    if tags is None:
        return
    base = posixpath.dirname(part)
    for t in _children(tags, "CustomTag"):
        loc = _child(t, "FileLoc")
        if loc is not None:
            target = pkg.resolve(_text(loc), base, f"{part}（自定义标引 {t.get('TypeID', '')}）", doc_dir)
            if target and target.lower().endswith(".xml"):
                pkg.xml(target, None, soft="自定义标引是生成者自定义的数据，不影响版式内容")


# --------------------------------------------------------------------------- signatures


def _read_signature_list(pkg: _Package, sig_list: str, doc_dir: str, infra: set[str]) -> list[_Sig]:
    out: list[_Sig] = []
    root = pkg.xml(sig_list, "Signatures")
    if root is None:
        return out
    base = posixpath.dirname(sig_list)
    for entry in _children(root, "Signature"):
        sid = entry.get("ID", "")
        loc = entry.get("BaseLoc", "")
        part = pkg.resolve(loc, base, f"{sig_list}（签名 {sid}）", doc_dir)
        if part is None:
            continue
        infra.add(part)
        sig = _Sig(id=sid, type=entry.get("Type") or "Seal", signature_xml=part)
        out.append(sig)
        sx = pkg.xml(part, "Signature")
        if sx is None:
            continue
        sbase = posixpath.dirname(part)
        info = _child(sx, "SignedInfo")
        if info is None:
            pkg.v.problems.append(f"{part} 缺少 SignedInfo")
            continue
        provider = _child(info, "Provider")
        if provider is not None:
            sig.provider = provider.get("ProviderName") or _text(_child(provider, "ProviderName"))
        sig.method = _text(_child(info, "SignatureMethod"))
        sig.date_time = _text(_child(info, "SignatureDateTime"))
        refs = _child(info, "References")
        if refs is None:
            pkg.v.problems.append(f"{part} 的 SignedInfo 缺少 References")
        else:
            sig.check_method = refs.get("CheckMethod") or "MD5"  # the schema default is MD5
            for ref in _children(refs, "Reference"):
                file_ref = ref.get("FileRef", "")
                target = pkg.resolve(file_ref, sbase, f"{part}（签名保护的文件）", doc_dir,
                                     problem_if_missing=False, mark_used=False)
                raw = _text(_child(ref, "CheckValue"))
                try:
                    value = base64.b64decode(raw, validate=True) if raw else None
                except (binascii.Error, ValueError):
                    value = None
                sig.references.append((file_ref, target, value))
        seal = _child(info, "Seal")
        if seal is not None and _text(_child(seal, "BaseLoc")):
            sig.seal_file = pkg.resolve(_text(_child(seal, "BaseLoc")), sbase, f"{part}（Seal）", doc_dir)
            if sig.seal_file:
                infra.add(sig.seal_file)
        sv = _child(sx, "SignedValue")
        if sv is None or not _text(sv):
            pkg.v.problems.append(f"{part} 缺少 SignedValue")
        else:
            sig.signed_value = pkg.resolve(_text(sv), sbase, f"{part}（SignedValue）", doc_dir)
            if sig.signed_value:
                infra.add(sig.signed_value)
    return out


def _digest_of(pkg: _Package, part: str, method: str, key: bytes | None) -> bytes | None:
    """Digest a part in chunks; None when the method is unknown or needs a key we lack."""
    if method == ses.SM3_WITH_KEY:
        if key is None:
            return None
        return ses.sm3_with_z(key, pkg.open_chunks(part))
    name = _DIGESTS.get(method) or _DIGESTS.get(method.upper())
    if name is None:
        return None
    h = hashlib.new(name)
    for chunk in pkg.open_chunks(part):
        h.update(chunk)
    return h.digest()


def _algorithm_label(method: str) -> str:
    return _SIG_ALGS.get(method) or _SIG_ALGS.get(method.upper()) or method or "未声明"


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        text = value.strip().replace("Z", "").replace("T", " ")
        for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y%m%d%H%M%S", "%Y%m%d%H%M%S.%f"):
            try:
                return datetime.strptime(text, fmt).replace(tzinfo=UTC)
            except ValueError:
                continue
    return None


def _check_signature(pkg: _Package, sig: _Sig, infra: set[str]) -> SignatureCheck:
    check = SignatureCheck(kind="ofd", algorithm=_algorithm_label(sig.method))
    notes: list[str] = [f"{sig.signature_xml}（{'电子签章' if sig.type == 'Seal' else '数字签名'}"
                        + (f"，{sig.provider}" if sig.provider else "") + "）"]
    signed_value: bytes | None = None
    if sig.signed_value is None:
        notes.append("签名值文件缺失，无法验证")
    else:
        try:
            signed_value = pkg.read(sig.signed_value, MAX_SIGNED_VALUE_BYTES)
        except _READ_ERRORS as exc:
            notes.append(pkg.problem_reading(sig.signed_value, exc))
    signature_xml: bytes | None = None
    try:
        signature_xml = pkg.read(sig.signature_xml, MAX_XML_BYTES)
    except _READ_ERRORS as exc:
        notes.append(pkg.problem_reading(sig.signature_xml, exc))

    # Who signed, and with what key: from the SES structure or the SignedData.
    parsed_ses: ses.SesSignature | None = None
    sd: ses.SignedDataInfo | None = None
    signer_key: bytes | None = None
    signer_cert: ses.CertInfo | None = None
    kind_of_value = ""
    if signed_value is not None:
        try:
            parsed_ses = ses.parse_ses_signature(signed_value)
            kind_of_value = "ses"
        except ses.SesError:
            parsed_ses = None
        if parsed_ses is None:
            try:
                sd = ses.parse_signed_data(signed_value)
                kind_of_value = "cms"
            except ses.SesError:
                sd = None
            if sd is None and ses.looks_like_raw_sm2_signature(signed_value):
                kind_of_value = "raw"
        else:
            sd = None
        cert_der = parsed_ses.signer_cert if parsed_ses else (sd.signer_cert if sd else None)
        if cert_der:
            try:
                signer_cert = ses.load_certificate(cert_der)
                signer_key = signer_cert.public_key
                check.signer = signer_cert.subject_cn or signer_cert.subject
            except ses.SesError as exc:
                notes.append(f"签名者证书无法解析：{exc}")

    # 1. digests of the protected files
    mismatched: list[str] = []
    missing: list[str] = []
    unknown = False
    covered: set[str] = set()
    for file_ref, part, value in sig.references:
        if part is None:
            missing.append(file_ref)
            continue
        covered.add(part)
        if value is None:
            mismatched.append(f"{part}（CheckValue 不是有效的 Base64）")
            continue
        try:
            actual = _digest_of(pkg, part, sig.check_method, signer_key)
        except _READ_ERRORS as exc:
            mismatched.append(f"{part}（{pkg.problem_reading(part, exc)}）")
            continue
        if actual is None:
            unknown = True
            continue
        if actual != value:
            mismatched.append(part)
    if not sig.references:
        notes.append("签名没有保护任何文件（References 为空）")
    digest_ok: bool | None
    if mismatched or missing:
        digest_ok = False
        if mismatched:
            notes.append(f"文件杂凑值与签名时不一致（签名后被修改）：{_quote(mismatched)}")
        if missing:
            notes.append(f"签名保护的文件在包中不存在：{_quote(missing)}")
    elif unknown:
        digest_ok = None
        need_key = sig.check_method == ses.SM3_WITH_KEY
        notes.append("无法校验文件杂凑值：" + ("杂凑算法 1.2.156.10197.1.401.2（带 SM2 公钥预处理的 SM3）需要签名者公钥，但签名值中没有证书"
                                      if need_key else f"不支持的杂凑算法 {sig.check_method}"))
    elif sig.references:
        digest_ok = True
        notes.append(f"{len(sig.references)} 个文件的杂凑值（{sig.check_method}）一致")
    else:
        digest_ok = None

    # 2. coverage: every part of the package except the signature machinery itself
    uncovered = sorted(n for n in pkg.files if n not in covered and n not in infra)
    check.covers_document = not uncovered and bool(sig.references)
    if uncovered:
        notes.append(f"未受签名保护的文件：{_quote(uncovered)}")

    # 3. the signed value
    sig_ok: bool | None = None
    if signed_value is None:
        sig_ok = None
    elif kind_of_value == "ses" and parsed_ses is not None:
        sig_ok, dh_ok = _check_ses(pkg, sig, parsed_ses, signature_xml, signer_cert, notes)
        if dh_ok is False:
            digest_ok = False
        if sig.type != "Seal":
            notes.append(f"Signatures.xml 标明类型为 {sig.type}，但签名值是电子签章数据（SES_Signature）")
    elif kind_of_value == "cms" and sd is not None:
        sig_ok, dh_ok = _check_signed_data(sd, signature_xml, signer_cert, notes)
        if dh_ok is False:
            digest_ok = False
    elif kind_of_value == "raw":
        notes.append("签名值是裸 SM2 签名值（r, s），包内没有签名者证书或公钥，无法验证签名值；"
                     "需要从签名者处取得公钥/证书后另行验证")
    else:
        notes.append("签名值既不是 GM/T 0031/GB/T 38540 电子签章数据，也不是 SignedData，无法识别，无法验证")
        sig_ok = False if sig.type == "Seal" else None
    check.digest_valid = digest_ok
    check.signature_valid = sig_ok
    check.message = "；".join(notes)
    return check


def _check_ses(pkg: _Package, sig: _Sig, s: ses.SesSignature, signature_xml: bytes | None,
               cert: ses.CertInfo | None, notes: list[str]) -> tuple[bool | None, bool | None]:
    """Check an SES_Signature: dataHash over Signature.xml, propertyInfo, the SM2 signature, the seal."""
    label = "GB/T 38540（V4）" if s.version >= 4 else "GM/T 0031（V1）"
    notes.append(f"电子签章数据 {label}，印章“{s.seal.name}”")
    dh_ok: bool | None = None
    # dataHash: SM3 of the whole Signature.xml file (GB/T 38540 §7.2; also what ofdrw, GOMAIN, AntChain write)
    if signature_xml is not None:
        plain = hashlib.new("sm3", signature_xml).digest()
        keyed = ses.sm3_with_z(cert.public_key, [signature_xml]) if cert is not None and _is_sm2_key(cert) else None
        if s.data_hash == plain:
            dh_ok = True
            notes.append("dataHash 与 Signature.xml 的 SM3 一致")
        elif keyed is not None and s.data_hash == keyed:
            dh_ok = True
            notes.append("dataHash 与 Signature.xml 的 SM3（含 SM2 公钥预处理）一致")
        else:
            dh_ok = False
            notes.append(f"dataHash 与 {sig.signature_xml} 的杂凑值不一致（签章后 Signature.xml 被修改）")
    prop = s.property_info.strip()
    if prop and "/" in prop:
        normalized = prop.lstrip("/")
        if normalized != sig.signature_xml and normalized.lower() != sig.signature_xml.lower():
            notes.append(f"propertyInfo 指向 {prop}，与实际的签名描述文件 {sig.signature_xml} 不一致")
            pkg.v.warnings.append(f"{sig.signature_xml} 的签章数据 propertyInfo 为 {prop}，与文件位置不一致")
    if cert is None:
        notes.append("签章数据中没有可用的签名者证书，无法验证签名值")
        return None, dh_ok
    if s.algorithm not in (ses.SM2_WITH_SM3, ses.SM2_SIGN) or not _is_sm2_key(cert):
        notes.append(f"签名算法 {s.algorithm} 不是 SM2/SM3，本系统无法验证")
        return None, dh_ok
    ok: bool | None
    if ses.sm2_verify(cert.public_key, s.signature, s.tbs_der):
        ok = True
        notes.append("签名值（SM2，覆盖 TBS_Sign）有效")
    elif s.version < 4 and ses.sm2_verify_digest(cert.public_key, s.signature, s.data_hash):
        # iOFD writes V1 seals whose signature is computed over dataHash itself (used as the SM2 e value)
        # rather than over DER(TBS_Sign) as GM/T 0031 prescribes: it binds the signed file, not the seal fields.
        ok = True
        notes.append("签名值只对 dataHash 直接签名（非 GM/T 0031 规定的对 TBS_Sign 签名），签名值本身有效，"
                     "但印章、签章时间等字段不受签名保护")
        pkg.v.warnings.append(f"{sig.signature_xml} 的签名值不是对 TBS_Sign 计算的，印章与签章时间不受签名保护")
    else:
        ok = False
        notes.append("签名值（SM2）验证失败")
    # the seal itself, signed by the seal maker
    try:
        maker = ses.load_certificate(s.seal.maker_cert)
        if s.seal.maker_algorithm in (ses.SM2_WITH_SM3, ses.SM2_SIGN) and _is_sm2_key(maker):
            if ses.sm2_verify(maker.public_key, s.seal.maker_signature, s.seal.maker_signed_bytes):
                notes.append(f"印章制作者（{maker.subject_cn}）的签名有效")
            else:
                ok = False
                notes.append(f"印章制作者（{maker.subject_cn}）对印章的签名无效")
        else:
            notes.append(f"印章签名算法 {s.seal.maker_algorithm} 无法验证")
    except ses.SesError as exc:
        notes.append(f"印章制作者证书无法解析：{exc}")
    if sig.seal_file:
        try:
            esl = pkg.read(sig.seal_file, MAX_SIGNED_VALUE_BYTES)
        except _READ_ERRORS as exc:
            esl = None
            notes.append(pkg.problem_reading(sig.seal_file, exc))
        if esl is not None and esl != s.seal.raw:
            ok = False
            notes.append(f"印章文件 {sig.seal_file} 与签章数据中的印章不一致")
    # times: signing inside the seal's and the certificate's validity
    when = _when(s.time_info) or _when(sig.date_time)
    start, end = _when(s.seal.valid_start), _when(s.seal.valid_end)
    if when and start and end and not (start <= when <= end):
        notes.append(f"签章时间 {when:%Y-%m-%d} 不在印章有效期 {start:%Y-%m-%d} 至 {end:%Y-%m-%d} 内")
        pkg.v.warnings.append(f"{sig.signature_xml}：签章时间不在印章有效期内")
    if when and cert.not_before and cert.not_after and not (cert.not_before <= when <= cert.not_after):
        notes.append(f"签章时间 {when:%Y-%m-%d} 不在签名者证书有效期 {cert.not_before:%Y-%m-%d} 至 {cert.not_after:%Y-%m-%d} 内")
        pkg.v.warnings.append(f"{sig.signature_xml}：签章时间不在签名者证书有效期内")
    notes.append("未做证书链与吊销状态检查（需要可信根证书与 CRL/OCSP）")
    return ok, dh_ok


def _is_sm2_key(cert: ses.CertInfo) -> bool:
    return cert.key_algorithm in (ses.SM2_CURVE, "") and len(cert.public_key) == 65 and cert.public_key[0] == 4


def _check_signed_data(sd: ses.SignedDataInfo, data: bytes | None, cert: ses.CertInfo | None,
                       notes: list[str]) -> tuple[bool | None, bool | None]:
    """A GB/T 35275 / PKCS#7 SignedData over ``data`` (the Signature.xml or OFDEntries.xml bytes)."""
    notes.append("签名值为 SignedData（GB/T 35275/PKCS#7）")
    if cert is None:
        notes.append("SignedData 中没有签名者证书，无法验证签名值")
        return None, None
    if not _is_sm2_key(cert) or sd.signature_algorithm not in (ses.SM2_SIGN, ses.SM2_WITH_SM3):
        notes.append(f"签名算法 {sd.signature_algorithm} 不是 SM2，本系统无法验证")
        return None, None
    dh_ok: bool | None = None
    digest = hashlib.new("sm3", data).digest() if data is not None else None
    if sd.signed_attrs_der is not None:
        if sd.message_digest is not None and digest is not None:
            dh_ok = sd.message_digest == digest
            notes.append("签名属性中的杂凑值" + ("一致" if dh_ok else "与原文不一致"))
        signed = sd.signed_attrs_der
    elif sd.encapsulated is not None:
        if digest is not None:
            dh_ok = sd.encapsulated in (digest, data)
            notes.append("SignedData 封装的原文杂凑值" + ("一致" if dh_ok else "与原文不一致"))
        signed = sd.encapsulated
    else:
        if data is None:
            return None, None
        signed = data
    ok = ses.sm2_verify(cert.public_key, sd.signature, signed)
    notes.append("签名值（SM2）" + ("有效" if ok else "验证失败"))
    return ok, dh_ok


def _integrity_files(pkg: _Package) -> set[str]:
    name = pkg._lookup("OFDEntries.xml", True)
    if name is None:
        return set()
    files = {name}
    root = pkg.xml(name, "DocEntries")
    if root is not None:
        loc = _text(_child(root, "SignedValueLoc"))
        if loc:
            target = pkg.resolve(loc, "", f"{name}（SignedValueLoc）")
            if target:
                files.add(target)
    return files


def _check_integrity(pkg: _Package, files: set[str]) -> SignatureCheck:
    """GM/T 0099 integrity protection: a signature over OFDEntries.xml, which lists every file (anti-smuggling)."""
    check = SignatureCheck(kind="ofd", algorithm="SM2/SM3")
    entries = pkg._lookup("OFDEntries.xml", True) or "OFDEntries.xml"
    notes = [f"{entries}（GM/T 0099 完整性保护）"]
    root = pkg.xml(entries, "DocEntries")
    if root is None:
        check.message = notes[0] + "：无法解析"
        check.digest_valid = False
        return check
    listed: set[str] = set()
    missing: list[str] = []
    file_list = _child(root, "FileList")
    for f in _children(file_list, "File") if file_list is not None else []:
        target = pkg.resolve(f.get("FileLoc", ""), "", f"{entries}（文件清单）", problem_if_missing=False)
        if target is None:
            missing.append(f.get("FileLoc", ""))
        else:
            listed.add(target)
    extra = sorted(n for n in pkg.files if n not in listed and n not in files)
    digest_ok: bool | None = not missing and not extra
    if missing:
        notes.append(f"清单中的文件在包中不存在：{_quote(missing)}")
    if extra:
        notes.append(f"包中有清单之外的文件（夹带）：{_quote(extra)}")
    sv_part = next((n for n in files if n != entries), None)
    sig_ok: bool | None = None
    if sv_part is None:
        notes.append("缺少签名值文件（SignedValueLoc）")
        digest_ok = False
    else:
        try:
            data = pkg.read(entries, MAX_XML_BYTES)
            sd = ses.parse_signed_data(pkg.read(sv_part, MAX_SIGNED_VALUE_BYTES))
            cert = ses.load_certificate(sd.signer_cert) if sd.signer_cert else None
            if cert is not None:
                check.signer = cert.subject_cn or cert.subject
            sig_ok, dh_ok = _check_signed_data(sd, data, cert, notes)
            if dh_ok is False:
                digest_ok = False
        except ses.SesError as exc:
            notes.append(f"签名值无法解析：{exc}")
            sig_ok = False
        except _READ_ERRORS as exc:
            notes.append(pkg.problem_reading(sv_part, exc))
    notes.append("清单只列出文件名、不含各文件杂凑值：能发现增删文件，不能发现文件内容被修改")
    check.covers_document = False
    check.digest_valid = digest_ok
    check.signature_valid = sig_ok
    check.message = "；".join(notes)
    return check
