"""DA/T 48-2009 electronic record encapsulation packages (EEP, 电子文件封装包): writing one per 件, signing with
SM2, and verifying the signatures of a package.

Layout. Root 电子文件封装包 in http://www.saac.gov.cn/standards/ERM/encapsulation, children in the order the
XSD requires (封装包格式描述, 版本, 被签名对象 [eep版本=2009: 封装包类型 原始型, 封装包类型描述, 封装包创建时间,
封装包创建单位, 封装内容 → 文件实体块, 业务实体块, 机构人员实体块], then 电子签名块 + 锁定签名 when signed —
the XSD allows the two only together). Each content file is one 文档 / 文档数据 / 编码 with 电子属性 (格式信息,
计算机文件名, 计算机文件大小) and 编码数据 in Base64 (76-character lines, RFC 2045), read and encoded in
chunks: memory does not grow with the size of a file. `capture.eep.parse_eep` reads the package back.

Metadata (dangan field code → DA/T 46 element): 档号 carries the whole archival code as its leading text
(the XSD makes 档号 mixed content) followed by 全宗号 (fonds_code), 目录号 (catalogue_no), 年度 (year, else the
year of date), 保管期限 (retention_period written as 永久 / 定期30年 …), 机构或问题 (department, department_code or the record's department), 类别号
(class_code), 室编案卷号 (volume_no), 室编件号 (seq, else item_no, else the trailing number of the 档号), 页号
(page_no); 内容描述: 题名, 并列题名 (parallel_title), 副题名 (subtitle), 说明题名文字 (title_note), 主题词
(keywords, one element each), 人名 (persons), 摘要 (abstract), 分类号 (classification), 文件编号 (doc_number),
责任者 (responsible), 日期 (date as YYYYMMDD), 文种 (doc_type), 紧急程度 (urgency), 主送 (main_recipient), 抄送
(cc), 密级 (security_level), 保密期限 (secrecy_period); 形式特征: 文件组合类型 (单件 for one file, else 组合文件),
页数 (pages), 语种 (language), 稿本 (draft_type); 存储位置: 当前位置 (current_location), 脱机载体编号
(offline_carrier_no, empty when the record has none — the element is mandatory), 脱机载体存址, 缩微号
(microfilm_no); 权限管理: 知识产权说明 (ip_statement), 控制标识 (control_mark); 附注 (remarks). Metadata
without a DA/T 46 element is listed in the result's `unmapped_fields`. 电子文件号 is metadata
electronic_file_no, else the record's ref. The 业务实体 records the encapsulation itself (业务行为 封装), the
机构人员实体 the encapsulating unit.

What is signed (签名规则 says the same in Chinese). The message M is the Exclusive XML Canonicalization 1.0
(without comments, http://www.w3.org/2001/10/xml-exc-c14n#) of the 被签名对象 element, i.e. the element with
xmlns="…/encapsulation" on its start tag and everything inside it exactly as in the file (whitespace
included); 签名结果 is the DER SM2 signature of SM3(Z ‖ M) with user id 1234567812345678 (see `sm2`). The
writer emits 被签名对象 already in canonical form, so it hashes while writing, in one pass. The 锁定签名 signs
the canonical form of the 电子签名 it names (被锁定签名标识符) the same way, so that the signature block cannot
be swapped. 证书 is not an X.509 certificate (dangan has no CA): it holds the DER SubjectPublicKeyInfo of the
signer's SM2 public key (id-ecPublicKey, curve 1.2.156.10197.1.301), as `openssl pkey -pubout -outform DER`
writes it; a verifier that trusts a key compares it (or its SM3 fingerprint) with a key it knows.
签名算法标识 is "SM2/SM3（1.2.156.10197.1.501）".

Verification (`verify_eep_signatures`) reads the file twice with expat, in chunks: once for the signature
blocks, once to canonicalize 被签名对象 into one SM3 hash per signing key; neither pass holds the Base64 data.
A DOCTYPE or entity declaration is refused (ValidationFailed EEP_DTD_FORBIDDEN). 证书 may also be an X.509
certificate with an SM2 key, and 签名结果 raw r‖s (64 bytes), as some other systems write them.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import io
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO
from xml.parsers import expat

from dangan import __version__
from dangan.capture.eep import EEP_NAMESPACE
from dangan.checks.model import FileUnderCheck, RecordUnderCheck
from dangan.domain.retention import parse_retention
from dangan.errors import ConfigError, FieldProblem, ValidationFailed
from dangan.formats.results import SignatureCheck
from dangan.packages.sm2 import SM2_SM3_OID, Sm2Signer, Sm2Verifier, decode_signature, encode_signature
from dangan.storage.hashing import DualDigest

__all__ = ["C14N_ALGORITHM", "SIGNATURE_ALGORITHM", "verify_eep_signatures", "write_eep"]

C14N_ALGORITHM = "http://www.w3.org/2001/10/xml-exc-c14n#"
SIGNATURE_ALGORITHM = f"SM2/SM3（{SM2_SM3_OID}）"
FORMAT_DESCRIPTION = "本EEP根据中华人民共和国档案行业标准DA/T 48-2009《基于XML的电子文件封装规范》生成"
TYPE_DESCRIPTION = "本封装包包含电子文件数据及其元数据，原始封装，未经修改"
ENCODING_DESCRIPTION = (
    "本封装包中“编码数据”元素存储的是计算机文件二进制流的Base64编码，有关Base64编码规则参见IETF RFC 2045多用途邮件扩展"
    "（MIME）第一部分：互联网信息体格式。当提取和显现封装在编码数据元素中的计算机文件时，应对Base64编码进行反编码，"
    "并依据封装包中“反编码关键字”元素中记录的值还原计算机文件的扩展名"
)
SIGNATURE_RULE = (
    "签名对象为“被签名对象”元素按 Exclusive XML Canonicalization 1.0（不含注释，"
    f"{C14N_ALGORITHM}）规范化后的 UTF-8 字节；摘要算法 SM3（GB/T 32905），SM2 用户标识 1234567812345678；"
    "签名算法 SM2（GB/T 32918），签名结果为 DER 编码的 SEQUENCE{r, s}；证书为签名者 SM2 公钥的 "
    "SubjectPublicKeyInfo（DER），不是 CA 签发的证书"
)
LOCK_RULE = (
    "锁定签名：对“被锁定签名标识符”所指的“电子签名”元素按 Exclusive XML Canonicalization 1.0（不含注释，"
    f"{C14N_ALGORITHM}）规范化后的 UTF-8 字节签名；摘要、签名算法和证书同该电子签名"
)
SYSTEM_DESCRIPTION = f"dangan 电子档案管理系统 {__version__}"

_ROOT = "电子文件封装包"
_SIGNED = "被签名对象"
_B64_LINE = 57                  # bytes per 76-character Base64 line
_B64_CHUNK = _B64_LINE * 18396  # ≈ 1 MiB of content per write
_MAIN_ROLES = {"main", "正文", "主文档", "主件"}
# dangan's file roles (services.views.ROLE_LABELS, not imported: that pulls in the database layer)
ROLE_LABELS = {"main": "正文", "attachment": "附件", "processing_sheet": "处理单", "layout": "版式文件",
               "original": "原始格式", "draft": "定稿", "other": "其他", "scan": "扫描件"}
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_MAPPED = {
    "title", "year", "date", "retention_period", "responsible", "doc_number", "security_level", "secrecy_period",
    "doc_type", "urgency", "main_recipient", "cc", "keywords", "pages", "draft_type", "remarks", "language",
    "parallel_title", "subtitle", "title_note", "persons", "abstract", "classification", "catalogue_no",
    "department", "class_code", "volume_no", "item_no", "page_no", "current_location", "offline_carrier_no",
    "offline_carrier_location", "microfilm_no", "ip_statement", "control_mark", "electronic_file_no",
    "archive_name", "archive_code", "fonds_name", "fonds_code", "department_code",
}


# -- canonical serialisation helpers ---------------------------------------------------------------------


def _esc_text(s: str) -> str:
    """Character data as C14N writes it."""
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#xD;")


def _esc_attr(s: str) -> str:
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;").replace("\t", "&#x9;")
            .replace("\n", "&#xA;").replace("\r", "&#xD;"))


class _Tree:
    """Writes indented XML that is already in canonical form (attributes sorted, no empty-element tags)."""

    def __init__(self, write: Callable[[bytes], None], depth: int = 0) -> None:
        self.write = write
        self.depth = depth

    def _nl(self) -> str:
        return "\n" + "  " * self.depth

    def leaf(self, name: str, text: Any, attrs: dict[str, str] | None = None) -> None:
        self.write(f"{self._nl()}<{name}{_attrs(attrs)}>{_esc_text(str(text))}</{name}>".encode())

    def opt(self, name: str, text: Any) -> None:
        if text is not None and str(text) != "":
            self.leaf(name, text)

    def open(self, name: str, attrs: dict[str, str] | None = None, text: str = "") -> None:
        self.write(f"{self._nl()}<{name}{_attrs(attrs)}>{_esc_text(text)}".encode())
        self.depth += 1

    def close(self, name: str) -> None:
        self.depth -= 1
        self.write(f"{self._nl()}</{name}>".encode())


def _attrs(attrs: dict[str, str] | None) -> str:
    if not attrs:
        return ""
    return "".join(f' {k}="{_esc_attr(v)}"' for k, v in sorted(attrs.items()))


# -- the writer ------------------------------------------------------------------------------------------


class _Out:
    """The output stream, with its size and SHA-256, and the signature hash while inside 被签名对象."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.signed: Any = None

    def write(self, data: bytes) -> None:
        self.out.write(data)
        self.size += len(data)
        self.sha256.update(data)
        if self.signed is not None:
            self.signed.update(data)

    def doc_only(self, data: bytes) -> None:
        self.out.write(data)
        self.size += len(data)
        self.sha256.update(data)


