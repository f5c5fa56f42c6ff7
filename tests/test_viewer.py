"""在线阅览 and grant enforcement: watermarked pages of PDF, OFD and images; who views and downloads with or without
a grant; expiry; page numbers, damaged and unsupported files, destroyed records, huge images; API and page."""

from __future__ import annotations

import datetime as dt
import io
import struct
import zipfile
import zlib
from typing import Any

import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageChops
from sqlalchemy import update

from conftest import CORPUS, IN_CI
from dangan.db.models import Record
from dangan.demo.documents import make_pdf
from dangan.errors import NotFound, PermissionDenied, StateError, ValidationFailed
from dangan.services import requests as rq
from dangan.services import viewer
from dangan.services.audit import list_events
from dangan.services.context import Actor, Dangan
from dangan.services.files import NewFile, open_file
from dangan.services.outputs import stamped_copy
from dangan.services.records import RecordInput, create_record
from dangan.web.app import create_app
from test_api import session_client
from test_requests import make_user

BASE = {"year": 2024, "retention_period": "D30", "responsible": "办公室", "date": "2024-06-01"}
LINES = ["根据档案工作的有关规定，现将本年度归档工作安排通知如下。" * 3] * 12
PDF = make_pdf("关于做好年度归档工作的通知", LINES)
ADDR = "10.20.30.40"


def two_page_pdf() -> bytes:
    with viewer._PDFIUM:  # the search indexer may be reading a PDF in its thread
        doc = pdfium.PdfDocument.new()
        for title in ("第一页的通知", "第二页的附件"):
            doc.import_pages(pdfium.PdfDocument(make_pdf(title, LINES)))
        buf = io.BytesIO()
        doc.save(buf)
        doc.close()
    return buf.getvalue()


def record(app: Dangan, title: str, files: list[tuple[str, bytes]], level: str = "内部", dept: str = "BGS",
           state: str = "filed") -> dict[str, Any]:
    meta = {**BASE, "title": title, "security_level": level}
    if level in ("秘密", "机密"):
        meta["secrecy_period"] = "10年"
    return create_record(app, Actor.system(), RecordInput("Z109", "WS", meta, department=dept, state=state),
                         [NewFile(n, io.BytesIO(b)) for n, b in files])


def people(app: Dangan) -> dict[str, Actor]:
    return {
        "archivist": make_user(app, "chenjing", ["archivist"], "机密", depts=["BGS"]),
        "head": make_user(app, "liufang", ["records_head"], "机密", depts=["BGS"]),
        "reader": make_user(app, "sunlei", ["reader"], "机密", depts=["CWK"]),
        "leader": make_user(app, "zhaoqiang", ["leader"], "机密"),
        "clerk": make_user(app, "wangli", ["clerk"], "内部", depts=["BGS"]),
    }


def events(app: Dangan, action: str, object_id: int | None = None) -> list[dict[str, Any]]:
    return list_events(app, Actor.system(), action=action, object_type="file" if object_id else None,
                       object_id=str(object_id) if object_id else None, audit_the_view=False)


def ink_pixels(im: Image.Image) -> int:
    """Pixels tinted by the watermark's slate-blue ink (the documents here are black on white: neutral grey)."""
    r, g, b = im.convert("RGB").split()
    tint = ImageChops.subtract(b, r)
    return tint.point(lambda v: 255 if v > 10 else 0).histogram()[255]


def grant(app: Dangan, who: dict[str, Actor], requester: str, record_id: int, kind: str,
          now: dt.datetime | None = None) -> dict[str, Any]:
    """A request approved along its whole route (the approvers are the archivist and the records head)."""
    r = rq.create_request(app, who[requester], record_id, kind, "工作查考", now=now)
    for role in (st["role"] for st in r["route"]):
        approver = who["archivist"] if role == "archivist" else who["head"] if role == "records_head" else who["leader"]
        r = rq.approve(app, approver, r["id"], "同意", now=now)
    assert r["status"] == "approved", r
    return r


