"""The web UI driven in Debian's chromium (Playwright, sync API) against a demo archive served by uvicorn.

Every test logs in through the login page (as the 专职档案员 `dangan` unless it needs another role).
Screenshots of every page go to tests/artifacts/ (gitignored) so that a person can look at them.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dangan.config import load_settings
from dangan.demo.documents import make_pdf
from dangan.domain.access import ACTION_LABELS
from dangan.services.context import Actor, Dangan
from dangan.services.setup import init

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _need_browser() -> None:
    if CHROMIUM.exists():
        return
    if IN_CI:
        pytest.fail("/usr/bin/chromium is required under CI=true (apt-get install chromium fonts-noto-cjk)")
    pytest.skip("/usr/bin/chromium is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Dangan]]:
    _need_browser()
    import uvicorn

    from dangan.demo.build import build_demo
    from dangan.web.app import create_app

    settings = load_settings(tmp_path_factory.mktemp("web") / "data")
    init(settings, admin_accounts=False)
    app = Dangan(settings)
    build_demo(app, Actor.system(), size=80)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(app), host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 15
    while not srv.started:
        if time.monotonic() > deadline or not t.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        srv.should_exit = True
        t.join(10)
        app.close()


@pytest.fixture(scope="module")
def server(served: tuple[str, Dangan]) -> str:
    return served[0]


@pytest.fixture(scope="module")
def browser(server: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM),
                              args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"])
        try:
            yield b
        finally:
            b.close()


DEMO_PASSWORD = "Dangan@2026"


def login(pg, username: str, password: str = DEMO_PASSWORD, shot_name: str | None = None) -> None:  # type: ignore[no-untyped-def]
    """Log in through the login page, like a person."""
    pg.goto("/login")
    if shot_name:
        shot(pg, shot_name)
    pg.fill("#username", username)
    pg.fill("#password", password)
    pg.click("form.login-form button[type=submit]")
    pg.wait_for_load_state()
    assert "/login" not in pg.url, pg.locator(".alert").all_inner_texts()


def open_page(browser, server: str, username: str):  # type: ignore[no-untyped-def]
    ctx = browser.new_context(base_url=server, locale="zh-CN", viewport={"width": 1440, "height": 900},
                              accept_downloads=True)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    # 4xx pages are expected in some tests; a failing asset or a CSP violation is not
    pg.on("console", lambda m: errors.append(m.text)
          if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    pg.on("response", lambda r: errors.append(f"{r.status} {r.url}") if "/static/" in r.url and r.status >= 400 else None)
    pg.on("dialog", lambda d: d.accept())
    pg.js_errors = errors
    login(pg, username)
    return pg


@pytest.fixture
def as_user(browser, server: str):  # type: ignore[no-untyped-def]
    """Pages logged in as a given demo account; each context is closed and checked for script errors."""
    opened = []

    def make(username: str):  # type: ignore[no-untyped-def]
        pg = open_page(browser, server, username)
        opened.append(pg)
        return pg

    yield make
    for pg in opened:
        pg.context.close()
    errors = [e for pg in opened for e in pg.js_errors]
    assert not errors, f"JavaScript errors or blocked resources in the page: {errors}"


@pytest.fixture
def page(as_user):  # type: ignore[no-untyped-def]
    return as_user("dangan")


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_every_page_renders_in_chinese(page) -> None:  # type: ignore[no-untyped-def]
    page.goto("/")
    assert page.locator(".brand-name").inner_text() == "dangan 电子档案管理系统"
    assert page.locator("h1").inner_text() == "首页"
    assert page.locator(".stat").count() == 5
    assert page.locator(".bars li").count() >= 5  # filed per year 2019..2024
    shot(page, "01-home")

    page.click("nav.sidenav >> text=档案浏览")
    page.wait_for_url("**/records")
    assert page.locator("table.records tbody tr").count() == 50
    assert "共" in page.locator(".pager").inner_text()
    shot(page, "02-browse")
    page.click(".pager >> text=下一页")
    assert "第 2 页" in page.locator(".pager").inner_text()

    # drill down the tree: 文书档案 → 2022 → 永久 → 办公室
    for label, part in (("文书档案", "category=WS"), ("2022 年", "year=2022"), ("永久", "retention=Y"),
                        ("办公室", "department=BGS")):
        page.click(f".tree a:has(.tree-label:text-is('{label}'))")
        page.wait_for_url(f"**{part}*")
    rows = page.locator("table.records tbody tr")
    assert rows.count() >= 1
    for code in rows.locator("td:first-child").all_inner_texts():
        assert re.fullmatch(r"Z109-WS·2022-Y-BGS-\d{4}", code.strip()), code
    assert "办公室" in page.locator(".crumbs").inner_text() or "永久" in page.locator(".crumbs").inner_text()
    shot(page, "03-browse-drilldown")

    page.click("table.records tbody tr:first-child td.title-cell a")
    assert page.locator(".code-big").inner_text().startswith("Z109-WS·2022-Y-BGS-")
    assert page.locator("dl.meta dt", has_text="题名").count() == 1
    assert page.locator("table.files code").first.inner_text()  # digests shown
    assert page.locator("table.history").count() == 0  # the audit trail is the 安全审计员's
    assert "由安全审计员查阅" in page.locator("aside.card").inner_text()
    shot(page, "04-record-detail")

    page.goto("/records?fonds=Z109&category=KU")
    page.click("table.records tbody tr:first-child td.title-cell a")
    assert page.locator("h2", has_text="下级档案").count() == 1
    shot(page, "05-volume-with-children")

    page.click("nav.sidenav >> text=全宗与门类")
    assert page.locator("table.schema").count() >= 8  # WS 1 + KU 2 + KJ 3 + ZP 2 + LX 1
    assert page.locator("table.schema >> text=M22").count() >= 5
    shot(page, "06-fonds-categories")

    page.click("nav.sidenav >> text=接口文档")
    page.click("details.op >> nth=0")
    shot(page, "07-api-docs")


def test_new_record_form_errors_then_success_and_workflow(page) -> None:  # type: ignore[no-untyped-def]
    page.goto("/records/new")
    assert page.locator("select[name=category]").input_value() == "WS"
    page.fill("#f-title", "关于开展2024年度档案移交工作的通知")
    page.fill("#f-year", "2024")
    page.fill("#f-date", "2023-12-30")  # 年度 vs 日期 mismatch
    page.select_option("#f-retention_period", "D30")
    page.fill("#f-pages", "三页")  # wrong type
    page.select_option("#f-department", "BGS")
    page.click("button:has-text('保存')")
    assert page.locator(".alert.bad").is_visible()
    assert "不一致" in page.locator(".field.has-error", has=page.locator("#f-year")).inner_text()
    assert "整数" in page.locator(".field.has-error", has=page.locator("#f-pages")).inner_text()
    assert "必选字段" in page.locator(".field.has-error", has=page.locator("#f-responsible")).inner_text()
    assert page.input_value("#f-title") == "关于开展2024年度档案移交工作的通知"  # typed values kept
    assert page.input_value("#f-pages") == "三页"
    shot(page, "08-new-record-errors")

    page.fill("#f-date", "2024-03-05")
    page.fill("#f-pages", "3")
    page.fill("#f-responsible", "示范市人民政府办公室")
    page.fill("#f-doc_number", "示政办〔2024〕88号")
    page.select_option("#f-doc_type", "通知")
    page.set_input_files("input[name=file_0]", files=[{"name": "关于开展档案移交工作的通知.pdf",
                                                       "mimeType": "application/pdf",
                                                       "buffer": make_pdf("关于开展档案移交工作的通知", ["正文"])}])
    page.click("button:has-text('保存')")
    page.wait_for_url(re.compile(r"/records/\d+\?done=created"))
    assert "档案已保存" in page.locator(".alert.ok").inner_text()
    assert page.locator("h1.record-title").inner_text() == "关于开展2024年度档案移交工作的通知"
    shot(page, "09-new-record-saved")

    # download the file: Chinese name, same SHA-256 as shown
    with page.expect_download() as dl:
        page.click("table.files a:has-text('下载')")
    d = dl.value
    assert d.suggested_filename == "关于开展档案移交工作的通知.pdf"
    content = Path(d.path()).read_bytes()
    shown = page.locator("table.files .hash code").first.inner_text().strip()
    assert hashlib.sha256(content).hexdigest() == shown

    page.click("button:has-text('提交归档')")
    assert "已提交归档" in page.locator(".alert.ok").inner_text()
    page.fill("#return-reason", "缺少处理单")
    page.click("button:has-text('退回')")
    assert "已退回" in page.locator(".alert.ok").inner_text()
    page.click("button:has-text('归档（赋予档号）')")  # the confirm dialog is accepted
    assert re.fullmatch(r"Z109-WS·2024-D30-BGS-\d{4}", page.locator(".code-big").inner_text().strip())
    shot(page, "10-record-filed")


def test_xss_title_is_shown_as_text(page, server: str) -> None:  # type: ignore[no-untyped-def]
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    page.goto("/")
    csrf = page.locator("meta[name=csrf-token]").get_attribute("content")
    r = page.request.post("/api/v1/records", headers={"X-CSRF-Token": csrf}, data={
        "fonds": "Z109", "category": "WS", "department": "BGS",
        "metadata": {"title": "<script>alert(1)</script><img src=x onerror=alert(2)>", "year": 2025,
                     "retention_period": "D10", "responsible": "<b>办公室</b>", "date": "2025-01-02"}})
    assert r.status == 201, r.text()
    rid = r.json()["id"]
    page.goto(f"/records/{rid}")
    assert page.locator("h1.record-title").inner_text() == "<script>alert(1)</script><img src=x onerror=alert(2)>"
    page.goto("/records?sort=newest")
    assert page.locator("td.title-cell", has_text="<script>alert(1)</script>").count() == 1
    page.goto("/")
    assert not dialogs
    assert page.locator("main script").count() == 0


def test_audit_verify_and_fixity_progress(page, as_user, served: tuple[str, Dangan]) -> None:  # type: ignore[no-untyped-def]
    auditor = as_user("auditor")
    auditor.goto("/audit")
    assert auditor.locator("table.audit tbody tr").count() == 50
    auditor.click("#verify-btn")
    assert "审计日志完整" in auditor.locator(".verify-result").inner_text()
    auditor.select_option("select[name=action]", "login")
    auditor.click("button:has-text('筛选')")
    assert set(auditor.locator("table.audit tbody td:nth-child(5)").all_inner_texts()) == {"登录"}
    with auditor.expect_download() as dl:
        auditor.click("#export-csv")
    text = Path(dl.value.path()).read_text(encoding="utf-8-sig")
    assert text.startswith("序号,") and ",login," in text
    auditor.goto("/audit")
    shot(auditor, "11-audit-as-auditor")
    page.goto("/audit")
    assert page.locator("h1").inner_text() == "操作被拒绝"  # the 专职档案员 does not read the trail

    page.goto("/fixity")
    page.click("#start-fixity")
    page.wait_for_selector("text=全部正常", timeout=20000)
    page.wait_for_selector(".alert.ok", timeout=20000)
    assert "均与归档时一致" in page.locator(".alert.ok").inner_text()
    shot(page, "12-fixity")

    # alter one stored file behind the archive's back: the next check names it
    info = page.request.get("/api/v1/files/1").json()
    blob = served[1].store.root / info["storage_key"]  # type: ignore[attr-defined]
    original = blob.read_bytes()
    blob.chmod(0o644)
    blob.write_bytes(original[:-10])
    try:
        page.click("#start-fixity")
        page.wait_for_selector(".alert.bad", timeout=20000)
        assert "1 个电子文件未通过检测" in page.locator(".alert.bad").inner_text()
        assert page.locator("table >> text=截断").count() >= 1
        shot(page, "13-fixity-failure")
    finally:
        blob.write_bytes(original)


def test_missing_pages_are_friendly(page) -> None:  # type: ignore[no-untyped-def]
    page.goto("/records/999999")
    assert page.locator("h1").inner_text() == "未找到"
    assert "档案 999999 不存在" in page.locator(".lead").inner_text()
    shot(page, "14-not-found")


def test_login_page_and_a_readers_view(browser, server: str, as_user) -> None:  # type: ignore[no-untyped-def]
    ctx = browser.new_context(base_url=server, locale="zh-CN", viewport={"width": 1440, "height": 900})
    try:
        pg = ctx.new_page()
        pg.goto("/records?year=2022")
        assert "/login?next=" in pg.url
        assert pg.locator(".sidenav").count() == 0  # nothing but the login form before login
        assert pg.locator("table.demo-accounts tbody tr").count() == 9
        shot(pg, "15-login")
        pg.fill("#username", "reader")
        pg.fill("#password", "wrong-password")
        pg.click("form.login-form button[type=submit]")
        assert "用户名或密码错误" in pg.locator("#login-error").inner_text()
        pg.click("table.demo-accounts tr:has-text('reader') button.demo-fill")
        assert pg.input_value("#username") == "reader" and pg.input_value("#password") == DEMO_PASSWORD
        pg.click("form.login-form button[type=submit]")
        pg.wait_for_url("**/records?year=2022")  # back where the visit began
        assert "利用者" in pg.locator(".user-meta").inner_text() and "密级 公开" in pg.locator(".user-meta").inner_text()
        nav = pg.locator("nav.sidenav").inner_text()
        assert "档案浏览" in nav and "新建档案" not in nav and "审计日志" not in nav and "用户管理" not in nav
        assert pg.locator("a:has-text('新建档案')").count() == 0
        shot(pg, "21-reader-browse")
        pg.click("table.records tbody tr:has-text('Z109-WS') td.title-cell a >> nth=0")
        pg.wait_for_url(re.compile(r"/records/\d+$"))
        assert pg.locator("table.files a:has-text('下载')").count() == 0
        assert pg.locator("text=不可下载").count() >= 1 and pg.locator("form.upload-form").count() == 0
        shot(pg, "22-reader-record")
        pg.click("button:has-text('退出')")
        pg.wait_for_url("**/login?bye=1")
        assert "已安全退出" in pg.locator(".alert.ok").inner_text()
        pg.goto("/")
        assert "/login" in pg.url
    finally:
        ctx.close()


def test_three_administrators_at_work(as_user, browser, server: str) -> None:  # type: ignore[no-untyped-def]
    sysadmin = as_user("sysadmin")
    assert sysadmin.locator("h1").inner_text() == "首页"
    assert sysadmin.locator("a.task").count() >= 5 and "不能查看档案内容" in sysadmin.locator(".lead").inner_text()
    shot(sysadmin, "23-sysadmin-home")
    # 用户管理: a new colleague in 财务科, initial password generated and shown once
    sysadmin.click("nav.sidenav >> text=用户管理")
    sysadmin.fill("#nu-username", "zhangwei")
    sysadmin.fill("#nu-name", "张伟")
    sysadmin.check("input[name=departments][value='Z109/CWK']")
    sysadmin.click("button:has-text('新建用户')")
    assert "已新建用户“张伟”" in sysadmin.locator(".alert.ok").inner_text()
    initial = sysadmin.locator("#secret-value").inner_text().strip()
    assert len(initial) >= 16
    assert sysadmin.locator("tr#user-zhangwei").inner_text().count("待改密码") == 1
    shot(sysadmin, "16-users")
    sysadmin.click("nav.sidenav >> text=机构管理")
    assert sysadmin.locator("table.departments tbody tr").count() == 3
    shot(sysadmin, "20-departments")

    # 角色与密级: the 安全保密管理员 tries two of the 三员, sees why not, then gives a proper role
    secadmin = as_user("secadmin")
    secadmin.click("nav.sidenav >> text=角色与密级")
    row = secadmin.locator("tr#roles-zhangwei")
    row.locator("label.check-chip:has-text('系统管理员') input").check()
    row.locator("label.check-chip:has-text('安全审计员') input").check()
    row.locator("button:has-text('保存角色')").click()
    assert "三员分立：系统管理员、安全审计员 不能由同一人兼任" in secadmin.locator(".alert.bad").inner_text()
    assert secadmin.locator("tr#roles-zhangwei.row-error").count() == 1
    shot(secadmin, "17-roles-conflict")
    row = secadmin.locator("tr#roles-zhangwei")
    row.locator("label.check-chip:has-text('系统管理员') input").uncheck()
    row.locator("label.check-chip:has-text('安全审计员') input").uncheck()
    row.locator("label.check-chip:has-text('兼职档案员') input").check()
    row.locator("button:has-text('保存角色')").click()
    assert "兼职档案员" in secadmin.locator(".alert.ok").inner_text()
    secadmin.locator("tr#roles-zhangwei select[name=clearance]").select_option("内部")
    secadmin.locator("tr#roles-zhangwei button:has-text('设置')").click()
    assert "密级设为“内部”" in secadmin.locator(".alert.ok").inner_text()
    secadmin.click("nav.sidenav >> text=权限矩阵")
    assert secadmin.locator("table.matrix tbody tr").count() == len(ACTION_LABELS)
    assert secadmin.locator("table.matrix thead .three-mark").count() == 3
    shot(secadmin, "18-matrix")

    # 接口令牌: shown once, with a copy button; then revoked
    sysadmin.click("nav.sidenav >> text=接口令牌")
    sysadmin.fill("#t-name", "OA 系统推送")
    sysadmin.select_option("#t-user", "zhangwei")
    sysadmin.check("input[name=categories][value=WS]")
    sysadmin.check("input[name=departments][value=CWK]")
    sysadmin.fill("#t-days", "180")
    sysadmin.click("button:has-text('签发令牌')")
    token = sysadmin.locator("#secret-value").inner_text().strip()
    assert token.startswith("dgn_") and "只显示这一次" in sysadmin.locator(".secret-box").inner_text()
    sysadmin.click("button.copy-btn")
    shot(sysadmin, "19-tokens")
    me = sysadmin.request.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status == 200 and me.json()["username"] == "zhangwei"
    sysadmin.goto("/admin/tokens")
    assert token not in sysadmin.content()
    sysadmin.click("tr:has-text('OA 系统推送') button:has-text('吊销')")
    assert "已吊销" in sysadmin.locator(".alert.ok").inner_text()
    assert sysadmin.request.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status == 401

    # the new colleague logs in with the initial password and must change it first
    ctx = browser.new_context(base_url=server, locale="zh-CN", viewport={"width": 1440, "height": 900})
    try:
        pg = ctx.new_page()
        pg.goto("/login")
        pg.fill("#username", "zhangwei")
        pg.fill("#password", initial)
        pg.click("form.login-form button[type=submit]")
        pg.wait_for_url("**/password")
        assert "请先修改密码" in pg.locator(".alert.warn").inner_text()
        shot(pg, "24-change-password")
        pg.goto("/records")
        assert pg.url.endswith("/password")
        pg.fill("#old_password", initial)
        pg.fill("#new_password", "Caiwu#2026ke")
        pg.fill("#confirm", "Caiwu#2026ke")
        pg.click("button:has-text('修改密码')")
        assert "密码已修改" in pg.locator(".alert.ok").inner_text()
        pg.goto("/records")
        assert "/records" in pg.url and pg.locator("table.records tbody tr").count() >= 1
        depts = set(pg.locator("table.records tbody td:nth-child(1)").all_inner_texts())
        others = {c for c in depts if "-CWK-" not in c and c.strip() not in ("", "—", "未归档")}
        assert not others, others  # own department only
    finally:
        ctx.close()


def test_security_settings(as_user) -> None:  # type: ignore[no-untyped-def]
    """安全设置: the 安全保密管理员 edits (errors beside each field), the 系统管理员 only reads."""
    sec = as_user("secadmin")
    sec.click("nav.sidenav >> text=安全设置")
    sec.wait_for_url("**/admin/security")
    assert sec.locator("h1").inner_text() == "安全设置"
    assert sec.locator(".level-step .level-name").all_inner_texts() == ["公开", "内部", "秘密", "机密", "绝密"]
    assert sec.locator(".level-step.is-ceiling .level-name").inner_text() == "机密"
    assert sec.locator(".policy-row").count() == 7
    assert "允许 8–64" in sec.locator("#pp-min_length").inner_text()
    shot(sec, "25-security")

    sec.select_option("#ceiling-level", "公开")  # the demo holds records above 公开
    sec.click("button:has-text('保存最高密级')")
    assert "不能把最高密级降到“公开”" in sec.locator("#ceiling-error").inner_text()
    assert sec.locator(".level-step.is-ceiling .level-name").inner_text() == "机密"
    shot(sec, "26-security-ceiling-refused")

    sec.fill("#pp-in-min_length", "4")
    sec.fill("#pp-in-lockout_minutes", "0")
    sec.click("button:has-text('保存策略')")
    assert "有 2 项不符合要求" in sec.locator(".alert.bad").inner_text()
    assert "应为 8–64 之间的整数" in sec.locator("#pp-min_length .field-error").inner_text()
    assert "应为 1–1440 之间的整数" in sec.locator("#pp-lockout_minutes .field-error").inner_text()
    assert sec.locator(".policy-row.has-error").count() == 2
    shot(sec, "27-security-policy-errors")
    sec.fill("#pp-in-min_length", "10")
    sec.fill("#pp-in-lockout_minutes", "15")
    sec.fill("#pp-in-history", "6")
    sec.click("button:has-text('保存策略')")
    assert "不得重复最近几次密码 5 → 6" in sec.locator(".alert.ok").inner_text()
    assert sec.locator("#pp-in-history").input_value() == "6"

    sysadmin = as_user("sysadmin")
    sysadmin.goto("/admin/security")
    assert "只读" in sysadmin.locator(".lead").inner_text()
    assert sysadmin.locator("form[action='/admin/security/ceiling']").count() == 0
    assert sysadmin.locator("#pp-history td.num strong").inner_text() == "6"
    shot(sysadmin, "28-security-readonly")


# ---------------------------------------------------------------- 收集与整理


def _catalogue_xlsx(rows: list[list[object]], header: list[str]) -> bytes:
    import io

    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(header)
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _zip(names: list[str]) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, n in enumerate(names):
            zf.writestr(n, b"%PDF-1.4\n% import " + str(i).encode() + b"\n%%EOF\n")
    return buf.getvalue()


def test_import_dry_run_then_live_progress(as_user, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A clerk imports a catalogue: a dry run names the bad row and the stray file; the import's page follows
    its progress (one row a batch, slowed down so that the polling is seen) and ends with the counts."""
    from dangan.services import ingest

    real_batch = ingest.ingest_batch

    def slow_batch(app, actor, items, *, batch_size=500, on_item=None, progress=None):  # type: ignore[no-untyped-def]
        def step(rep):  # type: ignore[no-untyped-def]
            if progress:
                progress(rep)
            time.sleep(0.4)
        return real_batch(app, actor, items, batch_size=1, on_item=on_item, progress=step)

    monkeypatch.setattr(ingest, "ingest_batch", slow_batch)
    header = ["序号", "文号", "责任者", "题名", "日期", "年度", "保管期限", "密级", "页数", "文件名", "承办人"]
    rows = [[i, f"示办发〔2025〕{i}号", "示范市人民政府办公室", f"关于做好第{i}项重点工作的通知", f"2025-04-{i:02d}", 2025,
             "定期30年", "公开", 2, f"办发{i}.pdf", "王明"] for i in range(1, 7)]
    bad = [r[:] for r in rows]
    bad[2][5] = "二〇二五"  # 年度 not a number
    pdfs = [f"办发{i}.pdf" for i in range(1, 7)]

    pg = as_user("bgs")
    pg.click("nav.sidenav >> text=批量导入")
    pg.wait_for_url("**/import")
    assert pg.locator("h1").inner_text() == "批量导入"
    assert pg.locator("input[name=dry_run]").is_checked()
    assert pg.locator("input[name=state][value=filed]").count() == 0  # a clerk does not file on import
    with pg.expect_download() as dl:
        pg.click("#template-link")
    assert dl.value.suggested_filename == "归档文件目录模板-文书档案.xlsx"
    pg.set_input_files("input[name=catalogue]", files=[{"name": "2025年办公室归档文件目录.xlsx", "buffer": _catalogue_xlsx(bad, header),
                                                        "mimeType": "application/octet-stream"}])
    pg.set_input_files("input[name=files]", files=[{"name": "办公室电子文件.zip", "buffer": _zip(pdfs + ["多余的文件.pdf"]),
                                                    "mimeType": "application/zip"}])
    assert "2025年办公室归档文件目录.xlsx" in pg.locator(".file-chosen").first.inner_text()
    shot(pg, "29-import")
    pg.click("button:has-text('开始')")
    pg.wait_for_url(re.compile(r"/import/jobs/[0-9a-f]+$"))
    pg.wait_for_selector("#job-result", timeout=30000)
    result = pg.locator("#job-result").inner_text()
    assert "1 行未通过校验" in result and "第 4 行" in result and "年度" in result
    assert "承办人" in result and "多余的文件.pdf" in result
    assert pg.locator("a:has-text('下载校验报告')").count() == 1
    shot(pg, "30-import-dry-run")

    pg.goto("/import")
    pg.set_input_files("input[name=catalogue]", files=[{"name": "2025年办公室归档文件目录.xlsx", "buffer": _catalogue_xlsx(rows, header),
                                                        "mimeType": "application/octet-stream"}])
    pg.set_input_files("input[name=files]", files=[{"name": "办公室电子文件.zip", "buffer": _zip(pdfs), "mimeType": "application/zip"}])
    pg.uncheck("input[name=dry_run]")
    pg.click("button:has-text('开始')")
    pg.wait_for_url(re.compile(r"/import/jobs/[0-9a-f]+$"))
    url = pg.url
    assert pg.locator("#capture-job").get_attribute("data-state") == "running"
    # the counts move while the page stays put (polled from /api/v1/jobs/{id})
    pg.wait_for_function("() => { const n = parseInt(document.getElementById('job-processed').textContent, 10);"
                         " return n >= 2 && n < 6; }", timeout=15000)
    assert pg.url == url and pg.locator("#job-state").inner_text() == "进行中"
    assert int(pg.locator("#job-progress").get_attribute("value") or 0) > 0 or pg.evaluate(
        "document.getElementById('job-progress').value") > 0
    shot(pg, "31-import-progress")
    pg.wait_for_selector("#job-result", timeout=30000)
    assert "新增 6 件，已存在 0 件，失败 0 行" in pg.locator("#job-result").inner_text()
    assert pg.locator("#job-state").inner_text() == "已完成"
    assert pg.locator("#job-created").inner_text() == "6"
    shot(pg, "32-import-done")
    pg.goto("/import")
    assert pg.locator("table.jobs tbody tr").count() == 2


