"""真实性 (dimension 1): fixity information, metadata accuracy, electronic attributes, linkage, the package as sent."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from typing import Any

from dangan.checks.engine import CheckContext, CheckItem, Findings, register
from dangan.checks.items.common import (
    SCHEMA_CODES,
    file_kw,
    rec_kw,
    schema_problems,
    short,
    special_chars,
    strings,
)
from dangan.checks.model import Dimension, Stage
from dangan.storage.hashing import digests

HEX64 = re.compile(r"[0-9a-f]{64}")


def _signature_findings(out: Findings, sig: dict[str, Any], kw: dict[str, Any], warn_unverifiable: bool) -> None:
    who = sig.get("signer") or "签名"
    alg = f"（{sig['algorithm']}）" if sig.get("algorithm") else ""
    msg = sig.get("message") or ""
    if sig.get("digest_valid") is False:
        out.fail(f"{who}{alg}：签名所保护的内容已被改动（摘要不符）。{msg}", expected="摘要一致", found="摘要不符", **kw)
    elif sig.get("signature_valid") is False:
        out.fail(f"{who}{alg}：签名值验证失败。{msg}", expected="签名有效", found="签名无效", **kw)
    elif sig.get("covers_document") is False:
        out.warn(f"{who}{alg}：签名未覆盖全部内容（签名后有增补或部分内容不在签名范围内）。{msg}", **kw)
    elif sig.get("signature_valid") is None and warn_unverifiable:
        out.warn(f"{who}{alg}：签名算法或结构无法在本机验证，仅核对了摘要。{msg}", **kw)


@register
class FixityInfo(CheckItem):
    key = "fixity_info"
    number = 1
    dimension = Dimension.AUTHENTICITY
    title = "固化信息有效性检测"
    purpose = "电子文件的固化信息（数字摘要、电子签名、电子印章）齐全且有效：签名所保护的内容未被改动，签名值可验证"
    needs_content = True
    defaults = {"require_digest": True, "warn_unverifiable": True}
    param_labels = {"require_digest": "必须记录数字摘要（SHA-256 与 SM3）", "warn_unverifiable": "无法验证的签名算法给出警告"}

    def check(self, ctx: CheckContext, out: Findings) -> None:
        pkg = ctx.target.package
        # a signed EEP carries no digest per file: its 电子签名 over 被签名对象 (which holds the encoded file
        # data) is the fixity information of every file in it, and is verified below
        signed_eep = pkg is not None and pkg.kind == "eep" and bool(pkg.signatures)
        for r, f in ctx.files():
            out.checked += 1
            kw = file_kw(r, f)
            if ctx.params["require_digest"] and not signed_eep:
                for alg, v in (("SHA-256", f.sha256), ("SM3", f.sm3)):
                    if not v:
                        out.fail(f"未记录 {alg} 数字摘要（固化信息缺失）", expected=f"{alg} 摘要", found="无", **kw)
                    elif not HEX64.fullmatch(v.lower()):
                        out.fail(f"记录的 {alg} 数字摘要格式错误", expected="64 位十六进制", found=short(v), **kw)
            prof = ctx.profile(f)
            if prof.validation is not None:
                for sig in prof.validation.signatures:
                    _signature_findings(out, sig.as_dict(), kw, ctx.params["warn_unverifiable"])
        if pkg is not None:
            for sig in pkg.signatures:
                out.checked += 1
                _signature_findings(out, sig, {"subject": pkg.label, "file_ref": pkg.label},
                                    ctx.params["warn_unverifiable"])


class _SchemaItem(CheckItem):
    """Items answered by the category schema's validation (length, type, domain …), one validation per record."""

    codes: frozenset[str] = frozenset()

    def check(self, ctx: CheckContext, out: Findings) -> None:
        none_known = True
        for r in ctx.records:
            problems = schema_problems(ctx, r)
            if problems is None:
                continue
            none_known = False
            out.checked += 1
            for p in problems.items:
                if p.code in self.codes:
                    out.fail(f"{p.label or p.field}：{p.message}", field=p.field,
                             found=short(r.metadata.get(p.field, "")) if p.code != "TOO_LONG" else
                             f"{len(str(r.metadata.get(p.field, '')))} 个字符", **rec_kw(r))
            self.more(ctx, r, out)
        if none_known and ctx.records:
            out.note = "没有可依据的门类元数据方案，本项未执行"

    def more(self, ctx: CheckContext, r: Any, out: Findings) -> None:
        """Checks beyond the schema's own validation."""


