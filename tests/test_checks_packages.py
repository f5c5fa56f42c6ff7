"""四性检测 at 移交与接收: packages exported by one archive, damaged on purpose in transit (a file deleted or
added, a byte flipped, a manifest line or Payload-Oxum wrong, a zip-slip entry, a tampered or hostile EEP),
then checked and imported by another. Each damage is named by its YJ- item with its evidence, a package that
fails stores nothing, and no file of the corpus makes an item crash."""

from __future__ import annotations

import hashlib
import io
import re
import resource
import shutil
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

import test_checks
from conftest import CORPUS
from dangan.checks.model import FileUnderCheck, RecordUnderCheck
from dangan.config import load_settings
from dangan.db.models import CheckRun, File, Record
from dangan.errors import PermissionDenied, ValidationFailed
from dangan.packages.bagit_pkg import export_bag
from dangan.services import checks as cs
from dangan.services import packages as ps
from dangan.services.context import Actor, Dangan
from test_checks import FAIL, NA, PASS, WARN, evidence, failing, item, new_record, no_crash

# the fast per-test archive of test_checks (a copy of one initialised template): the receiving archive here
archive_template = test_checks.archive_template
app = test_checks.app

ORG = "示范市人民政府办公室"
CODES = ["Z109-WS·2024-Y-BGS-0001", "Z109-WS·2024-Y-BGS-0002", "Z109-WS·2024-Y-BGS-0003"]
MAIN2 = f"data/{CODES[1]}/正文.pdf"


# ---------------------------------------------------------------- packages made by a sending archive


@dataclass
class Sent:
    bag_zip: Path            # export_records(…, "bagit"): the bag inside one top folder of a ZIP
    bag_dir: Path            # the same bag unpacked (a folder package)
    eep: Path                # export_records(…, [one record], "eep"): a signed DA/T 48 EEP
    eeps: Path               # export_records(…, all three, "eep"): a ZIP of three signed EEPs
    pdfs: dict[str, bytes]   # 档号 -> the bytes of its 正文
    titles: dict[str, str]


@pytest.fixture(scope="module")
def sent(archive_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sent]:
    """Three filed 文书 records of the sending archive, exported once per module as BagIt and as an EEP."""
    root = tmp_path_factory.mktemp("sender")
    shutil.copytree(archive_template, root / "data")
    src = Dangan(load_settings(root / "data"))
    admin = Actor.admin("127.0.0.1")
    try:
        recs = [new_record(src, admin, n) for n in (1, 2, 3)]
        assert [r["archival_code"] for r in recs] == CODES
        pdfs, titles = {}, {}
        for r in recs:
            with src.store.open(src_key(src, r["id"])) as fh:
                pdfs[r["archival_code"]] = fh.read()
            titles[r["archival_code"]] = r["title"]
        ids = [r["id"] for r in recs]
        bag = Path(ps.export_records(src, admin, ids, "bagit", root / "out" / "bag")["path"])
        eep = Path(ps.export_records(src, admin, ids[:1], "eep", root / "out" / "eep")["path"])
        eeps = Path(ps.export_records(src, admin, ids, "eep", root / "out" / "eeps")["path"])
        with zipfile.ZipFile(bag) as z:
            z.extractall(root / "unpacked")
        yield Sent(bag, root / "unpacked" / "bag", eep, eeps, pdfs, titles)
    finally:
        src.close()


def src_key(a: Dangan, record_id: int) -> str:
    with a.read_sessions() as s:
        return s.scalars(select(File.storage_key).where(File.record_id == record_id)).one()


def folder_copy(sent: Sent, tmp_path: Path, name: str = "bag") -> Path:
    dest = tmp_path / name
    shutil.copytree(sent.bag_dir, dest)
    return dest


def rezip(src: Path, dest: Path, *, change: dict[str, Callable[[bytes], bytes | None]] | None = None,
          add: dict[str, bytes] | None = None) -> Path:
    """A copy of a ZIP with some entries changed (None drops the entry) and some added, as is."""
    change = change or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data: bytes | None = zin.read(info.filename)
            if info.filename in change:
                data = change[info.filename](data)
            if data is not None:
                zout.writestr(info, data)
        for name, data in (add or {}).items():
            zout.writestr(name, data)
    return dest