def test_review_accepts_two_records(as_user) -> None:  # type: ignore[no-untyped-def]
    pg = as_user("dangan")
    pg.click("nav.sidenav >> text=接收归档")
    pg.wait_for_url("**/review")
    rows = pg.locator("table.review tbody tr")
    before = rows.count()
    assert before >= 2
    assert "文书档案" in pg.locator(".review-group h2").first.inner_text()
    shot(pg, "33-review")
    # in the first group holding two records or more: move the second up, then accept the first two
    groups = pg.locator(".review-group")
    gi = next(i for i in range(groups.count()) if groups.nth(i).locator("tbody tr").count() >= 2)

    def group():  # type: ignore[no-untyped-def]
        return pg.locator(".review-group").nth(gi)

    second = group().locator("tbody tr").nth(1)
    moved = second.get_attribute("id")
    second.locator("button[title='上移']").click()
    pg.wait_for_url(re.compile(r"/review\?done=order"))
    assert group().locator("tbody tr").first.get_attribute("id") == moved
    titles = [group().locator("tbody tr").nth(i).locator("td.title-cell a").inner_text() for i in range(2)]
    for i in range(2):
        group().locator("tbody tr").nth(i).locator("input[name=ids]").check()
    assert pg.locator("#selected-count").inner_text() == "已选 2 件"
    pg.click("#accept-btn")  # the confirm dialog is accepted
    pg.wait_for_selector("#outcome")
    out = pg.locator("#outcome").inner_text()
    assert "已接收 2 件" in out and all(t in out for t in titles)
    codes = pg.locator("#outcome table td.mono").all_inner_texts()
    assert len(codes) == 2 and all(re.fullmatch(r"Z109-WS·2025-\S+-\d{4}", c.strip()) for c in codes), codes
    assert pg.locator("table.review tbody tr").count() == before - 2
    shot(pg, "34-review-accepted")

    # the demo's record returned to its department: the clerk sees why
    listed = pg.request.get("/api/v1/records", params={"fonds": "Z109", "category": "WS", "state": "pre_filing",
                                                        "limit": 200}).json()["items"]
    back = next(r for r in listed if r["return_reason"])
    clerk = as_user({"BGS": "bgs", "CWK": "cwk"}.get(back["department_code"], "dangan"))
    clerk.goto(f"/records/{back['id']}")
    assert clerk.locator(".alert.returned").inner_text().startswith("退回原因：" + back["return_reason"])
    assert clerk.locator("form[action$='/submit'] button", has_text="提交归档").count() == 1  # and may hand it in again
    shot(clerk, "45-record-returned")