# ---------------------------------------------------------------- viewing as the archivist


def test_archivist_views_a_pdf_page_with_watermark_and_audit(any_app: Dangan) -> None:
    app = any_app
    u = people(app)
    rec = record(app, "年度归档工作通知", [("通知.pdf", PDF)])
    fid = rec["files"][0]["id"]
    info = viewer.page_info(app, u["archivist"], fid)
    assert (info["pages"], info["page_media_type"], info["may_download"], info["basis"]) == (1, "image/png", True, "manage")
    assert info["sizes"][0][1] > info["sizes"][0][0] > 900  # A4 portrait at screen resolution
    data, media = viewer.render_page(app, u["archivist"], fid, 1, client_addr=ADDR)
    assert media == "image/png" and data.startswith(b"\x89PNG")
    shown = Image.open(io.BytesIO(data))
    assert list(shown.size) == info["sizes"][0]
    # the same page without the watermark has no tinted pixel at all; the page shown has it all over
    with viewer._PDFIUM:
        doc = pdfium.PdfDocument(PDF)
        w, h = doc[0].get_size()
        plain = doc[0].render(scale=viewer._fit(w, h, viewer.DPI, viewer.MAX_SIDE)).to_pil()
        doc.close()
    assert plain.size == shown.size and ink_pixels(plain) == 0
    assert ink_pixels(shown) > shown.width * shown.height // 100  # > 1 % of the page
    ev = events(app, "file.view_page", fid)
    assert len(ev) == 1 and ev[0]["outcome"] == "success" and ev[0]["actor"] == "chenjing"
    d = ev[0]["detail"]
    assert (d["page"], d["pages"], d["record_id"], d["basis"], d["grant_id"]) == (1, 1, rec["id"], "manage", None)
    assert d["archival_code"] == rec["archival_code"] and d["client_addr"] == ADDR


def test_watermark_names_the_reader_department_time_address_and_code() -> None:
    at = dt.datetime(2025, 3, 31, 16, 5, tzinfo=dt.UTC)
    lines = viewer.watermark_lines("孙磊", ["财务科"], at, ADDR, "Z109-WS·2024-D30-BGS-0001")
    text = "\n".join(lines)
    for part in ("孙磊", "财务科", "2025-04-01 00:05", "北京时间", ADDR, "档号 Z109-WS·2024-D30-BGS-0001"):
        assert part in text
    assert viewer.cjk_font_path(), "a CJK font is needed for the watermark (fonts-noto-cjk)"
    page = Image.new("RGB", (400, 560), "white")
    viewer.watermark(page, lines)
    assert ink_pixels(page) > 0


# ---------------------------------------------------------------- who needs a grant


def test_reader_without_grant_gets_no_grant_on_view_and_download(any_app: Dangan) -> None:
    app = any_app
    u = people(app)
    rec = record(app, "内部通知", [("通知.pdf", PDF)])
    fid = rec["files"][0]["id"]
    for call in (lambda: viewer.page_info(app, u["reader"], fid),
                 lambda: viewer.render_page(app, u["reader"], fid, 1, client_addr=ADDR)):
        with pytest.raises(PermissionDenied) as ei:
            call()
        assert ei.value.code == "NO_GRANT" and "查阅" in ei.value.message and "申请" in ei.value.message
        assert ei.value.detail["apply_url"] == f"/requests/new?record={rec['id']}&kind=view"
    with pytest.raises(PermissionDenied) as ei:
        open_file(app, u["reader"], fid)
    assert ei.value.code == "NO_GRANT" and "复制" in ei.value.message
    assert ei.value.detail["apply_url"] == f"/requests/new?record={rec['id']}&kind=copy"
    with pytest.raises(PermissionDenied) as ei:
        stamped_copy(app, u["reader"], fid)
    assert ei.value.code == "NO_GRANT"
    assert not viewer.may_view(app, u["reader"], rec["id"]) and not viewer.may_download(app, u["reader"], rec["id"])
    assert events(app, "file.view_page", fid) == []  # nothing was shown
    denied = [e for e in events(app, "request.use") if e["outcome"] == "denied"]
    assert len(denied) >= 3 and {e["detail"]["code"] for e in denied} == {"NO_GRANT"}


