"""METS 1.12 descriptions of exported packages, with PREMIS 3 technical metadata per file; offline validation.

The document: metsHdr (the agency and dangan as CREATOR); one dmdSec per record with simple Dublin Core
(title, 档号 and the record's ref as identifiers, date, 责任者 as creator, 文种 as type); one amdSec per file
whose techMD wraps a PREMIS 3 `object` (xsi:type premis:file) — objectIdentifier (the file's ref), fixity
SHA-256 and SM3 (PREMIS messageDigestAlgorithm is free text; "SM3" names GB/T 32905), size, format name
(and the PRONOM key when known), originalName; a fileSec with one file per content file (SIZE, MIMETYPE,
CHECKSUM SHA-256 — the METS CHECKSUMTYPE list has no SM3 —, USE = role) whose FLocat points with xlink:href
at the file's path inside the package (`FileUnderCheck.location`, else its name), LOCTYPE OTHER / SYSTEM as
Archivematica writes relative paths; and a logical structMap: the package, then one div per record (TYPE 件
or 案卷, LABEL 题名, ORDERLABEL 档号) pointing at its files.

`validate_mets` checks a document against local copies of mets-1.12.1.xsd, premis-3.0.xsd and xlink.xsd (the
METS schema imports XLink by its loc.gov URL, which is mapped to the local file: nothing is fetched), with the
PREMIS schema loaded so that the objects inside xmlData are validated too, not skipped as lax content.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from pathlib import Path
from typing import Any

from lxml import etree

from dangan import __version__
from dangan.checks.model import FileUnderCheck, RecordUnderCheck
from dangan.errors import ConfigError

__all__ = ["METS_NS", "PREMIS_NS", "XLINK_NS", "validate_mets", "write_mets"]

METS_NS = "http://www.loc.gov/METS/"
PREMIS_NS = "http://www.loc.gov/premis/v3"
XLINK_NS = "http://www.w3.org/1999/xlink"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
DC_NS = "http://purl.org/dc/elements/1.1/"
XLINK_URL = "http://www.loc.gov/standards/xlink/xlink.xsd"
_NSMAP = {"mets": METS_NS, "premis": PREMIS_NS, "xlink": XLINK_NS, "xsi": XSI_NS, "dc": DC_NS}
_LEVELS = {"item": "件", "volume": "案卷", "project": "项目", "group": "组"}
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _m(tag: str) -> str:
    return f"{{{METS_NS}}}{tag}"


def _p(tag: str) -> str:
    return f"{{{PREMIS_NS}}}{tag}"


def _clean(v: Any) -> str:
    return _XML_ILLEGAL.sub("", str(v))


def _sub(parent: Any, tag: str, text: Any = None, **attrs: Any) -> Any:
    el = etree.SubElement(parent, tag, {k: _clean(v) for k, v in attrs.items() if v is not None and v != ""})
    if text is not None:
        el.text = _clean(text)
    return el


def _stamp(when: dt.datetime) -> str:
    return when.replace(microsecond=0).isoformat()


def write_mets(records: list[RecordUnderCheck], *, agency: str, package_id: str,
               created_at: dt.datetime | None = None) -> bytes:
    """A METS 1.12.1 document (UTF-8 bytes) describing `records` and their files (see the module docstring)."""
    when = created_at or dt.datetime.now().astimezone()
    root = etree.Element(_m("mets"), nsmap=_NSMAP)
    root.set("OBJID", _clean(package_id))
    root.set("LABEL", _clean(f"{agency} 电子档案移交包 {package_id}"))
    root.set("TYPE", "电子档案")
    root.set("PROFILE", "dangan/1")
    hdr = _sub(root, _m("metsHdr"), CREATEDATE=_stamp(when), RECORDSTATUS="完成")
    agent = _sub(hdr, _m("agent"), ROLE="CREATOR", TYPE="ORGANIZATION")
    _sub(agent, _m("name"), agency)
    soft = _sub(hdr, _m("agent"), ROLE="CREATOR", TYPE="OTHER", OTHERTYPE="SOFTWARE")
    _sub(soft, _m("name"), f"dangan 电子档案管理系统 {__version__}")

    numbered: list[tuple[int, RecordUnderCheck, list[tuple[int, FileUnderCheck]]]] = []
    n_file = 0
    for i, rec in enumerate(records, 1):
        files = []
        for f in rec.files:
            n_file += 1
            files.append((n_file, f))
        numbered.append((i, rec, files))

    for i, rec, _files in numbered:
        dmd = _sub(root, _m("dmdSec"), ID=f"DMD-{i}")
        wrap = _sub(dmd, _m("mdWrap"), MDTYPE="DC", LABEL="著录项（Dublin Core）")
        data = _sub(wrap, _m("xmlData"))
        md = rec.metadata or {}
        _sub(data, f"{{{DC_NS}}}title", rec.title or md.get("title") or rec.ref)
        if rec.archival_code:
            _sub(data, f"{{{DC_NS}}}identifier", rec.archival_code)
        _sub(data, f"{{{DC_NS}}}identifier", rec.ref)
        for key, tag in (("responsible", "creator"), ("date", "date"), ("doc_type", "type")):
            if md.get(key):
                _sub(data, f"{{{DC_NS}}}{tag}", md[key])

    for _i, _rec, files in numbered:
        for n, f in files:
            amd = _sub(root, _m("amdSec"), ID=f"AMD-{n}")
            tech = _sub(amd, _m("techMD"), ID=f"TECH-{n}")
            wrap = _sub(tech, _m("mdWrap"), MDTYPE="PREMIS:OBJECT", LABEL="PREMIS")
            _premis_object(_sub(wrap, _m("xmlData")), f)

    file_sec = _sub(root, _m("fileSec"))
    grp = _sub(file_sec, _m("fileGrp"), USE="original")
    for _i, _rec, files in numbered:
        for n, f in files:
            attrs: dict[str, Any] = {"ID": f"FILE-{n}", "ADMID": f"AMD-{n}", "USE": f.role or None,
                                     "MIMETYPE": f.media_type, "SIZE": f.size}
            if f.sha256:
                attrs.update(CHECKSUM=f.sha256.lower(), CHECKSUMTYPE="SHA-256")
            if f.created_at:
                attrs["CREATED"] = _stamp(f.created_at)
            el = _sub(grp, _m("file"), **attrs)
            loc = _sub(el, _m("FLocat"), LOCTYPE="OTHER", OTHERLOCTYPE="SYSTEM")
            loc.set(f"{{{XLINK_NS}}}href", _clean(f.location or f.name))
            loc.set(f"{{{XLINK_NS}}}type", "simple")

    smap = _sub(root, _m("structMap"), TYPE="logical", LABEL="档案")
    top = _sub(smap, _m("div"), TYPE="移交包", LABEL=package_id)
    for i, rec, files in numbered:
        div = _sub(top, _m("div"), ID=f"REC-{i}", TYPE=_LEVELS.get(rec.level, rec.level or "件"), DMDID=f"DMD-{i}",
                   LABEL=rec.title or rec.ref, ORDERLABEL=rec.archival_code)
        for n, _f in files:
            _sub(div, _m("fptr"), FILEID=f"FILE-{n}")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _premis_object(parent: Any, f: FileUnderCheck) -> None:
    obj = _sub(parent, _p("object"))
    obj.set(f"{{{XSI_NS}}}type", "premis:file")
    obj.set("version", "3.0")
    oid = _sub(obj, _p("objectIdentifier"))
    _sub(oid, _p("objectIdentifierType"), "dangan 文件标识")
    _sub(oid, _p("objectIdentifierValue"), f.ref)
    chars = _sub(obj, _p("objectCharacteristics"))
    _sub(chars, _p("compositionLevel"), "0")
    for alg, value in (("SHA-256", f.sha256), ("SM3", f.sm3)):
        if value:
            fx = _sub(chars, _p("fixity"))
            _sub(fx, _p("messageDigestAlgorithm"), alg)
            _sub(fx, _p("messageDigest"), value.lower())
            _sub(fx, _p("messageDigestOriginator"), "dangan")
    if f.size is not None:
        _sub(chars, _p("size"), int(f.size))
    fmt = _sub(chars, _p("format"))
    des = _sub(fmt, _p("formatDesignation"))
    _sub(des, _p("formatName"), f.format_name or f.media_type or "未识别")
    if f.puid:
        reg = _sub(fmt, _p("formatRegistry"))
        _sub(reg, _p("formatRegistryName"), "PRONOM")
        _sub(reg, _p("formatRegistryKey"), f.puid)
    _sub(obj, _p("originalName"), f.name)


# -- validation ------------------------------------------------------------------------------------------


class _LocalOnly(etree.Resolver):
    """Maps the XLink schema URL to the local file and refuses every other non-local reference."""

    def __init__(self, xlink_xsd: Path) -> None:
        super().__init__()
        self.xlink = xlink_xsd

    def resolve(self, url: str | None, pubid: str | None, context: Any) -> Any:
        if url == XLINK_URL or (url or "").endswith("/xlink.xsd"):
            return self.resolve_filename(str(self.xlink), context)
        if url and re.match(r"^(https?|ftp):", url):
            raise etree.XMLSchemaParseError(f"refusing to fetch {url}")
        return None


@functools.lru_cache(maxsize=4)
def _schema(mets_xsd: str, premis_xsd: str, xlink_xsd: str) -> etree.XMLSchema:
    for p in (mets_xsd, premis_xsd, xlink_xsd):
        if not Path(p).is_file():
            raise ConfigError(f"找不到模式文件 {p}，请检查配置", code="METS_XSD_UNAVAILABLE")
    wrapper = (
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" elementFormDefault="qualified">'
        f'<xs:import namespace="{METS_NS}" schemaLocation="{Path(mets_xsd).resolve().as_uri()}"/>'
        f'<xs:import namespace="{PREMIS_NS}" schemaLocation="{Path(premis_xsd).resolve().as_uri()}"/>'
        "</xs:schema>"
    )
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    parser.resolvers.add(_LocalOnly(Path(xlink_xsd).resolve()))
    try:
        base = (Path(mets_xsd).resolve().parent / "dangan-mets-premis-wrapper.xsd").as_uri()  # not a real file
        doc = etree.fromstring(wrapper.encode(), parser, base_url=base)
        return etree.XMLSchema(doc)
    except (etree.XMLSchemaParseError, etree.XMLSyntaxError) as e:
        raise ConfigError(f"无法读取 METS/PREMIS 模式文件（{e}），请检查配置", code="METS_XSD_UNAVAILABLE",
                          message_en=str(e)) from e


def validate_mets(xml: bytes, *, mets_xsd: Path, premis_xsd: Path, xlink_xsd: Path) -> list[str]:
    """Schema errors of a METS document ("line N: message"), [] when valid. Local schema files only."""
    schema = _schema(str(mets_xsd), str(premis_xsd), str(xlink_xsd))
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False, huge_tree=False)
    try:
        doc = etree.fromstring(xml, parser)
    except etree.XMLSyntaxError as e:
        return [f"第 {e.lineno} 行：不是格式正确的 XML（{e.msg}）"]
    if schema.validate(doc):
        return []
    return [f"第 {err.line} 行：{err.message}" for err in schema.error_log]