@register
class MetadataLength(_SchemaItem):
    key = "metadata_length"
    number = 2
    dimension = Dimension.AUTHENTICITY
    title = "元数据项数据长度检测"
    purpose = "每个元数据项的值不超过门类元数据方案规定的长度"
    codes = frozenset(SCHEMA_CODES["length"])


@register
class MetadataType(_SchemaItem):
    key = "metadata_type"
    number = 3
    dimension = Dimension.AUTHENTICITY
    title = "元数据项数据类型、格式检测"
    purpose = "日期、年度、整数、代码等元数据项的类型与格式符合元数据方案（含格式规则）"
    codes = frozenset(SCHEMA_CODES["type"])


@register
class MetadataDomain(_SchemaItem):
    key = "metadata_domain"
    number = 4
    dimension = Dimension.AUTHENTICITY
    title = "设定值域的元数据项值域符合度检测"
    purpose = "保管期限、密级、文种等设定了值域的元数据项只取值域内的值"
    codes = frozenset(SCHEMA_CODES["domain"])


@register
class MetadataReasonable(_SchemaItem):
    key = "metadata_reasonable"
    number = 5
    dimension = Dimension.AUTHENTICITY
    title = "元数据项数据值合理性检测"
    purpose = "元数据值在合理范围内：年度与日期一致，日期不晚于检测之日，起止日期先后正确"
    codes = frozenset(SCHEMA_CODES["reasonable"])

    def check(self, ctx: CheckContext, out: Findings) -> None:
        super().check(ctx, out)
        if out.checked == 0:  # no schema: the two rules that need none
            for r in ctx.records:
                out.checked += 1
                self.more(ctx, r, out)
            out.note = ""

    def more(self, ctx: CheckContext, r: Any, out: Findings) -> None:
        today = dt.date.today()
        for code in ("date", "start_date", "end_date"):
            d = _date(r.metadata.get(code))
            if d and d > today:
                out.fail(f"日期 {d.isoformat()} 晚于检测之日 {today.isoformat()}", field=code,
                         expected=f"不晚于 {today.isoformat()}", found=d.isoformat(), **rec_kw(r))
        schema = ctx.env.schema_for(r)
        y, d = r.metadata.get("year"), _date(r.metadata.get("date"))
        if schema is None and y and d and str(y).strip() != str(d.year):
            out.fail(f"年度 {y} 与日期 {d.isoformat()} 不一致", field="year", expected=str(d.year), found=str(y),
                     **rec_kw(r))


def _date(v: Any) -> dt.date | None:
    if not v:
        return None
    from dangan.domain.schema import parse_date

    try:
        return parse_date(v)
    except (ValueError, TypeError):
        return None


@register
class SpecialCharacters(CheckItem):
    key = "special_characters"
    number = 6
    dimension = Dimension.AUTHENTICITY
    title = "元数据项数据包含特殊字符检测"
    purpose = "元数据值不含控制字符、不可见字符、私用区造字和编码替换字符等特殊字符"
    defaults = {"forbidden": ""}
    param_labels = {"forbidden": "另外禁止的字符（直接列出，如 <>|）"}

    def check(self, ctx: CheckContext, out: Findings) -> None:
        for r in ctx.records:
            out.checked += 1
            for fld, text in strings({"title": r.title, **r.metadata}):
                found = special_chars(text, ctx.params["forbidden"])
                if found:
                    out.fail(f"{fld}：含有{'、'.join(found)}", field=fld, found=short(repr(text)), **rec_kw(r))


