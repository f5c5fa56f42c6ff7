"""数字化 (services/digitise.py) with the real imaging, QC, OCR and PDF/A modules on small generated pages.

One archive per module with a batch that has every kind of problem (names matching no record, a record without
images, 页数 ≠ pages scanned, duplicate and missing page numbers, a multi-page TIFF with one broken page, corrupt
and truncated JPEGs, a 1-pixel image, a blank page, a skewed page, names in GBK), and a small clean batch that is
OCR'd (2 OCR calls), accepted and then found by search. The OCR of one file (`dangan ocr FILE`) is one more call.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw, ImageFont
from sqlalchemy import select

from conftest import CORPUS, make_app
from dangan.capture.zipsafe import SafeZip
from dangan.db.models import AuditEvent, File, FileText, FileTextPage, ScanFile, ScanPage
from dangan.errors import DanganError, NotFound, PermissionDenied, StateError, ValidationFailed
from dangan.services import digitise as dg
from dangan.services import identity as idn
from dangan.services import search, storage_ops
from dangan.services.context import Actor, Dangan
from dangan.services.records import RecordInput, create_record, get_record
from test_api import add_user
from test_capture_parsing import RawNameInfo

FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
BASE = {"year": 2024, "retention_period": "D30", "responsible": "示范市人民政府办公室", "date": "2024-05-06",
        "security_level": "公开"}
PAGE = (1240, 1754)  # A4 at 150 dpi, saved as 300 dpi at half the size below: kept small for speed
GOV_LINES = ["示范市人民政府办公室文件", "示政办发〔2024〕12号", "关于做好档案数字化工作的通知",
             "各县区人民政府，市政府各部门：", "为推进档案数字化转型，现就有关事项通知如下。", "示范市人民政府办公室",
             "2024年3月5日"]


def text_page(lines: list[str], size: tuple[int, int] = (827, 1169), font_px: int = 30, angle: float = 0.0,
              mode: str = "L") -> Image.Image:
    """A white page with black Chinese text lines (A4 at 100 px per inch of paper)."""
    img = Image.new(mode, size, 255 if mode == "L" else (255, 255, 255))
    d = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, font_px)
    y = 90
    for i, line in enumerate(lines):
        big = i in (0, 2)
        f = ImageFont.truetype(FONT, font_px + (12 if big else 0)) if big else font
        w = d.textlength(line, font=f)
        x = (size[0] - w) / 2 if i in (0, 1, 2) else 80
        d.text((x, y), line, fill=0 if mode == "L" else (0, 0, 0), font=f)
        y += int((font_px + 12) * 1.9)
    if angle:
        img = img.rotate(angle, expand=False, fillcolor=255 if mode == "L" else (255, 255, 255),
                         resample=Image.Resampling.BICUBIC)
    return img


def save(img: Image.Image, path: Path | bytes, fmt: str = "JPEG", dpi: int = 300, **kw: Any) -> None:
    buf = io.BytesIO()
    img.save(buf, fmt, dpi=(dpi, dpi), **kw)
    with open(path, "wb") as fh:
        fh.write(buf.getvalue())


def filed(app: Dangan, title: str, pages: int | None, **meta: Any) -> dict[str, Any]:
    m = {**BASE, "title": title, **meta}
    if pages is not None:
        m["pages"] = pages
    return create_record(app, Actor.system(), RecordInput("Z109", "WS", m, department="BGS", state="filed"))


def person(app: Dangan, username: str, roles: list[str], clearance: str = "机密", depts: tuple[str, ...] = ("BGS",)) -> Actor:
    from dangan.db.models import User

    add_user(app, username, roles, clearance, depts)
    with app.read_sessions() as s:
        return idn.actor_for(s, s.scalar(select(User).where(User.username == username)))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("digitise")
    app = make_app(root / "data")
    arch = person(app, "dangan", ["archivist"])
    recs = {k: filed(app, f"档案{k}", n) for k, n in (("A", 2), ("B", 3), ("C", 2), ("D", 4), ("E", 1), ("F", 2),
                                                      ("G", 2))}
    code = {k: r["archival_code"] for k, r in recs.items()}
    scans = root / "scans"
    scans.mkdir()
    body = [f"第{i}页 关于档案工作的说明" for i in range(1, 6)]
    save(text_page(body[:3]), scans / f"{code['A']}-0001.jpg")
    a2 = text_page(["第二页", "附件：数字化工作方案"])
    save(a2, scans / f"{code['A']}-0002.jpg")
    save(a2, scans / f"{code['A']}-002.jpg")  # the same page twice, by another name: duplicate 页号 and image
    # B: a multi-page TIFF holding every page, page 2 broken
    pages = [text_page([f"卷内第{i}页", "会议纪要"], mode="L") for i in (1, 2, 3)]
    buf = io.BytesIO()
    pages[0].save(buf, "TIFF", save_all=True, append_images=pages[1:], compression="tiff_lzw", dpi=(300, 300))
    data = bytearray(buf.getvalue())
    with Image.open(io.BytesIO(bytes(data))) as src:
        src.seek(1)
        for off, cnt in zip(src.tag_v2[273], src.tag_v2[279], strict=True):
            data[off:off + cnt] = bytes((x * 37 + 11) % 256 for x in range(cnt))
    (scans / f"{code['B']}.tif").write_bytes(bytes(data))
    # C: a folder per 档号, named in GBK (the 档号's "·" and a Chinese parent folder), pages 1 and 3 (2 missing)
    gbk_dir = os.path.join(os.fsencode(scans), "扫描件".encode("gbk"), code["C"].encode("gbk"))
    os.makedirs(gbk_dir)
    save(text_page(["通知正文", "请各单位遵照执行"]), os.path.join(gbk_dir, b"0001.png"), "PNG")
    save(text_page(["第三页", "抄送：档案局"]), os.path.join(gbk_dir, b"0003.png"), "PNG")
    # E: a 1-pixel image
    save(Image.new("L", (1, 1), 0), scans / f"{code['E']}-0001.png", "PNG")
    # F: a corrupt JPEG (from the corpus) and a truncated one
    (scans / f"{code['F']}-0001.jpg").write_bytes((CORPUS / "formats" / "jpeg-corrupt-bytes-removed.jpg").read_bytes())
    whole = io.BytesIO()
    text_page(["被截断的页面"]).save(whole, "JPEG", dpi=(300, 300))
    (scans / f"{code['F']}-0002.jpg").write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    # G: a blank page (an image of no text) and a skewed page
    save(Image.new("L", (827, 1169), 255), scans / f"{code['G']}-0001.png", "PNG")
    save(text_page(body, angle=3.0), scans / f"{code['G']}-0002.jpg")
    (scans / f"{code['G']}-0003.jpg").write_bytes((CORPUS / "scans" / "rapidocr-exif-rotated.jpg").read_bytes())
    # a name that matches no record, and a file that is no image
    save(text_page(["无主页面"]), scans / "Z109-WS·2024-D30-BGS-9999-0001.jpg")
    (scans / "说明.txt").write_text("扫描说明", encoding="utf-8")
    sources, skipped = dg.sources_from_dir(scans)
    batch = dg.import_batch(app, arch, sources, fonds="Z109", category="WS", year=2024, device="Fujitsu fi-7160",
                            software="PaperStream Capture 3.0", name="2024 年文书档案第一批", skipped=skipped)
    yield {"app": app, "arch": arch, "recs": recs, "code": code, "batch": batch, "scans": scans, "root": root}
    app.close()


def _issues(app: Dangan, actor: Actor, batch_id: int) -> dict[str, dict[str, Any]]:
    return {i["key"]: i for i in dg.get_batch(app, actor, batch_id)["issues"]}


def _pages(app: Dangan, batch_id: int) -> list[ScanPage]:
    with app.read_sessions() as s:
        return list(s.scalars(select(ScanPage).where(ScanPage.batch_id == batch_id).order_by(ScanPage.id)))


def _page(app: Dangan, batch_id: int, code: str, page_no: int, current: bool = True) -> ScanPage:
    return next(p for p in _pages(app, batch_id) if p.archival_code == code and p.page_no == page_no
                and p.is_current == current)


# ---------------------------------------------------------------- intake


def test_intake_stores_masters_links_by_code_and_lists_mismatches(world: Any) -> None:
    app, arch, code, b = world["app"], world["arch"], world["code"], world["batch"]
    rid = {k: r["id"] for k, r in world["recs"].items()}
    assert b["status"] == "open" and b["summary"]["files"] == 13
    assert b["summary"]["gbk_names"] == 2  # the folder per 档号 named in GBK
    assert [s["name"] for s in b["summary"]["skipped"]] == ["说明.txt"]
    with app.read_sessions() as s:
        files = {f.name: f for f in s.scalars(select(ScanFile).where(ScanFile.batch_id == b["id"]))}
    gbk = files[f"扫描件/{code['C']}/0001.png"]  # decoded from GBK bytes, linked through the folder's 档号
    assert gbk.name_encoding == "gb18030" and gbk.archival_code == code["C"] and gbk.layout == "folder"
    assert files[f"{code['B']}.tif"].page_count == 3 and files[f"{code['B']}.tif"].layout == "multi"
    # masters are in the store, write-once, with both digests
    f = files[f"{code['A']}-0001.jpg"]
    assert app.store.exists(f.storage_key) and len(f.sha256) == 64 and len(f.sm3) == 64
    assert f.media_type == "image/jpeg"
    issues = _issues(app, arch, b["id"])
    assert issues["qc_pending"]["severity"] == "block" and not issues["qc_pending"]["overridable"]
    assert "9999" in issues["no_record:Z109-WS·2024-D30-BGS-9999"]["message"]
    assert issues[f"no_images:{rid['D']}"]["kind"] == "no_images"
    assert issues[f"page_count:{rid['A']}"]["expected"] == 2 and issues[f"page_count:{rid['A']}"]["found"] == 3
    assert issues[f"dup:{rid['A']}:2"]["kind"] == "duplicate_page_no"
    assert issues[f"gap:{rid['C']}"]["missing"] == [2]
    unreadable = [i for i in issues.values() if i["kind"] == "unreadable"]
    assert any(code["F"] in i["message"] and "0001.jpg" in i["message"] for i in unreadable)  # the corrupt JPEG
    # the linked pages carry the 数字化属性 from the file and the operator's device and software
    p = _page(app, b["id"], code["A"], 1)
    assert (p.dpi, p.colour, p.device, p.software) == (300, "灰度", "Fujitsu fi-7160", "PaperStream Capture 3.0")
    assert p.record_id == rid["A"] and p.scanned_at is not None


def test_names_per_da_t_31() -> None:
    code = "Z109-WS·2024-D30-BGS-0001"
    assert dg.parse_name(f"{code}-0003.jpg").candidates[1:] == ((code, 3, "page"),)
    assert dg.parse_name(f"{code}.tif").candidates[0] == (code, None, "multi")
    assert dg.parse_name(f"批次/{code}/012.png").candidates[0] == (code, 12, "folder")
    assert dg.decode_name("扫描件".encode("gbk")) == ("扫描件", "gb18030")
    assert dg.decode_name(b"\xff\xfe\xfa") [1] == "unknown"
    assert dg.clean_upload_name("../../etc/passwd") is None and dg.clean_upload_name("a/../b.jpg") is None
    assert dg.clean_upload_name("文件夹\\0001.jpg") == "文件夹/0001.jpg"


def test_a_code_written_with_other_separators_still_links(world: Any, tmp_path: Path) -> None:
    """Scanning software that cannot write "·" puts "." or "_" instead: linked all the same (separators ignored)."""
    code = world["code"]["E"]
    save(text_page(["分隔符不同"]), tmp_path / f"{code.replace('·', '.')}-0001.jpg")
    save(text_page(["分隔符不同"]), tmp_path / f"{code.replace('·', '_')}_0002.jpg")
    sources, _ = dg.sources_from_dir(tmp_path)
    b = dg.import_batch(world["app"], world["arch"], sources, fonds="Z109")
    pages = _pages(world["app"], b["id"])
    assert {(p.record_id, p.archival_code, p.page_no) for p in pages} == {(world["recs"]["E"]["id"], code, 1),
                                                                         (world["recs"]["E"]["id"], code, 2)}


def test_a_scanned_pdf_named_by_its_code_holds_every_page(world: Any, tmp_path: Path) -> None:
    code = world["code"]["D"]
    pages = [text_page(GOV_LINES).convert("RGB"), text_page(["附件", "数字化工作方案", "一、总体要求"], font_px=40).convert("RGB")]
    pages[0].save(tmp_path / f"{code}.pdf", "PDF", save_all=True, append_images=pages[1:], resolution=300)
    sources, _ = dg.sources_from_dir(tmp_path)
    b = dg.import_batch(world["app"], world["arch"], sources, fonds="Z109")
    [f] = dg.get_batch(world["app"], world["arch"], b["id"])["files"]
    assert f["page_count"] == 2 and f["archival_code"] == code
    dg.run_qc(world["app"], world["arch"], b["id"])
    got = [(p.page_no, p.index, p.dpi, p.qc_status) for p in _pages(world["app"], b["id"])]
    assert [g[:2] for g in got] == [(1, 0), (2, 1)] and all(g[3] in ("ok", "warn") for g in got)


def test_nothing_to_take_in(world: Any, tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("x")
    sources, skipped = dg.sources_from_dir(tmp_path)
    with pytest.raises(ValidationFailed) as e:
        dg.import_batch(world["app"], world["arch"], sources, fonds="Z109", skipped=skipped)
    assert e.value.code == "NO_SCANS"
    with pytest.raises(ValidationFailed) as e2:
        dg.sources_from_dir(tmp_path / "missing")
    assert e2.value.code == "FOLDER_MISSING"


def test_a_zip_with_a_path_escaping_the_folder_is_refused_whole(tmp_path: Path) -> None:
    z = tmp_path / "scans.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("Z109-WS·2024-D30-BGS-0001-0001.jpg", b"\xff\xd8\xff")
        zf.writestr("../../evil.jpg", b"\xff\xd8\xff")
    with pytest.raises(ValidationFailed) as e:
        SafeZip(z)
    assert e.value.code == "ZIP_UNSAFE_PATH"


def test_a_zip_with_gbk_names_is_taken_in(world: Any, tmp_path: Path) -> None:
    app, arch, code = world["app"], world["arch"], world["code"]
    z = tmp_path / "gbk.zip"
    img = io.BytesIO()
    text_page(["压缩包中的页面"]).save(img, "JPEG", dpi=(300, 300))
    with zipfile.ZipFile(z, "w") as zf:  # the name in GBK with the UTF-8 flag clear, as Chinese Windows writes it
        zf.writestr(RawNameInfo(f"扫描/{code['E']}-0001.jpg".encode("gbk"), date_time=(2024, 3, 5, 0, 0, 0)),
                    img.getvalue())
    assert "扫描".encode("gbk") in z.read_bytes()
    with SafeZip(z) as sz:
        sources, skipped = dg.sources_from_zip(sz)
        b = dg.import_batch(app, arch, sources, fonds="Z109", skipped=skipped)
    [f] = dg.get_batch(app, arch, b["id"])["files"]
    assert f["name"] == f"扫描/{code['E']}-0001.jpg" and f["name_encoding"] == "gb18030"
    assert f["archival_code"] == code["E"]


def test_without_permission_nothing_is_taken_in(world: Any) -> None:
    app = world["app"]
    clerk = person(app, "bgs_clerk", ["clerk"], "内部")
    reader = person(app, "a_reader", ["reader"], "公开", ())
    sources, _ = dg.sources_from_dir(world["scans"])
    for who in (clerk, reader):
        with pytest.raises(PermissionDenied):
            dg.import_batch(app, who, sources[:1], fonds="Z109")
        with pytest.raises(PermissionDenied):
            dg.get_batch(app, who, world["batch"]["id"])
        with pytest.raises(PermissionDenied):
            dg.accept_batch(app, who, world["batch"]["id"])
    with app.read_sessions() as s:
        denied = s.scalars(select(AuditEvent).where(AuditEvent.action == "scan.import",
                                                    AuditEvent.outcome == "denied")).all()
    assert len(denied) >= 2


# ---------------------------------------------------------------- QC, rescans, 抽检, accept


@pytest.fixture(scope="module")
def checked(world: Any) -> Any:
    app, arch, b = world["app"], world["arch"], world["batch"]
    seen: list[tuple[int, int]] = []
    res = dg.run_qc(app, arch, b["id"], progress=lambda n, t: seen.append((n, t)))
    world["qc_progress"] = seen
    world["qc"] = res
    return world


def _codes(w: Any, k: str, n: int) -> set[str]:
    return {f["code"] for f in _page(w["app"], w["batch"]["id"], w["code"][k], n).flags}


def test_qc_runs_as_a_job_with_progress_and_says_when_there_is_nothing_left(checked: Any) -> None:
    assert checked["qc_progress"][-1][0] == checked["qc_progress"][-1][1] == checked["qc"]["checked"]
    with pytest.raises(StateError) as e:  # nothing new to check: a clear answer, not an empty job
        dg.prepare_qc(checked["app"], checked["arch"], checked["batch"]["id"])
    assert e.value.code == "QC_NOTHING_TO_DO"


def test_multipage_tiff_with_one_broken_page(checked: Any) -> None:
    app, b, code = checked["app"], checked["batch"], checked["code"]
    assert "UNREADABLE" in _codes(checked, "B", 2) and _page(app, b["id"], code["B"], 2).qc_status == "fail"
    for n in (1, 3):  # the file's other pages are read and checked as usual
        assert _page(app, b["id"], code["B"], n).qc_status in ("ok", "warn")
    p = _page(app, b["id"], code["B"], 1)
    assert (p.width, p.height, p.dpi, p.colour, p.compression) == (827, 1169, 300, "灰度", "LZW")


def test_corrupt_and_truncated_images_are_unreadable(checked: Any) -> None:
    assert "UNREADABLE" in _codes(checked, "F", 1)  # the corpus JPEG with bytes removed
    assert "UNREADABLE" in _codes(checked, "F", 2)  # half a JPEG
    with pytest.raises(NotFound) as e:
        dg.page_image(checked["app"], checked["arch"], _page(checked["app"], checked["batch"]["id"],
                                                             checked["code"]["F"], 1).id)
    assert e.value.code == "PAGE_UNREADABLE"


def test_a_one_pixel_image(checked: Any) -> None:
    assert "TINY" in _codes(checked, "E", 1)  # not a page: it fails QC and goes back for rescanning
    assert _page(checked["app"], checked["batch"]["id"], checked["code"]["E"], 1).qc_status == "fail"


def test_an_image_of_no_text_is_a_blank_page(checked: Any) -> None:
    app, arch, b, code = checked["app"], checked["arch"], checked["batch"], checked["code"]
    blank = _page(app, b["id"], code["G"], 1)
    assert "BLANK" in _codes(checked, "G", 1) and blank.qc_status == "fail"
    assert dg.declare_blank(app, arch, b["id"], blank.id, True, "原件背面空白")["qc_status"] in ("ok", "warn")
    assert dg.declare_blank(app, arch, b["id"], blank.id, False)["qc_status"] == "fail"


def test_a_skewed_page_is_measured_and_deskewed_on_the_access_copy_only(checked: Any) -> None:
    import hashlib

    app, arch, b, code = checked["app"], checked["arch"], checked["batch"], checked["code"]
    skewed = _page(app, b["id"], code["G"], 2)
    assert "SKEW" in {f["code"] for f in skewed.flags} and abs(skewed.qc["skew"]) > 2
    with Image.open(dg.page_image(app, arch, skewed.id)) as im:
        assert im.size != (827, 1169)  # rotated back with the canvas expanded
    with app.read_sessions() as s:
        sf = s.get(ScanFile, skewed.file_id)
    with app.store.open(sf.storage_key) as fh:  # the master is untouched
        assert hashlib.sha256(fh.read()).hexdigest() == sf.sha256
    with Image.open(dg.page_image(app, arch, skewed.id, "thumb")) as im:
        assert max(im.size) <= 320


def test_a_page_stored_upside_down_comes_out_upright(checked: Any) -> None:
    app, arch, b, code = checked["app"], checked["arch"], checked["batch"], checked["code"]
    p = _page(app, b["id"], code["G"], 3)  # the corpus JPEG with EXIF Orientation=3
    assert p.qc["orientation_applied"] == 3
    with Image.open(CORPUS / "scans" / "rapidocr-exif-rotated.jpg") as raw, Image.open(dg.page_image(app, arch, p.id)) as im:
        assert im.size == raw.size  # turned 180°: same size, upright pixels (the OCR module reads it as text)


def test_duplicate_pages(checked: Any) -> None:
    app, b, code = checked["app"], checked["batch"], checked["code"]
    dups = [p for p in _pages(app, b["id"]) if p.archival_code == code["A"] and p.page_no == 2]
    flagged = [p for p in dups if "DUPLICATE" in {f["code"] for f in p.flags}]
    assert len(dups) == 2 and len(flagged) == 1
    other = next(p for p in dups if p is not flagged[0])
    assert next(f for f in flagged[0].flags if f["code"] == "DUPLICATE")["page_id"] == other.id


def test_report_lists_every_page(checked: Any) -> None:
    from openpyxl import load_workbook

    data = dg.report_xlsx(checked["app"], checked["arch"], checked["batch"]["id"])
    wb = load_workbook(io.BytesIO(data))
    assert wb.sheetnames == ["概况", "待解决问题", "页面质检"]
    rows = list(wb["页面质检"].iter_rows(values_only=True))
    assert rows[0][:6] == ("档号", "页号", "文件", "宽×高（像素）", "扫描分辨率（dpi）", "色彩模式")
    assert len(rows) - 1 == len(_pages(checked["app"], checked["batch"]["id"]))


def test_accept_with_outstanding_failures_is_refused(checked: Any) -> None:
    app, arch, b = checked["app"], checked["arch"], checked["batch"]
    with pytest.raises(ValidationFailed) as e:
        dg.accept_batch(app, arch, b["id"])
    assert e.value.code == "SCAN_OUTSTANDING" and e.value.detail["outstanding"] >= 8
    keys = {p.field for p in e.value.problems}
    assert "inspection" in keys and any(k.startswith("page:") for k in keys)
    with pytest.raises(ValidationFailed) as e2:  # overriding without a reason
        dg.accept_batch(app, arch, b["id"], overrides=sorted(keys))
    assert e2.value.code == "REASON_REQUIRED"
    with pytest.raises(ValidationFailed) as e3:
        dg.accept_batch(app, arch, b["id"], overrides=["page:999999"], reason="核对")
    assert e3.value.code == "OVERRIDE_UNKNOWN"
    with app.read_sessions() as s:
        assert s.scalar(select(File.id).where(File.role == "scan")) is None  # nothing attached


def test_rescan_replaces_the_page_and_keeps_the_old_master(checked: Any, tmp_path: Path) -> None:
    app, arch, code, b = checked["app"], checked["arch"], checked["code"], checked["batch"]
    broken = _page(app, b["id"], code["B"], 2)
    new = tmp_path / "rescan.jpg"
    save(text_page(["卷内第2页", "重新扫描"]), new)
    src = dg.ScanSource("rescan.jpg", lambda: new.open("rb"))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ValidationFailed) as e:
        dg.rescan_page(app, arch, b["id"], broken.id, dg.ScanSource("bad.jpg", lambda: bad.open("rb")))
    assert e.value.code == "IMAGE_UNREADABLE"
    page = dg.rescan_page(app, arch, b["id"], broken.id, src)
    assert page["is_current"] and page["qc_status"] in ("ok", "warn") and page["page_no"] == 2
    with app.read_sessions() as s:
        old = s.get(ScanPage, broken.id)
        assert not old.is_current and old.superseded_by_id == page["id"]
        assert app.store.exists(s.get(ScanFile, old.file_id).storage_key)  # the old master is kept
    assert f"page:{broken.id}" not in _issues(app, arch, b["id"])
    with pytest.raises(StateError) as e2:
        dg.rescan_page(app, arch, b["id"], broken.id, src)
    assert e2.value.code == "PAGE_SUPERSEDED"
    # the storage sweep keeps masters that are not (yet) files of a record
    rep = storage_ops.sweep(app, Actor.system(), dry_run=True, grace_seconds=0)
    with app.read_sessions() as s:
        keys = set(s.scalars(select(ScanFile.storage_key)))
    assert not keys & set(rep.unreferenced)


def test_sampling_inspection(checked: Any) -> None:
    app, arch, b = checked["app"], checked["arch"], checked["batch"]
    with pytest.raises(ValidationFailed) as e:
        dg.draw_sample(app, arch, b["id"], rate="150%")
    assert e.value.code == "BAD_SAMPLE_RATE"
    v = dg.draw_sample(app, arch, b["id"], rate="5%", pass_mark="95%", seed=7)
    assert v["inspection_state"]["sampled"] == 1  # at least one page
    v = dg.draw_sample(app, arch, b["id"], rate=0.25, seed=7)
    ins = v["inspection_state"]
    readable = [p for p in _pages(app, b["id"]) if p.is_current and not any(f["code"] == "UNREADABLE" for f in p.flags)]
    assert ins["sampled"] == -(-len(readable) // 4) and ins["round"] == 2 and ins["verdict"] is None
    first, *rest = v["sample"]
    with pytest.raises(ValidationFailed) as e2:
        dg.mark_sample(app, arch, b["id"], first["id"], "不合格")
    assert e2.value.code == "NOTE_REQUIRED"
    dg.mark_sample(app, arch, b["id"], first["id"], "不合格", "字迹模糊")
    for p in rest:
        v = dg.mark_sample(app, arch, b["id"], p["id"], "合格")
    ins = v["inspection_state"]
    assert ins["verdict"] == "不合格" and ins["failed"] == 1
    assert f"page:{first['id']}" in _issues(app, arch, b["id"])  # a 不合格 page goes back for rescanning
    assert "抽检不合格" in _issues(app, arch, b["id"])["inspection"]["message"]


def test_override_listed_problems_with_a_reason_is_audited(checked: Any) -> None:
    app, arch, b = checked["app"], checked["arch"], checked["batch"]
    issues = _issues(app, arch, b["id"])
    blocking = sorted(k for k, i in issues.items() if i["severity"] == "block")
    assert all(issues[k]["overridable"] for k in blocking)
    res = dg.accept_batch(app, arch, b["id"], overrides=blocking, reason="原件即如此：缺页已在备考表中说明")
    assert res["batch"]["status"] == "accepted" and res["records"] >= 5
    assert {o["key"] for o in res["batch"]["overrides"]} == set(blocking)
    rec = get_record(app, arch, checked["recs"]["A"]["id"])
    scans = [f for f in rec["files"] if f["role"] == "scan"]
    assert len(scans) == 2  # the identical duplicate is stored once
    assert scans[0]["identification"]["digitisation"]["扫描设备"] == "Fujitsu fi-7160"
    assert scans[0]["reason"].startswith("纸质档案数字化成果挂接")
    with app.read_sessions() as s:
        ev = s.scalars(select(AuditEvent).where(AuditEvent.action == "scan.accept", AuditEvent.outcome == "success")).one()
        assert "原件即如此" in ev.detail and "inspection" in ev.detail
    with pytest.raises(StateError) as e:
        dg.accept_batch(app, arch, b["id"])
    assert e.value.code == "BATCH_ACCEPTED"


# ---------------------------------------------------------------- OCR, PDF/A, search, suggestions


@pytest.fixture(scope="module")
def ocred(world: Any) -> Any:
    """A clean batch of one 公文 (2 pages), checked, sampled, passed and OCR'd: two OCR calls."""
    app, arch = world["app"], world["arch"]
    rec = filed(app, "待核对的通知", 2, responsible="待核对", doc_number=None)
    folder = world["root"] / "clean"
    folder.mkdir()
    save(text_page(GOV_LINES), folder / f"{rec['archival_code']}-0001.jpg")
    save(text_page(["二、工作要求", "各单位要加强数字化成果的质量检查和验收。"]), folder / f"{rec['archival_code']}-0002.jpg")
    sources, skipped = dg.sources_from_dir(folder)
    b = dg.import_batch(app, arch, sources, fonds="Z109", name="干净的批次")
    dg.run_qc(app, arch, b["id"])
    jid = dg.prepare_ocr(app, arch, b["id"])
    steps: list[tuple[int, int]] = []
    from dangan.services import jobs

    view = jobs.run(app, jid, dg.ocr_work(app, arch, b["id"], on_step=lambda n, t: steps.append((n, t))))
    assert view["status"] == "done", view["error"]
    return {**world, "clean": b, "clean_rec": rec, "ocr_job": view, "ocr_steps": steps}


