"""BagIt export validated by stock bagit-python (library and CLI), METS/PREMIS validated offline against the
corpus schemas, and bags corrupted on purpose as the reader must then show them."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import bagit
import pytest
from lxml import etree

from conftest import CORPUS  # noqa: E402  (the corpus beside the clone, as CI lays it out)
from dangan.checks.model import FileUnderCheck, RecordUnderCheck
from dangan.errors import ValidationFailed
from dangan.packages.bagit_pkg import export_bag, safe_name
from dangan.packages.mets import METS_NS, PREMIS_NS, XLINK_NS, validate_mets, write_mets
from dangan.packages.reader import open_package

SCHEMAS = CORPUS / "schemas"
XSDS = {"mets_xsd": SCHEMAS / "mets-1.12.1.xsd", "premis_xsd": SCHEMAS / "premis-3.0.xsd",
        "xlink_xsd": SCHEMAS / "xlink.xsd"}
CODE = "Z109-WS·2024-Y-BGS-0001"
PDF = b"%PDF-1.7\n" + b"\x00\xff" * 500 + b"%%EOF\n"
SHEET = "处理单：拟办意见".encode()


def _rec(code: str = CODE, ref: str = "R1", files: list[FileUnderCheck] | None = None) -> RecordUnderCheck:
    return RecordUnderCheck(
        ref=ref, title="关于印发《档案工作规定》的通知", archival_code=code, fonds_code="Z109", category_code="WS",
        metadata={"title": "关于印发《档案工作规定》的通知", "year": 2024, "date": dt.date(2024, 3, 5),
                  "retention_period": "Y", "responsible": "示范市人民政府办公室", "keywords": ["档案"]},
        files=files if files is not None else [
            FileUnderCheck(ref=f"{ref}-f1", name="正文.pdf", role="main", size=len(PDF),
                           sha256=hashlib.sha256(PDF).hexdigest(), media_type="application/pdf",
                           format_name="PDF 1.7", puid="fmt/276", opener=lambda: io.BytesIO(PDF)),
            FileUnderCheck(ref=f"{ref}-f2", name="处理单.txt", role="processing_sheet", opener=lambda: io.BytesIO(SHEET)),
        ],
    )


INFO = {"Source-Organization": "示范市人民政府办公室", "Contact-Name": "张三"}


@pytest.fixture
def bag(tmp_path: Path) -> Path:
    return export_bag([_rec(), _rec("Z109-WS·2024-Y-BGS-0002", "R2")], tmp_path / "移交包", info=INFO)


def _reader_bag(path: Path):  # noqa: ANN202
    pkg, records = open_package(path)
    return pkg, records, [e.message for e in pkg.structure_problems]


# -- export ----------------------------------------------------------------------------------------------


def test_stock_bagit_validates_the_export(bag: Path) -> None:
    b = bagit.Bag(str(bag))
    assert b.validate() is True
    assert b.algorithms == ["sha256"]  # manifest-sm3.txt is not among the algorithms bagit-python checks
    assert b.info["Source-Organization"] == "示范市人民政府办公室"
    assert b.info["Payload-Oxum"] == f"{sum(p.stat().st_size for p in (bag / 'data').rglob('*') if p.is_file())}.6"
    assert b.info["Bag-Count"] == "1 of 1" and "电子档案" in b.info["External-Description"]
    assert b.info["Contact-Name"] == "张三" and b.info["Bagging-Date"] == dt.date.today().isoformat()
    r = subprocess.run([sys.executable, "-m", "bagit", "--validate", str(bag)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "is valid" in r.stderr


def test_layout_manifests_and_metadata(bag: Path) -> None:
    folder = bag / "data" / CODE
    assert (folder / "正文.pdf").read_bytes() == PDF and (folder / "处理单.txt").read_bytes() == SHEET
    meta = json.loads((folder / "metadata.json").read_text("utf-8"))
    assert meta["archival_code"] == CODE and meta["metadata"]["date"] == "2024-03-05"
    assert [(f["path"], f["role"]) for f in meta["files"]] == [("正文.pdf", "main"), ("处理单.txt", "processing_sheet")]
    assert meta["files"][0]["sm3"] == hashlib.new("sm3", PDF).hexdigest()
    sm3 = (bag / "manifest-sm3.txt").read_text("utf-8")
    assert f"{hashlib.new('sm3', SHEET).hexdigest()}  data/{CODE}/处理单.txt\n" in sm3
    tags = (bag / "tagmanifest-sha256.txt").read_text("utf-8")
    for name in ("bagit.txt", "bag-info.txt", "manifest-sha256.txt", "manifest-sm3.txt", "mets.xml"):
        assert f"  {name}\n" in tags
    assert (bag / "bagit.txt").read_bytes() == b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"


def test_stock_bagit_ignores_sm3_so_the_reader_must_check_it(bag: Path) -> None:
    """What bagit does with "sm3": the manifest is written and covered by tagmanifest-sha256, but the stock
    validator never checks its digests — a wrong SM3 line passes bagit; our reader reports SM3 for checking."""
    path = bag / "manifest-sm3.txt"
    text = path.read_text("utf-8")
    wrong = "0" * 64 + text[64:]
    path.write_text(wrong, encoding="utf-8")
    b = bagit.Bag(str(bag))
    assert "sm3" not in b.algorithms
    with pytest.raises(bagit.BagValidationError) as e:  # only because tagmanifest-sha256 covers manifest-sm3.txt
        b.validate()
    assert "manifest-sm3.txt" in str(e.value)
    pkg, _records, _ = _reader_bag(bag)
    first = next(m for m in pkg.manifest if m.digests.get("sm3") == "0" * 64)
    assert first.digests["sha256"] != "0" * 64


def test_zip_output_validates_after_extraction(tmp_path: Path) -> None:
    z = export_bag([_rec()], tmp_path / "bag-2024", info=INFO, zip_output=True)
    assert z.name == "bag-2024.zip" and not (tmp_path / "bag-2024").exists()
    with zipfile.ZipFile(z) as zf:
        names = zf.namelist()
        assert f"bag-2024/data/{CODE}/正文.pdf" in names and "bag-2024/bagit.txt" in names
        zf.extractall(tmp_path / "x")
    assert bagit.Bag(str(tmp_path / "x" / "bag-2024")).validate()
    assert not list(tmp_path.glob(".*partial*"))


def test_names_are_made_safe_and_unique(tmp_path: Path) -> None:
    files = [FileUnderCheck(ref=f"f{i}", name=n, opener=lambda: io.BytesIO(b"x"))
             for i, n in enumerate(["../../etc/passwd", "a%0Ab.txt", "正文.PDF", "正文.pdf", "CON.txt", "metadata.json",
                                    " .hidden "])]
    out = export_bag([_rec("Z109/WS:2024*?", files=files)], tmp_path / "b", info=INFO)
    folder = out / "data" / "Z109_WS_2024__"
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["_.._etc_passwd", "a_0Ab.txt", "正文.PDF", "正文 (2).pdf", "_CON.txt", "metadata (2).json",
                            "hidden", "metadata.json"])
    assert bagit.Bag(str(out)).validate()
    assert safe_name("长" * 100 + ".pdf").endswith(".pdf") and len(safe_name("长" * 100 + ".pdf").encode()) <= 180


def test_failed_export_leaves_nothing(tmp_path: Path) -> None:
    rec = _rec()
    rec.files[0].sha256 = "f" * 64
    with pytest.raises(ValidationFailed) as e:
        export_bag([rec], tmp_path / "b", info=INFO)
    assert e.value.code == "BAG_SOURCE_DIGEST_MISMATCH" and "正文.pdf" in e.value.message
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValidationFailed) as e:
        export_bag([_rec()], tmp_path / "b", info={})
    assert e.value.code == "BAG_INFO_MISSING"
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ValidationFailed) as e:
        export_bag([_rec()], tmp_path / "full", info=INFO)
    assert e.value.code == "BAG_DEST_EXISTS"


def test_progress_is_reported(tmp_path: Path) -> None:
    seen: list[tuple[int, int, int]] = []
    export_bag([_rec()], tmp_path / "b", info=INFO, progress=lambda *a: seen.append(a))
    assert seen == [(1, 2, len(PDF)), (2, 2, len(PDF) + len(SHEET))]


# -- METS ------------------------------------------------------------------------------------------------


def test_mets_in_the_bag_is_valid_and_points_at_the_payload(bag: Path) -> None:
    data = (bag / "mets.xml").read_bytes()
    assert validate_mets(data, **XSDS) == []
    doc = etree.fromstring(data)
    ns = {"mets": METS_NS, "premis": PREMIS_NS, "xlink": XLINK_NS}
    hrefs = doc.xpath("//mets:FLocat/@xlink:href", namespaces=ns)
    assert f"data/{CODE}/正文.pdf" in hrefs and all((bag / h).is_file() for h in hrefs)
    algs = doc.xpath("//premis:fixity/premis:messageDigestAlgorithm/text()", namespaces=ns)
    assert algs.count("SHA-256") == 4 and algs.count("SM3") == 4
    assert doc.xpath("//premis:formatRegistryKey/text()", namespaces=ns)[0] == "fmt/276"
    divs = doc.xpath("//mets:structMap/mets:div/mets:div", namespaces=ns)
    assert [d.get("ORDERLABEL") for d in divs] == [CODE, "Z109-WS·2024-Y-BGS-0002"]
    assert len(divs[0].findall(f"{{{METS_NS}}}fptr")) == 2


def test_mets_validation_is_real() -> None:
    good = write_mets([_rec()], agency="示范市档案馆", package_id="PKG-1")
    assert validate_mets(good, **XSDS) == []
    # a PREMIS object without its required objectCharacteristics (inside lax xmlData: PREMIS must be loaded)
    doc = etree.fromstring(good)
    for el in list(doc.iter(f"{{{PREMIS_NS}}}objectCharacteristics")):
        el.getparent().remove(el)
    errors = validate_mets(etree.tostring(doc), **XSDS)
    assert len(errors) == 2 and all("objectCharacteristics )" in e for e in errors), errors
    # a METS document without its required structMap
    doc = etree.fromstring(good)
    doc.remove(doc.find(f"{{{METS_NS}}}structMap"))
    assert any("structMap" in e for e in validate_mets(etree.tostring(doc), **XSDS))
    # a CHECKSUMTYPE METS does not know
    bad = good.replace(b'CHECKSUMTYPE="SHA-256"', b'CHECKSUMTYPE="SM3"', 1)
    assert validate_mets(bad, **XSDS)


def test_corpus_archivematica_mets_validates() -> None:
    assert validate_mets((SCHEMAS / "mets-premis3-aip-example.xml").read_bytes(), **XSDS) == []


# -- corrupted on purpose: bagit says no, and the reader shows exactly why ---------------------------------


def test_flipped_byte(bag: Path) -> None:
    target = bag / "data" / CODE / "正文.pdf"
    data = bytearray(target.read_bytes())
    data[100] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(bagit.BagValidationError) as e:
        bagit.Bag(str(bag)).validate()
    assert any(isinstance(d, bagit.ChecksumMismatch) and d.path.endswith("正文.pdf") for d in e.value.details)
    pkg, records, problems = _reader_bag(bag)
    assert problems == []
    rel = f"data/{CODE}/正文.pdf"
    declared = next(m for m in pkg.manifest if m.path == rel)
    entry = next(e for e in pkg.entries if e.path == rel)
    with entry.opener() as fh:
        found = fh.read()
    assert declared.digests["sha256"] == hashlib.sha256(PDF).hexdigest() != hashlib.sha256(found).hexdigest()
    assert declared.digests["sm3"] == hashlib.new("sm3", PDF).hexdigest()
    f = next(f for f in records[0].files if f.location == rel)
    assert f.sha256 == hashlib.sha256(PDF).hexdigest() and f.opener is not None


def test_deleted_file(bag: Path) -> None:
    (bag / "data" / CODE / "处理单.txt").unlink()
    with pytest.raises(bagit.BagValidationError) as e:
        bagit.Bag(str(bag)).validate()
    assert "Payload-Oxum validation failed" in str(e.value)
    pkg, records, _ = _reader_bag(bag)
    rel = f"data/{CODE}/处理单.txt"
    assert rel in {m.path for m in pkg.manifest} and rel not in {e.path for e in pkg.entries}
    f = next(f for f in records[0].files if f.location == rel)
    assert f.opener is None and f.sm3 == hashlib.new("sm3", SHEET).hexdigest()
    assert pkg.declared_counts["files"] == 6
    assert sum(1 for e in pkg.entries if e.path.startswith("data/")) == 5


def test_added_file(bag: Path) -> None:
    (bag / "data" / CODE / "多余.exe").write_bytes(b"MZ")
    with pytest.raises(bagit.BagValidationError):
        bagit.Bag(str(bag)).validate()
    pkg, records, _ = _reader_bag(bag)
    extra = f"data/{CODE}/多余.exe"
    assert extra in {e.path for e in pkg.entries}
    assert extra not in {m.path for m in pkg.manifest} and extra not in pkg.allowed_extra
    assert extra not in {f.location for r in records for f in r.files}


def test_wrong_digest_line_and_malformed_lines(bag: Path) -> None:
    path = bag / "manifest-sha256.txt"
    lines = path.read_text("utf-8").splitlines()
    lines[0] = "1" * 64 + lines[0][64:]                       # wrong digest (well-formed)
    lines.append("nothex  data/x.txt")                       # malformed digest
    lines.append("justonefield")                             # malformed line
    lines.append("a" * 64 + "  ../../etc/passwd")            # zip-slip style path
    lines.append("b" * 64 + "  bag-info.txt")                 # not under data/
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    pkg, _records, problems = _reader_bag(bag)
    wrong_path = lines[0][66:]
    assert next(m for m in pkg.manifest if m.path == wrong_path).digests["sha256"] == "1" * 64
    joined = "\n".join(problems)
    assert "manifest-sha256.txt 第 7 行的摘要“nothex”不是 sha256 的十六进制摘要" in joined
    assert "manifest-sha256.txt 第 8 行格式错误" in joined
    assert "manifest-sha256.txt 第 9 行的路径“../../etc/passwd”不安全" in joined
    assert "“bag-info.txt”不在 data/ 目录下" in joined
    assert "../../etc/passwd" not in {m.path for m in pkg.manifest}
