"""The package reader: each kind read correctly, and damaged or hostile packages reported, not crashed on."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import shutil
import unicodedata
import zipfile
from pathlib import Path

import pytest

from conftest import CORPUS  # noqa: E402  (the corpus beside the clone, as CI lays it out)
from dangan.checks.model import FileUnderCheck, Outcome, PackageUnderCheck, RecordUnderCheck
from dangan.errors import ValidationFailed
from dangan.packages.bagit_pkg import export_bag
from dangan.packages.eep_writer import write_eep
from dangan.packages.reader import open_package
from dangan.packages.sm2 import Sm2Signer

SCHEMAS = CORPUS / "schemas"
EEP_XSD = SCHEMAS / "dat48-eep-2009.xsd"
CODE = "Z109-WS·2024-Y-BGS-0001"
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 8 + b"%%EOF\n"
NOTE = "附件：名单".encode()


def _rec(code: str = CODE, ref: str = "R1") -> RecordUnderCheck:
    return RecordUnderCheck(
        ref=ref, title="关于印发《档案工作规定》的通知", archival_code=code, fonds_code="Z109", seq=1,
        department=("BGS", "办公室"),
        metadata={"year": 2024, "date": "2024-03-05", "retention_period": "Y", "responsible": "示范市人民政府办公室",
                  "security_level": "公开"},
        files=[FileUnderCheck(ref=f"{ref}-1", name="正文.pdf", role="main", size=len(PDF),
                              sha256=hashlib.sha256(PDF).hexdigest(), opener=lambda: io.BytesIO(PDF)),
               FileUnderCheck(ref=f"{ref}-2", name="附件.txt", role="attachment", opener=lambda: io.BytesIO(NOTE))],
    )


def _read(f: FileUnderCheck) -> bytes:
    assert f.opener is not None
    with f.opener() as fh:
        return fh.read()


def _messages(pkg: PackageUnderCheck) -> str:
    return "\n".join(e.message for e in pkg.structure_problems)


@pytest.fixture
def bag(tmp_path: Path) -> Path:
    return export_bag([_rec(), _rec("Z109-WS·2024-Y-BGS-0002", "R2")], tmp_path / "bag", info={
        "Source-Organization": "示范市人民政府办公室"})


# -- BagIt -----------------------------------------------------------------------------------------------


def test_our_bag_folder(bag: Path) -> None:
    pkg, records = open_package(bag)
    assert pkg.kind == "bagit" and pkg.label == "bag" and pkg.structure_problems == []
    assert [r.archival_code for r in records] == [CODE, "Z109-WS·2024-Y-BGS-0002"]
    r = records[0]
    assert r.ref == "R1" and r.title.startswith("关于") and r.seq == 1 and r.department == ("BGS", "办公室")
    assert r.declared_file_count == 2 and [f.role for f in r.files] == ["main", "attachment"]
    main = r.files[0]
    assert main.location == f"data/{CODE}/正文.pdf" and main.size == len(PDF)
    assert main.sha256 == hashlib.sha256(PDF).hexdigest() and main.sm3 == hashlib.new("sm3", PDF).hexdigest()
    assert _read(main) == PDF and main.local_path and Path(main.local_path).is_file()
    payload_files = [p for p in (bag / "data").rglob("*") if p.is_file()]
    assert pkg.declared_counts == {"bytes": sum(p.stat().st_size for p in payload_files), "files": len(payload_files)}
    assert set(pkg.allowed_extra) == {"bagit.txt", "bag-info.txt", "manifest-sha256.txt", "manifest-sm3.txt",
                                      "tagmanifest-sha256.txt", "tagmanifest-sm3.txt"}
    assert pkg.metadata_files[:2] == ["bag-info.txt", "mets.xml"] and len(pkg.metadata_files) == 4
    assert {m.path for m in pkg.tag_manifest} == {"bagit.txt", "bag-info.txt", "manifest-sha256.txt",
                                                  "manifest-sm3.txt", "mets.xml"}
    assert all(set(m.digests) == {"sha256", "sm3"} for m in pkg.manifest)
    assert {e.path for e in pkg.entries} >= {m.path for m in pkg.manifest} | set(pkg.allowed_extra)
    assert pkg.received_digest is None  # a folder has no package digest


@pytest.mark.parametrize("extract", [False, True])
def test_our_bag_zipped(tmp_path: Path, extract: bool) -> None:
    z = export_bag([_rec()], tmp_path / "bag-z", info={"Source-Organization": "办公室"}, zip_output=True)
    work = tmp_path / "work" if extract else None
    pkg, records = open_package(z, workdir=work)
    assert pkg.kind == "bagit" and pkg.structure_problems == []
    assert f"data/{CODE}/正文.pdf" in {e.path for e in pkg.entries}  # relative to the bag, not to the ZIP
    assert _read(records[0].files[0]) == PDF
    assert pkg.received_digest == {"sha256": hashlib.sha256(z.read_bytes()).hexdigest(),
                                   "sm3": hashlib.new("sm3", z.read_bytes()).hexdigest()}
    if extract:
        assert records[0].files[0].local_path and Path(records[0].files[0].local_path).is_relative_to(work)
    else:
        assert records[0].files[0].local_path is None


def test_sender_digest_beside_the_package(tmp_path: Path) -> None:
    z = export_bag([_rec()], tmp_path / "b", info={"Source-Organization": "办公室"}, zip_output=True)
    (tmp_path / "b.zip.sha256").write_text("A" * 64 + "  b.zip\n")
    pkg, _ = open_package(z)
    assert pkg.sent_digest == {"sha256": "a" * 64}


def test_corpus_bags_made_by_other_software() -> None:
    pkg, records = open_package(SCHEMAS / "bagit-0.97-bag-md5")
    assert pkg.kind == "bagit" and pkg.structure_problems == []
    assert pkg.declared_counts == {"bytes": 63140, "files": 2}
    assert [(m.path, list(m.digests)) for m in pkg.manifest] == [
        ("data/forkleaf-sundew.jpg", ["md5"]), ("data/roundleaf-sundew.jpg", ["md5"])]
    assert len(records) == 1 and records[0].ref == "data" and len(records[0].files) == 2
    f = records[0].files[0]
    assert hashlib.md5(_read(f)).hexdigest() == pkg.manifest[0].digests["md5"]  # noqa: S324 - BagIt's md5

    pkg, records = open_package(SCHEMAS / "bagit-0.97-bag-sha512.zip")
    assert pkg.kind == "bagit" and "sha512" in pkg.manifest[0].digests
    assert [r.ref for r in records] == ["bagTest"] and len(records[0].files) == 3
    assert [(e.message, e.outcome) for e in pkg.structure_problems] == [
        ("bag-info.txt 没有 Payload-Oxum（内容总字节数与文件数）", Outcome.WARN)]
    f = next(f for f in records[0].files if f.location == pkg.manifest[0].path)
    assert f.sha256 is None and hashlib.sha512(_read(f)).hexdigest() == pkg.manifest[0].digests["sha512"]


def test_missing_file_extra_file_and_zero_byte_file(bag: Path) -> None:
    (bag / "data" / CODE / "附件.txt").unlink()
    (bag / "data" / CODE / "多余.txt").write_bytes(b"")
    pkg, records = open_package(bag)
    missing = next(f for f in records[0].files if f.name == "附件.txt")
    assert missing.opener is None and missing.sm3 == hashlib.new("sm3", NOTE).hexdigest()
    extra = next(e for e in pkg.entries if e.path.endswith("多余.txt"))
    assert extra.size == 0 and extra.opener().read() == b""
    assert extra.path not in {m.path for m in pkg.manifest}
    assert pkg.structure_problems == []  # not for the reader to judge: declared vs found is the engine's


def test_bag_without_bag_info_and_without_bagit_txt(bag: Path) -> None:
    (bag / "bag-info.txt").unlink()
    pkg, records = open_package(bag)
    assert "缺少 bag-info.txt" in _messages(pkg) and "bytes" not in pkg.declared_counts and len(records) == 2
    (bag / "bagit.txt").unlink()
    pkg, records = open_package(bag)
    assert pkg.kind == "bagit" and "缺少 bagit.txt" in _messages(pkg) and len(records) == 2


def test_metadata_json_that_disagrees_or_is_broken(bag: Path) -> None:
    meta = bag / "data" / CODE / "metadata.json"
    doc = json.loads(meta.read_text("utf-8"))
    doc["files"][0]["sha256"] = "0" * 64
    doc["files"].append({"path": "../../secret"})
    meta.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    pkg, records = open_package(bag)
    text = _messages(pkg)
    assert f"“data/{CODE}/正文.pdf”在 metadata.json 与 manifest-sha256.txt 中登记的摘要不同" in text
    assert "files[2] 的路径“../../secret”不安全" in text
    assert records[0].files[0].sha256 == "0" * 64 and records[0].declared_file_count == 3
    meta.write_text("{not json", encoding="utf-8")
    pkg, records = open_package(bag)
    assert "metadata.json 不是有效的 JSON（第 1 行" in _messages(pkg)
    r = next(r for r in records if r.ref == CODE)  # read as a plain payload folder
    assert {f.name for f in r.files} == {"正文.pdf", "附件.txt", "metadata.json"}


# -- ZIPs that SafeZip refuses ---------------------------------------------------------------------------


def test_zip_slip_entry_is_reported_not_extracted(tmp_path: Path) -> None:
    z = tmp_path / "slip.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("bagit.txt", "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
        zf.writestr("../../evil.sh", "rm -rf /")
    work = tmp_path / "work"
    pkg, records = open_package(z, workdir=work)
    assert pkg.kind == "zip" and pkg.entries == [] and records == []
    codes = {e.field for e in pkg.structure_problems}
    assert "ZIP_UNSAFE_PATH" in codes
    assert any(e.found == "../../evil.sh" for e in pkg.structure_problems)
    assert not (tmp_path / "evil.sh").exists() and not work.exists()


def test_zip_bomb_is_refused_without_expanding(tmp_path: Path) -> None:
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data/zeros.bin", b"\0" * (8 * 2**20))
    pkg, records = open_package(z, workdir=tmp_path / "w")
    assert records == [] and pkg.entries == []
    assert "ZIP_BOMB" in {e.field for e in pkg.structure_problems}
    assert "压缩比" in _messages(pkg)


def test_damaged_zip_entry_is_reported_when_extracting(tmp_path: Path) -> None:
    z = tmp_path / "crc.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("a/ok.txt", b"fine")
        zf.writestr("a/bad.txt", b"0123456789" * 10)
    raw = bytearray(z.read_bytes())
    pos = raw.find(b"0123456789")
    raw[pos] ^= 0xFF  # the CRC no longer matches
    z.write_bytes(bytes(raw))
    pkg, records = open_package(z, workdir=tmp_path / "w")
    assert {e.path for e in pkg.entries} == {"a/ok.txt"}
    assert "“a/bad.txt”无法解压" in _messages(pkg)
    assert [f.name for f in records[0].files] == ["ok.txt"]


# -- manifest.json packages -------------------------------------------------------------------------------


def _manifest_zip(tmp_path: Path, manifest: dict, files: dict[str, bytes]) -> Path:
    z = tmp_path / "submission.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False))
        for name, data in files.items():
            zf.writestr(name, data)
    return z


def test_manifest_json_zip(tmp_path: Path) -> None:
    manifest = {"fonds": "Z109", "category": "WS", "records": [
        {"sender_ref": "OA-1", "metadata": {"title": "通知", "year": 2024},
         "files": [{"path": "OA-1/正文.pdf", "role": "main", "sha256": hashlib.sha256(PDF).hexdigest()},
                   {"path": "OA-1/处理单.pdf", "role": "processing_sheet"}]},
        {"sender_ref": "OA-2", "metadata": {"title": "函"}, "files": ["OA-2/函.pdf", "../../etc/passwd"]},
    ]}
    z = _manifest_zip(tmp_path, manifest, {"OA-1/正文.pdf": PDF, "OA-2/函.pdf": b"x", "多余.txt": b""})
    pkg, records = open_package(z)
    assert pkg.kind == "zip" and pkg.metadata_files == ["manifest.json"] and pkg.allowed_extra == ["manifest.json"]
    assert pkg.declared_counts == {"records": 2, "files": 3}
    assert [r.ref for r in records] == ["OA-1", "OA-2"] and records[0].fonds_code == "Z109"
    main, sheet = records[0].files
    assert main.role == "main" and main.sha256 == hashlib.sha256(PDF).hexdigest() and _read(main) == PDF
    assert sheet.role == "processing_sheet" and sheet.opener is None  # declared, missing
    assert records[1].files[0].role == "main" and records[1].declared_file_count == 2
    assert "records[1].files[1] 的路径“../../etc/passwd”不安全" in _messages(pkg)
    assert "多余.txt" in {e.path for e in pkg.entries} and "多余.txt" not in {m.path for m in pkg.manifest}
    assert next(m for m in pkg.manifest if m.path == "OA-1/正文.pdf").digests == {
        "sha256": hashlib.sha256(PDF).hexdigest()}


def test_broken_manifest_json(tmp_path: Path) -> None:
    z = tmp_path / "bad.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("manifest.json", b"\xff\xfe not json")
    pkg, records = open_package(z)
    assert records == [] and "manifest.json 不是 UTF-8 编码" in _messages(pkg)


# -- EEP -------------------------------------------------------------------------------------------------


def _eep(tmp_path: Path, signer: Sm2Signer | None = None) -> Path:
    p = tmp_path / "件.xml"
    with p.open("wb") as out:
        write_eep(_rec(), out, unit="示范市人民政府办公室", signer=signer,
                  created_at=dt.datetime(2024, 3, 5, 9, 0, tzinfo=dt.UTC))
    return p


def test_eep_package(tmp_path: Path) -> None:
    path = _eep(tmp_path, Sm2Signer.generate())
    pkg, records = open_package(path, eep_xsd=EEP_XSD, workdir=tmp_path / "w")
    assert pkg.kind == "eep" and pkg.structure_problems == [] and pkg.metadata_files == ["件.xml"]
    assert pkg.declared_counts == {"records": 1, "files": 2, "bytes": len(PDF) + len(NOTE)}
    assert [e.path for e in pkg.entries] == ["正文.pdf", "附件.txt"]
    assert [(m.path, m.size) for m in pkg.manifest] == [("正文.pdf", len(PDF)), ("附件.txt", len(NOTE))]
    assert [s["signature_valid"] for s in pkg.signatures] == [True, True] and all(s["ok"] for s in pkg.signatures)
    (r,) = records
    assert r.ref == "R1" and r.archival_code == CODE and r.title == "关于印发《档案工作规定》的通知"
    assert r.metadata["retention_period"] == "Y" and r.department == ("BGS", "") and r.declared_file_count == 2
    assert [(f.name, f.role, f.size) for f in r.files] == [("正文.pdf", "main", len(PDF)),
                                                           ("附件.txt", "attachment", len(NOTE))]
    assert _read(r.files[0]) == PDF and _read(r.files[0]) == PDF  # each opener call reads from the start
    assert _read(r.files[1]) == NOTE
    assert pkg.received_digest and pkg.received_digest["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_eep_large_file_opener_reads_spooled_data(tmp_path: Path) -> None:
    big = os.urandom(3 * 2**20)  # above parse_eep's 2 MB spool size: on disk
    rec = _rec()
    rec.files = [FileUnderCheck(ref="b", name="big.bin", size=len(big), opener=lambda: io.BytesIO(big))]
    p = tmp_path / "big.xml"
    with p.open("wb") as out:
        write_eep(rec, out, unit="办公室")
    pkg, records = open_package(p)
    f = records[0].files[0]
    a, b = f.opener(), f.opener()  # two independent readers
    assert a.read(10) == big[:10] and b.read() == big and a.read() == big[10:]
    a.close()
    b.close()
    assert _read(f) == big


def test_tampered_eep_signature_is_reported(tmp_path: Path) -> None:
    path = _eep(tmp_path, Sm2Signer.generate())
    path.write_bytes(path.read_bytes().replace("《档案工作规定》".encode(), "《档案工作规程》".encode(), 1))
    pkg, records = open_package(path, eep_xsd=EEP_XSD)
    assert [s["signature_valid"] for s in pkg.signatures] == [False, True]
    assert records[0].title == "关于印发《档案工作规程》的通知"


def test_eep_xml_bomb_is_refused_not_expanded(tmp_path: Path) -> None:
    path = _eep(tmp_path)
    lol = '<!ENTITY l0 "lol">' + "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    path.write_bytes(path.read_bytes().replace(b"?>\n", f'?>\n<!DOCTYPE 电子文件封装包 [{lol}]>\n'.encode(), 1)
                     .replace("<题名>关于".encode(), "<题名>&l9;关于".encode(), 1))
    pkg, records = open_package(path, eep_xsd=EEP_XSD)
    assert records == [] and pkg.entries == [] and pkg.signatures == []
    assert "EEP_DTD_FORBIDDEN" in {e.field for e in pkg.structure_problems}
    assert "DOCTYPE" in _messages(pkg)


def test_eep_that_fails_the_schema_is_still_read(tmp_path: Path) -> None:
    path = _eep(tmp_path)
    path.write_bytes(path.read_bytes().replace("<密级>公开</密级>".encode(), b"", 1))
    pkg, records = open_package(path, eep_xsd=EEP_XSD)
    text = _messages(pkg)
    assert "EEP_INVALID" in text and "密级" in text
    assert len(records) == 1 and _read(records[0].files[0]) == PDF


def test_eep_not_well_formed(tmp_path: Path) -> None:
    path = _eep(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    pkg, records = open_package(path)
    assert records == [] and "EEP_MALFORMED" in {e.field for e in pkg.structure_problems}


# -- plain folders and other inputs ----------------------------------------------------------------------


def test_plain_folder_with_symlink_nfd_name_and_empty_file(tmp_path: Path) -> None:
    root = tmp_path / "移交"
    (root / "件1").mkdir(parents=True)
    (root / "件2").mkdir()
    (root / "件1" / "正文.pdf").write_bytes(PDF)
    (root / "件1" / "空.txt").write_bytes(b"")
    nfd = unicodedata.normalize("NFD", "Café.txt")
    (root / "件2" / nfd).write_bytes(b"c")
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    (root / "件2" / "link.txt").symlink_to(secret)
    pkg, records = open_package(root)
    assert pkg.kind == "folder" and pkg.manifest == []
    assert {e.path for e in pkg.entries} == {"件1/正文.pdf", "件1/空.txt", "件2/Café.txt"}
    assert "“件2/link.txt”是符号链接，未跟随读取" in _messages(pkg)
    assert [r.ref for r in records] == ["件1", "件2"]
    empty = next(f for f in records[0].files if f.name == "空.txt")
    assert _read(empty) == b"" and next(e for e in pkg.entries if e.path == "件1/空.txt").size == 0


def test_zip_without_manifest_is_read_as_a_folder(tmp_path: Path) -> None:
    z = tmp_path / "plain.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a/1.txt", b"1")
        zf.writestr("2.txt", b"2")
    pkg, records = open_package(z)
    assert pkg.kind == "zip" and {r.ref for r in records} == {"a", "."}
    assert [e.outcome for e in pkg.structure_problems] == [Outcome.WARN]


def test_bag_zipped_with_files_outside_the_bag_folder(tmp_path: Path, bag: Path) -> None:
    z = tmp_path / "outer.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in bag.rglob("*"):
            if p.is_file():
                zf.write(p, f"bag/{p.relative_to(bag).as_posix()}")
        zf.writestr("__MACOSX/._bag", b"junk")
    pkg, records = open_package(z)
    assert pkg.kind == "bagit" and len(records) == 2
    assert "“__MACOSX/._bag”在 BagIt 包目录“bag/”之外" in _messages(pkg)


def test_not_a_package(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as e:
        open_package(tmp_path / "nothing")
    assert e.value.code == "PACKAGE_NOT_FOUND"
    p = tmp_path / "x.bin"
    p.write_bytes(b"\x00\x01")
    with pytest.raises(ValidationFailed) as e:
        open_package(p)
    assert e.value.code == "PACKAGE_UNKNOWN_FORMAT"
    shutil.rmtree(tmp_path)