def test_ocr_stores_text_with_boxes_and_builds_a_searchable_pdfa(ocred: Any) -> None:
    app, arch, b = ocred["app"], ocred["arch"], ocred["clean"]
    assert ocred["ocr_job"]["result"]["pages"] == 2 and ocred["ocr_job"]["result"]["pdfs"] == 1
    assert ocred["ocr_steps"][-1] == (2, 2)
    first = _page(app, b["id"], ocred["clean_rec"]["archival_code"], 1)
    assert "数字化" in first.ocr_text and first.ocr["lines"]
    x0, y0, x1, y1 = first.ocr["lines"][0][:4]
    assert 0 <= x0 < x1 <= first.ocr["width"] and 0 <= y0 < y1 <= first.ocr["height"]
    v = dg.get_batch(app, arch, b["id"])
    [out] = v["outputs"].values()
    with app.store.open(next(iter(_out_keys(app, b["id"])))) as fh:
        pdf = fh.read()
    assert pdf.startswith(b"%PDF-") and b"pdfaid" in pdf and out["pages"] == 2
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf)
    assert "数字化" in doc[0].get_textpage().get_text_range()
    with pytest.raises(StateError) as e:
        dg.prepare_ocr(app, arch, b["id"])
    assert e.value.code == "OCR_NOTHING_TO_DO"