def flip(data: bytes, at: int = 300) -> bytes:
    b = bytearray(data)
    b[at] ^= 0x20
    return bytes(b)


def check(a: Dangan, path: Path, **kw: Any) -> dict[str, Any]:
    res = cs.run_package(a, Actor.admin("127.0.0.1"), path, **kw)
    no_crash(res)
    assert res["status"] == "done" and res["target_kind"] == "package" and res["stage"] == "移交与接收"
    assert all(i["code"].startswith("YJ-") for i in res["items"])
    work = a.settings.data_dir / "checks" / "work"
    assert not work.exists() or not any(work.iterdir()), "the run left its work folder behind"
    return res


def counts(a: Dangan) -> tuple[int, int, int]:
    with a.read_sessions() as s:
        return (s.scalar(select(func.count()).select_from(Record)), s.scalar(select(func.count()).select_from(File)),
                len(list(a.store.iter_objects())))


def only(res: dict[str, Any], *codes: str) -> None:
    assert failing(res) == set(codes), {c: evidence(res, c)[:2] for c in failing(res)}


# ---------------------------------------------------------------- clean packages


def test_zip_of_several_signed_eeps_passes_and_a_tampered_one_is_named(app, sent, tmp_path):
    res = check(app, sent.eeps)
    assert res["verdict"] == PASS, {c: evidence(res, c)[:2] for c in failing(res)}
    assert res["summary"]["records"] == 3 and res["summary"]["files"] == 3
    names = sorted(zipfile.ZipFile(sent.eeps).namelist())
    assert len(names) == 3 and all(n.endswith(".xml") for n in names)
    title = sent.titles[CODES[1]]
    path = rezip(sent.eeps, tmp_path / "tampered.zip", change={
        f"{CODES[1]}.xml": lambda b: b.replace(title.encode(), (title + "（改）").encode(), 1)})
    res = check(app, path)
    assert failing(res) == {"YJ-1-1"}
    ev = evidence(res, "YJ-1-1")
    assert len(ev) == 1 and f"{CODES[1]}.xml" in ev[0]["message"] and "签名值验证失败" in ev[0]["message"]


@pytest.mark.parametrize("form", ["zip", "folder"])
def test_clean_exported_bag_passes(app, sent, tmp_path, form):
    path = sent.bag_zip if form == "zip" else folder_copy(sent, tmp_path)
    res = check(app, path)
    assert res["verdict"] == PASS, {c: evidence(res, c)[:2] for c in failing(res)}
    assert res["summary"]["records"] == 3 and res["summary"]["files"] == 3
    for code in ("YJ-1-12", "YJ-1-13", "YJ-1-14", "YJ-2-1", "YJ-2-11", "YJ-4-3", "YJ-1-10"):
        assert item(res, code)["outcome"] == PASS and item(res, code)["checked"] > 0, code
    # every digest of both manifests (SHA-256 and SM3, payload and tag files) was compared with the bytes
    assert item(res, "YJ-1-14")["checked"] == 6 + 5
    # with the category's schema the metadata items run on what the package describes
    assert item(res, "YJ-1-2")["outcome"] == PASS and item(res, "YJ-1-7")["checked"] == 3
    warned = {i["code"] for i in res["items"] if i["outcome"] == WARN}
    assert warned <= {"YJ-3-8", "YJ-2-9"}


def test_clean_signed_eep_passes(app, sent):
    res = check(app, sent.eep)
    assert res["verdict"] == PASS, {c: evidence(res, c)[:2] for c in failing(res)}
    fix = item(res, "YJ-1-1")
    assert fix["outcome"] == PASS and fix["checked"] >= 2  # the file, and the package's 电子签名 + 锁定签名
    assert item(res, "YJ-1-13")["outcome"] == PASS and item(res, "YJ-2-1")["outcome"] == PASS


# ---------------------------------------------------------------- damaged bags