@register
class ArchivalCodeRule(CheckItem):
    key = "archival_code_rule"
    number = 7
    dimension = Dimension.AUTHENTICITY
    title = "档号规范性检测"
    purpose = "档号的组成项、顺序、分隔符和位数符合本门类的档号规则，且与著录的全宗号、年度、保管期限、机构等一致"

    def check(self, ctx: CheckContext, out: Findings) -> None:
        for r in ctx.records:
            if not r.archival_code:
                continue  # not numbered yet (it gets its 档号 when it is filed)
            tpl = ctx.env.code_template_for(r)
            if tpl is None:
                continue
            out.checked += 1
            kw = rec_kw(r, field="archival_code")
            if not tpl.regex().fullmatch(r.archival_code):
                out.fail(f"档号“{r.archival_code}”不符合档号规则 {tpl.describe()}", expected=tpl.describe(),
                         found=r.archival_code, **kw)
                continue
            seq = r.seq if r.seq is not None else _tail_number(r.archival_code)
            try:
                expected = tpl.format(_code_values(r), seq) if seq is not None else None
            except (ValueError, KeyError) as e:
                out.fail(f"无法按档号规则由著录项组成档号：{e}", found=r.archival_code, **kw)
                continue
            if expected and expected != r.archival_code:
                out.fail("档号与著录的全宗号、门类、年度、保管期限、机构等不一致", expected=expected,
                         found=r.archival_code, **kw)


def _tail_number(code: str) -> int | None:
    m = re.search(r"(\d+)$", code)
    return int(m.group(1)) if m else None


def _code_values(r: Any) -> dict[str, Any]:
    values = dict(r.metadata)
    values.setdefault("fonds_code", r.fonds_code)
    values.setdefault("category_code", r.category_code)
    if r.department:
        values.setdefault("department_code", r.department[0])
        values.setdefault("department_name", r.department[1])
    if r.parent_code:
        values.setdefault("parent_code", r.parent_code)
    return values


@register
class Duplicates(CheckItem):
    key = "duplicates"
    number = 8
    dimension = Dimension.AUTHENTICITY
    title = "元数据项数据重复性检测"
    purpose = "档号等不应重复的元数据项在本批内和已入库的档案中都不重复（文号重复给出警告，请人工核对；可加题名）"
    defaults = {"fields": ["archival_code"], "warn_fields": ["doc_number"]}
    param_labels = {"fields": "不得重复的字段", "warn_fields": "重复时警告的字段"}

    def check(self, ctx: CheckContext, out: Findings) -> None:
        own_ids = {r.record_id for r in ctx.records if r.record_id is not None}
        for fields, fail in ((ctx.params["fields"], True), (ctx.params["warn_fields"], False)):
            for fld in fields:
                seen: dict[str, list[Any]] = defaultdict(list)
                for r in ctx.records:
                    v = _value(r, fld)
                    if v:
                        seen[v].append(r)
                if not seen:
                    continue
                out.checked += len(seen)
                elsewhere = ctx.env.existing_values(fld, list(seen), own_ids)
                for v, recs in seen.items():
                    others = [x.subject for x in recs[1:]] + list(elsewhere.get(v, []))
                    if len(recs) > 1 or elsewhere.get(v):
                        add = out.fail if fail else out.warn
                        add(f"{_label(fld)}“{short(v)}”重复：另见 {'、'.join(short(o, 40) for o in others[:5])}"
                            + (f" 等 {len(others)} 处" if len(others) > 5 else ""),
                            field=fld, found=v, **rec_kw(recs[0]))


def _value(r: Any, fld: str) -> str | None:
    if fld == "archival_code":
        return r.archival_code
    if fld == "title":
        return r.title or r.metadata.get("title")
    v = r.metadata.get(fld)
    return str(v).strip() if v not in (None, "") else None


def _label(fld: str) -> str:
    return {"archival_code": "档号", "doc_number": "文号", "title": "题名"}.get(fld, fld)


_MIME_FAMILY = {"application/x-tiff": "image/tiff", "image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg",
                "application/x-pdf": "application/pdf", "text/xml": "application/xml"}


def _mime(m: str | None) -> str:
    m = (m or "").split(";")[0].strip().lower()
    return _MIME_FAMILY.get(m, m)