def _out_keys(app: Dangan, batch_id: int) -> list[str]:
    from dangan.db.models import ScanOutput

    with app.read_sessions() as s:
        return list(s.scalars(select(ScanOutput.storage_key).where(ScanOutput.batch_id == batch_id)))


def test_suggestions_need_a_person_to_confirm(ocred: Any) -> None:
    app, arch, b, rec = ocred["app"], ocred["arch"], ocred["clean"], ocred["clean_rec"]
    first = _page(app, b["id"], rec["archival_code"], 1)
    d = dg.page_detail(app, arch, first.id)
    assert d["is_first"] and d["next_id"] and d["lines"]
    sug = {s["field"]: s for s in d["suggestions"]}
    assert sug["doc_number"]["value"] == "示政办发〔2024〕12号" and 0 < sug["doc_number"]["confidence"] <= 1
    assert "数字化" in sug["title"]["value"]
    assert get_record(app, arch, rec["id"])["doc_number"] is None  # nothing written by suggesting
    second = dg.page_detail(app, arch, d["next_id"])
    assert not second["is_first"] and second["suggestions"] == []
    with pytest.raises(ValidationFailed) as e:
        dg.confirm_metadata(app, arch, first.id, {})
    assert e.value.code == "NOTHING_TO_CONFIRM"
    with pytest.raises(ValidationFailed) as e2:  # a filed record needs a reason: the record service says so
        dg.confirm_metadata(app, arch, first.id, {"doc_number": sug["doc_number"]["value"]})
    assert any(p.field == "reason" for p in e2.value.problems)
    out = dg.confirm_metadata(app, arch, first.id, {"doc_number": sug["doc_number"]["value"],
                                                    "responsible": "示范市人民政府办公室"},
                              reason="依据扫描件首页核对", suggested={k: s["value"] for k, s in sug.items()})
    assert out["doc_number"] == "示政办发〔2024〕12号" and out["responsible"] == "示范市人民政府办公室"
    with app.read_sessions() as s:
        ev = s.scalars(select(AuditEvent).where(AuditEvent.action == "scan.suggest")).all()[-1]
    assert "doc_number" in ev.detail
    with pytest.raises(ValidationFailed) as e3:  # the record service's validation applies
        dg.confirm_metadata(app, arch, first.id, {"date": "二〇二四年十三月"}, reason="核对")
    assert e3.value.code == "VALIDATION_FAILED"