@pytest.mark.parametrize("form", ["zip", "folder"])
def test_missing_payload_file(app, sent, tmp_path, form):
    if form == "zip":
        path = rezip(sent.bag_zip, tmp_path / "bag.zip", change={f"bag/{MAIN2}": lambda b: None})
    else:
        path = folder_copy(sent, tmp_path)
        (path / MAIN2).unlink()
    res = check(app, path)
    ev = evidence(res, "YJ-2-11")
    assert len(ev) == 1 and "缺失" in ev[0]["message"] and ev[0]["expected"] == MAIN2 and ev[0]["found"] == "不存在"
    assert ev[0]["subject"] == f"{CODES[1]} / 正文.pdf"
    totals = {e["field"]: e for e in evidence(res, "YJ-2-1")}
    assert totals["files"]["expected"] == 6 and totals["files"]["found"] == 5
    assert totals["bytes"]["expected"] - totals["bytes"]["found"] == len(sent.pdfs[CODES[1]])
    only(res, "YJ-2-11", "YJ-2-1", "YJ-1-11")
    assert res["verdict"] == FAIL and {"YJ-2-11", "YJ-2-1"} <= set(res["summary"]["vetoed"])


@pytest.mark.parametrize("form", ["zip", "folder"])
def test_extra_file(app, sent, tmp_path, form):
    extra = f"data/{CODES[0]}/说明.exe"
    if form == "zip":
        path = rezip(sent.bag_zip, tmp_path / "bag.zip", add={f"bag/{extra}": b"MZ\x90\x00extra"})
    else:
        path = folder_copy(sent, tmp_path)
        (path / extra).write_bytes(b"MZ\x90\x00extra")
    res = check(app, path)
    ev = evidence(res, "YJ-4-3")
    assert len(ev) == 1 and ev[0]["subject"] == extra and ev[0]["found"] == f"{extra}（9 字节）"
    assert "多余文件" in ev[0]["message"]
    only(res, "YJ-4-3", "YJ-2-1")  # the payload also no longer adds up to the Payload-Oxum


@pytest.mark.parametrize("form", ["zip", "folder"])
def test_changed_byte(app, sent, tmp_path, form):
    good = sent.pdfs[CODES[1]]
    bad = flip(good, 40)
    if form == "zip":
        path = rezip(sent.bag_zip, tmp_path / "bag.zip", change={f"bag/{MAIN2}": lambda b: bad})
    else:
        path = folder_copy(sent, tmp_path)
        (path / MAIN2).write_bytes(bad)
    res = check(app, path)
    man = {e["message"]: e for e in evidence(res, "YJ-1-14")}
    sha = man["清单中的 sha256 摘要与实际内容不符"]
    assert sha["subject"] == MAIN2 and sha["expected"] == hashlib.sha256(good).hexdigest()
    assert sha["found"] == hashlib.sha256(bad).hexdigest()
    assert man["清单中的 sm3 摘要与实际内容不符"]["found"] == hashlib.new("sm3", bad).hexdigest()
    dig = [e for e in evidence(res, "YJ-1-10") if e["field"] == "sha256"]
    assert len(dig) == 1 and dig[0]["subject"] == f"{CODES[1]} / 正文.pdf"
    assert (dig[0]["expected"], dig[0]["found"]) == (hashlib.sha256(good).hexdigest(), hashlib.sha256(bad).hexdigest())
    assert {"YJ-1-14", "YJ-1-10"} <= failing(res) <= {"YJ-1-14", "YJ-1-10", "YJ-3-4"}


def test_wrong_digest_line_in_the_manifest(app, sent, tmp_path):
    path = folder_copy(sent, tmp_path)
    manifest = path / "manifest-sha256.txt"
    lines = manifest.read_text("utf-8").splitlines()
    n = next(i for i, line in enumerate(lines) if line.endswith(MAIN2))
    lines[n] = "0" * 64 + lines[n][64:]
    manifest.write_text("\n".join(lines) + "\n", "utf-8")
    res = check(app, path)
    ev = {e["subject"]: e for e in evidence(res, "YJ-1-14")}
    assert ev[MAIN2]["expected"] == "0" * 64 and ev[MAIN2]["found"] == hashlib.sha256(sent.pdfs[CODES[1]]).hexdigest()
    # the manifest itself is covered by the tag manifest: its change is seen too
    assert "manifest-sha256.txt" in ev
    # and it no longer agrees with the record's own metadata.json
    assert any("登记的摘要不同" in e["message"] for e in evidence(res, "YJ-1-13"))
    assert item(res, "YJ-1-10")["outcome"] == PASS  # the content is what metadata.json recorded
    only(res, "YJ-1-14", "YJ-1-13")


