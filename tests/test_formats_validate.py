"""Validation on real files made by other software (../shared/corpus): each file opens, or a reason a person can act on."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import pytest

from conftest import (
    CORPUS,  # noqa: E402  (the corpus beside the clone, as CI lays it out)
    IN_CI,  # noqa: E402
)
from dangan.formats.identify import identify_file
from dangan.formats.validate import validate

pytestmark = pytest.mark.skipif(not CORPUS.is_dir() and not IN_CI, reason=f"test corpus not found at {CORPUS}")  # under CI=true: must run

# file, status, a phrase that must be in the problems (invalid) or warnings ("" = none required)
CASES = [
    ("pdf/chinese-word-contract-simsun.pdf", "valid", "线性化"),   # Word's hint tables disagree: harmless
    ("pdf/pdfa-1b-verapdf-pass.pdf", "valid", ""),
    ("pdf/ocr-sandwich-scanned-page.pdf", "valid", ""),
    ("pdf/jhove-one-byte-missing.pdf", "valid", "交叉引用表损坏"),    # qpdf rebuilds the xref, nothing lost
    ("pdf/encrypted-aes256-r6.pdf", "invalid", "加密"),
    ("pdf/encrypted-userpw-user.pdf", "invalid", "加密"),
    ("pdf/signed-acrobat-sign-restricted.pdf", "invalid", "加密"),   # owner restrictions only: still 加密
    ("pdf/damaged-stream.pdf", "invalid", "无法解码"),
    ("pdf/truncated-chinese-word-contract.pdf", "invalid", "截断"),
    ("pdf/fuzz-malformed.pdf", "invalid", "无法打开"),
    ("pdf/corrupted-zen-of-python.pdf", "invalid", "Adler-32"),     # qpdf ignores the checksum; we do not
    ("pdf/content-stream-errors.pdf", "invalid", "内容流有语法错误"),
    ("formats/tiff-g3-fax-scan.tif", "valid", ""),
    ("formats/tiff-g4-valid-jhove.tif", "valid", ""),
    ("formats/tiff-invalid-jhove.tif", "invalid", "TIFF"),
    ("formats/jpeg-corrupt-bytes-removed.jpg", "invalid", "无法解析"),
    ("formats/gif-corrupt-bytes-removed.gif", "invalid", "无法解码"),
    ("formats/jpeg2000-damaged-header.jp2", "invalid", "无法解码"),
    ("formats/jpeg2000-photo.jp2", "valid", ""),
    ("formats/heic-page-photo.heic", "unchecked", "HEIC"),
    ("scans/rapidocr-vertical-classical-scan.png", "valid", ""),
    ("scans/paddleocr-lab-report-photo.jpg", "valid", ""),
    ("formats/wav-valid-pcm.wav", "valid", ""),
    ("formats/wav-invalid-chunk-id.wav", "invalid", "块标识"),
    ("formats/mp4-xray-video.mp4", "valid", "顶层盒"),
    ("formats/docx-with-tables.docx", "valid", ""),
    ("formats/docx-misnamed-as.doc", "valid", "扩展名 .doc"),
    ("formats/xlsx-stanley-cups.xlsx", "valid", ""),
    ("formats/pptx-malformed.pptx", "invalid", "占位符"),
    ("formats/odt-simple.odt", "valid", ""),
    ("formats/epub-small.epub", "valid", ""),
    ("formats/xlsx-password-protected.xlsx", "invalid", "加密"),
    ("formats/word97-club-report.doc", "valid", "容器结构"),
    ("formats/xls-legacy.xls", "valid", "容器结构"),
    ("formats/email-outlook.msg", "valid", "容器结构"),
    ("formats/zip-unicode-and-tab-filenames.zip", "valid", ""),
    ("formats/zero-byte-with-pdf-extension.pdf", "invalid", "空"),
    ("formats/not-a-pdf-text-named.pdf", "valid", "扩展名 .pdf"),
    ("formats/rtf-simple.rtf", "valid", ""),
    ("text/big5-encoded-classical-chinese.txt", "valid", ""),
    ("schemas/mets-1.12.1.xsd", "valid", ""),
]


@pytest.mark.parametrize("rel,status,phrase", CASES, ids=[c[0] for c in CASES])
def test_corpus_file_validates_with_a_reason(rel, status, phrase):
    v = validate(str(CORPUS / rel))
    assert v.status == status, (v.problems, v.warnings)
    if status == "invalid":
        assert v.problems and all(isinstance(p, str) and p for p in v.problems)
        assert any(phrase in p for p in v.problems), v.problems
    elif phrase:
        assert any(phrase in w for w in v.warnings), v.warnings
    if status == "valid":
        assert not v.problems


def test_encrypted_files_are_flagged_encrypted():
    for rel in ("pdf/encrypted-aes256-r6.pdf", "pdf/encrypted-userpw-user.pdf", "formats/xlsx-password-protected.xlsx",
                "pdf/signed-acrobat-sign-restricted.pdf"):
        assert validate(str(CORPUS / rel)).encrypted, rel
    assert not validate(str(CORPUS / "pdf/pdfa-1b-verapdf-pass.pdf")).encrypted


def test_pdf_page_count_and_pdfa_claim():
    assert validate(str(CORPUS / "pdf/content-stream-errors.pdf")).page_count == 4
    v = validate(str(CORPUS / "pdf/ocr-sandwich-scanned-page.pdf"))
    assert v.page_count == 1 and v.details["pdfa"] == "2B"
    assert validate(str(CORPUS / "formats/tiff-g4-valid-jhove.tif")).details["compression"] == "group4"


def test_signature_digest_verifies_and_a_flipped_byte_breaks_it(tmp_path):
    src = CORPUS / "pdf" / "signed-acrobat-sign-restricted.pdf"
    v = validate(str(src))
    assert len(v.signatures) == 1
    s = v.signatures[0]
    assert (s.digest_valid, s.signature_valid, s.covers_document) == (True, True, True), s.message
    assert "Adobe Acrobat Sign" in s.signer and "SHA256" in s.algorithm.upper()
    assert "离线无法确认" in s.message  # trust in the chain is not claimed
    data = bytearray(src.read_bytes())
    data[12] ^= 0x01  # the binary comment on line 2: inside the signed range, harmless to the PDF syntax
    bad = tmp_path / "tampered.pdf"
    bad.write_bytes(bytes(data))
    t = validate(str(bad))
    assert len(t.signatures) == 1 and t.signatures[0].digest_valid is False, t.signatures
    assert any("签名" in p for p in t.problems)


def _pdf_with(extra_catalog: bytes, extra_objs: list[bytes]) -> bytes:
    objs = [b"<< /Type /Catalog /Pages 2 0 R " + extra_catalog + b" >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << >> >>", *extra_objs]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def test_javascript_and_embedded_files_are_warned_about(tmp_path):
    p = tmp_path / "js.pdf"
    p.write_bytes(_pdf_with(b"/OpenAction 4 0 R /Names << /EmbeddedFiles << /Names [(a.txt) 5 0 R] >> >>",
                            [b"<< /S /JavaScript /JS (app.alert(1)) >>",
                             b"<< /Type /Filespec /F (a.txt) /EF << /F 6 0 R >> >>",
                             b"<< /Type /EmbeddedFile /Length 2 >>\nstream\nhi\nendstream"]))
    v = validate(str(p))
    assert v.status == "valid", v.problems
    assert any("JavaScript" in w for w in v.warnings) and any("嵌入文件" in w for w in v.warnings)


def test_decompression_bomb_is_refused_without_allocating(tmp_path):
    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    p = tmp_path / "bomb.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0))
                  + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
    v = validate(str(p))
    assert v.status == "invalid" and any("解压炸弹" in x for x in v.problems), v.problems


def test_every_frame_of_a_multipage_tiff_is_decoded(tmp_path):
    from PIL import Image

    pages = [Image.new("1", (800, 1100), color=1) for _ in range(3)]
    for i, pg in enumerate(pages):
        pg.paste(0, (100 * i, 100, 100 * i + 300, 400))
    p = tmp_path / "fax.tif"
    pages[0].save(p, save_all=True, append_images=pages[1:], compression="group4")
    v = validate(str(p))
    assert v.status == "valid" and v.details["frames"] == 3, v.problems
    # damage the last page's strip only: the first two still decode, the third must be caught
    with Image.open(p) as im:
        im.seek(2)
        strips = list(zip(im.tag_v2[273], im.tag_v2[279], strict=True))  # StripOffsets, StripByteCounts
    data = bytearray(p.read_bytes())
    for off, n in strips:
        data[off:off + n] = b"\0" * n
    bad = tmp_path / "fax-bad.tif"
    bad.write_bytes(bytes(data))
    b = validate(str(bad))
    assert b.status == "invalid" and any("第 3 帧" in x for x in b.problems), b.problems


def _zip(entries: dict[str, bytes], stored: bool = True) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED) as z:
        for n, d in entries.items():
            z.writestr(n, d)
    return buf.getvalue()


def test_zip_crc_damage_and_encrypted_entries(tmp_path):
    data = bytearray(_zip({"a.txt": b"hello archive " * 20}))
    i = data.find(b"hello")
    data[i] ^= 0x20
    p = tmp_path / "crc.zip"
    p.write_bytes(bytes(data))
    v = validate(str(p))
    assert v.status == "invalid" and any("CRC" in x for x in v.problems), v.problems
    enc = bytearray(_zip({"secret.txt": b"x" * 50}))
    enc[6] |= 1                                   # local header: general purpose flag bit 0 (encrypted)
    c = enc.find(b"PK\x01\x02")
    enc[c + 8] |= 1                               # central directory copy of the flag
    q = tmp_path / "enc.zip"
    q.write_bytes(bytes(enc))
    e = validate(str(q))
    assert e.encrypted and e.status == "invalid" and any("加密" in x for x in e.problems)


def test_docx_whose_main_part_is_broken_xml_is_invalid(tmp_path):
    src = zipfile.ZipFile(CORPUS / "formats" / "docx-with-tables.docx")
    entries = {n: src.read(n) for n in src.namelist()}
    entries["word/document.xml"] = entries["word/document.xml"][:-40]
    p = tmp_path / "broken.docx"
    p.write_bytes(_zip(entries, stored=False))
    v = validate(str(p))
    assert v.status == "invalid" and any("word/document.xml" in x and "XML" in x for x in v.problems), v.problems


def test_rar_and_7z_are_nonpublic_compression(tmp_path):
    for name, head in (("a.rar", b"Rar!\x1a\x07\x01\x00" + b"\0" * 40), ("a.7z", b"7z\xbc\xaf\x27\x1c" + b"\0" * 40)):
        p = tmp_path / name
        p.write_bytes(head)
        v = validate(str(p))
        assert v.nonpublic_compression and v.status == "unchecked", name


def test_xml_doctype_refused_and_malformed_rejected(tmp_path):
    ok = tmp_path / "ok.xml"
    ok.write_text('<?xml version="1.0" encoding="UTF-8"?><档案><题名>通知</题名></档案>', encoding="utf-8")
    assert validate(str(ok)).status == "valid"
    dt = tmp_path / "dtd.xml"
    dt.write_text('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xx">]><a>&x;</a>')
    v = validate(str(dt))
    assert v.status == "invalid" and "DOCTYPE" in v.problems[0]
    bad = tmp_path / "bad.xml"
    bad.write_text('<?xml version="1.0"?><a><b></a>')
    w = validate(str(bad))
    assert w.status == "invalid" and "格式良好" in w.problems[0]


def test_text_in_gb18030_is_valid_and_mixed_bytes_are_not(tmp_path):
    law = (CORPUS / "text" / "archives-law-2020.md").read_text("utf-8")
    gb = tmp_path / "law.txt"
    gb.write_bytes(law.encode("gb18030"))
    v = validate(str(gb))
    assert v.status == "valid" and v.details["encoding"] == "gb18030"
    mixed = tmp_path / "mixed.txt"
    mixed.write_bytes(law.encode("utf-8") + b"\xff\xfe\xfa" + law.encode("utf-8"))
    m = validate(str(mixed))
    assert m.status == "invalid", m


def test_truncated_wav_and_mp4(tmp_path):
    wav = (CORPUS / "formats" / "wav-valid-pcm.wav").read_bytes()
    p = tmp_path / "cut.wav"
    p.write_bytes(wav[:len(wav) // 2])
    v = validate(str(p))
    assert v.status == "invalid" and any("截断" in x for x in v.problems), v.problems
    mp4 = (CORPUS / "formats" / "mp4-xray-video.mp4").read_bytes()
    q = tmp_path / "cut.mp4"
    q.write_bytes(mp4[:len(mp4) - 1000])
    w = validate(str(q))
    assert w.status == "invalid" and any("截断" in x for x in w.problems), w.problems


def test_ole_with_a_truncated_body_is_invalid(tmp_path):
    doc = (CORPUS / "formats" / "word97-club-report.doc").read_bytes()
    p = tmp_path / "cut.doc"
    p.write_bytes(doc[:6000])
    v = validate(str(p))
    assert v.status == "invalid" and v.problems[0].startswith("OLE2 复合文档结构损坏"), v.problems


@pytest.mark.parametrize("data", [b"%PDF-1.4\n" + b"\xff" * 300, b"PK\x03\x04" + b"\x00" * 100, b"\xff\xd8\xff\xe0",
                                  b"II*\x00\xff\xff\xff\xff", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\xff" * 600,
                                  b"RIFF\x10\x00\x00\x00WAVEfmt ", b"\x00\x00\x00\x18ftypisom\xff\xff\xff\xff",
                                  b"GIF89a\xff\xff"])
def test_never_raises_on_garbage(tmp_path, data):
    p = tmp_path / "g.bin"
    p.write_bytes(data)
    v = validate(str(p))
    assert v.status in ("invalid", "unchecked"), v
    assert validate(str(tmp_path / "missing.bin")).status in ("invalid", "unchecked")


def test_validate_accepts_an_identification_made_before(tmp_path):
    path = str(CORPUS / "formats" / "tiff-with-wrong-extension.prk")
    ident = identify_file(path)
    v = validate(path, ident)
    assert v.status == "valid" and any(".prk" in w for w in v.warnings)


def test_truncated_images_stay_invalid_after_weasyprint_is_imported() -> None:
    """WeasyPrint sets Pillow's LOAD_TRUNCATED_IMAGES process-wide on import; validation must not inherit it."""
    import weasyprint  # noqa: F401
    from PIL import ImageFile

    from dangan.formats.identify import identify_file
    from dangan.formats.validate import validate

    ImageFile.LOAD_TRUNCATED_IMAGES = True
    for name in ("gif-corrupt-bytes-removed.gif", "jpeg2000-damaged-header.jp2", "jpeg-corrupt-bytes-removed.jpg"):
        path = str(CORPUS / "formats" / name)
        assert validate(path, identify_file(path, name), name=name).status == "invalid", name
