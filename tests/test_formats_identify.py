"""Format identification on real files made by other software (../shared/corpus): PUIDs, containers, OFD, PDF/A,
extensions that lie, and inputs that must not break it."""

from __future__ import annotations

import io
import os
import xml.etree.ElementTree as ET
import zipfile
import zlib

import pytest

from conftest import (
    CORPUS,  # noqa: E402  (the corpus beside the clone, as CI lays it out)
    IN_CI,  # noqa: E402
)
from dangan.formats import identify as ident_mod
from dangan.formats.identify import identify_file, identify_head
from dangan.formats.text import decode_text

pytestmark = pytest.mark.skipif(not CORPUS.is_dir() and not IN_CI, reason=f"test corpus not found at {CORPUS}")  # under CI=true: must run

# file, PUID, basis, extension_matches
CASES = [
    ("pdf/chinese-word-contract-simsun.pdf", "fmt/276", "magic", True),
    ("pdf/chinese-aspose-bad-tounicode.pdf", "fmt/20", "magic", True),
    ("pdf/content-stream-errors.pdf", "fmt/17", "magic", True),
    ("pdf/corrupted-zen-of-python.pdf", "fmt/18", "magic", True),
    ("pdf/encrypted-aes256-r6.pdf", "fmt/1129", "magic", True),             # PDF 2.0
    ("pdf/pdfa-1b-verapdf-pass.pdf", "fmt/354", "magic", True),             # PDF/A-1b
    ("pdf/ocr-sandwich-scanned-page.pdf", "fmt/477", "magic", True),        # PDF/A-2b
    ("pdf/signed-acrobat-sign-restricted.pdf", "fmt/276", "magic", True),
    ("formats/tiff-g3-fax-scan.tif", "fmt/353", "magic", True),
    ("formats/tiff-with-wrong-extension.prk", "fmt/353", "magic", False),
    ("formats/tiff-without-extension", "fmt/353", "magic", False),
    ("formats/jpeg2000-photo.jp2", "x-fmt/392", "magic", True),
    ("formats/gif-corrupt-bytes-removed.gif", "fmt/4", "magic", True),
    ("formats/wav-valid-pcm.wav", "fmt/141", "magic", True),
    ("formats/mp4-xray-video.mp4", "fmt/199", "magic", True),
    ("formats/heic-page-photo.heic", "fmt/1101", "magic", True),
    ("formats/rtf-simple.rtf", "fmt/45", "magic", True),
    ("formats/email-with-attachment.eml", "fmt/950", "magic", True),
    ("formats/docx-with-tables.docx", "fmt/412", "container", True),
    ("formats/docx-misnamed-as.doc", "fmt/412", "container", False),
    ("formats/xlsx-stanley-cups.xlsx", "fmt/214", "container", True),
    ("formats/pptx-malformed.pptx", "fmt/215", "container", True),
    ("formats/odt-simple.odt", "fmt/1756", "container", True),              # manifest:version="1.3"
    ("formats/epub-small.epub", "fmt/483", "container", True),
    ("formats/ooxml-samples-docx-xlsx-pptx.zip", "x-fmt/263", "container", True),
    ("formats/word97-club-report.doc", "fmt/40", "container", True),
    ("formats/xls-legacy.xls", "fmt/61", "container", True),
    ("formats/email-outlook.msg", "x-fmt/430", "container", True),
    ("formats/xlsx-password-protected.xlsx", "fmt/494", "container", True),  # encrypted OOXML in an OLE2 file
    ("formats/not-a-pdf-text-named.pdf", "x-fmt/111", "magic", False),
    ("scans/paddleocr-exam-paper.jpg", "fmt/43", "magic", True),           # JFIF 1.01
    ("scans/rapidocr-transparent-black-text.png", "fmt/11", "magic", True),
    ("schemas/mets-1.12.1.xsd", "x-fmt/280", "magic", True),
    ("schemas/mets-premis3-aip-example.xml", "fmt/101", "magic", True),
    ("text/big5-encoded-classical-chinese.txt", "x-fmt/111", "magic", True),
    ("text/archives-law-2020.md", "fmt/1149", "extension", True),
]


@pytest.mark.parametrize("rel,puid,basis,ext_ok", CASES, ids=[c[0] for c in CASES])
def test_corpus_file_is_identified(rel, puid, basis, ext_ok):
    i = identify_file(str(CORPUS / rel))
    assert (i.puid, i.basis, i.extension_matches) == (puid, basis, ext_ok), i
    if not ext_ok:
        assert any("扩展名" in w for w in i.warnings), i.warnings
    else:
        assert not any("扩展名" in w for w in i.warnings), i.warnings