@dataclass
class _Plan:
    """What will be written, checked before the first byte goes out."""

    md: dict[str, Any]
    title: str
    year: int
    retention: str
    item_no: int
    date: str
    files: list[tuple[FileUnderCheck, str]] = field(default_factory=list)  # (file, 主文档 / 附属文档)
    unmapped: list[str] = field(default_factory=list)


def _value(md: dict[str, Any], key: str) -> str:
    v = md.get(key)
    if v is None:
        return ""
    if isinstance(v, list | tuple):
        return "；".join(str(x) for x in v if x is not None and str(x) != "")
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    return str(v).strip()


def _plan(record: RecordUnderCheck) -> _Plan:
    from dangan.capture.dates import parse_date, parse_int

    md = dict(record.metadata or {})
    problems: list[FieldProblem] = []
    title = (record.title or _value(md, "title")).strip()

    def need(code: str, label: str, value: Any) -> None:
        if value is None or str(value).strip() == "":
            problems.append(FieldProblem(code, "REQUIRED", f"缺少{label}，DA/T 48 封装包必须著录", label))

    need("title", "题名", title)
    need("responsible", "责任者", _value(md, "responsible"))
    need("security_level", "密级", _value(md, "security_level"))
    date = ""
    if _value(md, "date"):
        try:
            date = parse_date(md["date"]).strftime("%Y%m%d")
        except ValueError as e:
            problems.append(FieldProblem("date", "INVALID_DATE", str(e), "日期", md.get("date")))
    else:
        need("date", "日期", "")
    year: int | None = None
    try:
        if _value(md, "year"):
            year = parse_int(md["year"])
        elif date:
            year = int(date[:4])
        if year is not None and not 1000 <= year <= 2999:
            raise ValueError(f"年度“{year}”无效，应为四位年份")
    except ValueError as e:
        problems.append(FieldProblem("year", "INVALID_INTEGER", str(e), "年度", md.get("year")))
        year = None
    if year is None and not any(p.field == "year" for p in problems):
        need("year", "年度", "")
    retention = ""
    if _value(md, "retention_period"):
        try:
            retention = parse_retention(_value(md, "retention_period")).label
        except ValueError as e:
            problems.append(FieldProblem("retention_period", "UNKNOWN_RETENTION", str(e), "保管期限",
                                         md.get("retention_period")))
    else:
        need("retention_period", "保管期限", "")
    item_no = record.seq
    if item_no is None and _value(md, "item_no"):
        try:
            item_no = parse_int(md["item_no"])
        except ValueError:
            item_no = None
    if item_no is None and record.archival_code:
        m = re.search(r"(\d+)\s*$", record.archival_code)
        item_no = int(m.group(1)) if m else None
    if item_no is None or item_no < 1:
        problems.append(FieldProblem("seq", "REQUIRED", "缺少件号（室编件号），请先归档编号后再封装", "件号"))
    if _value(md, "pages"):
        try:
            if parse_int(md["pages"]) < 1:
                raise ValueError("页数应为正整数")
        except ValueError as e:
            problems.append(FieldProblem("pages", "INVALID_INTEGER", str(e), "页数", md.get("pages")))
    for k, v in [("title", title), *((k, _value(md, k)) for k in md)]:
        if isinstance(v, str) and _XML_ILLEGAL.search(v):
            problems.append(FieldProblem(k, "ILLEGAL_CHARACTER", "含 XML 不允许的控制字符，请删除后再封装", k))
    if not record.files:
        problems.append(FieldProblem("files", "REQUIRED", "这件档案没有电子文件，无法封装", "电子文件"))
    for f in record.files:
        if f.opener is None and not f.local_path:
            problems.append(FieldProblem(f"files.{f.ref}", "FILE_MISSING", f"文件“{f.name}”的内容不可读", "电子文件"))
        if _XML_ILLEGAL.search(f.name):
            problems.append(FieldProblem(f"files.{f.ref}", "ILLEGAL_CHARACTER", f"文件名“{f.name}”含控制字符", "电子文件"))
    if problems:
        raise ValidationFailed("这件档案的著录项不全或有误，无法生成 DA/T 48 封装包，请补全后重试",
                               code="EEP_METADATA_INVALID", problems=problems)
    assert year is not None and item_no is not None
    main_index = next((i for i, f in enumerate(record.files) if (f.role or "").strip() in _MAIN_ROLES), 0)
    files = [(f, "主文档" if i == main_index else "附属文档") for i, f in enumerate(record.files)]
    unmapped = sorted(k for k in md if k not in _MAPPED and md[k] not in (None, "", []))
    return _Plan(md, title, year, retention, item_no, date, files, unmapped)


