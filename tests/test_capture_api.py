"""Capture through the REST API: ZIP packages, batch import jobs, plans, the review queue and acceptance,
the retention schedule, and the printed outputs (归档文件目录, 归档章, stamped copy, volume PDFs)."""

from __future__ import annotations

import datetime as dt
import io
import json
import threading
import time
import zipfile
from typing import Any

import openpyxl
import pikepdf
import pypdfium2
import pytest
from fastapi.testclient import TestClient

from dangan.services import identity as idn
from dangan.services.context import Actor
from test_api import API, GOOD, add_user, blobs, new_record, problem_codes, session_client, total

PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj " \
      b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def real_pdf(text: str = "x") -> bytes:
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(595, 842))
    buf = io.BytesIO()
    pdf.docinfo["/Title"] = text
    pdf.save(buf)
    return buf.getvalue()


def package(records: list[dict[str, Any]], files: dict[str, bytes], top: dict[str, Any] | None = None,
            manifest: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        body = {"fonds": "Z109", "category": "WS", "department": "BGS", **(top or {}), "records": records}
        zf.writestr("manifest.json", manifest if manifest is not None else json.dumps(body, ensure_ascii=False))
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def rec(ref: str, title: str = "关于数据包接收的通知", **meta: Any) -> dict[str, Any]:
    return {"sender_ref": ref, "metadata": {**GOOD, "title": title, **meta},
            "files": [{"path": f"{ref}/正文.pdf", "role": "main"}]}


@pytest.fixture
def web(app):
    from dangan.web.app import create_app

    return create_app(app)


@pytest.fixture
def head(web, app) -> TestClient:
    add_user(app, "head", ["records_head"], "机密", ["BGS"])
    return session_client(web, app, "head")


def token_client(web, app, *, categories=("WS",), departments=("BGS",), expires_days: int | None = 30) -> TestClient:
    add_user(app, "oa", ["clerk"], "内部", ["BGS"], system=True)
    tok = idn.create_token(app, Actor.system(), "OA", "oa", actions=["record.read", "record.create", "file.add"],
                           categories=list(categories), departments=list(departments),
                           expires_days=expires_days)["token"]
    return TestClient(web, base_url="http://testserver", headers={"Authorization": f"Bearer {tok}"})


def post_package(c: TestClient, data: bytes, **form: Any) -> Any:
    return c.post(f"{API}/submissions/package", files={"package": ("pkg.zip", data, "application/zip")},
                  data={k: str(v).lower() if isinstance(v, bool) else v for k, v in form.items()})


# ---------------------------------------------------------------- packages


def test_package_is_received_whole_and_a_retry_creates_nothing(web, app):
    oa = token_client(web, app)
    pkg = package([rec("OA-1"), rec("OA-2", "关于第二件的通知")],
                  {"OA-1/正文.pdf": PDF + b"1", "OA-2/正文.pdf": PDF + b"2"})
    r = post_package(oa, pkg)
    assert r.status_code == 201, r.text
    assert r.json()["created"] == 2
    again = post_package(oa, pkg)
    assert again.status_code == 201 and again.json()["existing"] == 2 and again.json()["created"] == 0
    assert [x["record_id"] for x in again.json()["records"]] == [x["record_id"] for x in r.json()["records"]]


def test_one_bad_record_refuses_the_whole_package_listing_every_problem(web, app, head):
    oa = token_client(web, app)
    before_blobs = blobs(app)
    pkg = package([rec("OA-1"), rec("OA-2", "", year="二〇二四"), rec("OA-3")],
                  {"OA-1/正文.pdf": PDF, "OA-2/正文.pdf": PDF + b"2"})  # OA-3's file is missing
    r = post_package(oa, pkg)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "PACKAGE_INVALID"
    fields = {p["field"] for p in err["problems"]}
    assert {"records[1].title", "records[1].year", "records[2].files[0]"} <= fields
    assert total(head) == 0 and blobs(app) == before_blobs


def test_package_bad_inputs(web, app, head):
    oa = token_client(web, app)
    r = post_package(oa, b"not a zip at all")
    assert r.json()["error"]["code"] == "ZIP_MALFORMED"
    r = post_package(oa, package([], {}, manifest=b"{broken"))
    assert r.json()["error"]["code"] == "PACKAGE_MANIFEST_INVALID"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("manifest.json", json.dumps({"records": [rec("X")]}))
        zf.writestr("../evil.pdf", PDF)
    assert post_package(oa, buf.getvalue()).json()["error"]["code"] == "ZIP_UNSAFE_PATH"
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps({"records": [rec("B")]}))
        zf.writestr("B/正文.pdf", b"\0" * (60 * 2**20))
    assert post_package(oa, bomb.getvalue()).json()["error"]["code"] == "ZIP_BOMB"
    huge = package([rec("T", "长" * (20 * 2**20 // 3))], {"T/正文.pdf": PDF})  # a 20 MB title
    r = post_package(oa, huge)
    assert r.status_code == 422 and r.json()["error"]["code"] == "PACKAGE_TOO_LARGE"
    long = package([rec("T", "长" * 5000)], {"T/正文.pdf": PDF})
    r = post_package(oa, long)
    assert r.status_code == 422 and problem_codes(r) == {"records[0].title": "TOO_LONG"}
    r = oa.post(f"{API}/records", json={"fonds": "Z109", "category": "WS", "department": "BGS",
                                        "metadata": {**GOOD, "title": "长" * (20 * 2**20 // 3)}})
    assert r.status_code == 422 and problem_codes(r) == {"title": "TOO_LONG"}
    assert total(head) == 0


def test_token_scope_and_expiry_are_enforced_at_the_gate(web, app, head):
    oa = token_client(web, app)
    pkg = package([rec("C-1")], {"C-1/正文.pdf": PDF}, top={"department": "CWK"})  # another department
    r = post_package(oa, pkg)
    assert r.status_code == 422 and r.json()["error"]["problems"][0]["code"] == "PERMISSION_DENIED"
    pkg = package([rec("K-1")], {"K-1/正文.pdf": PDF}, top={"category": "KU"})
    assert post_package(oa, pkg).status_code == 422
    add_user(app, "oa2", ["clerk"], "内部", ["BGS"], system=True)
    tok = idn.create_token(app, Actor.system(), "过期", "oa2", actions=["record.create"], expires_days=1)["token"]
    from sqlalchemy import update

    from dangan.db.models import ApiToken
    with app.sessions.begin() as s:
        s.execute(update(ApiToken).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=1)))
    expired = TestClient(web, base_url="http://testserver", headers={"Authorization": f"Bearer {tok}"})
    r = post_package(expired, package([rec("E-1")], {"E-1/正文.pdf": PDF}))
    assert r.status_code == 401
    assert total(head) == 0


def test_the_same_record_submitted_twice_at_once_is_stored_once(web, app, head):
    oa = token_client(web, app)
    body = {"fonds": "Z109", "category": "WS", "department": "BGS", "sender_ref": "OA-RACE",
            "metadata": {**GOOD, "title": "同时提交两次"}}
    results: list[Any] = []
    barrier = threading.Barrier(4)

    def go() -> None:
        barrier.wait()
        results.append(oa.post(f"{API}/records", json=body))

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [201] * 4, [r.text for r in results]
    assert len({r.json()["id"] for r in results}) == 1
    assert total(head) == 1


# ---------------------------------------------------------------- import jobs


def catalogue_bytes(n: int = 3) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["序号", "文号", "责任者", "题名", "日期", "年度", "保管期限", "密级", "页数", "文件名"])
    for i in range(1, n + 1):
        ws.append([i, f"示政发〔2024〕{i}号", "办公室", f"导入的第{i}件", f"2024年3月{i}日", 2024, "永久", "公开", 3,
                   f"{i}.pdf"])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def files_zip(n: int = 3) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(1, n + 1):
            zf.writestr(f"{i}.pdf", PDF + str(i).encode())
    return buf.getvalue()


def wait_job(c: TestClient, job_id: str) -> dict[str, Any]:
    for _ in range(200):
        j = c.get(f"{API}/jobs/{job_id}").json()
        if j["finished"]:
            return j
        time.sleep(0.05)
    raise AssertionError("job did not finish")


def test_import_job_dry_run_then_import_with_progress_and_report(web, app, head):
    files = {"catalogue": ("目录.xlsx", catalogue_bytes(), "application/octet-stream"),
             "files": ("files.zip", files_zip(), "application/zip")}
    r = head.post(f"{API}/imports", files=files, data={"fonds": "Z109", "category": "WS", "department": "BGS",
                                                      "dry_run": "true"})
    assert r.status_code == 202, r.text
    j = wait_job(head, r.json()["id"])
    assert j["status"] == "done" and j["result"]["passed"] == 3 and total(head) == 0
    rep = head.get(f"{API}/jobs/{j['id']}/report")
    assert rep.status_code == 200
    ws = openpyxl.load_workbook(io.BytesIO(rep.content))["校验结果"]
    assert [c.value for c in ws[2]][-1] == "通过"
    r = head.post(f"{API}/imports", files=files, data={"fonds": "Z109", "category": "WS", "department": "BGS"})
    j = wait_job(head, r.json()["id"])
    assert (j["status"], j["created"], j["percent"]) == ("done", 3, 100)
    assert total(head) == 3
    other = session_client(web, app, "head2") if add_user(app, "head2", ["records_head"]) else None
    assert other.get(f"{API}/jobs/{j['id']}").status_code == 404  # someone else's job does not exist for them


def test_import_refused_to_a_reader(web, app):
    add_user(app, "rd", ["reader"])
    c = session_client(web, app, "rd")
    r = c.post(f"{API}/imports", files={"catalogue": ("目录.xlsx", catalogue_bytes(), "application/octet-stream")},
               data={"fonds": "Z109", "category": "WS"})
    assert r.status_code == 403


# ---------------------------------------------------------------- plans, review, acceptance


def test_plans_queue_arrangement_and_acceptance(web, app, head):
    r = head.post(f"{API}/plans", json={"fonds": "Z109", "department": "BGS", "category": "WS", "year": 2024,
                                       "deadline": (dt.date.today() + dt.timedelta(days=10)).isoformat(),
                                       "expected_count": 2})
    assert r.status_code == 201, r.text
    assert head.get(f"{API}/reminders").json()[0]["status"] == "due_soon"
    ids = []
    for i, d in enumerate(["2024-06-01", "2024-01-01"]):
        v = new_record(head, metadata={**GOOD, "title": f"第{i}件", "date": d})
        assert head.post(f"{API}/records/{v['id']}/submit", json={}).status_code == 200
        ids.append(v["id"])
    q = head.get(f"{API}/review-queue", params={"fonds": "Z109"}).json()
    assert q["total"] == 2 and [x["id"] for x in q["items"]] == [ids[1], ids[0]]  # by date
    assert head.put(f"{API}/arrangement", json={"record_ids": [ids[0], ids[1]]}).status_code == 200
    out = head.post(f"{API}/accept", json={"record_ids": ids}).json()
    codes = {a["id"]: a["archival_code"] for a in out["accepted"]}
    assert codes[ids[0]].endswith("-0001") and codes[ids[1]].endswith("-0002")
    plan = head.get(f"{API}/plans").json()[0]
    assert plan["counts"]["filed"] == 2 and plan["status"] == "complete"
    r = head.post(f"{API}/plans", json={"fonds": "Z109", "department": "BGS", "category": "WS", "year": 2024,
                                       "deadline": "2025-13-01"})
    assert r.status_code in (409, 422)


def test_schedule_api_and_suggestion(web, app, head):
    s = head.get(f"{API}/fonds/Z109/categories/WS/schedule").json()
    assert len(s["rules"]) >= 10
    r = head.post(f"{API}/retention/suggest", json={"fonds": "Z109", "category": "WS",
                                                    "metadata": {"title": "关于张三同志任职的通知"}})
    assert r.json()["suggestion"]["retention_period"] == "Y"
    r = head.put(f"{API}/fonds/Z109/categories/WS/schedule", json={"rules": [{"item": "x", "retention_period": "D7X"}]})
    assert r.status_code == 422 and "rules[1].retention_period" in problem_codes(r)


# ---------------------------------------------------------------- outputs


def filed_record(head: TestClient, **meta: Any) -> dict[str, Any]:
    r = head.post(f"{API}/records/multipart", data={
        "fonds": "Z109", "category": "WS", "department": "BGS", "state": "filed",
        "metadata": json.dumps({**GOOD, "pages": 4, **meta}, ensure_ascii=False)},
        files={"files": ("正文.pdf", real_pdf(meta.get("title", "t")), "application/pdf")})
    assert r.status_code == 201, r.text
    return r.json()


def pdf_text(data: bytes) -> str:
    doc = pypdfium2.PdfDocument(data)
    return "".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))


def test_catalogue_excel_and_pdf_hold_only_what_the_reader_may_see(web, app, head):
    filed_record(head, title="公开的请示")
    filed_record(head, title="秘密的请示", security_level="秘密", secrecy_period="10年")
    x = head.get(f"{API}/catalogue", params={"fonds": "Z109", "category": "WS", "year": 2024})
    assert x.status_code == 200
    ws = openpyxl.load_workbook(io.BytesIO(x.content)).active
    titles = {c.value for row in ws.iter_rows() for c in row}
    assert {"公开的请示", "秘密的请示"} <= titles
    add_user(app, "rd", ["reader"])
    rd = session_client(web, app, "rd")
    p = rd.get(f"{API}/catalogue", params={"fonds": "Z109", "category": "WS", "format": "pdf"})
    assert p.status_code == 200 and p.headers["content-type"] == "application/pdf"
    text = pdf_text(p.content)
    assert "公开的请示" in text and "秘密的请示" not in text and "归档文件目录" in text


def test_stamp_and_stamped_copy_leave_the_original_untouched(web, app, head):
    v = filed_record(head, title="加盖归档章")
    fid = v["files"][0]["id"]
    original = head.get(f"{API}/files/{fid}/content").content
    png = head.get(f"{API}/records/{v['id']}/stamp")
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    copy = head.get(f"{API}/files/{fid}/stamped")
    assert copy.status_code == 200
    assert "Z109" in pdf_text(copy.content) and "0001" in pdf_text(copy.content)
    assert head.get(f"{API}/files/{fid}/content").content == original
    pending = new_record(head)
    r = head.get(f"{API}/records/{pending['id']}/stamp")
    assert r.status_code == 409 and r.json()["error"]["code"] == "RECORD_NOT_FILED"


def test_volume_outputs(web, app, head):
    vol = head.post(f"{API}/records", json={
        "fonds": "Z109", "category": "KU", "level": "volume", "state": "filed",
        "metadata": {"title": "2024年12月记账凭证", "year": 2024, "retention_period": "D30", "class_code": "01"}})
    assert vol.status_code == 201, vol.text
    vid = vol.json()["id"]
    for i in range(3):
        r = head.post(f"{API}/records", json={
            "fonds": "Z109", "category": "KU", "level": "item", "parent_id": vid, "state": "filed",
            "metadata": {"title": f"第{i + 1}号凭证", "responsible": "财务科", "date": f"2024-12-0{i + 1}", "pages": 2}})
        assert r.status_code == 201, r.text
    for kind, words in (("cover", ["2024年12月记账凭证"]), ("contents", ["第1号凭证", "第3号凭证"]), ("notes", ["3"])):
        r = head.get(f"{API}/records/{vid}/volume/{kind}")
        assert r.status_code == 200, r.text
        assert all(w in pdf_text(r.content) for w in words)
    item = head.get(f"{API}/records", params={"parent_id": vid}).json()["items"][0]
    assert head.get(f"{API}/records/{item['id']}/volume/cover").status_code == 422


# ---------------------------------------------------------------- DA/T 48 EEP


def post_eep(c: TestClient, xml: bytes, **form: Any) -> Any:
    return c.post(f"{API}/submissions/eep", files={"eep": ("pkg.xml", xml, "application/xml")}, data=form)


def test_eep_submission_maps_metadata_decodes_files_and_is_idempotent(web, app, head):
    from conftest import CORPUS
    from test_capture_parsing import build_eep

    app.settings.eep_xsd = CORPUS / "schemas" / "dat48-eep-2009.xsd"
    oa = token_client(web, app)
    pdf = real_pdf("封装包中的正文")
    xml = build_eep([("正文.pdf", pdf), ("附件.txt", "附件内容".encode())])
    r = post_eep(oa, xml)  # the token's only category (WS) and department are taken
    assert r.status_code == 201, r.text
    v = r.json()
    assert v["title"] == "关于印发工作要点的通知" and v["sender_ref"] == "OA-2024-000123"
    assert v["retention_period"] == "D30" and v["department_code"] == "BGS" and v["date"] == "2024-03-05"
    assert [f["name"] for f in v["files"]] == ["正文.pdf", "附件.txt"]
    assert head.get(f"{API}/files/{v['files'][0]['id']}/content").content == pdf
    assert post_eep(oa, xml).json()["id"] == v["id"]  # a retry returns the same record
    assert total(head) == 1


def test_eep_bad_packages_are_refused_and_store_nothing(web, app, head):
    from conftest import CORPUS

    app.settings.eep_xsd = CORPUS / "schemas" / "dat48-eep-2009.xsd"
    oa = token_client(web, app)
    xxe = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
           '<电子文件封装包>&e;</电子文件封装包>').encode()
    r = post_eep(oa, xxe)
    assert r.status_code == 422 and r.json()["error"]["code"] == "EEP_DTD_FORBIDDEN" and "root:" not in r.text
    bomb = ('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">' +
            "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8)) +
            ']><电子文件封装包>&i;</电子文件封装包>').encode()
    assert post_eep(oa, bomb).json()["error"]["code"] == "EEP_DTD_FORBIDDEN"
    as_is = (CORPUS / "schemas" / "dat48-eep-example-no-namespace.xml").read_bytes()
    r = post_eep(oa, as_is)
    assert r.status_code == 422 and r.json()["error"]["code"] == "EEP_INVALID"
    assert post_eep(oa, b"<\xe7\x94\xb5").json()["error"]["code"] == "EEP_MALFORMED"
    assert total(head) == 0
