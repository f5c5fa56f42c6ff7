"""OFD validation on real files from seven producers (../shared/corpus/ofd) and on files broken on purpose."""

from __future__ import annotations

import io
import struct
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from conftest import CORPUS  # noqa: E402  (the corpus beside the clone, as CI lays it out)
from dangan.formats import ofd
from dangan.formats.ofd import looks_like_ofd, validate_ofd

OFD_DIR = CORPUS / "ofd"

# What each corpus file is, established by reading the parts and recomputing every digest and signature
# by hand (see the notes per producer):
#   name: (status, pages, [(signer, covers_document, digest_valid, signature_valid)], warning fragments)
EXPECTED: dict[str, tuple[str, int, list[tuple[str, bool | None, bool | None, bool | None]], list[str]]] = {
    # Huhuang SDK (KingGrid seal, SES V4 by GOMAIN): all 20 referenced digests (SM3) match, dataHash = SM3 of
    # Signature.xml, TBS_Sign and seal signatures verify. But OFD.xml (DocInfo with the invoice amounts in
    # CustomData) is not among the References, so the signature does not cover the whole document.
    "einvoice-huhuang-5pages-signed.ofd": (
        "valid", 5, [("全国统一发票监制章国家税务总局重庆市税务局", False, True, True)], ["OFD.xml"]),
    # nuonuo (AntChain seal, V4): everything verifies. Document.xml lists one page; Doc_0/Pages/Page_1 is in
    # the package (and even signed) but no Page element refers to it, so the invoice has 1 page, not 2.
    "einvoice-nuonuo-signed.ofd": (
        "valid", 1, [("国家税务总局浙江省税务局", True, True, True)], ["Doc_0/Pages/Page_1/Content.xml"]),
    # Suwell 2024 fully-digital invoice: unsigned; CommonData has no PageArea (the page carries its own Area).
    "einvoice-suwell-2024.ofd": ("valid", 1, [], ["PageArea"]),
    # SuwellFormSDK 2020 invoice (GOMAIN seal, V4): everything verifies and covers every file. Its custom tag
    # file is not namespace-well-formed XML (<:eInvoice xmlns:="">): a warning, it is not layout content.
    "einvoice-suwellformsdk-2020-signed.ofd": (
        "valid", 1, [("浙江省税务监制章电子证书", True, True, True)], ["CustomTag.xml"]),
    # iOFD 2.1.1 (GM/T 0031 V1 seal). CheckMethod 1.2.156.10197.1.401.2 is SM3 with SM2 Z preprocessing
    # with the signer's key: that reproduces the digest of Seal.esl, whose ZIP date is the signing time
    # (2020-01-25). Every XML part carries the ZIP date 2020-08-22 (re-serialised later, dom4j-style blank
    # line after the declaration) and none matches its CheckValue, nor does dataHash match Signature.xml:
    # the document was changed after it was sealed. The SM2 value verifies as a signature over dataHash
    # itself (not over DER(TBS_Sign) as GM/T 0031 says); the seal maker's signature verifies.
    "iofd-seal-esl.ofd": ("invalid", 2, [("www.dms360.cn", True, False, True)], ["TBS_Sign"]),
    # OFD R&W attachment sample: unsigned, attachment referenced with an absolute path.
    "ofdrw-attachment.ofd": ("valid", 1, [], []),
    # Chinese directory names are flagged UTF-8 and read fine; the data file in that directory is not used.
    "ofdrw-chinese-dir-names.ofd": ("valid", 1, [], ["数据文件.txt"]),
    # Plain digital signature: digests match, but SignedValue.dat is a bare SM2 (r, s) with no certificate or
    # public key in the package, so the signature value cannot be verified.
    "ofdrw-digital-sign.ofd": ("valid", 1, [("", True, True, None)], ["未能完全验证"]),
    "ofdrw-helloworld.ofd": ("valid", 1, [], []),
    # GM/T 0099 integrity protection: SignedData (GM OID) over SM3(OFDEntries.xml) verifies and the file list
    # matches the package, but the list holds names only, so page contents are not protected.
    "ofdrw-integrity-protected.ofd": ("valid", 2, [("Test Certificate", False, True, True)], ["OFDEntries.xml"]),
    # OFD R&W SES V4 seal: verifies (Seal.esl equals the seal inside SignedValue.dat). It was re-signed in
    # 2026 with a test seal and certificate that expired in 2022: warnings, not failures.
    "ofdrw-ses-v4-seal.ofd": ("valid", 1, [("Test Certificate", True, True, True)], ["印章有效期", "证书有效期"]),
    # SurRead: absolute "/Doc_0/..." and relative "Pages/Page_Insert_55_2/..." locations and a KingGridTPLS
    # template folder. Readers that assume Doc_N/Pages/Page_N and Tpls trip on it; per the spec all resolve.
    "surread-nonstandard-paths.ofd": ("valid", 2, [], []),
    "suwell-convertor-vector.ofd": ("valid", 1, [], []),
    # WPS: images are stored under DOC_0/Res while DocumentRes.xml is in Doc_0 (found only ignoring case);
    # PhysicalBox written without the OFD namespace.
    "wps-jpeg-case-mismatch.ofd": ("valid", 2, [], ["忽略大小写", "DOC_0/Res/Image_4.JPEG", "PhysicalBox"]),
    "wps-text-small.ofd": ("valid", 1, [], []),
}