def _open_file(f: FileUnderCheck) -> BinaryIO:
    if f.opener is not None:
        return f.opener()
    assert f.local_path
    return open(f.local_path, "rb")  # noqa: SIM115 - closed by the caller


def _extension(name: str) -> str:
    base = re.split(r"[\\/]", name)[-1]
    if "." not in base.strip("."):
        return ""
    return base.rsplit(".", 1)[-1]


def _write_base64(out: _Out, src: BinaryIO, depth: int, f: FileUnderCheck) -> DualDigest:
    d = DualDigest()
    carry = b""
    indent = ("\n" + "  " * depth).encode()
    while True:
        chunk = src.read(_B64_CHUNK)
        if not chunk:
            break
        d.update(chunk)
        data = carry + chunk
        n = len(data) // _B64_LINE * _B64_LINE
        carry = data[n:]
        if n:
            out.write(b"\n" + base64.encodebytes(data[:n]).rstrip(b"\n"))
    if carry:
        out.write(b"\n" + base64.encodebytes(carry).rstrip(b"\n"))
    out.write(indent)
    problems = []
    if f.size is not None and f.size != d.size:
        problems.append(f"大小应为 {f.size} 字节，读到 {d.size} 字节")
    if f.sha256 and f.sha256.lower() != d.sha256:
        problems.append("SHA-256 与登记值不符")
    if f.sm3 and f.sm3.lower() != d.sm3:
        problems.append("SM3 与登记值不符")
    if problems:
        raise ValidationFailed(
            f"文件“{f.name}”的内容与登记的不一致（{'；'.join(problems)}），已停止封装，请先核查该文件",
            code="EEP_SOURCE_DIGEST_MISMATCH", detail={"file": f.ref, "expected_sha256": f.sha256,
                                                       "found_sha256": d.sha256, "found_size": d.size},
        )
    return d


