"""DA/T 48-2009 EEP writer: schema-valid output, byte-exact round trip through parse_eep, SM2 signatures that
break when one character or one Base64 byte changes, and the canonical form they cover."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import re
import shutil
import subprocess
import tracemalloc
from pathlib import Path

import pytest
from lxml import etree

from conftest import CORPUS, IN_CI  # noqa: E402  (the corpus beside the clone, as CI lays it out)
from dangan.capture.eep import parse_eep
from dangan.checks.model import FileUnderCheck, RecordUnderCheck
from dangan.errors import ValidationFailed
from dangan.packages.eep_writer import canonicalize_element, verify_eep_signatures, write_eep
from dangan.packages.sm2 import Sm2Signer

XSD = CORPUS / "schemas" / "dat48-eep-2009.xsd"
NS = "http://www.saac.gov.cn/standards/ERM/encapsulation"
# characters GBK cannot encode: CJK Ext-B 𠮷, U+9FCF 鿏, the euro sign, an emoji, and the 〇 of dates
TITLE = "关于𠮷鿏€📄〇号文件的通知（试行）"
WHEN = dt.datetime(2024, 3, 5, 10, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))

MAIN = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
ATTACHMENT = "附件：名单\r\n张三\r\n".encode("gb18030")


def _opener(data: bytes):  # noqa: ANN202
    return lambda: io.BytesIO(data)


def _record(**md_overrides: object) -> RecordUnderCheck:
    md: dict[str, object] = {
        "year": 2024, "date": "2024-03-05", "retention_period": "D30", "responsible": "示范市人民政府办公室",
        "security_level": "公开", "doc_number": "示政办发〔2024〕12号", "keywords": ["档案", "通知"], "pages": 3,
        "doc_type": "通知", "remarks": "A & B <C>", "department": "BGS",
    }
    md.update(md_overrides)
    return RecordUnderCheck(
        ref="OA-2024-000123", title=TITLE, archival_code="Z109-WS·2024-D30-BGS-0012", fonds_code="Z109",
        metadata=md,
        files=[
            FileUnderCheck(ref="f1", name="正文.pdf", role="main", size=len(MAIN),
                           sha256=hashlib.sha256(MAIN).hexdigest(), format_name="PDF 1.7", opener=_opener(MAIN)),
            FileUnderCheck(ref="f2", name="附件 1.txt", role="attachment", size=len(ATTACHMENT), opener=_opener(ATTACHMENT)),
        ],
    )


def _write(record: RecordUnderCheck | None = None, signer: Sm2Signer | None = None) -> tuple[bytes, dict]:
    buf = io.BytesIO()
    res = write_eep(record or _record(), buf, unit="示范市人民政府办公室", signer=signer, created_at=WHEN)
    return buf.getvalue(), res


@pytest.fixture(scope="module")
def signer() -> Sm2Signer:
    return Sm2Signer.generate()


@pytest.fixture(scope="module")
def signed(signer: Sm2Signer) -> bytes:
    return _write(signer=signer)[0]


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    return etree.XMLSchema(etree.parse(str(XSD), parser))


def test_signed_and_unsigned_packages_validate_against_the_corpus_xsd(signed: bytes, schema: etree.XMLSchema) -> None:
    for data in (signed, _write()[0]):
        doc = etree.fromstring(data)
        assert schema.validate(doc), schema.error_log
        assert doc.tag == f"{{{NS}}}电子文件封装包"
    unsigned = etree.fromstring(_write()[0])
    assert unsigned.find(f"{{{NS}}}电子签名块") is None
    # the validation is real: dropping a mandatory element (责任者) makes the same document invalid
    doc = etree.fromstring(signed)
    el = doc.find(f".//{{{NS}}}内容描述/{{{NS}}}责任者")
    el.getparent().remove(el)
    assert not schema.validate(doc)
    assert "责任者" in str(schema.error_log)
    # and so does a wrong order (版本 before 封装包格式描述)
    doc = etree.fromstring(signed)
    doc.insert(0, doc[1])
    assert not schema.validate(doc)


def test_parse_eep_reads_back_every_file_byte_for_byte(signed: bytes) -> None:
    pkg = parse_eep(io.BytesIO(signed), xsd_path=XSD)
    assert [f.name for f in pkg.files] == ["正文.pdf", "附件 1.txt"]
    assert [f.sha256 for f in pkg.files] == [hashlib.sha256(MAIN).hexdigest(), hashlib.sha256(ATTACHMENT).hexdigest()]
    assert pkg.files[0].read() == MAIN and pkg.files[1].read() == ATTACHMENT
    assert [f.role for f in pkg.files] == ["主文档", "附属文档"]
    assert [f.declared_size for f in pkg.files] == [str(len(MAIN)), str(len(ATTACHMENT))]
    assert pkg.files[0].format == "PDF 1.7" and pkg.files[1].extension == "txt"
    md = pkg.metadata
    assert md["title"] == TITLE
    assert md["date"] == "2024-03-05" and md["year"] == 2024 and md["retention_period"] == "D30"
    assert md["doc_number"] == "示政办发〔2024〕12号" and md["responsible"] == "示范市人民政府办公室"
    assert md["keywords"] == ["档案", "通知"] and md["pages"] == 3 and md["remarks"] == "A & B <C>"
    assert pkg.sender_ref == "OA-2024-000123" and pkg.fonds_code == "Z109" and pkg.department == "BGS"
    assert pkg.signatures_present and pkg.package_type == "原始型" and pkg.created_by == "示范市人民政府办公室"
    assert pkg.created_at == "2024-03-05T10:00:00+08:00"
    assert not pkg.raw_problems
    pkg.close()
    with pytest.raises(UnicodeEncodeError):
        TITLE.encode("gbk")  # the title really is GBK-unfriendly


def test_archival_code_is_the_leading_text_of_dang_hao(signed: bytes) -> None:
    doc = etree.fromstring(signed)
    code = doc.find(f".//{{{NS}}}文件实体/{{{NS}}}档号")
    assert code.text.strip() == "Z109-WS·2024-D30-BGS-0012"
    assert code.find(f"{{{NS}}}室编件号").text == "12" and code.find(f"{{{NS}}}保管期限").text == "定期30年"


def test_signatures_verify(signed: bytes, signer: Sm2Signer) -> None:
    checks = verify_eep_signatures(io.BytesIO(signed))
    assert [c.signature_valid for c in checks] == [True, True]
    assert checks[0].covers_document is True and checks[0].algorithm == "SM2/SM3" and checks[0].ok
    assert checks[0].signer == "示范市人民政府办公室"
    assert "验证通过" in checks[0].message and "锁定签名" in checks[1].message
    trusted = verify_eep_signatures(io.BytesIO(signed), trusted_keys=[signer.verifier.spki_der()])
    assert all(c.signature_valid for c in trusted)
    other = verify_eep_signatures(io.BytesIO(signed), trusted_keys=[Sm2Signer.generate().verifier.spki_der()])
    assert [c.signature_valid for c in other] == [False, False]
    assert "不在受信任" in other[0].message


def test_changing_one_character_of_the_title_breaks_the_signature(signed: bytes) -> None:
    tampered = signed.replace(TITLE.encode(), TITLE.replace("通知", "通告").encode(), 1)
    assert tampered != signed and len(tampered) == len(signed)
    checks = verify_eep_signatures(io.BytesIO(tampered))
    assert checks[0].signature_valid is False and "被改动" in checks[0].message
    assert checks[1].signature_valid is True  # the lock covers the 电子签名 only, and that is unchanged
    assert not checks[0].ok


def test_changing_one_byte_of_the_base64_content_breaks_the_signature(signed: bytes) -> None:
    m = re.search(rb'<\xe7\xbc\x96\xe7\xa0\x81\xe6\x95\xb0\xe6\x8d\xae [^>]*>\s*([A-Za-z0-9+/]{40})', signed)
    assert m is not None
    pos = m.start(1) + 20
    flipped = b"B" if signed[pos:pos + 1] != b"B" else b"C"
    tampered = signed[:pos] + flipped + signed[pos + 1:]
    pkg = parse_eep(io.BytesIO(tampered), xsd_path=XSD)  # still a valid package, with other bytes in it
    assert pkg.files[0].sha256 != hashlib.sha256(MAIN).hexdigest()
    pkg.close()
    assert [c.signature_valid for c in verify_eep_signatures(io.BytesIO(tampered))] == [False, True]


def test_changed_signature_block_breaks_the_lock_and_the_signature(signed: bytes) -> None:
    sig_b64 = re.search("<签名结果>([^<]+)</签名结果>".encode(), signed).group(1)  # the first is the 电子签名's
    raw = bytearray(base64.b64decode(sig_b64))
    raw[-1] ^= 1
    tampered = signed.replace(sig_b64, base64.b64encode(bytes(raw)), 1)
    assert [c.signature_valid for c in verify_eep_signatures(io.BytesIO(tampered))] == [False, False]
    renamed = signed.replace("<签名人>示范市人民政府办公室</签名人>".encode(), "<签名人>别人</签名人>".encode(), 1)
    assert [c.signature_valid for c in verify_eep_signatures(io.BytesIO(renamed))] == [True, False]


def test_unsigned_package_has_no_signature_checks() -> None:
    assert verify_eep_signatures(io.BytesIO(_write()[0])) == []


def test_canonical_form_is_exclusive_c14n_of_the_signed_object(signed: bytes, signer: Sm2Signer) -> None:
    doc = etree.fromstring(signed)
    lxml_c14n = etree.tostring(doc.find(f"{{{NS}}}被签名对象"), method="c14n", exclusive=True, with_comments=False)
    ours = canonicalize_element(signed)
    assert ours == lxml_c14n
    assert ours.startswith(f'<被签名对象 xmlns="{NS}" eep版本="2009">'.encode())
    sig = base64.b64decode(doc.find(f"{{{NS}}}电子签名块/{{{NS}}}电子签名/{{{NS}}}签名结果").text)
    assert signer.verifier.verify(ours, sig)


def test_streaming_canonicalizer_matches_lxml_on_awkward_xml() -> None:
    xml = f"""<?xml version="1.0"?>