def test_plans_and_dashboard_reminder(as_user) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    pg = as_user("dangan")
    pg.click("nav.sidenav >> text=归档计划")
    pg.wait_for_url("**/plans")
    today = dt.date.today()
    for dept, year, deadline, expected in (("BGS", "2024", (today + dt.timedelta(days=18)).isoformat(), "20"),
                                           ("CWK", "2024", (today - dt.timedelta(days=9)).isoformat(), "12"),
                                           ("JJK", "2023", (today + dt.timedelta(days=120)).isoformat(), "")):
        pg.select_option("#pl-department", dept)
        pg.select_option("#pl-category", "WS")
        pg.fill("#pl-year", year)
        pg.fill("#pl-deadline", deadline)
        pg.fill("#pl-expected", expected)
        pg.click("button:has-text('制定计划')")
        pg.wait_for_url("**/plans?done=plan_created")
    # a mistake is shown beside its field
    pg.select_option("#pl-department", "BGS")
    pg.select_option("#pl-category", "WS")
    pg.fill("#pl-year", "去年")
    pg.fill("#pl-deadline", "6月底")
    pg.click("button:has-text('制定计划')")
    assert "年度应为四位数字" in pg.locator(".field.has-error", has=pg.locator("#pl-year")).inner_text()
    assert "截止日期应写作" in pg.locator(".field.has-error", has=pg.locator("#pl-deadline")).inner_text()
    shot(pg, "35-plans-error")
    pg.goto("/plans")
    rows = pg.locator("table.plans tbody tr")
    assert rows.count() >= 3  # the demo's plans and these three
    statuses = [c.split("plan-", 1)[1] for c in (rows.nth(i).get_attribute("class") for i in range(rows.count()))]
    assert statuses == sorted(statuses, key=["overdue", "due_soon", "open", "complete"].index)  # overdue first
    assert pg.locator("tr.plan-overdue .status-overdue", has_text="已逾期 9 天").count() == 1
    assert pg.locator("tr.plan-due_soon .status-due_soon", has_text="还剩 18 天").count() == 1
    shot(pg, "36-plans")

    pg.click("nav.sidenav >> text=首页")
    items = pg.locator("#reminders li")
    texts = items.all_inner_texts()
    assert any("已逾期 9 天" in t and "财务科" in t for t in texts) and any("还剩 18 天" in t for t in texts)
    overdue = [i for i, t in enumerate(texts) if "已逾期" in t]
    assert overdue == list(range(len(overdue)))  # overdue first
    color = items.first.locator(".status-overdue").evaluate("e => getComputedStyle(e).color")
    assert color == "rgb(166, 27, 27)"  # red
    assert "待接收归档" in pg.locator("#todo-review").inner_text()
    shot(pg, "37-home-reminders")

    clerk = as_user("bgs")
    texts = clerk.locator("#reminders li").all_inner_texts()
    assert texts and all("办公室" in t for t in texts)  # their department's plans only
    assert clerk.locator("#todo-review").count() == 0
    clerk.click("nav.sidenav >> text=归档计划")
    assert clerk.locator("#new-plan").count() == 0 and clerk.locator("table.plans button").count() == 0
    assert all(t.startswith("办公室") for t in clerk.locator("table.plans tbody td:first-child").all_inner_texts())
    shot(clerk, "38-plans-clerk")


