"""The 利用 workflow in Debian's chromium, person by person: a reader asks to borrow a 秘密 record from its page,
the 专职档案员, the 档案部门负责人 and the 分管领导 approve in turn (a refusal without a reason is refused), the
lending desk lends it (the record shows 借出), takes it back, the reader records the effect, and the register
shows it all. Screenshots go to tests/artifacts/ (gitignored)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import openpyxl
import pytest

import test_web_browser as wb
from dangan.services.context import Actor
from dangan.services.files import NewFile
from dangan.services.records import RecordInput, create_record
from test_api import PW, add_user

served, server, browser, shot = wb.served, wb.server, wb.browser, wb.shot
pytestmark = pytest.mark.browser

TITLE = "关于调整机构编制的请示（利用流程）"


@pytest.fixture
def people(browser, server, served):  # type: ignore[no-untyped-def]
    """Logged-in pages: the demo accounts, and a reader of 机密 clearance who may see the 秘密 record."""
    app = served[1]
    add_user(app, "sunqing", ["reader"], "机密")
    opened = []

    def make(username: str, password: str = wb.DEMO_PASSWORD):  # type: ignore[no-untyped-def]
        ctx = browser.new_context(base_url=server, locale="zh-CN", viewport={"width": 1366, "height": 860},
                                  accept_downloads=True)
        pg = ctx.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.on("console", lambda m: errors.append(m.text)
              if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
        pg.on("dialog", lambda d: d.accept())
        pg.js_errors = errors
        wb.login(pg, username, password)
        opened.append(pg)
        return pg

    yield make
    for pg in opened:
        pg.context.close()
    errors = [e for pg in opened for e in pg.js_errors]
    assert not errors, f"JavaScript errors or blocked resources in the page: {errors}"


def _card(pg, rid: int):  # type: ignore[no-untyped-def]
    return pg.locator(f"#r{rid}")


def test_request_approve_lend_return_effect_register(people, served) -> None:  # type: ignore[no-untyped-def]
    app = served[1]
    meta = {"title": TITLE, "year": 2024, "retention_period": "Y", "responsible": "示范市人民政府办公室",
            "date": "2024-04-02", "security_level": "秘密", "secrecy_period": "10年", "doc_number": "示政办〔2024〕31号"}
    rec = create_record(app, Actor.system(), RecordInput("Z109", "WS", meta, department="BGS", state="filed"),
                        [NewFile("请示.pdf", io.BytesIO(b"%PDF-1.4\n%%EOF\n"))])
    code = rec["archival_code"]

    # ------------------------------------------------ the reader asks from the record's page
    reader = people("sunqing", PW)
    reader.goto("/requests")
    assert "还没有利用申请" in reader.locator(".empty-state").inner_text()
    shot(reader, "access-00-mine-empty")
    reader.goto(f"/records/{rec['id']}")
    reader.click("#request-use")
    reader.wait_for_url(re.compile(r".*/requests/new\?record=\d+$"))
    assert reader.locator("h1").inner_text() == "申请利用"
    assert code in reader.locator("#request-record").inner_text()
    assert reader.locator("#route-table tr.current").get_attribute("data-kind") == "view"
    reader.check("input[name=kind][value=borrow]")
    assert reader.locator("#route-table tr.current").get_attribute("data-kind") == "borrow"
    route = reader.locator("#route-table tr.current .route-role").all_inner_texts()
    assert route == ["专职档案员", "档案部门负责人", "分管领导"]
    shot(reader, "access-01-form")
    reader.select_option("#rq-purpose", "其他")  # "其他" without saying what for
    reader.click("#submit-request")
    reader.wait_for_load_state()
    assert "利用目的为“其他”时，请写明具体目的" in reader.locator("#err-purpose_note").inner_text()
    assert reader.locator("input[name=kind][value=borrow]").is_checked()  # what was chosen stays
    shot(reader, "access-02-form-error")
    reader.select_option("#rq-purpose", "编史修志")
    reader.fill("#rq-note", "编写机构沿革，需核对原件批示")
    reader.click("#submit-request")
    reader.wait_for_url(re.compile(r".*/requests\?done=created&id=\d+"))
    rid = int(re.search(r"id=(\d+)", reader.url).group(1))
    card = _card(reader, rid)
    assert "待审批" in card.inner_text() and "等待专职档案员审批" in card.inner_text()
    shot(reader, "access-03-mine-pending")

    # ------------------------------------------------ three approvals, in order
    archivist = people("dangan")
    archivist.goto("/approvals")
    card = _card(archivist, rid)
    for words in ("SUNQING", "未分配机构", TITLE, "秘密", "编史修志", "编写机构沿革"):
        assert words in card.inner_text(), words
    shot(archivist, "access-04-queue")
    card.locator("textarea").fill("原件完好，可借阅")
    card.locator("button", has_text="同意").first.click()
    archivist.wait_for_url(re.compile(r".*/approvals\?done=approved"))
    assert archivist.locator(f"#queue #r{rid}").count() == 0

    head = people("head")
    head.goto("/approvals")
    card = _card(head, rid)
    assert "原件完好，可借阅" in card.inner_text()
    head.set_viewport_size({"width": 1280, "height": 800})  # a small laptop screen
    shot(head, "access-04b-queue-1280")
    card.locator("textarea").fill("同意，注意保密")
    card.locator("button", has_text="同意").first.click()
    head.wait_for_url(re.compile(r".*/approvals\?done=approved"))
    assert "同意，注意保密" in head.locator("#history").inner_text()
    shot(head, "access-05-history")

    leader = people("leader")
    leader.goto("/approvals")
    card = _card(leader, rid)
    card.locator("button", has_text="不同意").click()  # no reason: refused, nothing changes
    leader.wait_for_load_state()
    assert "必须写明理由" in _card(leader, rid).locator(".field-error").inner_text()
    shot(leader, "access-06-refuse-without-reason")
    _card(leader, rid).locator("button", has_text="同意").first.click()
    leader.wait_for_url(re.compile(r".*/approvals\?done=granted_final"))
    assert "没有待您审批的申请" in leader.locator(".empty-state").inner_text()
    shot(leader, "access-07-queue-empty")

    reader.goto("/requests")
    card = _card(reader, rid)
    assert "已准予" in card.inner_text() and card.locator(".step-approve").count() == 3
    shot(reader, "access-08-mine-granted")
    reader.set_viewport_size({"width": 1280, "height": 800})
    shot(reader, "access-08b-mine-1280")

    # ------------------------------------------------ the lending desk
    archivist.goto("/lending")
    row = archivist.locator(f"#waiting #r{rid}")
    assert "SUNQING" in row.inner_text()
    row.locator("input[name=note]").fill("共 6 页")
    row.locator("button", has_text="借出").click()
    archivist.wait_for_url(re.compile(r".*/lending\?done=lent"))
    assert archivist.locator(f"#out #r{rid}").count() == 1
    shot(archivist, "access-09-lending")
    archivist.goto(f"/records/{rec['id']}")
    assert archivist.locator(".record-code .badge").first.inner_text() == "借出"
    shot(archivist, "access-10-record-on-loan")
    archivist.goto("/records?state=on_loan")
    assert TITLE in archivist.locator("main").inner_text()
    archivist.goto("/lending?q=" + code.lower())
    row = archivist.locator(f"#out #r{rid}")
    row.locator("input[name=note]").fill("完好")
    row.locator("button", has_text="归还").click()
    archivist.wait_for_url(re.compile(r".*/lending\?done=returned"))
    assert "完好" in archivist.locator("#returned").inner_text()
    archivist.goto(f"/records/{rec['id']}")
    assert archivist.locator(".record-code .badge").first.inner_text() == "已归档"

    # ------------------------------------------------ the effect, then the register
    reader.goto("/requests")
    card = _card(reader, rid)
    assert "已归还" in card.inner_text()
    card.locator("input[name=effect][value=有效]").check()
    card.locator("input[name=note]").fill("核清了 2019 年编制调整的批示")
    card.locator("button", has_text="登记").click()
    reader.wait_for_url(re.compile(r".*/requests\?done=effect"))
    assert "核清了 2019 年编制调整的批示" in _card(reader, rid).inner_text()
    shot(reader, "access-11-effect")

    head.goto("/register")
    row = head.locator(f"#register #r{rid}")
    text = row.inner_text()
    for words in ("SUNQING", TITLE, "借阅", "编史修志", "专职档案员", "分管领导", "已归还", "有效", "核清了"):
        assert words in text, words
    shot(head, "access-12-register")
    with head.expect_download() as dl:
        head.click("#export-xlsx")
    assert dl.value.suggested_filename.endswith(".xlsx")
    data = Path(dl.value.path()).read_bytes()
    rows = list(openpyxl.load_workbook(io.BytesIO(data))["利用登记"].iter_rows(values_only=True))
    assert any(r[1] == rid and r[-2] == "有效" for r in rows[2:])