def test_wrong_payload_oxum(app, sent, tmp_path):
    path = folder_copy(sent, tmp_path)
    info = path / "bag-info.txt"
    text = info.read_text("utf-8")
    m = re.search(r"Payload-Oxum: (\d+)\.(\d+)", text)
    assert m is not None
    real_bytes = int(m.group(1))
    info.write_text(text.replace(m.group(0), f"Payload-Oxum: {real_bytes + 1}.{m.group(2)}"), "utf-8")
    # the sender wrote the wrong total and then the tag manifests: only the count is wrong
    for alg in ("sha256", "sm3"):
        tm = path / f"tagmanifest-{alg}.txt"
        digest = hashlib.new(alg, info.read_bytes()).hexdigest()
        tm.write_text(re.sub(r"^[0-9a-f]+  bag-info\.txt$", f"{digest}  bag-info.txt", tm.read_text("utf-8"),
                             flags=re.M), "utf-8")
    res = check(app, path)
    ev = evidence(res, "YJ-2-1")
    assert len(ev) == 1 and ev[0]["field"] == "bytes" and (ev[0]["expected"], ev[0]["found"]) == (real_bytes + 1,
                                                                                                  real_bytes)
    assert "字节数与登记不符" in ev[0]["message"] and ev[0]["subject"] == "bag"
    only(res, "YJ-2-1")


def test_package_digest_announced_by_the_sender(app, sent, tmp_path):
    path = tmp_path / "bag.zip"
    shutil.copy(sent.bag_zip, path)
    real = hashlib.sha256(path.read_bytes()).hexdigest()
    assert check(app, path, sent_digest={"sha256": real})["verdict"] == PASS
    (tmp_path / "bag.zip.sha256").write_text(f"{'ab' * 32}  bag.zip\n")  # sha256sum file beside the package
    res = check(app, path)
    ev = [e for e in evidence(res, "YJ-1-14") if e["subject"] == "bag.zip"]
    assert len(ev) == 1 and "整包" in ev[0]["message"] and (ev[0]["expected"], ev[0]["found"]) == ("ab" * 32, real)


def test_zip_slip_entry_is_refused_and_nothing_is_written_outside(app, sent, tmp_path):
    marker = f"evil-{uuid.uuid4().hex[:8]}.txt"
    path = rezip(sent.bag_zip, tmp_path / "slip.zip", add={
        f"bag/../../../../../../../../../../tmp/{marker}": b"pwned", f"../{marker}": b"pwned",
        f"bag/data/../../{marker}": b"pwned"})
    before = counts(app)
    res = check(app, path)
    ev = evidence(res, "YJ-1-13")
    assert ev[0]["field"] == "ZIP_UNSAFE_PATH" and "不安全" in ev[0]["message"] and ev[0]["subject"] == "slip.zip"
    assert any(e["found"] == f"../{marker}" for e in ev[1:])
    assert res["verdict"] == FAIL and res["summary"]["records"] == 0  # refused whole: nothing was expanded
    with pytest.raises(ValidationFailed) as ei:
        ps.import_package(app, Actor.admin(), path, fonds="Z109", category="WS")
    assert ei.value.code == "PACKAGE_CHECK_FAILED" and "YJ-1-13" in ei.value.message
    assert counts(app) == before
    places = {Path("/tmp"), Path.cwd(), *tmp_path.parents, *app.settings.data_dir.parents}
    assert not [p for p in places if (p / marker).exists()]
    assert not list(tmp_path.rglob(marker))


