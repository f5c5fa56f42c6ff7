"""Attacks on the web and API faces: IDOR, tokens out of date or scope, CSRF, brute force, XSS, SQL
metacharacters, open redirects, cookie flags, forced password change, idle sessions, 三员 conflicts."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from typing import Any
from urllib.parse import quote, urlsplit

import openpyxl
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from dangan.db.models import ApiToken, LoginSession, SystemSetting
from dangan.services import identity as idn
from dangan.services import prefiling, schedule
from dangan.services.audit import list_events
from dangan.services.context import Actor, Dangan
from dangan.services.files import NewFile
from dangan.services.fonds import create_department
from dangan.services.records import RecordInput, create_record
from dangan.web.app import create_app
from dangan.web.deps import SESSION_COOKIE, safe_next
from test_api import PW, add_user, session_client

API = "/api/v1"
BASE = {"year": 2024, "retention_period": "D30", "responsible": "示范市人民政府办公室", "date": "2024-05-06"}
PDF = b"%PDF-1.4\n% security test\n%%EOF\n"
XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"
RAW_XSS = ("<script>alert(1)", "<img src=x", "<svg onload")


def rec(app: Dangan, title: str, level: str = "公开", dept: str = "BGS", category: str = "WS", state: str = "filed",
        file_name: str | None = None, **meta: Any) -> dict[str, Any]:
    m = {**BASE, "title": title, "security_level": level, **meta}
    if level in ("秘密", "机密"):
        m["secrecy_period"] = "10年"
    files = [NewFile(file_name or f"{title}.pdf", io.BytesIO(PDF + title.encode()))]
    return create_record(app, Actor.system(), RecordInput("Z109", category, m, department=dept, state=state), files)


@pytest.fixture
def web(app: Dangan) -> Any:
    return create_app(app)


def login_form(c: TestClient) -> str:
    """The login page's CSRF token (kept in the dangan_csrf cookie before login)."""
    html = c.get("/login").text
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]


def login(c: TestClient, username: str, password: str = PW, next_url: str = "/") -> Any:
    return c.post("/login", data={"username": username, "password": password, "next": next_url,
                                  "csrf_token": login_form(c)}, follow_redirects=False)


# ---------------------------------------------------------------- IDOR


def test_guessing_record_and_file_ids_answers_like_missing_ones(any_app: Dangan) -> None:
    app, web = any_app, create_app(any_app)
    ids = [rec(app, f"文件{i}", level)["id"] for i, level in enumerate(["公开", "秘密", "公开", "机密", "内部"])]
    cwk = rec(app, "财务科内部文件", "内部", dept="CWK")
    add_user(app, "reader", ["reader"], "公开")
    add_user(app, "clerk", ["clerk"], "内部", ["BGS"])
    for who, expect_visible in (("reader", 2), ("clerk", 3)):
        c = session_client(web, app, who)
        visible = 0
        bodies = set()
        for rid in range(1, max(ids + [cwk["id"]]) + 4):  # every id, hidden or missing
            r = c.get(f"{API}/records/{rid}")
            if r.status_code == 200:
                visible += 1
                continue
            assert r.status_code == 404, (who, rid, r.text)
            bodies.add(json.dumps(r.json(), ensure_ascii=False).replace(str(rid), "N"))
            page = c.get(f"/records/{rid}")
            assert page.status_code == 404 and f"档案 {rid} 不存在" in page.text
            for path in (f"{API}/records/{rid}/files", f"{API}/records/{rid}/submit"):
                r2 = c.request("GET" if path.endswith("files") else "POST", path)
                assert r2.status_code == 404, path
        assert visible == expect_visible == c.get(f"{API}/records").json()["total"]
        assert len(bodies) == 1, f"{who}: hidden and missing records answer differently: {bodies}"
        file_bodies = set()
        for fid in range(1, 12):
            r = c.get(f"{API}/files/{fid}/content")
            if r.status_code == 403:  # a file of a visible record: the original needs a grant (NO_GRANT)
                assert r.json()["error"]["code"] == "NO_GRANT"
            elif r.status_code != 200:
                assert r.status_code == 404
                file_bodies.add(json.dumps(r.json(), ensure_ascii=False).replace(str(fid), "N"))
        assert len(file_bodies) == 1
    denied = [e for e in list_events(app, Actor.system(), object_type="record", audit_the_view=False)
              if e["outcome"] == "denied"]
    assert denied, "guessing hidden records is visible to the 安全审计员"


# ---------------------------------------------------------------- API tokens


