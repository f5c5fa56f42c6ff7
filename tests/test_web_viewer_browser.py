"""在线阅览 in Debian's chromium: the archivist reads a three-page PDF page by page (buttons, arrow keys, zoom); a
reader is first told to apply, then reads it with a grant, without a download button. Screenshots go to
tests/artifacts/ (viewer-*.png): the watermark must be readable without hiding the text."""

from __future__ import annotations

import io
import re
from typing import Any

import pypdfium2 as pdfium
import pytest
from sqlalchemy import select

import test_web_browser as wb
from dangan.db.models import User
from dangan.demo.documents import make_pdf
from dangan.services import identity as idn
from dangan.services import requests as rq
from dangan.services import viewer
from dangan.services.audit import list_events
from dangan.services.context import Actor
from dangan.services.files import NewFile
from dangan.services.records import RecordInput, create_record

served, server, browser, as_user, shot = wb.served, wb.server, wb.browser, wb.as_user, wb.shot
pytestmark = pytest.mark.browser

TEXT = ["为进一步做好本机关档案的收集、整理和利用工作，根据《机关档案管理规定》，现就有关事项通知如下。" * 2,
        "一、各部门应于每年六月底前将上一年度形成的文件材料整理归档，做到应归尽归、齐全完整。",
        "二、电子文件应以版式文件格式归档，并同时归档其元数据，确保真实、完整、可用、安全。"] * 6


def _three_pages() -> bytes:
    with viewer._PDFIUM:
        doc = pdfium.PdfDocument.new()
        for i, title in enumerate(("关于做好档案归档工作的通知", "归档范围（附件一）", "保管期限表（附件二）")):
            doc.import_pages(pdfium.PdfDocument(make_pdf(title, TEXT[i:])))
        buf = io.BytesIO()
        doc.save(buf)
        doc.close()
    return buf.getvalue()


@pytest.fixture(scope="module")
def notice(served: tuple[str, Any]) -> dict[str, Any]:
    app = served[1]
    meta = {"year": 2024, "retention_period": "D30", "responsible": "示范市人民政府办公室", "date": "2024-05-06",
            "title": "关于做好2024年度档案归档工作的通知（阅览测试）", "security_level": "公开"}
    rec = create_record(app, Actor.system(), RecordInput("Z109", "WS", meta, department="BGS", state="filed"),
                        [NewFile("归档工作通知.pdf", io.BytesIO(_three_pages()))])
    return {"id": rec["id"], "fid": rec["files"][0]["id"], "code": rec["archival_code"]}


def _loaded(pg, n: int) -> None:  # type: ignore[no-untyped-def]
    pg.wait_for_function(
        "n => { const i = document.querySelector('#page-' + n + ' img'); return i && i.complete && i.naturalWidth > 0 }",
        arg=n, timeout=20_000)


def test_archivist_reads_page_by_page(as_user, served, notice) -> None:  # type: ignore[no-untyped-def]
    pg = as_user("dangan")
    pg.goto(f"/records/{notice['id']}")
    pg.locator("table.files").scroll_into_view_if_needed()
    pg.screenshot(path=str(wb.ARTIFACTS / "viewer-00-record-files.png"))
    pg.click("table.files a.view-link")
    pg.wait_for_url(re.compile(rf"/files/{notice['fid']}/view$"))
    assert pg.locator("h1.viewer-title").inner_text().strip() == "归档工作通知.pdf"
    assert "记入审计日志" in pg.locator("#viewer-notice").inner_text()
    assert pg.locator("#vw-total").inner_text() == "3" and pg.input_value("#vw-page") == "1"
    assert pg.locator("#vw-download").count() == 1  # the archivist may download the original
    _loaded(pg, 1)
    wb.shot(pg, "viewer-01-archivist")
    pg.locator("#vw-pages").focus()
    pg.keyboard.press("ArrowRight")
    _loaded(pg, 2)
    pg.wait_for_function("() => document.getElementById('vw-page').value === '2'")
    pg.click("#vw-next")
    _loaded(pg, 3)
    pg.wait_for_function("() => document.getElementById('vw-page').value === '3'")
    assert pg.locator("#vw-next").is_disabled()
    pg.keyboard.press("ArrowLeft")
    pg.wait_for_function("() => document.getElementById('vw-page').value === '2'")
    pg.click("#vw-zoom-in")
    assert pg.locator("#vw-zoom").inner_text() == "125%"
    w125 = pg.locator("#page-2").bounding_box()["width"]
    pg.click("#vw-zoom-out")
    pg.click("#vw-zoom-out")
    assert pg.locator("#vw-zoom").inner_text() == "80%"
    assert pg.locator("#page-2").bounding_box()["width"] < w125 * 0.7
    pg.fill("#vw-page", "1")
    pg.press("#vw-page", "Enter")
    pg.wait_for_function("() => { const b = document.getElementById('vw-pages'), f = document.getElementById('page-1');"
                         " return Math.abs(b.scrollTop - (f.offsetTop - 12)) < 2 }")
    pg.evaluate("window.scrollTo(0, 0)")
    wb.shot(pg, "viewer-02-archivist-zoomed")
    seen = {e["detail"]["page"] for e in list_events(served[1], Actor.system(), action="file.view_page",
                                                      object_type="file", object_id=str(notice["fid"]),
                                                      audit_the_view=False) if e["actor"] == "dangan"}
    assert seen == {1, 2, 3}  # every page shown is in the audit trail


def test_reader_applies_then_reads_with_the_watermark(as_user, served, notice) -> None:  # type: ignore[no-untyped-def]
    app = served[1]
    pg = as_user("reader")
    pg.goto(f"/records/{notice['id']}")
    link = pg.locator("table.files a.apply-view-link")
    assert link.get_attribute("href") == f"/requests/new?record={notice['id']}&kind=view"
    assert pg.locator("table.files a.view-link").count() == 0 and pg.locator("text=不可下载").count() >= 1
    resp = pg.goto(f"/files/{notice['fid']}/view")
    assert resp is not None and resp.status == 403
    assert "需要先申请利用" in pg.locator("#viewer-denied").inner_text()
    assert pg.locator("#vw-apply").get_attribute("href") == f"/requests/new?record={notice['id']}&kind=view"
    wb.shot(pg, "viewer-03-reader-no-grant")
    with app.read_sessions() as s:
        reader = idn.actor_for(s, s.scalar(select(User).where(User.username == "reader")))
    granted = rq.create_request(app, reader, notice["id"], "view", "编史修志")
    assert granted["status"] == "approved"  # 查阅 of a 公开 record is granted at once
    pg.goto(f"/records/{notice['id']}")
    pg.click("table.files a.view-link")
    pg.wait_for_url(re.compile(rf"/files/{notice['fid']}/view$"))
    _loaded(pg, 1)
    assert pg.locator("#vw-download").count() == 0  # viewing is not copying
    assert f"第 {granted['id']} 号查阅申请" in pg.locator("#viewer-notice").inner_text()
    wb.shot(pg, "viewer-04-reader-granted")
    # the page image itself, full size, to look at the watermark
    img = pg.request.get(f"/api/v1/files/{notice['fid']}/pages/1")
    assert img.status == 200 and img.headers["content-type"] == "image/png"
    assert "no-store" in img.headers["cache-control"]
    (wb.ARTIFACTS / "viewer-05-page-image.png").write_bytes(img.body())
    original = pg.request.get(f"/api/v1/files/{notice['fid']}/content")
    assert original.status == 403 and original.json()["error"]["code"] == "NO_GRANT"