@pytest.mark.parametrize("how", ["manifest-line", "metadata-path", "symlink"])
def test_paths_out_of_the_package_are_reported_not_followed(app, sent, tmp_path, how):
    secret = tmp_path / "secret.txt"
    secret.write_bytes("机密内容".encode())
    secret_sha = hashlib.sha256(secret.read_bytes()).hexdigest()
    path = folder_copy(sent, tmp_path)
    if how == "manifest-line":
        bad = "data/../../secret.txt"
        with (path / "manifest-sha256.txt").open("a", encoding="utf-8") as fh:
            fh.write(f"{secret_sha}  {bad}\n")
    elif how == "metadata-path":
        bad = "../../../secret.txt"
        meta = path / "data" / CODES[0] / "metadata.json"
        meta.write_text(meta.read_text("utf-8").replace('"path": "正文.pdf"', f'"path": "{bad}"', 1), "utf-8")
    else:
        bad = f"data/{CODES[0]}/附件.txt"
        (path / bad).symlink_to(secret)
    res = check(app, path)
    ev = evidence(res, "YJ-1-13")
    assert any(e["found"] == bad or e["subject"] == bad for e in ev), ev
    assert any(w in " ".join(e["message"] for e in ev) for w in ("指向包外", "符号链接"))
    # the file outside was never read
    found = [e.get("found") for i in res["items"] for e in i["evidence"]]
    assert secret_sha not in found and not any("机密内容" in str(f) for f in found)
    assert res["verdict"] == FAIL


def test_package_check_needs_check_run(app, sent):
    nobody = Actor("clerk1", grants=(("record.read", "all"), ("record.import", "all")))
    with pytest.raises(PermissionDenied):
        cs.run_package(app, nobody, sent.bag_zip)
    with pytest.raises(PermissionDenied):  # importing runs the check, as the importer
        ps.import_package(app, nobody, sent.bag_zip, fonds="Z109", category="WS")
    assert counts(app) == (0, 0, 0)


# ---------------------------------------------------------------- EEPs


def test_tampered_eep_title_breaks_the_signature(app, sent, tmp_path):
    raw = sent.eep.read_bytes()
    title = sent.titles[CODES[0]]
    assert raw.count(title.encode()) == 1
    path = tmp_path / "eep.xml"
    path.write_bytes(raw.replace(title.encode(), title.replace("通知", "通告").encode()))
    res = check(app, path)
    ev = evidence(res, "YJ-1-1")
    assert len(ev) == 1 and ev[0]["subject"] == "eep.xml"
    assert (ev[0]["expected"], ev[0]["found"]) == ("签名有效", "签名无效") and "被改动" in ev[0]["message"]
    only(res, "YJ-1-1")  # the file data is unchanged: only the signature tells


BILLION_LAUGHS = ('<!DOCTYPE 电子文件封装包 [<!ENTITY lol "lol">'
                  + "".join(f'<!ENTITY lol{i} "{(f"&lol{i - 1};" if i > 1 else "&lol;") * 10}">' for i in range(1, 10))
                  + "]>\n")