def test_view_grant_reads_pages_but_not_the_original(any_app: Dangan) -> None:
    app = any_app
    u = people(app)
    rec = record(app, "内部通知", [("通知.pdf", two_page_pdf())])
    fid = rec["files"][0]["id"]
    g = grant(app, u, "reader", rec["id"], "view")
    info = viewer.page_info(app, u["reader"], fid)
    assert (info["pages"], info["basis"], info["may_download"]) == (2, "grant", False)
    assert info["grant"]["id"] == g["id"] and info["grant"]["kind"] == "view"
    data, _ = viewer.render_page(app, u["reader"], fid, 2, client_addr=ADDR)
    assert Image.open(io.BytesIO(data)).size[1] > 1000
    ev = events(app, "file.view_page", fid)[0]
    assert ev["actor"] == "sunlei" and ev["detail"]["grant_id"] == g["id"] and ev["detail"]["page"] == 2
    assert [e["action"] for e in events(app, "request.use") if e["outcome"] == "success"]  # the use is registered
    with pytest.raises(PermissionDenied) as ei:
        open_file(app, u["reader"], fid)
    assert ei.value.code == "NO_GRANT"
    assert viewer.may_view(app, u["reader"], rec["id"]) and not viewer.may_download(app, u["reader"], rec["id"])


def test_copy_grant_downloads_the_original_and_the_stamped_copy(any_app: Dangan) -> None:
    app = any_app
    u = people(app)
    rec = record(app, "内部通知", [("通知.pdf", PDF)])
    fid = rec["files"][0]["id"]
    g = grant(app, u, "reader", rec["id"], "copy")
    assert viewer.may_download(app, u["reader"], rec["id"])
    view, fh = open_file(app, u["reader"], fid)
    with fh:
        assert fh.read() == PDF
    ev = events(app, "file.download", fid)[0]
    assert ev["actor"] == "sunlei" and (ev["detail"]["basis"], ev["detail"]["grant_id"]) == ("grant", g["id"])
    out, name = stamped_copy(app, u["reader"], fid)
    assert out.read(5) == b"%PDF-" and name.endswith("（归档章）.pdf")
    assert viewer.page_info(app, u["reader"], fid)["may_download"] is True  # a copy grant also lets one view


def test_who_manages_the_record_needs_no_grant(any_app: Dangan) -> None:
    """专职档案员 and 档案部门负责人: every record they see; a 兼职档案员: her department's before filing only;
    the 分管领导 (who may approve) and everyone else: by grant."""
    app = any_app
    u = people(app)
    filed = record(app, "已归档的通知", [("a.pdf", PDF)])
    draft = record(app, "预归档的通知", [("b.pdf", PDF + b"\n")], state="pre_filing")
    ffid, dfid = filed["files"][0]["id"], draft["files"][0]["id"]
    for who in ("archivist", "head"):
        assert viewer.page_info(app, u[who], ffid)["basis"] == "manage"
        _, fh = open_file(app, u[who], ffid)
        fh.close()
    assert viewer.page_info(app, u["clerk"], dfid)["basis"] == "manage"
    _, fh = open_file(app, u["clerk"], dfid)
    fh.close()
    for who, fid in (("clerk", ffid), ("leader", ffid)):
        with pytest.raises(PermissionDenied) as ei:
            viewer.page_info(app, u[who], fid)
        assert ei.value.code == "NO_GRANT"
        with pytest.raises(PermissionDenied):
            open_file(app, u[who], fid)
    # a record before filing cannot be applied for; to others it is not usable yet
    with pytest.raises(StateError) as ei:
        viewer.page_info(app, u["reader"], dfid)
    assert ei.value.code == "RECORD_NOT_FILED"