@register
class ElectronicAttributes(CheckItem):
    key = "electronic_attributes"
    number = 9
    dimension = Dimension.AUTHENTICITY
    title = "电子文件内容数据电子属性一致性检测"
    purpose = "从内容数据中获取的文件名、大小、格式、创建时间与著录的电子属性一致"
    needs_content = True

    def check(self, ctx: CheckContext, out: Findings) -> None:
        for r, f in ctx.files():
            prof = ctx.profile(f)
            if not prof.present or prof.read_error:
                continue
            out.checked += 1
            kw = file_kw(r, f)
            if f.size is not None and prof.size != f.size:
                out.fail("文件大小与著录不一致", field="size", expected=f.size, found=prof.size, **kw)
            ident = prof.identification
            if ident is None:
                continue
            if not ident.extension_matches:
                out.fail(f"文件扩展名与实际格式不符：实际为 {ident.format_name}", field="name",
                         expected=ident.format_name, found=f.name, **kw)
            declared = _mime(f.media_type)
            found_mime = _mime(ident.mime)
            zip_family = declared.startswith("application/vnd.") and found_mime == "application/zip"
            if declared and declared != "application/octet-stream" and found_mime not in (declared, "") and not zip_family:
                out.fail("著录的文件格式与实际格式不符", field="media_type", expected=f.media_type,
                         found=f"{ident.mime}（{ident.format_name}）", **kw)
            created = prof.validation.details.get("created") if prof.validation else None
            if f.created_at and created:
                c = _date(str(created)[:10])
                if c and abs((c - f.created_at.date()).days) > 1:
                    out.warn("著录的文件创建时间与文件内部记录的创建时间不一致", field="created_at",
                             expected=f.created_at.date().isoformat(), found=c.isoformat(), **kw)


@register
class ContentDigest(CheckItem):
    key = "content_digest"
    number = 10
    dimension = Dimension.AUTHENTICITY
    title = "内容数据数字摘要比对检测"
    purpose = "重新计算内容数据的 SHA-256 与 SM3 数字摘要，与捕获时记录的摘要一致（内容未被改动）"
    needs_content = True

    def check(self, ctx: CheckContext, out: Findings) -> None:
        for r, f in ctx.files():
            prof = ctx.profile(f)
            if not prof.present or prof.read_error:
                continue
            if not f.sha256 and not f.sm3:
                continue
            out.checked += 1
            kw = file_kw(r, f)
            for alg, want, got in (("SHA-256", f.sha256, prof.sha256), ("SM3", f.sm3, prof.sm3)):
                if want and got and want.lower() != got:
                    out.fail(f"{alg} 数字摘要不一致：内容已被改动或损坏", field=alg.lower().replace("-", ""),
                             expected=want.lower(), found=got, **kw)


@register
class ContentLinkage(CheckItem):
    key = "content_linkage"
    number = 11
    dimension = Dimension.AUTHENTICITY
    title = "元数据与内容关联一致性检测"
    purpose = "每条元数据都关联到内容数据，记录的存储位置与内容的实际位置一致"
    defaults = {"levels_without_files": ["volume", "project", "group"], "without_files": "warn"}
    param_labels = {"levels_without_files": "本身不带电子文件的层级（案卷、项目、组）",
                    "without_files": "没有电子文件的档案（如只有纸质原件）：warn 警告 / fail 不通过"}

    def check(self, ctx: CheckContext, out: Findings) -> None:
        for r in ctx.records:
            out.checked += 1
            if not r.files:
                if r.level not in ctx.params["levels_without_files"]:
                    add = out.fail if ctx.params["without_files"] == "fail" else out.warn
                    add("该档案没有关联任何电子文件（内容数据）", expected="至少 1 个电子文件", found="0 个", **rec_kw(r))
                continue
            for f in r.files:
                if not ctx.env.blob_exists(f):
                    out.fail("记录的存储位置上没有该文件", field="location", expected=f.location or f.name,
                             found="不存在", **file_kw(r, f))


_BAD_NAME = re.compile(r'[\x00-\x1f\x7f\\:*?"<>|]')