@pytest.mark.parametrize("kind", ["billion-laughs", "xxe"])
def test_eep_with_doctype_is_refused_without_expansion(app, sent, tmp_path, kind):
    raw = sent.eep.read_bytes()
    title = sent.titles[CODES[0]].encode()
    if kind == "billion-laughs":  # 10^9 × "lol" if it were expanded
        doctype, ref = BILLION_LAUGHS, b"&lol9;"
    else:
        doctype, ref = '<!DOCTYPE 电子文件封装包 [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n', b"&xxe;"
    head, rest = raw.split(b"?>\n", 1)
    path = tmp_path / "eep.xml"
    path.write_bytes(head + b"?>\n" + doctype.encode() + rest.replace(title, ref, 1))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res = check(app, path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 100 * 1024  # KiB: bounded memory
    ev = evidence(res, "YJ-1-13")
    assert ev[0]["field"] == "EEP_DTD_FORBIDDEN" and "DOCTYPE" in ev[0]["message"]
    assert res["verdict"] == FAIL and res["summary"]["records"] == 0
    text = repr(res)
    assert "lollollol" not in text and "root:" not in text
    assert item(res, "YJ-3-1")["outcome"] in (PASS, FAIL, NA)


# ---------------------------------------------------------------- bad content in a package


def _flipped_signed_ofd() -> bytes:
    """ofdrw-ses-v4-seal.ofd with one character of its signed page changed (the XML stays well formed)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(CORPUS / "ofd" / "ofdrw-ses-v4-seal.ofd") as zin, \
            zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "Doc_0/Pages/Page_0/Content.xml":
                assert b'X="0" Y="3"' in data
                data = data.replace(b'X="0" Y="3"', b'X="1" Y="3"', 1)
            zout.writestr(info, data)
    return buf.getvalue()


CONTENT_CASES = {
    # name: (file name, bytes, the items that must fail, a word of the first 1-line evidence)
    "zero-byte": ("正文.pdf", lambda: b"", {"YJ-2-11", "YJ-1-9", "YJ-3-4", "YJ-3-8"}),
    "png-named-pdf": ("正文.pdf", lambda: (CORPUS / "scans" / "rapidocr-transparent-black-text.png").read_bytes(),
                      {"YJ-1-9"}),
    "encrypted-pdf": ("正文.pdf", lambda: (CORPUS / "pdf" / "encrypted-userpw-user.pdf").read_bytes(),
                      {"YJ-3-5", "YJ-3-4"}),
    "ofd-seal-broken": ("正文.ofd", lambda: (CORPUS / "ofd" / "iofd-seal-esl.ofd").read_bytes(), {"YJ-1-1", "YJ-3-4"}),
    "ofd-page-changed": ("正文.ofd", _flipped_signed_ofd, {"YJ-1-1", "YJ-3-4"}),
}


@pytest.mark.parametrize("case", list(CONTENT_CASES))
def test_bad_content_in_a_bag(app, tmp_path, case):
    name, content, codes = CONTENT_CASES[case]
    data = content()
    md = {"title": "关于报送2024年度工作总结的通知", "year": 2024, "retention_period": "Y", "responsible": "办公室",
          "date": "2024-03-05", "security_level": "公开"}
    rec = RecordUnderCheck(ref="OA-1", title=md["title"], fonds_code="Z109", category_code="WS", metadata=md,
                           files=[FileUnderCheck(ref="f1", name=name, role="main", opener=lambda: io.BytesIO(data))])
    bag = export_bag([rec], tmp_path / "bag", info={"Source-Organization": ORG})
    res = check(app, bag)
    only(res, *codes)
    subject = f"{md['title'][:30]} / {name}"
    for code in codes:
        assert all(e["subject"] == subject for e in evidence(res, code)), code
    assert item(res, "YJ-1-14")["outcome"] == PASS  # the bag itself arrived intact: the content was bad already
    if case == "zero-byte":
        assert evidence(res, "YJ-2-11")[0]["message"] == "电子文件为空（0 字节）"
    elif case == "png-named-pdf":
        e = evidence(res, "YJ-1-9")[0]
        assert e["field"] == "name" and e["found"] == name and "PNG" in e["expected"]
    elif case == "encrypted-pdf":
        assert (evidence(res, "YJ-3-5")[0]["expected"], evidence(res, "YJ-3-5")[0]["found"]) == ("未加密", "加密")
    else:
        e = evidence(res, "YJ-1-1")[0]
        assert (e["expected"], e["found"]) == ("摘要一致", "摘要不符") and "被改动" in e["message"]
        assert "Content.xml" in e["message"]


# ---------------------------------------------------------------- import


def test_import_clean_bag_then_again(app, sent):
    admin = Actor.admin("127.0.0.1")
    assert counts(app) == (0, 0, 0)
    out = ps.import_package(app, admin, sent.bag_zip, fonds="Z109", category="WS")
    assert out["check_run"]["verdict"] == PASS and out["created"] == 3 and out["failed"] == 0 and out["files"] == 3
    assert counts(app) == (3, 3, 3)
    with app.read_sessions() as s:
        recs = list(s.scalars(select(Record).order_by(Record.id)))
        assert [r.state for r in recs] == ["pending"] * 3 and all(r.archival_code is None for r in recs)
        assert sorted(r.title for r in recs) == sorted(sent.titles.values())
        for r in recs:
            code = next(c for c, t in sent.titles.items() if t == r.title)
            (f,) = r.files
            with app.store.open(f.storage_key) as fh:
                assert fh.read() == sent.pdfs[code]  # byte-identical
            assert f.sha256 == hashlib.sha256(sent.pdfs[code]).hexdigest() and f.name == "正文.pdf"
            assert r.meta["doc_number"].startswith("示政办发〔2024〕")
    again = ps.import_package(app, admin, sent.bag_zip, fonds="Z109", category="WS")
    assert again["created"] == 0 and again["existing"] == 3 and again["files"] == 0
    assert counts(app) == (3, 3, 3)
    with app.read_sessions() as s:  # both receptions were checked and kept
        assert s.scalar(select(func.count()).select_from(CheckRun).where(CheckRun.verdict == PASS)) == 2


@pytest.mark.parametrize("damage", ["changed-byte", "missing-file", "extra-file"])
def test_import_corrupted_bag_stores_nothing(app, sent, tmp_path, damage):
    change: dict[str, Callable[[bytes], bytes | None]] = {}
    add: dict[str, bytes] = {}
    if damage == "changed-byte":
        change[f"bag/{MAIN2}"] = lambda b: flip(b, 40)
    elif damage == "missing-file":
        change[f"bag/{MAIN2}"] = lambda b: None
    else:
        add[f"bag/data/{CODES[2]}/extra.txt"] = "多余".encode()
    path = rezip(sent.bag_zip, tmp_path / "bag.zip", change=change, add=add)
    new_record(app, Actor.admin(), 9)  # the receiving archive is not empty
    before = counts(app)
    with pytest.raises(ValidationFailed) as ei:
        ps.import_package(app, Actor.admin("127.0.0.1"), path, fonds="Z109", category="WS")
    e = ei.value
    assert e.code == "PACKAGE_CHECK_FAILED" and "未接收任何档案" in e.message
    want = {"changed-byte": "YJ-1-14", "missing-file": "YJ-2-11", "extra-file": "YJ-4-3"}[damage]
    assert want in e.message
    assert counts(app) == before
    assert not any((app.store.root / "tmp").iterdir())
    run = cs.get_run(app, Actor.admin(), e.detail["check_run_id"])
    assert run["verdict"] == FAIL and item(run, want)["outcome"] == FAIL


# ---------------------------------------------------------------- the whole corpus


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow on the corpus's corrupt TIFFs and JPEGs
@pytest.mark.parametrize("corpus", ["formats", "pdf"])
def test_engine_never_crashes_on_the_corpus(app, tmp_path, corpus):
    folder = tmp_path / corpus
    folder.mkdir()
    names = sorted(p.name for p in (CORPUS / corpus).iterdir() if p.is_file())
    for n in names:
        shutil.copy(CORPUS / corpus / n, folder / n)
    res = check(app, folder)  # no_crash: no item reports 检测项执行出错
    assert res["verdict"] in (PASS, FAIL) and res["summary"]["files"] == len(names)
    for code in ("YJ-1-9", "YJ-2-11", "YJ-3-4", "YJ-3-5"):  # every file was read and looked at
        assert item(res, code)["checked"] == len(names), code
    opened = {e["subject"].split(" / ", 1)[1] for e in item(res, "YJ-3-4")["evidence"] if e["outcome"] == FAIL}
    if corpus == "pdf":
        assert {"encrypted-userpw-user.pdf", "truncated-chinese-word-contract.pdf"} <= opened
        assert "pdfa-1b-verapdf-pass.pdf" not in opened
        enc = {e["subject"].split(" / ", 1)[1] for e in evidence(res, "YJ-3-5")}
        assert "encrypted-aes256-r6.pdf" in enc
    else:
        assert "zero-byte-with-pdf-extension.pdf" in {e["subject"].split(" / ", 1)[1]
                                                      for e in evidence(res, "YJ-2-11")}
        lies = {e["subject"].split(" / ", 1)[1] for e in evidence(res, "YJ-1-9")}
        assert {"not-a-pdf-text-named.pdf", "tiff-with-wrong-extension.prk"} & lies