def _pronom_file() -> dict[str, tuple[str, str, list[str]]]:
    root = ET.parse(ident_mod.signature_file()).getroot()
    return {f.findtext("puid"): ((f.findtext("name") or "").strip(), (f.findtext("version") or "").strip(),
                                 [e.text for e in f.findall("extension")]) for f in root.findall("format")}


def test_every_puid_the_code_gives_is_in_fidos_pronom_file_with_the_name_we_expect():
    table = _pronom_file()
    used = set(ident_mod.PDF_VERSIONS.values()) | set(ident_mod.PDFA_PUIDS.values())
    used |= {p for f in ident_mod.FAMILIES.values() for p in (*f.candidates, f.default) if p}
    used |= {c[0] for c in ident_mod.CONTAINERS.values() if c[0]}
    used |= {p for _, _, versions in ident_mod.ODF_KINDS.values() for p in versions.values()}
    missing = sorted(p for p in used if p not in table)
    assert not missing, missing
    assert table["fmt/276"][:2] == ("Acrobat PDF 1.7 - Portable Document Format", "1.7")
    assert table["fmt/1129"][:2] == ("PDF 2.0 - Portable Document Format", "2.0")
    assert table["fmt/477"][:2] == ("Acrobat PDF/A - Portable Document Format", "2b")
    assert table["fmt/412"][0] == "Microsoft Word for Windows" and "docx" in table["fmt/412"][2]
    assert table["fmt/494"][0] == "Microsoft Office Encrypted Document"
    assert table["x-fmt/392"][0] == "JP2 (JPEG 2000 part 1)"
    # and the identification carries PRONOM's version for a signature-decided format
    assert identify_file(str(CORPUS / "scans/paddleocr-exam-paper.jpg")).version == table["fmt/43"][1] == "1.01"


def test_ofd_has_no_puid_and_is_recognised_by_content():
    for p in sorted((CORPUS / "ofd").glob("*.ofd")):
        i = identify_file(str(p), "发票.zip")
        assert (i.mime, i.puid, i.basis, i.format_name) == ("application/ofd", None, "ofd", "OFD（GB/T 33190）"), p
        assert not i.extension_matches  # named .zip
        assert identify_file(str(p)).extension_matches