def test_expired_revoked_unknown_and_malformed_tokens_get_401(app: Dangan, web: Any) -> None:
    add_user(app, "oa", ["clerk"], "内部", ["BGS"], system=True)
    sysop = Actor.system()
    good = idn.create_token(app, sysop, "有效", "oa", actions=["record.read"])["token"]
    expired = idn.create_token(app, sysop, "过期", "oa", actions=["record.read"], expires_days=1)
    revoked = idn.create_token(app, sysop, "吊销", "oa", actions=["record.read"])
    with app.sessions() as s, s.begin():
        s.execute(update(ApiToken).where(ApiToken.id == expired["id"])
                  .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    idn.revoke_token(app, sysop, revoked["id"])
    c = TestClient(web)
    assert c.get(f"{API}/records", headers={"Authorization": f"Bearer {good}"}).status_code == 200
    for raw in (expired["token"], revoked["token"], "dgn_guessed", good + "x"):
        r = c.get(f"{API}/records", headers={"Authorization": f"Bearer {raw}"})
        assert r.status_code == 401, raw
        assert r.json()["error"]["code"] == "TOKEN_INVALID"
        assert "无效、已过期或已被吊销" in r.json()["error"]["message"]
        assert r.headers["www-authenticate"].startswith("Bearer")
    for header in ("Basic b2E6cHc=", "Bearer", "Bearer    ", good):
        r = c.get(f"{API}/records", headers={"Authorization": header})
        assert r.status_code == 401 and r.json()["error"]["code"] == "TOKEN_INVALID", header
    r = c.get(f"{API}/records")
    assert r.status_code == 401 and r.json()["error"]["code"] == "NOT_AUTHENTICATED"
    assert re.search(r"[\u4e00-\u9fff]", r.json()["error"]["message"])
    # disabling the account ends its tokens too
    idn.set_active(app, sysop, "oa", False)
    assert c.get(f"{API}/records", headers={"Authorization": f"Bearer {good}"}).status_code == 401
    reasons = {e["detail"].get("reason") for e in list_events(app, sysop, action="token.use", audit_the_view=False)}
    assert {"expired", "revoked", "unknown", "user_inactive"} <= reasons


def test_token_outside_its_scope(app: Dangan, web: Any) -> None:
    add_user(app, "oa", ["clerk"], "内部", ["BGS", "CWK"], system=True)
    raw = idn.create_token(app, Actor.system(), "OA", "oa", actions=["record.create", "record.read", "file.add"],
                           categories=["WS"], departments=["BGS"])["token"]
    c = TestClient(web, headers={"Authorization": f"Bearer {raw}"})
    body = {"fonds": "Z109", "category": "WS", "department": "BGS", "metadata": {**BASE, "title": "OA 推送"}}
    mine = c.post(f"{API}/records", json=body)
    assert mine.status_code == 201, mine.text
    for change in ({"department": "CWK"}, {"category": "LX"}, {"state": "filed"}):
        r = c.post(f"{API}/records", json={**body, **change})
        assert r.status_code == 403, (change, r.text)
        assert r.json()["error"]["code"] == "PERMISSION_DENIED"
    cwk = rec(app, "财务科的", "公开", dept="CWK")        # the account may, the token may not
    zp = rec(app, "办公室录像", "公开", category="LX")
    for rid in (cwk["id"], zp["id"]):
        assert c.get(f"{API}/records/{rid}").status_code == 404
    rid = mine.json()["id"]
    assert c.get(f"{API}/records/{rid}").status_code == 200
    r = c.patch(f"{API}/records/{rid}", json={"metadata": {"pages": 3}})  # record.update is not in the token
    assert r.status_code == 404
    assert c.post(f"{API}/records/{rid}/submit").status_code == 404
    assert c.get(f"{API}/users").status_code == 403
    assert c.get(f"{API}/audit/events").status_code == 403
    assert c.post(f"{API}/me/password", json={"old_password": "x", "new_password": "y"}).status_code == 403
    me = c.get(f"{API}/me").json()
    assert me["auth"] == "token" and "csrf_token" not in me
    assert set(me["grants"]) == {"record.create", "record.read", "file.add"}
    assert me["token_scope"] == {"actions": ["file.add", "record.create", "record.read"], "categories": ["WS"],
                                 "departments": ["BGS"]}
    # a token does not open the pages
    r = c.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"


# ---------------------------------------------------------------- CSRF


def test_csrf_missing_or_wrong_is_refused(app: Dangan, web: Any) -> None:
    rid = rec(app, "待提交", state="pre_filing")["id"]
    add_user(app, "head", ["records_head"], "机密", ["BGS"])
    c = session_client(web, app, "head", csrf_header=False)
    for data in ({}, {"csrf_token": "x" * 43}, {"csrf_token": ""}):
        r = c.post(f"/records/{rid}/submit", data=data)
        assert r.status_code == 403 and "安全校验未通过" in r.text
    # the API with the session cookie: unsafe methods need X-CSRF-Token
    r = c.post(f"{API}/records/{rid}/submit")
    assert r.status_code == 403 and r.json()["error"]["code"] == "CSRF_FAILED"
    r = c.post(f"{API}/records/{rid}/submit", headers={"X-CSRF-Token": "forged"})
    assert r.status_code == 403
    assert c.get(f"{API}/records/{rid}").json()["state"] == "pre_filing"
    token = c.get(f"{API}/me").json()["csrf_token"]
    assert token == c.csrf  # type: ignore[attr-defined]
    assert c.post(f"{API}/records/{rid}/submit", headers={"X-CSRF-Token": token}).json()["state"] == "pending"
    r = c.post(f"/records/{rid}/return", data={"csrf_token": token, "reason": "缺页"}, follow_redirects=False)
    assert r.status_code == 303
    # another user's token is not this session's token
    add_user(app, "other", ["records_head"], "机密")
    other = session_client(web, app, "other")
    r = c.post(f"/records/{rid}/submit", data={"csrf_token": other.csrf})  # type: ignore[attr-defined]
    assert r.status_code == 403
    # the login form and logout carry it too
    anon = TestClient(web)
    r = anon.post("/login", data={"username": "head", "password": PW})
    assert r.status_code == 403
    r = c.post("/logout", data={})
    assert r.status_code == 403
    assert c.get(f"{API}/me").status_code == 200  # still logged in
    # a bearer token is not a browser session: no CSRF needed
    add_user(app, "oa", ["clerk"], "内部", ["BGS"], system=True)
    raw = idn.create_token(app, Actor.system(), "OA", "oa", actions=["record.create"])["token"]
    r = TestClient(web).post(f"{API}/records", headers={"Authorization": f"Bearer {raw}"}, json={
        "fonds": "Z109", "category": "WS", "department": "BGS", "metadata": {**BASE, "title": "接口推送"}})
    assert r.status_code == 201


def test_cross_site_form_is_refused_even_with_a_token(app: Dangan, web: Any) -> None:
    rid = rec(app, "待提交", state="pre_filing")["id"]
    add_user(app, "head", ["records_head"], "机密", ["BGS"])
    c = session_client(web, app, "head")
    r = c.post(f"/records/{rid}/submit", data={"csrf_token": c.csrf},  # type: ignore[attr-defined]
               headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "CROSS_SITE_REQUEST"


# ---------------------------------------------------------------- login, lockout, sessions


def test_brute_force_locks_the_account(app: Dangan, web: Any) -> None:
    add_user(app, "gina", ["reader"])
    c = TestClient(web)
    for i in range(5):
        r = login(c, "gina", f"wrong-{i}")
        assert r.status_code == 200 and "用户名或密码错误" in r.text
        assert SESSION_COOKIE not in r.cookies
    r = login(c, "gina", PW)  # the right password, too late
    assert r.status_code == 200 and "账号已因多次登录失败被锁定" in r.text and "分钟后再试" in r.text
    assert SESSION_COOKIE not in c.cookies
    assert login(TestClient(web), "nobody", "x").text.count("用户名或密码错误") == 1  # unknown users look the same
    events = [(e["action"], e["outcome"]) for e in list_events(app, Actor.system(), object_type="user", audit_the_view=False)]
    assert ("login.lockout", "success") in events and ("login", "locked") in events
    # the 系统管理员 lifts it by resetting the password
    add_user(app, "sys", ["sysadmin"])
    admin = session_client(web, app, "sys")
    r = admin.post("/admin/users/gina/password", data={"csrf_token": admin.csrf})  # type: ignore[attr-defined]
    assert r.status_code == 200 and "解除锁定" in r.text
    temp = re.search(r'id="secret-value">([^<]+)<', r.text).group(1)  # type: ignore[union-attr]
    r = login(TestClient(web), "gina", temp)
    assert r.status_code == 303 and r.headers["location"] == "/password"


def test_session_cookie_flags_login_logout_and_idle_timeout(app: Dangan, web: Any) -> None:
    add_user(app, "ivy", ["reader"])
    c = TestClient(web)
    r = login(c, "ivy", next_url="/records?year=2024")
    assert r.status_code == 303 and r.headers["location"] == "/records?year=2024"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Path=/" in cookie and "Secure" not in cookie
    https = TestClient(web, base_url="https://testserver")
    assert "Secure" in login(https, "ivy").headers["set-cookie"]
    proxied = TestClient(web, headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in login(proxied, "ivy").headers["set-cookie"]
    # the header shows who is logged in
    home = c.get("/").text
    assert "IVY" in home and "利用者" in home and "密级 公开" in home and ">退出<" in home
    # logout ends the session; the old cookie no longer works
    old = c.cookies[SESSION_COOKIE]
    csrf = c.get(f"{API}/me").json()["csrf_token"]
    r = c.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?bye=1"
    assert f'{SESSION_COOKIE}=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]
    replay = TestClient(web)
    replay.cookies.set(SESSION_COOKIE, old)
    assert replay.get("/", follow_redirects=False).headers["location"].startswith("/login")
    assert replay.get(f"{API}/me").status_code == 401
    # idle too long: back to the login page, which says why
    idle = TestClient(web)
    login(idle, "ivy")
    with app.sessions() as s, s.begin():
        s.execute(update(LoginSession).values(last_seen_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)))
    r = idle.get(f"{API}/records")
    assert r.status_code == 401 and "超时" in r.json()["error"]["message"]
    idle2 = TestClient(web)
    login(idle2, "ivy")
    with app.sessions() as s, s.begin():
        s.execute(update(LoginSession).values(last_seen_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)))
    r = idle2.get("/records", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/records&expired=1"
    assert "Max-Age=0" in r.headers["set-cookie"] or f'{SESSION_COOKIE}=""' in r.headers["set-cookie"]
    assert "登录已超时（30 分钟无操作会自动退出）" in idle2.get(r.headers["location"]).text


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example", "/\\evil.example", "\\\\evil.example",
                                    "javascript:alert(1)", "/%0d%0aSet-Cookie:x=1", "http:/evil.example",
                                    " //evil.example", "/login?next=//evil.example", "evil.example"])
