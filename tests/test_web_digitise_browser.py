"""数字化 pages in Debian's chromium: upload a batch, read what does not match, run the QC with live progress,
replace an unreadable page, draw and mark the 抽检, OCR (one page: one OCR call), look at the page beside its
text, confirm a 公文 suggestion, override what is left with a reason and accept. A reader has no 数字化.

Screenshots go to tests/artifacts/ (gitignored) so that a person can look at them.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

import test_web_browser as wb
from dangan.services.context import Actor
from dangan.services.records import RecordInput, create_record, get_record
from test_digitise_service import GOV_LINES, save, text_page

served, server, browser, as_user = wb.served, wb.server, wb.browser, wb.as_user


def shot(pg, name: str) -> None:  # type: ignore[no-untyped-def]
    pg.evaluate("window.scrollTo(0, 0)")  # the sticky top bar would sit mid-page in a full-page shot of an anchor
    wb.shot(pg, name)

pytestmark = pytest.mark.browser
BATCH = re.compile(r".*/scan/\d+(\?.*)?(#.*)?$")


def _wait_job(pg) -> None:  # type: ignore[no-untyped-def]
    """The batch page polls its job and reloads when it ends."""
    pg.wait_for_function("() => !document.getElementById('capture-job')", timeout=120_000)
    pg.wait_for_load_state()


def test_a_digitisation_batch_from_upload_to_acceptance(as_user, served, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _url, app = served
    meta = {"title": "关于做好档案数字化工作的通知", "year": 2024, "retention_period": "D30", "date": "2024-03-05",
            "responsible": "待核对", "security_level": "公开", "pages": 1}
    rec = create_record(app, Actor.system(), RecordInput("Z109", "WS", meta, department="BGS", state="filed"))
    code = rec["archival_code"]
    good = tmp_path / "good.jpg"
    save(text_page(GOV_LINES), good)
    whole = io.BytesIO()
    text_page(["被截断的页面"]).save(whole, "JPEG", dpi=(300, 300))
    cut = tmp_path / f"{code}-0001.jpg"
    cut.write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    stray = tmp_path / "Z109-WS·2024-D30-BGS-8888-0001.jpg"
    stray.write_bytes(b"not a scan at all")

    pg = as_user("dangan")
    pg.goto("/scan")
    assert pg.locator("h1").inner_text() == "数字化"
    assert pg.locator("nav.sidenav a[href='/scan']").count() == 1
    shot(pg, "scan-01-home")
    pg.set_input_files("input[name=files]", [str(cut), str(stray)])
    pg.fill("#s-device", "Fujitsu fi-7160")
    pg.fill("#s-name", "浏览器测试批次")
    pg.click("#scan-start")
    pg.wait_for_url(BATCH, timeout=60_000)
    assert "浏览器测试批次" in pg.locator("h1").inner_text()
    issues = pg.locator("#issues").inner_text()
    assert "8888" in issues and "没有对应的档案" in issues and "未做图像质量检查" in issues
    shot(pg, "scan-02-imported")

    pg.click("#start-qc")
    pg.wait_for_url(BATCH)
    _wait_job(pg)
    assert pg.locator(".scan-step.s-done").count() >= 2
    out = pg.locator("#outstanding")
    assert out.count() == 1 and "无法读取" in out.inner_text()
    shot(pg, "scan-03-checked")

    # rework: the truncated page of the record is replaced; the stray file stays unreadable (overridden below)
    item = pg.locator(".rework", has_text=f"{code} 第 1 页")
    item.locator("input[name=file]").set_input_files(str(good))
    item.locator("button[type=submit]", has_text="替换").click()
    pg.wait_for_url(BATCH)
    assert "已用重新扫描的图像替换该页" in pg.locator("#notice").inner_text()
    assert pg.locator(".rework", has_text=f"{code} 第 1 页").count() == 0

    pg.click("#draw-sample")
    pg.wait_for_url(BATCH)
    rows = pg.locator(".sample-table tbody tr")
    assert rows.count() == 1
    rows.first.locator("button[value=合格]").click()
    pg.wait_for_url(BATCH)
    assert "合格" in pg.locator("#inspection-verdict").inner_text()
    shot(pg, "scan-04-sampled")

    pg.click("#start-ocr")
    pg.wait_for_url(BATCH)
    _wait_job(pg)
    group = pg.locator(".scan-group", has_text=code)
    assert "已 OCR" in group.inner_text() and "PDF/A 1 页" in group.inner_text()
    shot(pg, "scan-05-ocr")

    # the page beside its OCR text; a line lights up its box; the suggestion is written only when confirmed
    group.locator(".scan-thumb a").first.click()
    pg.wait_for_url(re.compile(r".*/scan/pages/\d+$"))
    pg.wait_for_function("() => { const i = document.getElementById('scan-image'); return i && i.complete && i.naturalWidth > 0; }")
    assert pg.locator(".ocr-lines li").count() >= 5
    assert pg.locator(".ocr-box").first.evaluate("b => b.style.left !== ''")
    line = pg.locator(".ocr-lines li", has_text="12号").first
    line.hover()
    n = line.get_attribute("data-line")
    assert "hl" in (pg.locator(f".ocr-box[data-line='{n}']").get_attribute("class") or "")
    assert get_record(app, Actor.system(), rec["id"])["doc_number"] is None  # nothing written yet
    assert pg.locator("#v-doc_number").input_value() == "示政办发〔2024〕12号"
    shot(pg, "scan-06-page")
    pg.locator("#use-title").uncheck() if pg.locator("#use-title").count() else None
    pg.locator("#use-responsible").check() if pg.locator("#use-responsible").count() else None
    if pg.locator("#v-responsible").count():
        pg.fill("#v-responsible", "示范市人民政府办公室")
    pg.locator("#use-doc_number").check()
    pg.click("#confirm-suggest")
    pg.wait_for_url(re.compile(r".*/scan/pages/\d+\?done=confirmed.*"))
    assert "著录已按您确认的内容修改" in pg.locator("#notice").inner_text()
    after = get_record(app, Actor.system(), rec["id"])
    assert after["doc_number"] == "示政办发〔2024〕12号"
    assert after["title"] == meta["title"]  # not ticked: unchanged
    shot(pg, "scan-07-confirmed")

    # what is left is overridden with a reason, then the batch is accepted
    pg.locator(".page-head a", has_text="返回批次").click()
    pg.wait_for_url(BATCH)
    pg.click("#accept")
    pg.wait_for_load_state()  # refused: the batch page again, at the form's address, with what is outstanding
    assert "未解决" in pg.locator("#form-errors").inner_text()
    shot(pg, "scan-075-refused")
    for box in pg.locator("#accept-form input[name=override]").all():
        box.check()
    pg.fill("#accept-reason", "8888 不属于本批次，另行处理")
    pg.click("#accept")
    pg.wait_for_url(BATCH)
    assert "批次已挂接" in pg.locator("#notice").inner_text()
    assert "已挂接" in pg.locator("h1").inner_text()
    shot(pg, "scan-08-accepted")
    roles = sorted(f["role"] for f in get_record(app, Actor.system(), rec["id"])["files"])
    assert roles == ["layout", "scan"]
    pg.goto(f"/records/{rec['id']}")
    assert "扫描件" in pg.locator("main").inner_text() and "版式文件" in pg.locator("main").inner_text()
    shot(pg, "scan-09-record")


def test_bad_uploads_say_what_is_wrong(as_user, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import zipfile

    slip = tmp_path / "slip.zip"
    with zipfile.ZipFile(slip, "w") as zf:
        zf.writestr("../../etc/evil.jpg", b"\xff\xd8\xff")
    notes = tmp_path / "notes.zip"
    with zipfile.ZipFile(notes, "w") as zf:
        zf.writestr("说明.txt", "扫描说明")
    pg = as_user("dangan")
    pg.goto("/scan")
    pg.set_input_files("input[name=files]", [str(slip)])
    pg.click("#scan-start")
    pg.wait_for_load_state()
    err = pg.locator("#form-errors").inner_text()
    assert "未导入" in err and "不安全" in err
    shot(pg, "scan-10-zip-slip")
    pg.goto("/scan")
    pg.set_input_files("input[name=files]", [str(notes)])
    pg.click("#scan-start")
    pg.wait_for_url(re.compile(r".*/scan/jobs/\w+$"))
    pg.wait_for_function("() => document.getElementById('capture-job').getAttribute('data-state') !== 'running'",
                         timeout=60_000)
    assert "没有找到扫描图像" in pg.locator("#capture-job").inner_text()
    assert "说明.txt" in pg.locator("#capture-job").inner_text()
    shot(pg, "scan-11-job-failed")


def test_a_reader_has_no_digitisation(as_user) -> None:  # type: ignore[no-untyped-def]
    pg = as_user("reader")
    pg.goto("/")
    assert pg.locator("nav.sidenav a[href='/scan']").count() == 0
    r = pg.goto("/scan")
    assert r is not None and r.status == 403
    assert "权限" in pg.locator("main").inner_text()
