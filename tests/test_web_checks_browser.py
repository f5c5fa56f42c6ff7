"""四性检测 and 长期保存 pages in Debian's chromium: start a check and watch it, read the report, download the
PDF, compare reruns, edit a scheme, run a fixity-audit batch, receive a package (good and corrupted).

Screenshots go to tests/artifacts/ (gitignored) so that a person can look at them.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest

import test_web_browser as wb
from dangan.services import packages
from dangan.services.context import Actor

# the browser fixtures of test_web_browser (a demo archive served by uvicorn, chromium, logged-in pages)
served, server, browser, as_user, shot = wb.served, wb.server, wb.browser, wb.as_user, wb.shot

pytestmark = pytest.mark.browser
REPORT = re.compile(r".*/checks/\d+$")  # a run's report page


def _filed_ids(served, n: int = 3) -> list[int]:  # type: ignore[no-untyped-def]
    from dangan.services.records import RecordFilter, list_records

    app = served[1]
    res = list_records(app, Actor.system(), RecordFilter(fonds="Z109", category="WS", state="filed"), limit=n, audit=False)
    return [r["id"] for r in res["items"]]


def test_check_a_batch_with_live_progress_then_read_the_report(as_user, served) -> None:  # type: ignore[no-untyped-def]
    pg = as_user("dangan")
    pg.goto("/checks")
    assert pg.locator("h1").inner_text() == "四性检测"
    shot(pg, "checks-01-home")
    pg.select_option("#c-stage", "长期保存")
    pg.fill("#c-year", "2024")
    pg.select_option("#c-state", "filed")
    pg.click("#start-check")
    pg.wait_for_url(REPORT, timeout=60_000)  # the job page polls, then shows the report
    assert "长期保存环节四性检测" in pg.locator("h1").inner_text()
    verdict = pg.locator(".verdict-value").inner_text()
    assert verdict in ("通过", "不通过")
    assert pg.locator(".dim").count() == 4
    assert [t.strip() for t in pg.locator(".dim-label").all_inner_texts()] == ["真实性", "完整性", "可用性", "安全性"]
    # every item is listed with its code; the digest comparison item checked every file
    assert pg.locator("#item-BC-1-10").count() == 1 and pg.locator("#item-BC-4-1").count() == 1
    assert "通过" in pg.locator("#item-BC-1-10").inner_text()
    assert "未配置病毒扫描服务" in pg.locator("#item-BC-4-1").inner_text()
    shot(pg, "checks-02-report")
    with pg.expect_download() as dl:
        pg.click("text=检测报告（PDF）")
    path = dl.value.path()
    assert path and Path(path).read_bytes()[:5] == b"%PDF-"


def test_record_check_rerun_and_compare_after_damage(as_user, served) -> None:  # type: ignore[no-untyped-def]
    url, app = served
    rid = _filed_ids(served, 1)[0]
    pg = as_user("dangan")
    pg.goto(f"/records/{rid}")
    pg.click("#run-check")
    pg.wait_for_url(REPORT)
    assert pg.locator(".verdict-value").inner_text() == "通过"
    # the stored 正文 is altered on disk (bit rot or tampering); the rerun names the file and the digests
    from dangan.services.records import get_record

    f = get_record(app, Actor.system(), rid)["files"][0]
    blob = app.store.root / f["storage_key"]
    blob.chmod(0o644)
    original = blob.read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 0x20
    blob.write_bytes(bytes(data))
    pg.goto(f"/records/{rid}")
    pg.click("#run-check")
    pg.wait_for_url(REPORT)
    assert pg.locator(".verdict-value").inner_text() == "不通过"
    row = pg.locator("#item-BC-1-10")
    assert "不通过" in row.inner_text() and f["sha256"] in row.inner_text()
    shot(pg, "checks-03-damaged")
    pg.click("text=与上一次比较")
    pg.wait_for_url("**/compare")
    body = pg.locator("main").inner_text() if pg.locator("main").count() else pg.content()
    assert "BC-1-10" in body and "数字摘要不一致" in body
    shot(pg, "checks-04-compare")
    blob.write_bytes(original)  # the other tests of the module use the same archive


def test_scheme_editor_saves_and_shows_errors(as_user) -> None:  # type: ignore[no-untyped-def]
    pg = as_user("head")
    pg.goto("/check-schemes")
    shot(pg, "checks-05-schemes")
    pg.click("text=长期保存环节四性检测（预置）")
    pg.wait_for_url("**/check-schemes/*")
    box = pg.locator("input[name='format_allowed.veto']")
    assert not box.is_checked()
    box.check()
    pg.click("#save-scheme")
    pg.wait_for_url("**done=scheme_saved")
    assert "检测方案已保存" in pg.locator(".alert.ok").inner_text()
    assert pg.locator("input[name='format_allowed.veto']").is_checked()
    # a wrong parameter type is refused field by field and nothing changes
    pg.fill("input[name='process_records.param.required_roles']", "[1, 2]")
    pg.locator("input[name='format_allowed.veto']").uncheck()
    pg.click("#save-scheme")
    assert "未保存" in pg.locator("#form-errors").inner_text()
    # what was entered is shown again (not the saved scheme), so that the person corrects only the one field
    assert not pg.locator("input[name='format_allowed.veto']").is_checked()
    assert pg.input_value("input[name='process_records.param.required_roles']") == "[1, 2]"
    shot(pg, "checks-06-scheme-error")
    pg.fill("input[name='process_records.param.required_roles']", "{}")
    pg.click("#save-scheme")
    pg.wait_for_url("**done=scheme_saved")


def test_fixity_audit_page_runs_a_batch(as_user) -> None:  # type: ignore[no-untyped-def]
    pg = as_user("sysadmin")
    pg.goto("/preservation")
    assert pg.locator("h1").inner_text() == "长期保存"
    pg.click("#run-audit")
    pg.wait_for_load_state()
    assert "已完成一批固化信息巡检" in pg.locator(".alert.ok").inner_text()
    assert pg.locator("#last-batch").count() == 1
    shot(pg, "checks-07-preservation")


def test_receive_a_package_good_then_corrupted(as_user, served, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url, app = served
    ids = _filed_ids(served, 2)
    res = packages.export_records(app, Actor.system(), ids, "bagit", tmp_path / "transfer")
    good = Path(res["path"])
    # the same bag with one payload byte changed after it was made
    bad = tmp_path / "corrupted.zip"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith(".pdf") and "/data/" in f"/{info.filename}":
                data = data[:-40] + bytes([data[-40] ^ 1]) + data[-39:]
            zout.writestr(info, data)
    pg = as_user("dangan")
    pg.goto("/packages/import")
    shot(pg, "checks-08-import-form")
    pg.set_input_files("#i-package", str(bad))
    pg.click("#start-import")
    pg.wait_for_selector("#job-state:has-text('失败')", timeout=60_000)
    assert "未通过移交与接收检测" in pg.locator(".alert.bad").inner_text()
    shot(pg, "checks-09-import-refused")
    pg.click("text=查看移交与接收检测报告")
    pg.wait_for_url(REPORT)
    assert pg.locator(".verdict-value").inner_text() == "不通过"
    assert "不通过" in pg.locator("#item-YJ-1-14").inner_text()
    shot(pg, "checks-10-import-report")
    # the good bag holds records this archive already has (the same 档号): refused as duplicates, nothing stored
    pg.goto("/packages/import")
    pg.set_input_files("#i-package", str(good))
    pg.click("#start-import")
    pg.wait_for_selector("#job-state:has-text('失败'), #job-state:has-text('已完成')", timeout=60_000)
    assert "YJ-1-8" in pg.locator("main").inner_text() or "重复" in pg.content()