def test_next_cannot_leave_the_site(app: Dangan, web: Any, target: str) -> None:
    add_user(app, "ivy", ["reader"])
    c = TestClient(web)
    page = c.get("/login", params={"next": target}).text
    shown = re.search(r'name="next" value="([^"]*)"', page).group(1)  # type: ignore[union-attr]
    r = login(c, "ivy", next_url=target)
    for loc in (shown.replace("&amp;", "&"), r.headers["location"]):
        parts = urlsplit(loc)
        assert loc.startswith("/") and not loc.startswith("//") and "\\" not in loc, loc
        assert not parts.scheme and not parts.netloc, loc
    assert r.status_code == 303 and "\r" not in r.headers["location"] and "\n" not in r.headers["location"]


def test_open_redirect_from_an_unauthenticated_visit(app: Dangan, web: Any) -> None:
    assert safe_next("//evil.example") == "/" and safe_next("/records/1?x=//y") == "/records/1?x=//y"
    r = TestClient(web).get("//evil.example/records", follow_redirects=False)
    assert r.status_code in (303, 404) and not r.headers.get("location", "/").startswith("//")
    r = TestClient(web).get("/records", params={"q": "x"}, follow_redirects=False)
    assert r.headers["location"] == "/login?next=/records%3Fq%3Dx"