def test_hidden_file_answers_like_a_missing_one(any_app: Dangan) -> None:
    app = any_app
    u = people(app)
    low = make_user(app, "public", ["reader"], "公开")
    rec = record(app, "秘密的通知", [("s.pdf", PDF)], level="秘密")
    fid = rec["files"][0]["id"]
    with pytest.raises(NotFound) as a:
        viewer.render_page(app, low, fid, 1)
    with pytest.raises(NotFound) as b:
        viewer.render_page(app, low, 999_999, 1)
    assert a.value.code == b.value.code == "FILE_NOT_FOUND"
    assert a.value.message.replace(str(fid), "N") == b.value.message.replace("999999", "N")
    assert viewer.page_info(app, u["archivist"], fid)["pages"] == 1


def test_grant_used_after_expiry_is_refused(any_app: Dangan) -> None:
    app = any_app
    u = people(app)
    rec = record(app, "公开的通知", [("p.pdf", PDF)], level="公开")
    fid = rec["files"][0]["id"]
    start = dt.datetime.now(dt.UTC)
    g = rq.create_request(app, u["reader"], rec["id"], "view", "工作查考", period_to=(start + dt.timedelta(days=2)).date(),
                          now=start)
    assert g["status"] == "approved"  # 查阅 of a 公开 record: granted at once
    assert viewer.page_count(app, u["reader"], fid, now=start + dt.timedelta(days=1)) == 1
    later = start + dt.timedelta(days=5)
    with pytest.raises(PermissionDenied) as ei:
        viewer.render_page(app, u["reader"], fid, 1, client_addr=ADDR, now=later)
    assert ei.value.code == "GRANT_EXPIRED" and "届满" in ei.value.message
    assert ei.value.detail["apply_url"].endswith("kind=view")
    assert rq.my_requests(app, u["reader"])[0]["status"] == "expired"
    assert not viewer.may_view(app, u["reader"], rec["id"], now=later)


def test_destroyed_record_is_refused_even_to_the_archivist(any_app: Dangan) -> None:
    app = any_app
    u = people(app)
    rec = record(app, "已销毁的通知", [("d.pdf", PDF)])
    fid = rec["files"][0]["id"]
    grant(app, u, "reader", rec["id"], "copy")
    with app.sessions() as s, s.begin():
        s.execute(update(Record).where(Record.id == rec["id"]).values(state="destroyed"))
    for who in ("archivist", "reader"):
        for call in (lambda w=who: viewer.render_page(app, u[w], fid, 1), lambda w=who: open_file(app, u[w], fid)):
            with pytest.raises(StateError) as ei:
                call()
            assert ei.value.code == "RECORD_DESTROYED"
    assert not viewer.may_view(app, u["archivist"], rec["id"])


# ---------------------------------------------------------------- pages, formats, damage


def test_page_out_of_range_is_a_clear_error(app: Dangan) -> None:
    u = people(app)
    fid = record(app, "两页的通知", [("two.pdf", two_page_pdf())])["files"][0]["id"]
    for page in (0, 3, -1):
        with pytest.raises(ValidationFailed) as ei:
            viewer.render_page(app, u["archivist"], fid, page)
        assert ei.value.code == "PAGE_OUT_OF_RANGE" and "共 2 页" in ei.value.message
    failed = [e for e in events(app, "file.view_page", fid) if e["outcome"] != "success"]
    assert len(failed) == 3 and failed[0]["detail"]["code"] == "PAGE_OUT_OF_RANGE"


@pytest.mark.parametrize(("name", "code"), [("truncated-chinese-word-contract.pdf", "FILE_UNREADABLE"),
                                            ("fuzz-malformed.pdf", "FILE_UNREADABLE"),
                                            ("encrypted-userpw-user.pdf", "FILE_ENCRYPTED")])