def test_schedule_catalogue_suggestion_and_outputs(as_user) -> None:  # type: ignore[no-untyped-def]
    pg = as_user("dangan")
    # 著录: the schedule suggests, the user decides
    pg.goto("/records/new")
    assert pg.locator("#retention-suggest").is_hidden()
    pg.select_option("#f-retention_period", "D10")
    pg.fill("#f-title", "关于张三同志任职的通知")
    pg.wait_for_selector("#retention-suggest:not([hidden])")
    text = pg.locator("#retention-suggest").inner_text()
    assert pg.locator("#retention-suggest .suggest-text").inner_text() == "建议：永久"
    assert "（依据：本机关机构演变、人事任免等文件材料" in text and "匹配：任职" in text
    assert pg.input_value("#f-retention_period") == "D10"  # not overwritten
    shot(pg, "39-new-record-suggestion")
    pg.click("#suggest-apply")
    assert pg.input_value("#f-retention_period") == "Y" and pg.locator(".suggest-done").is_visible()

    pg.click("nav.sidenav >> text=保管期限表")
    pg.wait_for_url("**/schedule")
    n = pg.locator("tr.rule-row").count()
    pg.fill("tr.blank-row textarea[name^=item_]", "本机关印发的简报")
    pg.click("#add-rule")
    assert pg.locator("tr.rule-row").count() == n + 1
    pg.locator("tr.blank-row >> nth=0 >> textarea[name^=keywords_]").fill("简报、信息专报")
    pg.click("button:has-text('保存保管期限表')")
    assert pg.locator(".alert.bad").is_visible()  # the new rule has no 保管期限
    assert pg.locator("td.has-error .field-error").count() == 1
    shot(pg, "40-schedule-error")
    pg.locator("tr.row-error select").select_option("D10")
    pg.click("button:has-text('保存保管期限表')")
    assert "保管期限表已保存" in pg.locator(".alert.ok").inner_text()
    assert pg.locator("textarea:text-is('本机关印发的简报')").count() == 1
    shot(pg, "41-schedule")

    pg.click("nav.sidenav >> text=归档文件目录")
    pg.select_option("select[name=category]", "WS")
    pg.wait_for_url("**category=WS*")
    pg.select_option("select[name=year]", "2022")
    pg.wait_for_url("**year=2022*")
    assert pg.locator("table.catalogue-preview tbody tr").count() >= 1
    with pg.expect_download() as dl:
        pg.click("#download-xlsx")
    assert dl.value.suggested_filename.startswith("归档文件目录") and dl.value.suggested_filename.endswith(".xlsx")
    shot(pg, "42-catalogue")

    pg.click("table.catalogue-preview tbody tr:first-child td.title-cell a")
    assert pg.locator("section.outputs a:has-text('归档章（PNG）')").count() == 1
    assert pg.locator("table.files a:has-text('加盖归档章的副本')").count() >= 1
    png = pg.request.get(pg.locator("section.outputs a:has-text('归档章（PNG）')").get_attribute("href"))
    assert png.status == 200 and png.body()[:4] == b"\x89PNG"
    shot(pg, "43-record-outputs")
    pg.goto("/records?fonds=Z109&category=KU&level=volume")  # a 案卷 (other tests of the module add 卷内 items)
    pg.click("table.records tbody tr:first-child td.title-cell a")
    assert pg.locator("section.outputs a", has_text="案卷封面").count() == 1
    shot(pg, "44-volume-outputs")