def test_forced_password_change(app: Dangan, web: Any) -> None:
    add_user(app, "frank", ["archivist"], "秘密", ["BGS"], must_change=True)
    c = TestClient(web)
    r = login(c, "frank", next_url="/records")
    assert r.headers["location"] == "/password"
    for url in ("/", "/records", "/records/new", "/fonds"):
        r = c.get(url, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/password", url
    r = c.get(f"{API}/records")
    assert r.status_code == 403 and r.json()["error"]["code"] == "PASSWORD_CHANGE_REQUIRED"
    me = c.get(f"{API}/me").json()
    assert me["must_change_password"] is True
    page = c.get("/password")
    assert page.status_code == 200 and "请先修改密码" in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = c.post("/password", data={"csrf_token": token, "old_password": PW, "new_password": "short", "confirm": "short"})
    assert r.status_code == 422 and "密码长度至少" in r.text
    r = c.post("/password", data={"csrf_token": token, "old_password": PW, "new_password": "Better#2026pw",
                                  "confirm": "Better#2026pw"})
    assert r.status_code == 200 and "密码已修改" in r.text
    assert c.get("/records").status_code == 200
    assert c.get(f"{API}/records").status_code == 200


# ---------------------------------------------------------------- XSS


def test_xss_payloads_are_escaped_on_every_page(app: Dangan, web: Any) -> None:
    sysop = Actor.system()
    create_department(app, sysop, "Z109", "XSS", XSS)
    r = rec(app, XSS, responsible='"><svg onload=alert(3)>', doc_number=XSS, file_name="<img src=x onerror=alert(4)>.pdf")
    add_user(app, "head", ["records_head"], "机密", ["BGS"])
    add_user(app, "sys", ["sysadmin"])
    add_user(app, "sec", ["secadmin"])
    add_user(app, "aud", ["auditor"])
    idn.create_user(app, sysop, "evil", XSS, PW, departments=["XSS"])
    idn.create_token(app, sysop, XSS, "evil", actions=["record.read"])
    with app.sessions() as s, s.begin():
        s.merge(SystemSetting(key="demo", value={"password": XSS, "accounts": [{"username": "evil", "name": XSS}]}))
    head, sys_, sec, aud = (session_client(web, app, u) for u in ("head", "sys", "sec", "aud"))
    aud.get(f"{API}/audit/events")  # the trail now holds the title, the file name and the user name
    # 收集与整理: a record waiting for acceptance, a plan, a schedule rule and an import job, all named with markup
    rec(app, XSS + "（待接收）", dept="XSS", state="pending", file_name="待接收.pdf")
    returned = rec(app, XSS + "（退回）", dept="XSS", state="pending", file_name="退回.pdf")
    prefiling.return_record(app, sysop, returned["id"], XSS)
    prefiling.create_plan(app, sysop, "Z109", "XSS", "WS", 2024, dt.date.today() + dt.timedelta(days=5), 3, XSS)
    schedule.set_schedule(app, sysop, "Z109", "WS", [{"item": XSS, "retention_period": "Y", "basis": XSS,
                                                      "keywords": ["<svg onload=alert(1)>"], "doc_types": ["<svg onload"]}])
    wb = openpyxl.Workbook()
    wb.active.append(["题名", "责任者", "日期", "年度", "保管期限", XSS])
    wb.active.append([XSS, XSS, "2024-01-02", "<svg onload=alert(5)>", "永久", XSS])
    buf = io.BytesIO()
    wb.save(buf)
    jr = head.post("/import", data={"target": "Z109/WS", "department": "XSS", "state": "pre_filing", "dry_run": "1",
                                    "csrf_token": head.csrf},  # type: ignore[attr-defined]
                   files={"catalogue": (XSS + ".xlsx", buf.getvalue(), "application/octet-stream")},
                   follow_redirects=False)
    assert jr.status_code == 303, jr.text
    web.state.jobs.join()
    pages = [(head, f"/records/{r['id']}"), (head, "/records"), (head, "/records?sort=newest"), (head, "/"),
             (head, f"/records?q={quote(XSS)}"), (head, "/fonds"), (head, "/records/new"),
             (head, "/import"), (head, jr.headers["location"]), (head, "/review"), (head, "/plans"),
             (head, "/schedule?category=WS"), (head, "/catalogue?category=WS"), (head, f"/records/{returned['id']}"),
             (sys_, "/admin/users"), (sys_, "/admin/tokens"), (sys_, "/admin/departments"), (sys_, "/admin/matrix"),
             (sec, "/admin/roles"), (aud, "/audit"), (aud, f"/audit?object_id={quote(XSS)}&actor={quote(XSS)}"),
             (TestClient(web), "/login"), (TestClient(web), f"/login?next={quote(XSS)}")]
    for c, url in pages:
        resp = c.get(url)
        assert resp.status_code == 200, (url, resp.status_code)
        html = resp.text
        for raw in RAW_XSS:
            assert raw not in html, (url, raw)
    job = head.get(jr.headers["location"]).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in job and "第 2 行" in job  # the file name and the failed row
    assert "退回原因：&lt;script&gt;" in head.get(f"/records/{returned['id']}").text
    for url in ("/review", "/plans", "/schedule?category=WS", "/", "/import"):
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in head.get(url).text, url  # shown, as text
    detail = head.get(f"/records/{r['id']}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail and "&lt;img src=x onerror=alert(4)&gt;.pdf" in detail
    assert "&lt;script&gt;" in sys_.get("/admin/users").text and "&lt;script&gt;" in sys_.get("/admin/tokens").text
    # the audit export does not hand spreadsheets a formula either
    rows = list(csv.reader(io.StringIO(aud.get("/audit/export", params={"format": "csv"}).text.lstrip("\ufeff"))))
    assert rows[0][0] == "序号" and len(rows) > 5
    r = TestClient(web).post("/login", data={"username": "=cmd|' /C calc'!A0", "password": "x",
                                             "csrf_token": login_form(TestClient(web))})
    bad = TestClient(web)
    bad.post("/login", data={"username": "=HYPERLINK(\"http://evil\")", "password": "x", "csrf_token": login_form(bad)})
    rows = list(csv.reader(io.StringIO(aud.get("/audit/export", params={"format": "csv"}).text.lstrip("\ufeff"))))
    actors = [row[2] for row in rows[1:]]
    assert "'=HYPERLINK(\"http://evil\")" in actors and not any(a.startswith("=") for a in actors)


# ---------------------------------------------------------------- SQL metacharacters


SQLI = ["' OR '1'='1", "1' OR 1=1 --", "\"; DROP TABLE records; --", "%", "_", "\\", "%' OR '%'='", "' UNION SELECT "
        "username, password_hash FROM users --", "1; DELETE FROM audit_events", "\x00", "ＯＲ １＝１", "*/ OR /*"]


def test_sql_metacharacters_in_every_record_filter(any_app: Dangan) -> None:
    app, web = any_app, create_app(any_app)
    for i, level in enumerate(["公开", "公开", "内部", "秘密"]):
        rec(app, f"通知{i}", level)
    add_user(app, "reader", ["reader"], "公开")
    c = session_client(web, app, "reader")
    base = c.get(f"{API}/records").json()["total"]
    assert base == 2
    params = ["fonds", "category", "level", "year", "retention_period", "department", "state", "parent_id", "q",
              "security_level", "cursor", "sort", "limit"]
    for p in params:
        for payload in SQLI:
            extra = {"fonds": "Z109"} if p in ("category", "department") else {}
            r = c.get(f"{API}/records", params={**extra, p: payload})
            assert r.status_code in (200, 400, 404, 422), (p, payload, r.status_code, r.text)
            if r.status_code == 200:
                total = r.json()["total"]
                assert total <= base, (p, payload, total)
                if p in ("q", "level", "security_level"):
                    assert total == 0, (p, payload, total)
            else:
                assert r.json()["error"]["code"] != "INTERNAL_ERROR"
            f = c.get(f"{API}/records/facets", params={**extra, p: payload})
            assert f.status_code in (200, 400, 404, 422), (p, payload, f.status_code)
    for payload in SQLI:
        page = c.get("/records", params={"fonds": "Z109", "q": payload, "department": payload})
        assert page.status_code in (200, 400, 404, 422), payload
    assert c.get(f"{API}/records").json()["total"] == base  # nothing was changed or dropped


# ---------------------------------------------------------------- administration pages


def test_three_admin_conflict_is_shown_clearly(app: Dangan, web: Any) -> None:
    add_user(app, "sec", ["secadmin"])
    add_user(app, "alice", ["reader"])
    c = session_client(web, app, "sec")
    r = c.post("/admin/roles/alice", data={"csrf_token": c.csrf, "roles": ["sysadmin", "auditor"]})  # type: ignore[attr-defined]
    assert r.status_code == 422
    assert "未保存：三员分立：系统管理员、安全审计员 不能由同一人兼任" in r.text
    row = re.search(r'<tr id="roles-alice".*?</tr>', r.text, re.S).group(0)  # type: ignore[union-attr]
    assert "row-error" in row and "三员分立" in row
    assert c.get(f"{API}/users/alice").json()["roles"] == ["reader"]
    r = c.put(f"{API}/users/alice/roles", json={"roles": ["secadmin", "auditor"]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "ROLE_CONFLICT"
    r = c.put(f"{API}/users/sec/roles", json={"roles": ["secadmin", "reader"]})
    assert r.status_code == 403 and r.json()["error"]["code"] == "SELF_ASSIGNMENT"
    r = c.post("/admin/roles/alice/clearance", data={"csrf_token": c.csrf, "clearance": "绝密"})  # type: ignore[attr-defined]
    assert r.status_code == 422 and "最高密级" in r.text
    r = c.post("/admin/roles/alice", data={"csrf_token": c.csrf, "roles": ["archivist", "auditor"]})  # type: ignore[attr-defined]
    assert r.status_code == 200 and "已设置" in r.text
    events = list_events(app, Actor.system(), action="role.assign", audit_the_view=False)
    assert [e["outcome"] for e in events[:3]] == ["success", "failure", "failure"] or any(
        e["outcome"] == "failure" for e in events)


def test_token_is_shown_once_and_works(app: Dangan, web: Any) -> None:
    add_user(app, "sys", ["sysadmin"])
    add_user(app, "oa", ["clerk"], "内部", ["BGS"], system=True)
    c = session_client(web, app, "sys")
    r = c.post("/admin/tokens", data={"csrf_token": c.csrf, "name": "OA 推送", "username": "oa",  # type: ignore[attr-defined]
                                      "actions": ["record.create", "file.add"], "categories": ["WS"],
                                      "departments": ["BGS"], "expires_days": "30"})
    assert r.status_code == 200 and "只显示这一次" in r.text and r.headers["cache-control"] == "no-store"
    raw = re.search(r'id="secret-value">(dgn_[^<]+)<', r.text).group(1)  # type: ignore[union-attr]
    listing = c.get("/admin/tokens").text
    assert raw not in listing and raw[:10] in listing and "有效" in listing
    assert raw not in json.dumps(c.get(f"{API}/tokens").json())
    tok = TestClient(web, headers={"Authorization": f"Bearer {raw}"})
    assert tok.get(f"{API}/me").json()["username"] == "oa"
    tid = c.get(f"{API}/tokens").json()[0]["id"]
    r = c.post(f"/admin/tokens/{tid}/revoke", data={"csrf_token": c.csrf})  # type: ignore[attr-defined]
    assert "已吊销" in r.text
    assert tok.get(f"{API}/me").status_code == 401


def test_user_admin_creates_with_generated_password_shown_once(app: Dangan, web: Any) -> None:
    add_user(app, "sys", ["sysadmin"])
    c = session_client(web, app, "sys")
    r = c.post("/admin/users", data={"csrf_token": c.csrf, "username": "newbie", "display_name": "新人",  # type: ignore[attr-defined]
                                     "departments": ["Z109/BGS"]})
    assert r.status_code == 200 and "已新建用户" in r.text
    pw = re.search(r'id="secret-value">([^<]+)<', r.text).group(1)  # type: ignore[union-attr]
    assert pw not in c.get("/admin/users").text
    u = c.get(f"{API}/users/newbie").json()
    assert u["must_change_password"] and u["departments"] == [{"code": "BGS", "name": "办公室"}] and u["roles"] == []
    r = c.post("/admin/users", data={"csrf_token": c.csrf, "username": "1bad", "display_name": ""})  # type: ignore[attr-defined]
    assert r.status_code == 422 and "用户名为 2–64 位" in r.text and 'value="1bad"' in r.text
    r = c.post("/admin/users/newbie/active", data={"csrf_token": c.csrf, "active": "0"})  # type: ignore[attr-defined]
    assert "已停用" in r.text
    assert login(TestClient(web), "newbie", pw).status_code == 200  # disabled: the login form again


def test_audit_export_is_audited_and_for_the_auditor_only(app: Dangan, web: Any) -> None:
    rec(app, "导出测试")
    add_user(app, "aud", ["auditor"])
    add_user(app, "sys", ["sysadmin"])
    aud, sys_ = session_client(web, app, "aud"), session_client(web, app, "sys")
    r = aud.get(f"{API}/audit/export", params={"format": "json", "action": "record.create"})
    assert r.status_code == 200 and r.headers["content-disposition"].startswith("attachment; filename=\"audit-")
    body = r.json()
    assert body["exported_by"] == "aud" and body["filters"] == {"action": "record.create"}
    assert body["events"] and all(e["action"] == "record.create" and len(e["hash"]) == 64 for e in body["events"])
    assert sys_.get(f"{API}/audit/export").status_code == 403
    assert sys_.get("/audit/export").status_code == 403
    exports = list_events(app, Actor.system(), action="audit.export", audit_the_view=False)
    assert exports[0]["actor"] == "aud" and exports[0]["detail"]["format"] == "json"
    page = aud.get("/audit", params={"action": "audit.export"}).text
    assert "导出审计日志" in page
    denied = list_events(app, Actor.system(), action="audit.read", audit_the_view=False)
    assert any(e["actor"] == "sys" and e["outcome"] == "denied" for e in denied)


def test_login_page_lists_demo_accounts_only_in_a_demo_archive(app: Dangan, web: Any) -> None:
    page = TestClient(web).get("/login").text
    assert "演示账号" not in page
    with app.sessions() as s, s.begin():
        s.merge(SystemSetting(key="demo", value={"password": "Dangan@2026", "accounts": [{"username": "reader", "name": "x"}]}))
    add_user(app, "reader", ["reader"])
    page = TestClient(web).get("/login").text
    assert "演示账号" in page and "Dangan@2026" in page and 'data-username="reader"' in page


def test_record_page_shows_no_audit_trail_and_only_allowed_actions(app: Dangan, web: Any) -> None:
    r = rec(app, "待归档的通知", state="pending")
    add_user(app, "reader", ["reader"])
    add_user(app, "clerk", ["clerk"], "内部", ["BGS"])
    add_user(app, "arch", ["archivist"], "秘密", ["BGS"])
    reader, clerk, arch = (session_client(web, app, u) for u in ("reader", "clerk", "arch"))
    for c in (reader, clerk, arch):
        html = c.get(f"/records/{r['id']}").text
        assert "操作历史" not in html and "table compact history" not in html
        assert "管理信息" in html and "由安全审计员查阅" in html
    assert "下载</a>" not in reader.get(f"/records/{r['id']}").text and "不可下载" in reader.get(f"/records/{r['id']}").text
    rh = reader.get(f"/records/{r['id']}").text
    assert "归档（赋予档号）" not in rh and "上传" not in rh
    ch = clerk.get(f"/records/{r['id']}").text
    assert "归档（赋予档号）" not in ch and "下载</a>" in ch
    ah = arch.get(f"/records/{r['id']}").text
    assert "归档（赋予档号）" in ah and "退回" in ah
    nav = reader.get("/").text
    assert 'href="/records/new"' not in nav and 'href="/audit"' not in nav and 'href="/admin/users"' not in nav


def test_security_headers_and_no_store(app: Dangan, web: Any) -> None:
    add_user(app, "reader", ["reader"])
    c = session_client(web, app, "reader")
    for url in ("/", f"{API}/records", "/login"):
        h = c.get(url).headers
        assert h["x-frame-options"] == "DENY" and h["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in h["content-security-policy"] and h["cache-control"] == "no-store"
    assert "no-store" not in c.get("/static/app.css").headers.get("cache-control", "")


def test_nul_characters_are_refused_before_the_database(any_app: Dangan) -> None:
    """PostgreSQL refuses NUL in text: every face answers with a clear error, never a 500."""
    app, web = any_app, create_app(any_app)
    add_user(app, "sys", ["sysadmin"])
    c = session_client(web, app, "sys")
    r = c.post(f"{API}/users", json={"username": "nul", "display_name": "a\u0000b", "password": "Archive#2026x!"})
    assert r.status_code == 422 and r.json()["error"]["problems"][0]["field"] == "display_name"
    r = c.post(f"{API}/fonds/Z109/departments", json={"code": "NUL", "name": "a\u0000b"})
    assert r.status_code == 422
    r = c.post("/admin/users", data={"csrf_token": c.csrf, "username": "nul", "display_name": "a\x00b"})  # type: ignore[attr-defined]
    assert r.status_code == 422 and "控制字符" in r.text
    anon = TestClient(web)
    r = anon.post("/login", data={"username": "a\x00b", "password": "x", "csrf_token": login_form(anon)})
    assert r.status_code == 422
    assert c.get(f"{API}/records", params={"q": "a\x00"}).status_code == 400
    assert c.get(f"{API}/users").status_code == 200


def test_security_settings_page_and_api(app: Dangan, web: Any) -> None:
    """安全设置: the 三员 see it, only the 安全保密管理员 changes it; refusals carry codes, changes show and are audited."""
    add_user(app, "sec", ["secadmin"])
    add_user(app, "sys", ["sysadmin"])
    add_user(app, "aud", ["auditor"])
    add_user(app, "alice", ["archivist"], "机密")
    sec, sys_, aud = (session_client(web, app, u) for u in ("sec", "sys", "aud"))
    reader = session_client(web, app, "alice")

    # read-only for the 系统管理员 and the 安全审计员: no form, no way to post
    for c in (sys_, aud):
        page = c.get("/admin/security")
        assert page.status_code == 200 and "<h1>安全设置</h1>" in page.text and "只读" in page.text
        assert 'action="/admin/security/ceiling"' not in page.text and 'href="/admin/security"' in page.text
        assert "无操作自动退出（分钟）" in page.text and "8–64" in page.text
        assert c.get(f"{API}/security").json()["ceiling"] == "机密"
    assert reader.get("/admin/security").status_code == 403 and reader.get(f"{API}/security").status_code == 403
    r = sys_.post("/admin/security/ceiling", data={"csrf_token": sys_.csrf, "level": "绝密"})  # type: ignore[attr-defined]
    assert r.status_code == 403
    r = sys_.put(f"{API}/security/password-policy", json={"min_length": 12})
    assert r.status_code == 403 and r.json()["error"]["code"] == "PERMISSION_DENIED"
    bare = session_client(web, app, "sec", csrf_header=False)
    assert bare.post("/admin/security/ceiling", data={"level": "绝密"}).status_code == 403  # no CSRF token
    assert bare.post("/admin/security/ceiling", data={"level": "绝密", "csrf_token": "x" * 43}).status_code == 403

    page = sec.get("/admin/security").text
    levels = re.findall(r'<li class="level-step([^"]*)">\s*<span class="level-rank">\d</span>\s*<span class="level-name">([^<]+)<', page)
    assert [n for _, n in levels] == ["公开", "内部", "秘密", "机密", "绝密"]
    assert "is-ceiling" in levels[3][0] and "is-above" in levels[4][0] and "最高密级" in page
    assert 'action="/admin/security/ceiling"' in page and 'name="csrf_token"' in page
    for label in ("密码最短长度", "字符类别至少", "密码有效期（天，0 为不过期）", "不得重复最近几次密码", "连续失败几次锁定",
                  "锁定时长（分钟）", "无操作自动退出（分钟）"):
        assert label in page

    # the ceiling: refusals with their codes, shown on the page beside the form
    r = sec.put(f"{API}/security/ceiling", json={"level": "秘密"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "CEILING_BELOW_USERS"
    r = sec.put(f"{API}/security/ceiling", json={"level": "特级"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "NOT_IN_DOMAIN"
    rec(app, "机密的请示", "机密")
    r = sec.post("/admin/security/ceiling", data={"csrf_token": sec.csrf, "level": "秘密"})  # type: ignore[attr-defined]
    assert r.status_code == 422 and "CEILING_BELOW_HOLDINGS" in r.text
    err = re.search(r'<p class="field-error" id="ceiling-error">([^<]+)</p>', r.text).group(1)  # type: ignore[union-attr]
    assert "已有 1 件高于“秘密”的档案" in err
    assert sec.get(f"{API}/security").json()["ceiling"] == "机密"
    r = sec.post("/admin/security/ceiling", data={"csrf_token": sec.csrf, "level": "绝密"})  # type: ignore[attr-defined]
    assert r.status_code == 200 and "已将系统最高密级由“机密”改为“绝密”" in r.text
    assert aud.get(f"{API}/security").json()["ceiling"] == "绝密"
    assert "（超出上限）" not in sec.get("/admin/roles").text  # 绝密 may now be granted

    # the policy: field-by-field errors, the typed values kept, nothing saved
    r = sec.post("/admin/security/password-policy", data={"csrf_token": sec.csrf, "min_length": "4",  # type: ignore[attr-defined]
                                                          "history": "abc", "max_failures": "5"})
    assert r.status_code == 422 and "有 2 项不符合要求" in r.text
    row = re.search(r'<div class="policy-row has-error" id="pp-min_length">.*?</div>\s*</div>', r.text, re.S).group(0)  # type: ignore[union-attr]
    assert 'value="4"' in row and "应为 8–64 之间的整数" in row
    row = re.search(r'<div class="policy-row has-error" id="pp-history">.*?</div>\s*</div>', r.text, re.S).group(0)  # type: ignore[union-attr]
    assert 'value="abc"' in row and "应为 0–24 之间的整数" in row
    assert 'class="policy-row" id="pp-max_failures"' in r.text
    r = sec.put(f"{API}/security/password-policy", json={"min_length": 4, "max_failures": 99})
    assert r.status_code == 422
    assert {(p["field"], p["code"]) for p in r.json()["error"]["problems"]} == {("min_length", "OUT_OF_RANGE"),
                                                                               ("max_failures", "OUT_OF_RANGE")}
    assert sec.put(f"{API}/security/password-policy", json={"bogus": 1}).status_code == 422
    assert sec.get(f"{API}/security").json()["password_policy"]["min_length"] == 10

    r = sec.post("/admin/security/password-policy", data={"csrf_token": sec.csrf, "min_length": "14",  # type: ignore[attr-defined]
                                                          "max_failures": "5"})
    assert r.status_code == 200 and "已保存密码与会话策略：密码最短长度 10 → 14" in r.text
    assert 'id="pp-in-min_length" name="min_length" value="14"' in r.text
    r = sec.put(f"{API}/security/password-policy", json={"idle_timeout_minutes": 20})
    body = r.json()
    assert r.status_code == 200 and body["password_policy"]["idle_timeout_minutes"] == 20
    assert body["policy_limits"]["idle_timeout_minutes"] == {"min": 5, "max": 480}
    assert sys_.get(f"{API}/security").json()["password_policy"]["min_length"] == 14
    assert re.search(r'<td>密码最短长度</td><td class="num"><strong>14</strong> <span class="muted small">位</span></td>', sys_.get("/admin/security").text)
    r = sys_.post(f"{API}/users", json={"username": "leo", "display_name": "某某", "password": "Short#2026xy"})
    assert r.status_code == 422 and "至少 14 位" in r.json()["error"]["message"]

    # audited: each change with before and after, each refusal
    ceil = list_events(app, Actor.system(), action="security.ceiling", audit_the_view=False)
    ok = [e for e in ceil if e["outcome"] == "success"]
    assert len(ok) == 1 and ok[0]["actor"] == "sec"
    assert {e["actor"] for e in ceil if e["outcome"] == "failure"} == {"sec"}
    assert any(e["actor"] == "sys" and e["outcome"] == "denied" for e in
               list_events(app, Actor.system(), action="role.assign", audit_the_view=False))
    pol = list_events(app, Actor.system(), action="security.password_policy", audit_the_view=False)
    assert sorted(e["outcome"] for e in pol if e["actor"] == "sec") == ["failure", "failure", "success", "success"]
    assert any(e["actor"] == "sys" and e["outcome"] == "denied" for e in pol)