def test_corpus_is_complete():
    assert sorted(p.name for p in OFD_DIR.glob("*.ofd")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file(name):
    status, pages, sigs, warning_bits = EXPECTED[name]
    started = time.perf_counter()
    v = validate_ofd(str(OFD_DIR / name))
    elapsed = time.perf_counter() - started
    assert v.status == status, v.problems
    assert v.page_count == pages
    assert not v.encrypted
    got = [(s.signer, s.covers_document, s.digest_valid, s.signature_valid) for s in v.signatures]
    assert got == sigs, [s.message for s in v.signatures]
    text = "\n".join(v.warnings)
    for bit in warning_bits:
        assert bit in text, v.warnings
    if status == "valid":
        assert v.problems == []
    assert elapsed < 1.5, f"{name} took {elapsed:.2f}s"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_is_recognised(name):
    with zipfile.ZipFile(OFD_DIR / name) as zf:
        assert looks_like_ofd(zf.namelist(), zf.read)


def test_metadata_from_docinfo():
    v = validate_ofd(str(OFD_DIR / "suwell-convertor-vector.ofd"))
    assert v.details["title"] == "蚌埠市国土资源局"
    assert v.details["author"] == "dddddd"
    assert v.details["creation_date"] == "2023-7-12"
    assert v.details["doc_id"] == "c90925c1-204b-11ee-bc99-e1933c99e093"
    inv = validate_ofd(str(OFD_DIR / "einvoice-huhuang-5pages-signed.ofd"))
    assert inv.details["custom_data"]["发票号码"] == "12235358"


def test_iofd_failure_names_the_changed_parts():
    v = validate_ofd(str(OFD_DIR / "iofd-seal-esl.ofd"))
    (s,) = v.signatures
    for part in ("Doc_0/Document.xml", "Doc_0/Pages/Page_0/Content.xml", "OFD.xml", "dataHash"):
        assert part in s.message
    assert "Seal.esl" not in s.message.split("签名后被修改")[1].split("；")[0]  # the untouched seal file matches
    assert any("签名/签章" in p for p in v.problems)


# --------------------------------------------------------------------------- corruptions


def _rewrite(src: Path, dest: Path, change: dict[str, bytes | None], add: dict[str, bytes] | None = None) -> Path:
    """Copy an OFD, replacing (bytes) or dropping (None) some entries, adding others."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename in change:
                if change[info.filename] is not None:
                    zout.writestr(info.filename, change[info.filename])
                continue
            zout.writestr(info, zin.read(info))
        for name, data in (add or {}).items():
            zout.writestr(name, data)
    return dest


def _entry(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as zf:
        return zf.read(name)


SEAL = OFD_DIR / "ofdrw-ses-v4-seal.ofd"
PAGE = "Doc_0/Pages/Page_0/Content.xml"


def test_one_byte_changed_in_signed_page(tmp_path):
    page = _entry(SEAL, PAGE)
    assert page.count(b"OFD Reader") == 1
    bad = _rewrite(SEAL, tmp_path / "t.ofd", {PAGE: page.replace(b"OFD Reader", b"QFD Reader")})
    v = validate_ofd(str(bad))
    assert v.status == "invalid"
    (s,) = v.signatures
    assert s.digest_valid is False
    assert PAGE in s.message and "签名后被修改" in s.message
    assert s.signature_valid is True          # the seal over Signature.xml itself is still intact
    assert any(PAGE in p for p in v.problems)


def test_reference_digest_recomputed_by_a_forger_is_caught_by_data_hash(tmp_path):
    import base64
    import hashlib

    page = _entry(SEAL, PAGE).replace(b"OFD Reader", b"QFD Reader")
    sig_xml = _entry(SEAL, "Doc_0/Signs/Sign_0/Signature.xml")
    old = base64.b64encode(hashlib.new("sm3", _entry(SEAL, PAGE)).digest())
    new = base64.b64encode(hashlib.new("sm3", page).digest())
    assert old in sig_xml
    bad = _rewrite(SEAL, tmp_path / "t.ofd", {PAGE: page, "Doc_0/Signs/Sign_0/Signature.xml": sig_xml.replace(old, new)})
    (s,) = validate_ofd(str(bad)).signatures
    assert s.digest_valid is False
    assert "dataHash" in s.message and PAGE not in s.message.split("；")[1]


def test_signature_value_flipped(tmp_path):
    sv = bytearray(_entry(SEAL, "Doc_0/Signs/Sign_0/SignedValue.dat"))
    sv[-5] ^= 0x01                            # inside s of the outer SM2 signature
    bad = _rewrite(SEAL, tmp_path / "t.ofd", {"Doc_0/Signs/Sign_0/SignedValue.dat": bytes(sv)})
    v = validate_ofd(str(bad))
    (s,) = v.signatures
    assert s.digest_valid is True and s.signature_valid is False
    assert "验证失败" in s.message and v.status == "invalid"


def test_seal_file_swapped(tmp_path):
    esl = bytearray(_entry(SEAL, "Doc_0/Signs/Sign_0/Seal.esl"))
    esl[100] ^= 0x01
    bad = _rewrite(SEAL, tmp_path / "t.ofd", {"Doc_0/Signs/Sign_0/Seal.esl": bytes(esl)})
    (s,) = validate_ofd(str(bad)).signatures
    assert s.digest_valid is False            # Seal.esl is among the references
    assert s.signature_valid is False and "Seal.esl" in s.message


def test_page_part_deleted(tmp_path):
    src = OFD_DIR / "einvoice-huhuang-5pages-signed.ofd"
    bad = _rewrite(src, tmp_path / "t.ofd", {"Doc_0/Pages/Page_3/Content.xml": None})
    v = validate_ofd(str(bad))
    assert v.status == "invalid"
    assert v.page_count == 5
    assert any("Pages/Page_3/Content.xml" in p and "不存在" in p for p in v.problems)
    (s,) = v.signatures
    assert s.digest_valid is False and "Page_3" in s.message


def test_broken_page_xml(tmp_path):
    src = OFD_DIR / "ofdrw-helloworld.ofd"
    bad = _rewrite(src, tmp_path / "t.ofd", {PAGE: _entry(src, PAGE)[:-20]})
    v = validate_ofd(str(bad))
    assert v.status == "invalid"
    assert any(PAGE in p and "XML" in p for p in v.problems)


def test_missing_resource_image(tmp_path):
    src = OFD_DIR / "suwell-convertor-vector.ofd"
    bad = _rewrite(src, tmp_path / "t.ofd", {"Doc_0/Res/image_3.png": None})
    v = validate_ofd(str(bad))
    assert v.status == "invalid"
    assert any("image_3.png" in p and "DocumentRes.xml" in p for p in v.problems)


def test_path_relative_to_package_root_is_a_warning(tmp_path):
    src = OFD_DIR / "ofdrw-helloworld.ofd"
    doc = _entry(src, "Doc_0/Document.xml").replace(b'BaseLoc="Pages/', b'BaseLoc="Doc_0/Pages/')
    v = validate_ofd(str(_rewrite(src, tmp_path / "t.ofd", {"Doc_0/Document.xml": doc})))
    assert v.status == "valid" and v.page_count == 1
    assert any("相对包根目录" in w and "Doc_0/Pages/Page_0/Content.xml" in w for w in v.warnings)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE ofd:OFD [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
 <!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
 <!ENTITY x SYSTEM "file:///etc/passwd">
]>
<ofd:OFD xmlns:ofd="http://www.ofdspec.org/2016" Version="1.0" DocType="OFD"><ofd:DocBody><ofd:DocInfo>
<ofd:Title>&f;&x;</ofd:Title></ofd:DocInfo><ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>"""


def test_doctype_and_entities_are_refused(tmp_path):
    src = OFD_DIR / "ofdrw-helloworld.ofd"
    bad = _rewrite(src, tmp_path / "t.ofd", {"OFD.xml": BILLION_LAUGHS})
    tracemalloc.start()
    v = validate_ofd(str(bad))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert v.status == "invalid"
    assert any("OFD.xml" in p and "DOCTYPE" in p for p in v.problems)
    assert "root:" not in str(v.as_dict()) and "aaaa" not in str(v.details)
    assert peak < 5 * 1024 * 1024
    # a page with an entity declaration is refused the same way
    page = b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY e "x">]><ofd:Page xmlns:ofd="http://www.ofdspec.org/2016">&e;</ofd:Page>'
    v2 = validate_ofd(str(_rewrite(src, tmp_path / "t2.ofd", {PAGE: page})))
    assert any(PAGE in p and "DOCTYPE" in p for p in v2.problems)
    with zipfile.ZipFile(bad) as zf:
        assert not looks_like_ofd(zf.namelist(), zf.read)


