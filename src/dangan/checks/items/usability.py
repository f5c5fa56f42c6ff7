"""可用性 (dimension 3): metadata readable and accessible, content opens, no encryption, long-term formats."""

from __future__ import annotations

import json

from dangan.checks.engine import CheckContext, CheckItem, Findings, register
from dangan.checks.items.common import file_kw, looks_garbled, rec_kw, short, strings
from dangan.checks.model import Dimension, Stage


@register
class MetadataReadable(CheckItem):
    key = "metadata_readable"
    number = 1
    dimension = Dimension.USABILITY
    title = "元数据的可读性检测"
    purpose = "信息包中的元数据文件能被正常解析，元数据值没有乱码"

    def check(self, ctx: CheckContext, out: Findings) -> None:
        from lxml import etree

        pkg = ctx.target.package
        if pkg is not None:
            entries = {e.path: e for e in pkg.entries}
            for path in pkg.metadata_files:
                e = entries.get(path)
                if e is None:
                    continue
                out.checked += 1
                try:
                    with e.opener() as fh:
                        data = fh.read(64 * 2**20 + 1)
                    if len(data) > 64 * 2**20:
                        out.warn("元数据文件超过 64 MB，未做解析检查", subject=path, file_ref=path)
                    elif path.lower().endswith(".json"):
                        json.loads(data.decode("utf-8"))
                    elif path.lower().endswith(".xml"):
                        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                                 huge_tree=False)
                        root = etree.fromstring(data, parser)
                        if root.getroottree().docinfo.doctype:
                            out.fail("元数据文件含有 DOCTYPE 声明（可能是实体攻击），拒绝解析", subject=path, file_ref=path)
                    elif path.lower().endswith(".txt"):
                        data.decode("utf-8")
                except UnicodeDecodeError as err:
                    out.fail(f"元数据文件不是 UTF-8 编码，无法读取（第 {err.start} 字节）", subject=path, file_ref=path)
                except (ValueError, etree.XMLSyntaxError) as err:
                    out.fail(f"元数据文件无法解析：{short(err, 200)}", subject=path, file_ref=path)
        for r in ctx.records:
            out.checked += 1
            for fld, text in strings({"title": r.title, **r.metadata}):
                frag = looks_garbled(text)
                if frag:
                    out.fail(f"{fld}：疑似乱码“{short(frag, 20)}”（编码转换错误）", field=fld, found=short(text),
                             **rec_kw(r))


@register
class MetadataAccessible(CheckItem):
    key = "metadata_accessible"
    number = 2
    dimension = Dimension.USABILITY
    title = "目标数据库中元数据可访问性检测"
    purpose = "写入数据库的元数据可以完整读出（元数据是结构完整的记录，题名等关键项可访问）"
    stages = frozenset({Stage.FILING, Stage.PRESERVATION})

    def check(self, ctx: CheckContext, out: Findings) -> None:
        for r in ctx.records:
            if r.record_id is None:
                continue
            out.checked += 1
            if not isinstance(r.metadata, dict):
                out.fail("数据库中的元数据不是完整的结构化记录，无法读取", **rec_kw(r))
            elif not (r.title or r.metadata.get("title")):
                out.fail("数据库中该档案的题名为空，无法访问", field="title", **rec_kw(r))


@register
class ContentOpens(CheckItem):
    key = "content_opens"
    number = 4
    dimension = Dimension.USABILITY
    title = "内容数据的可读性检测"
    purpose = "电子文件能正常打开：PDF、OFD 能解析，图像能解码，Office 文档结构完整，文本编码可识别"
    needs_content = True
    defaults = {"warn_unchecked": True}
    param_labels = {"warn_unchecked": "没有验证器的格式给出警告"}

    def check(self, ctx: CheckContext, out: Findings) -> None:
        for r, f in ctx.files():
            prof = ctx.profile(f)
            if not prof.present:
                continue
            out.checked += 1
            kw = file_kw(r, f)
            if prof.read_error:
                out.fail(f"无法读取：{prof.read_error}", **kw)
                continue
            v = prof.validation
            fmt = prof.identification.format_name if prof.identification else ""
            if v is None:
                continue
            if v.status == "invalid":
                out.fail(f"{fmt}无法正常打开：{'；'.join(v.problems[:5]) or '格式错误'}", **kw)
            elif v.status == "unchecked" and ctx.params["warn_unchecked"]:
                out.warn(f"{fmt or '该格式'}没有可用的验证方法，未能确认可以打开"
                         + (f"：{'；'.join(v.warnings[:2])}" if v.warnings else ""), **kw)