def test_damaged_or_encrypted_pdf_gives_a_clear_code(app: Dangan, name: str, code: str) -> None:
    path = CORPUS / "pdf" / name
    if not path.exists():
        if IN_CI:
            pytest.fail(f"corpus file {path} is missing")
        pytest.skip(f"corpus file {path} is missing")
    u = people(app)
    fid = record(app, name, [(name, path.read_bytes())])["files"][0]["id"]
    with pytest.raises(StateError) as ei:
        viewer.render_page(app, u["archivist"], fid, 1)
    assert ei.value.code == code and name in ei.value.message
    assert events(app, "file.view_page", fid)[0]["detail"]["code"] == code


def test_damaged_pdf_pages_that_pdfium_recovers_are_shown(app: Dangan) -> None:
    path = CORPUS / "pdf" / "content-stream-errors.pdf"
    if not path.exists():
        pytest.skip("corpus missing") if not IN_CI else pytest.fail("corpus missing")
    u = people(app)
    fid = record(app, "内容流有误", [("c.pdf", path.read_bytes())])["files"][0]["id"]
    assert viewer.page_count(app, u["archivist"], fid) == 4
    data, _ = viewer.render_page(app, u["archivist"], fid, 4)
    assert Image.open(io.BytesIO(data)).size[0] > 500


def test_unsupported_format_says_so(app: Dangan) -> None:
    u = people(app)
    fid = record(app, "文本", [("说明.txt", "纯文本内容".encode())])["files"][0]["id"]
    with pytest.raises(StateError) as ei:
        viewer.page_info(app, u["archivist"], fid)
    assert ei.value.code == "NOT_VIEWABLE" and "PDF、OFD 和图像" in ei.value.message


def test_multi_page_tiff_scan_and_a_photo(app: Dangan) -> None:
    u = people(app)
    frames = [Image.new("L", (1240, 1754), 255 - 40 * i) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "TIFF", save_all=True, append_images=frames[1:], compression="tiff_deflate")
    photo = io.BytesIO()
    Image.new("RGB", (800, 600), (30, 90, 160)).save(photo, "JPEG", quality=80)
    rec = record(app, "扫描件", [("scan.tif", buf.getvalue()), ("photo.jpg", photo.getvalue())])
    tif, jpg = (f["id"] for f in rec["files"])
    info = viewer.page_info(app, u["archivist"], tif)
    assert (info["pages"], info["page_media_type"]) == (3, "image/png")
    data, media = viewer.render_page(app, u["archivist"], tif, 3)
    im = Image.open(io.BytesIO(data))
    assert media == "image/png" and im.size == (1240, 1754)
    with pytest.raises(ValidationFailed):
        viewer.render_page(app, u["archivist"], tif, 4)
    data, media = viewer.render_page(app, u["archivist"], jpg, 1)
    assert media == "image/jpeg" and Image.open(io.BytesIO(data)).size == (800, 600)