def test_accepted_ocr_text_is_found_by_search_with_its_page(ocred: Any) -> None:
    app, arch, b, rec = ocred["app"], ocred["arch"], ocred["clean"], ocred["clean_rec"]
    v = dg.draw_sample(app, arch, b["id"], seed=1)
    for p in v["sample"]:
        dg.mark_sample(app, arch, b["id"], p["id"], "合格")
    issues = _issues(app, arch, b["id"])
    assert not [i for i in issues.values() if i["severity"] == "block"], issues
    res = dg.accept_batch(app, arch, b["id"])
    assert res["records"] == 1 and res["files"] == 3
    files = get_record(app, arch, rec["id"])["files"]
    assert sorted(f["role"] for f in files) == ["layout", "scan", "scan"]
    pdf = next(f for f in files if f["role"] == "layout")
    assert pdf["media_type"] == "application/pdf"
    with app.read_sessions() as s:
        ft = s.get(FileText, pdf["id"])
        assert ft.status == "ok" and ft.message == "OCR" and ft.pages == 2
        assert "工作要求" in s.get(FileTextPage, (pdf["id"], 2)).text
    app.indexer.flush()
    hits = search.search(app, arch, "质量检查和验收", search.SearchFilter())
    hit = next(i for i in hits["items"] if i["id"] == rec["id"])
    assert hit["snippet"]["page"] == 2 and hit["snippet"]["file_id"] == pdf["id"]