def test_unsafe_entry_name(tmp_path):
    src = OFD_DIR / "ofdrw-helloworld.ofd"
    bad = _rewrite(src, tmp_path / "t.ofd", {}, add={"../../evil": b"x", "/etc/cron.d/evil": b"y"})
    v = validate_ofd(str(bad))
    assert v.status == "invalid"
    assert any("../../evil" in p and "不安全" in p for p in v.problems)
    assert any("/etc/cron.d/evil" in p for p in v.problems)


def test_duplicate_entry(tmp_path):
    src = OFD_DIR / "ofdrw-helloworld.ofd"
    bad = tmp_path / "t.ofd"
    _rewrite(src, bad, {}, add={})
    with pytest.warns(UserWarning), zipfile.ZipFile(bad, "a") as zf:
        zf.writestr(PAGE, b"<other/>")
    v = validate_ofd(str(bad))
    assert any("重复" in p and PAGE in p for p in v.problems)


def test_zip_bomb_entry_is_refused_in_bounded_memory(tmp_path, monkeypatch):
    src = OFD_DIR / "ofdrw-helloworld.ofd"
    head = _entry(src, PAGE)
    bomb = head + b" " * (48 * 1024 * 1024)   # 48 MiB of blanks after a real page: deflates to ~50 KB
    bad = _rewrite(src, tmp_path / "t.ofd", {PAGE: bomb})
    assert bad.stat().st_size < 200_000
    monkeypatch.setattr(ofd, "MAX_ENTRY_BYTES", 4 * 1024 * 1024)
    monkeypatch.setattr(ofd, "MAX_XML_BYTES", 4 * 1024 * 1024)
    tracemalloc.start()
    v = validate_ofd(str(bad))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert v.status == "invalid"
    assert any(PAGE in p and "ZIP 炸弹" in p for p in v.problems) or any(PAGE in p and "上限" in p for p in v.problems)
    assert peak < 8 * 1024 * 1024


