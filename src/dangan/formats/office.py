"""Office documents: OOXML / ODF / EPUB / plain ZIP packages and legacy OLE2 (compound file) documents.

ZIP packages: every entry's CRC is checked by reading it (streamed, bounded by the sizes the directory
declares), encrypted entries are reported, the main part must be present and well-formed XML under a safe
parser. OLE2: the compound-file header, FAT, directory and the chains of the streams are read here (the
layout is the public [MS-CFB] specification); that is enough to say that the file opens and which document
it holds, and to see password protection (an EncryptedPackage, Word's fEncrypted flag, Excel's FILEPASS).
"""

from __future__ import annotations

import posixpath
import re
import struct
import time
import zipfile
from dataclasses import dataclass, field

from dangan.formats.results import Identification, Validation
from dangan.formats.text import check_xml_bytes, safe_xml_parser

ZIP_TOTAL_LIMIT = 4 * 1024 * 1024 * 1024    # inflate at most this much for the CRC check
ZIP_ENTRY_LIMIT = 200_000                     # entries
PART_XML_LIMIT = 64 * 1024 * 1024             # parse XML parts up to this size
TIME_BUDGET_S = 60.0

# -- OLE2 compound files ----------------------------------------------------------------------------------------

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
FREESECT, ENDOFCHAIN, FATSECT, DIFSECT, MAXREGSECT = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFC, 0xFFFFFFFA


class OleError(Exception):
    """The compound file's structure is broken (the message is Chinese, for people)."""


@dataclass
class OleEntry:
    name: str
    kind: int            # 1 storage, 2 stream, 5 root
    start: int
    size: int