@register
class PackageNaming(CheckItem):
    key = "package_naming"
    number = 12
    dimension = Dimension.AUTHENTICITY
    title = "归档信息包中文件和目录文件规范性检测"
    purpose = "信息包内的文件名与目录名合法（无控制字符与保留字符、长度合规、不以空格或点结尾），说明文件齐全"
    stages = frozenset({Stage.FILING, Stage.TRANSFER})
    needs_package = True
    defaults = {"max_name_bytes": 255}
    param_labels = {"max_name_bytes": "文件名最大字节数（UTF-8）"}

    def check(self, ctx: CheckContext, out: Findings) -> None:
        pkg = ctx.target.package
        assert pkg is not None
        for e in pkg.entries:
            out.checked += 1
            for seg in e.path.split("/"):
                problem = None
                if _BAD_NAME.search(seg):
                    problem = "含有控制字符或保留字符（\\ : * ? \" < > |）"
                elif len(seg.encode("utf-8")) > ctx.params["max_name_bytes"]:
                    problem = f"超过 {ctx.params['max_name_bytes']} 字节"
                elif seg != seg.strip() or seg.endswith("."):
                    problem = "以空格或点开头或结尾"
                if problem:
                    out.fail(f"文件名“{short(seg)}”{problem}", subject=e.path, file_ref=e.path, found=short(e.path))
                    break
        if pkg.kind in ("bagit", "zip", "folder") and not pkg.metadata_files:
            out.fail("信息包中没有描述文件（元数据、清单）", subject=pkg.label, expected="说明文件", found="无")


@register
class PackageStructure(CheckItem):
    key = "package_structure"
    number = 13
    dimension = Dimension.AUTHENTICITY
    title = "归档信息包目录结构规范性检测"
    purpose = "信息包的目录结构和组成符合封装规则（BagIt、DA/T 48 封装包或本系统数据包），没有不安全的路径"
    stages = frozenset({Stage.FILING, Stage.TRANSFER})
    needs_package = True

    def check(self, ctx: CheckContext, out: Findings) -> None:
        pkg = ctx.target.package
        assert pkg is not None
        out.checked += 1
        for ev in pkg.structure_problems:
            out.add(ev)


_ALGS = {"sha256": "sha256", "sha-256": "sha256", "sm3": "sm3", "sha512": "sha512", "sha-512": "sha512",
         "sha1": "sha1", "sha-1": "sha1", "md5": "md5"}


@register
class PackageConsistency(CheckItem):
    key = "package_consistency"
    number = 14
    dimension = Dimension.AUTHENTICITY
    title = "归档信息包一致性检测"
    purpose = "接收的信息包与发送方形成的信息包一致：清单中每个文件的摘要与实际内容相符，整包摘要与发送方告知的一致"
    stages = frozenset({Stage.FILING, Stage.TRANSFER})
    needs_package = True
    needs_content = True

    def check(self, ctx: CheckContext, out: Findings) -> None:
        pkg = ctx.target.package
        assert pkg is not None
        by_path = {e.path: e for e in pkg.entries}
        files_by_path = {f.location: f for _, f in ctx.files() if f.location}
        for m in [*pkg.manifest, *pkg.tag_manifest]:
            entry = by_path.get(m.path)
            if entry is None:
                continue  # reported as missing by 2-11
            out.checked += 1
            f = files_by_path.get(m.path)
            prof = ctx.profile(f) if f is not None else None
            names = {alg: _ALGS.get(alg.lower()) for alg in m.digests}
            # what the content profile does not give (tag files, metadata.json, other algorithms): one read
            # of the entry for all its algorithms, not one per algorithm
            missing = {n for n in names.values() if n and (prof is None or n not in ("sha256", "sm3")
                                                           or getattr(prof, n, None) is None)}
            read = _digests(entry.opener, missing) if missing else {}
            for alg, want in m.digests.items():
                name = names[alg]
                if name is None:
                    out.warn(f"清单使用了不支持的摘要算法 {alg}", subject=m.path, file_ref=m.path)
                    continue
                got = read[name] if name in read else getattr(prof, name)
                if got != want.lower():
                    out.fail(f"清单中的 {alg} 摘要与实际内容不符", subject=m.path, file_ref=m.path,
                             expected=want.lower(), found=got)
            if m.size is not None and m.size != entry.size:
                out.fail("清单中的文件大小与实际不符", subject=m.path, file_ref=m.path, expected=m.size, found=entry.size)
        if pkg.sent_digest and pkg.received_digest:
            out.checked += 1
            for alg, want in pkg.sent_digest.items():
                got = pkg.received_digest.get(alg)
                if got and got.lower() != want.lower():
                    out.fail(f"整包 {alg} 摘要与发送方告知的不一致（传输中被改动或不是同一个包）", subject=pkg.label,
                             expected=want.lower(), found=got.lower())


def _digests(opener: Any, names: set[str]) -> dict[str, str]:
    with opener() as fh:
        return digests(fh, names)