def _patch_sizes(data: bytes, name: bytes, size: int) -> bytes:
    """Make the local and central headers of one entry declare another uncompressed size."""
    out = bytearray(data)
    pos = 0
    while (pos := out.find(b"PK\x03\x04", pos)) != -1:
        n = struct.unpack_from("<H", out, pos + 26)[0]
        if bytes(out[pos + 30:pos + 30 + n]) == name:
            struct.pack_into("<I", out, pos + 22, size)
        pos += 4
    pos = 0
    while (pos := out.find(b"PK\x01\x02", pos)) != -1:
        n = struct.unpack_from("<H", out, pos + 28)[0]
        if bytes(out[pos + 46:pos + 46 + n]) == name:
            struct.pack_into("<I", out, pos + 24, size)
        pos += 4
    return bytes(out)


def test_declared_huge_entry_is_refused_without_inflating(tmp_path):
    src = OFD_DIR / "ofdrw-helloworld.ofd"
    good = _rewrite(src, tmp_path / "t.ofd", {})
    bad = tmp_path / "bomb.ofd"
    bad.write_bytes(_patch_sizes(good.read_bytes(), PAGE.encode(), 0xF000_0000))   # claims 3.75 GiB
    started = time.perf_counter()
    v = validate_ofd(str(bad))
    assert time.perf_counter() - started < 1
    assert v.status == "invalid"
    assert any(PAGE in p and "ZIP 炸弹" in p for p in v.problems)