@register
class NoEncryption(CheckItem):
    key = "no_encryption"
    number = 5
    dimension = Dimension.USABILITY
    title = "非公开压缩算法和加密检测"
    purpose = "内容数据没有加密，没有使用非公开的压缩算法（加密或专有压缩的文件将来可能无法打开）"
    needs_content = True

    def check(self, ctx: CheckContext, out: Findings) -> None:
        for r, f in ctx.files():
            prof = ctx.profile(f)
            if not prof.present or prof.validation is None:
                continue
            out.checked += 1
            if prof.validation.encrypted:
                out.fail("文件已加密（需解密后再归档或移交）", expected="未加密", found="加密", **file_kw(r, f))
            if prof.validation.nonpublic_compression:
                out.fail("文件使用了非公开的压缩格式（如 RAR），需解压后以通用格式归档", expected="公开格式",
                         found=prof.identification.format_name if prof.identification else "", **file_kw(r, f))


# format keys: what the scheme lists as allowed, recognised from the identification
def format_key(mime: str, name: str, pdfa: str | None) -> str:
    m = (mime or "").lower()
    n = (name or "").upper()
    if m == "application/pdf":
        return "pdfa" if pdfa else "pdf"
    table = {
        "application/ofd": "ofd", "image/jpeg": "jpeg", "image/tiff": "tiff", "image/png": "png", "image/jp2": "jp2",
        "application/xml": "xml", "text/xml": "xml", "text/plain": "txt", "application/rtf": "rtf", "text/rtf": "rtf",
        "audio/wav": "wav", "audio/x-wav": "wav", "audio/mpeg": "mp3", "video/mp4": "mp4", "video/mpeg": "mpg",
        "image/svg+xml": "svg", "image/vnd.dxf": "dxf", "application/dxf": "dxf", "text/html": "html",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
        "application/vnd.oasis.opendocument.text": "odt", "application/vnd.ms-excel": "xls", "application/msword": "doc",
        "image/gif": "gif", "image/bmp": "bmp", "application/zip": "zip", "application/x-empty": "empty",
    }
    if m in table:
        return table[m]
    if "OFD" in n:
        return "ofd"
    return m or "unknown"


LAYOUT_KEYS = {"ofd", "pdfa"}


@register
class FormatAllowed(CheckItem):
    key = "format_allowed"
    number = 8
    dimension = Dimension.USABILITY
    title = "内容数据格式合规性检测"
    purpose = "电子文件采用规定的长期保存格式（GB/T 18894：版式文件 OFD、PDF/A，图像 JPEG、TIFF，文本、XML 等）"
    needs_content = True
    defaults = {
        "allowed": ["ofd", "pdfa", "pdf", "jpeg", "tiff", "png", "jp2", "xml", "txt", "rtf", "docx", "xlsx", "odt",
                    "wav", "mp3", "mp4", "mpg", "svg", "dxf"],
        "layout_roles": ["main"],
        "layout_severity": "warn",
    }
    param_labels = {"allowed": "允许的格式", "layout_roles": "必须为版式文件（OFD 或 PDF/A）的组件",
                    "layout_severity": "组件不是版式文件时：warn 警告 / fail 不通过"}

    def check(self, ctx: CheckContext, out: Findings) -> None:
        allowed = set(ctx.params["allowed"])
        for r, f in ctx.files():
            prof = ctx.profile(f)
            if not prof.present or prof.identification is None or prof.read_error:
                continue
            out.checked += 1
            ident = prof.identification
            key = format_key(ident.mime, ident.format_name, ident.pdfa)
            kw = file_kw(r, f)
            if key not in allowed:
                out.fail(f"格式 {ident.format_name}（{key}）不在允许的长期保存格式之内", expected="、".join(sorted(allowed)),
                         found=ident.format_name, **kw)
            elif f.role in ctx.params["layout_roles"] and key not in LAYOUT_KEYS:
                add = out.fail if ctx.params["layout_severity"] == "fail" else out.warn
                add(f"正文应为版式文件（OFD 或 PDF/A），实际为 {ident.format_name}", expected="OFD 或 PDF/A",
                    found=ident.format_name, **kw)
