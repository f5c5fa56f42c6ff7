"""The REST API (/api/v1) and the web pages, through FastAPI's TestClient against a fresh archive."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from typing import Any
from urllib.parse import quote

import anyio
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from dangan.db.models import Department, LoginSession, User, UserDepartment, UserRole
from dangan.demo.documents import make_pdf
from dangan.services.context import Dangan
from dangan.web.app import create_app
from dangan.web.deps import SESSION_COOKIE

API = "/api/v1"
PW = "Archive#2026x"
_HASHES: dict[str, str] = {}
GOOD = {"title": "关于做好2024年度档案归档工作的通知", "year": 2024, "retention_period": "Y",
        "responsible": "示范市人民政府办公室", "date": "2024-03-05", "doc_number": "示政办〔2024〕12号", "pages": 3}
PDF = make_pdf("接口测试", ["正文"])  # a real PDF: filing runs the 四性检测, which opens it


# ---------------------------------------------------------------- logged-in clients (shared with the other web tests)


def password_hash(password: str = PW) -> str:
    """argon2 costs ~0.2 s a hash: the test accounts share one, computed once per process."""
    if password not in _HASHES:
        from dangan.services.identity import _hasher

        _HASHES[password] = _hasher.hash(password)
    return _HASHES[password]


def add_user(app: Dangan, username: str, roles: tuple[str, ...] | list[str] = (), clearance: str = "公开",
             depts: tuple[str, ...] | list[str] = (), *, must_change: bool = False, system: bool = False) -> int:
    """An account written straight to the database (the identity service itself is tested in test_identity)."""
    with app.sessions() as s, s.begin():
        u = User(username=username, display_name=username.upper(), password_hash=password_hash(), clearance=clearance,
                 must_change_password=must_change, is_system_account=system)
        s.add(u)
        s.flush()
        for r in roles:
            s.add(UserRole(user_id=u.id, role_code=r, granted_by="test"))
        for code in depts:
            d = s.scalar(select(Department).where(Department.code == code))
            s.add(UserDepartment(user_id=u.id, department_id=d.id))
        return u.id


def open_session(app: Dangan, username: str) -> tuple[str, str]:
    """A login session for the user, as identity.login would start it: (cookie value, CSRF token)."""
    from dangan.services.identity import sha256_hex

    raw, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    with app.sessions() as s, s.begin():
        uid = s.scalar(select(User.id).where(User.username == username))
        s.add(LoginSession(id=sha256_hex(raw), user_id=uid, csrf_token=csrf))
    return raw, csrf


def session_client(web: Any, app: Dangan, username: str, *, csrf_header: bool = True) -> TestClient:
    """A client logged in as `username`; like a page script it repeats the CSRF token in X-CSRF-Token."""
    raw, token = open_session(app, username)
    c = TestClient(web, base_url="http://testserver", headers={"X-CSRF-Token": token} if csrf_header else {})
    c.cookies.set(SESSION_COOKIE, raw)
    c.csrf = token  # type: ignore[attr-defined]
    return c


@pytest.fixture
def web(app: Dangan) -> Any:
    return create_app(app)


@pytest.fixture
def client(web: Any, app: Dangan) -> TestClient:
    """The 档案部门负责人 (机密, 办公室): files, reads and changes records, manages fonds, runs fixity checks."""
    add_user(app, "head", ["records_head"], "机密", ["BGS"])
    return session_client(web, app, "head")


@pytest.fixture
def auditor(web: Any, app: Dangan) -> TestClient:
    """The 安全审计员: the only one who reads the audit trail."""
    add_user(app, "aud", ["auditor"])
    return session_client(web, app, "aud")


def new_record(client: TestClient, **over: Any) -> dict[str, Any]:
    body = {"fonds": "Z109", "category": "WS", "department": "BGS", "metadata": dict(GOOD)}
    body.update(over)
    r = client.post(f"{API}/records", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def total(client: TestClient) -> int:
    return client.get(f"{API}/records").json()["total"]


def blobs(app: Dangan) -> list[str]:
    return [o.key for o in app.store.iter_objects()]


def problem_codes(r: Any) -> dict[str, str]:
    return {p["field"]: p["code"] for p in r.json()["error"].get("problems", [])}


def csrf(client: TestClient) -> str:
    return client.csrf  # type: ignore[attr-defined,no-any-return]


# ---------------------------------------------------------------- 全宗、机构、门类


def test_fonds_departments_and_categories(client: TestClient) -> None:
    r = client.get(f"{API}/fonds")
    assert [f["code"] for f in r.json()] == ["Z109"]
    r = client.post(f"{API}/fonds", json={"code": "X013", "name": "示范县档案馆"})
    assert r.status_code == 201 and r.json()["code"] == "X013"
    r = client.post(f"{API}/fonds", json={"code": "X013", "name": "重复"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "FONDS_EXISTS"
    r = client.post(f"{API}/fonds", json={"code": "toolong!", "name": ""})
    assert r.status_code == 422
    assert problem_codes(r) == {"code": "PATTERN_MISMATCH", "name": "REQUIRED"}

    r = client.post(f"{API}/fonds/X013/departments", json={"code": "BGS", "name": "办公室"})
    assert r.status_code == 201
    assert [d["code"] for d in client.get(f"{API}/fonds/X013/departments").json()] == ["BGS"]
    r = client.post(f"{API}/fonds/X013/categories", json={"preset": "WS"})
    assert r.status_code == 201 and r.json()["arrangement"] == "item"
    r = client.post(f"{API}/fonds/X013/categories", json={"preset": "QQ"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "UNKNOWN_PRESET"

    show = client.get(f"{API}/fonds/Z109").json()
    assert [c["code"] for c in show["categories"]] == ["WS", "KU", "KJ", "ZP", "LX"]
    ws = client.get(f"{API}/fonds/Z109/categories/WS").json()
    assert ws["code_patterns"]["item"] == "全宗号-门类代码·年度-保管期限-机构（问题）代码-件号(4位)"
    labels = {f["code"]: f["label"] for f in ws["schemas"]["item"]["fields"]}
    assert labels["title"] == "题名" and labels["doc_number"] == "文号"
    r = client.get(f"{API}/fonds/Z999/categories")
    assert r.status_code == 404 and r.json()["error"]["code"] == "FONDS_NOT_FOUND"
    r = client.get(f"{API}/fonds/Z109/categories/QQ")
    assert r.status_code == 404 and r.json()["error"]["code"] == "CATEGORY_NOT_FOUND"
    assert {p["code"] for p in client.get(f"{API}/category-presets").json()} == {"WS", "KU", "KJ", "ZP", "LX"}


# ---------------------------------------------------------------- records: happy paths


def test_create_list_page_and_filter_records(client: TestClient) -> None:
    ids = []
    for i in range(5):
        meta = {**GOOD, "title": f"通知{i}", "doc_number": f"示政办〔2024〕{i}号"}
        if i >= 3:
            meta.update(year=2023, date="2023-06-01", retention_period="D30")
        ids.append(new_record(client, metadata=meta, state="filed")["id"])
    one = client.get(f"{API}/records/{ids[0]}").json()
    assert one["archival_code"] == "Z109-WS·2024-Y-BGS-0001"
    assert one["metadata"]["title"] == "通知0" and one["state_label"] == "已归档"

    page1 = client.get(f"{API}/records", params={"limit": 2}).json()
    assert page1["total"] == 5 and len(page1["items"]) == 2 and page1["next_cursor"]
    page2 = client.get(f"{API}/records", params={"limit": 2, "cursor": page1["next_cursor"]}).json()
    page3 = client.get(f"{API}/records", params={"limit": 2, "cursor": page2["next_cursor"]}).json()
    codes = [r["archival_code"] for p in (page1, page2, page3) for r in p["items"]]
    assert codes == sorted(codes) and len(set(codes)) == 5 and page3["next_cursor"] is None

    def count(**params: Any) -> int:
        r = client.get(f"{API}/records", params=params)
        assert r.status_code == 200, r.text
        return r.json()["total"]

    assert count(fonds="Z109", category="WS", year=2023) == 2
    assert count(retention_period="永久") == 3
    assert count(fonds="Z109", department="BGS", state="filed") == 5
    assert count(q="通知3") == 1
    assert count(state="pending") == 0
    assert count(sort="newest", limit=1) == 5
    r = client.get(f"{API}/records", params={"category": "WS"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "FONDS_REQUIRED"
    r = client.get(f"{API}/records", params={"cursor": "not-a-cursor"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "BAD_CURSOR"
    r = client.get(f"{API}/records", params={"sort": "random"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "BAD_SORT"


def test_volume_and_children_by_parent(client: TestClient) -> None:
    vol = client.post(f"{API}/records", json={
        "fonds": "Z109", "category": "KU", "level": "volume", "state": "filed",
        "metadata": {"title": "2024年1月记账凭证", "year": 2024, "retention_period": "D30", "class_code": "01"}}).json()
    assert vol["archival_code"] == "Z109-KU·01·2024-001"
    item = client.post(f"{API}/records", json={
        "fonds": "Z109", "category": "KU", "level": "item", "parent_id": vol["id"], "state": "filed",
        "metadata": {"title": "记账凭证第1号", "responsible": "财务科", "date": "2024-01-05"}})
    assert item.status_code == 201 and item.json()["archival_code"] == "Z109-KU·01·2024-001-001"
    children = client.get(f"{API}/records", params={"parent_id": vol["id"]}).json()
    assert [c["id"] for c in children["items"]] == [item.json()["id"]]
    r = client.post(f"{API}/records", json={"fonds": "Z109", "category": "KU", "level": "item",
                                             "metadata": {"title": "无上级", "responsible": "财务科", "date": "2024-01-05"}})
    assert r.status_code == 422 and problem_codes(r) == {"parent_id": "REQUIRED"}


def test_submit_return_file_and_patch(client: TestClient, auditor: TestClient) -> None:
    rec = new_record(client)
    rid = rec["id"]
    assert rec["state"] == "pre_filing" and rec["archival_code"] is None
    assert client.post(f"{API}/records/{rid}/submit").json()["state"] == "pending"
    r = client.post(f"{API}/records/{rid}/return", json={"reason": " "})
    assert r.status_code == 422 and r.json()["error"]["code"] == "REASON_REQUIRED"
    assert client.post(f"{API}/records/{rid}/return", json={"reason": "缺少处理单"}).json()["state"] == "pre_filing"

    r = client.patch(f"{API}/records/{rid}", json={"metadata": {"pages": 5}, "row_version": 1})
    assert r.status_code == 409 and r.json()["error"]["code"] == "STALE_VERSION"
    cur = client.get(f"{API}/records/{rid}").json()["row_version"]
    r = client.patch(f"{API}/records/{rid}", json={"metadata": {"pages": 5}, "expected_row_version": cur})
    assert r.status_code == 200 and r.json()["metadata"]["pages"] == 5
    r = client.patch(f"{API}/records/{rid}", json={"metadata": {"pages": "五"}})
    assert r.status_code == 422 and problem_codes(r) == {"pages": "WRONG_TYPE"}

    filed = client.post(f"{API}/records/{rid}/file").json()
    assert filed["state"] == "filed" and filed["archival_code"] == "Z109-WS·2024-Y-BGS-0001"
    r = client.post(f"{API}/records/{rid}/file")
    assert r.status_code == 409 and r.json()["error"]["code"] == "INVALID_TRANSITION"
    r = client.patch(f"{API}/records/{rid}", json={"metadata": {"pages": 6}})
    assert r.status_code == 422 and problem_codes(r) == {"reason": "REQUIRED"}
    r = client.patch(f"{API}/records/{rid}", json={"metadata": {"year": 2023, "date": "2023-01-01"}, "reason": "更正"})
    assert r.status_code == 422 and problem_codes(r)["year"] == "ARCHIVAL_CODE_FIELD_LOCKED"
    r = client.patch(f"{API}/records/{rid}", json={"metadata": {"pages": 6}, "reason": "页数核对更正"})
    assert r.status_code == 200 and r.json()["metadata"]["pages"] == 6

    events = auditor.get(f"{API}/audit/events", params={"object_type": "record", "object_id": rid}).json()["items"]
    actions = [e["action"] for e in events]
    for a in ("record.create", "record.submit", "record.return", "record.file", "record.update"):
        assert a in actions
    assert all(e["object_id"] == str(rid) for e in events)
    assert auditor.post(f"{API}/audit/verify").json()["ok"] is True
    assert all(e["actor"] == "head" for e in events)


# ---------------------------------------------------------------- records: bad input changes nothing


@pytest.mark.parametrize(("change", "field", "code"), [
    ({"year": "二〇二四"}, "year", "WRONG_TYPE"),
    ({"pages": "三页"}, "pages", "WRONG_TYPE"),
    ({"title": "长" * 501}, "title", "TOO_LONG"),
    ({"security_level": "保密"}, "security_level", "NOT_IN_DOMAIN"),
    ({"responsible": None}, "responsible", "REQUIRED"),
    ({"date": "2023-12-31"}, "year", "YEAR_DATE_MISMATCH"),
    ({"retention_period": "五年"}, "retention_period", "NOT_IN_DOMAIN"),
    ({"security_level": "秘密"}, "secrecy_period", "REQUIRED"),
    ({"no_such_field": "x"}, "no_such_field", "UNKNOWN_FIELD"),
])
def test_bad_metadata_is_rejected_field_by_field(client: TestClient, change: dict[str, Any], field: str, code: str) -> None:
    meta = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    r = client.post(f"{API}/records", json={"fonds": "Z109", "category": "WS", "department": "BGS", "metadata": meta})
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "VALIDATION_FAILED"
    assert problem_codes(r) == {field: code}
    assert re.search(r"[\u4e00-\u9fff]", err["message"]) and all(re.search(r"[\u4e00-\u9fff]", p["message"])
                                                                 for p in err["problems"])
    assert total(client) == 0


def test_every_problem_reported_at_once(client: TestClient) -> None:
    r = client.post(f"{API}/records", json={"fonds": "Z109", "category": "WS", "department": "BGS", "metadata": {
        "title": "x" * 600, "year": "abc", "retention_period": "Y", "date": "2024-02-30", "security_level": "保密"}})
    assert r.status_code == 422
    assert problem_codes(r) == {"title": "TOO_LONG", "year": "WRONG_TYPE", "date": "WRONG_TYPE",
                                "security_level": "NOT_IN_DOMAIN", "responsible": "REQUIRED"}
    labels = {p["field"]: p.get("label") for p in r.json()["error"]["problems"]}
    assert labels["title"] == "题名" and labels["responsible"] == "责任者"


def test_unknown_category_fonds_department(client: TestClient) -> None:
    base = {"fonds": "Z109", "category": "WS", "department": "BGS", "metadata": GOOD}
    r = client.post(f"{API}/records", json={**base, "category": "QQ"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "CATEGORY_NOT_FOUND"
    r = client.post(f"{API}/records", json={**base, "fonds": "Q999"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "FONDS_NOT_FOUND"
    r = client.post(f"{API}/records", json={**base, "department": "NOPE"})
    assert r.status_code == 422 and problem_codes(r) == {"department": "NOT_FOUND"}
    r = client.post(f"{API}/records", json={**base, "level": "volume"})
    assert r.status_code == 422 and problem_codes(r) == {"level": "NOT_IN_DOMAIN"}
    r = client.post(f"{API}/records", json={**base, "state": "destroyed"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "BAD_STATE"
    assert total(client) == 0


def test_request_validation_errors_are_chinese_and_shaped(client: TestClient) -> None:
    def problems(r: Any) -> dict[str, str]:
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert err["code"] == "VALIDATION_FAILED" and "请求参数有误" in err["message"]
        return {p["field"]: p["message"] for p in err["problems"]}

    assert problems(client.post(f"{API}/records", json={"fonds": "Z109", "category": "WS"})) == {"metadata": "必填项，不能为空"}
    assert problems(client.post(f"{API}/records", json={"fonds": "Z109", "category": "WS", "metadata": [1]})) == {
        "metadata": "应为 JSON 对象（{…}）"}
    assert "不认识的字段" in problems(client.post(f"{API}/records", json={
        "fonds": "Z109", "category": "WS", "metadata": {}, "metdata": {}}))["metdata"]
    assert problems(client.post(f"{API}/records", json={"fonds": "Z109", "category": "W" * 20, "metadata": {}})) == {
        "category": "长度不能超过 16 个字符"}
    assert problems(client.get(f"{API}/records", params={"limit": 0})) == {"limit": "不能小于 1"}
    assert problems(client.get(f"{API}/records", params={"year": "abc"})) == {"year": "应为整数"}
    assert problems(client.get(f"{API}/records/abc")) == {"record_id": "应为整数"}
    r = client.post(f"{API}/records", content=b"{not json", headers={"content-type": "application/json"})
    assert list(problems(r)) == ["body"] and "JSON 格式错误" in problems(r)["body"]
    r = client.post(f"{API}/records/multipart", data={"fonds": "Z109", "category": "WS", "metadata": "{bad"})
    assert r.status_code == 422 and problem_codes(r) == {"metadata": "JSON_INVALID"}


def test_unknown_ids_give_404_json_with_code(client: TestClient) -> None:
    for url, code in ((f"{API}/records/999999", "RECORD_NOT_FOUND"), (f"{API}/files/999999", "FILE_NOT_FOUND"),
                      (f"{API}/files/999999/content", "FILE_NOT_FOUND"), (f"{API}/records/999999/files", "RECORD_NOT_FOUND"),
                      (f"{API}/fixity/jobs/abc", "JOB_NOT_FOUND"), (f"{API}/no/such/endpoint", "NOT_FOUND")):
        r = client.get(url)
        assert r.status_code == 404, url
        assert r.headers["content-type"].startswith("application/json")
        assert r.json()["error"]["code"] == code
        assert re.search(r"[\u4e00-\u9fff]", r.json()["error"]["message"])
    r = client.post(f"{API}/records/999999/submit")
    assert r.status_code == 404 and r.json()["error"]["code"] == "RECORD_NOT_FOUND"
    r = client.delete(f"{API}/records/1")
    assert r.status_code == 405 and r.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


# ---------------------------------------------------------------- files


def test_multipart_create_then_download_with_digests(client: TestClient, auditor: TestClient, app: Dangan) -> None:
    name = "关于做好2024年度档案归档工作的通知（正文）.pdf"
    r = client.post(f"{API}/records/multipart",
                    data={"fonds": "Z109", "category": "WS", "department": "BGS", "state": "filed",
                          "metadata": json.dumps(GOOD, ensure_ascii=False), "roles": ["main", "attachment"]},
                    files=[("files", (name, PDF, "application/pdf")),
                           ("files", ("附件：安排表.txt", "附件内容".encode(), "text/plain"))])
    assert r.status_code == 201, r.text
    rec = r.json()
    assert rec["archival_code"] == "Z109-WS·2024-Y-BGS-0001"
    assert [(f["name"], f["role"]) for f in rec["files"]] == [(name, "main"), ("附件：安排表.txt", "attachment")]
    f = rec["files"][0]
    assert f["sha256"] == hashlib.sha256(PDF).hexdigest() and f["sm3"] == hashlib.new("sm3", PDF).hexdigest()
    assert client.get(f"{API}/files/{f['id']}").json()["size"] == len(PDF)
    assert len(client.get(f"{API}/records/{rec['id']}/files").json()) == 2

    r = client.get(f"{API}/files/{f['id']}/content")
    assert r.status_code == 200 and r.content == PDF
    h = r.headers
    assert h["content-length"] == str(len(PDF))
    assert h["etag"] == f'"{f["sha256"]}"'
    assert h["digest"] == "sha-256=" + base64.b64encode(hashlib.sha256(PDF).digest()).decode()
    assert h["repr-digest"] == "sha-256=:" + base64.b64encode(hashlib.sha256(PDF).digest()).decode() + ":"
    assert h["x-checksum-sm3"] == hashlib.new("sm3", PDF).hexdigest()
    assert h["content-disposition"].startswith("attachment; ")
    assert f"filename*=UTF-8''{quote(name, safe='')}" in h["content-disposition"]
    assert re.search(r'filename="[\x20-\x7e]+\.pdf"', h["content-disposition"])
    assert h["x-content-type-options"] == "nosniff"
    assert client.get(f"{API}/files/{f['id']}/content", headers={"If-None-Match": h["etag"]}).status_code == 304
    inline = client.get(f"{API}/files/{f['id']}/content", params={"inline": "true"})
    assert inline.headers["content-disposition"].startswith("inline; ")

    events = auditor.get(f"{API}/audit/events", params={"action": "file.download"}).json()["items"]
    assert events and events[0]["object_id"] == str(f["id"])


def test_upload_to_record_roles_reason_and_write_once(client: TestClient) -> None:
    rid = new_record(client)["id"]
    r = client.post(f"{API}/records/{rid}/files", data={"role": "attachment"},
                    files=[("files", ("附件一.pdf", PDF, "application/pdf"))])
    assert r.status_code == 201 and r.json()[0]["role"] == "attachment"
    r = client.post(f"{API}/records/{rid}/files", data={"role": "nonsense"},
                    files=[("files", ("附件二.pdf", PDF + b"2", "application/pdf"))])
    assert r.status_code == 422 and problem_codes(r) == {"files[0].role": "NOT_IN_DOMAIN"}
    client.post(f"{API}/records/{rid}/file")
    r = client.post(f"{API}/records/{rid}/files", files=[("files", ("定稿.pdf", PDF + b"v2", "application/pdf"))])
    assert r.status_code == 422 and r.json()["error"]["code"] == "REASON_REQUIRED"
    r = client.post(f"{API}/records/{rid}/files", data={"reason": "补充定稿"},
                    files=[("files", ("定稿.pdf", PDF + b"v2", "application/pdf"))])
    assert r.status_code == 201 and r.json()[0]["reason"] == "补充定稿"
    r = client.post(f"{API}/records/{rid}/files")
    assert r.status_code == 422 and r.json()["error"]["code"] == "VALIDATION_FAILED"


def test_path_traversal_file_name_is_refused(client: TestClient, app: Dangan) -> None:
    r = client.post(f"{API}/records/multipart",
                    data={"fonds": "Z109", "category": "WS", "department": "BGS",
                          "metadata": json.dumps(GOOD, ensure_ascii=False)},
                    files=[("files", ("../../etc/passwd", b"root:x:0:0", "text/plain"))])
    assert r.status_code == 422, r.text
    assert problem_codes(r) == {"files[0].name": "INVALID_FILE_NAME"}
    assert total(client) == 0 and blobs(app) == []
    rid = new_record(client)["id"]
    for bad in ("../../etc/passwd", "..\\..\\boot.ini", "/etc/shadow", ".."):
        r = client.post(f"{API}/records/{rid}/files", files=[("files", (bad, b"x", "text/plain"))])
        assert r.status_code == 422, bad
        assert problem_codes(r) == {"files[0].name": "INVALID_FILE_NAME"}
    assert client.get(f"{API}/records/{rid}/files").json() == [] and blobs(app) == []


def test_duplicate_content_on_one_record_is_refused(client: TestClient) -> None:
    rid = new_record(client)["id"]
    assert client.post(f"{API}/records/{rid}/files", files=[("files", ("正文.pdf", PDF, "application/pdf"))]).status_code == 201
    r = client.post(f"{API}/records/{rid}/files", files=[("files", ("正文副本.pdf", PDF, "application/pdf"))])
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["code"] == "DUPLICATE_FILE" and err["detail"]["sha256"] == hashlib.sha256(PDF).hexdigest()
    r = client.post(f"{API}/records/{rid}/files", files=[("files", ("a.pdf", PDF + b"a", "application/pdf")),
                                                         ("files", ("b.pdf", PDF + b"a", "application/pdf"))])
    assert r.status_code == 409
    assert [f["name"] for f in client.get(f"{API}/records/{rid}/files").json()] == ["正文.pdf"]
    # the same content on another record is fine (stored once)
    other = new_record(client, metadata={**GOOD, "title": "另一件"})["id"]
    assert client.post(f"{API}/records/{other}/files", files=[("files", ("正文.pdf", PDF, "application/pdf"))]).status_code == 201


def _multipart(fields: dict[str, str], file_name: str, content: bytes, boundary: str = "dangan-test-boundary") -> bytes:
    out = b""
    for k, v in fields.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").encode()
    out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{file_name}\"\r\n"
            "Content-Type: application/pdf\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return out


def _send_then_disconnect(asgi: Any, path: str, body: bytes, sent_bytes: int,
                          auth: TestClient | None = None) -> list[dict[str, Any]]:
    """Drive the ASGI app like a server whose client went away after `sent_bytes` of the body."""
    chunks = [body[i:i + 4096] for i in range(0, sent_bytes, 4096)]
    queue = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver"), (b"content-length", str(len(body)).encode()),
                         (b"content-type", b"multipart/form-data; boundary=dangan-test-boundary")],
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}
    if auth is not None:  # the session cookie and CSRF header of a logged-in client
        scope["headers"] += [(b"cookie", f"{SESSION_COOKIE}={auth.cookies[SESSION_COOKIE]}".encode()),
                             (b"x-csrf-token", auth.csrf.encode())]  # type: ignore[attr-defined]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    anyio.run(asgi, scope, receive, send)
    return sent


def test_interrupted_upload_stores_nothing(client: TestClient, app: Dangan, web: Any) -> None:
    big = b"%PDF-1.4\n" + bytes(range(256)) * 8000  # ~2 MB: spooled to disk by the parser
    fields = {"fonds": "Z109", "category": "WS", "department": "BGS", "metadata": json.dumps(GOOD, ensure_ascii=False)}
    body = _multipart(fields, "大文件.pdf", big)
    sent = _send_then_disconnect(web, f"{API}/records/multipart", body, len(body) // 2, client)
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 400
    assert total(client) == 0 and blobs(app) == []

    rid = new_record(client)["id"]
    body = _multipart({"role": "main"}, "大文件.pdf", big)
    _send_then_disconnect(web, f"{API}/records/{rid}/files", body, len(body) - 100, client)  # closing boundary never came
    assert client.get(f"{API}/records/{rid}/files").json() == [] and blobs(app) == []
    # the complete upload of the same content then works
    r = client.post(f"{API}/records/{rid}/files", files=[("files", ("大文件.pdf", big, "application/pdf"))])
    assert r.status_code == 201 and r.json()[0]["size"] == len(big)


# ---------------------------------------------------------------- audit and fixity


def test_audit_events_filters_and_verify(client: TestClient, auditor: TestClient) -> None:
    rid = new_record(client)["id"]
    r = auditor.get(f"{API}/audit/events", params={"object_type": "record", "object_id": rid, "limit": 1})
    body = r.json()
    assert len(body["items"]) == 1 and body["next_before_seq"] == body["items"][0]["seq"]
    older = auditor.get(f"{API}/audit/events", params={"object_type": "record", "object_id": rid,
                                                      "before_seq": body["next_before_seq"]}).json()["items"]
    assert all(e["seq"] < body["next_before_seq"] for e in older)
    assert auditor.get(f"{API}/audit/events", params={"actor": "head", "action": "record.create"}).json()["items"]
    rep = auditor.post(f"{API}/audit/verify").json()
    assert rep["ok"] is True and rep["checked"] > 3 and rep["problems"] == []


def test_fixity_check_finds_an_altered_file(client: TestClient, app: Dangan) -> None:
    rid = new_record(client)["id"]
    f = client.post(f"{API}/records/{rid}/files", files=[("files", ("正文.pdf", PDF, "application/pdf"))]).json()[0]
    rep = client.post(f"{API}/fixity/check").json()
    assert rep["ok"] is True and rep["checked"] == 1
    path = app.store.root / f["storage_key"]  # type: ignore[attr-defined]
    path.chmod(0o644)
    altered = bytearray(PDF)
    altered[len(PDF) // 2] ^= 0x01  # one bit of one byte, same size
    path.write_bytes(bytes(altered))
    rep = client.post(f"{API}/fixity/check", json={"record_id": rid}).json()
    assert rep["ok"] is False and rep["findings"][0]["outcome"] == "altered"
    runs = client.get(f"{API}/fixity/runs").json()
    assert runs[0]["failed"] == 1 and runs[1]["ok"] is True
    fails = client.get(f"{API}/fixity/runs/{runs[0]['id']}/failures").json()
    assert fails[0]["file_id"] == f["id"] and fails[0]["outcome_label"] == "被篡改"
    assert fails[0]["expected"]["sha256"] == f["sha256"] and fails[0]["found"]["size"] == len(PDF)
    page = client.get("/fixity")
    assert "1 个电子文件未通过检测" in page.text and "被篡改" in page.text


def test_fixity_job_runs_in_background(client: TestClient) -> None:
    rid = new_record(client)["id"]
    client.post(f"{API}/records/{rid}/files", files=[("files", ("正文.pdf", PDF, "application/pdf"))])
    r = client.post(f"{API}/fixity/jobs")
    assert r.status_code == 202 and r.json()["started"] is True
    job_id = r.json()["id"]
    deadline = time.monotonic() + 20
    while (s := client.get(f"{API}/fixity/jobs/{job_id}").json())["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert s["state"] == "done" and s["percent"] == 100 and s["result"]["ok"] is True and s["checked"] == 1
    assert client.get("/fixity/status.json").json()["id"] == job_id


def test_openapi_and_docs(client: TestClient) -> None:
    spec = client.get(f"{API}/openapi.json").json()
    for path in ("/records", "/records/multipart", "/records/{record_id}/files", "/files/{file_id}/content",
                 "/audit/events", "/audit/verify", "/fixity/check", "/fonds/{fonds_code}/categories/{category_code}"):
        assert path in spec["paths"], path
    assert "ErrorResponse" in spec["components"]["schemas"]
    docs = client.get(f"{API}/docs")
    assert docs.status_code == 200 and "/api/v1/records/multipart" in docs.text
    assert "cdn" not in docs.text.lower() and "https://" not in docs.text


# ---------------------------------------------------------------- web pages


XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def test_xss_title_is_escaped_in_html_pages(client: TestClient, auditor: TestClient) -> None:
    rec = new_record(client, metadata={**GOOD, "title": XSS, "responsible": '"><svg onload=alert(3)>'})
    client.post(f"{API}/records/{rec['id']}/files", files=[("files", ('<img src=x onerror=alert(4)>.pdf', PDF, "application/pdf"))])
    for who, url in ((client, f"/records/{rec['id']}"), (client, "/records"), (client, "/records?sort=newest"),
                     (client, "/"), (auditor, "/audit"), (client, f"/records?q={quote(XSS)}"),
                     (auditor, f"/audit?object_id={quote(XSS)}")):
        html = who.get(url).text
        assert "<script>alert(1)" not in html and "<img src=x" not in html and "<svg onload" not in html, url
    detail = client.get(f"/records/{rec['id']}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail
    assert "&lt;img src=x onerror=alert(4)&gt;.pdf" in detail
    assert "script-src 'self'" in client.get("/").headers["content-security-policy"]


def test_pages_render(client: TestClient, auditor: TestClient) -> None:
    rid = new_record(client, state="filed")["id"]
    for who, url, text in ((client, "/", "各门类档案数量"), (client, "/records", "档案浏览"),
                           (client, "/records?fonds=Z109&category=WS&year=2024", "2024 年"),
                           (client, f"/records/{rid}", "Z109-WS·2024-Y-BGS-0001"),
                           (client, "/records/new?category=KU&level=item", "所属案卷"), (client, "/fonds", "DA/T 46 编号"),
                           (auditor, "/audit", "校验哈希链"), (client, "/fixity", "开始检测"),
                           (client, "/api/v1/docs", "接口文档")):
        r = who.get(url)
        assert r.status_code == 200, url
        assert text in r.text, url
        assert '<html lang="zh-CN">' in r.text
    r = client.get("/records/999999")
    assert r.status_code == 404 and "档案 999999 不存在" in r.text and r.headers["content-type"].startswith("text/html")
    assert client.get("/no-such-page").status_code == 404
    r = client.get("/records?year=abc")
    assert r.status_code == 422 and "应为整数" in r.text
    assert client.get("/static/app.css").status_code == 200


def test_form_post_requires_csrf_token(client: TestClient) -> None:
    rid = new_record(client)["id"]
    client.headers.pop("X-CSRF-Token")  # a form sent by the browser carries only its hidden field
    r = client.post(f"/records/{rid}/submit", data={})
    assert r.status_code == 403 and "安全校验未通过" in r.text
    r = client.post(f"/records/{rid}/submit", data={"csrf_token": "x" * 43})
    assert r.status_code == 403
    token = csrf(client)
    r = client.post(f"/records/{rid}/submit", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/records/{rid}?done=submit"
    assert client.get(f"{API}/records/{rid}").json()["state"] == "pending"


def test_cross_site_posts_are_refused(client: TestClient) -> None:
    rid = new_record(client)["id"]
    token = csrf(client)
    r = client.post(f"/records/{rid}/submit", data={"csrf_token": token}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "CROSS_SITE_REQUEST"
    r = client.post(f"{API}/records/{rid}/submit", headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    assert client.get(f"{API}/records/{rid}").json()["state"] == "pre_filing"
    r = client.post(f"{API}/records/{rid}/submit", headers={"Origin": "http://testserver"})
    assert r.status_code == 200


def test_new_record_form_shows_errors_keeps_values_then_saves(client: TestClient) -> None:
    token = csrf(client)
    form = {"csrf_token": token, "fonds": "Z109", "category": "WS", "level": "item", "department": "BGS",
            "save_as": "pending", "m_title": "<b>关于开展档案移交的通知</b>", "m_year": "2024", "m_date": "2023-12-30",
            "m_retention_period": "D30", "m_pages": "三页", "m_security_level": "公开", "m_keywords": "移交，档案 归档"}
    r = client.post("/records/new", data=form, files={"file_0": ("正文.pdf", PDF, "application/pdf")})
    assert r.status_code == 422
    html = r.text
    assert "不一致" in html and "应为整数" in html and "必选字段，不能为空" in html  # year/date, pages, responsible
    assert 'value="&lt;b&gt;关于开展档案移交的通知&lt;/b&gt;"' in html and 'value="三页"' in html
    assert "请重新选择要上传的电子文件" in html
    assert total(client) == 0

    form.update(m_date="2024-03-05", m_pages="3", m_responsible="示范市人民政府办公室")
    r = client.post("/records/new", data=form, files={"file_0": ("正文.pdf", PDF, "application/pdf")},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    rid = int(re.search(r"/records/(\d+)\?done=created", r.headers["location"]).group(1))
    rec = client.get(f"{API}/records/{rid}").json()
    assert rec["state"] == "pending" and rec["metadata"]["keywords"] == ["移交", "档案", "归档"]
    assert [f["name"] for f in rec["files"]] == ["正文.pdf"]

    r = client.post(f"/records/{rid}/return", data={"csrf_token": token, "reason": ""})
    assert r.status_code == 422 and "退回必须写明原因" in r.text
    r = client.post(f"/records/{rid}/file", data={"csrf_token": token})
    assert r.status_code == 200 and "已归档，档号已赋予" in r.text and "Z109-WS·2024-D30-BGS-0001" in r.text


def test_form_path_traversal_file_name_shown_next_to_file(client: TestClient, app: Dangan) -> None:
    token = csrf(client)
    form = {"csrf_token": token, "fonds": "Z109", "category": "WS", "level": "item", "department": "BGS",
            "save_as": "pre_filing", **{f"m_{k}": str(v) for k, v in GOOD.items()}}
    r = client.post("/records/new", data=form, files={"file_1": ("../../etc/passwd", b"x", "text/plain")})
    assert r.status_code == 422
    assert re.search(r'class="file-row has-error".*?文件名不能包含路径', r.text, re.S)
    assert total(client) == 0 and blobs(app) == []


def test_dashboard_counts_are_trimmed_for_the_acting_user(app: Dangan, web: Any, client: TestClient) -> None:
    new_record(client)
    new_record(client, metadata={**GOOD, "title": "涉密文件", "security_level": "秘密", "secrecy_period": "10年"})
    add_user(app, "reader1", ["reader"], "公开")
    c = session_client(web, app, "reader1")
    html = c.get("/").text
    total_card = re.search(r'档案总数</span>\s*<span class="stat-value">(\d+)<', html)
    assert total_card and total_card.group(1) == "1"
    assert "最近操作" not in html and "操作记录由安全审计员在审计日志中查阅" in html
    assert 'href="/records/new"' not in html  # a reader is not offered what they may not do
    r = c.get(f"{API}/audit/events")
    assert r.status_code == 403 and r.json()["error"]["code"] == "PERMISSION_DENIED"
    r = c.get(f"{API}/fixity/runs")
    assert r.status_code == 403
    assert c.get(f"{API}/records").json()["total"] == 1