def test_huge_images_are_bounded(app: Dangan, monkeypatch: pytest.MonkeyPatch) -> None:
    u = people(app)
    big = io.BytesIO()
    Image.new("L", (7200, 5400), 235).save(big, "JPEG", quality=60)  # 39 megapixels
    rec = record(app, "大幅面图像", [("big.jpg", big.getvalue()), ("bomb.png", png_header(40_000, 40_000))])
    jpg, bomb = (f["id"] for f in rec["files"])
    # decoding it whole would take ~155 MB; with the JPEG decoded at a reduced scale it fits in 40 MB
    monkeypatch.setattr(viewer, "MAX_DECODE_BYTES", 40 * 2**20)
    data, _ = viewer.render_page(app, u["archivist"], jpg, 1)
    assert max(Image.open(io.BytesIO(data)).size) <= viewer.MAX_SIDE
    # a PNG that claims 1.6 gigapixels is refused before a single row is decoded
    with pytest.raises(StateError) as ei:
        viewer.render_page(app, u["archivist"], bomb, 1)
    assert ei.value.code in ("IMAGE_TOO_LARGE", "FILE_UNREADABLE")
    # and an ordinary image above the bound is refused, not loaded
    monkeypatch.setattr(viewer, "MAX_DECODE_BYTES", 2 * 2**20)
    tif = io.BytesIO()
    Image.new("L", (2000, 1500), 200).save(tif, "TIFF")
    fid = record(app, "超限", [("large.tif", tif.getvalue())])["files"][0]["id"]
    with pytest.raises(StateError) as ei:
        viewer.render_page(app, u["archivist"], fid, 1)
    assert ei.value.code == "IMAGE_TOO_LARGE" and "2000×1500" in ei.value.message


def png_header(w: int, h: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_ofd_pages(app: Dangan, monkeypatch: pytest.MonkeyPatch) -> None:
    u = people(app)
    path = CORPUS / "ofd" / "ofdrw-integrity-protected.ofd"
    if not path.exists():
        pytest.skip("corpus missing") if not IN_CI else pytest.fail("corpus missing")
    fid = record(app, "OFD 版式文件", [("doc.ofd", path.read_bytes())])["files"][0]["id"]
    if viewer._ofd_render() is None:
        with pytest.raises(StateError) as ei:
            viewer.page_info(app, u["archivist"], fid)
        assert ei.value.code == "OFD_NOT_SUPPORTED" and "暂不支持" in ei.value.message
        if IN_CI:
            pytest.fail("dangan.formats.ofd_render is missing")
        pytest.skip("dangan.formats.ofd_render has not landed yet: OFD answers OFD_NOT_SUPPORTED")
    info = viewer.page_info(app, u["archivist"], fid)
    assert info["pages"] == 2 and info["media_type"] == "application/ofd"
    data, media = viewer.render_page(app, u["archivist"], fid, 2)
    im = Image.open(io.BytesIO(data))
    assert media == "image/png" and max(im.size) <= viewer.MAX_SIDE and ink_pixels(im) > 0
    with pytest.raises(ValidationFailed):
        viewer.render_page(app, u["archivist"], fid, 3)
    broken = io.BytesIO()
    with zipfile.ZipFile(broken, "w") as zf:  # an OFD package whose entry file names no document
        zf.writestr("OFD.xml", "<ofd:OFD xmlns:ofd='http://www.ofdspec.org/2016'><ofd:DocBody/></ofd:OFD>")
    cut = record(app, "损坏的 OFD", [("broken.ofd", broken.getvalue())])["files"][0]["id"]
    with pytest.raises(StateError) as ei:
        viewer.render_page(app, u["archivist"], cut, 1)
    assert ei.value.code == "FILE_UNREADABLE"
    monkeypatch.setattr(viewer, "_ofd_render", lambda: None)  # without the renderer: a clear refusal
    with pytest.raises(StateError) as ei:
        viewer.render_page(app, u["archivist"], fid, 1)
    assert ei.value.code == "OFD_NOT_SUPPORTED"


# ---------------------------------------------------------------- API and page


@pytest.fixture
def web_world(app: Dangan) -> dict[str, Any]:
    u = people(app)
    web = create_app(app)
    rec = record(app, "内部通知", [("通知.pdf", two_page_pdf())])
    return {"app": app, "u": u, "web": web, "rec": rec, "fid": rec["files"][0]["id"],
            "archivist": session_client(web, app, "chenjing"), "reader": session_client(web, app, "sunlei")}


def test_api_pages_and_page_images(web_world: dict[str, Any]) -> None:
    w = web_world
    fid, a = w["fid"], w["archivist"]
    r = a.get(f"/api/v1/files/{fid}/pages")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["pages"], body["page_media_type"], body["may_download"]) == (2, "image/png", True)
    img = a.get(f"/api/v1/files/{fid}/pages/2")
    assert img.status_code == 200 and img.headers["content-type"] == "image/png"
    assert "no-store" in img.headers["cache-control"]
    assert Image.open(io.BytesIO(img.content)).format == "PNG"
    bad = a.get(f"/api/v1/files/{fid}/pages/9")
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "PAGE_OUT_OF_RANGE"
    # the reader: refused with the address to apply at, then allowed once granted
    for path in (f"/api/v1/files/{fid}/pages", f"/api/v1/files/{fid}/pages/1", f"/api/v1/files/{fid}/content"):
        r = w["reader"].get(path)
        assert r.status_code == 403 and r.json()["error"]["code"] == "NO_GRANT", path
        assert r.json()["error"]["detail"]["apply_url"].startswith(f"/requests/new?record={w['rec']['id']}")
    grant(w["app"], w["u"], "reader", w["rec"]["id"], "view")
    assert w["reader"].get(f"/api/v1/files/{fid}/pages/1").status_code == 200
    assert w["reader"].get(f"/api/v1/files/{fid}/pages").json()["may_download"] is False
    assert w["reader"].get(f"/api/v1/files/{fid}/content").status_code == 403