def make_pdf(objs: list[bytes]) -> bytes:
    """A classic PDF (xref table) from object bodies; object 1 is the catalog."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


XMP = (b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
       b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
       b'xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/" pdfaid:part="2" pdfaid:conformance="B"/></rdf:RDF>'
       b'</x:xmpmeta><?xpacket end="w"?>')


def test_pdfa_claim_in_compressed_xmp_is_read_with_pikepdf(tmp_path):
    z = zlib.compress(XMP)
    objs = [b"<< /Type /Catalog /Pages 2 0 R /Metadata 4 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
            b"<< /Type /Metadata /Subtype /XML /Filter /FlateDecode /Length %d >>\nstream\n" % len(z) + z
            + b"\nendstream"]
    compressed = tmp_path / "weasyprint-like.pdf"
    compressed.write_bytes(make_pdf(objs))
    assert b"pdfaid" not in compressed.read_bytes()  # invisible to a byte scanner (and to fido)
    i = identify_file(str(compressed))
    assert (i.pdfa, i.puid, i.format_name) == ("2B", "fmt/477", "PDF 1.7（PDF/A-2B）"), i
    plain = tmp_path / "plain-xmp.pdf"
    objs[3] = b"<< /Type /Metadata /Subtype /XML /Length %d >>\nstream\n" % len(XMP) + XMP + b"\nendstream"
    plain.write_bytes(make_pdf(objs))
    assert ident_mod.pdfa_from_bytes(plain.read_bytes()) == "2B"
    assert identify_file(str(plain)).puid == "fmt/477"


def test_plain_pdf_without_xmp_does_not_open_pikepdf(monkeypatch):
    calls = []
    monkeypatch.setattr(ident_mod, "pdfa_from_pikepdf", lambda p: calls.append(p) or (None, []))
    i = identify_file(str(CORPUS / "pdf" / "content-stream-errors.pdf"))
    assert i.puid == "fmt/17" and i.pdfa is None and calls == []
    identify_file(str(CORPUS / "pdf" / "content-stream-errors.pdf"), deep=True)
    assert len(calls) == 1


def test_truncated_pdf_is_flagged_at_identification():
    i = identify_file(str(CORPUS / "pdf" / "truncated-chinese-word-contract.pdf"))
    assert i.puid == "fmt/276" and any("%%EOF" in w for w in i.warnings)


def test_zero_byte_file_is_empty_not_pdf():
    i = identify_file(str(CORPUS / "formats" / "zero-byte-with-pdf-extension.pdf"))
    assert (i.mime, i.format_name, i.basis, i.puid) == ("application/x-empty", "空文件（0 字节）", "none", None)
    assert not i.extension_matches
    assert identify_head(b"", "x").mime == "application/x-empty"


def test_identify_head_fast_path():
    docx = (CORPUS / "formats" / "docx-with-tables.docx").read_bytes()
    assert identify_head(docx[:8192], "a.docx").puid == "fmt/412"  # local headers, no central directory
    assert identify_head(b"%PDF-2.0\n%\xe2\xe3\n1 0 obj", "x.pdf").puid == "fmt/1129"
    assert identify_head(b"%PDF-1.4\n<x:xmpmeta><pdfaid:part>3</pdfaid:part><pdfaid:conformance>A"
                         b"</pdfaid:conformance>", "x.pdf").puid == "fmt/479"
    jpg = (CORPUS / "scans" / "rapidocr-single-line.jpg").read_bytes()
    assert identify_head(jpg[:4096], "a.jpg").puid == "fmt/43"
    ofd = (CORPUS / "ofd" / "ofdrw-helloworld.ofd").read_bytes()
    assert identify_head(ofd[:4096], "a.ofd").basis == "ofd"
    assert identify_head(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, "a.doc").puid == "fmt/111"


def test_big5_and_gb18030_text():
    raw = (CORPUS / "text" / "big5-encoded-classical-chinese.txt").read_bytes()
    text, enc = decode_text(raw)
    assert enc == "big5" and "維基大典" in text
    i = identify_file(str(CORPUS / "text" / "big5-encoded-classical-chinese.txt"))
    assert i.format_name == "纯文本（Big5）"
    law = (CORPUS / "text" / "archives-law-2020.md").read_text("utf-8")
    assert decode_text(law.encode("gb18030")) == (law, "gb18030")
    assert decode_text(law.encode("utf-8")) == (law, "utf-8")


def test_unknown_content_falls_back_to_fido_then_libmagic(tmp_path):
    ttf = tmp_path / "font.bin"  # fido's TrueType signature; no magic family of ours
    ttf.write_bytes(b"\x00\x01\x00\x00\x00\x0a\x00\x80\x00\x03\x00\x20" + b"OS/2" + b"\0" * 12 + b"cmap" + b"\0" * 12
                    + b"glyf" + b"\0" * 12 + b"head" + b"\0" * 12 + b"hhea" + b"\0" * 12 + b"hmtx" + b"\0" * 12
                    + b"loca" + b"\0" * 12 + b"maxp" + b"\0" * 12 + b"name" + b"\0" * 12 + b"post" + b"\0" * 12)
    i = identify_file(str(ttf))
    assert (i.puid, i.basis) == ("x-fmt/453", "fido")
    junk = tmp_path / "junk.dat"
    junk.write_bytes(bytes(range(256)) * 10)
    j = identify_file(str(junk))
    assert j.puid is None and j.basis in ("magic", "none")


@pytest.mark.parametrize("data", [b"PK\x03\x04" + b"\xff" * 40, b"%PDF-", b"\xff\xd8\xff", b"II*\x00",
                                  b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\xff" * 1000, b"RIFF\xff\xff\xff\xffWAVE",
                                  b"\x00\x00\x00\x08ftyp", os.urandom(3000), b"<?xml version='1.0'?><a>"])
def test_never_raises_on_damaged_or_random_input(tmp_path, data):
    p = tmp_path / "x.bin"
    p.write_bytes(data)
    assert identify_file(str(p)).mime
    assert identify_head(data, "x.bin").mime


def test_unreadable_paths_do_not_raise(tmp_path):
    assert "无法读取" in identify_file(str(tmp_path / "missing.pdf")).warnings[0]
    assert identify_file(str(tmp_path)).basis == "none"


def test_zip_cut_short_still_identified_from_local_headers(tmp_path):
    data = (CORPUS / "formats" / "docx-with-tables.docx").read_bytes()
    p = tmp_path / "cut.docx"
    p.write_bytes(data[:4000])
    i = identify_file(str(p))
    assert i.puid == "fmt/412" and any("中央目录" in w for w in i.warnings)


def test_odf_version_decides_the_puid(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.spreadsheet")
        z.writestr("META-INF/manifest.xml", '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:'
                                            'xmlns:manifest:1.0" manifest:version="1.2"/>')
        z.writestr("content.xml", "<a/>")
    p = tmp_path / "s.ods"
    p.write_bytes(buf.getvalue())
    assert identify_file(str(p)).puid == "fmt/295"