def test_entry_inflating_beyond_its_declared_size_is_stopped(tmp_path):
    src = OFD_DIR / "ofdrw-helloworld.ofd"
    page = _entry(src, PAGE)
    good = _rewrite(src, tmp_path / "t.ofd", {PAGE: page + b" " * (8 * 1024 * 1024)})
    bad = tmp_path / "liar.ofd"
    bad.write_bytes(_patch_sizes(good.read_bytes(), PAGE.encode(), len(page)))   # claims the small size
    tracemalloc.start()
    v = validate_ofd(str(bad))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert v.status == "invalid"
    assert any(PAGE in p for p in v.problems)
    assert peak < 4 * 1024 * 1024


def test_zip_that_is_not_ofd(tmp_path):
    z = tmp_path / "x.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("word/document.xml", "<w:document xmlns:w='http://schemas.openxmlformats.org/wordprocessingml/2006/main'/>")
        zf.writestr("[Content_Types].xml", "<Types/>")
    with zipfile.ZipFile(z) as zf:
        assert not looks_like_ofd(zf.namelist(), zf.read)
    v = validate_ofd(str(z))
    assert v.status == "invalid" and any("OFD.xml" in p for p in v.problems)
    # right file name, wrong namespace
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("ofd.xml", "<ofd:OFD xmlns:ofd='http://blog.yuanhaiying.cn'/>")
    with zipfile.ZipFile(z) as zf:
        assert not looks_like_ofd(zf.namelist(), zf.read)
    assert validate_ofd(str(z)).status == "invalid"


def test_not_a_zip_and_missing_file(tmp_path):
    p = tmp_path / "x.ofd"
    p.write_bytes(b"%PDF-1.7\n")
    v = validate_ofd(str(p))
    assert v.status == "invalid" and "ZIP" in v.problems[0]
    assert validate_ofd(str(tmp_path / "nope.ofd")).status == "invalid"


def test_looks_like_ofd_reads_only_ofd_xml():
    with zipfile.ZipFile(OFD_DIR / "wps-jpeg-case-mismatch.ofd") as zf:
        asked: list[str] = []

        def read(name: str) -> bytes:
            asked.append(name)
            return zf.read(name)

        assert looks_like_ofd(zf.namelist(), read)
    assert asked == ["OFD.xml"]