def test_cli_scan_flow_and_ocr_of_one_file(ocred: Any, tmp_path: Path) -> None:
    """`dangan scan import|qc|show|sample|accept` as the demo 专职档案员, and `dangan ocr FILE` with no login."""
    import json

    from typer.testing import CliRunner

    from dangan.cli import app as cli

    runner = CliRunner()
    data = str(tmp_path / "data")
    assert runner.invoke(cli, ["--data", data, "init", "--demo", "--demo-size", "40"]).exit_code == 0

    def run(*args: str, user: str | None = "dangan") -> Any:
        login = ["--user", user] if user else []
        return runner.invoke(cli, ["--data", data, *login, *args], env={"DANGAN_PASSWORD": "Dangan@2026"})

    def js(*args: str) -> Any:
        r = run(*args, "--json")
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout)

    items = js("record", "list", "--fonds", "Z109", "--category", "WS", "--state", "filed")["items"]
    rec = next(r for r in items if r["archival_code"])
    folder = tmp_path / "scans"
    folder.mkdir()
    for n in (1, 2):
        save(text_page([f"第{n}页", "正文"]), folder / f"{rec['archival_code']}-000{n}.jpg")
    b = js("scan", "import", str(folder), "--fonds", "Z109", "--device", "Canon DR-C240")
    assert b["summary"]["files"] == 2 and b["counts"]["records"] == 1
    assert run("scan", "accept", str(b["id"])).exit_code == 1  # not checked yet: refused, nothing attached
    res = js("scan", "qc", str(b["id"]), "--report", str(tmp_path / "质检报告.xlsx"))
    assert res["result"]["checked"] == 2 and (tmp_path / "质检报告.xlsx").stat().st_size > 0
    v = js("scan", "sample", str(b["id"]), "--rate", "50%")
    for p in v["sample"]:
        js("scan", "sample", str(b["id"]), "--page", str(p["id"]), "--verdict", "合格")
    v = js("scan", "show", str(b["id"]))
    keys = [i["key"] for i in v["issues"] if i["severity"] == "block"]
    if keys:  # the demo record's 页数 may differ from the two pages scanned here
        r = run("scan", "accept", str(b["id"]), *[x for k in keys for x in ("--override", k)])
        assert r.exit_code == 1 and "REASON_REQUIRED" in r.output
    out = js("scan", "accept", str(b["id"]), *[x for k in keys for x in ("--override", k)], "--reason", "页数以扫描为准")
    assert out["batch"]["status"] == "accepted" and out["files"] == 2
    assert run("scan", "list", user=None).exit_code == 1  # the archive needs a login
    # the text of one file, without a login or an archive
    [jpg] = [p for p in (ocred["root"] / "clean").iterdir() if p.name.endswith("-0002.jpg")]
    r = runner.invoke(cli, ["ocr", str(jpg), "--json"])
    assert r.exit_code == 0, r.output
    [page] = json.loads(r.stdout)
    assert "工作要求" in page["text"] and page["lines"][0]["box"][2] > page["lines"][0]["box"][0]
    r = runner.invoke(cli, ["ocr", str(tmp_path / "missing.jpg")])
    assert r.exit_code == 1 and "FILE_MISSING" in r.output