<!-- outside -->
<电子文件封装包 xmlns="{NS}" xmlns:a="urn:a" xmlns:b="urn:b" a:x="1"><?pi outside?>
<被签名对象 z="3" b:y="&amp;&lt;&gt;&quot;&#9;&#10;&#13;" a="1" a:z="2" xml:lang="zh">
 <x:foo xmlns:x="urn:x" xmlns:unused="urn:u">t&#13;ext &amp; <![CDATA[<cdata> & ]]> &gt; "q"<!-- c --><?p  d  ?><?q?></x:foo>
 <bar xmlns=""><baz xmlns="urn:d"><a:q/></baz></bar><e></e><f/>
 <g xmlns:a="urn:a2" a:k="v"><h a:k="w"/></g><i xmlns="{NS}"/> 文字 𠮷\r\n
</被签名对象></电子文件封装包>""".encode()
    el = etree.fromstring(xml).find(f"{{{NS}}}被签名对象")
    assert canonicalize_element(xml) == etree.tostring(el, method="c14n", exclusive=True, with_comments=False)


def test_doctype_is_refused_when_verifying(signed: bytes) -> None:
    bomb = signed.replace(b"?>\n", b'?>\n<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>\n', 1)
    with pytest.raises(ValidationFailed) as e:
        verify_eep_signatures(io.BytesIO(bomb))
    assert e.value.code == "EEP_DTD_FORBIDDEN"


def test_malformed_package_gives_a_failing_check(signed: bytes) -> None:
    cut = signed[:-200]  # the signature block is there, the end is not
    checks = verify_eep_signatures(io.BytesIO(cut))
    assert len(checks) == 1 and checks[0].signature_valid is False and "不是格式正确的 XML" in checks[0].message
    # an unsigned package that cannot be parsed (e.g. GBK, which expat does not read) has no signature to fail
    unsigned = _write()[0].replace(b'encoding="UTF-8"', b'encoding="GBK"', 1)
    assert verify_eep_signatures(io.BytesIO(unsigned)) == []


def test_missing_metadata_is_refused_before_writing() -> None:
    rec = _record(responsible="", date=None, retention_period="永远")
    rec.seq, rec.archival_code = None, None
    buf = io.BytesIO()
    with pytest.raises(ValidationFailed) as e:
        write_eep(rec, buf, unit="办公室")
    assert e.value.code == "EEP_METADATA_INVALID"
    assert {p.field for p in e.value.problems} == {"responsible", "date", "retention_period", "seq"}
    assert buf.getvalue() == b""


def test_file_that_differs_from_its_declared_digest_stops_the_package() -> None:
    rec = _record()
    rec.files[0].sha256 = "0" * 64
    with pytest.raises(ValidationFailed) as e:
        write_eep(rec, io.BytesIO(), unit="办公室")
    assert e.value.code == "EEP_SOURCE_DIGEST_MISMATCH" and "正文.pdf" in e.value.message


def test_empty_file_and_local_path(tmp_path: Path, schema: etree.XMLSchema) -> None:
    p = tmp_path / "空.txt"
    p.write_bytes(b"")
    rec = _record()
    rec.files = [FileUnderCheck(ref="f1", name="空.txt", local_path=str(p))]
    data, res = _write(rec)
    assert schema.validate(etree.fromstring(data))
    assert res["files"][0]["size"] == 0
    pkg = parse_eep(io.BytesIO(data), xsd_path=XSD)
    assert pkg.files[0].size == 0 and pkg.files[0].read() == b""
    pkg.close()


class _Discard(io.RawIOBase):
    def __init__(self) -> None:
        self.n = 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # noqa: ANN001
        self.n += len(b)
        return len(b)


def test_large_file_is_streamed_not_held_in_memory(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    size = 10 * 2**20
    with big.open("wb") as fh:
        for i in range(10):
            fh.write(hashlib.sha256(str(i).encode()).digest() * (2**20 // 32))
    rec = _record()
    rec.files = [FileUnderCheck(ref="f1", name="big.bin", size=size, local_path=str(big))]
    sink = _Discard()
    tracemalloc.start()
    try:
        res = write_eep(rec, sink, unit="办公室", signer=Sm2Signer.generate())  # type: ignore[arg-type]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert res["files"][0]["size"] == size and sink.n > size * 4 // 3
    assert peak < 7 * 2**20, f"peak {peak / 2**20:.1f} MB for a {size / 2**20:.0f} MB file"


@pytest.mark.skipif(not shutil.which("openssl") and not IN_CI, reason="no openssl CLI (under CI=true: must run)")
def test_openssl_verifies_the_package_signature(signed: bytes, tmp_path: Path) -> None:
    doc = etree.fromstring(signed)
    sig_el = doc.find(f"{{{NS}}}电子签名块/{{{NS}}}电子签名")
    (tmp_path / "m.bin").write_bytes(canonicalize_element(signed))
    (tmp_path / "s.der").write_bytes(base64.b64decode(sig_el.find(f"{{{NS}}}签名结果").text))
    (tmp_path / "k.der").write_bytes(base64.b64decode(sig_el.find(f"{{{NS}}}证书块/{{{NS}}}证书").text))
    r = subprocess.run(["openssl", "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin", "-keyform", "DER",
                        "-inkey", str(tmp_path / "k.der"), "-in", str(tmp_path / "m.bin"), "-sigfile",
                        str(tmp_path / "s.der"), "-pkeyopt", "distid:1234567812345678"], capture_output=True, text=True)
    if "sm2" in r.stderr.lower() and "unsupported" in r.stderr.lower() and not IN_CI:  # pragma: no cover
        pytest.skip("openssl without SM2")
    assert r.returncode == 0, r.stdout + r.stderr