def test_encrypted_entry_is_reported(tmp_path):
    src = OFD_DIR / "ofdrw-helloworld.ofd"
    good = _rewrite(src, tmp_path / "t.ofd", {})
    data = bytearray(good.read_bytes())
    name = PAGE.encode()
    for sig, flag_at, name_len_at, name_at in ((b"PK\x03\x04", 6, 26, 30), (b"PK\x01\x02", 8, 28, 46)):
        pos = 0
        while (pos := data.find(sig, pos)) != -1:
            n = struct.unpack_from("<H", data, pos + name_len_at)[0]
            if bytes(data[pos + name_at:pos + name_at + n]) == name:
                data[pos + flag_at] |= 0x01
            pos += 4
    bad = tmp_path / "enc.ofd"
    bad.write_bytes(bytes(data))
    v = validate_ofd(str(bad))
    assert v.encrypted is True
    assert v.status == "invalid" and any(PAGE in p and "加密" in p for p in v.problems)


def test_non_utf8_entry_names_are_decoded(tmp_path):
    # Many Chinese producers write GB18030 names without the ZIP UTF-8 flag: write the name as ASCII
    # placeholder bytes of the same length, then put the GB18030 bytes in its place in both headers.
    src = OFD_DIR / "ofdrw-chinese-dir-names.ofd"
    gbk = "Doc_0/Res/这是一个中文目录/数据文件.txt".encode("gb18030")
    placeholder = b"Doc_0/Res/" + b"Z" * (len(gbk) - len(b"Doc_0/Res/"))
    out = io.BytesIO()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            if "中文" in info.filename:
                if not info.is_dir():
                    zout.writestr(placeholder.decode(), zin.read(info))
            else:
                zout.writestr(info.filename, zin.read(info))
    raw = out.getvalue()
    assert raw.count(placeholder) == 2
    bad = tmp_path / "gbk.ofd"
    bad.write_bytes(raw.replace(placeholder, gbk))
    with zipfile.ZipFile(bad) as zf:
        assert any(not (i.flag_bits & 0x800) and not i.filename.isascii() for i in zf.infolist())
    v = validate_ofd(str(bad))
    assert v.status == "valid"
    assert any("GB18030" in w and "这是一个中文目录/数据文件.txt" in w for w in v.warnings)


def test_corpus_is_fast():
    started = time.perf_counter()
    for name in EXPECTED:
        validate_ofd(str(OFD_DIR / name))
    assert time.perf_counter() - started < 5


# --------------------------------------------------------------------------- a signature we make ourselves

# A fixed test key whose public X coordinate starts with hex "04": gmssl's CryptSM2 constructor does
# public_key.lstrip("04") and would corrupt it, so this key checks that the verifier avoids the bug.
TEST_PRIVATE = "5927d48020cc49c3aceabe8fa087f93486b0c513cf471830df205d556460bef7"


def _test_key() -> tuple[str, bytes]:
    from gmssl import sm2

    xy = sm2.CryptSM2(private_key=TEST_PRIVATE, public_key="00")._kg(int(TEST_PRIVATE, 16), sm2.default_ecc_table["g"])
    return TEST_PRIVATE, b"\x04" + bytes.fromhex(xy)


def _sm2_sign(message: bytes) -> bytes:
    import hashlib

    from asn1crypto import algos
    from gmssl import sm2

    from dangan.formats import ses

    priv, pub = _test_key()
    e = hashlib.new("sm3", ses.sm2_z(pub) + message).digest()
    signer = sm2.CryptSM2(private_key=priv, public_key="00")
    signer.public_key = pub[1:].hex()
    rs = signer.sign(e, "1" * 63 + "7")
    return algos.DSASignature({"r": int(rs[:64], 16), "s": int(rs[64:], 16)}).dump()


def _test_certificate():
    from asn1crypto import keys, x509

    _, pub = _test_key()
    name = x509.Name.build({"country_name": "CN", "organization_name": "示范市人民政府办公室", "common_name": "测试签名人"})
    tbs = x509.TbsCertificate({
        "version": "v3", "serial_number": 4242,
        "signature": {"algorithm": "1.2.156.10197.1.501"},
        "issuer": name, "subject": name,
        "validity": {"not_before": x509.Time({"utc_time": x509.UTCTime(datetime_(2020))}),
                     "not_after": x509.Time({"utc_time": x509.UTCTime(datetime_(2040))})},
        "subject_public_key_info": {
            "algorithm": {"algorithm": "ec", "parameters": keys.ECDomainParameters(name="named", value="1.2.156.10197.1.301")},
            "public_key": pub,
        },
    })
    return x509.Certificate({"tbs_certificate": tbs, "signature_algorithm": {"algorithm": "1.2.156.10197.1.501"},
                             "signature_value": _sm2_sign(tbs.dump())})