def write_eep(
    record: RecordUnderCheck,
    out: BinaryIO,
    *,
    unit: str,
    signer: Sm2Signer | None = None,
    created_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """Write one record (件) as a DA/T 48-2009 EEP to `out` (UTF-8), signed when `signer` is given.

    `unit` is 封装包创建单位 and 立档单位名称. Raises ValidationFailed EEP_METADATA_INVALID (nothing written)
    when a mandatory element has no value — 题名, 责任者, 日期, 密级, 年度, 保管期限, 件号 — or a file has no
    content; EEP_SOURCE_DIGEST_MISMATCH (output incomplete: discard it) when a file's bytes differ from its
    declared size or digests. Returns {"size", "sha256" (of the package), "files": [{name, size, sha256, sm3}],
    "signed", "signature_id", "key_fingerprint", "unmapped_fields"}.
    """
    if not unit or not unit.strip():
        raise ValidationFailed("请给出封装单位（立档单位名称）", code="EEP_METADATA_INVALID",
                               problems=[FieldProblem("unit", "REQUIRED", "缺少封装单位", "封装单位")])
    plan = _plan(record)
    md = plan.md
    when = (created_at or dt.datetime.now().astimezone()).replace(microsecond=0)
    stamp = when.isoformat()
    o = _Out(out)
    o.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<{_ROOT} xmlns="{EEP_NAMESPACE}">'.encode())
    t = _Tree(o.write, 1)
    t.leaf("封装包格式描述", FORMAT_DESCRIPTION)
    t.leaf("版本", "2009")
    if signer is not None:
        o.signed = signer.hasher()
    # the start tag as in the file, and as in the canonical form (namespace declared on the apex)
    o.doc_only(f'\n  <{_SIGNED} eep版本="2009">'.encode())
    if o.signed is not None:
        o.signed.update(f'<{_SIGNED} xmlns="{EEP_NAMESPACE}" eep版本="2009">'.encode())
    t.depth = 2
    t.leaf("封装包类型", "原始型")
    t.leaf("封装包类型描述", TYPE_DESCRIPTION)
    t.leaf("封装包创建时间", stamp)
    t.leaf("封装包创建单位", unit.strip())
    t.open("封装内容")
    t.open("文件实体块")
    t.open("文件实体")
    file_no = _value(md, "electronic_file_no") or record.ref
    _entity_metadata(t, record, plan, unit.strip(), file_no)
    results = _file_data(t, o, plan)
    t.close("文件实体")
    t.close("文件实体块")
    t.open("业务实体块")
    t.open("业务实体")
    t.leaf("业务标识符", "BIZ-1")
    t.leaf("机构人员标识符", "AGENT-1")
    t.leaf("文件标识符", file_no)
    t.leaf("业务状态", "历史行为")
    t.leaf("业务行为", "封装")
    t.leaf("行为时间", stamp)
    t.leaf("行为依据", "DA/T 48-2009《基于XML的电子文件封装规范》")
    t.leaf("行为描述", f"{unit.strip()}使用{SYSTEM_DESCRIPTION}将本件电子文件及其元数据封装为电子文件封装包")
    t.close("业务实体")
    t.close("业务实体块")
    t.open("机构人员实体块")
    t.open("机构人员实体")
    t.leaf("机构人员标识符", "AGENT-1")
    t.leaf("机构人员类型", "单位")
    t.leaf("机构人员名称", unit.strip())
    t.close("机构人员实体")
    t.close("机构人员实体块")
    t.close("封装内容")
    t.depth = 1
    o.write(f"\n  </{_SIGNED}>".encode())
    result: dict[str, Any] = {"files": results, "signed": signer is not None, "signature_id": None,
                              "key_fingerprint": None, "unmapped_fields": plan.unmapped}
    if signer is not None:
        e = o.signed.digest()
        o.signed = None
        _signature_block(o, signer, e, stamp, unit.strip())
        result["signature_id"] = "SIG-1"
        result["key_fingerprint"] = signer.verifier.fingerprint
    o.write(f"\n</{_ROOT}>\n".encode())
    result["size"] = o.size
    result["sha256"] = o.sha256.hexdigest()
    return result


def _entity_metadata(t: _Tree, record: RecordUnderCheck, plan: _Plan, unit: str, file_no: str) -> None:
    md = plan.md
    v = lambda k: _value(md, k)  # noqa: E731
    t.leaf("聚合层次", "文件")
    t.open("来源")
    t.opt("档案馆名称", v("archive_name"))
    t.opt("档案馆代码", v("archive_code"))
    t.opt("全宗名称", v("fonds_name"))
    t.leaf("立档单位名称", unit)
    t.close("来源")
    t.leaf("电子文件号", file_no)
    t.open("档号", text=record.archival_code or "")
    t.opt("全宗号", record.fonds_code or v("fonds_code"))
    t.opt("目录号", v("catalogue_no"))
    t.leaf("年度", f"{plan.year:04d}")
    t.leaf("保管期限", plan.retention)
    t.opt("机构或问题", v("department") or v("department_code") or (record.department[0] if record.department else ""))
    t.opt("类别号", v("class_code"))
    t.opt("室编案卷号", v("volume_no"))
    t.leaf("室编件号", plan.item_no)
    t.opt("页号", v("page_no"))
    t.close("档号")
    t.open("内容描述")
    t.leaf("题名", plan.title)
    t.opt("并列题名", v("parallel_title"))
    t.opt("副题名", v("subtitle"))
    t.opt("说明题名文字", v("title_note"))
    keywords = md.get("keywords")
    if isinstance(keywords, str):
        keywords = [k for k in re.split(r"[;；、,，\s]+", keywords) if k]
    for k in keywords or []:
        t.opt("主题词", str(k).strip())
    t.opt("人名", v("persons"))
    t.opt("摘要", v("abstract"))
    t.opt("分类号", v("classification"))
    t.opt("文件编号", v("doc_number"))
    t.leaf("责任者", v("responsible"))
    t.leaf("日期", plan.date)
    t.opt("文种", v("doc_type"))
    t.opt("紧急程度", v("urgency"))
    t.opt("主送", v("main_recipient"))
    t.opt("抄送", v("cc"))
    t.leaf("密级", v("security_level"))
    t.opt("保密期限", v("secrecy_period"))
    t.close("内容描述")
    t.open("形式特征")
    t.leaf("文件组合类型", "单件" if len(plan.files) == 1 else "组合文件")
    if v("pages"):
        from dangan.capture.dates import parse_int

        t.leaf("页数", parse_int(md["pages"]))
    t.opt("语种", v("language"))
    t.opt("稿本", v("draft_type"))
    t.close("形式特征")
    t.open("存储位置")
    t.opt("当前位置", v("current_location"))
    t.leaf("脱机载体编号", v("offline_carrier_no"))
    t.opt("脱机载体存址", v("offline_carrier_location"))
    t.opt("缩微号", v("microfilm_no"))
    t.close("存储位置")
    t.open("权限管理")
    t.opt("知识产权说明", v("ip_statement"))
    t.opt("控制标识", v("control_mark"))
    t.close("权限管理")
    t.leaf("信息系统描述", SYSTEM_DESCRIPTION)
    t.opt("附注", v("remarks"))


def _file_data(t: _Tree, o: _Out, plan: _Plan) -> list[dict[str, Any]]:
    results = []
    t.open("文件数据")
    for i, (f, role) in enumerate(plan.files, 1):
        t.open("文档")
        t.leaf("文档标识符", f"DOC-{i}")
        t.leaf("文档序号", i)
        t.leaf("文档主从声明", role)
        t.opt("题名", ROLE_LABELS.get((f.role or "").strip(), (f.role or "").strip()))
        t.open("文档数据", {"文档数据ID": f"DOCDATA-{i}"})
        t.open("编码", {"编码ID": f"ENC-{i}"})
        t.open("电子属性")
        t.opt("格式信息", f.format_name or f.media_type or _extension(f.name).upper())
        t.leaf("计算机文件名", f.name)
        src = _open_file(f)
        try:
            # 计算机文件大小 comes before the data: the declared size, checked against the bytes read
            size = f.size if f.size is not None else _stream_size(src)
            t.leaf("计算机文件大小", size)
            t.close("电子属性")
            t.leaf("编码描述", ENCODING_DESCRIPTION)
            t.leaf("反编码关键字", _extension(f.name))
            o.write(f'\n{"  " * t.depth}<编码数据 编码数据ID="DATA-{i}">'.encode())
            check = f if f.size is not None else FileUnderCheck(f.ref, f.name, size=size, sha256=f.sha256,
                                                                sm3=f.sm3)
            d = _write_base64(o, src, t.depth, check)
        finally:
            src.close()
        o.write("</编码数据>".encode())
        t.close("编码")
        t.close("文档数据")
        t.close("文档")
        results.append({"name": f.name, "size": d.size, "sha256": d.sha256, "sm3": d.sm3})
    t.close("文件数据")
    return results


def _stream_size(src: BinaryIO) -> int:
    """The size of a seekable stream without reading it (计算机文件大小 precedes the data)."""
    try:
        pos = src.tell()
        end = src.seek(0, 2)
        src.seek(pos)
        return int(end - pos)
    except (OSError, ValueError, AttributeError) as e:
        raise ValidationFailed("文件大小未知且无法预先读取，请先登记文件大小", code="EEP_METADATA_INVALID") from e


def _signature_block(o: _Out, signer: Sm2Signer, e: bytes, stamp: str, unit: str) -> None:
    cert = base64.b64encode(signer.verifier.spki_der()).decode("ascii")
    sig = base64.b64encode(signer.sign_digest(e)).decode("ascii")
    parts: list[bytes] = []
    t = _Tree(parts.append, 3)
    t.leaf("签名标识符", "SIG-1")
    t.leaf("签名规则", SIGNATURE_RULE)
    t.leaf("签名时间", stamp)
    t.leaf("签名人", unit)
    t.leaf("签名结果", sig)
    t.open("证书块")
    t.leaf("证书", cert)
    t.close("证书块")
    t.leaf("签名算法标识", SIGNATURE_ALGORITHM)
    inner = b"".join(parts) + "\n    </电子签名>".encode()
    canonical = f'<电子签名 xmlns="{EEP_NAMESPACE}">'.encode() + inner
    lock_sig = base64.b64encode(signer.sign(canonical)).decode("ascii")
    o.write("\n  <电子签名块>".encode())
    o.write("\n    <电子签名>".encode() + inner)
    o.write("\n  </电子签名块>".encode())
    t = _Tree(o.write, 1)
    t.open("锁定签名")
    t.leaf("被锁定签名标识符", "SIG-1")
    t.leaf("签名规则", LOCK_RULE)
    t.leaf("签名时间", stamp)
    t.leaf("签名人", unit)
    t.leaf("签名结果", lock_sig)
    t.open("证书块")
    t.leaf("证书", cert)
    t.close("证书块")
    t.leaf("签名算法标识", SIGNATURE_ALGORITHM)
    t.close("锁定签名")


# -- streaming Exclusive C14N 1.0 over expat -------------------------------------------------------------

XML_NS = "http://www.w3.org/XML/1998/namespace"
_READ = 1 << 20
_MAX_SIG_ELEMENT = 1 << 20
_MAX_SIGNATURES = 100


class _Malformed(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _DtdFound(Exception):
    pass


@dataclass
class _Capture:
    """One element being canonicalized: where its bytes go and the namespaces rendered above each level."""

    depth: int
    sink: Callable[[bytes], None]
    rendered: list[dict[str, str]] = field(default_factory=lambda: [{}])


@dataclass
class _Sig:
    kind: str                       # 电子签名 | 锁定签名
    fields: dict[str, list[str]] = field(default_factory=dict)
    canonical: bytearray = field(default_factory=bytearray)
    line: int = 0

    def get(self, name: str) -> str:
        values = self.fields.get(name) or [""]
        return values[0].strip()


def _split(qname: str) -> tuple[str, str]:
    if ":" in qname:
        p, local = qname.split(":", 1)
        return p, local
    return "", qname


class _Scanner:
    """One pass over an EEP with expat: canonicalizes the element at `signed_path` (its first occurrence) into
    `signed_sinks`, and with `collect` gathers every 电子签名 (with its canonical bytes) and 锁定签名."""

    def __init__(self, *, signed_sinks: list[Callable[[bytes], None]] | None = None, collect: bool = False,
                 signed_path: tuple[str, ...] = (_ROOT, _SIGNED)) -> None:
        self.signed_sinks = signed_sinks or []
        self.signed_path = list(signed_path)
        self.root = (signed_path or (_ROOT,))[0]
        self.collect = collect
        self.p = expat.ParserCreate()
        self.p.ordered_attributes = True
        self.p.buffer_text = True
        self.p.buffer_size = 1 << 20
        self.p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        self.p.StartElementHandler = self._start
        self.p.EndElementHandler = self._end
        self.p.CharacterDataHandler = self._text
        self.p.ProcessingInstructionHandler = self._pi
        self.p.StartDoctypeDeclHandler = self._dtd
        self.p.EntityDeclHandler = self._dtd
        self.names: list[str] = []            # local names of the open elements
        self.scopes: list[dict[str, str]] = [{"xml": XML_NS}]
        self.cap: _Capture | None = None
        self.signed_found = 0
        self.sigs: list[_Sig] = []
        self.sig: _Sig | None = None
        self.sig_depth = 0
        self.field_name = ""
        self.field_buf: list[str] = []
        self.field_len = 0
        self.root_ok = True

    def _dtd(self, *args: Any) -> None:
        raise _DtdFound()

    def run(self, src: IO[bytes]) -> None:
        try:
            while chunk := src.read(_READ):
                self.p.Parse(chunk, False)
            self.p.Parse(b"", True)
        except expat.ExpatError as e:
            raise _Malformed(e.lineno, expat.errors.messages.get(e.code, str(e))) from None
        except ValueError as e:  # pyexpat: "multi-byte encodings are not supported" (GBK, GB18030 …)
            raise _Malformed(self.p.CurrentLineNumber, f"不支持的字符编码（{e}），请以 UTF-8 生成封装包") from None

    def _to_signed(self, data: bytes) -> None:
        for sink in self.signed_sinks:
            sink(data)

    def _to_sig(self, data: bytes) -> None:
        sig = self.sig
        if sig is not None and len(sig.canonical) + len(data) <= _MAX_SIG_ELEMENT:
            sig.canonical += data

    def _start(self, qname: str, attrs: list[str]) -> None:
        decls: dict[str, str] = {}
        plain: list[tuple[str, str]] = []
        for i in range(0, len(attrs), 2):
            k, v = attrs[i], attrs[i + 1]
            if k == "xmlns":
                decls[""] = v
            elif k.startswith("xmlns:"):
                decls[k[6:]] = v
            else:
                plain.append((k, v))
        scope = self.scopes[-1]
        if decls:
            scope = {**scope, **decls, "xml": XML_NS}
        self.scopes.append(scope)
        prefix, local = _split(qname)
        if prefix and prefix not in scope:
            raise _Malformed(self.p.CurrentLineNumber, f"未声明的命名空间前缀“{prefix}”")
        ours = scope.get(prefix, "") in (EEP_NAMESPACE, "")
        self.names.append(local)
        depth = len(self.names)
        if depth == 1 and not (ours and local == self.root):
            self.root_ok = False
        if self.cap is None and self.root_ok and ours:
            if self.signed_path and self.names == self.signed_path:
                self.signed_found += 1
                if self.signed_found == 1:
                    self.cap = _Capture(depth, self._to_signed)
            elif self.collect and len(self.sigs) < _MAX_SIGNATURES and (
                    (depth == 3 and local == "电子签名" and self.names[1] == "电子签名块")
                    or (depth == 2 and local == "锁定签名")):
                self.sig = _Sig(local, line=self.p.CurrentLineNumber)
                self.sigs.append(self.sig)
                self.sig_depth = depth
                if local == "电子签名":
                    self.cap = _Capture(depth, self._to_sig)
        if self.sig is not None and self.sig_depth < depth <= self.sig_depth + 2:
            self.field_name, self.field_buf, self.field_len = local, [], 0
        if self.cap is not None:
            self._emit_start(qname, prefix, plain, scope)

    def _emit_start(self, qname: str, prefix: str, plain: list[tuple[str, str]], scope: dict[str, str]) -> None:
        assert self.cap is not None
        above = self.cap.rendered[-1]
        used = {prefix}
        keyed: list[tuple[tuple[str, str], str, str]] = []
        for k, v in plain:
            ap, alocal = _split(k)
            if ap:
                if ap not in scope:
                    raise _Malformed(self.p.CurrentLineNumber, f"未声明的命名空间前缀“{ap}”")
                used.add(ap)
                keyed.append(((scope[ap], alocal), k, v))
            else:
                keyed.append((("", k), k, v))
        # exclusive C14N: declare the namespaces this element visibly uses that no output ancestor declared
        # with the same value (an empty default is declared only to undo a non-empty one above)
        emit: dict[str, str] = {}
        for p in used - {"xml"}:
            uri = scope.get(p, "")
            if (p and above.get(p) != uri) or (not p and above.get("", "") != uri):
                emit[p] = uri
        self.cap.rendered.append({**above, **emit} if emit else above)
        out = ["<", qname]
        for p in sorted(emit):
            out.append(f' xmlns="{_esc_attr(emit[p])}"' if p == "" else f' xmlns:{p}="{_esc_attr(emit[p])}"')
        for _key, k, v in sorted(keyed):
            out.append(f' {k}="{_esc_attr(v)}"')
        out.append(">")
        self.cap.sink("".join(out).encode())

    def _end(self, qname: str) -> None:
        depth = len(self.names)
        local = self.names[-1]
        if self.cap is not None:
            self.cap.sink(f"</{qname}>".encode())
            self.cap.rendered.pop()
            if depth == self.cap.depth:
                self.cap = None
        if self.sig is not None:
            if self.field_name == local and self.sig_depth < depth <= self.sig_depth + 2:
                self.sig.fields.setdefault(local, []).append("".join(self.field_buf))
                self.field_name, self.field_buf, self.field_len = "", [], 0
            if depth == self.sig_depth:
                self.sig = None
        self.names.pop()
        self.scopes.pop()

    def _text(self, data: str) -> None:
        if self.cap is not None:
            self.cap.sink(_esc_text(data).encode())
        if self.sig is not None and self.field_name and self.field_len < _MAX_SIG_ELEMENT:
            self.field_buf.append(data)
            self.field_len += len(data)

    def _pi(self, target: str, data: str) -> None:
        if self.cap is not None:
            self.cap.sink(f"<?{target}{' ' + data if data else ''}?>".encode())


def canonicalize_element(source: bytes | Path | str | BinaryIO, path: tuple[str, ...] = (_ROOT, _SIGNED)) -> bytes:
    """Exclusive C14N 1.0 (without comments) of the first element at `path` (local names from the root,
    in the EEP namespace or none) — the bytes that are signed. For tests and tools: verification streams
    them into the hash instead."""
    buf = bytearray()
    scanner = _Scanner(signed_sinks=[buf.extend], signed_path=path)
    _scan(io.BytesIO(source) if isinstance(source, bytes) else source, scanner)
    return bytes(buf)


# -- verification ----------------------------------------------------------------------------------------


def _dtd_forbidden() -> ValidationFailed:
    return ValidationFailed("封装包含 DOCTYPE/实体声明，出于安全原因拒收", code="EEP_DTD_FORBIDDEN",
                            message_en="DOCTYPE/entity declarations")


def _b64(text: str) -> bytes | None:
    try:
        return binascii.a2b_base64(re.sub(r"\s+", "", text).encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None


def _key_from_certificate(data: bytes) -> Sm2Verifier:
    """证书: our SubjectPublicKeyInfo, or an X.509 certificate whose key is SM2."""
    try:
        return Sm2Verifier.from_any(data)
    except ConfigError:
        from asn1crypto import x509

        try:
            cert = x509.Certificate.load(data, strict=True)
            spki = cert["tbs_certificate"]["subject_public_key_info"].dump()
        except (ValueError, TypeError, KeyError) as e:
            raise ConfigError("证书既不是 SM2 公钥也不是 X.509 证书", code="SM2_KEY_INVALID") from e
        return Sm2Verifier.from_spki(spki)


def _signature_bytes(raw: bytes) -> bytes:
    if decode_signature(raw) is None and len(raw) == 64:  # raw r‖s, as some systems store it
        return encode_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    return raw


def _is_sm2(algorithm: str) -> bool:
    a = unicodedata.normalize("NFKC", algorithm).upper()
    return "SM2" in a or SM2_SM3_OID in a or "1.2.156.10197.1.301" in a


def _open_source(source: Path | str | BinaryIO) -> tuple[IO[bytes], bool]:
    if isinstance(source, str | Path):
        return open(source, "rb"), True  # noqa: SIM115
    source.seek(0)
    return source, False


def _scan(source: Path | str | BinaryIO, scanner: _Scanner) -> None:
    src, own = _open_source(source)
    try:
        scanner.run(src)
    except _DtdFound:
        raise _dtd_forbidden() from None
    finally:
        if own:
            src.close()


_SIGNATURE_MARKERS = tuple("<电子签名块".encode(enc) for enc in ("utf-8", "gb18030"))


def _mentions_signature(source: Path | str | BinaryIO) -> bool:
    """Whether the raw bytes contain a 电子签名块 start tag (UTF-8 or GB18030), read in chunks."""
    src, own = _open_source(source)
    tail = b""
    try:
        while chunk := src.read(_READ):
            window = tail + chunk
            if any(m in window for m in _SIGNATURE_MARKERS):
                return True
            tail = window[-32:]
        return False
    finally:
        if own:
            src.close()


def verify_eep_signatures(
    path: Path | str | BinaryIO, *, trusted_keys: Iterable[bytes] | None = None
) -> list[SignatureCheck]:
    """Check every 电子签名 (over 被签名对象) and 锁定签名 (over the 电子签名 it names) of an EEP.

    Returns one SignatureCheck (kind "eep") per signature, in document order; [] when the package is not
    signed (also when it cannot be parsed but has no 电子签名块 at all). signature_valid is False when the signature does not verify (content changed after signing, or
    the block was tampered with), None when the algorithm is not SM2. `trusted_keys` (public keys in any form
    `Sm2Verifier.from_any` reads): when given, a valid signature by a key not among them is reported as not
    valid. A package that is not well-formed XML gives one failing check; a DOCTYPE raises ValidationFailed
    EEP_DTD_FORBIDDEN."""
    trusted = None
    if trusted_keys is not None:
        trusted = {Sm2Verifier.from_any(bytes(k)).public_key for k in trusted_keys}
    first = _Scanner(collect=True, signed_path=())
    try:
        _scan(path, first)
    except _Malformed as e:
        if not _mentions_signature(path):  # e.g. a GBK-encoded package expat cannot read, without signatures
            return []
        return [SignatureCheck(kind="eep", signature_valid=False, covers_document=None,
                               message=f"封装包不是格式正确的 XML（第 {e.line} 行：{e.message}），无法验证电子签名")]
    if not first.sigs:
        return []

    prepared: list[dict[str, Any]] = []
    keys: dict[bytes, Sm2Verifier] = {}
    for sig in first.sigs:
        item: dict[str, Any] = {"sig": sig, "key": None, "problem": ""}
        cert_texts = sig.fields.get("证书", [])
        for text in cert_texts:
            raw = _b64(text)
            if raw is None:
                continue
            try:
                item["key"] = _key_from_certificate(raw)
                break
            except ConfigError as e:
                item["problem"] = e.message
        if item["key"] is None and not item["problem"]:
            item["problem"] = "证书块中没有可用的 SM2 公钥" if cert_texts else "缺少证书"
        if item["key"] is not None and sig.kind == "电子签名":
            keys.setdefault(item["key"].public_key, item["key"])
        prepared.append(item)

    hashers = {pk: v.hasher() for pk, v in keys.items()}
    second = _Scanner(signed_sinks=[h.update for h in hashers.values()])
    if hashers:
        try:
            _scan(path, second)
        except _Malformed as e:  # pragma: no cover - the first pass read the same bytes
            return [SignatureCheck(kind="eep", signature_valid=False,
                                   message=f"封装包不是格式正确的 XML（第 {e.line} 行：{e.message}）")]
    digests = {pk: h.digest() for pk, h in hashers.items()}
    by_id = {s.get("签名标识符"): s for s in first.sigs if s.kind == "电子签名" and s.get("签名标识符")}
    return [_check(item, digests, by_id, second.signed_found, trusted) for item in prepared]


def _check(item: dict[str, Any], digests: dict[bytes, bytes], by_id: dict[str, _Sig], signed_found: int,
           trusted: set[bytes] | None) -> SignatureCheck:
    sig: _Sig = item["sig"]
    key: Sm2Verifier | None = item["key"]
    algorithm = sig.get("签名算法标识")
    ident = sig.get("签名标识符") if sig.kind == "电子签名" else sig.get("被锁定签名标识符")
    what = f"电子签名“{ident}”" if sig.kind == "电子签名" else f"锁定签名（锁定“{ident}”）"
    check = SignatureCheck(kind="eep", signer=sig.get("签名人"), algorithm="SM2/SM3" if _is_sm2(algorithm)
                           else algorithm, covers_document=True if sig.kind == "电子签名" else None)
    if not _is_sm2(algorithm):
        check.message = f"{what}（第 {sig.line} 行）的签名算法“{algorithm or '未注明'}”不是 SM2，本系统无法验证"
        return check
    raw = _b64(sig.get("签名结果"))
    if key is None or raw is None:
        check.signature_valid = False
        check.message = f"{what}（第 {sig.line} 行）无法验证：" + (item["problem"] if key is None else "签名结果不是有效的 Base64")
        return check
    signature = _signature_bytes(raw)
    if sig.kind == "电子签名":
        if signed_found == 0:
            check.signature_valid = False
            check.covers_document = False
            check.message = f"{what}：封装包中没有“被签名对象”，签名无所指"
            return check
        ok = key.verify_digest(digests[key.public_key], signature)
        target = "被签名对象"
    else:
        locked = by_id.get(ident)
        if locked is None:
            check.signature_valid = False
            check.message = f"{what}：封装包中没有签名标识符为“{ident}”的电子签名"
            return check
        if len(locked.canonical) >= _MAX_SIG_ELEMENT:
            check.signature_valid = False
            check.message = f"{what}：被锁定的电子签名超过 1 MB，拒绝验证"
            return check
        ok = key.verify(bytes(locked.canonical), signature)
        target = f"电子签名“{ident}”"
    note = f"签名公钥指纹 SM3:{key.fingerprint[:16]}…；证书块中为公钥而非 CA 证书，只能证明签名后内容未被改动"
    if not ok:
        check.signature_valid = False
        check.message = (f"{what}（第 {sig.line} 行）验证失败：{target}在签名后被改动，或签名/证书被替换；"
                         f"按 Exclusive C14N 1.0 + SM2/SM3 验证。{note}")
        return check
    if trusted is not None and key.public_key not in trusted:
        check.signature_valid = False
        check.message = f"{what}的签名值正确，但签名公钥不在受信任的公钥列表中。{note}"
        return check
    check.signature_valid = True
    check.message = f"{what}验证通过（{target}，SM2/SM3）。{note}"
    return check