def test_a_page_of_a_record_above_ones_clearance_looks_missing(ocred: Any) -> None:
    app, arch, b = ocred["app"], ocred["arch"], ocred["clean"]
    low = person(app, "low_archivist", ["archivist"], "公开")
    secret = filed(app, "秘密的文件", 1, security_level="秘密", secrecy_period="10年")
    folder = ocred["root"] / "secret"
    folder.mkdir()
    save(text_page(["秘密页面"]), folder / f"{secret['archival_code']}-0001.jpg")
    sources, _ = dg.sources_from_dir(folder)
    sb = dg.import_batch(app, arch, sources, fonds="Z109")
    p = _pages(app, sb["id"])[0]
    assert p.record_id == secret["id"]
    with pytest.raises(NotFound) as e:
        dg.page_image(app, low, p.id)
    assert e.value.code == "PAGE_NOT_FOUND"
    g = dg.get_batch(app, low, sb["id"])["groups"][0]
    assert g["hidden"] and g["record"] is None and not g["pages"][0]["shown"]
    # and for that archivist the page's 档号 matches nothing: it is not linked at intake
    sb2 = dg.import_batch(app, low, sources, fonds="Z109")
    assert _pages(app, sb2["id"])[0].record_id is None
    assert b["id"]


def test_rest_api_upload_qc_sample_refused_accept(world: Any, tmp_path: Path) -> None:
    """The REST API end to end without OCR: upload (a background job), QC job and its status, 抽检, refusals."""
    from dangan.web.app import create_app
    from test_api import session_client

    app, code = world["app"], world["code"]["C"]
    web = create_app(app)
    c = session_client(web, app, "dangan")
    img = io.BytesIO()
    text_page(["接口上传的页面", "第一页"]).save(img, "JPEG", dpi=(300, 300))
    r = c.post("/api/v1/scan-batches", data={"fonds": "Z109", "name": "接口批次"},
               files=[("files", (f"{code}-0001.jpg", img.getvalue(), "image/jpeg"))])
    assert r.status_code == 202, r.text
    web.state.jobs.join()
    job = c.get(r.json()["poll"]).json()
    assert job["status"] == "done", job
    bid = job["result"]["batch_id"]
    b = c.get(f"/api/v1/scan-batches/{bid}").json()
    assert b["name"] == "接口批次" and b["counts"]["records"] == 1
    assert any(i["key"] == "qc_pending" for i in b["issues"])
    r = c.post(f"/api/v1/scan-batches/{bid}/qc", json={})
    assert r.status_code == 202, r.text
    web.state.jobs.join()
    st = c.get(f"/api/v1/scan-batches/{bid}/status").json()
    assert st["status"] == "done" and st["kind"] == "scan_qc" and st["processed"] == 1
    assert c.post(f"/api/v1/scan-batches/{bid}/qc", json={}).json()["error"]["code"] == "QC_NOTHING_TO_DO"
    v = c.post(f"/api/v1/scan-batches/{bid}/sample", json={"rate": "5%"}).json()
    pid = v["sample"][0]["id"]
    r = c.post(f"/api/v1/scan-batches/{bid}/inspect", json={"page_id": pid, "verdict": "不合格"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "NOTE_REQUIRED"
    r = c.post(f"/api/v1/scan-batches/{bid}/accept", json={})
    assert r.status_code == 422 and r.json()["error"]["code"] == "SCAN_OUTSTANDING"
    page = c.get(f"/api/v1/scan-pages/{pid}").json()
    assert page["archival_code"] == code and page["dpi"] == 300
    assert c.get(f"/api/v1/scan-pages/{pid}/thumb").headers["content-type"] == "image/jpeg"
    m = c.get(f"/api/v1/scan-pages/{pid}/master")
    assert m.status_code == 200 and m.headers["x-checksum-sm3"] == page["sm3"]
    r = c.post("/api/v1/scan-batches", data={"fonds": "Z109"}, files=[("files", ("a.txt", b"x", "text/plain"))])
    assert r.status_code == 422 and r.json()["error"]["code"] == "NO_SCANS"
    r = c.post("/api/v1/scan-batches", data={"fonds": "NOPE"}, files=[("files", ("a.jpg", b"x", "image/jpeg"))])
    assert r.status_code == 404


def test_flow_on_postgresql_and_sqlite(any_app: Dangan, tmp_path: Path) -> None:
    """Intake, QC, 抽检 and 挂接 (no OCR) on both engines."""
    arch = person(any_app, "dangan", ["archivist"])
    rec = filed(any_app, "两页的通知", 2)
    for n in (1, 2):
        save(text_page([f"第{n}页", "正文内容"]), tmp_path / f"{rec['archival_code']}-000{n}.jpg")
    sources, _ = dg.sources_from_dir(tmp_path)
    b = dg.import_batch(any_app, arch, sources, fonds="Z109", category="WS", year=2024)
    jid = dg.prepare_qc(any_app, arch, b["id"])
    with pytest.raises(DanganError) as e:
        dg.claim_job(any_app, arch, b["id"], "scan_qc", "scan.qc", {})
    assert e.value.code == "JOB_RUNNING"
    from dangan.services import jobs

    assert jobs.run(any_app, jid, dg.qc_work(any_app, arch, b["id"]))["status"] == "done"
    assert dg.batch_job(any_app, arch, b["id"])["status"] == "done"
    v = dg.draw_sample(any_app, arch, b["id"], seed=3)
    for p in v["sample"]:
        dg.mark_sample(any_app, arch, b["id"], p["id"], "合格")
    res = dg.accept_batch(any_app, arch, b["id"])  # a missing PDF/A is a warning, not a refusal
    assert res["files"] == 2
    roles = [f["role"] for f in get_record(any_app, arch, rec["id"])["files"]]
    assert roles == ["scan", "scan"]


def test_a_hidden_record_in_a_batch_looks_like_a_missing_one(app, tmp_path):
    """Found in review: a lower-cleared archivist opening the batch must not learn that a 机密 record exists."""
    hi = person(app, "hi", ["archivist"], "机密")
    lo = person(app, "lo", ["archivist"], "内部")
    secret = filed(app, "机密档案", 2, security_level="机密", secrecy_period="10年")
    scans = tmp_path / "scans"
    scans.mkdir()
    save(text_page(["第一页"]), scans / f"{secret['archival_code']}-0001.jpg")
    save(text_page(["第一页"]), scans / "Z109-WS·2024-D30-BGS-9999-0001.jpg")  # no such record
    src, sk = dg.sources_from_dir(scans)
    b = dg.import_batch(app, hi, src, fonds="Z109", skipped=sk)
    v = dg.get_batch(app, lo, b["id"])
    assert not [i for i in v["issues"] if i.get("record_id") == secret["id"]]
    assert len([i for i in v["issues"] if i["kind"] == "no_record"]) == 2
    assert [i for i in dg.get_batch(app, hi, b["id"])["issues"] if i.get("record_id") == secret["id"]]