def datetime_(year: int):
    from datetime import UTC, datetime

    return datetime(year, 1, 1, tzinfo=UTC)


def _signed_data(signature_xml: bytes, with_attrs: bool) -> bytes:
    import hashlib

    from asn1crypto import cms, core

    from dangan.formats import ses

    cert = _test_certificate()
    digest = hashlib.new("sm3", signature_xml).digest()
    signer = {
        "version": "v1",
        "sid": cms.SignerIdentifier({"issuer_and_serial_number": {"issuer": cert.issuer, "serial_number": cert.serial_number}}),
        "digest_algorithm": {"algorithm": "1.2.156.10197.1.401"},
        "signature_algorithm": {"algorithm": "1.2.156.10197.1.301.1"},
    }
    if with_attrs:   # detached content, signed attributes carrying the message digest (RFC 5652 style)
        attrs = cms.CMSAttributes([{"type": "content_type", "values": ["data"]},
                                   {"type": "message_digest", "values": [digest]}])
        signer["signed_attrs"] = attrs
        signer["signature"] = _sm2_sign(b"\x31" + attrs.dump()[1:])
        encap = {"content_type": "data"}
    else:            # GB/T 35275 as ofdrw writes it: the SM3 of Signature.xml is the encapsulated content
        signer["signature"] = _sm2_sign(digest)
        encap = {"content_type": "1.2.156.10197.6.1.4.2.1", "content": core.ParsableOctetString(digest)}
    sd = cms.SignedData({"version": "v1" if with_attrs else "v3", "digest_algorithms": [{"algorithm": "1.2.156.10197.1.401"}],
                         "encap_content_info": encap, "certificates": [cert], "signer_infos": [signer]})
    return ses.GMContentInfo({"content_type": "1.2.156.10197.6.1.4.2.2", "content": sd}).dump()


def test_gmssl_lstrip_bug_is_avoided():
    from gmssl import sm2

    from dangan.formats import ses

    _, pub = _test_key()
    assert pub[1:].hex().startswith("04")
    sig = _sm2_sign(b"abc")
    assert ses.sm2_verify(pub, sig, b"abc")
    assert not ses.sm2_verify(pub, sig, b"abd")
    naive = sm2.CryptSM2(private_key=None, public_key=pub[1:].hex())
    assert naive.public_key != pub[1:].hex()       # what the bug does to such a key


@pytest.mark.parametrize("with_attrs", [False, True], ids=["gbt35275", "signed-attrs"])
def test_digital_signature_as_signed_data(tmp_path, with_attrs):
    src = OFD_DIR / "ofdrw-digital-sign.ofd"
    sig_xml = _entry(src, "Doc_0/Signs/Sign_0/Signature.xml")
    good = _rewrite(src, tmp_path / "good.ofd", {"Doc_0/Signs/Sign_0/SignedValue.dat": _signed_data(sig_xml, with_attrs)})
    v = validate_ofd(str(good))
    assert v.status == "valid", v.problems
    (s,) = v.signatures
    assert (s.signer, s.covers_document, s.digest_valid, s.signature_valid) == ("测试签名人", True, True, True), s.message
    # Signature.xml changed after signing (here: its date) → the SignedData no longer matches it
    changed = sig_xml.replace(b"2020-04-22 16:22:44", b"2020-04-23 16:22:44")
    bad = _rewrite(good, tmp_path / "bad.ofd", {"Doc_0/Signs/Sign_0/Signature.xml": changed})
    (s,) = validate_ofd(str(bad)).signatures
    assert s.digest_valid is False and "不一致" in s.message