def test_viewer_page_and_record_page(web_world: dict[str, Any]) -> None:
    w = web_world
    fid, rid = w["fid"], w["rec"]["id"]
    html = w["archivist"].get(f"/files/{fid}/view").text
    assert 'id="viewer"' in html and 'data-pages="2"' in html and html.count('loading="lazy"') == 2
    assert "记入审计日志" in html and 'id="vw-download"' in html
    rec_html = w["archivist"].get(f"/records/{rid}").text
    assert f'href="/files/{fid}/view"' in rec_html and f"/api/v1/files/{fid}/content" in rec_html
    # the reader without a grant: told why, with the way to apply; no page image, no download
    r = w["reader"].get(f"/files/{fid}/view")
    assert r.status_code == 403 and 'id="vw-apply"' in r.text and f"/requests/new?record={rid}&amp;kind=view" in r.text
    assert "/pages/1" not in r.text and "vw-download" not in r.text
    rec_html = w["reader"].get(f"/records/{rid}").text
    assert "申请阅览" in rec_html and f'href="/files/{fid}/view"' not in rec_html and "不可下载" in rec_html
    grant(w["app"], w["u"], "reader", rid, "view")
    r = w["reader"].get(f"/files/{fid}/view")
    assert r.status_code == 200 and 'id="viewer"' in r.text and "vw-download" not in r.text and "第 " in r.text
    rec_html = w["reader"].get(f"/records/{rid}").text
    assert f'href="/files/{fid}/view"' in rec_html and "不可下载" in rec_html
    missing = w["reader"].get("/files/99999999/view")
    assert missing.status_code == 404


def test_viewer_page_explains_a_file_that_cannot_be_shown(app: Dangan) -> None:
    people(app)
    web = create_app(app)
    fid = record(app, "文本", [("说明.txt", "纯文本".encode())])["files"][0]["id"]
    r = session_client(web, app, "chenjing").get(f"/files/{fid}/view")
    assert r.status_code == 409 and "暂不支持在线阅览" in r.text and "NOT_VIEWABLE" in r.text


def test_a_known_etag_is_no_way_around_the_grant(web_world: dict[str, Any]) -> None:
    w = web_world
    fid = w["fid"]
    etag = w["archivist"].get(f"/api/v1/files/{fid}/content").headers["etag"]
    assert w["archivist"].get(f"/api/v1/files/{fid}/content", headers={"If-None-Match": etag}).status_code == 304
    r = w["reader"].get(f"/api/v1/files/{fid}/content", headers={"If-None-Match": etag})
    assert r.status_code == 403 and r.json()["error"]["code"] == "NO_GRANT"