@dataclass
class OleFile:
    """The directory of an OLE2 compound file, read without loading the streams."""

    path: str
    size: int
    sector_size: int
    mini_sector_size: int
    mini_cutoff: int
    fat: list[int]
    minifat: list[int]
    entries: list[OleEntry]
    warnings: list[str] = field(default_factory=list)

    @property
    def names(self) -> set[str]:
        return {e.name for e in self.entries if e.kind in (1, 2)}

    def entry(self, name: str) -> OleEntry | None:
        for e in self.entries:
            if e.kind == 2 and e.name == name:
                return e
        return None

    def chain(self, start: int, table: list[int], limit: int) -> list[int]:
        out: list[int] = []
        seen: set[int] = set()
        s = start
        while s != ENDOFCHAIN:
            if s > MAXREGSECT or s >= len(table):
                raise OleError(f"扇区链指向不存在的扇区（{s:#x}）")
            if s in seen:
                raise OleError("扇区链出现循环")
            seen.add(s)
            out.append(s)
            if len(out) > limit:
                raise OleError("扇区链长度超出文件范围")
            s = table[s]
        return out

    def read_stream(self, e: OleEntry, max_bytes: int = 1 << 20) -> bytes:
        want = min(e.size, max_bytes)
        with open(self.path, "rb") as fh:
            if e.size < self.mini_cutoff and e.kind == 2:
                root = self.entries[0]
                mini_chain = self.chain(e.start, self.minifat, len(self.minifat) + 1) if e.size else []
                root_chain = self.chain(root.start, self.fat, len(self.fat) + 1)
                per = self.sector_size // self.mini_sector_size
                buf = bytearray()
                for ms in mini_chain:
                    big = ms // per
                    if big >= len(root_chain):
                        raise OleError("迷你流扇区超出根存储的范围")
                    fh.seek((root_chain[big] + 1) * self.sector_size + (ms % per) * self.mini_sector_size)
                    buf += fh.read(self.mini_sector_size)
                    if len(buf) >= want:
                        break
                return bytes(buf[:want])
            buf = bytearray()
            for s in self.chain(e.start, self.fat, self.size // self.sector_size + 1):
                fh.seek((s + 1) * self.sector_size)
                buf += fh.read(self.sector_size)
                if len(buf) >= want:
                    break
            if len(buf) < want:
                raise OleError(f"流“{e.name}”的数据不完整（文件被截断）")
            return bytes(buf[:want])


def read_ole(path: str) -> OleFile:
    """Parse an OLE2 compound file's header, FAT, mini FAT and directory; raise OleError when broken."""
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(0)
        hdr = fh.read(512)
        if len(hdr) < 512 or not hdr.startswith(OLE_MAGIC):
            raise OleError("不是 OLE2 复合文档（文件头签名不符或不足 512 字节）")
        major, byte_order, shift, mini_shift = struct.unpack_from("<HHHH", hdr, 0x1A)
        if byte_order != 0xFFFE:
            raise OleError("复合文档的字节序标记无效")
        if (major, shift) not in ((3, 9), (4, 12)):
            raise OleError(f"复合文档版本与扇区大小不符（版本 {major}，扇区位移 {shift}）")
        ssz = 1 << shift
        n_fat, first_dir = struct.unpack_from("<II", hdr, 0x2C)
        mini_cutoff, first_minifat, n_minifat, first_difat, n_difat = struct.unpack_from("<IIIII", hdr, 0x38)
        n_sectors = max(0, (size - ssz) // ssz) if size > ssz else 0
        if n_fat > n_sectors + 1:
            raise OleError("FAT 扇区数超出文件大小，文件可能被截断")
        difat = list(struct.unpack_from("<109I", hdr, 0x4C))
        d = first_difat
        seen: set[int] = set()
        while d not in (ENDOFCHAIN, FREESECT) and len(seen) <= n_difat:
            if d > MAXREGSECT or d >= n_sectors or d in seen:
                raise OleError("DIFAT 扇区链损坏")
            seen.add(d)
            fh.seek((d + 1) * ssz)
            sec = fh.read(ssz)
            if len(sec) < ssz:
                raise OleError("DIFAT 扇区超出文件末尾，文件被截断")
            vals = struct.unpack(f"<{ssz // 4}I", sec)
            difat.extend(vals[:-1])
            d = vals[-1]
        fat_sectors = [s for s in difat if s <= MAXREGSECT][:n_fat]
        if len(fat_sectors) < n_fat:
            raise OleError("FAT 扇区表不完整")
        fat: list[int] = []
        for s in fat_sectors:
            if s >= n_sectors:
                raise OleError("FAT 扇区位于文件末尾之后，文件被截断")
            fh.seek((s + 1) * ssz)
            sec = fh.read(ssz)
            if len(sec) < ssz:
                raise OleError("FAT 扇区不完整，文件被截断")
            fat.extend(struct.unpack(f"<{ssz // 4}I", sec))
    ole = OleFile(path, size, ssz, 1 << mini_shift, mini_cutoff or 4096, fat, [], [])
    # directory
    raw = bytearray()
    with open(path, "rb") as fh:
        for s in ole.chain(first_dir, fat, n_sectors + 1):
            if s >= n_sectors:
                raise OleError("目录扇区位于文件末尾之后，文件被截断")
            fh.seek((s + 1) * ssz)
            raw += fh.read(ssz)
        for i in range(0, len(raw) - 127, 128):
            ent = raw[i:i + 128]
            nlen = struct.unpack_from("<H", ent, 0x40)[0]
            kind = ent[0x42]
            start = struct.unpack_from("<I", ent, 0x74)[0]
            sz = struct.unpack_from("<Q", ent, 0x78)[0]
            if major == 3:
                sz &= 0xFFFFFFFF
            name = bytes(ent[:max(0, min(nlen, 64) - 2)]).decode("utf-16-le", "replace")
            ole.entries.append(OleEntry(name, kind, start, sz))
        if not ole.entries or ole.entries[0].kind != 5:
            raise OleError("复合文档缺少根目录项")
        if n_minifat and first_minifat <= MAXREGSECT:
            mraw = bytearray()
            for s in ole.chain(first_minifat, fat, n_sectors + 1):
                fh.seek((s + 1) * ssz)
                mraw += fh.read(ssz)
            ole.minifat = list(struct.unpack(f"<{len(mraw) // 4}I", bytes(mraw[:len(mraw) // 4 * 4])))
    return ole


def ole_kind(ole: OleFile) -> str:
    """What the compound file holds: encrypted_ooxml | doc | xls | xls5 | ppt | msg | ole."""
    names = ole.names
    if "EncryptedPackage" in names:
        return "encrypted_ooxml"
    if "WordDocument" in names:
        return "doc"
    if "Workbook" in names:
        return "xls"
    if "Book" in names:
        return "xls5"
    if "PowerPoint Document" in names:
        return "ppt"
    if "__properties_version1.0" in names or any(n.startswith("__substg1.0_") for n in names):
        return "msg"
    return "ole"


def word_fib(ole: OleFile) -> tuple[int, bool] | None:
    """(nFib, fEncrypted) of a Word binary document, from the start of its WordDocument stream."""
    e = ole.entry("WordDocument")
    if e is None:
        return None
    fib = ole.read_stream(e, 32)
    if len(fib) < 12 or fib[:2] != b"\xec\xa5":
        raise OleError("WordDocument 流的文件信息块（FIB）无效")
    nfib = struct.unpack_from("<H", fib, 2)[0]
    flags = struct.unpack_from("<H", fib, 0x0A)[0]
    return nfib, bool(flags & 0x0100)


def excel_filepass(ole: OleFile) -> bool | None:
    """True if the workbook's globals carry a FILEPASS record (password to open)."""
    e = ole.entry("Workbook") or ole.entry("Book")
    if e is None:
        return None
    data = ole.read_stream(e, 256 * 1024)
    pos = 0
    for _ in range(4096):
        if pos + 4 > len(data):
            break
        rtype, rlen = struct.unpack_from("<HH", data, pos)
        if pos == 0 and rtype not in (0x0809, 0x0209, 0x0409, 0x0009):
            raise OleError("工作簿流不以 BOF 记录开始")
        if rtype == 0x002F:
            return True
        if rtype in (0x0085, 0x000A) and pos:  # BOUNDSHEET or EOF: past where FILEPASS would be
            break
        pos += 4 + rlen
    return False


def validate_ole(path: str, ident: Identification | None = None) -> Validation:
    v = Validation(status="valid")
    try:
        ole = read_ole(path)
    except OleError as e:
        return Validation(status="invalid", problems=[f"OLE2 复合文档结构损坏：{e}"])
    except OSError as e:
        return Validation(status="invalid", problems=[f"无法读取文件：{e.strerror or e}"])
    kind = ole_kind(ole)
    v.details["ole_kind"] = kind
    v.details["streams"] = len([e for e in ole.entries if e.kind == 2])
    try:
        # every large stream's chain must be whole and inside the file
        owner: dict[int, str] = {}
        limit = ole.size // ole.sector_size + 1
        for e in ole.entries:
            if e.kind == 5 or (e.kind == 2 and e.size >= ole.mini_cutoff):
                if e.kind == 5 and e.size == 0:
                    continue
                ch = ole.chain(e.start, ole.fat, limit)
                need = -(-e.size // ole.sector_size)
                if len(ch) < need:
                    raise OleError(f"流“{e.name}”的扇区链比其声明的大小短")
                if ch and (max(ch) + 2) * ole.sector_size > ole.size + ole.sector_size:
                    raise OleError(f"流“{e.name}”的数据超出文件末尾，文件被截断")
                for s in ch:
                    if s in owner:
                        v.warnings.append(f"流“{e.name}”与“{owner[s]}”共用扇区（交叉链接）")
                        break
                    owner[s] = e.name
        if kind == "encrypted_ooxml":
            v.encrypted = True
            v.status = "invalid"
            v.problems.append("文件已加密：这是受口令保护的 Office 文档（内容在 EncryptedPackage 中加密保存），"
                              "没有口令无法打开，加密文件不符合归档要求")
        elif kind == "doc":
            nfib, enc = word_fib(ole) or (0, False)
            v.details["nFib"] = nfib
            if "1Table" not in ole.names and "0Table" not in ole.names and nfib >= 0x00C1:
                raise OleError("Word 文档缺少表流（0Table/1Table）")
            if enc:
                v.encrypted = True
                v.status = "invalid"
                v.problems.append("Word 文档已加密（设置了打开口令），加密文件不符合归档要求")
            else:
                ole.read_stream(ole.entry("WordDocument"), 1 << 20)  # type: ignore[arg-type]
        elif kind in ("xls", "xls5"):
            if excel_filepass(ole):
                v.encrypted = True
                v.status = "invalid"
                v.problems.append("Excel 工作簿已加密（设置了打开口令），加密文件不符合归档要求")
        elif kind == "ppt":
            if "EncryptedSummary" in ole.names:
                v.encrypted = True
                v.status = "invalid"
                v.problems.append("PowerPoint 演示文稿已加密，加密文件不符合归档要求")
        elif kind == "ole":
            v.warnings.append("无法判断复合文档所含的具体文档类型，只检查了容器结构")
    except OleError as e:
        return Validation(status="invalid", problems=[f"OLE2 复合文档结构损坏：{e}"], details=v.details)
    if not v.encrypted:
        v.warnings.append("只检查了复合文档的容器结构和主数据流，未逐条解析文档内容")
    return v


# -- ZIP packages ------------------------------------------------------------------------------------------------

_CT_MAIN = re.compile(rb'PartName="([^"]+)"\s+ContentType="[^"]*\.main\+xml"|'
                      rb'ContentType="[^"]*\.main\+xml"\s+PartName="([^"]+)"')
_ODF_VERSION = re.compile(rb'(?:manifest|office):version="([0-9.]+)"')
_REL_OFFICE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"
_REL_OFFICE_STRICT = "http://purl.oclc.org/ooxml/officeDocument/relationships/officeDocument"
_NONPUBLIC_METHODS = {9: "Deflate64", 12: "BZIP2", 14: "LZMA", 93: "Zstandard", 95: "XZ", 97: "WavPack", 98: "PPMd"}


def zip_part_target(base_dir: str, target: str) -> str:
    if target.startswith("/"):
        return target[1:]
    return posixpath.normpath(posixpath.join(base_dir, target))


def _read_limited(zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise ValueError(f"部件“{name}”过大（{info.file_size} 字节）")
    with zf.open(info) as fh:
        return fh.read(limit + 1)[:limit]


def validate_zip(path: str, ident: Identification | None = None) -> Validation:
    """A ZIP package (OOXML, ODF, EPUB or plain ZIP): CRCs, encryption, main part, XML well-formedness."""
    v = Validation(status="valid")
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        return Validation(status="invalid", problems=[f"ZIP 结构损坏，无法读取中央目录：{e}"])
    except OSError as e:
        return Validation(status="invalid", problems=[f"无法读取文件：{e.strerror or e}"])
    with zf:
        infos = zf.infolist()
        v.details["entries"] = len(infos)
        if len(infos) > ZIP_ENTRY_LIMIT:
            v.status = "unchecked"
            v.warnings.append(f"压缩包条目过多（{len(infos)} 条），未逐条检查")
            return v
        encrypted = [i.filename for i in infos if i.flag_bits & 0x1]
        if encrypted:
            v.encrypted = True
            v.status = "invalid"
            v.problems.append(f"压缩包中有 {len(encrypted)} 个加密条目（如“{encrypted[0]}”），没有口令无法读取，"
                              "加密文件不符合归档要求")
        odd = sorted({_NONPUBLIC_METHODS.get(i.compress_type, str(i.compress_type)) for i in infos
                      if i.compress_type not in (0, 8) and not i.flag_bits & 0x1})
        if odd:
            v.nonpublic_compression = True
            v.warnings.append(f"使用了非常用的压缩方法（{'、'.join(odd)}），部分软件无法解压")
        total = sum(i.file_size for i in infos)
        deadline = time.monotonic() + TIME_BUDGET_S
        if total > ZIP_TOTAL_LIMIT:
            v.warnings.append(f"解压后总大小 {total // (1024 * 1024)} MB 超过上限，未逐条校验 CRC")
        else:
            for info in infos:
                if info.flag_bits & 0x1 or info.is_dir():
                    continue
                if time.monotonic() > deadline:
                    v.warnings.append("校验超时，未检查全部条目的 CRC")
                    break
                try:
                    with zf.open(info) as fh:
                        while fh.read(1 << 20):
                            pass
                except zipfile.BadZipFile as e:
                    v.status = "invalid"
                    msg = str(e)
                    reason = "CRC 校验失败，数据已损坏" if "CRC" in msg else f"无法解压（{msg}）"
                    v.problems.append(f"条目“{info.filename}”{reason}")
                except NotImplementedError:
                    v.warnings.append(f"条目“{info.filename}”的压缩方法无法解压，未校验")
                except (OSError, EOFError, ValueError) as e:
                    v.status = "invalid"
                    v.problems.append(f"条目“{info.filename}”无法解压：{e}")
                    if len(v.problems) > 20:
                        break
        kind = _package_kind(ident, zf)
        v.details["package"] = kind
        if v.encrypted:
            return v
        try:
            if kind == "ooxml":
                _check_ooxml(zf, v)
            elif kind == "odf":
                _check_odf(zf, v)
            elif kind == "epub":
                _check_epub(zf, v)
        except (KeyError, ValueError, zipfile.BadZipFile, OSError, EOFError) as e:
            v.status = "invalid"
            v.problems.append(f"无法读取包内部件：{e}")
    if v.problems:
        v.status = "invalid"
    return v


def _package_kind(ident: Identification | None, zf: zipfile.ZipFile) -> str:
    names = set(zf.namelist())
    if "[Content_Types].xml" in names:
        return "ooxml"
    if "mimetype" in names:
        try:
            mt = _read_limited(zf, "mimetype", 200).strip()
        except (ValueError, KeyError, zipfile.BadZipFile, OSError):
            mt = b""
        if mt == b"application/epub+zip":
            return "epub"
        if mt.startswith(b"application/vnd.oasis.opendocument"):
            return "odf"
    if ident is not None and "openxmlformats" in ident.mime:
        return "ooxml"
    return "zip"


def _xml_part(zf: zipfile.ZipFile, name: str, v: Validation, what: str) -> bytes | None:
    if name not in zf.NameToInfo:
        v.problems.append(f"缺少{what}“{name}”")
        return None
    try:
        data = _read_limited(zf, name, PART_XML_LIMIT)
    except ValueError as e:
        v.warnings.append(f"{e}，未解析")
        return None
    reason = check_xml_bytes(data, f"{what}“{name}”")
    if reason:
        v.problems.append(reason)
        return None
    return data


def _check_ooxml(zf: zipfile.ZipFile, v: Validation) -> None:
    from lxml import etree

    if _xml_part(zf, "[Content_Types].xml", v, "内容类型部件") is None:
        return
    rels = _xml_part(zf, "_rels/.rels", v, "包关系部件")
    if rels is None:
        return
    main = None
    for rel in etree.fromstring(rels, safe_xml_parser()):
        if rel.get("Type") in (_REL_OFFICE, _REL_OFFICE_STRICT):
            main = zip_part_target("", rel.get("Target", ""))
    if not main:
        v.problems.append("包关系中没有指向主文档部件的关系（officeDocument）")
        return
    v.details["main_part"] = main
    if _xml_part(zf, main, v, "主文档部件") is None:
        return
    names = set(zf.namelist())
    if any(n.lower().endswith("vbaproject.bin") for n in names):
        v.warnings.append("文档包含宏（vbaProject.bin）")
    # every internal relationship target must exist; every XML part must be well-formed
    checked = 0
    for n in sorted(names):
        if n.endswith(".rels"):
            data = _xml_part(zf, n, v, "关系部件")
            if data is None:
                continue
            base = posixpath.dirname(posixpath.dirname(n))
            for rel in etree.fromstring(data, safe_xml_parser()):
                if rel.get("TargetMode") == "External":
                    continue
                t = zip_part_target(base, rel.get("Target", ""))
                if t and t not in names and not t.endswith("/"):
                    v.problems.append(f"关系部件“{n}”引用的部件“{t}”不存在")
        elif n.endswith(".xml") and n != main and checked < 2000:
            checked += 1
            _xml_part(zf, n, v, "部件")
        if len(v.problems) > 20:
            return
    if main.startswith("ppt/"):
        _check_pptx_placeholders(zf, v)


_PH = re.compile(rb"<p:ph\b([^>]*)/?>")
_ATTR = re.compile(rb'(\w+)="([^"]*)"')
_PH_NAMES = {"dt": "日期", "ftr": "页脚", "sldNum": "幻灯片编号", "title": "标题", "ctrTitle": "标题",
             "body": "正文", "subTitle": "副标题", "obj": "内容"}


def _placeholders(data: bytes) -> list[tuple[str, str | None]]:
    out = []
    for m in _PH.finditer(data):
        attrs = {k.decode(): val.decode() for k, val in _ATTR.findall(m.group(1))}
        out.append((attrs.get("type", "obj"), attrs.get("idx")))
    return out


def _rel_target(zf: zipfile.ZipFile, part: str, kind: str) -> str | None:
    rels = posixpath.join(posixpath.dirname(part), "_rels", posixpath.basename(part) + ".rels")
    if rels not in zf.NameToInfo:
        return None
    data = _read_limited(zf, rels, PART_XML_LIMIT)
    for m in re.finditer(rb"<Relationship\b[^>]*>", data):
        attrs = {k.decode(): val.decode() for k, val in _ATTR.findall(m.group(0))}
        if attrs.get("Type", "").endswith("/" + kind):
            return zip_part_target(posixpath.dirname(part), attrs.get("Target", ""))
    return None


def _master_type(t: str) -> str:
    if t in ("title", "ctrTitle"):
        return "title"
    if t in ("dt", "ftr", "sldNum"):
        return t
    return "body"


def _check_pptx_placeholders(zf: zipfile.ZipFile, v: Validation) -> None:
    """A slide's placeholder inherits from its layout and the layout's from the master: the chain must hold."""
    slides = sorted((n for n in zf.namelist() if re.fullmatch(r"ppt/slides/slide\d+\.xml", n)),
                    key=lambda n: int(re.findall(r"\d+", n)[-1]))
    for slide in slides[:2000]:
        layout = _rel_target(zf, slide, "slideLayout")
        if layout is None or layout not in zf.NameToInfo:
            continue
        master = _rel_target(zf, layout, "slideMaster")
        lph = _placeholders(_read_limited(zf, layout, PART_XML_LIMIT))
        mph = {_master_type(t) for t, _ in _placeholders(_read_limited(zf, master, PART_XML_LIMIT))} \
            if master and master in zf.NameToInfo else None
        num = re.findall(r"\d+", slide)[-1]
        for t, idx in _placeholders(_read_limited(zf, slide, PART_XML_LIMIT)):
            match = next((lp for lp in lph if idx is not None and lp[1] == idx), None) or \
                next((lp for lp in lph if lp[0] == t and idx is None), None)
            if match is None:
                continue
            if mph is not None and _master_type(match[0]) not in mph:
                what = _PH_NAMES.get(match[0], match[0])
                v.problems.append(f"幻灯片 {num} 的{what}占位符（idx={idx or '-'}）在版式“{posixpath.basename(layout)}”"
                                  f"中有定义，但母版“{posixpath.basename(master or '')}”中没有对应的{what}占位符："
                                  "占位符继承链断裂，部分软件无法打开此幻灯片")


def _check_odf(zf: zipfile.ZipFile, v: Validation) -> None:
    first = zf.infolist()[0]
    if first.filename != "mimetype":
        v.warnings.append("mimetype 不是包中的第一个条目（ODF 规范要求如此）")
    elif first.compress_type != 0:
        v.warnings.append("mimetype 条目被压缩了（ODF 规范要求不压缩存储）")
    _xml_part(zf, "META-INF/manifest.xml", v, "清单部件")
    _xml_part(zf, "content.xml", v, "内容部件")
    if "styles.xml" in zf.NameToInfo:
        _xml_part(zf, "styles.xml", v, "样式部件")
    if "meta.xml" in zf.NameToInfo:
        _xml_part(zf, "meta.xml", v, "元数据部件")


def _check_epub(zf: zipfile.ZipFile, v: Validation) -> None:
    data = _xml_part(zf, "META-INF/container.xml", v, "容器部件")
    if data is None:
        return
    m = re.search(rb'full-path="([^"]+)"', data)
    if not m:
        v.problems.append("META-INF/container.xml 没有指明包文档（rootfile）")
        return
    _xml_part(zf, m.group(1).decode("utf-8", "replace"), v, "包文档")


def zip_names(path: str) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


def open_zip_reader(path: str) -> tuple[zipfile.ZipFile, list[str]]:
    zf = zipfile.ZipFile(path)
    return zf, zf.namelist()


def read_member(zf: zipfile.ZipFile, name: str, limit: int = 1 << 20) -> bytes:
    info = zf.getinfo(name)
    with zf.open(info) as fh:
        return fh.read(limit)


